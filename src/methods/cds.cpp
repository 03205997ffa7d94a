// Contrastive Deep Supervision (docs/methods.md §2): CE on view 1 at the last layer plus λ·Σ_l SupCon (or the
// label-free SimCLR loss) on the four stage embeddings, both views through one forward (BN sees 2B images).
// `--cds-loss ce` is the DSN baseline: a Linear classifier on each of the heads of stages 1..3, trained with CE.
// Semi-supervised: CE and SupCon on labelled images, SimCLR on unlabelled ones. Distillation: feature distance
// to a CDS teacher's embeddings plus KD on logits. The heads are dropped at inference.
#include "contrastive/methods/cds.h"

#include "contrastive/common.h"
#include "contrastive/dist.h"
#include "contrastive/io.h"
#include "contrastive/losses.h"
#include "contrastive/method.h"

namespace contrastive {

namespace F = torch::nn::functional;

CDSHeadsImpl::CDSHeadsImpl(const std::vector<int64_t>& ch, const std::string& design) : design_(design) {
  const int64_t last = ch.at(3);
  for (int64_t l = 0; l < 3; ++l) {
    torch::nn::Sequential head;
    if (design == "sepconv") {
      for (int64_t i = l; i < 3; ++i) head->push_back(SepConv(ch[i], ch[i + 1]));  // halves the size each time
    } else {
      head->push_back(MLP(MLPOptions(ch[l], last, last)));  // after global pooling
    }
    heads_.push_back(register_module("aux" + std::to_string(l + 1), head));
  }
}

std::vector<torch::Tensor> CDSHeadsImpl::forward(const std::vector<torch::Tensor>& stages) {
  std::vector<torch::Tensor> out;
  for (size_t l = 0; l < 4; ++l) {
    if (l == 3) {
      out.push_back(stages[3].mean({2, 3}));  // aux4: the backbone's own global pool
    } else if (design_ == "sepconv") {
      out.push_back(heads_[l]->forward(stages[l]).mean({2, 3}));
    } else {
      out.push_back(heads_[l]->forward(stages[l].mean({2, 3})));
    }
  }
  return out;
}

namespace {

// A frozen CDS teacher for distillation, loaded from a checkpoint of any depth.
struct Teacher {
  MethodPtr method;
  bool train_bn = true;
};

}  // namespace

class CDSMethod : public ResNetMethod {
 public:
  explicit CDSMethod(const MethodSpec& spec)
      : ResNetMethod("cds", spec, spec.num_classes), cfg_(options_of<CDSOptions>(spec)) {
    std::vector<int64_t> ch;
    for (int64_t s = 0; s < 4; ++s) ch.push_back(net->stage_channels(s));
    heads = register_module("heads", CDSHeads(ch, cfg_.head()));
    if (cfg_.loss() == "ce") {  // DSN: one classifier per auxiliary head (stages 1..3), training-only like them
      aux_fc = register_module("aux_fc", torch::nn::ModuleList());
      for (int64_t l = 0; l < 3; ++l) aux_fc->push_back(torch::nn::Linear(ch[3], spec.num_classes));
    }
    supcon_ = SupConLossOptions().temperature(cfg_.temperature()).base_temperature(cfg_.base_temperature());
    if (cfg_.labeled_fraction() < 1.0 || cfg_.labeled_per_class() > 0) {
      labeled = register_buffer("labeled", choose_labeled(spec.train_labels, cfg_.labeled_fraction(),
                                                          cfg_.labeled_per_class(), spec.config.train.seed));
    }
    if (!cfg_.teacher().empty() && !spec.inference) load_teacher(cfg_.teacher(), ch[3], spec);
  }

  LossTerms loss(const std::vector<torch::Tensor>& views, const torch::Tensor& labels,
                 const torch::Tensor& indices, const StepContext&) override {
    TORCH_CHECK(views.size() == 2, "CDS needs exactly 2 views");
    const int64_t B = views[0].size(0);
    auto x = torch::cat({views[0], views[1]});
    auto stages = net->stages(x);
    auto embeddings = heads->forward(stages);
    auto logits = net->fc(embeddings[3]);
    auto s_logits = logits.narrow(0, 0, B);

    // Which samples carry labels (semi-supervised); all of them otherwise.
    torch::Tensor lab;
    if (labeled.defined()) lab = labeled.index_select(0, indices.to(labeled.device())).to(labels.device());
    LossTerms out;
    out.terms["ce"] = labelled_ce(s_logits, labels, lab);
    out.stats["train_top1"] = accuracy(s_logits, labels);
    std::vector<torch::Tensor> normalised;
    for (const auto& e : embeddings) normalised.push_back(l2n(e));
    if (aux_fc) {
      // DSN (--cds-loss ce): CE of each auxiliary classifier on view 1, like the final CE, per process. Stage 4
      // has no term of its own: its classifier is `fc`, whose CE is "ce" above, so w_4 is not used.
      for (int64_t l = 0; l < 3; ++l) {
        const double w = cfg_.lambda() * cfg_.weights()[l];
        if (w == 0) continue;
        auto aux_logits = aux_fc->at<torch::nn::LinearImpl>(l).forward(embeddings[l].narrow(0, 0, B));
        out.terms["ce_s" + std::to_string(l + 1)] = w * labelled_ce(aux_logits, labels, lab);
      }
    } else {
      // Several processes: the contrastive terms are those of the global batch (CE stays per process and is
      // averaged with the gradients).
      auto all_labels = dist::gather_for_loss_nograd(labels, gather);
      auto all_lab =
          lab.defined() ? dist::gather_for_loss_nograd(lab.to(torch::kUInt8), gather).to(torch::kBool) : lab;
      for (int64_t l = 0; l < 4; ++l) {
        const double w = cfg_.lambda() * cfg_.weights()[l];
        if (w == 0) continue;
        const auto& e = normalised[l];
        auto feats =
            dist::gather_for_loss(torch::stack({e.narrow(0, 0, B), e.narrow(0, B, B)}, 1), gather);  // [B, 2, D]
        out.terms["contrast_s" + std::to_string(l + 1)] = w * stage_contrastive(feats, all_labels, all_lab);
      }
    }
    if (teacher_) distill(x, s_logits, normalised, B, out);
    return out;
  }

