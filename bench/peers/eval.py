#!/usr/bin/env python3
"""One evaluation for every side of the peer comparison (bench/peers): the same code scores the backbone that
`contrastive export` wrote and the one lightly_train.py wrote, so only the training differs.

  eval.py --state DIR/backbone.pt [--train-subset N] [--threads T] [--json]

* Features: the backbone in eval mode (BN running statistics), pooled layer4 output [N, 8w], of the first N
  training images (the bank / probe training set: the images the run trained on) and the 10,000 test images,
  normalised as in training (common.MEAN/STD), batches of 512.
* kNN top-1: contrastive's knn_top1 (src/eval/eval.cpp), i.e. the InstDisc weighted vote: cosine similarity to
  every bank feature, the k = 200 nearest, weights exp(sim / t) with t = 0.1 summed per class, argmax.
* Linear probe: contrastive's linear_probe with the CLI's defaults: features standardised with the bank's mean
  and (unbiased) std, a Linear(8w, 10) initialised N(0, 0.01) / bias 0, 30 epochs of SGD (lr 0.1, momentum 0.9,
  no weight decay, batch 256, cosine decay per step, seeded shuffles), test accuracy after every epoch; reports
  the best and the last.
Prints one JSON object.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


@torch.no_grad()
def extract(model, images, batch=512):
    model.eval()
    parts = []
    for s in range(0, len(images), batch):
        parts.append(model(common.normalize_batch(images[s:s + batch])).float())
    return torch.cat(parts)


@torch.no_grad()
def knn_top1(bank, bank_labels, query, query_labels, num_classes, k=200, t=0.1):
    bank = F.normalize(bank, dim=1)
    query = F.normalize(query, dim=1)
    k = min(k, bank.shape[0])
    correct = 0
    for s in range(0, query.shape[0], 1024):
        q = query[s:s + 1024]
        w, idx = (q @ bank.T).topk(k, dim=1)
        labels = bank_labels[idx]
        scores = torch.zeros(q.shape[0], num_classes).scatter_add_(1, labels, (w / t).exp())
        correct += (scores.argmax(1) == query_labels[s:s + 1024]).sum().item()
    return correct / max(1, query.shape[0])


def linear_probe(xtr, ytr, xte, yte, num_classes, epochs=30, lr=0.1, momentum=0.9, weight_decay=0.0,
                 batch=256, seed=0, val_fraction=0.1):
    """Returns (test top-1 at the epoch chosen on validation, that epoch (1-based), its validation top-1, best test
    top-1 of any epoch, last test top-1, per-epoch test top-1). Validation: a seeded share of the training
    features, held out of the probe's training (none with val_fraction 0: the last epoch is reported)."""
    xva = yva = None
    nval = min(int(val_fraction * xtr.shape[0]), xtr.shape[0] - 1)
    if nval > 0:
        perm = torch.randperm(xtr.shape[0], generator=torch.Generator().manual_seed(seed ^ 0x5EED))
        xva, yva = xtr[perm[:nval]], ytr[perm[:nval]]
        xtr, ytr = xtr[perm[nval:]], ytr[perm[nval:]]
    torch.manual_seed(seed)
    mean = xtr.mean(0, keepdim=True)
    std = xtr.std(0, unbiased=True, keepdim=True).clamp_min(1e-6)
    xtr = (xtr - mean) / std
    xte = (xte - mean) / std
    if xva is not None:
        xva = (xva - mean) / std
    fc = torch.nn.Linear(xtr.shape[1], num_classes)
    with torch.no_grad():
        fc.weight.normal_(0, 0.01)
        fc.bias.zero_()
    opt = torch.optim.SGD(fc.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    n = xtr.shape[0]
    total = math.ceil(n / batch) * epochs
    step, per_epoch = 0, []
    chosen, chosen_epoch, chosen_val = 0.0, 0, -1.0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, batch):
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            step += 1
            idx = perm[s:s + batch]
            loss = F.cross_entropy(fc(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            per_epoch.append((fc(xte).argmax(1) == yte).double().mean().item())
            v = (fc(xva).argmax(1) == yva).double().mean().item() if xva is not None else 0.0
        if xva is None or v > chosen_val:  # ties keep the earlier epoch
            chosen, chosen_epoch, chosen_val = per_epoch[-1], len(per_epoch), v
    return chosen, chosen_epoch, chosen_val, max(per_epoch), per_epoch[-1], per_epoch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state", required=True, help="backbone state dict (+ STATE.json with width)")
    ap.add_argument("--width", type=int, help="ResNet width (default: from STATE.json)")
    ap.add_argument("--data", default=common.FASHION_MNIST)
    ap.add_argument("--train-subset", type=int, default=0, help="bank = first N training images (0 = all)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    ap.add_argument("--knn-k", type=int, default=200)
    ap.add_argument("--knn-t", type=float, default=0.1)
    ap.add_argument("--linear-epochs", type=int, default=30)
    ap.add_argument("--linear-lr", type=float, default=0.1)
    ap.add_argument("--linear-weight-decay", type=float, default=0.0)
    ap.add_argument("--linear-val-fraction", type=float, default=0.1,
                    help="share of the bank held out to choose the probe's epoch (0: the last epoch)")
    ap.add_argument("--seed", type=int, default=0, help="probe seed")
    ap.add_argument("--json", action="store_true", help="one JSON line only (default: also a summary on stderr)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    meta = {}
    if os.path.exists(args.state + ".json"):
        with open(args.state + ".json") as f:
            meta = json.load(f)
    if args.width:
        meta["width"] = args.width
    if "width" not in meta:
        sys.exit(f"eval.py: {args.state}.json is missing; pass --width")
    model = common.build_for_eval(meta)
    state = common.load_tensor_dict(args.state)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # a classifier, if any, is not used
    model.load_state_dict(state, strict=True)

    xtr, ytr, xte, yte = common.load_fashion_mnist(args.data, args.train_subset)
    ytr, yte = torch.from_numpy(ytr), torch.from_numpy(yte)
    ftr, fte = extract(model, xtr), extract(model, xte)
    knn = knn_top1(ftr, ytr, fte, yte, 10, args.knn_k, args.knn_t)
    top1, epoch, val_top1, best, last, per_epoch = linear_probe(
        ftr, ytr, fte, yte, 10, args.linear_epochs, args.linear_lr, weight_decay=args.linear_weight_decay,
        seed=args.seed, val_fraction=args.linear_val_fraction)
    out = {"state": args.state, "knn_top1": knn, "knn_k": args.knn_k, "knn_t": args.knn_t,
           "linear_top1": top1, "linear_epoch": epoch, "linear_val_top1": val_top1,
           "linear_val_fraction": args.linear_val_fraction, "linear_top1_best": best, "linear_top1_last": last, "linear_epochs": args.linear_epochs,
           "linear_lr": args.linear_lr, "bank_size": int(ftr.shape[0]), "test_size": int(fte.shape[0]),
           "feature_dim": int(ftr.shape[1]), "eval_seconds": round(time.time() - t0, 2)}
    if not args.json:
        print(f"kNN top-1 {100 * knn:.2f}%, linear top-1 {100 * top1:.2f}% (epoch {epoch}, chosen on validation; "
              f"best of any epoch {100 * best:.2f}%, last {100 * last:.2f}%)", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
