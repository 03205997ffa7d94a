// VICReg: invariance, variance and covariance terms (docs/methods.md §10).
//
// Versus lightly 1.6.0 (lightly/loss/vicreg_loss.py): the same three terms and defaults (lines 45-52: λ = μ = 25,
// ν = 1, ε = 1e-4; lines 106-109: variance halved over the views, covariance summed over them; line 147: the
// unbiased x.var(dim=0)); lightly fixes γ at 1.0 (line 148) and also accepts [B,...,D] inputs (lines 165-175, the
// VICRegL generalisation), we take [N,D].
#include <torch/torch.h>

#include <cmath>
#include <string>

#include "contrastive/losses.h"
#include "losses/loss_utils.h"

namespace contrastive {
namespace functional {

namespace {

void require_finite_nonnegative(double value, const char* where, const std::string& name) {
  detail::require(std::isfinite(value) && value >= 0.0, where,
                  name + " must be a finite value >= 0, got " + std::to_string(value));
}

// mean_j relu(γ - sqrt(Var_j(z) + ε)), Var over the batch with the n - 1 denominator (torch.var's default).
torch::Tensor variance_term(const torch::Tensor& z, double gamma, double eps) {
  auto std_dev = torch::sqrt(z.var(/*dim=*/0, /*unbiased=*/true, /*keepdim=*/false) + eps);
  return torch::relu(gamma - std_dev).mean();
}

// Σ_{i≠j} C_ij² / d with C = (z - z̄)ᵀ(z - z̄) / (n - 1).
torch::Tensor covariance_term(const torch::Tensor& z) {
  const int64_t n = z.size(0), d = z.size(1);
  auto centred = z - z.mean(0, /*keepdim=*/true);
  auto cov = torch::matmul(centred.t(), centred) / static_cast<double>(n - 1);
  auto diagonal = torch::eye(d, torch::TensorOptions().dtype(torch::kBool).device(z.device()));
  return cov.masked_fill(diagonal, 0.0).pow(2).sum() / static_cast<double>(d);
}

}  // namespace

VICRegTerms vicreg_terms(const torch::Tensor& z1, const torch::Tensor& z2, const VICRegLossOptions& options) {
  const char* where = "vicreg_loss";
  detail::require_dim(z1, 2, where, "z1");
  detail::require_dim(z2, 2, where, "z2");
  detail::require(
      z1.sizes() == z2.sizes(), where,
      "z1 and z2 must have the same shape [N,D], got " + detail::shape_str(z1) + " and " + detail::shape_str(z2));
  detail::require(z1.size(0) >= 2, where,
                  "needs N >= 2 (variance over the batch), got shape " + detail::shape_str(z1));
  detail::require(z1.size(1) >= 1, where, "needs D >= 1, got shape " + detail::shape_str(z1));
  detail::require(std::isfinite(options.gamma()), where, "gamma must be finite");
  require_finite_nonnegative(options.eps(), where, "eps");
  detail::NoAutocast no_autocast;  // float32 matmuls under train --bf16
  auto a = detail::to_compute_dtype(z1);
  auto b = detail::to_compute_dtype(z2).to(a.scalar_type());
  VICRegTerms terms;
  terms.invariance = (a - b).pow(2).mean();
  terms.variance =
      0.5 * (variance_term(a, options.gamma(), options.eps()) + variance_term(b, options.gamma(), options.eps()));
  terms.covariance = covariance_term(a) + covariance_term(b);
  return terms;
}

torch::Tensor vicreg_loss(const torch::Tensor& z1, const torch::Tensor& z2, const VICRegLossOptions& options) {
  const char* where = "vicreg_loss";
  require_finite_nonnegative(options.sim_weight(), where, "sim_weight");
  require_finite_nonnegative(options.var_weight(), where, "var_weight");
  require_finite_nonnegative(options.cov_weight(), where, "cov_weight");
  const auto t = vicreg_terms(z1, z2, options);
  return options.sim_weight() * t.invariance + options.var_weight() * t.variance +
         options.cov_weight() * t.covariance;
}

}  // namespace functional

VICRegLossImpl::VICRegLossImpl(const VICRegLossOptions& options_) : options(options_) { reset(); }
void VICRegLossImpl::reset() {}
void VICRegLossImpl::pretty_print(std::ostream& stream) const {
  stream << "contrastive::VICRegLoss(sim_weight=" << options.sim_weight()
         << ", var_weight=" << options.var_weight() << ", cov_weight=" << options.cov_weight()
         << ", gamma=" << options.gamma() << ", eps=" << options.eps() << ")";
}
torch::Tensor VICRegLossImpl::forward(const torch::Tensor& z1, const torch::Tensor& z2) {
  return functional::vicreg_loss(z1, z2, options);
}

}  // namespace contrastive
