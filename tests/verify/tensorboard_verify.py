"""Reads a run directory's TensorBoard event files with TensorBoard's own loader (EventAccumulator).

    tensorboard_verify.py RUN_DIR

Prints one JSON object: {tag: [[step, value], ...]} for every scalar tag, plus "_files": the event files read.
"""
import glob
import json
import os
import sys

from tensorboard.backend.event_processing import event_accumulator


def main():
    run = sys.argv[1]
    acc = event_accumulator.EventAccumulator(run, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    out = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    out["_files"] = sorted(os.path.basename(f) for f in glob.glob(os.path.join(run, "events.out.tfevents.*")))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
