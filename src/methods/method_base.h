// Shared pieces of the ResNet-based methods (internal header).
#pragma once

#include <torch/torch.h>

#include "contrastive/methods.h"

namespace contrastive {

// A method whose backbone is a CIFAR ResNet registered as "backbone".
class ResNetMethod : public MethodImpl {
 public:
  ResNetMethod(std::string name, const MethodSpec& spec, int64_t num_classes, int64_t bn_splits = 1)
      : MethodImpl(std::move(name)) {
    net = register_module("backbone", make_backbone(spec.config, spec.in_channels, num_classes, bn_splits));
  }
  std::shared_ptr<torch::nn::Module> backbone() override { return net.ptr(); }
  torch::Tensor embed(const torch::Tensor& x) override { return net->features(x); }
  torch::Tensor feature_map(const torch::Tensor& x) override { return net->stages(x)[3]; }

  ResNet net{nullptr};
};

// L2 normalisation along dim 1.
inline torch::Tensor l2n(const torch::Tensor& x) {
  return torch::nn::functional::normalize(x, torch::nn::functional::NormalizeFuncOptions().dim(1));
}

// Fraction of correct argmax predictions.
inline double accuracy(const torch::Tensor& logits, const torch::Tensor& labels) {
  return logits.argmax(1).eq(labels).to(torch::kDouble).mean().item<double>();
}

// Projection head of SupCon/SimCLR/MoCo v2: Linear(d,h)-ReLU-Linear(h,out), biases, no BN (§3).
inline MLP make_projection_mlp(int64_t in, int64_t hidden, int64_t out) {
  return MLP(MLPOptions(in, hidden > 0 ? hidden : in, out));
}

}  // namespace contrastive
