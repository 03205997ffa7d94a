#!/usr/bin/env python3
"""Summarises run directories into a markdown table row: mean ± std over seeds of the best and last test top-1
(or kNN top-1), and the mean wall time. Usage: summarize.py LABEL RUN_DIR... (standard library only)."""
import json
import statistics
import sys


def load(run):
    with open(f"{run}/metrics.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def fmt(values):
    if not values:
        return "–"
    m = 100 * statistics.mean(values)
    s = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.2f} ± {s:.2f}"


label, runs = sys.argv[1], sys.argv[2:]
best, last, knn, secs = [], [], [], []
for run in runs:
    rows = load(run)
    tops = [r["test_top1"] for r in rows if "test_top1" in r]
    if tops:
        best.append(max(tops))
        last.append(tops[-1])
    knns = [r["knn_top1"] for r in rows if "knn_top1" in r]
    if knns:
        knn.append(knns[-1])
    secs.append(sum(r["seconds"] for r in rows))
print(f"| {label} | {fmt(best)} | {fmt(last)} | {fmt(knn)} | {statistics.mean(secs):.0f} | {len(runs)} |")
