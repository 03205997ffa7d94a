// The typed options of the `moco` method (public: `MoCoOptions()` with chained setters, LibTorch style). The
// method itself is src/methods/moco.cpp; build it with make_method (method_factory.h) or name it in a Config.
#pragma once

#include <torch/arg.h>

#include <cstdint>

namespace contrastive {

// Options of `--method moco` (YAML section `moco:`), the CIFAR colab recipe's values.
struct MoCoOptions {
  TORCH_ARG(double, temperature) = 0.1;
  TORCH_ARG(int64_t, queue_size) = 4096;
  TORCH_ARG(double, momentum_ema) = 0.99;
  TORCH_ARG(bool, symmetric) = false;
  TORCH_ARG(int64_t, bn_splits) = 8;  // SplitBatchNorm: shuffle-BN on one process
  TORCH_ARG(int64_t, proj_dim) = 128;
  TORCH_ARG(bool, proj_bn) = false;
};

}  // namespace contrastive
