"""Shared pieces of the peer comparison (bench/peers): data, backbone, seeding, state-dict files.

Everything here is held identical between `contrastive` and the peers:

* Data: Fashion-MNIST from the IDX gz files in /usr/share/datasets/fashion-mnist; the first N training images
  (what `contrastive train --train-subset N` uses) and the full 10,000-image test set; pixels /255, then
  normalised with mean 0.2860, std 0.3530 (contrastive's default_normalization for fashion-mnist).
* Backbone: the CIFAR-style ResNet of src/models/resnet.cpp, written here with torchvision's module names so that
  a state dict of either side loads into it with strict=True: conv1 = 3x3 stride 1 (1 input channel), no max-pool,
  BasicBlocks [2,2,2,2] at widths w, 2w, 4w, 8w, 1x1-conv + BN downsample, global average pool, feature dim 8w.
  Initialisation as in init_resnet_weights: kaiming_normal_(fan_out, relu) on every conv, BN weight 1 / bias 0;
  `zero_init_residual` zeroes each block's bn2.weight (contrastive's SimSiam default).
"""
import gzip
import json
import os
import random
import struct

import numpy as np
import torch
from torch import nn

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530  # src/augment/presets.cpp default_normalization("fashion-mnist")


# ------------------------------------------------------------------------------------------------ data

def read_idx(path):
    """An IDX file (optionally .gz) as a numpy array of its declared shape (uint8 data only)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or dtype != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {arr.size} bytes of data for shape {dims}")
    return arr.reshape(dims)


def load_fashion_mnist(root=FASHION_MNIST, train_subset=0):
    """(train_images uint8 [N,28,28], train_labels int64 [N], test_images [10000,28,28], test_labels [10000]).

    train_subset > 0 keeps the first N training images, like `contrastive train --train-subset N`."""
    def split(prefix):
        x = read_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz")).astype(np.int64)
        return x, y

    xtr, ytr = split("train")
    xte, yte = split("t10k")
    if train_subset > 0:
        if train_subset > len(xtr):
            raise ValueError(f"--train-subset {train_subset}: the training set has {len(xtr)} images")
        xtr, ytr = xtr[:train_subset], ytr[:train_subset]
    return xtr, ytr, xte, yte


def normalize_batch(images_uint8):
    """uint8 [N,H,W] (numpy or tensor) -> float32 [N,1,H,W], /255 then (x - MEAN) / STD (evaluation input)."""
    x = torch.tensor(np.asarray(images_uint8), dtype=torch.float32).div_(255.0).unsqueeze(1)
    return x.sub_(MEAN).div_(STD)


# ------------------------------------------------------------------------------------------------ backbone

class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride, norm_layer):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = norm_layer(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), norm_layer(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class CifarResNet18(nn.Module):
    """contrastive's resnet18 (src/models/resnet.cpp) with torchvision names; forward returns the pooled
    features [N, 8*width] (no classifier: the self-supervised methods have none)."""

    def __init__(self, width=16, in_channels=1, zero_init_residual=False, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.width = width
        self.feature_dim = 8 * width
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        inplanes = width
        for i, (planes, stride) in enumerate([(width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2)], 1):
            blocks = [BasicBlock(inplanes, planes, stride, norm_layer), BasicBlock(planes, planes, 1, norm_layer)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            inplanes = planes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))  # = ResNetImpl::features (adaptive average pool + flatten)


def backbone_state(model):
    """The backbone's state dict as a plain {name: tensor} dict in the names of `contrastive export`.

    Split BatchNorms (lightly.models.batchnorm.SplitBatchNorm keeps num_splits copies of the running statistics)
    are written with their collated statistics (the mean over the splits, what lightly uses in eval mode and
    what contrastive's SplitBatchNorm2d stores), i.e. in the shape of a plain BatchNorm2d."""
    was_training = model.training
    model.eval()  # SplitBatchNorm.train(False) collates its statistics
    state = model.state_dict()
    out = {}
    for name, t in state.items():
        t = t.detach().cpu().clone()
        if name.endswith(("running_mean", "running_var")):
            t = t[: state[name.rsplit(".", 1)[0] + ".weight"].numel()].clone()
        out[name] = t
    model.train(was_training)
    return out


def build_for_eval(meta):
    if meta.get("arch", "resnet18") != "resnet18":
        raise ValueError(f"arch {meta.get('arch')}: bench/peers compares resnet18 only")
    return CifarResNet18(width=int(meta["width"]), in_channels=int(meta.get("in_channels", 1)))


# ------------------------------------------------------------------------------------------------ files

def load_tensor_dict(path):
    """torch.load of a dict of tensors written by torch.save or by contrastive (torch::pickle_save).

    torch >= 2.6 loads with weights_only=True, whose allow-list lacks torch.jit._pickle.restore_type_tag, the
    type tag LibTorch's pickler puts around a c10::Dict; these files are ours, so the fallback is a full load."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 -- UnpicklingError for the type tag; anything else fails again below
        obj = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return dict(obj)


def save_backbone(model, path, meta):
    """path: torch.save(dict) of the backbone; path + '.json': metadata in the keys of `contrastive export`."""
    torch.save(backbone_state(model), path)
    with open(path + ".json", "w") as f:
        json.dump(dict({"arch": "resnet18", "in_channels": 1, "num_classes": 0}, **meta), f, indent=2)
        f.write("\n")


# ------------------------------------------------------------------------------------------------ seeds

def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
