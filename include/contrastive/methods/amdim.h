// The typed options of the `amdim` method (public: `AMDIMOptions()` with chained setters, LibTorch style). The
// method itself is src/methods/amdim.cpp; build it with make_method (method_factory.h) or name it in a Config.
#pragma once

#include <torch/arg.h>

#include <cstdint>

namespace contrastive {

// AMDIM has no options of its own: its width is --width, its loss has no free parameter here.
struct AMDIMOptions {};

}  // namespace contrastive
