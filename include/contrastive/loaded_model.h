// LoadedModel: a trained method restored from a checkpoint with its data (load_model in train.h makes one), the
// input of evaluation and of the exports (export.h, onnx_export.h).
#pragma once

#include <torch/types.h>

#include "contrastive/config.h"
#include "contrastive/data.h"
#include "contrastive/eval.h"
#include "contrastive/methods.h"

namespace contrastive {

// A trained method restored from a checkpoint, with its data, ready for evaluation or export.
struct LoadedModel {
  Config config;
  MethodPtr method;
  DataSplits data;
  Normalization norm;
  torch::Device device = torch::kCPU;
};

}  // namespace contrastive
