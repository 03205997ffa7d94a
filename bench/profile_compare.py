#!/usr/bin/python3
"""Per-operator comparison of two Chrome traces of the same training steps: `contrastive bench --profile A.json`
and `bench/reference.py --profile B.json` (both LibTorch's operator profiler). For every operator name it sums the
self time (the event's duration minus that of the events nested inside it on the same thread) and prints the
operators that take the most time on either side, with their call counts and the per-side totals.

    bench/profile_compare.py cpp.json py.json [--top 30] [--steps N]   (--steps: per-step figures)
"""
import argparse
import collections
import json
import sys


def self_times(path):
    with open(path) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    by_thread = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            by_thread[e.get("tid", 0)].append((float(e["ts"]), float(e["dur"]), e["name"]))
    total = collections.Counter()
    calls = collections.Counter()
    for evs in by_thread.values():
        evs.sort(key=lambda x: (x[0], -x[1]))
        stack = []  # [end, name, child time]
        def pop():
            end, name, child, dur = stack.pop()
            total[name] += dur - child
        for ts, dur, name in evs:
            while stack and stack[-1][0] <= ts:
                pop()
            if stack:
                stack[-1][2] += dur
            stack.append([ts + dur, name, 0.0, dur])
            calls[name] += 1
        while stack:
            pop()
    return total, calls


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cpp")
    p.add_argument("python")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--steps", type=int, default=1, help="steps in each trace, for per-step figures")
    a = p.parse_args()
    (ct, cc), (pt, pc) = self_times(a.cpp), self_times(a.python)
    s = 1000.0 * a.steps  # us -> ms per step
    names = sorted(set(ct) | set(pt), key=lambda n: -max(ct[n], pt[n]))[: a.top]
    print("%-44s %10s %8s %10s %8s %8s" % ("operator (self time)", "C++ ms/st", "calls", "Py ms/st", "calls",
                                           "C++/Py"))
    for n in names:
        ratio = ct[n] / pt[n] if pt[n] else float("inf")
        print("%-44s %10.2f %8d %10.2f %8d %8.2f" % (n[:44], ct[n] / s, cc[n] // a.steps, pt[n] / s,
                                                     pc[n] // a.steps, ratio))
    print("%-44s %10.2f %8d %10.2f %8d %8.2f" % ("total", sum(ct.values()) / s, sum(cc.values()) // a.steps,
                                                  sum(pt.values()) / s, sum(pc.values()) // a.steps,
                                                  sum(ct.values()) / max(1e-9, sum(pt.values()))))


if __name__ == "__main__":
    sys.exit(main())
