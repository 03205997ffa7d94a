// The typed options of the `byol` method (public: `BYOLOptions()` with chained setters, LibTorch style). The
// method itself is src/methods/byol.cpp; build it with make_method (method_factory.h) or name it in a Config.
#pragma once

#include <torch/arg.h>

#include <cstdint>

namespace contrastive {

// Options of `--method byol` (YAML section `byol:`): ContrastiveCrop's CIFAR config.
struct BYOLOptions {
  TORCH_ARG(double, momentum_ema) = 0.996;  // base target momentum τ0 (cosine to 1)
  TORCH_ARG(int64_t, proj_hidden) = 512;
  TORCH_ARG(int64_t, proj_dim) = 128;
  TORCH_ARG(int64_t, pred_hidden) = 512;
  TORCH_ARG(bool, fix_pred_lr) = false;
};

}  // namespace contrastive
