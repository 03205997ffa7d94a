#!/usr/bin/env python3
"""bench/reference.py on a GPU and on CIFAR-format data: the Python side of bench/gpu/run.sh's comparison.

The training step is bench/reference.py's own (its CIFAR ResNet, SimCLR head and loss, SGD with the C++
defaults' learning rate and weight decay), imported from it; what this adds is what reference.py lacks for a GPU
run: a device (`--device cuda`: the networks and the loss on the GPU, bf16 autocast on that device with `--bf16`),
CIFAR-10 binary batches (`--dataset cifar10 --data DIR`, RGB 32x32), and the usual Python input pipeline for
them: torchvision's per-image PIL transforms (the C++ simclr-cifar preset: RandomResizedCrop(scale 0.2-1), flip,
ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8, RandomGrayscale 0.2, Normalize) in DataLoader worker processes,
pinned memory and non-blocking copies. Without torchvision it falls back to reference.py's PIL transforms
(grayscale data only). Timed the three ways of `contrastive bench` (end to end, model only, augmentation only;
the clock is read after a device synchronisation) and printed as one JSON line with bench's keys, plus the GPU's
peak allocated and reserved memory.

    reference_gpu.py --device cuda --dataset cifar10 --data DIR --width 64 --batch-size 512 --bf16 --channels-last
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import reference as ref  # noqa: E402  bench/reference.py

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def read_cifar10(path):
    rows = [np.fromfile(os.path.join(path, "data_batch_%d.bin" % i), dtype=np.uint8).reshape(-1, 3073)
            for i in range(1, 6)]
    r = np.concatenate(rows)
    return np.ascontiguousarray(r[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), r[:, 0].astype(np.int64)


def simclr_transform(size, colour):
    try:
        import torchvision.transforms as T
    except ImportError:
        if colour:
            sys.exit("reference_gpu.py: torchvision is needed for RGB data")
        return lambda img: ref.simclr_view(img, size), "reference.py PIL (grayscale)"
    mean, std = (CIFAR_MEAN, CIFAR_STD) if colour else ((ref.MEAN,), (ref.STD,))
    return T.Compose([
        T.RandomResizedCrop(size, scale=(0.2, 1.0)),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.ToTensor(),
        T.Normalize(mean, std),
    ]), "torchvision " + getattr(sys.modules.get("torchvision"), "__version__", "?")


class TwoViews(torch.utils.data.Dataset):
    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform
        self.mode = "RGB" if images.ndim == 4 else "L"

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i], mode=self.mode)
        return self.transform(img), self.transform(img), int(self.labels[i])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="simclr", choices=["simclr"])
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: torch's default)")
    p.add_argument("--workers", type=int, default=max(1, min(12, (os.cpu_count() or 2) - 2)),
                   help="DataLoader worker processes")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dataset", default="cifar10", choices=["cifar10", "fashion-mnist"])
    p.add_argument("--data", default="")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the networks (losses stay float32)")
    p.add_argument("--no-cudnn-benchmark", action="store_true", help="leave torch.backends.cudnn.benchmark off")
    p.add_argument("--profile", default="", help="Chrome trace of model-only steps (torch.profiler)")
    p.add_argument("--profile-steps", type=int, default=5)
    a = p.parse_args()
    if a.steps < 1 or a.warmup < 0 or a.width < 1 or a.batch_size < 1:
        sys.exit("reference_gpu.py: error: steps, width and batch size must be >= 1, warmup >= 0")

    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("reference_gpu.py: --device cuda but torch.cuda.is_available() is False")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if cuda:
        torch.backends.cudnn.benchmark = not a.no_cudnn_benchmark
    # reference.py's networks call reference.autocast(): make it this device's.
    ref.BF16 = a.bf16
    ref.autocast = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16)
    torch.manual_seed(0)
    ref.random.seed(0)

    if a.dataset == "cifar10":
        images, labels = read_cifar10(a.data)
    else:
        data = a.data or "/usr/share/datasets/fashion-mnist"
        images = ref.read_idx(os.path.join(data, "train-images-idx3-ubyte.gz"))
        labels = ref.read_idx(os.path.join(data, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    colour = images.ndim == 4
    channels, size = (3 if colour else 1), images.shape[1]
    transform, aug_impl = simclr_transform(size, colour)
    ds = TwoViews(images, labels, transform)

    model = ref.SimCLR(a.width, channels)
    lr, wd = 0.5 * a.batch_size / 1024, 1e-4  # the C++ defaults (reference.py's)
    mf = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(dev).to(memory_format=mf)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    model.train()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def step(v1, v2, y):
        v1 = v1.to(dev, non_blocking=True).contiguous(memory_format=mf)
        v2 = v2.to(dev, non_blocking=True).contiguous(memory_format=mf)
        loss = model.loss(v1, v2, y.to(dev, non_blocking=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    def loader(shuffle=True):
        kw = {}
        if a.workers > 0:
            kw = dict(persistent_workers=False, prefetch_factor=4, worker_init_fn=ref.seed_worker)
        return torch.utils.data.DataLoader(ds, batch_size=a.batch_size, shuffle=shuffle, drop_last=True,
                                           num_workers=a.workers, pin_memory=cuda, **kw)

    out = {"impl": "python", "method": a.method, "arch": "resnet18", "dataset": a.dataset, "device": str(dev),
           "width": a.width, "batch_size": a.batch_size, "steps": a.steps, "warmup": a.warmup,
           "threads": torch.get_num_threads(), "views": 2, "workers": a.workers,
           "channels_last": a.channels_last, "precision": "bf16" if a.bf16 else "fp32",
           "memory_format": "channels-last" if a.channels_last else "contiguous",
           "cudnn_benchmark": bool(cuda and not a.no_cudnn_benchmark), "augmentation": aug_impl,
           "torch": torch.__version__, "gpu": torch.cuda.get_device_name(dev) if cuda else ""}
    if len(ds) < a.batch_size:
        sys.exit("reference_gpu.py: --batch-size %d larger than the %d images" % (a.batch_size, len(ds)))

    # (a) End to end: DataLoader workers augment while the main process trains.
    it, done, n_img = iter(loader()), 0, 0
    t0 = time.perf_counter()
    while done < a.warmup + a.steps:
        try:
            v1, v2, y = next(it)
        except StopIteration:
            it = iter(loader())
            continue
        if done == a.warmup:
            sync()
            t0 = time.perf_counter()
        step(v1, v2, y)
        if done >= a.warmup:
            n_img += y.shape[0]
        done += 1
    sync()
    out["images_per_s"] = n_img / (time.perf_counter() - t0)
    del it

    # (b) Model only: four batches of views made once, on the device, reused in turn (as the C++ bench).
    fixed = []
    for v1, v2, y in torch.utils.data.DataLoader(ds, batch_size=a.batch_size, num_workers=0):
        fixed.append((v1.to(dev), v2.to(dev), y.to(dev)))
        if len(fixed) == 4:
            break
    for s in range(a.warmup):
        step(*fixed[s % len(fixed)])
    sync()
    t0 = time.perf_counter()
    for s in range(a.steps):
        step(*fixed[(a.warmup + s) % len(fixed)])
    sync()
    out["model_images_per_s"] = a.steps * a.batch_size / (time.perf_counter() - t0)
    if a.profile:  # after the timing, as `contrastive bench --profile`
        from torch.profiler import ProfilerActivity, profile
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=acts) as prof:
            for s in range(a.profile_steps):
                step(*fixed[s % len(fixed)])
            sync()
        prof.export_chrome_trace(a.profile)
        table = None
        for key in (["self_cuda_time_total", "self_device_time_total"] if cuda else []) + ["self_cpu_time_total"]:
            try:
                table = prof.key_averages().table(sort_by=key, row_limit=30)
                break
            except Exception:  # the key's name changed between torch versions
                continue
        with open(a.profile + ".txt", "w") as f:
            f.write("# %d model-only steps, batch %d\n%s\n" % (a.profile_steps, a.batch_size, table))

    # (c) Augmentation only, through the DataLoader and its workers.
    it, n_img = iter(loader()), 0
    next(it)
    t0 = time.perf_counter()
    for _ in range(min(a.steps, len(ds) // a.batch_size - 1)):
        n_img += next(it)[2].shape[0]
    out["augment_images_per_s"] = n_img / max(time.perf_counter() - t0, 1e-9)
    del it

    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if cuda:
        out["gpu_peak_allocated_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
        out["gpu_peak_reserved_mb"] = torch.cuda.max_memory_reserved(dev) / 2**20
    fwd = ref.forward_flops(model, torch.zeros(1, channels, size, size, device=dev))
    out["fwd_gflops_per_image"] = fwd / 1e9
    out["model_gflops_per_s"] = 3 * fwd * 2 * out["model_images_per_s"] / 1e9
    out["e2e_gflops_per_s"] = 3 * fwd * 2 * out["images_per_s"] / 1e9
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
