// SupCon and SimCLR (docs/methods.md §1, §3): backbone + projection MLP d→d→128 + L2 normalisation; the views
// go through one forward (BN sees every view of the batch) and the SupCon loss (labels) or SimCLR (none).
// --multi-crop (e.g. 2x28,4x14): one forward per crop size; every crop of an image is a positive of the others.
// --negatives memory-bank (InstDisc-style): a bank [train_size, proj_dim] of normalised embeddings adds
// `bank_negatives` seeded random rows to the candidates of every anchor (functional::supcon_with_bank); after the
// optimizer step the batch's rows become normalize(m·old + (1−m)·mean over views of the detached features).
#include "contrastive/methods/supcon.h"

#include "contrastive/dist.h"
#include "contrastive/losses.h"
#include "contrastive/method.h"

namespace contrastive {

class SupConMethod : public ResNetMethod {
 public:
  SupConMethod(const MethodSpec& spec, const SupConOptions& m) : ResNetMethod(spec.config.method.name, spec, 0) {
    head = register_module("head",
                           make_projection_mlp(net->feature_dim(), m.proj_hidden(), m.proj_dim(), m.proj_bn()));
    options_ = SupConLossOptions().temperature(m.temperature()).base_temperature(m.base_temperature());
    supervised_ = method_info(spec.config).uses_labels;
    if (m.negatives() == "memory-bank") {
      TORCH_CHECK(spec.train_size > 0, "memory bank: the training set size is unknown");
      auto gen = step_generator(static_cast<uint64_t>(spec.config.train.seed) ^ 0xBA4CULL);
      bank = register_buffer("bank", l2n(torch::randn({spec.train_size, m.proj_dim()}, gen, torch::kFloat)));
      bank_labels = register_buffer("bank_labels", spec.train_labels.defined()
                                                       ? spec.train_labels.to(torch::kLong).clone()
                                                       : torch::full({spec.train_size}, -1, torch::kLong));
      bank_negatives_ = m.bank_negatives();
      bank_momentum_ = m.bank_momentum();
    }
  }

  LossTerms loss(const std::vector<torch::Tensor>& views, const torch::Tensor& labels,
                 const torch::Tensor& indices, const StepContext& ctx) override {
    const int64_t B = views[0].size(0), V = static_cast<int64_t>(views.size());
    auto z = embed_views(views);                      // [V*B, D], view-major
    auto feats = z.view({V, B, -1}).transpose(0, 1);  // [B, V, D]
    LossTerms out;
    const std::string& name = method_name();
    // Several processes: the loss is that of the global batch (every rank's embeddings, with gradient).
    auto all_feats = dist::gather_for_loss(feats, gather);
    auto all_labels = dist::gather_for_loss_nograd(labels, gather);
    if (bank.defined()) {
      out.terms[name] =
          bank_loss(all_feats, all_labels, dist::gather_for_loss_nograd(indices.to(labels.device()), gather), ctx);
    } else {
      out.terms[name] =
          functional::supcon_loss(all_feats, supervised_ ? all_labels : torch::Tensor(), {}, options_);
    }
    add_collapse_stats(out.stats, z.narrow(0, 0, B));
    return out;
  }

  // Memory bank: the stored rows of this step's images move towards their new embeddings.
  void after_step(const StepContext&) override {
    if (!pending_.defined()) return;
    torch::NoGradGuard no_grad;
    auto idx = pending_indices_.to(bank.device());
    auto old = bank.index_select(0, idx);
    bank.index_copy_(0, idx, l2n(old * bank_momentum_ + pending_.to(bank.device()) * (1.0 - bank_momentum_)));
    pending_ = torch::Tensor();
  }

  MLP head{nullptr};
  torch::Tensor bank, bank_labels;

 private:
  // Views of one size go through one forward (BN sees all of them together); with --multi-crop each size is
  // its own forward (as in SwAV), and the embeddings are concatenated back in view order.
  torch::Tensor embed_views(const std::vector<torch::Tensor>& views) {
    std::vector<torch::Tensor> parts;
    for (const auto& g : views_by_size(views)) parts.push_back(head->forward(net->features(g.batch)));
    return l2n(parts.size() == 1 ? parts[0] : torch::cat(parts));
  }

  torch::Tensor bank_loss(const torch::Tensor& feats, const torch::Tensor& labels, const torch::Tensor& indices,
                          const StepContext& ctx) {
    auto gen = step_generator(ctx.seed ^ 0xBA4CULL);
    auto rows = torch::randint(bank.size(0), {bank_negatives_}, gen, torch::kLong).to(bank.device());
    auto stored = bank.index_select(0, rows).to(feats.dtype());
    auto idx = indices.to(torch::kLong);
    // SimCLR: the dataset index is the "label", so the stored row of the same image is a positive, every other
    // row a negative; SupCon: rows with the anchor's class are positives.
    torch::Tensor y = supervised_ ? labels : idx.to(feats.device());
    torch::Tensor y_bank = supervised_ ? bank_labels.index_select(0, rows) : rows;
    pending_ = feats.detach().mean(1);
    pending_indices_ = idx;
    return functional::supcon_with_bank(feats, y, stored, y_bank, options_);
  }

