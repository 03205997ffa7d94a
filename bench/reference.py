#!/usr/bin/python3
"""Python PyTorch reference for `contrastive bench`: the same training step written the usual Python way
(per-image PIL augmentation in DataLoader worker processes, one forward over the concatenated views), timed the
same three ways. Prints one JSON line with the keys of `contrastive bench --json`.

Run with Debian's interpreter (/usr/bin/python3: torch 1.13, numpy, PIL). torchvision is not installed, so the
transforms below are written with PIL directly, following torchvision's PIL code paths (ImageEnhance for the
colour jitter, crop + bilinear resize for RandomResizedCrop) so that the work per image is comparable.
"""
import argparse
import gzip
import json
import math
import os
import random
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageOps

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST, as in the C++ default_normalization
BF16 = False  # --bf16: the networks run under CPU bf16 autocast, the losses in float32 (as the C++ --bf16)


def autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=BF16)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


# ---------------------------------------------------------------- augmentation (PIL, one image at a time)

def to_tensor(img):
    a = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(0)  # grayscale: [1,H,W]


def normalize(t):
    return (t - MEAN) / STD


def rrc_params(w, h, scale, ratio=(3.0 / 4.0, 4.0 / 3.0)):
    # torchvision's RandomResizedCrop sampling: 10 tries of area and log-uniform aspect, else a centre crop.
    area = w * h
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * random.uniform(*scale)
        ar = math.exp(random.uniform(*log_ratio))
        cw = int(round(math.sqrt(target * ar)))
        ch = int(round(math.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            return random.randint(0, h - ch), random.randint(0, w - cw), ch, cw
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def random_resized_crop(img, size, scale):
    i, j, h, w = rrc_params(img.width, img.height, scale)
    return img.resize((size, size), Image.BILINEAR, box=(j, i, j + w, i + h))


def hflip(img, p=0.5):
    return img.transpose(Image.FLIP_LEFT_RIGHT) if random.random() < p else img


def jitter_gray(img, b=0.4, c=0.4, p=0.8):
    # ColorJitter(0.4, 0.4, ...) on a grayscale image: brightness and contrast in random order.
    if random.random() >= p:
        return img
    ops = [lambda im: ImageEnhance.Brightness(im).enhance(random.uniform(1 - b, 1 + b)),
           lambda im: ImageEnhance.Contrast(im).enhance(random.uniform(1 - c, 1 + c))]
    random.shuffle(ops)
    for op in ops:
        img = op(img)
    return img


def random_crop_pad(img, pad, fill):
    size = img.width
    img = ImageOps.expand(img, border=pad, fill=fill)
    i, j = random.randint(0, 2 * pad), random.randint(0, 2 * pad)
    return img.crop((j, i, j + size, i + size))


def cutout(t, hole):
    # One square hole (zeros in [0,1] space), centre anywhere, clipped at the borders.
    _, h, w = t.shape
    y, x = random.randrange(h), random.randrange(w)
    y0, y1 = max(0, y - hole // 2), min(h, y + hole // 2)
    x0, x1 = max(0, x - hole // 2), min(w, x + hole // 2)
    t[:, y0:y1, x0:x1] = 0
    return t


def simclr_view(img, size):
    img = jitter_gray(hflip(random_resized_crop(img, size, (0.2, 1.0))))
    return normalize(to_tensor(img))


def cds_views(img):
    size = img.width
    hole = int(round(16 * size / 32))
    v1 = hflip(random_crop_pad(img, 4, 128))
    v1 = normalize(cutout(to_tensor(v1), hole))
    v2 = jitter_gray(hflip(random_crop_pad(img, 4, 0)))
    return v1, normalize(to_tensor(v2))


class TwoViews(torch.utils.data.Dataset):
    def __init__(self, images, labels, method):
        self.images, self.labels, self.method = images, labels, method

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i], mode="L")
        if self.method == "cds":
            v1, v2 = cds_views(img)
        else:
            v1, v2 = simclr_view(img, img.width), simclr_view(img, img.width)
        return v1, v2, int(self.labels[i]), i


def seed_worker(worker_id):
    random.seed(torch.initial_seed() % 2**32 + worker_id)


# ---------------------------------------------------------------- networks

class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class CifarResNet(nn.Module):
    """CIFAR ResNet: 3x3 stride-1 stem, no max-pool, BasicBlock stages with strides 1/2/2/2."""

    def __init__(self, blocks, width, in_channels, num_classes=0):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin, self.channels = width, []
        for s, (n, stride) in enumerate(zip(blocks, (1, 2, 2, 2))):
            planes = width * 2 ** s
            layer = []
            for b in range(n):
                layer.append(BasicBlock(cin, planes, stride if b == 0 else 1))
                cin = planes
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*layer))
            self.channels.append(planes)
        self.fc = nn.Linear(cin, num_classes) if num_classes else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def stages(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        out = []
        for l in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = l(x)
            out.append(x)
        return out

    def features(self, x):
        return self.stages(x)[3].mean((2, 3))


def sep_conv(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False), nn.Conv2d(cin, cin, 1, bias=False),
        nn.BatchNorm2d(cin), nn.ReLU(),
        nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU())


