// SimSiam (docs/methods.md §5): backbone (zero_init_residual by default) + 3-layer projector whose last BN has
// no affine and whose last Linear bias is frozen + 2-layer bottleneck predictor; negative cosine with a
// stop-gradient on z. The two views go through SEPARATE forwards, so BN batches are per view (§9.3).
#include "contrastive/methods/simsiam.h"

#include "contrastive/losses.h"
#include "contrastive/method.h"

namespace contrastive {

namespace {

// The --no-stop-grad ablation: ½[-cos(p1,z2) - cos(p2,z1)] with gradient flowing into z as well. The paper
// shows this collapses (§5); functional::simsiam_loss always detaches z, so the ablation lives here.
torch::Tensor simsiam_loss_without_stop_grad(const torch::Tensor& p1, const torch::Tensor& p2,
                                             const torch::Tensor& z1, const torch::Tensor& z2) {
  const double eps = 1e-8;
  return -0.5 *
         (torch::cosine_similarity(p1, z2, 1, eps).mean() + torch::cosine_similarity(p2, z1, 1, eps).mean());
}

}  // namespace

class SimSiamMethod : public ResNetMethod {
 public:
  explicit SimSiamMethod(const MethodSpec& spec)
      : ResNetMethod("simsiam", spec, 0), cfg_(options_of<SimSiamOptions>(spec)) {
    const int64_t d = net->feature_dim();
    // §5: Linear(d,d,no bias)-BN-ReLU-Linear(d,d,no bias)-BN-ReLU-Linear(d,dim)-BN(dim, affine=False); the last
    // bias is frozen (requires_grad false), so make_optimizer leaves it out (§9.3).
    projector = register_module("projector", MLP(MLPOptions(d, d, cfg_.proj_dim())
                                                     .layers(3)
                                                     .hidden_bn(true)
                                                     .hidden_bias(false)
                                                     .last_bn(true)
                                                     .last_bn_affine(false)
                                                     .freeze_last_bias(true)));
    // §5: Linear(dim, h, no bias)-BN-ReLU-Linear(h, dim).
    predictor = register_module(
        "predictor",
        MLP(MLPOptions(cfg_.proj_dim(), cfg_.pred_hidden(), cfg_.proj_dim()).hidden_bn(true).hidden_bias(false)));
  }

  LossTerms loss(const std::vector<torch::Tensor>& views, const torch::Tensor&, const torch::Tensor&,
                 const StepContext&) override {
    TORCH_CHECK(views.size() == 2, "SimSiam needs exactly 2 views");
    auto z1 = projector->forward(net->features(views[0]));
    auto z2 = projector->forward(net->features(views[1]));
    auto p1 = predictor->forward(z1), p2 = predictor->forward(z2);
    LossTerms out;
    out.terms["simsiam"] = cfg_.no_stop_grad() ? simsiam_loss_without_stop_grad(p1, p2, z1, z2)
                                               : functional::simsiam_loss(p1, p2, z1, z2);
    // §5 collapse metric on the projector output of view 1.
    add_collapse_stats(out.stats, z1, /*rank=*/true);
    return out;
  }

  // §5 --fix-pred-lr: the predictor keeps the base learning rate.
  std::vector<torch::Tensor> fixed_lr_parameters() override {
    return cfg_.fix_pred_lr() ? predictor->parameters() : std::vector<torch::Tensor>{};
  }

  MLP projector{nullptr}, predictor{nullptr};

 private:
  SimSiamOptions cfg_;
};

void register_simsiam(MethodRegistry& registry) {
  MethodInfo m;
  m.name = "simsiam";
  m.summary = "SimSiam: a predictor and a stop-gradient between two views, no negatives, no momentum encoder";
  m.paper = "Chen and He, Exploring Simple Siamese Representation Learning, CVPR 2021";
  m.defaults.lr = 0.03;  // CIFAR appendix: 0.03 x batch/256, wd 5e-4
  m.defaults.lr_batch = 256;
  m.defaults.weight_decay = 5e-4;
  m.defaults.augment = "simclr-cifar";
  m.defaults.zero_init_residual = true;
  m.options = options_factory<SimSiamOptions>(SimSiamOptions(), [](SimSiamOptions& o) {
    return std::vector<OptionKey>{
        {"proj_dim", "proj-dim", &o.proj_dim(), "projector output size"},
        {"pred_hidden", "pred-hidden", &o.pred_hidden(), "predictor bottleneck size"},
        {"fix_pred_lr", "fix-pred-lr", &o.fix_pred_lr(), "the predictor keeps the base learning rate"},
        {"no_stop_grad", "no-stop-grad", &o.no_stop_grad(), "ablation: no stop-gradient (collapses)"},
    };
  });
  m.validate = [](const Config& c, int64_t) {
    const auto& o = method_options<SimSiamOptions>(c.method, "simsiam");
    check_at_least(o.proj_dim(), 1, "proj-dim");
    check_at_least(o.pred_hidden(), 1, "pred-hidden");
  };
  m.make = [](const MethodSpec& spec) -> MethodPtr { return std::make_shared<SimSiamMethod>(spec); };
  registry.add(std::move(m));
}

}  // namespace contrastive
