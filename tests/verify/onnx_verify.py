"""Checks an exported ONNX model with the ONNX project's checker and runs it with onnxruntime.

    onnx_verify.py MODEL INPUT.npy REFERENCE.npy [LABELS.npy]

INPUT is float32 [N, C, H, W] as the model takes it, REFERENCE the features `contrastive embed` wrote for the
same images. The model runs in two batches of different sizes (the batch dimension is dynamic). Prints one JSON
object: checker verdict, max |onnx - reference| of the features, classifier top-1 when the model has logits and
LABELS is given, the output names and the metadata_props.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    model_path, input_path, ref_path = sys.argv[1:4]
    labels = np.load(sys.argv[4]) if len(sys.argv) > 4 else None
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    x = np.load(input_path).astype(np.float32)
    cut = max(1, len(x) // 3)
    parts = [session.run(None, {"input": x[:cut]}), session.run(None, {"input": x[cut:]})]
    features = np.concatenate([p[0] for p in parts])
    ref = np.load(ref_path)
    result = {
        "checker": "ok",
        "outputs": outputs,
        "opset": model.opset_import[0].version,
        "batch_dim": session.get_inputs()[0].shape[0],
        "shape": list(features.shape),
        "max_abs": float(np.abs(features - ref).max()),
        "ref_max": float(np.abs(ref).max()),
        "metadata": {p.key: p.value for p in model.metadata_props},
    }
    if "logits" in outputs and labels is not None:
        logits = np.concatenate([p[1] for p in parts])
        result["top1"] = float((logits.argmax(1) == labels).mean())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
