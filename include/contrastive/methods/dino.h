// The typed options of the `dino` method (public: `DINOOptions()` with chained setters, LibTorch style). The
// method itself is src/methods/dino.cpp; build it with make_method (method_factory.h) or name it in a Config.
#pragma once

#include <torch/arg.h>

#include <cstdint>

namespace contrastive {

// Options of `--method dino` (YAML section `dino:`).
struct DINOOptions {
  TORCH_ARG(int64_t, prototypes) = 4096;  // K (65,536 on ImageNet)
  TORCH_ARG(int64_t, head_hidden) = -1;   // -1: 4 x the feature size (the reference: 2048)
  TORCH_ARG(int64_t, bottleneck) = 256;
  TORCH_ARG(double, student_temp) = 0.1;
  TORCH_ARG(double, teacher_temp) = 0.07;         // after the warm-up (the reference's 0.04 -> 0.07)
  TORCH_ARG(double, warmup_teacher_temp) = 0.04;  // at epoch 0
  TORCH_ARG(int64_t, warmup_teacher_epochs) = 2;
  TORCH_ARG(double, center_momentum) = 0.9;
  TORCH_ARG(double, momentum_ema) = 0.996;  // teacher momentum at the first step (1 at the last)
  // Epochs during which the prototypes (the head's last layer) get no gradient (the reference: 1).
  TORCH_ARG(int64_t, freeze_last_epochs) = 1;
};

}  // namespace contrastive
