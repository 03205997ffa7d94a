#!/usr/bin/env python3
"""Bookkeeping of bench/peers/run.sh: one result line per (method, side, seed, budget), and the markdown tables.

  report.py key --method M --side S --seed N --train-subset N --epochs E --batch-size B --width W --threads T
                [--flags STR]                  print the key (JSON) of one run
  report.py has RESULTS --key JSON             exit 0 when a line with these key fields exists
  report.py record --dir DIR --side S --key JSON --command CMD --cpu CPU   print the result line of a finished run
  report.py table RESULTS --key JSON           markdown: one table per method (lightly | solo-learn | contrastive)
"""
import argparse
import datetime
import json
import os
import re
import statistics
import sys

GOAL_ACCURACY_POINTS = 0.5   # ours >= lightly - 0.5 points (kNN and linear)
GOAL_SPEEDUP = 1.5           # our training images/s >= 1.5 x lightly's


def read_lines(path):
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


def matches(rec, key):
    return all(rec.get(k) == v for k, v in key.items())


def time_v(path):
    """Peak RSS (MB) and wall seconds from a `/usr/bin/time -v` report."""
    text = open(path).read()
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    seconds = None
    if wall:
        parts = [float(p) for p in wall.group(1).split(":")]
        seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return (int(rss.group(1)) / 1024 if rss else None), seconds


def ours_numerics(config_yaml):
    """(precision, memory_format) that a contrastive run resolved, from RUN_DIR/config.yaml (train section);
    binaries before `--precision` have only the bf16 / channels_last booleans."""
    text = open(config_yaml).read()
    def value(name):
        m = re.search(rf"^\s+{name}:\s*\"?([^\"\n]*)\"?\s*$", text, re.M)
        return m.group(1).strip() if m else None
    precision = value("precision") or ("bf16" if value("bf16") == "true" else "fp32")
    memory = value("memory_format") or ("channels-last" if value("channels_last") == "true" else "contiguous")
    return precision, memory


def training_figures(run_dir, side):
    """(images, train_seconds, versions, workers, precision, memory_format) of a finished training run."""
    if side == "lightly":
        with open(os.path.join(run_dir, "train.json")) as f:
            t = json.load(f)
        return (t["images"], t["train_seconds"], t["versions"], t.get("workers"), "fp32",
                t.get("memory_format", "contiguous"))
    images, seconds = 0.0, 0.0
    for e in read_lines(os.path.join(run_dir, "run", "metrics.jsonl")):
        images += e["images_per_s"] * e["train_seconds"]
        seconds += e["train_seconds"]
    precision, memory = ours_numerics(os.path.join(run_dir, "run", "config.yaml"))
    return round(images), seconds, {"contrastive": "build/contrastive"}, None, precision, memory


def cmd_record(args):
    key = json.loads(args.key)
    images, seconds, versions, workers, precision, memory = training_figures(args.dir, args.side)
    rss_mb, wall = time_v(os.path.join(args.dir, "time.txt"))
    with open(os.path.join(args.dir, "eval.json")) as f:
        ev = json.load(f)
    rec = dict(key)
    rec.update({
        "knn_top1": ev["knn_top1"], "linear_top1": ev.get("linear_top1"), "linear_epoch": ev.get("linear_epoch"),
        "linear_top1_best": ev["linear_top1_best"],
        "linear_top1_last": ev["linear_top1_last"], "images": images, "train_seconds": seconds,
        "images_per_s": images / seconds if seconds else 0.0, "process_wall_seconds": wall,
        "peak_rss_mb": rss_mb, "workers": workers, "precision": precision, "memory_format": memory,
        "versions": versions, "command": args.command,
        "cpu": args.cpu, "dir": args.dir, "date": datetime.datetime.now().isoformat(timespec="seconds")})
    print(json.dumps(rec))
    print(f"   {rec['method']} / {rec['side']}: kNN {100 * rec['knn_top1']:.2f}%, "
          f"linear {100 * lin_top1(rec):.2f}% (epoch chosen on validation), "
          f"{rec['images_per_s']:.0f} img/s over {seconds:.1f} s, "
          f"peak RSS {rss_mb or 0:.0f} MB, {precision}, {memory}", file=sys.stderr)


def lin_top1(r):
    """The linear probe's test top-1 at the epoch chosen on validation; records made before eval.py chose on
    validation have only the best test epoch, which is returned for them."""
    return r["linear_top1"] if r.get("linear_top1") is not None else r["linear_top1_best"]


def mean_std(values):
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt_pct(values):
    m, s = mean_std(values)
    if m is None:
        return "—"
    return f"{100 * m:.2f}" + (f" ± {100 * s:.2f}" if len(values) > 1 else "")


def fmt_num(values, digits=0):
    m, _ = mean_std([v for v in values if v is not None])
    return "—" if m is None else f"{m:,.{digits}f}"


def label(side, rs):
    """'contrastive (fp32, contiguous)' etc.: the numerics and extra flags of a group of runs."""
    r = rs[0]
    parts = [r.get("precision", "?"), r.get("memory_format", "?")]
    if r.get("flags"):
        parts.append(r["flags"])
    return f"{side} ({', '.join(parts)})"