  torch::Tensor classify(const torch::Tensor& x) override { return net->forward(x); }
  bool has_classifier() const override { return true; }
  torch::Tensor labeled_mask() const override { return labeled; }

  CDSHeads heads{nullptr};
  torch::nn::ModuleList aux_fc{nullptr};  // --cds-loss ce: Linear(C_4, classes) per head of stages 1..3
  torch::Tensor labeled;
  std::vector<torch::nn::Linear> adapt;

 private:
  // Cross-entropy over the samples that carry labels (`lab` undefined: all of them; none: a zero that keeps the
  // graph).
  torch::Tensor labelled_ce(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& lab) {
    const auto opts = F::CrossEntropyFuncOptions().label_smoothing(cfg_.label_smoothing());
    if (!lab.defined()) return F::cross_entropy(logits, labels, opts);
    auto li = lab.nonzero().view(-1);
    if (li.numel() == 0) return logits.sum() * 0;
    return F::cross_entropy(logits.index_select(0, li), labels.index_select(0, li), opts);
  }

  // SupCon with labels (cds_loss supcon) or SimCLR; semi-supervised: SupCon on labelled + SimCLR on unlabelled.
  torch::Tensor stage_contrastive(const torch::Tensor& feats, const torch::Tensor& labels,
                                  const torch::Tensor& lab) {
    const bool supervised = cfg_.loss() == "supcon";
    if (!lab.defined()) return functional::supcon_loss(feats, supervised ? labels : torch::Tensor(), {}, supcon_);
    auto li = lab.nonzero().view(-1), ui = (~lab).nonzero().view(-1);
    torch::Tensor sum = feats.sum() * 0;
    if (li.numel() > 0)
      sum = sum + functional::supcon_loss(feats.index_select(0, li),
                                          supervised ? labels.index_select(0, li) : torch::Tensor(), {}, supcon_);
    if (ui.numel() > 0) sum = sum + functional::supcon_loss(feats.index_select(0, ui), {}, {}, supcon_);
    return sum;
  }

  void load_teacher(const std::string& path, int64_t student_dim, const MethodSpec& spec) {
    const Checkpoint ckpt = Checkpoint::read(path);
    MethodSpec tspec = spec;
    tspec.config = ckpt.config();
    if (tspec.config.method.name != method_name())
      throw InputError(path + ": the teacher must be a CDS checkpoint (found method '" + tspec.config.method.name +
                       "')");
    method_options<CDSOptions>(tspec.config.method, method_name())
        .teacher("")
        .labeled_fraction(1.0)
        .labeled_per_class(0);
    auto t = make_method(tspec);
    ckpt.load_model(*t, "teacher state does not match its own config");
    for (auto& p : t->parameters()) p.set_requires_grad(false);
    teacher_ = std::make_shared<Teacher>(Teacher{t, cfg_.teacher_train_bn()});
    const int64_t tdim = std::dynamic_pointer_cast<ResNetImpl>(t->backbone())->feature_dim();
    if (tdim != student_dim) {
      for (int64_t l = 0; l < 4; ++l)
        adapt.push_back(register_module("adapt" + std::to_string(l + 1), torch::nn::Linear(student_dim, tdim)));
    }
  }

