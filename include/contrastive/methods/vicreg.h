// The typed options of the `vicreg` method (public: `VICRegOptions()` with chained setters, LibTorch style). The
// method itself is src/methods/vicreg.cpp; build it with make_method (method_factory.h) or name it in a Config.
#pragma once

#include <torch/arg.h>

#include <cstdint>

namespace contrastive {

// Options of `--method vicreg` (YAML section `vicreg:`).
struct VICRegOptions {
  TORCH_ARG(double, sim_weight) = 25.0;  // λ: invariance
  TORCH_ARG(double, var_weight) = 25.0;  // μ: variance
  TORCH_ARG(double, cov_weight) = 1.0;   // ν: covariance
  // Expander width: -1 = 4 x the backbone's feature size (the paper: 8192 on ResNet-50's 2048).
  TORCH_ARG(int64_t, expander_dim) = -1;
};

}  // namespace contrastive
