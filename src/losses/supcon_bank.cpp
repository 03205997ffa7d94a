// SupCon / SimCLR against in-batch views plus memory-bank entries (InstDisc-style negatives; methods.md §1 for
// the loss, with the bank rows appended to the candidate set). Same stable formulation as supcon.cpp: masked
// logsumexp over the non-self candidates, anchors without a positive left out of the mean.
#include <torch/torch.h>

#include "contrastive/losses.h"
#include "losses/loss_utils.h"

namespace contrastive {
namespace functional {

torch::Tensor supcon_with_bank(const torch::Tensor& features, const torch::Tensor& labels,
                               const torch::Tensor& bank, const torch::Tensor& bank_labels,
                               const SupConLossOptions& options) {
  const char* where = "supcon_with_bank";
  detail::require_positive(options.temperature(), where, "temperature");
  detail::require_positive(options.base_temperature(), where, "base_temperature");
  detail::require_defined(features, where, "features");
  detail::require(features.dim() >= 3, where,
                  "features must be [B,V,D], got shape " + detail::shape_str(features));
  detail::require_dim(bank, 2, where, "bank");
  const int64_t B = features.size(0), V = features.size(1), M = bank.size(0);
  detail::NoAutocast no_autocast;  // float32 logits under train --bf16
  auto feats = detail::to_compute_dtype(features).reshape({B, V, -1});
  detail::require(
      bank.size(1) == feats.size(2), where,
      "bank must be [M,D] with D = " + std::to_string(feats.size(2)) + ", got " + detail::shape_str(bank));
  detail::require(labels.defined() == bank_labels.defined(), where, "give labels and bank_labels together");
  const auto opts = feats.options();

  // Positive masks: in-batch [B,B] and bank [B,M].
  torch::Tensor m_batch, m_bank;
  if (labels.defined()) {
    detail::require(labels.numel() == B, where, "labels must have B elements, got " + detail::shape_str(labels));
    detail::require(bank_labels.numel() == M, where,
                    "bank_labels must have M elements, got " + detail::shape_str(bank_labels));
    auto y = labels.reshape({-1, 1}).to(opts.device());
    m_batch = torch::eq(y, y.t()).to(opts.dtype());
    m_bank = torch::eq(y, bank_labels.reshape({1, -1}).to(opts.device())).to(opts.dtype());
  } else {
    m_batch = torch::eye(B, opts);
    m_bank = torch::zeros({B, M}, opts);
  }

  auto contrast = feats.transpose(0, 1).reshape({V * B, -1});  // view-major, as in supcon_loss
  const bool all = options.contrast_mode() == ContrastMode::All;
  const int64_t A = all ? V : 1;
  auto anchors = all ? contrast : feats.select(1, 0);
  auto candidates = torch::cat({contrast, detail::to_compute_dtype(bank).detach().to(opts.dtype())});
  auto logits = torch::matmul(anchors, candidates.t()) / options.temperature();  // [A·B, V·B + M]

  auto self = torch::cat(
      {torch::eye(A * B, V * B, opts.dtype(torch::kBool)), torch::zeros({A * B, M}, opts.dtype(torch::kBool))}, 1);
  auto pos = torch::cat({m_batch.repeat({A, V}), m_bank.repeat({A, 1})}, 1).masked_fill(self, 0);
  return detail::supcon_from_logits(logits, pos, self, options.temperature() / options.base_temperature());
}

}  // namespace functional
}  // namespace contrastive