  torch::Tensor pending_, pending_indices_;
  int64_t bank_negatives_ = 0;
  double bank_momentum_ = 0.5;
  SupConLossOptions options_;
  bool supervised_ = true;
};

namespace {

// SimCLROptions as SupConOptions: the method reads one type.
template <typename D>
SupConOptions as_supcon(const ContrastiveHeadOptions<D>& o) {
  return SupConOptions()
      .temperature(o.temperature())
      .base_temperature(o.base_temperature())
      .proj_hidden(o.proj_hidden())
      .proj_dim(o.proj_dim())
      .proj_bn(o.proj_bn())
      .negatives(o.negatives())
      .bank_negatives(o.bank_negatives())
      .bank_momentum(o.bank_momentum());
}

template <typename D>
std::vector<OptionKey> supcon_keys(ContrastiveHeadOptions<D>& o) {
  return {
      {"temperature", "temperature", &o.temperature(), "softmax temperature of the contrastive loss"},
      {"base_temperature", "base-temperature", &o.base_temperature(), "the loss is scaled by T/T_base"},
      {"proj_hidden", "proj-hidden", &o.proj_hidden(), "projection head hidden size (-1: the feature size)"},
      {"proj_dim", "proj-dim", &o.proj_dim(), "projection head output size"},
      {"proj_bn", "proj-bn", &o.proj_bn(), "BatchNorm after the projection head's hidden layer (SimCLR's head)"},
      {"negatives", "negatives", &o.negatives(), "in-batch | memory-bank"},
      {"bank_negatives", "bank-negatives", &o.bank_negatives(), "memory bank: negatives drawn per step"},
      {"bank_momentum", "bank-momentum", &o.bank_momentum(), "memory bank: update momentum of stored rows"},
  };
}

template <typename D>
MethodInfo supcon_info(const std::string& name, bool labels) {
  using Options = ContrastiveHeadOptions<D>;
  MethodInfo m;
  m.name = name;
  m.uses_labels = labels;
  m.max_views = 16;
  m.multi_crop = true;
  m.bf16_measured =
      true;             // docs/results.md runs trained in bf16 (SimCLR 88.3% linear); no same-budget fp32 A/B yet
  m.defaults.lr = 0.5;  // SupContrast README recipes: 0.5 at batch 1024, wd 1e-4
  m.defaults.lr_batch = 1024;
  m.defaults.weight_decay = 1e-4;
  m.defaults.augment = "simclr-cifar";
  m.options = options_factory<Options>(Options(), supcon_keys<D>);
  m.validate = [name](const Config& c, int64_t) {
    const auto& o = method_options<Options>(c.method, name);
    check_temperature(o.temperature());
    check_temperature(o.base_temperature(), "base-temperature");
    check_at_least(o.proj_dim(), 1, "proj-dim");
    check_option(o.proj_hidden() == -1 || o.proj_hidden() >= 1, "proj-hidden", show_value(o.proj_hidden()));
    check_option(o.negatives() == "in-batch" || o.negatives() == "memory-bank", "negatives",
                 "'" + o.negatives() + "' (expected one of: in-batch, memory-bank)");
    check_at_least(o.bank_negatives(), 1, "bank-negatives");
    check_option(o.bank_momentum() >= 0 && o.bank_momentum() < 1, "bank-momentum", show_value(o.bank_momentum()));
  };
  m.make = [](const MethodSpec& spec) -> MethodPtr {
    return std::make_shared<SupConMethod>(spec, as_supcon(options_of<Options>(spec)));
  };
  return m;
}

}  // namespace

void register_supcon(MethodRegistry& registry) {
  auto supcon = supcon_info<SupConDefaults>("supcon", true);
  supcon.summary = "supervised contrastive learning: images of one class are positives";
  supcon.paper = "Khosla et al., Supervised Contrastive Learning, NeurIPS 2020";
  registry.add(std::move(supcon));
  auto simclr = supcon_info<SimCLRDefaults>("simclr", false);
  simclr.summary = "SimCLR: the two views of an image are positives, all other images negatives (NT-Xent)";
  simclr.paper = "Chen et al., A Simple Framework for Contrastive Learning of Visual Representations, ICML 2020";
  registry.add(std::move(simclr));
}

}  // namespace contrastive