  // §2 KD variant: Σ_l feat_weight·‖t_l − A_l(s_l)‖₂ (Frobenius over both views, not squared, not averaged) and
  // KD = −mean_i Σ_c softmax(t/T)·log_softmax(s/T) on view 1, no T² factor.
  void distill(const torch::Tensor& x, const torch::Tensor& s_logits, const std::vector<torch::Tensor>& s_emb,
               int64_t B, LossTerms& out) {
    auto& t = *teacher_->method;
    if (t.parameters().front().device() != x.device()) t.to(x.device());
    t.train(teacher_->train_bn);  // the reference never calls eval(): BN uses batch statistics
    torch::Tensor t_logits;
    std::vector<torch::Tensor> t_emb;
    {
      torch::NoGradGuard no_grad;
      auto& tc = dynamic_cast<CDSMethod&>(t);
      auto stages = tc.net->stages(x);
      auto emb = tc.heads->forward(stages);
      t_logits = tc.net->fc(emb[3]).narrow(0, 0, B);
      for (auto& e : emb) t_emb.push_back(l2n(e));
    }
    torch::Tensor feat = s_logits.sum() * 0;
    for (int64_t l = 0; l < 4; ++l) {
      auto s = adapt.empty() ? s_emb[l] : adapt[l]->forward(s_emb[l]);
      feat = feat + (t_emb[l] - s).norm();
    }
    out.terms["feat_dist"] = cfg_.feat_weight() * feat;
    const double T = cfg_.kd_temperature();
    auto kd = -(F::softmax(t_logits / T, 1) * F::log_softmax(s_logits / T, 1)).sum(1).mean();
    out.terms["kd"] = cfg_.kd_weight() * kd;
  }

  CDSOptions cfg_;
  SupConLossOptions supcon_;
  std::shared_ptr<Teacher> teacher_;
};

void register_cds(MethodRegistry& registry) {
  MethodInfo m;
  m.name = "cds";
  m.summary = "Contrastive Deep Supervision: CE at the end, contrastive losses on every stage through heads";
  m.paper = "Zhang et al., Contrastive Deep Supervision, ECCV 2022";
  m.uses_labels = m.classifier = true;
  m.bf16_measured = true;  // docs/results.md runs trained in bf16 (CDS 90.97%); no same-budget fp32 A/B yet
  m.defaults.lr = 0.1;     // §2: 0.1 at batch 128, wd 5e-4
  m.defaults.lr_batch = 128;
  m.defaults.weight_decay = 5e-4;
  m.defaults.augment = "cds";
  m.options = options_factory<CDSOptions>(CDSOptions(), [](CDSOptions& o) {
    return std::vector<OptionKey>{
        {"temperature", "temperature", &o.temperature(), "softmax temperature of the stage losses"},
        {"base_temperature", "base-temperature", &o.base_temperature(), "the loss is scaled by T/T_base"},
        {"label_smoothing", "label-smoothing", &o.label_smoothing(), "cross-entropy label smoothing"},
        {"lambda", "cds-lambda", &o.lambda(), "weight of the contrastive terms", {"cds_lambda"}},
        {"weights",
         "cds-weights",
         &o.weights(),
         "per-stage multipliers of lambda, stages 1..4 (0 drops a stage)",
         {"cds_weights"}},
        {"loss", "cds-loss", &o.loss(), "stage loss: supcon | simclr | ce", {"cds_loss"}},
        {"head", "cds-head", &o.head(), "auxiliary heads: sepconv | mlp", {"cds_head"}},
        label_fraction_key(o.labeled_fraction()),
        label_per_class_key(o.labeled_per_class()),
        {"teacher", "teacher", &o.teacher(), "distillation: teacher checkpoint (a CDS run's .ckpt)"},
        {"kd_temperature", "kd-temperature", &o.kd_temperature(), "distillation: KD temperature"},
        {"kd_weight", "kd-weight", &o.kd_weight(), "distillation: weight of the KD term"},
        {"feat_weight", "feat-weight", &o.feat_weight(), "distillation: weight of the feature distance"},
        {"teacher_train_bn", "teacher-train-bn", &o.teacher_train_bn(),
         "distillation: teacher BN uses batch statistics (the reference)"},
    };
  });
  m.validate = [](const Config& c, int64_t) {
    const auto& o = method_options<CDSOptions>(c.method, "cds");
    check_temperature(o.temperature());
    check_temperature(o.base_temperature(), "base-temperature");
    check_label_smoothing(o.label_smoothing());
    check_option(o.lambda() >= 0, "cds-lambda", show_value(o.lambda()) + " (must be >= 0)");
    check_option(o.weights().size() == 4, "cds-weights", "needs 4 numbers (stages 1..4)");
    for (double w : o.weights()) check_option(w >= 0, "cds-weights", show_value(w) + " (must be >= 0)");
    check_option(o.loss() == "supcon" || o.loss() == "simclr" || o.loss() == "ce", "cds-loss",
                 "'" + o.loss() + "' (expected one of: ce, simclr, supcon)");
    check_option(o.head() == "sepconv" || o.head() == "mlp", "cds-head",
                 "'" + o.head() + "' (expected one of: mlp, sepconv)");
    check_label_split(o.labeled_fraction(), o.labeled_per_class());
    check_temperature(o.kd_temperature(), "kd-temperature");
    check_option(o.kd_weight() >= 0, "kd-weight", show_value(o.kd_weight()));
    check_option(o.feat_weight() >= 0, "feat-weight", show_value(o.feat_weight()));
  };
  m.make = [](const MethodSpec& spec) -> MethodPtr { return std::make_shared<CDSMethod>(spec); };
  registry.add(std::move(m));
}

}  // namespace contrastive
