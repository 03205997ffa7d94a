"""A folder of JPEG (or PNG) files made from Fashion-MNIST, for the data-pipeline benchmark and the docs' examples:
DIR/<class name>/<index>.<ext>, RGB, upsampled (bicubic) from 28 px to --size.

  python3 bench/pipeline/make_folder.py DIR [--count 20000] [--size 64] [--format jpg] [--flat]

--flat writes every image directly into DIR (the unlabelled layout). Needs numpy and Pillow (Debian's python3 has
both with python3-numpy and python3-pil, which setup.sh installs).
"""
import argparse
import gzip
import os

import numpy as np
from PIL import Image

NAMES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--format", choices=["jpg", "png"], default="jpg")
    p.add_argument("--flat", action="store_true")
    a = p.parse_args()
    images = read_idx(os.path.join(a.source, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(a.source, "train-labels-idx1-ubyte.gz"))
    for i in range(a.count):
        im = Image.fromarray(images[i % len(images)]).convert("RGB").resize((a.size, a.size), Image.BICUBIC)
        sub = a.out if a.flat else os.path.join(a.out, NAMES[labels[i % len(labels)]])
        os.makedirs(sub, exist_ok=True)
        im.save(os.path.join(sub, f"{i:06d}.{a.format}"), quality=90)
    print(f"wrote {a.count} {a.size}x{a.size} {a.format} files to {a.out}")


if __name__ == "__main__":
    main()
