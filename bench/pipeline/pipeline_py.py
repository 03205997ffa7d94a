"""The Python data pipelines that bench/pipeline/run.sh sets ours against: a folder of images read, decoded and
turned into two augmented views per image by a DataLoader with worker processes, no model.

  torchvision: datasets.ImageFolder + PIL transforms (RandomResizedCrop, flip, ColorJitter, RandomGrayscale,
               ToTensor, Normalize), two views per image, as SupContrast's TwoCropTransform does.
  lightly:     lightly.data.LightlyDataset + lightly.transforms.SimCLRTransform (two views).

Prints one JSON line: images per second over the timed batches (after the warm-up batches, which include the
workers' start).
"""
import argparse
import json
import platform
import time

import torch
from torch.utils.data import DataLoader


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


class TwoViews:
    def __init__(self, t):
        self.t = t

    def __call__(self, x):
        return [self.t(x), self.t(x)]


def torchvision_dataset(root, size):
    from torchvision import datasets, transforms

    t = transforms.Compose([
        transforms.RandomResizedCrop(size, scale=(0.2, 1.0)),
        transforms.RandomHorizontalFlip(),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
    ])
    return datasets.ImageFolder(root, transform=TwoViews(t))


def lightly_dataset(root, size):
    from lightly.data import LightlyDataset
    from lightly.transforms import SimCLRTransform

    # CIFAR-sized inputs: no blur, as lightly's CIFAR examples; the crop scale as ours (0.2).
    t = SimCLRTransform(input_size=size, gaussian_blur=0.0, min_scale=0.2)
    return LightlyDataset(input_dir=root, transform=t)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--impl", choices=["torchvision", "lightly"], required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(1)
    ds = torchvision_dataset(a.data, a.size) if a.impl == "torchvision" else lightly_dataset(a.data, a.size)
    loader = DataLoader(ds, batch_size=a.batch, shuffle=True, drop_last=True, num_workers=a.workers,
                        persistent_workers=a.workers > 0)
    done = timed = 0
    t0 = time.perf_counter()
    while timed < a.batches:
        for _batch in loader:
            if done == a.warmup:
                t0 = time.perf_counter()
            if done >= a.warmup:
                timed += 1
            done += 1
            if timed >= a.batches:
                break
    secs = time.perf_counter() - t0
    print(json.dumps({"impl": a.impl, "images_per_s": round(timed * a.batch / secs, 1), "batches": timed,
                      "batch": a.batch, "size": a.size, "workers": a.workers, "images": len(ds),
                      "torch": torch.__version__, "cpu": cpu_name()}))


if __name__ == "__main__":
    main()
