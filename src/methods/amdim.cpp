// AMDIM (docs/methods.md §7): its own convolutional encoder for 32×32 inputs with a global feature r1 and two
// local feature maps r5 (5×5) and r7 (7×7) mapped into the "RKHS" space; the NCE objective is
// functional::amdim_loss (1→5, 1→7, 5→5, each symmetrised, plus the score regulariser).
//
// Choices of this implementation (documented deviations / interpretations):
//  - ndf = config model.width and n_rkhs = 8·ndf: the reference defaults are ndf 128, n_rkhs 1024 (the same
//    ratio); CPU runs use a small width. Residual blocks have n_depth 3 and no BN inside (use_bn = 0), like the
//    reference defaults.
//  - Inputs smaller than 32×32 (Fashion-MNIST 28×28) are zero-padded to 32×32 (0 is the dataset mean after
//    normalisation), so the map sizes are exactly 30→14→7→5→3→1. Larger inputs keep their larger maps: r5/r7
//    then have more locations (the loss accepts any number) and r1 is the spatial mean of the last map.
//  - The residual layers are this project's own design: main path conv(k, stride)→ReLU→1×1 conv, shortcut
//    average-pooled with the same kernel/stride (and a 1×1 projection when the channel count changes).
//  - Both views go through one forward (the only BNs are at the outputs).
//  - The online evaluation classifiers on detached r1 (§7) are not trained here: `contrastive knn` and
//    `contrastive linear` evaluate the encoder instead.
#include "contrastive/methods/amdim.h"

#include "contrastive/losses.h"
#include "contrastive/method.h"
#include "models/amdim_encoder.h"

namespace contrastive {

class AMDIMMethod : public MethodImpl {
 public:
  explicit AMDIMMethod(const MethodSpec& spec) : MethodImpl("amdim") {
    encoder = register_module("encoder", AMDIMEncoder(spec.in_channels, spec.config.model.width));
  }

  LossTerms loss(const std::vector<torch::Tensor>& views, const torch::Tensor&, const torch::Tensor&,
                 const StepContext& ctx) override {
    TORCH_CHECK(views.size() == 2, "AMDIM needs exactly 2 views");
    const int64_t N = views[0].size(0);
    auto f = encoder->forward(torch::cat({views[0], views[1]}));
    auto half = [N](const torch::Tensor& t, int64_t i) { return t.narrow(0, i * N, N); };
    AMDIMFeatures x1{half(f.r1, 0), half(f.r5, 0), half(f.r7, 0)};
    AMDIMFeatures x2{half(f.r1, 1), half(f.r5, 1), half(f.r7, 1)};
    // The random 5→5 source locations are drawn from the step's seed (resumable, reproducible).
    auto out = functional::amdim_loss(x1, x2, step_generator(ctx.seed));
    LossTerms terms;
    terms.terms["nce_1t5"] = out.loss_1t5;
    terms.terms["nce_1t7"] = out.loss_1t7;
    terms.terms["nce_5t5"] = out.loss_5t5;
    terms.terms["lgt_reg"] = out.lgt_reg;
    add_collapse_stats(terms.stats, x1.r1);
    return terms;
  }

  std::shared_ptr<torch::nn::Module> backbone() override { return encoder.ptr(); }
  torch::Tensor embed(const torch::Tensor& x) override { return encoder->forward(x).r1; }
  torch::Tensor feature_map(const torch::Tensor& x) override { return encoder->forward(x).map7; }

  AMDIMEncoder encoder{nullptr};
};

void register_amdim(MethodRegistry& registry) {
  MethodInfo m;
  m.name = "amdim";
  m.summary = "AMDIM: NCE between global and local features of two views, with its own encoder";
  m.paper = "Bachman et al., Learning Representations by Maximizing Mutual Information Across Views, NeurIPS 2019";
  m.arch = "amdim";
  m.defaults.optimizer = "adam";  // §7: Adam 2e-4, betas (0.8, 0.999), wd 1e-5
  m.defaults.adam_betas = {0.8, 0.999};
  m.defaults.lr = 2e-4;
  m.defaults.weight_decay = 1e-5;
  m.defaults.augment = "amdim";
  m.options =
      options_factory<AMDIMOptions>(AMDIMOptions(), [](AMDIMOptions&) { return std::vector<OptionKey>{}; });
  m.make = [](const MethodSpec& spec) -> MethodPtr { return std::make_shared<AMDIMMethod>(spec); };
  registry.add(std::move(m));
}

}  // namespace contrastive
