// VICReg (docs/methods.md §10): backbone + expander MLP (3 Linear layers, BN + ReLU between them, none after the
// last); loss = 25·invariance + 25·variance + 1·covariance of the two views' expander outputs
// (functional::vicreg_terms). No negatives, no momentum encoder, no stop-gradient. The views go through separate
// forwards (BN per view, as the reference). Several processes: variance and covariance see the global batch.
//
// Registered names: "backbone", "expander".
#include "contrastive/methods/vicreg.h"

#include "contrastive/dist.h"
#include "contrastive/losses.h"
#include "contrastive/method.h"

namespace contrastive {

class VICRegMethod : public ResNetMethod {
 public:
  explicit VICRegMethod(const MethodSpec& spec) : ResNetMethod("vicreg", spec, 0) {
    const auto& o = options_of<VICRegOptions>(spec);
    const int64_t d = net->feature_dim(), e = o.expander_dim() > 0 ? o.expander_dim() : 4 * d;
    expander = register_module("expander", MLP(MLPOptions(d, e, e).layers(3).hidden_bn(true)));
    loss_ = VICRegLossOptions().sim_weight(o.sim_weight()).var_weight(o.var_weight()).cov_weight(o.cov_weight());
  }

  LossTerms loss(const std::vector<torch::Tensor>& views, const torch::Tensor&, const torch::Tensor&,
                 const StepContext&) override {
    TORCH_CHECK(views.size() == 2, "VICReg needs exactly 2 views");
    auto z1 = expander->forward(net->features(views[0]));
    auto z2 = expander->forward(net->features(views[1]));
    auto t = functional::vicreg_terms(dist::gather_for_loss(z1, gather), dist::gather_for_loss(z2, gather), loss_);
    LossTerms out;
    out.terms["invariance"] = loss_.sim_weight() * t.invariance;
    out.terms["variance"] = loss_.var_weight() * t.variance;
    out.terms["covariance"] = loss_.cov_weight() * t.covariance;
    add_collapse_stats(out.stats, z1, /*rank=*/true);
    return out;
  }

  MLP expander{nullptr};

 private:
  VICRegLossOptions loss_;
};

void register_vicreg(MethodRegistry& registry) {
  MethodInfo m;
  m.name = "vicreg";
  m.summary = "VICReg: invariance, variance and covariance terms on two views' embeddings, no negatives";
  m.paper = "Bardes, Ponce and LeCun, VICReg: Variance-Invariance-Covariance Regularization, ICLR 2022";
  // SGD at 0.1 x batch/256, picked on Fashion-MNIST (width 16, batch 256): 0.3 diverged at step 8; 1 epoch of
  // 10,000 images at 0.1: kNN 68.8% vs 65.3% untrained.
  m.defaults.lr = 0.1;
  m.defaults.lr_batch = 256;
  m.defaults.weight_decay = 1e-4;
  m.defaults.augment = "simclr-cifar";
  m.options = options_factory<VICRegOptions>(VICRegOptions(), [](VICRegOptions& o) {
    return std::vector<OptionKey>{
        {"sim_weight", "vicreg-sim", &o.sim_weight(), "weight of the invariance (mean squared error) term"},
        {"var_weight", "vicreg-var", &o.var_weight(), "weight of the variance (std hinge) term"},
        {"cov_weight", "vicreg-cov", &o.cov_weight(), "weight of the covariance (off-diagonal) term"},
        {"expander_dim", "expander-dim", &o.expander_dim(), "expander width (-1: 4 x the feature size)"},
    };
  });
  m.validate = [](const Config& c, int64_t) {
    const auto& o = method_options<VICRegOptions>(c.method, "vicreg");
    check_option(o.sim_weight() >= 0, "vicreg-sim", show_value(o.sim_weight()) + " (must be >= 0)");
    check_option(o.var_weight() >= 0, "vicreg-var", show_value(o.var_weight()) + " (must be >= 0)");
    check_option(o.cov_weight() >= 0, "vicreg-cov", show_value(o.cov_weight()) + " (must be >= 0)");
    check_option(o.expander_dim() == -1 || o.expander_dim() >= 1, "expander-dim", show_value(o.expander_dim()));
  };
  m.make = [](const MethodSpec& spec) -> MethodPtr { return std::make_shared<VICRegMethod>(spec); };
  registry.add(std::move(m));
}

}  // namespace contrastive
