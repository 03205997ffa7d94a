// The typed options of the `barlowtwins` method (public: `BarlowTwinsOptions()` with chained setters, LibTorch
// style). The method itself is src/methods/barlowtwins.cpp; build it with make_method (method_factory.h) or name
// it in a Config.
#pragma once

#include <torch/arg.h>

#include <cstdint>

namespace contrastive {

// Options of `--method barlowtwins` (YAML section `barlowtwins:`).
struct BarlowTwinsOptions {
  TORCH_ARG(double, lambda) = 0.0051;  // weight of the off-diagonal terms (the reference code's value)
  // Projector width: -1 = 4 x the backbone's feature size (the paper: 8192 on ResNet-50's 2048).
  TORCH_ARG(int64_t, projector_dim) = -1;
  TORCH_ARG(double, loss_scale) = 1.0;  // a constant factor on the loss (solo-learn's scale_loss)
};

}  // namespace contrastive
