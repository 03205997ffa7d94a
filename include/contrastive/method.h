// What a method is built from (public: docs/adding-a-method.md). A method derives from MethodImpl (methods.h),
// usually through ResNetMethod here, registers itself with register_method (registry.h) and reads its typed
// options with options_of. The helpers below are the ones the built-in methods share: projection heads, view
// grouping for multi-crop, collapse statistics, per-step generators and momentum encoders.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <sstream>

#include "contrastive/losses.h"
#include "contrastive/methods.h"
#include "contrastive/registry.h"

namespace contrastive {

// The options struct of the spec's method (registered by the method's own file).
template <typename O>
const O& options_of(const MethodSpec& spec) {
  return method_options<O>(spec.config.method, spec.config.method.name);
}

// Keys and checks that several methods share (each method still lists them in its own options).
inline OptionKey label_fraction_key(double& target) {
  return {"labeled_fraction", "labeled-fraction", &target,
          "semi-supervised: fraction of labelled training images"};
}
inline OptionKey label_per_class_key(int64_t& target) {
  return {"labeled_per_class", "labeled-per-class", &target,
          "semi-supervised: labelled images per class (overrides the fraction)"};
}
template <typename T>
std::string show_value(const T& v) {
  std::ostringstream ss;
  ss << v;
  return ss.str();
}
inline void check_label_smoothing(double v) {
  check_option(v >= 0 && v < 1, "label-smoothing", show_value(v) + " (must be in [0, 1))");
}
inline void check_label_split(double fraction, int64_t per_class) {
  check_option(fraction > 0 && fraction <= 1, "labeled-fraction", show_value(fraction) + " (must be in (0, 1])");
  check_option(per_class >= 0, "labeled-per-class", show_value(per_class));
}
inline void check_temperature(double v, const std::string& flag = "temperature") {
  check_option(v > 0 && std::isfinite(v), flag, show_value(v) + " (must be > 0)");
}
inline void check_at_least(int64_t v, int64_t low, const std::string& flag) {
  check_option(v >= low, flag, show_value(v) + " (must be >= " + show_value(low) + ")");
}
inline void check_unit(double v, const std::string& flag) {
  check_option(v >= 0 && v <= 1, flag, show_value(v) + " (must be in [0, 1])");
}

// A method whose backbone is a CIFAR ResNet registered as "backbone".
class ResNetMethod : public MethodImpl {
 public:
  ResNetMethod(std::string name, const MethodSpec& spec, int64_t num_classes, int64_t bn_splits = 1)
      : MethodImpl(std::move(name)), gather(!spec.config.dist.no_gather) {
    net = register_module("backbone", make_backbone(spec.config, spec.in_channels, num_classes, bn_splits));
  }
  std::shared_ptr<torch::nn::Module> backbone() override { return net.ptr(); }
  torch::Tensor embed(const torch::Tensor& x) override { return net->features(x); }
  torch::Tensor feature_map(const torch::Tensor& x) override { return net->stages(x)[3]; }

