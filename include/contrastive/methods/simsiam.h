// The typed options of the `simsiam` method (public: `SimSiamOptions()` with chained setters, LibTorch style). The
// method itself is src/methods/simsiam.cpp; build it with make_method (method_factory.h) or name it in a Config.
#pragma once

#include <torch/arg.h>

#include <cstdint>

namespace contrastive {

// Options of `--method simsiam` (YAML section `simsiam:`): ContrastiveCrop's CIFAR sizes (512 / 128).
struct SimSiamOptions {
  TORCH_ARG(int64_t, proj_dim) = 512;
  TORCH_ARG(int64_t, pred_hidden) = 128;
  TORCH_ARG(bool, fix_pred_lr) = false;
  TORCH_ARG(bool, no_stop_grad) = false;  // ablation: collapses (§5)
};

}  // namespace contrastive
