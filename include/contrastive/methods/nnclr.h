// The typed options of the `nnclr` method (public: `NNCLROptions()` with chained setters, LibTorch style). The
// method itself is src/methods/nnclr.cpp; build it with make_method (method_factory.h) or name it in a Config.
#pragma once

#include <torch/arg.h>

#include <cstdint>

namespace contrastive {

// Options of `--method nnclr` (YAML section `nnclr:`).
struct NNCLROptions {
  TORCH_ARG(double, temperature) = 0.1;
  TORCH_ARG(int64_t, support_size) = 4096;  // the paper: 98,304 on ImageNet; a few thousand on small data
  TORCH_ARG(int64_t, proj_hidden) = -1;     // -1: 4 x the feature size (the paper: 2048 on ResNet-50)
  TORCH_ARG(int64_t, proj_dim) = 256;
  TORCH_ARG(int64_t, pred_hidden) = -1;  // -1: 8 x the feature size (the paper's 4096 over 512)
};

}  // namespace contrastive
