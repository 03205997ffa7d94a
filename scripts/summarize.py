#!/usr/bin/env python3
"""Summarises run directories into a markdown table row: mean ± std over seeds (in %) of the best and last test
top-1, the last test ECE, the last clean training top-1 (or kNN top-1), and the mean wall time.

Usage (standard library only):
  summarize.py [--cols COLS] LABEL RUN_DIR...   one table row
  summarize.py [--cols COLS] --header           the header and separator lines for those columns
  summarize.py [--cols COLS] --tsv RUN_DIR...   numbers only, tab-separated: mean and std of every stat column
                                                (in %), then the seconds and the number of runs (for plots)

COLS is a comma-separated choice of: best, last, ece, train, knn, seconds, seeds (default
best,last,knn,seconds,seeds). `ece` is the test_ece of the last epoch that has one, `train` the last
train_clean_top1 (docs/experiments.md). A run directory without metrics.jsonl is reported on stderr and left out.
"""
import json
import os
import statistics
import sys

HEADERS = {
    "best": "best test top-1 (%)",
    "last": "last test top-1 (%)",
    "ece": "test ECE (%)",
    "train": "clean train top-1 (%)",
    "knn": "kNN top-1 (%)",
    "seconds": "seconds",
    "seeds": "seeds",
}
STATS = ("best", "last", "ece", "train", "knn")
DEFAULT_COLS = "best,last,knn,seconds,seeds"


def load(run):
    with open(f"{run}/metrics.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def last_of(rows, key):
    values = [r[key] for r in rows if key in r]
    return values[-1] if values else None


def collect(runs):
    stats = {k: [] for k in STATS}
    secs = []
    used = 0
    for run in runs:
        if not os.path.exists(f"{run}/metrics.jsonl"):
            print(f"summarize.py: {run}: no metrics.jsonl, left out", file=sys.stderr)
            continue
        rows = load(run)
        used += 1
        tops = [r["test_top1"] for r in rows if "test_top1" in r]
        if tops:
            stats["best"].append(max(tops))
            stats["last"].append(tops[-1])
        for col, key in (("ece", "test_ece"), ("train", "train_clean_top1"), ("knn", "knn_top1")):
            v = last_of(rows, key)
            if v is not None:
                stats[col].append(v)
        secs.append(sum(r["seconds"] for r in rows))
    return stats, secs, used


def mean_std(values):
    m = 100 * statistics.mean(values)
    s = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return m, s


def fmt(values):
    if not values:
        return "–"
    return "{:.2f} ± {:.2f}".format(*mean_std(values))


def main(argv):
    cols = DEFAULT_COLS.split(",")
    mode = "row"
    args = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--cols" and i + 1 < len(argv):
            cols = [c for c in argv[i + 1].split(",") if c]
            i += 2
            continue
        if a in ("--header", "--tsv"):
            mode = a[2:]
        else:
            args.append(a)
        i += 1
    bad = [c for c in cols if c not in HEADERS]
    if bad or not cols:
        print(f"summarize.py: unknown column(s) {','.join(bad)} (expected any of: {', '.join(HEADERS)})",
              file=sys.stderr)
        return 2
    if mode == "header":
        print("| run | " + " | ".join(HEADERS[c] for c in cols) + " |")
        print("|---|" + "---|" * len(cols))
        return 0
    if mode == "row":
        if len(args) < 2:
            print(__doc__, file=sys.stderr)
            return 2
        label, runs = args[0], args[1:]
    else:
        if not args:
            print(__doc__, file=sys.stderr)
            return 2
        label, runs = None, args
    stats, secs, used = collect(runs)
    if mode == "tsv":
        out = []
        for c in cols:
            if c in STATS:
                out += ["{:.4f}".format(v) for v in mean_std(stats[c])] if stats[c] else ["nan", "nan"]
            elif c == "seconds":
                out.append("{:.0f}".format(statistics.mean(secs)) if secs else "nan")
            else:
                out.append(str(used))
        print("\t".join(out))
        return 0
    cells = []
    for c in cols:
        if c in STATS:
            cells.append(fmt(stats[c]))
        elif c == "seconds":
            cells.append(f"{statistics.mean(secs):.0f}" if secs else "–")
        else:
            cells.append(str(used))
    print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
