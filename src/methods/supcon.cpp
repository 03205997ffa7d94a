// SupCon and SimCLR (docs/methods.md §1, §3): backbone + projection MLP d→d→128 + L2 normalisation; the views
// go through one forward (BN sees every view of the batch) and the SupCon loss (labels) or SimCLR (none).
#include "contrastive/losses.h"
#include "method_base.h"

namespace contrastive {

class SupConMethod : public ResNetMethod {
 public:
  explicit SupConMethod(const MethodSpec& spec) : ResNetMethod(spec.config.method.name, spec, 0) {
    const auto& m = spec.config.method;
    head = register_module("head", make_projection_mlp(net->feature_dim(), m.proj_hidden, m.proj_dim));
    options_ = SupConLossOptions().temperature(m.temperature).base_temperature(m.base_temperature);
    supervised_ = m.name == "supcon";
  }

  LossTerms loss(const std::vector<torch::Tensor>& views, const torch::Tensor& labels, const torch::Tensor&,
                 const StepContext&) override {
    const int64_t B = views[0].size(0), V = static_cast<int64_t>(views.size());
    auto z = l2n(head->forward(net->features(torch::cat(views))));  // [V*B, D], view-major
    auto feats = z.view({V, B, -1}).transpose(0, 1);                  // [B, V, D]
    LossTerms out;
    out.terms[supervised_ ? "supcon" : "simclr"] =
        functional::supcon_loss(feats, supervised_ ? labels : torch::Tensor(), {}, options_);
    out.stats["collapse_std"] = functional::collapse_std(z.narrow(0, 0, B)).item<double>();
    out.stats["collapse_dim"] = static_cast<double>(z.size(1));
    return out;
  }

  MLP head{nullptr};

 private:
  SupConLossOptions options_;
  bool supervised_ = true;
};

MethodPtr make_supcon(const MethodSpec& spec) { return std::make_shared<SupConMethod>(spec); }

}  // namespace contrastive
