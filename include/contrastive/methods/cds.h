// The typed options of the `cds` method (public: `CDSOptions()` with chained setters, LibTorch style). The
// method itself is src/methods/cds.cpp; build it with make_method (method_factory.h) or name it in a Config.
#pragma once

#include <torch/arg.h>

#include <cstdint>
#include <string>
#include <vector>

namespace contrastive {

// Options of `--method cds` (YAML section `cds:`): the reference's CIFAR values (λ 0.1, T 0.07).
struct CDSOptions {
  TORCH_ARG(double, temperature) = 0.07;
  TORCH_ARG(double, base_temperature) = 0.07;
  TORCH_ARG(double, label_smoothing) = 0.0;
  TORCH_ARG(double, lambda) = 0.1;                                            // weight of the contrastive terms
  TORCH_ARG(std::vector<double>, weights) = std::vector<double>{1, 1, 1, 1};  // per stage 1..4, times lambda
  TORCH_ARG(std::string, loss) = "supcon";                                    // supcon | simclr | ce
  TORCH_ARG(std::string, head) = "sepconv";                                   // sepconv | mlp
  TORCH_ARG(double, labeled_fraction) = 1.0;                                  // semi-supervised
  TORCH_ARG(int64_t, labeled_per_class) = 0;
  TORCH_ARG(std::string, teacher);  // distillation: a CDS checkpoint
  TORCH_ARG(double, kd_temperature) = 3.0;
  TORCH_ARG(double, kd_weight) = 1.0;
  TORCH_ARG(double, feat_weight) = 0.1;
  TORCH_ARG(bool, teacher_train_bn) = true;  // the reference never puts the teacher in eval()
};

}  // namespace contrastive
