"""Serves a model exported by `contrastive export --format onnx` with onnxruntime: no torch needed.

    python examples/serve_onnx.py model.onnx IMAGE [IMAGE ...]

Reads the input contract from the model's metadata (channels, image size, mean, std, whether the graph
normalises itself), prepares each image the way `contrastive embed` does, and prints its feature vector's size
and norm, and the predicted class when the model has a classifier (exported with --with-classifier).
docs/deploy.md shows this file; tests/test_deploy.cpp runs it.
"""
import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image


def load(path, channels, size):
    img = Image.open(path).convert("L" if channels == 1 else "RGB")
    img = img.resize((size[1], size[0]), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32) / 255.0
    return x[None] if channels == 1 else x.transpose(2, 0, 1)  # [C, H, W]


def main():
    session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    channels, size = int(meta["channels"]), json.loads(meta["image_size"])
    x = np.stack([load(p, channels, size) for p in sys.argv[2:]])
    if meta["normalization_baked"] != "true":
        mean = np.array(json.loads(meta["mean"]), np.float32).reshape(1, -1, 1, 1)
        std = np.array(json.loads(meta["std"]), np.float32).reshape(1, -1, 1, 1)
        x = (x - mean) / std
    outputs = session.run(None, {"input": x})
    names = json.loads(meta["class_names"])
    for i, path in enumerate(sys.argv[2:]):
        line = f"{path}: {outputs[0].shape[1]} features, norm {np.linalg.norm(outputs[0][i]):.4f}"
        if len(outputs) > 1:
            line += f", class {names[int(outputs[1][i].argmax())]}"
        print(line)


if __name__ == "__main__":
    main()
