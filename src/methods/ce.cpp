// Supervised cross-entropy baseline (SupContrast main_ce / the CDS baseline).
#include "contrastive/methods/ce.h"

#include "contrastive/method.h"
#include "contrastive/registry.h"

namespace contrastive {

class CEMethod : public ResNetMethod {
 public:
  explicit CEMethod(const MethodSpec& spec)
      : ResNetMethod("ce", spec, spec.num_classes), smoothing_(options_of<CEOptions>(spec).label_smoothing()) {
    const auto& m = options_of<CEOptions>(spec);
    // Semi-supervised baseline: the same steps, but only the labelled images of each batch give a loss.
    if (m.labeled_fraction() < 1.0 || m.labeled_per_class() > 0)
      labeled = register_buffer("labeled", choose_labeled(spec.train_labels, m.labeled_fraction(),
                                                          m.labeled_per_class(), spec.config.train.seed));
  }

  LossTerms loss(const std::vector<torch::Tensor>& views, const torch::Tensor& labels,
                 const torch::Tensor& indices, const StepContext&) override {
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

void register_ce(MethodRegistry& registry) {
  MethodInfo m;
  m.name = "ce";
  m.summary = "supervised cross-entropy baseline (optionally semi-supervised)";
  m.paper = "the CE baseline of SupContrast (Khosla et al., NeurIPS 2020) and CDS (Zhang et al., ECCV 2022)";
  m.uses_labels = m.classifier = true;
  m.min_views = 1;
  m.max_views = 16;
  m.min_batch = 1;
  m.bf16_measured =
      true;  // 90.21 vs 89.97% fp32 at the same budget (docs/speed.md, "Benchmark against Python PyTorch")
  m.defaults.lr = 0.1;  // the CDS baseline: 0.1 at batch 128, wd 5e-4
  m.defaults.lr_batch = 128;
  m.defaults.weight_decay = 5e-4;
  m.defaults.augment = "supervised";
  m.defaults.views = 1;
  m.options = options_factory<CEOptions>(CEOptions(), [](CEOptions& o) {
    return std::vector<OptionKey>{
        {"label_smoothing", "label-smoothing", &o.label_smoothing(), "cross-entropy label smoothing"},
        label_fraction_key(o.labeled_fraction()),
        label_per_class_key(o.labeled_per_class()),
    };
  });
  m.validate = [](const Config& c, int64_t) {
    const auto& o = method_options<CEOptions>(c.method, "ce");
    check_label_smoothing(o.label_smoothing());
    check_label_split(o.labeled_fraction(), o.labeled_per_class());
  };
  m.make = [](const MethodSpec& spec) -> MethodPtr { return std::make_shared<CEMethod>(spec); };
  registry.add(std::move(m));
}

}  // namespace contrastive
