#!/usr/bin/env python3
"""Python side of the interop test (tests/test_interop.cpp); also an example of using an export.

The network is built two ways: by hand here (a torchvision ResNet with the CIFAR stem: 3x3 stride-1 conv1, no
max-pool, at any base width), and, with --torchvision, as torchvision.models' own ResNet with the same stem change
(base width 64 only). Either way `load_state_dict(..., strict=True)` checks every name and shape of the export,
which is read with torch.load(weights_only=True). The C++ tests run this with the Python that matches the build:
Debian's python3 (torch 1.13, torchvision 0.14) or the project's .venv (pip torch 2.x, torchvision).

  check      load an export, run the input, compare with the logits computed by the C++ side
  roundtrip  load an export, change every weight and statistic, save dict(model.state_dict()) with torch.save
             and the logits of the changed model (the C++ side loads that file with --init-from and compares);
             also the OrderedDict itself, which the C++ side must refuse with a hint
"""
import argparse
import json
import sys

import torch
from torch import nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision.models.ResNet with conv1 = 3x3 stride 1 and maxpool = Identity (the usual CIFAR change)."""

    def __init__(self, block, layers, width=64, in_channels=3, num_classes=0):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(block, width, layers[0], 1)
        self.layer2 = self._make_layer(block, width * 2, layers[1], 2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], 2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes) if num_classes > 0 else nn.Identity()

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


ARCHS = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet34": (BasicBlock, [3, 4, 6, 3]),
         "resnet50": (Bottleneck, [3, 4, 6, 3])}


def build(meta):
    block, layers = ARCHS[meta["arch"]]
    return ResNet(block, layers, meta["width"], meta["in_channels"], meta["num_classes"])


def build_torchvision(meta):
    """torchvision's own ResNet (fixed base width 64) with the CIFAR stem: conv1 3x3 stride 1, no max-pool."""
    import torchvision

    if meta["width"] != 64:
        raise SystemExit(f"torchvision's ResNet has base width 64; this export has width {meta['width']}")
    model = getattr(torchvision.models, meta["arch"])(weights=None, num_classes=max(meta["num_classes"], 1))
    model.conv1 = nn.Conv2d(meta["in_channels"], 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    if meta["num_classes"] == 0:
        model.fc = nn.Identity()
    return model


def load_export(path, torchvision=False):
    with open(path + ".json") as f:
        meta = json.load(f)
    # weights_only=True: the default from torch 2.6 on, and available since 1.13. It loads plain tensors and
    # containers only, which is all an export holds.
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(state, dict), type(state)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    model = build_torchvision(meta) if torchvision else build(meta)
    model.load_state_dict(state, strict=True)
    return model.eval(), meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["check", "roundtrip"])
    ap.add_argument("--state", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--logits")
    ap.add_argument("--out-state")
    ap.add_argument("--out-logits")
    ap.add_argument("--torchvision", action="store_true", help="load into torchvision.models' ResNet")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    model, meta = load_export(args.state, args.torchvision)
    x = torch.load(args.input, weights_only=True)
    if args.mode == "check":
        expected = torch.load(args.logits, weights_only=True)
        got = model(x)
        diff = (got - expected).abs().max().item()
        print(f"torch {torch.__version__}{' torchvision' if args.torchvision else ''}: "
              f"max |python - c++| = {diff:.3g} over logits {tuple(got.shape)}")
        return 0 if got.shape == expected.shape and diff < 1e-5 else 1
    # roundtrip: a deterministic change of every floating tensor (running_var kept positive)
    g = torch.Generator().manual_seed(7)
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            t.add_(3)  # num_batches_tracked
        elif name.endswith("running_var"):
            t.mul_(1 + 0.5 * torch.rand(t.shape, generator=g))
        else:
            t.add_(0.05 * torch.randn(t.shape, generator=g))
    # A plain dict: LibTorch 1.13's unpickler cannot read the OrderedDict that state_dict() returns.
    torch.save(dict(model.state_dict()), args.out_state)
    torch.save(model.state_dict(), args.out_state + ".ordered")
    torch.save(model(x), args.out_logits)
    print(f"saved {len(model.state_dict())} tensors to {args.out_state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
