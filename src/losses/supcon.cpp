// SupCon and NT-Xent (docs/methods.md §1).
//
// Deliberate difference from the reference (allowed by §1 / §9.1, behaviour unchanged): instead of
// subtracting the detached row max and taking log(Σ exp(·)·logits_mask), the denominator is a logsumexp over
// the row with the self-similarity set to -inf. Anchors with no positive are left out of the mean instead of
// contributing 0 (the upstream "n_i < 1e-6 -> 1" fix would add a 0 term and shrink the mean); both agree
// whenever every anchor has a positive, which is always the case for V ≥ 2 with labels or SimCLR.
#include <torch/torch.h>

#include "contrastive/losses.h"
#include "losses/loss_utils.h"

namespace contrastive {

ContrastMode parse_contrast_mode(const std::string& name) {
  if (name == "all") return ContrastMode::All;
  if (name == "one") return ContrastMode::One;
  throw InputError("contrast_mode: expected 'all' or 'one', got '" + name + "'");
}

namespace functional {

namespace {

const char* kSupCon = "supcon_loss";

void check_supcon_options(const SupConLossOptions& options) {
  detail::require_positive(options.temperature(), kSupCon, "temperature");
  detail::require_positive(options.base_temperature(), kSupCon, "base_temperature");
}

// M0 [B,B] (§1 step 1) in the compute dtype, on the features' device.
torch::Tensor positive_mask(const torch::Tensor& labels, const torch::Tensor& mask, int64_t batch,
                            const torch::TensorOptions& opts) {
  detail::require(!(labels.defined() && mask.defined()), kSupCon, "give either labels or mask, not both");
  if (labels.defined()) {
    detail::require(
        labels.numel() == batch, kSupCon,
        "labels must have B = " + std::to_string(batch) + " elements, got shape " + detail::shape_str(labels));
    auto y = labels.reshape({-1, 1}).to(opts.device());
    return torch::eq(y, y.t()).to(opts.dtype());
  }
  if (mask.defined()) {
    detail::require(mask.dim() == 2 && mask.size(0) == batch && mask.size(1) == batch, kSupCon,
                    "mask must be [B,B] = [" + std::to_string(batch) + "," + std::to_string(batch) +
                        "], got shape " + detail::shape_str(mask));
    return mask.to(opts.device(), opts.dtype());
  }
  return torch::eye(batch, opts);  // SimCLR: the only positive is the other view of the same sample
}

}  // namespace

torch::Tensor supcon_loss(const torch::Tensor& features, const torch::Tensor& labels, const torch::Tensor& mask,
                          const SupConLossOptions& options) {
  check_supcon_options(options);
  detail::require_defined(features, kSupCon, "features");
  detail::require(features.dim() >= 3, kSupCon,
                  "features must be [B,V,D] (or [B,V,...]), got shape " + detail::shape_str(features));
  const int64_t batch = features.size(0);
  const int64_t views = features.size(1);
  detail::require(batch > 0 && views > 0, kSupCon,
                  "features must be non-empty, got shape " + detail::shape_str(features));

  detail::NoAutocast no_autocast;  // float32 logits under train --bf16
  auto feats = detail::to_compute_dtype(features).reshape({batch, views, -1});
  const auto opts = feats.options();
  auto m0 = positive_mask(labels, mask, batch, opts);

  // Step 2: view-major contrast set [V·B, D] (all view-0 rows first).
  auto contrast = feats.transpose(0, 1).reshape({views * batch, -1});
  // Step 3: anchors.
  const bool all = options.contrast_mode() == ContrastMode::All;
  const int64_t anchor_views = all ? views : 1;
  if (options.fused() && detail::fused_supcon_applies(contrast, labels, mask)) {
    detail::require(
        !labels.defined() || labels.numel() == batch, kSupCon,
        "labels must have B = " + std::to_string(batch) + " elements, got shape " + detail::shape_str(labels));
    return detail::fused_supcon(contrast, labels, batch, anchor_views * batch, options.temperature(),
                                options.temperature() / options.base_temperature());
  }
  auto anchors = all ? contrast : feats.select(1, 0);
  const int64_t rows = anchor_views * batch;
  const int64_t cols = views * batch;

  // Step 4: logits [A·B, V·B].
  auto logits = torch::matmul(anchors, contrast.t()) / options.temperature();
  // Step 5: positive mask without self-contrast; anchor r is contrast column r.
  auto self = torch::eye(rows, cols, opts.dtype(torch::kBool));
  auto pos = m0.repeat({anchor_views, views}).masked_fill(self, 0);
  // Steps 6–8: masked logsumexp denominator, mean over positives, T/T_b, mean over anchors with a positive.
  return detail::supcon_from_logits(logits, pos, self, options.temperature() / options.base_temperature());
}

torch::Tensor nt_xent_loss(const torch::Tensor& z1, const torch::Tensor& z2, const NTXentLossOptions& options) {
  const char* where = "nt_xent_loss";
  detail::require_dim(z1, 2, where, "z1");
  detail::require_dim(z2, 2, where, "z2");
  detail::require(
      z1.sizes() == z2.sizes(), where,
      "z1 and z2 must have the same shape [B,D], got " + detail::shape_str(z1) + " and " + detail::shape_str(z2));
  detail::NoAutocast no_autocast;  // float32 logits under train --bf16
  auto a = detail::to_compute_dtype(z1);
  auto b = detail::to_compute_dtype(z2);
  if (options.normalize()) {
    a = torch::nn::functional::normalize(a, torch::nn::functional::NormalizeFuncOptions().dim(1));
    b = torch::nn::functional::normalize(b, torch::nn::functional::NormalizeFuncOptions().dim(1));
  }
  // §1: NT-Xent is SupCon with labels = None and V = 2.
  auto sup = SupConLossOptions()
                 .temperature(options.temperature())
                 .base_temperature(options.base_temperature().value_or(options.temperature()))
                 .contrast_mode(ContrastMode::All);
  return supcon_loss(torch::stack({a, b}, 1), {}, {}, sup);
}

}  // namespace functional

// ---------------------------------------------------------------------------------------------------------

SupConLossImpl::SupConLossImpl(const SupConLossOptions& options_) : options(options_) { reset(); }
void SupConLossImpl::reset() {}
void SupConLossImpl::pretty_print(std::ostream& stream) const {
  stream << "contrastive::SupConLoss(temperature=" << options.temperature()
         << ", base_temperature=" << options.base_temperature()
         << ", contrast_mode=" << (options.contrast_mode() == ContrastMode::All ? "all" : "one") << ")";
}
torch::Tensor SupConLossImpl::forward(const torch::Tensor& features, const torch::Tensor& labels,
                                      const torch::Tensor& mask) {
  return functional::supcon_loss(features, labels, mask, options);
}

NTXentLossImpl::NTXentLossImpl(const NTXentLossOptions& options_) : options(options_) { reset(); }
void NTXentLossImpl::reset() {}
void NTXentLossImpl::pretty_print(std::ostream& stream) const {
  stream << "contrastive::NTXentLoss(temperature=" << options.temperature()
         << ", base_temperature=" << options.base_temperature().value_or(options.temperature())
         << ", normalize=" << (options.normalize() ? "true" : "false") << ")";
}
torch::Tensor NTXentLossImpl::forward(const torch::Tensor& z1, const torch::Tensor& z2) {
  return functional::nt_xent_loss(z1, z2, options);
}

}  // namespace contrastive
