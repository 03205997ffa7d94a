// NNCLR: nearest-neighbour positives from a support set, one-directional InfoNCE (docs/methods.md §10).
//
// Versus lightly 1.6.0:
//  - Loss. lightly's NNCLR recipe (the example in lightly/models/modules/nn_memory_bank.py, lines 29-38) is
//    0.5 * (NTXentLoss(0.1)(NN(z0), p1) + NTXentLoss(0.1)(NN(z1), p0)), and NTXentLoss
//    (lightly/loss/ntx_ent_loss.py, forward) is the 2B-way SimCLR loss: rows for both arguments, 2B - 1 candidates
//    per row including the same-side pairs (NN·NN and p·p). Ours is the paper's form: rows NN(z_i) only, the B
//    predictions p_k as the candidates. The two are different numbers (ours has fewer negatives and no p-side
//    rows).
//  - Lookup. NNMemoryBankModule.forward (nn_memory_bank.py, lines 61-68) takes the argmax of the cosine between
//    normalised output and normalised bank rows, like ours, but returns the RAW bank row; ours returns it
//    normalised. lightly stores unnormalised z in its bank (NTXentLoss normalises afterwards), so after
//    normalisation the two agree; the parity test compares exactly that.
#include <torch/torch.h>

#include <string>

#include "contrastive/losses.h"
#include "losses/loss_utils.h"

namespace contrastive {
namespace functional {

namespace {

torch::Tensor l2n(const torch::Tensor& x) {
  return torch::nn::functional::normalize(x, torch::nn::functional::NormalizeFuncOptions().dim(1));
}

void require_pair(const torch::Tensor& a, const torch::Tensor& b, const char* where, const std::string& na,
                  const std::string& nb) {
  detail::require_dim(a, 2, where, na);
  detail::require_dim(b, 2, where, nb);
  detail::require(a.sizes() == b.sizes(), where,
                  na + " and " + nb + " must have the same shape [B,D], got " + detail::shape_str(a) + " and " +
                      detail::shape_str(b));
}

}  // namespace

torch::Tensor nearest_neighbours(const torch::Tensor& z, const torch::Tensor& support) {
  const char* where = "nearest_neighbours";
  detail::require_dim(z, 2, where, "z");
  detail::require_dim(support, 2, where, "support");
  detail::require(support.size(1) == z.size(1), where,
                  "support must be [M,D] with D = " + std::to_string(z.size(1)) +
                      " (one entry per row), got shape " + detail::shape_str(support));
  detail::require(support.size(0) >= 1, where, "the support set is empty");
  torch::NoGradGuard no_grad;  // the neighbours are targets: no gradient to z or the support
  detail::NoAutocast no_autocast;
  auto zn = l2n(detail::to_compute_dtype(z).detach());
  auto sn = l2n(detail::to_compute_dtype(support).detach().to(zn.scalar_type()));
  auto index = torch::matmul(zn, sn.t()).argmax(1);  // [N]
  return sn.index_select(0, index);
}

torch::Tensor nnclr_info_nce(const torch::Tensor& a, const torch::Tensor& b, double temperature) {
  const char* where = "nnclr_info_nce";
  detail::require_positive(temperature, where, "temperature");
  require_pair(a, b, where, "a", "b");
  detail::require(a.size(0) >= 1, where, "empty batch");
  detail::NoAutocast no_autocast;  // float32 logits under train --bf16
  auto bn = l2n(detail::to_compute_dtype(b));
  auto an = l2n(detail::to_compute_dtype(a).to(bn.scalar_type()));
  auto logits = torch::matmul(an, bn.t()) / temperature;  // [B,B]: row i = anchor i against every b_k
  // Cross-entropy with target i on row i.
  return (torch::logsumexp(logits, 1) - logits.diagonal()).mean();
}

torch::Tensor nnclr_loss(const torch::Tensor& z1, const torch::Tensor& z2, const torch::Tensor& p1,
                         const torch::Tensor& p2, const torch::Tensor& support, const NNCLRLossOptions& options) {
  const char* where = "nnclr_loss";
  detail::require_positive(options.temperature(), where, "temperature");
  require_pair(z1, z2, where, "z1", "z2");
  require_pair(p1, p2, where, "p1", "p2");
  require_pair(z1, p1, where, "z1", "p1");
  auto nn1 = nearest_neighbours(z1, support);
  auto nn2 = nearest_neighbours(z2, support);
  return 0.5 * (nnclr_info_nce(nn1, p2, options.temperature()) + nnclr_info_nce(nn2, p1, options.temperature()));
}

}  // namespace functional

NNCLRLossImpl::NNCLRLossImpl(const NNCLRLossOptions& options_) : options(options_) { reset(); }
void NNCLRLossImpl::reset() {}
void NNCLRLossImpl::pretty_print(std::ostream& stream) const {
  stream << "contrastive::NNCLRLoss(temperature=" << options.temperature() << ")";
}
torch::Tensor NNCLRLossImpl::forward(const torch::Tensor& z1, const torch::Tensor& z2, const torch::Tensor& p1,
                                     const torch::Tensor& p2, const torch::Tensor& support) {
  return functional::nnclr_loss(z1, z2, p1, p2, support, options);
}

}  // namespace contrastive
