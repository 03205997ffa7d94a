// The typed options of the `ce` method (public: `CEOptions()` with chained setters, LibTorch style). The
// method itself is src/methods/ce.cpp; build it with make_method (method_factory.h) or name it in a Config.
#pragma once

#include <torch/arg.h>

#include <cstdint>

namespace contrastive {

// Options of `--method ce` (YAML section `ce:`).
struct CEOptions {
  TORCH_ARG(double, label_smoothing) = 0.0;
  TORCH_ARG(double, labeled_fraction) = 1.0;  // semi-supervised baseline: fraction of labelled images
  TORCH_ARG(int64_t, labeled_per_class) = 0;  // ... or this many per class (overrides the fraction)
};

}  // namespace contrastive
