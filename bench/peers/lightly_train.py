#!/usr/bin/env python3
"""Trains SimCLR, MoCo v2, BYOL or SimSiam with lightly's own implementation on the data, backbone and budget
of `contrastive train --method M` (bench/peers/README.md lists what is held identical and what is not).

  lightly_train.py --method simclr|moco|byol|simsiam --train-subset N --epochs E --batch-size B --width W
                   --seed S --threads T [--workers K] --out DIR

From lightly (public API only): the heads (SimCLRProjectionHead, MoCoProjectionHead, BYOLProjectionHead /
BYOLPredictionHead, SimSiamProjectionHead / SimSiamPredictionHead), the losses (NTXentLoss, NTXentLoss with a
memory bank for MoCo, NegativeCosineSimilarity), lightly.models.utils (deactivate_requires_grad, update_momentum,
batch_shuffle / batch_unshuffle), lightly.utils.scheduler.cosine_schedule, lightly.models.batchnorm.SplitBatchNorm
and the SimCLRTransform. The training steps follow lightly's examples (examples/pytorch/<method>.py; MoCo as in
lightly's CIFAR-10 benchmark, which has the shuffle / split BN of the MoCo CIFAR recipe that contrastive follows).

Writes DIR/backbone.pt (+ .json): the backbone state dict in the names of `contrastive export`, which
bench/peers/eval.py scores; DIR/train.json: throughput, seconds, losses, hyperparameters and versions.
"""
import argparse
import copy
import json
import math
import os
import platform
import sys
import time

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torch import nn

import lightly
from lightly.loss import NegativeCosineSimilarity, NTXentLoss
from lightly.models.batchnorm import SplitBatchNorm
from lightly.models.modules import (BYOLPredictionHead, BYOLProjectionHead, MoCoProjectionHead,
                                    SimCLRProjectionHead, SimSiamPredictionHead, SimSiamProjectionHead)
from lightly.models.utils import batch_shuffle, batch_unshuffle, deactivate_requires_grad, update_momentum
from lightly.transforms import SimCLRTransform
from lightly.utils.scheduler import cosine_schedule

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

METHODS = ("simclr", "moco", "byol", "simsiam")


# ------------------------------------------------------------------------------------------------ recipes

def recipe(method, batch_size):
    """contrastive's defaults for the method (src/core/config.cpp resolve_defaults, one process): the reference
    learning rate scaled linearly to the batch, SGD momentum 0.9, cosine decay per step to 0, no warm-up."""
    bs = batch_size
    if method == "simclr":
        # SupContrast/SimCLR CIFAR: lr 0.5 at 1024, wd 1e-4, T 0.5; head d -> d -> 128, no BN (contrastive's
        # default head; lightly's SimCLRProjectionHead with batch_norm=False builds exactly that). loss_scale
        # T / T_base = 0.5 / 0.07: see train_step.
        return dict(lr=0.5 * bs / 1024, weight_decay=1e-4, temperature=0.5, base_temperature=0.07,
                    loss_scale=0.5 / 0.07, proj_hidden=None, proj_dim=128)
    if method == "moco":
        # MoCo CIFAR colab: lr 0.06 at 512, wd 5e-4, T 0.1, K 4096, m 0.99 (constant), 8 BN splits + batch
        # shuffle for the key encoder, full batches only.
        return dict(lr=0.06 * bs / 512, weight_decay=5e-4, temperature=0.1, queue_size=4096, momentum_ema=0.99,
                    bn_splits=8, proj_dim=128, drop_last=True)
    if method == "byol":
        # ContrastiveCrop CIFAR: lr 0.5 at 512, wd 1e-4, tau 0.996 -> 1 (cosine per step), projector d -> 512
        # -> 128, predictor 128 -> 512 -> 128. loss_scale 4: see train_step.
        return dict(lr=0.5 * bs / 512, weight_decay=1e-4, momentum_ema=0.996, proj_hidden=512, proj_dim=128,
                    pred_hidden=512, loss_scale=4.0)
    if method == "simsiam":
        # SimSiam CIFAR appendix: lr 0.03 * bs / 256, wd 5e-4, projector d -> d -> 512 (3 layers, last BN without
        # affine), predictor 512 -> 128 -> 512, zero-init residual, predictor lr not fixed.
        return dict(lr=0.03 * bs / 256, weight_decay=5e-4, proj_dim=512, pred_hidden=128, zero_init_residual=True)
    raise ValueError(method)


