// Barlow Twins: cross-correlation of the batch-standardised embeddings (docs/methods.md §10).
//
// Versus lightly 1.6.0 (lightly/loss/barlow_twins_loss.py): the same standardisation (_normalize, lines 92-101:
// F.batch_norm with training=True and no affine: biased variance, eps 1e-5 inside the square root),
// C = z̃1ᵀz̃2 / N and the same loss (lines 68-87); only the default λ differs (line 31: lightly 5e-3, ours 0.0051
// like facebookresearch/barlowtwins). Older lightly releases standardised with (z - mean) / torch.std(z):
// unbiased variance and no eps, i.e. every C entry scaled by (N-1)/N relative to the BatchNorm form;
// .unbiased_std(true).eps(0) gives that form.
#include <torch/torch.h>

#include <cmath>
#include <string>

#include "contrastive/losses.h"
#include "losses/loss_utils.h"

namespace contrastive {
namespace functional {

namespace {

// Per dimension over the batch: (z - mean) / sqrt(var + eps).
torch::Tensor standardise(const torch::Tensor& z, double eps, bool unbiased) {
  auto centred = z - z.mean(0, /*keepdim=*/true);
  auto var = z.var(/*dim=*/0, unbiased, /*keepdim=*/true);
  return centred / torch::sqrt(var + eps);
}

}  // namespace

torch::Tensor barlow_twins_loss(const torch::Tensor& z1, const torch::Tensor& z2,
                                const BarlowTwinsLossOptions& options) {
  const char* where = "barlow_twins_loss";
  detail::require_dim(z1, 2, where, "z1");
  detail::require_dim(z2, 2, where, "z2");
  detail::require(
      z1.sizes() == z2.sizes(), where,
      "z1 and z2 must have the same shape [N,D], got " + detail::shape_str(z1) + " and " + detail::shape_str(z2));
  detail::require(z1.size(0) >= 2, where,
                  "needs N >= 2 (standardisation over the batch), got shape " + detail::shape_str(z1));
  detail::require(z1.size(1) >= 1, where, "needs D >= 1, got shape " + detail::shape_str(z1));
  detail::require(std::isfinite(options.lambda()) && options.lambda() >= 0.0, where,
                  "lambda must be a finite value >= 0, got " + std::to_string(options.lambda()));
  detail::require(std::isfinite(options.eps()) && options.eps() >= 0.0, where,
                  "eps must be a finite value >= 0, got " + std::to_string(options.eps()));
  detail::NoAutocast no_autocast;  // float32 matmul under train --bf16
  auto a = detail::to_compute_dtype(z1);
  auto b = detail::to_compute_dtype(z2).to(a.scalar_type());
  const int64_t n = a.size(0), d = a.size(1);
  auto c = torch::matmul(standardise(a, options.eps(), options.unbiased_std()).t(),
                         standardise(b, options.eps(), options.unbiased_std())) /
           static_cast<double>(n);  // [D,D]
  auto on_diagonal = (c.diagonal() - 1.0).pow(2).sum();
  auto diagonal = torch::eye(d, torch::TensorOptions().dtype(torch::kBool).device(c.device()));
  auto off_diagonal = c.masked_fill(diagonal, 0.0).pow(2).sum();
  return on_diagonal + options.lambda() * off_diagonal;
}

}  // namespace functional

BarlowTwinsLossImpl::BarlowTwinsLossImpl(const BarlowTwinsLossOptions& options_) : options(options_) { reset(); }
void BarlowTwinsLossImpl::reset() {}
void BarlowTwinsLossImpl::pretty_print(std::ostream& stream) const {
  stream << "contrastive::BarlowTwinsLoss(lambda=" << options.lambda() << ", eps=" << options.eps()
         << ", unbiased_std=" << (options.unbiased_std() ? "true" : "false") << ")";
}
torch::Tensor BarlowTwinsLossImpl::forward(const torch::Tensor& z1, const torch::Tensor& z2) {
  return functional::barlow_twins_loss(z1, z2, options);
}

}  // namespace contrastive
