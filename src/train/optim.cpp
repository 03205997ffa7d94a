// The optimizer side of a step: the learning-rate schedule, the optimizer of a config, LARS and finish_step.
#include <torch/torch.h>

#include <cmath>

#include "contrastive/train.h"

namespace contrastive {

double scheduled_lr(const OptimConfig& o, int64_t epochs, double e) {
  const double base = o.lr;
  auto after_warmup = [&](double x) {
    if (o.schedule == "constant") return base;
    if (o.schedule == "step") {
      double lr = base;
      for (double m : o.milestones) {
        const bool fractions = !o.milestones.empty() && o.milestones.back() < 1.0;
        const double at = fractions ? m * epochs : m;
        if (std::floor(x) >= at) lr *= o.gamma;
      }
      return lr;
    }
    const double floor_lr = base * o.min_lr_ratio;  // cosine
    return floor_lr + (base - floor_lr) * 0.5 * (1.0 + std::cos(M_PI * x / epochs));
  };
  if (o.warmup_epochs > 0 && e < o.warmup_epochs) {
    const double to = after_warmup(o.warmup_epochs);
    return o.warmup_from + (to - o.warmup_from) * e / o.warmup_epochs;
  }
  return after_warmup(e);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Config& c, MethodImpl& method) {
  const auto& o = c.optim;
  std::vector<torch::Tensor> fixed = method.fixed_lr_parameters();
  auto is_fixed = [&](const torch::Tensor& p) {
    for (const auto& f : fixed)
      if (f.is_same(p)) return true;
    return false;
  };
  std::vector<torch::Tensor> scheduled, fixed_group;
  for (auto& p : method.parameters()) {
    if (!p.requires_grad()) continue;  // frozen (momentum encoders, SimSiam's frozen bias)
    (is_fixed(p) ? fixed_group : scheduled).push_back(p);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(scheduled);
  if (!fixed_group.empty()) groups.emplace_back(fixed_group);
  if (o.optimizer == "adam") {
    // The betas are the method's default (registry.h) unless --adam-betas gives them.
    TORCH_CHECK(o.adam_betas.size() == 2, "make_optimizer: optim.adam_betas needs 2 values (resolve_defaults)");
    return std::make_unique<torch::optim::Adam>(groups, torch::optim::AdamOptions(o.lr)
                                                            .betas({o.adam_betas[0], o.adam_betas[1]})
                                                            .eps(1e-8)
                                                            .weight_decay(o.weight_decay));
  }
  // SGD; for LARS the weight decay is applied inside lars_adapt_gradients, so SGD's own is 0.
  const double wd = o.optimizer == "lars" ? 0.0 : o.weight_decay;
  return std::make_unique<torch::optim::SGD>(
      groups, torch::optim::SGDOptions(o.lr).momentum(o.momentum).nesterov(o.nesterov).weight_decay(wd));
}

void lars_adapt_gradients(MethodImpl& method, double weight_decay, double trust) {
  torch::NoGradGuard no_grad;
  for (auto& p : method.parameters()) {
    if (!p.requires_grad() || !p.grad().defined() || p.dim() <= 1) continue;  // BN and biases: plain SGD
    auto g = p.mutable_grad();
    g.add_(p, weight_decay);
    const double wn = p.norm().item<double>(), gn = g.norm().item<double>();
    if (wn > 0 && gn > 0) g.mul_(trust * wn / gn);
  }
}

void finish_step(const Config& config, MethodImpl& method, torch::optim::Optimizer& optimizer,
                 const StepContext& ctx) {
  if (config.optim.optimizer == "lars")
    lars_adapt_gradients(method, config.optim.weight_decay, config.optim.lars_trust);
  optimizer.step();
  method.after_step(ctx);
}

}  // namespace contrastive