class Model(nn.Module):
    """The networks of one method; parameters with requires_grad are the ones trained."""

    def __init__(self, method, width, hp, in_channels=1):
        super().__init__()
        self.method = method
        d = 8 * width
        norm = nn.BatchNorm2d
        if hp.get("bn_splits", 1) > 1:
            splits = hp["bn_splits"]
            norm = lambda c: SplitBatchNorm(c, splits)  # noqa: E731 -- lightly's single-device shuffle-BN
        self.backbone = common.CifarResNet18(width, in_channels, hp.get("zero_init_residual", False), norm)
        if method == "simclr":
            self.head = SimCLRProjectionHead(d, hp["proj_hidden"] or d, hp["proj_dim"], batch_norm=False)
        elif method == "moco":
            self.head = MoCoProjectionHead(d, d, hp["proj_dim"])
        elif method == "byol":
            self.head = BYOLProjectionHead(d, hp["proj_hidden"], hp["proj_dim"])
            self.predictor = BYOLPredictionHead(hp["proj_dim"], hp["pred_hidden"], hp["proj_dim"])
        elif method == "simsiam":
            self.head = SimSiamProjectionHead(d, d, hp["proj_dim"])
            self.predictor = SimSiamPredictionHead(hp["proj_dim"], hp["pred_hidden"], hp["proj_dim"])
        if method in ("moco", "byol"):
            self.backbone_momentum = copy.deepcopy(self.backbone)
            self.head_momentum = copy.deepcopy(self.head)
            deactivate_requires_grad(self.backbone_momentum)
            deactivate_requires_grad(self.head_momentum)


def make_criterion(method, hp):
    if method == "simclr":
        return NTXentLoss(temperature=hp["temperature"])
    if method == "moco":
        return NTXentLoss(temperature=hp["temperature"], memory_bank_size=(hp["queue_size"], hp["proj_dim"]))
    return NegativeCosineSimilarity()


def train_step(model, criterion, hp, x0, x1, step, total_steps):
    """One step's loss, written as lightly's examples write it."""
    m = model
    if m.method == "simclr":
        if hp.get("joint_forward"):  # --joint-forward: both views in one batch, as contrastive does
            z0, z1 = m.head(m.backbone(torch.cat([x0, x1]))).chunk(2)
        else:  # examples/pytorch/simclr.py: one forward per view
            z0, z1 = m.head(m.backbone(x0)), m.head(m.backbone(x1))
        # contrastive's SimCLR is the SupContrast reference's: the SupCon loss without labels, scaled by
        # T / T_base = 0.5 / 0.07; lightly's NTXentLoss is that loss without the factor (tests/test_peer_parity.cpp).
        # The factor makes the update the same for the same lr (--loss-scale 1 trains with lightly's scale).
        return hp["loss_scale"] * criterion(z0, z1)
    if m.method == "moco":
        # lightly's CIFAR-10 benchmark MocoModel: momentum update, query, key of the shuffled batch (one direction).
        update_momentum(m.backbone, m.backbone_momentum, hp["momentum_ema"])
        update_momentum(m.head, m.head_momentum, hp["momentum_ema"])
        q = m.head(m.backbone(x0))
        x1s, shuffle = batch_shuffle(x1)
        k = batch_unshuffle(m.head_momentum(m.backbone_momentum(x1s)).detach(), shuffle)
        return criterion(q, k)
    if m.method == "byol":
        # examples/pytorch/byol.py, with the momentum scheduled per step (contrastive's schedule is per step).
        tau = cosine_schedule(step, total_steps, hp["momentum_ema"], 1.0)
        update_momentum(m.backbone, m.backbone_momentum, tau)
        update_momentum(m.head, m.head_momentum, tau)
        p0 = m.predictor(m.head(m.backbone(x0)))
        z0 = m.head_momentum(m.backbone_momentum(x0)).detach()
        p1 = m.predictor(m.head(m.backbone(x1)))
        z1 = m.head_momentum(m.backbone_momentum(x1)).detach()
        loss = 0.5 * (criterion(p0, z1) + criterion(p1, z0))
        # lightly's BYOL loss is -(cos1 + cos2)/2; contrastive's (the BYOL paper's) is (2 - 2cos1) + (2 - 2cos2) =
        # 4 + 4 * lightly's: the same minimiser with 4x the gradient. Scaling by 4 makes the SGD update, and so the
        # training, the same for the same lr and weight decay (--loss-scale 1 trains with lightly's scale).
        return hp["loss_scale"] * loss
    # examples/pytorch/simsiam.py: z detached, symmetric.
    z0 = m.head(m.backbone(x0))
    z1 = m.head(m.backbone(x1))
    p0, p1 = m.predictor(z0), m.predictor(z1)
    return 0.5 * (criterion(z0.detach(), p1) + criterion(z1.detach(), p0))