def supcon_loss(features, labels=None, temperature=0.07, base_temperature=0.07):
    """SupCon, contrast mode 'all'; labels None gives SimCLR's NT-Xent. features: [B, V, D], normalised."""
    b, v = features.shape[:2]
    if labels is None:
        mask = torch.eye(b, device=features.device)
    else:
        labels = labels.view(-1, 1)
        mask = (labels == labels.T).float()
    contrast = torch.cat(torch.unbind(features, dim=1), dim=0)  # [V*B, D] view-major
    logits = contrast @ contrast.T / temperature
    logits = logits - logits.max(dim=1, keepdim=True)[0].detach()
    mask = mask.repeat(v, v)
    not_self = 1 - torch.eye(b * v, device=features.device)
    mask = mask * not_self
    exp = torch.exp(logits) * not_self
    log_prob = logits - torch.log(exp.sum(1, keepdim=True))
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask.sum(1)
    return -(temperature / base_temperature) * mean_log_prob_pos.mean()


class SimCLR(nn.Module):
    def __init__(self, width, in_channels):
        super().__init__()
        self.net = CifarResNet((2, 2, 2, 2), width, in_channels)
        d = self.net.channels[3]
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 128))

    def loss(self, v1, v2, labels):
        b = v1.shape[0]
        with autocast():
            h = self.head(self.net.features(torch.cat([v1, v2])))
        z = F.normalize(h.float(), dim=1)
        return supcon_loss(torch.stack([z[:b], z[b:]], 1), None, 0.5, 0.07)


class CDS(nn.Module):
    def __init__(self, width, in_channels, num_classes):
        super().__init__()
        self.net = CifarResNet((2, 2, 2, 2), width, in_channels, num_classes)
        ch = self.net.channels
        self.aux = nn.ModuleList(nn.Sequential(*[sep_conv(ch[i], ch[i + 1]) for i in range(l, 3)]) for l in range(3))

    def loss(self, v1, v2, labels):
        b = v1.shape[0]
        with autocast():
            stages = self.net.stages(torch.cat([v1, v2]))
            emb = [self.aux[l](stages[l]).mean((2, 3)) for l in range(3)] + [stages[3].mean((2, 3))]
            logits = self.net.fc(emb[3])[:b]
        emb = [e.float() for e in emb]
        total = F.cross_entropy(logits.float(), labels)
        for e in emb:
            e = F.normalize(e, dim=1)
            total = total + 0.1 * supcon_loss(torch.stack([e[:b], e[b:]], 1), labels, 0.07, 0.07)
        return total


