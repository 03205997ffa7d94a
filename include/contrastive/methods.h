// Training methods as plug-ins (docs/architecture.md): each owns its networks and state and answers
// "given these views and labels, what are your loss terms?". The trainer knows nothing method-specific.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "contrastive/config.h"
#include "contrastive/models.h"

namespace contrastive {

// Named loss terms (already weighted): their sum is what is minimised. `stats` are logged, not optimised.
struct LossTerms {
  std::map<std::string, torch::Tensor> terms;
  std::map<std::string, double> stats;
  torch::Tensor total() const;
};

// What the trainer tells a method about the current step.
struct StepContext {
  int64_t epoch = 0;  // 0-based
  int64_t step = 0;   // within the epoch
  int64_t steps_per_epoch = 1;
  int64_t global_step = 0;
  int64_t total_steps = 1;
  uint64_t seed = 0;  // per-step seed for any randomness inside the method
};

// Everything a method needs to be built: the resolved config and what the data look like.
struct MethodSpec {
  Config config;
  int64_t in_channels = 3;
  int64_t image_size = 32;
  int64_t num_classes = 10;
  int64_t train_size = 0;      // number of training images (memory bank)
  torch::Tensor train_labels;  // int64 [train_size] (semi-supervised label split)
  bool inference = false;      // built to evaluate or export a checkpoint: parts only training needs are skipped
};

class MethodImpl : public torch::nn::Module {
 public:
  explicit MethodImpl(std::string name) : name_(std::move(name)) {}
  const std::string& method_name() const { return name_; }
  // The loss terms of one step. `views` are the augmented views of the batch, `labels` [B], `indices` [B]
  // the dataset indices (memory bank, semi-supervised label mask).
  virtual LossTerms loss(const std::vector<torch::Tensor>& views, const torch::Tensor& labels,
                         const torch::Tensor& indices, const StepContext& ctx) = 0;
  // Called after each optimizer step (momentum encoders, queues that update after the step).
  virtual void after_step(const StepContext& /*ctx*/) {}
  // The backbone (for export and parameter counting): a ResNet for every method but AMDIM.
  virtual std::shared_ptr<torch::nn::Module> backbone() = 0;
  // Pre-head backbone feature [B, D] (not normalised): kNN, linear evaluation, embeddings.
  virtual torch::Tensor embed(const torch::Tensor& x) = 0;
  // Last-stage feature map [B, C, h, w] before pooling (ContrastiveCrop box localisation).
  virtual torch::Tensor feature_map(const torch::Tensor& x) = 0;
  // Class logits for evaluation, when the method trains a classifier (ce, cds); undefined otherwise.
  virtual torch::Tensor classify(const torch::Tensor& /*x*/) { return {}; }
  virtual bool has_classifier() const { return false; }
  // Parameters whose learning rate is not scheduled (SimSiam --fix-pred-lr).
  virtual std::vector<torch::Tensor> fixed_lr_parameters() { return {}; }
  // Semi-supervised runs: bool [train_size] mask of the images whose labels are used (undefined otherwise).
  virtual torch::Tensor labeled_mask() const { return {}; }

 private:
  std::string name_;
};

using MethodPtr = std::shared_ptr<MethodImpl>;

// Builds the method named in spec.config.method.name from the registry (registry.h). Unknown -> InputError.
MethodPtr make_method(const MethodSpec& spec);

// Builds the backbone described by a config (ResNet, or AMDIM's encoder exposed through the same interface).
ResNet make_backbone(const Config& config, int64_t in_channels, int64_t num_classes, int64_t bn_splits = 1);

}  // namespace contrastive

namespace contrastive {

// Semi-supervised split (§2): a stratified, seeded choice of labelled training images. With per_class > 0
// each class keeps min(per_class, its size) images, otherwise round(fraction * class size) (at least 1).
// Returns a bool [N] mask.
torch::Tensor choose_labeled(const torch::Tensor& labels, double fraction, int64_t per_class, uint64_t seed);

// CDS auxiliary heads (§2): for stage l (0..3) of a backbone with `stage_channels`, the projection to the last
// stage's width: SepConv stacks (design "sepconv") or a pooled MLP (design "mlp"); stage 3 is the identity.
// The result is pooled to [B, C_last].
class CDSHeadsImpl : public torch::nn::Module {
 public:
  CDSHeadsImpl(const std::vector<int64_t>& stage_channels, const std::string& design);
  // Pooled embeddings (not normalised) of the four stage outputs.
  std::vector<torch::Tensor> forward(const std::vector<torch::Tensor>& stages);

 private:
  std::string design_;
  std::vector<torch::nn::Sequential> heads_;  // stages 0..2
};
TORCH_MODULE(CDSHeads);

}  // namespace contrastive
