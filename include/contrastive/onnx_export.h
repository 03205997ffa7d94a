// `contrastive export --format onnx`: the inference network as an ONNX model, built with the ONNX project's own
// protobuf classes (Debian's libonnx-dev) and checked by its C++ checker before it is written. docs/deploy.md.
#pragma once

#include <torch/arg.h>

#include <cstdint>
#include <string>

namespace contrastive {

struct LoadedModel;

struct OnnxExportOptions {
  // Adds the classifier's logits as a second output ("logits"); a model without a classifier is refused.
  TORCH_ARG(bool, with_classifier) = false;
  // The graph's first nodes normalise: the input is then the image scaled to [0, 1], not (x - mean) / std.
  TORCH_ARG(bool, bake_normalization) = false;
  // BatchNorm after a convolution folded into the convolution's weights and bias; otherwise every BatchNorm is
  // a BatchNormalization node. Default from the measurement in docs/deploy.md ("Folded or not").
  TORCH_ARG(bool, fold_batchnorm) = false;
  // 17: what Debian's libonnx 1.12 checks, and what every onnxruntime since 1.13 runs.
  TORCH_ARG(int64_t, opset) = 17;
};

// True when this build has the ONNX exporter (built against libonnx-dev and libprotobuf-dev).
bool onnx_export_available();

// Writes `out` atomically. Outputs: "features" [batch, D] (what `contrastive embed` writes) and, with
// with_classifier, "logits" [batch, classes]. Input "input" [batch, C, H, W] float32, batch dynamic. The model's
// metadata_props carry the input contract: mean, std, channels, image_size, class_names, normalization_baked,
// method, arch, width. A backbone without an exporter (a method registered from outside the library), a build
// without libonnx, or a missing classifier: InputError with one line.
void export_onnx(const LoadedModel& model, const std::string& out, const OnnxExportOptions& options = {});

}  // namespace contrastive
