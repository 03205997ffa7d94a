// Supervised cross-entropy baseline (SupContrast main_ce / the CDS baseline).
#include "method_base.h"

namespace contrastive {

class CEMethod : public ResNetMethod {
 public:
  explicit CEMethod(const MethodSpec& spec)
      : ResNetMethod("ce", spec, spec.num_classes), smoothing_(spec.config.method.label_smoothing) {
    const auto& m = spec.config.method;
    // Semi-supervised baseline: the same steps, but only the labelled images of each batch give a loss.
    if (m.labeled_fraction < 1.0 || m.labeled_per_class > 0)
      labeled = register_buffer(
          "labeled", choose_labeled(spec.train_labels, m.labeled_fraction, m.labeled_per_class, spec.config.train.seed));
  }

  LossTerms loss(const std::vector<torch::Tensor>& views, const torch::Tensor& labels, const torch::Tensor& indices,
                 const StepContext&) override {
    auto logits = net->forward(views.at(0));
    LossTerms out;
    out.stats["train_top1"] = accuracy(logits, labels);
    auto y = labels;
    if (labeled.defined()) {
      auto li = labeled.index_select(0, indices.to(labeled.device())).nonzero().view(-1).to(logits.device());
      if (li.numel() == 0) {
        out.terms["ce"] = logits.sum() * 0;
        return out;
      }
      logits = logits.index_select(0, li);
      y = labels.index_select(0, li);
    }
    out.terms["ce"] = torch::nn::functional::cross_entropy(
        logits, y, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(smoothing_));
    return out;
  }

  torch::Tensor labeled;
  torch::Tensor classify(const torch::Tensor& x) override { return net->forward(x); }
  bool has_classifier() const override { return true; }
  torch::Tensor labeled_mask() const override { return labeled; }

 private:
  double smoothing_;
};

MethodPtr make_ce(const MethodSpec& spec) { return std::make_shared<CEMethod>(spec); }

}  // namespace contrastive
