// Non-contrastive and self-distillation losses (docs/methods.md §10): VICReg, Barlow Twins, NNCLR, DINO.
// The idiom and conventions of losses/contrastive.h (CPU/CUDA; bf16/half computed and returned in float32; bad
// input -> InputError). Each block states where it differs from lightly 1.6.0 (tests/test_peer_parity.cpp checks
// parity). losses.h includes every family.
#pragma once

#include <c10/util/Optional.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "contrastive/common.h"

namespace contrastive {

// ---------------------------------------------------------------------------------------------------------
// VICReg (§10; Bardes et al. 2022, facebookresearch/vicreg).
//   total = sim_weight·s + var_weight·v + cov_weight·c, with
//   s = mean over every element of (z1 - z2)²,
//   v = ½[mean_j relu(γ - sqrt(Var_j(z1) + ε)) + mean_j relu(γ - sqrt(Var_j(z2) + ε))],
//       Var the unbiased variance over the batch (torch.var),
//   c = Σ_{i≠j} C(z1)_ij² / d + Σ_{i≠j} C(z2)_ij² / d, C(z) = (z - z̄)ᵀ(z - z̄) / (n - 1).
// lightly's VICRegLoss computes the same with the same defaults (its γ is fixed at 1).

struct VICRegLossOptions {
  // λ: weight of the invariance term s.
  TORCH_ARG(double, sim_weight) = 25.0;
  // μ: weight of the variance term v.
  TORCH_ARG(double, var_weight) = 25.0;
  // ν: weight of the covariance term c.
  TORCH_ARG(double, cov_weight) = 1.0;
  // Target standard deviation γ of each dimension.
  TORCH_ARG(double, gamma) = 1.0;
  // ε inside the square root of the variance term (≥ 0).
  TORCH_ARG(double, eps) = 1e-4;
};

// The three unweighted terms (scalars), for logging: total = sim_weight·invariance + var_weight·variance +
// cov_weight·covariance.
struct VICRegTerms {
  torch::Tensor invariance;  // s
  torch::Tensor variance;    // v (already the average of the two views)
  torch::Tensor covariance;  // c (the sum over the two views)
};

// ---------------------------------------------------------------------------------------------------------
// Barlow Twins (§10; Zbontar et al. 2021, facebookresearch/barlowtwins).
//   z̃ = (z - z̄) / sqrt(Var(z) + eps) per dimension over the batch (BatchNorm without affine: biased variance),
//   C = z̃1ᵀ z̃2 / n,  loss = Σ_i (1 - C_ii)² + λ Σ_{i≠j} C_ij².
// lightly 1.6.0's BarlowTwinsLoss standardises exactly like this (F.batch_norm, eps 1e-5) but defaults to
// λ = 5e-3 (the paper's) where the official code and we use 0.0051. Older lightly releases divided by the
// unbiased torch.std without eps: .unbiased_std(true).eps(0) reproduces those.

struct BarlowTwinsLossOptions {
  // Weight λ of the redundancy-reduction (off-diagonal) term.
  TORCH_ARG(double, lambda) = 0.0051;
  // ε added to the variance inside the square root (≥ 0; BatchNorm1d's default).
  TORCH_ARG(double, eps) = 1e-5;
  // false: biased variance (BatchNorm: the official code, lightly 1.6.0); true: unbiased variance (torch.std).
  TORCH_ARG(bool, unbiased_std) = false;
};

// ---------------------------------------------------------------------------------------------------------
// NNCLR (§10; Dwibedi et al. 2021).
//   loss = ½[InfoNCE(NN(z1, Q), p2) + InfoNCE(NN(z2, Q), p1)], where NN(z, Q) is the support row of highest
//   cosine similarity and InfoNCE(a, b) = CE over the [B,B] logits â·b̂ᵀ/τ (â, b̂ l2-normalised) with the
//   targets on the diagonal: the paper's one-directional form, B candidates per row, the other images' p as
//   negatives.
// Support layout: [M,D], one stored projection per ROW (unlike the MoCo queue above, [D,K]).
// lightly's NNCLR (NNMemoryBankModule docstring) instead feeds (NN(z1), p2) to NTXentLoss, the 2B-way SimCLR
// form: both directions (rows NN(z) and rows p), and the same-side pairs (NN·NN, p·p) among the negatives, so
// its value differs from ours. Its lookup returns the raw (unnormalised) bank row; ours the normalised one
// (the same after normalisation).

struct NNCLRLossOptions {
  TORCH_ARG(double, temperature) = 0.1;
};

// ---------------------------------------------------------------------------------------------------------
// DINO (§10; Caron et al. 2021, facebookresearch/dino).
//   loss = mean over pairs (t a teacher crop, s a student crop, s ≠ t) of
//          mean over the batch of -Σ_k softmax((t - c)/τ_t)_k · log_softmax(s/τ_s)_k.
// The student crops come in the order [global crops..., local crops...]: student crop i and teacher crop i
// are the same view and are skipped. The centre c is an EMA of the teacher outputs' batch mean:
// c <- m·c + (1 - m)·mean over every teacher row. Identical to lightly's DINOLoss (pairing, normalisation by
// n_terms·B, centre update); lightly defaults warmup_teacher_temp_epochs to 30, we (and the official code) to 0.

struct DINOLossOptions {
  /* implicit */ DINOLossOptions(int64_t out_dim) : out_dim_(out_dim) {}
  // K, the number of prototypes (the head's output dimension); the centre is [1, K].
  TORCH_ARG(int64_t, out_dim);
  // τ_s.
  TORCH_ARG(double, student_temp) = 0.1;
  // τ_t after the warm-up.
  TORCH_ARG(double, teacher_temp) = 0.04;
  // τ_t at epoch 0 of the warm-up.
  TORCH_ARG(double, warmup_teacher_temp) = 0.04;
  // Length W of the linear warm-up (0: none). Like the official np.linspace(warmup, teacher, W), τ_t reaches
  // teacher_temp at epoch W - 1.
  TORCH_ARG(int64_t, warmup_teacher_temp_epochs) = 0;
  // m of the centre's EMA, in [0, 1].
  TORCH_ARG(double, center_momentum) = 0.9;
};

namespace functional {

// VICReg. z1, z2 [N,D] (the expander outputs of the two views), N ≥ 2.
VICRegTerms vicreg_terms(const torch::Tensor& z1, const torch::Tensor& z2, const VICRegLossOptions& options = {});
// sim_weight·s + var_weight·v + cov_weight·c of vicreg_terms.
torch::Tensor vicreg_loss(const torch::Tensor& z1, const torch::Tensor& z2, const VICRegLossOptions& options = {});

// Barlow Twins. z1, z2 [N,D] (the projector outputs of the two views), N ≥ 2.
torch::Tensor barlow_twins_loss(const torch::Tensor& z1, const torch::Tensor& z2,
                                const BarlowTwinsLossOptions& options = {});

// NNCLR. z [N,D], support [M,D] (M ≥ 1; any scale: both are l2-normalised here). Returns, for every row of z,
// the l2-normalised support row of highest cosine similarity (the first on ties), [N,D], detached (no gradient
// flows to z or the support). Float/double in their precision, bf16/half in float32.
torch::Tensor nearest_neighbours(const torch::Tensor& z, const torch::Tensor& support);
// One direction: CE(â·b̂ᵀ/τ, arange(B)), mean over the B rows; a, b [B,D] are l2-normalised here. No
// stop-gradient (nnclr_loss passes the detached neighbours as a).
torch::Tensor nnclr_info_nce(const torch::Tensor& a, const torch::Tensor& b, double temperature = 0.1);
// ½[nnclr_info_nce(NN(z1), p2) + nnclr_info_nce(NN(z2), p1)]; z1, z2, p1, p2 [B,D] (z the projections, p the
// predictor outputs), support [M,D]. Gradient flows only into p1 and p2.
torch::Tensor nnclr_loss(const torch::Tensor& z1, const torch::Tensor& z2, const torch::Tensor& p1,
                         const torch::Tensor& p2, const torch::Tensor& support,
                         const NNCLRLossOptions& options = {});

// DINO. teacher_logits: the T ≥ 1 global crops, each [B,K]; student_logits: S ≥ T crops [B,K], the same T
// global crops first, then the local crops; center [1,K] or [K]. The teacher logits and the centre are detached
// here (the teacher gets no gradient). Needs at least one pair (S ≥ 2).
torch::Tensor dino_loss(const std::vector<torch::Tensor>& teacher_logits,
                        const std::vector<torch::Tensor>& student_logits, const torch::Tensor& center,
                        double teacher_temp, double student_temp);
// τ_t at `epoch` (≥ 0): warmup_teacher_temp + (teacher_temp - warmup_teacher_temp)·epoch/(W - 1) for
// epoch < W (warmup_teacher_temp when W = 1), teacher_temp from epoch W on.
double dino_teacher_temperature(int64_t epoch, const DINOLossOptions& options);
// The local batch centre: the mean over every row of every teacher crop, [1,K], detached, in the compute dtype.
torch::Tensor dino_batch_center(const std::vector<torch::Tensor>& teacher_logits);

}  // namespace functional

class VICRegLossImpl : public torch::nn::Cloneable<VICRegLossImpl> {
 public:
  explicit VICRegLossImpl(const VICRegLossOptions& options_ = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  // functional::vicreg_loss(z1, z2, options).
  torch::Tensor forward(const torch::Tensor& z1, const torch::Tensor& z2);
  VICRegLossOptions options;
};
TORCH_MODULE(VICRegLoss);

class BarlowTwinsLossImpl : public torch::nn::Cloneable<BarlowTwinsLossImpl> {
 public:
  explicit BarlowTwinsLossImpl(const BarlowTwinsLossOptions& options_ = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& z1, const torch::Tensor& z2);
  BarlowTwinsLossOptions options;
};
TORCH_MODULE(BarlowTwinsLoss);

class NNCLRLossImpl : public torch::nn::Cloneable<NNCLRLossImpl> {
 public:
  explicit NNCLRLossImpl(const NNCLRLossOptions& options_ = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  // functional::nnclr_loss; the caller keeps (and updates, with z1 after the step) the support set [M,D].
  torch::Tensor forward(const torch::Tensor& z1, const torch::Tensor& z2, const torch::Tensor& p1,
                        const torch::Tensor& p2, const torch::Tensor& support);
  NNCLRLossOptions options;
};
TORCH_MODULE(NNCLRLoss);

class DINOLossImpl : public torch::nn::Cloneable<DINOLossImpl> {
 public:
  explicit DINOLossImpl(const DINOLossOptions& options_);
  // Registers the buffer "center", zeros [1, out_dim] (float32; module.to() converts it).
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  // dino_loss at τ_t = dino_teacher_temperature(epoch), then update_center(teacher_logits). The loss uses the
  // centre from before the update.
  torch::Tensor forward(const std::vector<torch::Tensor>& teacher_logits,
                        const std::vector<torch::Tensor>& student_logits, int64_t epoch = 0);
  // center <- m·center + (1 - m)·reduce(dino_batch_center(teacher_logits)), in place, without gradient.
  void update_center(const std::vector<torch::Tensor>& teacher_logits);
  DINOLossOptions options;
  // The registered buffer [1, out_dim].
  torch::Tensor center;
  // Applied to the local batch centre [1,K] before the EMA when set: with several ranks, the average over ranks
  // (e.g. [](const torch::Tensor& c) { return dist::all_reduce_sum(c) / dist::world_size(); }), as the official
  // code and lightly all-reduce it. Unset: the local batch centre.
  std::function<torch::Tensor(const torch::Tensor&)> center_reducer;
};
TORCH_MODULE(DINOLoss);

}  // namespace contrastive