def forward_flops(model, x):
    """2 x multiply-adds of every Conv2d and Linear for one image, from the output shapes seen by hooks."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            total[0] += 2 * k * out.numel() // out.shape[0]
        elif isinstance(m, nn.Linear):
            total[0] += 2 * m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()
        if isinstance(model, CDS):
            stages = model.net.stages(x)
            for l in range(3):
                model.aux[l](stages[l])
            model.net.fc(stages[3].mean((2, 3)))
        else:
            model.head(model.net.features(x))
        model.train()
    for h in handles:
        h.remove()
    return total[0]


def measure_gemm_gflops(n, reps=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        rates.append(2.0 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return sorted(rates)[len(rates) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="simclr", choices=["simclr", "cds"])
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--peak-size", type=int, default=2048)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--profile", default="", help="Chrome trace of the model-only steps (profile_compare.py)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the networks (losses stay float32)")
    a = p.parse_args()
    global BF16
    BF16 = a.bf16
    if a.steps < 1 or a.warmup < 0 or a.width < 1 or a.batch_size < 1:
        sys.exit("reference.py: error: steps, width and batch size must be >= 1, warmup >= 0")

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    random.seed(0)
    images = read_idx(os.path.join(a.data, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(a.data, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    ds = TwoViews(images, labels, a.method)
    model = SimCLR(a.width, 1) if a.method == "simclr" else CDS(a.width, 1, 10)
    # Learning rate and weight decay of the C++ defaults (linear scaling from the reference recipes).
    if a.method == "simclr":
        lr, wd = 0.5 * a.batch_size / 1024, 1e-4
    else:
        lr, wd = 0.1 * a.batch_size / 128, 5e-4
    mf = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=mf)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    model.train()

    def step(v1, v2, y):
        loss = model.loss(v1.to(memory_format=mf), v2.to(memory_format=mf), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    def loader():
        return torch.utils.data.DataLoader(ds, batch_size=a.batch_size, shuffle=True, drop_last=True,
                                           num_workers=a.workers, worker_init_fn=seed_worker,
                                           persistent_workers=False)

    out = {"method": a.method, "arch": "resnet18", "dataset": "fashion-mnist", "device": "cpu", "width": a.width,
           "batch_size": a.batch_size, "steps": a.steps, "warmup": a.warmup, "threads": a.threads, "views": 2,
           "workers": a.workers, "channels_last": a.channels_last, "precision": "bf16" if a.bf16 else "fp32",
           "memory_format": "channels-last" if a.channels_last else "contiguous", "impl": "python"}

    # (a) End to end: DataLoader workers augment while the main process trains.
    it, done, n_img = iter(loader()), 0, 0
    t0 = time.perf_counter()
    while done < a.warmup + a.steps:
        try:
            v1, v2, y, _ = next(it)
        except StopIteration:
            it = iter(loader())
            continue
        if done == a.warmup:
            t0 = time.perf_counter()
        step(v1, v2, y)
        if done >= a.warmup:
            n_img += y.shape[0]
        done += 1
    out["images_per_s"] = n_img / (time.perf_counter() - t0)
    del it

    # (b) Model only: four batches of views made once and reused in turn (as the C++ bench).
    fixed = []
    for b in torch.utils.data.DataLoader(ds, batch_size=a.batch_size, num_workers=0):
        fixed.append(b[:3])
        if len(fixed) == 4:
            break
    for s in range(a.warmup):
        step(*fixed[s % len(fixed)])
    t0 = time.perf_counter()
    for s in range(a.steps):
        step(*fixed[(a.warmup + s) % len(fixed)])
    out["model_images_per_s"] = a.steps * a.batch_size / (time.perf_counter() - t0)
    if a.profile:  # after the timing, as `contrastive bench --profile`
        with torch.autograd.profiler.profile() as prof:
            for s in range(a.steps):
                step(*fixed[(a.warmup + a.steps + s) % len(fixed)])
        prof.export_chrome_trace(a.profile)

    # (c) Augmentation only, through the DataLoader and its workers (both cores, as the C++ measurement).
    it, n_img = iter(loader()), 0
    next(it)
    t0 = time.perf_counter()
    for _ in range(a.steps):
        n_img += next(it)[2].shape[0]
    out["augment_images_per_s"] = n_img / (time.perf_counter() - t0)
    del it
    # ... and in this process alone (one core, no worker start-up or batch transfer).
    t0 = time.perf_counter()
    n = min(len(ds), a.steps * a.batch_size // 4)
    for i in range(n):
        ds[i]
    out["augment_single_process_images_per_s"] = n / (time.perf_counter() - t0)

    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    # Workers have exited by now: RUSAGE_CHILDREN holds the largest one (shared copy-on-write pages included).
    out["worker_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0

    fwd = forward_flops(model, torch.zeros(1, 1, images.shape[1], images.shape[2]))
    out["fwd_gflops_per_image"] = fwd / 1e9
    out["model_gflops_per_s"] = 3 * fwd * 2 * out["model_images_per_s"] / 1e9
    out["e2e_gflops_per_s"] = 3 * fwd * 2 * out["images_per_s"] / 1e9
    if a.peak_size > 0:
        out["peak_gflops_measured"] = measure_gemm_gflops(a.peak_size)
        out["fraction_of_peak"] = out["model_gflops_per_s"] / out["peak_gflops_measured"]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
