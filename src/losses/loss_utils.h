// Small helpers shared by the loss implementations (validation messages, compute precision).
#pragma once

#include <c10/core/DispatchKeySet.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/types.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "contrastive/common.h"

namespace contrastive {
namespace detail {

// "[2, 3, 4]" for error messages.
inline std::string shape_str(const torch::Tensor& t) {
  if (!t.defined()) return "(undefined)";
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

// Throws InputError("<where>: <what>") unless `ok`.
inline void require(bool ok, const std::string& where, const std::string& what) {
  if (!ok) throw InputError(where + ": " + what);
}

inline void require_defined(const torch::Tensor& t, const std::string& where, const std::string& name) {
  require(t.defined(), where, name + " is undefined");
}

inline void require_dim(const torch::Tensor& t, int64_t dim, const std::string& where, const std::string& name) {
  require_defined(t, where, name);
  require(t.dim() == dim, where, name + " must be " + std::to_string(dim) + "-D, got shape " + shape_str(t));
}

inline void require_positive(double value, const std::string& where, const std::string& name) {
  require(std::isfinite(value) && value > 0.0, where,
          name + " must be a finite value > 0, got " + std::to_string(value));
}

// Losses run with autocast excluded: under a bf16 autocast forward (train --bf16) the embeddings arrive in bf16
// and are promoted to float32 below, and the similarity matmuls must then stay in float32 — autocast would
// otherwise round logits of up to 1/T (14 at T = 0.07) to bf16's 8 bits of mantissa.
struct NoAutocast : c10::impl::ExcludeDispatchKeyGuard {
  NoAutocast() : c10::impl::ExcludeDispatchKeyGuard(c10::autocast_dispatch_keyset) {}
};

// bf16/half are computed in float32 (logsumexp over many terms and the T/T_b factor need the range and
// precision); float and double keep their precision.
inline torch::Tensor to_compute_dtype(const torch::Tensor& t) {
  if (t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kHalf) return t.to(torch::kFloat32);
  require(t.is_floating_point(), "loss",
          "expected a floating-point tensor, got " + std::string(c10::toString(t.scalar_type())));
  return t;
}

// The fused SupCon operator (supcon_fused.cpp): `contrast` [N, D] view-major float32 CPU rows, anchors the first
// `anchor_rows`; positives share the label (labels [B]) or, without labels, the sample. Returns the mean over
// the anchors with a positive of -scale * (mean positive logit - log-sum-exp over the non-self logits), logits
// being contrast rows' dot products / temperature. fused_supcon_applies says whether it takes these arguments.
bool fused_supcon_applies(const torch::Tensor& contrast, const torch::Tensor& labels, const torch::Tensor& mask);
torch::Tensor fused_supcon(const torch::Tensor& contrast, const torch::Tensor& labels, int64_t batch,
                           int64_t anchor_rows, double temperature, double scale);

// SupCon steps 6–8 (docs/methods.md §1) on ready-made logits [rows, cols]: log Σ over every non-self column
// (masked logsumexp), mean log-probability over the positives `pos`, scaled by `scale` = T/T_b and averaged over
// the anchors that have a positive (0 if none). torch::where (not a product with a 0/1 mask) keeps a non-finite
// value of an excluded row (a lone sample: log 0) out of the result.
inline torch::Tensor supcon_from_logits(const torch::Tensor& logits, const torch::Tensor& pos,
                                        const torch::Tensor& self, double scale) {
  auto log_denominator = at::logsumexp(logits.masked_fill(self, -std::numeric_limits<double>::infinity()), 1);
  auto n_pos = pos.sum(1);
  auto has_pos = n_pos > 0;
  auto mean_log_prob_pos = (pos * logits).sum(1) / n_pos.clamp_min(1) - log_denominator;
  auto per_anchor = -scale * mean_log_prob_pos;
  auto kept = at::where(has_pos, per_anchor, at::zeros_like(per_anchor));
  return kept.sum() / has_pos.sum().clamp_min(1).to(kept.scalar_type());
}

}  // namespace detail
}  // namespace contrastive
