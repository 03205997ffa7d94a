"""max |onnxruntime features - reference| for an exported Fashion-MNIST model on the first N test images.

    max_abs.py MODEL.onnx REFERENCE.npy     (REFERENCE: `contrastive embed` of the same checkpoint, N rows)
"""
import gzip
import json
import sys

import numpy as np
import onnxruntime as ort

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
ref = np.load(sys.argv[2])
meta = session.get_modelmeta().custom_metadata_map
with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
    images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[: len(ref)]
x = images.astype(np.float32) / 255.0
mean = np.array(json.loads(meta["mean"]), np.float32).reshape(1, -1, 1, 1)
std = np.array(json.loads(meta["std"]), np.float32).reshape(1, -1, 1, 1)
features = session.run(None, {"input": (x - mean) / std})[0]
diff = np.abs(features - ref)
print(f"max abs {diff.max():.3e}, mean abs {diff.mean():.3e}, max |ref| {np.abs(ref).max():.3f}")