def cmd_key(args):
    print(json.dumps({"method": args.method, "side": args.side, "seed": args.seed, "train_subset": args.train_subset,
                      "epochs": args.epochs, "batch_size": args.batch_size, "width": args.width,
                      "threads": args.threads, "flags": args.flags}))


def cmd_table(args):
    key = json.loads(args.key)
    recs = [r for r in read_lines(args.results) if matches(r, key)]
    methods = []
    for r in recs:
        if r["method"] not in methods:
            methods.append(r["method"])
    names = {"simclr": "SimCLR", "moco": "MoCo v2", "byol": "BYOL", "simsiam": "SimSiam"}
    b = key
    print(f"Fashion-MNIST, resnet18 width {b['width']}, {b['train_subset']:,} training images, {b['epochs']} epochs, "
          f"batch {b['batch_size']}, {b['threads']} threads; kNN (k 200, t 0.1) and linear probe (30 epochs, the epoch chosen on a held-out tenth of the training features) by "
          f"bench/peers/eval.py on the 10,000 test images; mean ± std over seeds.\n")
    for m in methods:
        print(f"#### {names.get(m, m)}\n")
        print("| side | seeds | kNN top-1 (%) | linear top-1 (%) | train img/s | peak RSS (MB) | command |")
        print("|---|---|---|---|---|---|---|")
        variants = {}
        for side in ("lightly", "contrastive"):
            flags = []
            for r in recs:
                if r["method"] == m and r["side"] == side and r.get("flags", "") not in flags:
                    flags.append(r.get("flags", ""))
            variants[side] = [(f, [r for r in recs if r["method"] == m and r["side"] == side
                                   and r.get("flags", "") == f]) for f in flags]
        for side in ("lightly", "solo-learn", "contrastive"):
            if side == "solo-learn":
                print("| solo-learn | — | — | — | — | — | not run (bench/peers/README.md, solo-learn) |")
                continue
            if not variants[side]:
                print(f"| {side} | — | — | — | — | — | not run yet |")
                continue
            for flags, rs in variants[side]:
                seeds = ", ".join(str(r["seed"]) for r in rs)
                lin = fmt_pct([lin_top1(r) for r in rs])
                print(f"| {label(side, rs)} | {seeds} | {fmt_pct([r['knn_top1'] for r in rs])} | {lin} | "
                      f"{fmt_num([r['images_per_s'] for r in rs])} | {fmt_num([r['peak_rss_mb'] for r in rs])} | "
                      f"`{rs[0]['command']}` |")
        if variants["lightly"] and variants["contrastive"]:
            print()
            mean = lambda rs, k: mean_std([r[k] for r in rs])[0]  # noqa: E731
            # The best against the best: ours against lightly's fastest configuration in the table.
            theirs = max((rs for _, rs in variants["lightly"]), key=lambda rs: mean(rs, "images_per_s"))
            for _, ours in variants["contrastive"]:
                d_knn = 100 * (mean(ours, "knn_top1") - mean(theirs, "knn_top1"))
                d_lin = 100 * (mean_std([lin_top1(r) for r in ours])[0] - mean_std([lin_top1(r) for r in theirs])[0])
                speed = mean(ours, "images_per_s") / max(1e-9, mean(theirs, "images_per_s"))
                acc = "met" if d_knn >= -GOAL_ACCURACY_POINTS and d_lin >= -GOAL_ACCURACY_POINTS else "NOT met"
                fast = "met" if speed >= GOAL_SPEEDUP else "NOT met"
                print(f"{label('contrastive', ours)} − {label('lightly', theirs)}: kNN {d_knn:+.2f} points, linear "
                      f"{d_lin:+.2f} points (goal ≥ −{GOAL_ACCURACY_POINTS}: {acc}); throughput "
                      f"{speed:.2f}× (goal ≥ {GOAL_SPEEDUP}×: {fast}); lightly's fastest configuration here.  ")
        print()
    cpus = sorted({r.get("cpu", "?") for r in recs})
    if cpus:
        print(f"CPU: {'; '.join(cpus)}. Raw lines: {args.results}.")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("key")
    for name in ("--method", "--side"):
        k.add_argument(name, required=True)
    for name in ("--seed", "--train-subset", "--epochs", "--batch-size", "--width", "--threads"):
        k.add_argument(name, type=int, required=True)
    k.add_argument("--flags", default="")
    h = sub.add_parser("has")
    h.add_argument("results")
    h.add_argument("--key", required=True)
    r = sub.add_parser("record")
    r.add_argument("--dir", required=True)
    r.add_argument("--side", required=True, choices=["lightly", "contrastive"])
    r.add_argument("--key", required=True)
    r.add_argument("--command", required=True)
    r.add_argument("--cpu", default="")
    t = sub.add_parser("table")
    t.add_argument("results")
    t.add_argument("--key", required=True, help="JSON of the budget fields to select")
    args = ap.parse_args()
    if args.cmd == "key":
        cmd_key(args)
        return
    if args.cmd == "has":
        key = json.loads(args.key)
        sys.exit(0 if any(matches(rec, key) for rec in read_lines(args.results)) else 1)
    if args.cmd == "record":
        cmd_record(args)
    else:
        cmd_table(args)


if __name__ == "__main__":
    main()
