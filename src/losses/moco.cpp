// MoCo v1/v2 InfoNCE against a queue and the MoCo v3 loss (docs/methods.md §4).
#include <torch/torch.h>

#include "contrastive/losses.h"
#include "losses/loss_utils.h"

namespace contrastive {
namespace functional {

torch::Tensor info_nce(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& queue,
                       double temperature) {
  const char* where = "info_nce";
  detail::require_positive(temperature, where, "temperature");
  detail::require_dim(q, 2, where, "q");
  detail::require_dim(k, 2, where, "k");
  detail::require_dim(queue, 2, where, "queue");
  detail::require(
      q.sizes() == k.sizes(), where,
      "q and k must have the same shape [N,D], got " + detail::shape_str(q) + " and " + detail::shape_str(k));
  detail::require(queue.size(0) == q.size(1), where,
                  "queue must be [D,K] with D = " + std::to_string(q.size(1)) +
                      " (one key per column), got shape " + detail::shape_str(queue));
  detail::NoAutocast no_autocast;  // float32 logits under train --bf16
  auto qc = detail::to_compute_dtype(q);
  // Keys come from the momentum encoder and the queue is a buffer: neither receives gradient (§4, §9.2).
  auto kc = detail::to_compute_dtype(k).detach().to(qc.scalar_type());
  auto queue_c = detail::to_compute_dtype(queue).detach().to(qc.scalar_type());
  auto l_pos = (qc * kc).sum(1, /*keepdim=*/true);  // [N,1]
  auto l_neg = torch::matmul(qc, queue_c);          // [N,K]
  auto logits = torch::cat({l_pos, l_neg}, 1) / temperature;
  // Cross-entropy with label 0: -logits[:,0] + logsumexp(logits).
  return (torch::logsumexp(logits, 1) - logits.select(1, 0)).mean();
}

torch::Tensor moco_v3_loss(const torch::Tensor& q, const torch::Tensor& k, const MoCoV3LossOptions& options) {
  const char* where = "moco_v3_loss";
  detail::require_positive(options.temperature(), where, "temperature");
  detail::require_dim(q, 2, where, "q");
  detail::require_dim(k, 2, where, "k");
  detail::require(
      q.size(1) == k.size(1), where,
      "q [N,D] and k [M,D] must have the same D, got " + detail::shape_str(q) + " and " + detail::shape_str(k));
  detail::require(options.label_offset() >= 0 && options.label_offset() + q.size(0) <= k.size(0), where,
                  "label_offset + N must be <= M (k has " + std::to_string(k.size(0)) + " rows)");
  detail::NoAutocast no_autocast;  // float32 logits under train --bf16
  auto qc = detail::to_compute_dtype(q);
  auto kc = detail::to_compute_dtype(k).detach().to(qc.scalar_type());
  auto logits = torch::matmul(qc, kc.t()) / options.temperature();
  auto labels = torch::arange(options.label_offset(), options.label_offset() + q.size(0),
                              torch::TensorOptions().dtype(torch::kLong).device(q.device()));
  // §4 / §9.4: the reference multiplies by 2T.
  return torch::nn::functional::cross_entropy(logits, labels) * (2.0 * options.temperature());
}

}  // namespace functional

InfoNCELossImpl::InfoNCELossImpl(const InfoNCELossOptions& options_) : options(options_) { reset(); }
void InfoNCELossImpl::reset() {}
void InfoNCELossImpl::pretty_print(std::ostream& stream) const {
  stream << "contrastive::InfoNCELoss(temperature=" << options.temperature() << ")";
}
torch::Tensor InfoNCELossImpl::forward(const torch::Tensor& q, const torch::Tensor& k,
                                       const torch::Tensor& queue) {
  return functional::info_nce(q, k, queue, options.temperature());
}

MoCoV3LossImpl::MoCoV3LossImpl(const MoCoV3LossOptions& options_) : options(options_) { reset(); }
void MoCoV3LossImpl::reset() {}
void MoCoV3LossImpl::pretty_print(std::ostream& stream) const {
  stream << "contrastive::MoCoV3Loss(temperature=" << options.temperature() << ")";
}
torch::Tensor MoCoV3LossImpl::forward(const torch::Tensor& q1, const torch::Tensor& q2, const torch::Tensor& k1,
                                      const torch::Tensor& k2) {
  return functional::moco_v3_loss(q1, k2, options) + functional::moco_v3_loss(q2, k1, options);
}

}  // namespace contrastive
