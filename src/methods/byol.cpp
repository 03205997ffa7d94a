// BYOL (docs/methods.md §6 ContrastiveCrop CIFAR config): online = backbone + projector MLP(d, h, dim) with
// hidden BN + predictor MLP(dim, h', dim) with hidden BN; target = frozen copy of backbone + projector, moved
// towards the online network after every optimizer step with a cosine-scheduled momentum. Loss:
// functional::byol_symmetric_loss (targets detached). The views go through separate forwards (§9.3).
//
// Registered names: "backbone", "projector", "predictor" (online) and "target_backbone", "target_projector".
#include "contrastive/methods/byol.h"

#include <cmath>

#include "contrastive/losses.h"
#include "contrastive/method.h"

namespace contrastive {

// τ_k = 1 − (1 − τ0)·(cos(π k/K) + 1)/2: τ0 at the first step, 1 at the last (BYOL paper schedule).
double byol_tau(double tau0, int64_t step, int64_t total_steps) {
  const double frac = total_steps > 0 ? static_cast<double>(step) / static_cast<double>(total_steps) : 1.0;
  return 1.0 - (1.0 - tau0) * (std::cos(M_PI * frac) + 1.0) / 2.0;
}

class BYOLMethod : public ResNetMethod {
 public:
  explicit BYOLMethod(const MethodSpec& spec)
      : ResNetMethod("byol", spec, 0), cfg_(options_of<BYOLOptions>(spec)) {
    const int64_t d = net->feature_dim();
    auto projector_options = MLPOptions(d, cfg_.proj_hidden(), cfg_.proj_dim()).hidden_bn(true);
    projector = register_module("projector", MLP(projector_options));
    predictor = register_module(
        "predictor", MLP(MLPOptions(cfg_.proj_dim(), cfg_.pred_hidden(), cfg_.proj_dim()).hidden_bn(true)));
    target_net = register_module("target_backbone", make_backbone(spec.config, spec.in_channels, 0));
    target_projector = register_module("target_projector", MLP(projector_options));
    copy_and_freeze(*target_net, *net);
    copy_and_freeze(*target_projector, *projector);
  }

  LossTerms loss(const std::vector<torch::Tensor>& views, const torch::Tensor&, const torch::Tensor&,
                 const StepContext&) override {
    TORCH_CHECK(views.size() == 2, "BYOL needs exactly 2 views");
    auto z1 = projector->forward(net->features(views[0]));
    auto z2 = projector->forward(net->features(views[1]));
    auto p1 = predictor->forward(z1), p2 = predictor->forward(z2);
    torch::Tensor t1, t2;
    {
      torch::NoGradGuard no_grad;  // §9.2: targets carry no gradient
      t1 = target_projector->forward(target_net->features(views[0]));
      t2 = target_projector->forward(target_net->features(views[1]));
    }
    LossTerms out;
    out.terms["byol"] = functional::byol_symmetric_loss(p1, p2, t1, t2);
    add_collapse_stats(out.stats, z1, /*rank=*/true);
    return out;
  }

  // EMA of the parameters with the scheduled τ; the BN statistics are copied from the online network.
  void after_step(const StepContext& ctx) override {
    const double tau = byol_tau(cfg_.momentum_ema(), ctx.global_step, ctx.total_steps);
    ema_parameters(*target_net, *net, tau);
    ema_parameters(*target_projector, *projector, tau);
    copy_buffers(*target_net, *net);
    copy_buffers(*target_projector, *projector);
  }

  std::vector<torch::Tensor> fixed_lr_parameters() override {
    return cfg_.fix_pred_lr() ? predictor->parameters() : std::vector<torch::Tensor>{};
  }

  MLP projector{nullptr}, predictor{nullptr};
  ResNet target_net{nullptr};
  MLP target_projector{nullptr};

 private:
  BYOLOptions cfg_;
};

void register_byol(MethodRegistry& registry) {
  MethodInfo m;
  m.name = "byol";
  m.summary = "BYOL: an online network predicts a momentum target network's projection, no negatives";
  m.paper = "Grill et al., Bootstrap Your Own Latent, NeurIPS 2020";
  m.defaults.lr = 0.5;  // ContrastiveCrop CIFAR: lr 0.5 at batch 512, wd 1e-4
  m.defaults.lr_batch = 512;
  m.defaults.weight_decay = 1e-4;
  m.defaults.augment = "simclr-cifar";
  m.options = options_factory<BYOLOptions>(BYOLOptions(), [](BYOLOptions& o) {
    return std::vector<OptionKey>{
        {"momentum_ema", "ema", &o.momentum_ema(), "base target momentum (cosine-scheduled to 1)"},
        {"proj_hidden", "proj-hidden", &o.proj_hidden(), "projector hidden size"},
        {"proj_dim", "proj-dim", &o.proj_dim(), "projector output size"},
        {"pred_hidden", "pred-hidden", &o.pred_hidden(), "predictor hidden size"},
        {"fix_pred_lr", "fix-pred-lr", &o.fix_pred_lr(), "the predictor keeps the base learning rate"},
    };
  });
  m.validate = [](const Config& c, int64_t) {
    const auto& o = method_options<BYOLOptions>(c.method, "byol");
    check_unit(o.momentum_ema(), "ema");
    check_at_least(o.proj_hidden(), 1, "proj-hidden");
    check_at_least(o.proj_dim(), 1, "proj-dim");
    check_at_least(o.pred_hidden(), 1, "pred-hidden");
  };
  m.make = [](const MethodSpec& spec) -> MethodPtr { return std::make_shared<BYOLMethod>(spec); };
  registry.add(std::move(m));
}

}  // namespace contrastive
