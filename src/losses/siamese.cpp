// Cosine losses with a stop-gradient: SimSiam (docs/methods.md §5), BYOL (§6); the collapse metric (§5).
#include <torch/torch.h>

#include <cmath>

#include "contrastive/losses.h"
#include "losses/loss_utils.h"

namespace contrastive {
namespace functional {

namespace {

// cos(p, sg(z)) per row, [N], in the compute precision; z is detached here (§9.2).
torch::Tensor cosine_to_target(const torch::Tensor& p, const torch::Tensor& z, double eps, const char* where) {
  detail::require_dim(p, 2, where, "p");
  detail::require_dim(z, 2, where, "z");
  detail::require(
      p.sizes() == z.sizes(), where,
      "p and z must have the same shape [N,D], got " + detail::shape_str(p) + " and " + detail::shape_str(z));
  detail::require_positive(eps, where, "eps");
  detail::NoAutocast no_autocast;  // float32 logits under train --bf16
  auto pc = detail::to_compute_dtype(p);
  auto zc = detail::to_compute_dtype(z).detach().to(pc.scalar_type());
  return torch::cosine_similarity(pc, zc, /*dim=*/1, eps);
}

}  // namespace

torch::Tensor negative_cosine(const torch::Tensor& p, const torch::Tensor& z, double eps) {
  return -cosine_to_target(p, z, eps, "negative_cosine").mean();
}

torch::Tensor simsiam_loss(const torch::Tensor& p1, const torch::Tensor& p2, const torch::Tensor& z1,
                           const torch::Tensor& z2, double eps) {
  return 0.5 * (negative_cosine(p1, z2, eps) + negative_cosine(p2, z1, eps));
}

torch::Tensor byol_loss(const torch::Tensor& p, const torch::Tensor& z, double eps) {
  return (2.0 - 2.0 * cosine_to_target(p, z, eps, "byol_loss")).mean();
}

torch::Tensor byol_symmetric_loss(const torch::Tensor& p1, const torch::Tensor& p2, const torch::Tensor& z1,
                                  const torch::Tensor& z2, double eps) {
  return byol_loss(p1, z2, eps) + byol_loss(p2, z1, eps);
}

torch::Tensor collapse_std(const torch::Tensor& z) {
  const char* where = "collapse_std";
  detail::require_dim(z, 2, where, "z");
  detail::require(z.size(0) >= 2, where, "needs at least 2 samples, got shape " + detail::shape_str(z));
  torch::NoGradGuard no_grad;
  auto zn = torch::nn::functional::normalize(detail::to_compute_dtype(z).to(torch::kFloat32),
                                             torch::nn::functional::NormalizeFuncOptions().dim(1));
  return zn.std(/*dim=*/0, /*unbiased=*/true).mean();
}

torch::Tensor effective_rank(const torch::Tensor& z) {
  const char* where = "effective_rank";
  detail::require_dim(z, 2, where, "z");
  detail::require(z.size(0) >= 2, where, "needs at least 2 samples, got shape " + detail::shape_str(z));
  torch::NoGradGuard no_grad;
  detail::NoAutocast no_autocast;
  auto zn = torch::nn::functional::normalize(detail::to_compute_dtype(z).to(torch::kFloat32),
                                             torch::nn::functional::NormalizeFuncOptions().dim(1));
  // A diverged step (NaN/Inf outputs) has no rank; the SVD would throw. NaN lets the trainer's non-finite
  // policy (--on-nan) deal with the step instead of an internal error.
  if (!torch::isfinite(zn).all().item<bool>()) return torch::full({}, std::nan(""), zn.options());
  auto s = torch::linalg_svdvals(zn);
  auto p = s / s.sum().clamp_min(1e-12);
  return torch::exp(-(p * torch::log(p.clamp_min(1e-12))).sum());
}

}  // namespace functional

SimSiamLossImpl::SimSiamLossImpl(const SimSiamLossOptions& options_) : options(options_) { reset(); }
void SimSiamLossImpl::reset() {}
void SimSiamLossImpl::pretty_print(std::ostream& stream) const {
  stream << "contrastive::SimSiamLoss(eps=" << options.eps() << ")";
}
torch::Tensor SimSiamLossImpl::forward(const torch::Tensor& p1, const torch::Tensor& p2, const torch::Tensor& z1,
                                       const torch::Tensor& z2) {
  return functional::simsiam_loss(p1, p2, z1, z2, options.eps());
}

BYOLLossImpl::BYOLLossImpl(const BYOLLossOptions& options_) : options(options_) { reset(); }
void BYOLLossImpl::reset() {}
void BYOLLossImpl::pretty_print(std::ostream& stream) const {
  stream << "contrastive::BYOLLoss(eps=" << options.eps() << ")";
}
torch::Tensor BYOLLossImpl::forward(const torch::Tensor& p1, const torch::Tensor& p2, const torch::Tensor& z1,
                                    const torch::Tensor& z2) {
  return functional::byol_symmetric_loss(p1, p2, z1, z2, options.eps());
}

}  // namespace contrastive
