// AMDIM NCE and the three-task AMDIM objective (docs/methods.md §7).
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "contrastive/losses.h"
#include "losses/loss_utils.h"

namespace contrastive {
namespace functional {

namespace {

// r [N,D,L...] -> [N,D,L] (any spatial layout flattened).
torch::Tensor as_locations(const torch::Tensor& r, const char* where, const std::string& name) {
  detail::require_defined(r, where, name);
  detail::require(r.dim() >= 3, where, name + " must be [N,D,L] or [N,D,H,W], got shape " + detail::shape_str(r));
  return r.reshape({r.size(0), r.size(1), -1});
}

// r1 [N,D] or [N,D,1,1] -> [N,D].
torch::Tensor as_global(const torch::Tensor& r, const char* where, const std::string& name) {
  detail::require_defined(r, where, name);
  detail::require(r.dim() >= 2 && r.numel() == r.size(0) * r.size(1), where,
                  name + " must be [N,D] (or [N,D,1,1]), got shape " + detail::shape_str(r));
  return r.reshape({r.size(0), r.size(1)});
}

// One r5 location per sample: r [N,D,L], idx [N] -> [N,D].
torch::Tensor pick_locations(const torch::Tensor& r, const torch::Tensor& idx, const char* where,
                             const std::string& name) {
  detail::require_defined(idx, where, name);
  detail::require(
      idx.numel() == r.size(0), where,
      name + " must have N = " + std::to_string(r.size(0)) + " elements, got shape " + detail::shape_str(idx));
  // The range check reads two values back to the host (a sync on CUDA); cheap next to the NCE itself.
  auto index = idx.reshape({-1, 1, 1}).to(r.device(), torch::kLong).expand({r.size(0), r.size(1), 1});
  detail::require(
      index.numel() == 0 || (index.min().item<int64_t>() >= 0 && index.max().item<int64_t>() < r.size(2)), where,
      name + " must lie in [0, " + std::to_string(r.size(2)) + ")");
  return r.gather(2, index).squeeze(2);
}

}  // namespace

AMDIMNCEResult amdim_nce(const torch::Tensor& r_src, const torch::Tensor& r_trg, double tclip) {
  const char* where = "amdim_nce";
  detail::require_positive(tclip, where, "tclip");
  detail::require_dim(r_src, 2, where, "r_src");
  auto trg = as_locations(r_trg, where, "r_trg");
  const int64_t n = r_src.size(0);
  const int64_t d = r_src.size(1);
  detail::require(
      trg.size(0) == n && trg.size(1) == d, where,
      "r_src [N,D] and r_trg [N,D,L] disagree: " + detail::shape_str(r_src) + " vs " + detail::shape_str(r_trg));
  detail::require(n >= 2, where,
                  "needs N >= 2 (the negatives are the other images), got N = " + std::to_string(n));
  const int64_t locs = trg.size(2);
  detail::require(locs >= 1, where, "r_trg has no locations");

  detail::NoAutocast no_autocast;  // float32 logits under train --bf16
  auto src = detail::to_compute_dtype(r_src);
  auto tgt = detail::to_compute_dtype(trg).to(src.scalar_type());
  // s(i,j,l) = r_src_i · r_trg_{j,:,l} / √D, shape [N,N,L].
  auto scores = torch::matmul(src, tgt.permute({1, 0, 2}).reshape({d, n * locs})).reshape({n, n, locs}) /
                std::sqrt(static_cast<double>(d));
  // Regulariser on the raw scores, then the soft clip (§7).
  auto lgt_reg = 0.05 * scores.pow(2).mean();
  scores = tclip * torch::tanh(scores / tclip);

  // Positives s(i,i,l): [N,L].
  auto pos = torch::diagonal(scores, 0, 0, 1).t();
  // Negatives of image i: every location of every image j≠i, shared across l. logsumexp over them, [N,1].
  auto same = torch::eye(n, scores.options().dtype(torch::kBool)).unsqueeze(2).expand({n, n, locs});
  auto neg = scores.masked_fill(same, -std::numeric_limits<double>::infinity()).reshape({n, n * locs});
  auto neg_lse = torch::logsumexp(neg, 1, /*keepdim=*/true);
  // log-softmax of the positive against {positive} ∪ negatives; logaddexp is the max-shifted form.
  auto log_prob = pos - torch::logaddexp(pos, neg_lse);
  return {-log_prob.mean(), lgt_reg};
}

AMDIMLossOutput amdim_loss(const AMDIMFeatures& x1, const AMDIMFeatures& x2, const torch::Tensor& idx1,
                           const torch::Tensor& idx2, const AMDIMLossOptions& options) {
  const char* where = "amdim_loss";
  auto r1_1 = as_global(x1.r1, where, "x1.r1");
  auto r1_2 = as_global(x2.r1, where, "x2.r1");
  auto r5_1 = as_locations(x1.r5, where, "x1.r5");
  auto r5_2 = as_locations(x2.r5, where, "x2.r5");
  auto r7_1 = as_locations(x1.r7, where, "x1.r7");
  auto r7_2 = as_locations(x2.r7, where, "x2.r7");
  // 5→5 sources: one location per sample of each view's 5×5 map.
  auto s5_1 = pick_locations(r5_1, idx1, where, "idx1");
  auto s5_2 = pick_locations(r5_2, idx2, where, "idx2");
  const double c = options.tclip();

  // Each task symmetrised ½(x1→x2 + x2→x1); the regulariser is accumulated the same way over all tasks.
  auto task = [&](const torch::Tensor& src1, const torch::Tensor& trg2, const torch::Tensor& src2,
                  const torch::Tensor& trg1, torch::Tensor& reg) {
    auto a = amdim_nce(src1, trg2, c);
    auto b = amdim_nce(src2, trg1, c);
    auto term_reg = 0.5 * (a.lgt_reg + b.lgt_reg);
    reg = reg.defined() ? reg + term_reg : term_reg;
    return 0.5 * (a.loss + b.loss);
  };
  AMDIMLossOutput out;
  out.loss_1t5 = task(r1_1, r5_2, r1_2, r5_1, out.lgt_reg);
  out.loss_1t7 = task(r1_1, r7_2, r1_2, r7_1, out.lgt_reg);
  out.loss_5t5 = task(s5_1, r5_2, s5_2, r5_1, out.lgt_reg);
  out.total = out.loss_1t5 + out.loss_1t7 + out.loss_5t5 + out.lgt_reg;
  return out;
}

AMDIMLossOutput amdim_loss(const AMDIMFeatures& x1, const AMDIMFeatures& x2,
                           c10::optional<at::Generator> generator, const AMDIMLossOptions& options) {
  const char* where = "amdim_loss";
  auto r5_1 = as_locations(x1.r5, where, "x1.r5");
  auto r5_2 = as_locations(x2.r5, where, "x2.r5");
  // Drawn on the CPU (so a CPU generator works for CUDA features too), then moved by pick_locations.
  auto cpu_long = torch::TensorOptions().dtype(torch::kLong);
  auto idx1 = torch::randint(r5_1.size(2), {r5_1.size(0)}, generator, cpu_long);
  auto idx2 = torch::randint(r5_2.size(2), {r5_2.size(0)}, generator, cpu_long);
  return amdim_loss(x1, x2, idx1, idx2, options);
}

}  // namespace functional

AMDIMLossImpl::AMDIMLossImpl(const AMDIMLossOptions& options_) : options(options_) { reset(); }
void AMDIMLossImpl::reset() {}
void AMDIMLossImpl::pretty_print(std::ostream& stream) const {
  stream << "contrastive::AMDIMLoss(tclip=" << options.tclip() << ")";
}
AMDIMLossOutput AMDIMLossImpl::forward(const AMDIMFeatures& x1, const AMDIMFeatures& x2, const torch::Tensor& idx1,
                                       const torch::Tensor& idx2) {
  if (idx1.defined() && idx2.defined()) return functional::amdim_loss(x1, x2, idx1, idx2, options);
  if (idx1.defined() || idx2.defined()) throw InputError("AMDIMLoss: give both idx1 and idx2, or neither");
  return functional::amdim_loss(x1, x2, generator, options);
}

}  // namespace contrastive