  ResNet net{nullptr};
  // Batch-level loss terms (negatives, batch statistics) see the global batch across processes: pass it to
  // dist::gather_for_loss (off with --no-gather).
  const bool gather;
};

// L2 normalisation along dim 1.
inline torch::Tensor l2n(const torch::Tensor& x) {
  return torch::nn::functional::normalize(x, torch::nn::functional::NormalizeFuncOptions().dim(1));
}

// Fraction of correct argmax predictions.
inline double accuracy(const torch::Tensor& logits, const torch::Tensor& labels) {
  return logits.argmax(1).eq(labels).to(torch::kDouble).mean().item<double>();
}

// Projection head of SupCon/SimCLR/MoCo v2: Linear(d,h)-ReLU-Linear(h,out), biases, no BN (§3); `bn`
// (--proj-bn) puts a BatchNorm after the hidden Linear, as in the SimCLR paper's head.
inline MLP make_projection_mlp(int64_t in, int64_t hidden, int64_t out, bool bn = false) {
  return MLP(MLPOptions(in, hidden > 0 ? hidden : in, out).hidden_bn(bn));
}

// Multi-crop (§3, §10): the runs of consecutive views of one size, each concatenated into one batch, with the
// number of views in it, so that a method makes one forward per crop size (BN sees every crop of that size).
// Without multi-crop all views have one size: a single run.
struct ViewGroup {
  torch::Tensor batch;  // [count * B, C, H, W]
  int64_t count = 1;
};
inline std::vector<ViewGroup> views_by_size(const std::vector<torch::Tensor>& views) {
  std::vector<ViewGroup> groups;
  for (size_t s = 0; s < views.size();) {
    size_t e = s + 1;
    while (e < views.size() && views[e].sizes() == views[s].sizes()) ++e;
    std::vector<torch::Tensor> run(views.begin() + static_cast<std::ptrdiff_t>(s),
                                   views.begin() + static_cast<std::ptrdiff_t>(e));
    groups.push_back({run.size() == 1 ? run[0] : torch::cat(run), static_cast<int64_t>(e - s)});
    s = e;
  }
  return groups;
}

// BYOL target momentum at optimizer step `step` of `total_steps` (byol.cpp): τ0 at 0, 1 at the end.
double byol_tau(double tau0, int64_t step, int64_t total_steps);

// §5 collapse monitor of a batch of outputs z [N,D], into LossTerms::stats: per-channel std of z/‖z‖ and D (the
// trainer compares the std with 1/√D); with `rank`, also the effective rank and its bound min(N, D) — for
// SimSiam/BYOL, whose projector ends in a train-mode BN that keeps the std at ~1/√D even when collapsed.
inline void add_collapse_stats(std::map<std::string, double>& stats, const torch::Tensor& z, bool rank = false) {
  stats["collapse_std"] = functional::collapse_std(z).item<double>();
  stats["collapse_dim"] = static_cast<double>(z.size(1));
  if (!rank) return;
  stats["effective_rank"] = functional::effective_rank(z).item<double>();
  stats["rank_bound"] = static_cast<double>(std::min(z.size(0), z.size(1)));
}

// A CPU generator seeded for one step (StepContext::seed): randomness inside a method stays reproducible.
inline at::Generator step_generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

// Momentum encoders (MoCo §4, BYOL §6): `dst` becomes an exact copy of `src` (parameters and buffers; the two
// must have the same structure) whose parameters take no gradient, so make_optimizer skips them.
inline void copy_and_freeze(torch::nn::Module& dst, const torch::nn::Module& src) {
  torch::NoGradGuard no_grad;
  auto dp = dst.parameters(), sp = src.parameters();
  auto db = dst.buffers(), sb = src.buffers();
  TORCH_CHECK(dp.size() == sp.size() && db.size() == sb.size(), "copy_and_freeze: module structures differ");
  for (size_t i = 0; i < dp.size(); ++i) {
    dp[i].copy_(sp[i]);
    dp[i].set_requires_grad(false);
  }
  for (size_t i = 0; i < db.size(); ++i) db[i].copy_(sb[i]);
}

// θ_target <- m·θ_target + (1−m)·θ_online over the PARAMETERS only (§4, §9.5: buffers are not averaged).
inline void ema_parameters(torch::nn::Module& target, const torch::nn::Module& online, double m) {
  torch::NoGradGuard no_grad;
  auto tp = target.parameters(), op = online.parameters();
  for (size_t i = 0; i < tp.size(); ++i) tp[i].mul_(m).add_(op[i].detach(), 1.0 - m);
}

// Copies the buffers (BN running statistics) of `src` into `dst`.
inline void copy_buffers(torch::nn::Module& dst, const torch::nn::Module& src) {
  torch::NoGradGuard no_grad;
  auto db = dst.buffers(), sb = src.buffers();
  for (size_t i = 0; i < db.size(); ++i) db[i].copy_(sb[i]);
}

}  // namespace contrastive