# ------------------------------------------------------------------------------------------------ data

class FashionMNISTViews(torch.utils.data.Dataset):
    """The first N Fashion-MNIST training images as PIL 'L' images through a lightly multi-view transform."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i], mode="L")), int(self.labels[i]), i


def make_folder_transform(size, mean, std):
    # The same simclr-cifar recipe on an RGB folder (`contrastive train --dataset folder --image-size S`): the
    # saturation and hue jitter and the grayscale draw now act, as they do in contrastive's preset on 3 channels.
    return SimCLRTransform(input_size=size, cj_prob=0.8, cj_strength=0.5, min_scale=0.2, random_gray_scale=0.2,
                           gaussian_blur=0.0, hf_prob=0.5, vf_prob=0.0, rr_prob=0.0,
                           normalize={"mean": mean, "std": std})


def make_transform():
    # contrastive's simclr-cifar preset on 1-channel 28x28 images (src/augment/presets.cpp): RandomResizedCrop(28,
    # scale 0.2..1, ratio 3/4..4/3, bilinear), horizontal flip 0.5, ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8
    # (saturation and hue are identities on a grayscale image, contrastive skips them), RandomGrayscale 0.2
    # (identity on grayscale), no blur, Normalize(0.2860, 0.3530). cj_strength 0.5 scales lightly's default
    # (0.8, 0.8, 0.8, 0.2) to exactly (0.4, 0.4, 0.4, 0.1).
    return SimCLRTransform(input_size=28, cj_prob=0.8, cj_strength=0.5, min_scale=0.2, random_gray_scale=0.2,
                           gaussian_blur=0.0, hf_prob=0.5, vf_prob=0.0, rr_prob=0.0,
                           normalize={"mean": [common.MEAN], "std": [common.STD]})


# ------------------------------------------------------------------------------------------------ main

def versions():
    return {"lightly": lightly.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "pillow": PIL.__version__, "python": platform.python_version()}


def main():
    t_start = time.time()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", required=True, choices=METHODS)
    ap.add_argument("--train-subset", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (augmentation)")
    ap.add_argument("--data", default=common.FASHION_MNIST)
    ap.add_argument("--lr", type=float, help="override the recipe's (batch-scaled) learning rate")
    ap.add_argument("--loss-scale", type=float,
                    help="SimCLR / BYOL: factor on lightly's loss (default 0.5/0.07 / 4: contrastive's scale)")
    ap.add_argument("--joint-forward", action="store_true",
                    help="SimCLR: one forward over both views (contrastive's way) instead of one per view")
    ap.add_argument("--channels-last", action="store_true",
                    help="model and views in channels-last (NHWC), oneDNN's faster layout on CPU; not in lightly's "
                         "examples, which run NCHW")
    ap.add_argument("--bf16", action="store_true",
                    help="bf16 autocast for the forward passes (torch.autocast('cpu')); the loss is computed in "
                         "float32 as autocast chooses")
    ap.add_argument("--folder", help="train on an image folder (lightly's LightlyDataset, RGB) instead of "
                                     "Fashion-MNIST; --train-subset is then ignored")
    ap.add_argument("--image-size", type=int, default=32, help="--folder: the crop size")
    ap.add_argument("--mean", type=float, nargs=3, default=[0.5, 0.5, 0.5], help="--folder: normalisation mean")
    ap.add_argument("--std", type=float, nargs=3, default=[0.25, 0.25, 0.25], help="--folder: normalisation std")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke tests)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    common.seed_everything(args.seed)
    os.makedirs(args.out, exist_ok=True)

    hp = recipe(args.method, args.batch_size)
    if args.lr is not None:
        hp["lr"] = args.lr
    if args.loss_scale is not None:
        if "loss_scale" not in hp:
            sys.exit(f"lightly_train.py: --loss-scale is for simclr and byol, not {args.method}")
        hp["loss_scale"] = args.loss_scale
    if args.channels_last and hp.get("bn_splits", 1) > 1:
        # lightly 1.6.0's SplitBatchNorm (lightly/models/batchnorm.py) folds the splits into channels with .view,
        # which an NHWC tensor cannot take ("view size is not compatible with input tensor's size and stride").
        print(f"lightly_train.py: --channels-last: lightly's SplitBatchNorm, which {args.method} uses, cannot take "
              "channels-last input (it reshapes with .view); run it without --channels-last", file=sys.stderr)
        sys.exit(2)
    if args.joint_forward:
        if args.method != "simclr":
            sys.exit("lightly_train.py: --joint-forward is for simclr")
        hp["joint_forward"] = True
    in_channels = 1
    if args.folder:
        from lightly.data import LightlyDataset
        data = LightlyDataset(input_dir=args.folder,
                              transform=make_folder_transform(args.image_size, args.mean, args.std))
        in_channels = 3
    else:
        xtr, ytr, _, _ = common.load_fashion_mnist(args.data, args.train_subset)
        data = FashionMNISTViews(xtr, ytr, make_transform())
    loader = torch.utils.data.DataLoader(
        data, batch_size=args.batch_size, shuffle=True, drop_last=hp.get("drop_last", False),
        num_workers=args.workers, persistent_workers=args.workers > 0,
        generator=torch.Generator().manual_seed(args.seed))
    if len(loader) == 0:
        sys.exit(f"lightly_train.py: no full batch of {args.batch_size} in {len(data)} images")

    model = Model(args.method, args.width, hp, in_channels)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    criterion = make_criterion(args.method, hp)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=hp["lr"], momentum=0.9, weight_decay=hp["weight_decay"])
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * args.epochs
    print(f"lightly {lightly.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.workers} workers: {args.method} on {len(data)} images, {args.epochs} epochs x "
          f"{steps_per_epoch} steps, batch {args.batch_size}, {hp}", flush=True)

    model.train()
    step, per_epoch, stop = 0, [], False
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        loss_sum, images = 0.0, 0
        for (x0, x1), _, _ in loader:
            # .to() copies into NHWC strides even for 1-channel images (.contiguous() would keep them NCHW).
            x0, x1 = x0.to(memory_format=layout), x1.to(memory_format=layout)
            # contrastive's scheduled_lr: base * 0.5 * (1 + cos(pi * global_step / total_steps)), set per step.
            for g in opt.param_groups:
                g["lr"] = hp["lr"] * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                loss = train_step(model, criterion, hp, x0, x1, step, total_steps)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if not math.isfinite(loss.item()):
                sys.exit(f"lightly_train.py: non-finite loss at epoch {epoch + 1}, step {step}")
            loss_sum += loss.item() * x0.shape[0]
            images += x0.shape[0]
            step += 1
            if args.max_steps and step >= args.max_steps:
                stop = True
                break
        seconds = time.perf_counter() - t0
        per_epoch.append({"epoch": epoch + 1, "loss": loss_sum / max(1, images), "images": images,
                          "seconds": seconds, "images_per_s": images / seconds if seconds > 0 else 0.0})
        print(f"epoch {epoch + 1}/{args.epochs}: loss {per_epoch[-1]['loss']:.4f}, "
              f"{per_epoch[-1]['images_per_s']:.0f} img/s", flush=True)
        if stop:
            break

    model = model.to(memory_format=torch.contiguous_format)
    common.save_backbone(model.backbone, os.path.join(args.out, "backbone.pt"),
                         {"width": args.width, "method": args.method, "side": "lightly"})
    train_seconds = sum(e["seconds"] for e in per_epoch)
    images = sum(e["images"] for e in per_epoch)
    record = {"side": "lightly", "method": args.method, "train_subset": len(data), "epochs": args.epochs,
              "batch_size": args.batch_size, "width": args.width, "seed": args.seed,
              "threads": torch.get_num_threads(), "workers": args.workers,
              "memory_format": "channels-last" if args.channels_last else "contiguous",
              "precision": "bf16" if args.bf16 else "fp32", "folder": args.folder, "steps": step, "images": images,
              "train_seconds": train_seconds, "images_per_s": images / train_seconds if train_seconds else 0.0,
              "wall_seconds": time.time() - t_start, "hyperparameters": hp, "per_epoch": per_epoch,
              "versions": versions(), "argv": sys.argv}
    with open(os.path.join(args.out, "train.json"), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    print(f"done: {record['images_per_s']:.0f} img/s over {train_seconds:.1f} s; wrote {args.out}/backbone.pt")


if __name__ == "__main__":
    main()
