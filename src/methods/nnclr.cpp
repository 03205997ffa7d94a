// NNCLR (docs/methods.md §10): backbone + projector (3 Linear layers, BN after each) + predictor (2 layers);
// a FIFO support set of past projections. The positive of view 1 is the nearest neighbour of its projection in
// the support set, contrasted against the other view's predictor outputs (InfoNCE, τ 0.1), symmetrised
// (functional::nnclr_loss). After the loss the batch's view-1 projections (every rank's) enter the support set.
//
// Registered names: "backbone", "projector", "predictor"; buffers "support" [Q, D] and "support_ptr".
#include "contrastive/methods/nnclr.h"

#include "contrastive/dist.h"
#include "contrastive/losses.h"
#include "contrastive/method.h"

namespace contrastive {

class NNCLRMethod : public ResNetMethod {
 public:
  explicit NNCLRMethod(const MethodSpec& spec) : ResNetMethod("nnclr", spec, 0) {
    const auto& o = options_of<NNCLROptions>(spec);
    const int64_t d = net->feature_dim();
    const int64_t ph = o.proj_hidden() > 0 ? o.proj_hidden() : 4 * d;
    const int64_t qh = o.pred_hidden() > 0 ? o.pred_hidden() : 8 * d;
    projector =
        register_module("projector", MLP(MLPOptions(d, ph, o.proj_dim()).layers(3).hidden_bn(true).last_bn(true)));
    predictor = register_module("predictor", MLP(MLPOptions(o.proj_dim(), qh, o.proj_dim()).hidden_bn(true)));
    // Random unit rows until real projections replace them (as a MoCo queue starts).
    auto gen = step_generator(static_cast<uint64_t>(spec.config.train.seed) ^ 0x4E4EC1ULL);
    support = register_buffer("support", l2n(torch::randn({o.support_size(), o.proj_dim()}, gen, torch::kFloat)));
    support_ptr = register_buffer("support_ptr", torch::zeros({1}, torch::kLong));
    options_ = NNCLRLossOptions().temperature(o.temperature());
  }

  LossTerms loss(const std::vector<torch::Tensor>& views, const torch::Tensor&, const torch::Tensor&,
                 const StepContext&) override {
    TORCH_CHECK(views.size() == 2, "NNCLR needs exactly 2 views");
    auto z1 = projector->forward(net->features(views[0]));
    auto z2 = projector->forward(net->features(views[1]));
    auto p1 = predictor->forward(z1), p2 = predictor->forward(z2);
    // Several processes: the other images of the global batch are the negatives.
    auto g = [this](const torch::Tensor& t) { return dist::gather_for_loss(t, gather); };
    auto bank = support.to(z1.dtype());
    LossTerms out;
    out.terms["nnclr"] = functional::nnclr_loss(g(z1), g(z2), g(p1), g(p2), bank, options_);
    add_collapse_stats(out.stats, z1, /*rank=*/true);
    enqueue(dist::gather_for_loss_nograd(l2n(z1.detach()).to(torch::kFloat), gather));
    return out;
  }

  MLP projector{nullptr}, predictor{nullptr};
  torch::Tensor support, support_ptr;

 private:
  // FIFO with wrap-around: any batch size fits any support size.
  void enqueue(const torch::Tensor& rows) {
    torch::NoGradGuard no_grad;
    const int64_t n = std::min(rows.size(0), support.size(0)), Q = support.size(0);
    const int64_t ptr = support_ptr.item<int64_t>();
    auto idx = (torch::arange(n, torch::kLong) + ptr).remainder(Q).to(support.device());
    support.index_copy_(0, idx, rows.narrow(0, 0, n).to(support.device()));
    support_ptr.fill_((ptr + n) % Q);
  }

  NNCLRLossOptions options_;
};

void register_nnclr(MethodRegistry& registry) {
  MethodInfo m;
  m.name = "nnclr";
  m.summary = "NNCLR: the nearest neighbour of a view's projection in a support set is its positive";
  m.paper = "Dwibedi et al., With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning, ICCV 2021";
  // SGD at 0.1 x batch/256, picked on Fashion-MNIST (width 16, batch 256): 1 epoch of 10,000 images: kNN 67.7% at
  // 0.1, 64.2% at 0.3, 65.3% untrained.
  m.defaults.lr = 0.1;
  m.defaults.lr_batch = 256;
  m.defaults.weight_decay = 1e-4;
  m.defaults.augment = "simclr-cifar";
  m.options = options_factory<NNCLROptions>(NNCLROptions(), [](NNCLROptions& o) {
    return std::vector<OptionKey>{
        {"temperature", "temperature", &o.temperature(), "softmax temperature of InfoNCE"},
        {"support_size", "support-size", &o.support_size(), "rows of the support set of past projections"},
        {"proj_hidden", "proj-hidden", &o.proj_hidden(), "projector hidden size (-1: 4 x the feature size)"},
        {"proj_dim", "proj-dim", &o.proj_dim(), "projector output size"},
        {"pred_hidden", "pred-hidden", &o.pred_hidden(), "predictor hidden size (-1: 8 x the feature size)"},
    };
  });
  m.validate = [](const Config& c, int64_t) {
    const auto& o = method_options<NNCLROptions>(c.method, "nnclr");
    check_temperature(o.temperature());
    check_at_least(o.support_size(), 1, "support-size");
    check_option(o.proj_hidden() == -1 || o.proj_hidden() >= 1, "proj-hidden", show_value(o.proj_hidden()));
    check_at_least(o.proj_dim(), 1, "proj-dim");
    check_option(o.pred_hidden() == -1 || o.pred_hidden() >= 1, "pred-hidden", show_value(o.pred_hidden()));
  };
  m.make = [](const MethodSpec& spec) -> MethodPtr { return std::make_shared<NNCLRMethod>(spec); };
  registry.add(std::move(m));
}

}  // namespace contrastive
