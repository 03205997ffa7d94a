// Contrastive and siamese losses (losses.h includes every family), in LibTorch's own three-piece idiom (see
// docs/architecture.md): for each loss an options struct with TORCH_ARG defaults, a free function in
// contrastive::functional that does the math, and a module (XImpl + TORCH_MODULE(X)) that calls the function.
//
// Spec: docs/methods.md §1 (SupCon / NT-Xent), §4 (MoCo InfoNCE with a queue, MoCo v3), §5 (SimSiam and the
// collapse metric), §6 (BYOL), §7 (AMDIM NCE), §9 (stop-gradients, scale factors).
//
// Common conventions:
//  - Every function works on CPU and CUDA tensors; helper tensors are created on the input's device.
//  - bf16/half inputs are computed in float32 and the loss is returned in float32; float and double inputs
//    are computed (and returned) in their own precision.
//  - Bad shapes or hyperparameters throw contrastive::InputError (common.h) with a one-line message.
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
// SupCon (§1)

// Which rows act as anchors: every view ('all', the default) or only view 0 ('one').
enum class ContrastMode { All, One };
// "all" | "one" (the reference's contrast_mode strings); anything else throws InputError.
ContrastMode parse_contrast_mode(const std::string& name);

struct SupConLossOptions {
  // Softmax temperature T (> 0).
  TORCH_ARG(double, temperature) = 0.07;
  // The loss is scaled by T / base_temperature, exactly like the reference (§1 "Gotcha: the T/T_b factor").
  TORCH_ARG(double, base_temperature) = 0.07;
  TORCH_ARG(ContrastMode, contrast_mode) = ContrastMode::All;
  // float32 CPU features with labels (or none) go through one fused operator (one matrix product and one pass per
  // row, forward and backward) instead of ATen's chain of about a dozen passes; the same loss within float
  // rounding. false: always ATen's chain (the A/B of docs/benchmarks.md, "Fused SupCon").
  TORCH_ARG(bool, fused) = true;
};

// ---------------------------------------------------------------------------------------------------------
// NT-Xent (§1, NT-Xent variants): SupCon with labels = None and V = 2, on two [B,D] batches.

struct NTXentLossOptions {
  // Default 0.5 (leftthomas/SimCLR, ContrastiveCrop).
  TORCH_ARG(double, temperature) = 0.5;
  // Unset = equal to `temperature`, i.e. no T/T_b scaling unless asked for (ContrastiveCrop sets 0.07).
  TORCH_ARG(c10::optional<double>, base_temperature) = c10::nullopt;
  // L2-normalise z1 and z2 inside the loss (ContrastiveCrop's NT_Xent does; set false if already done).
  TORCH_ARG(bool, normalize) = true;
};

// ---------------------------------------------------------------------------------------------------------
// MoCo v1/v2 InfoNCE against a queue of negatives (§4).
//
// Queue layout: [D, K], i.e. one key per COLUMN, which is how the MoCo reference stores its buffer
// (`randn(dim, K)` normalised along dim 0). A [K, D] queue must be transposed by the caller (`queue.t()`).

struct InfoNCELossOptions {
  // MoCo v1 default 0.07; v2 / ContrastiveCrop use 0.2, the CIFAR colab 0.1.
  TORCH_ARG(double, temperature) = 0.07;
};

// ---------------------------------------------------------------------------------------------------------
// MoCo v3 (§4): CE(q·kᵀ/T, arange) · 2T, one direction; the symmetric loss is the sum of both directions.

struct MoCoV3LossOptions {
  TORCH_ARG(double, temperature) = 1.0;
  // Offset added to the arange labels: with k all-gathered over ranks this is N·rank (§4 "offset by rank").
  TORCH_ARG(int64_t, label_offset) = 0;
};

// ---------------------------------------------------------------------------------------------------------
// SimSiam (§5) and BYOL (§6): cosine losses with a stop-gradient on the target branch.

struct SimSiamLossOptions {
  // eps of nn.CosineSimilarity (the reference's value).
  TORCH_ARG(double, eps) = 1e-8;
};

struct BYOLLossOptions {
  TORCH_ARG(double, eps) = 1e-8;
};

// ---------------------------------------------------------------------------------------------------------
// AMDIM NCE (§7).

struct AMDIMLossOptions {
  // Soft clip c of the scores: s <- c·tanh(s/c).
  TORCH_ARG(double, tclip) = 20.0;
};

// The three feature sets of one view: r1 [N,D] (or [N,D,1,1]), r5 [N,D,25] (or [N,D,5,5]), r7 [N,D,49]
// (or [N,D,7,7]). Any number of locations works; the names follow the 32×32 encoder (§7).
struct AMDIMFeatures {
  torch::Tensor r1;
  torch::Tensor r5;
  torch::Tensor r7;
};

// Result of one NCE evaluation: the NCE loss and the score regulariser 0.05·mean(s²) (before clipping).
struct AMDIMNCEResult {
  torch::Tensor loss;
  torch::Tensor lgt_reg;
};

// All terms of the AMDIM objective, each already symmetrised ½(x1→x2 + x2→x1).
// total = loss_1t5 + loss_1t7 + loss_5t5 + lgt_reg (§7).
struct AMDIMLossOutput {
  torch::Tensor loss_1t5;
  torch::Tensor loss_1t7;
  torch::Tensor loss_5t5;
  torch::Tensor lgt_reg;  // sum over the three tasks of the symmetrised regularisers
  torch::Tensor total;
};

namespace functional {

// §1. features [B,V,D] (L2-normalised by the caller; >3 dims are reshaped to [B,V,-1]); labels [B] OR mask
// [B,B] (float weights or bool; mask[i,j] = 1 when j is a positive of i), never both; neither = SimCLR.
// Anchors without any positive are left out of the mean; if no anchor has one, returns 0 (still attached
// to the graph of `features`).
torch::Tensor supcon_loss(const torch::Tensor& features, const torch::Tensor& labels = {},
                          const torch::Tensor& mask = {}, const SupConLossOptions& options = {});

// Memory-bank negatives (InstDisc-style) for SupCon/SimCLR. features [B,V,D] (normalised by the caller),
// bank [M,D] (normalised stored embeddings, M ≥ 0; detached inside), labels [B] and bank_labels [M] (both or
// neither). Candidates = the V·B in-batch views plus the M bank rows; positives of anchor i = in-batch views with
// its label (other than itself) and bank rows with its label; with no labels only the other views of the same
// sample are positives and every bank row is a negative. Denominator over every non-self candidate; scaled by
// T/T_b and averaged over anchors with a positive, exactly like supcon_loss (equal to it when M = 0).
// For SimCLR with a bank, pass the dataset indices as labels so a bank row of the same image is a positive.
torch::Tensor supcon_with_bank(const torch::Tensor& features, const torch::Tensor& labels,
                               const torch::Tensor& bank, const torch::Tensor& bank_labels,
                               const SupConLossOptions& options = {});

// §1. z1, z2 [B,D], the two views of the same B samples. Equals supcon_loss(stack({z1,z2},1)) with the
// same T and T_b when the inputs are normalised.
torch::Tensor nt_xent_loss(const torch::Tensor& z1, const torch::Tensor& z2,
                           const NTXentLossOptions& options = {});

// §4. q, k [N,D] (normalised), queue [D,K] (normalised columns; K may be 0). logits = [q·k, q·queue] / T,
// cross-entropy with label 0, mean over N. k and the queue are detached inside (no gradient flows to them).
torch::Tensor info_nce(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& queue,
                       double temperature = 0.07);

// §4 MoCo v3, one direction: CE(q·kᵀ/T, arange(N) + label_offset) · 2T. q [N,D], k [M,D] (M ≥ N + offset;
// M = N without distributed gather). k is detached inside (it comes from the momentum encoder).
torch::Tensor moco_v3_loss(const torch::Tensor& q, const torch::Tensor& k, const MoCoV3LossOptions& options = {});

// §5. -cos(p, sg(z)) averaged over the batch; p, z [N,D]. z is detached inside.
torch::Tensor negative_cosine(const torch::Tensor& p, const torch::Tensor& z, double eps = 1e-8);

// §5. ½[negcos(p1, z2) + negcos(p2, z1)].
torch::Tensor simsiam_loss(const torch::Tensor& p1, const torch::Tensor& p2, const torch::Tensor& z1,
                           const torch::Tensor& z2, double eps = 1e-8);

// §6. mean over the batch of 2 - 2·cos(p, sg(z)) (= ‖p/‖p‖ - z/‖z‖‖², the BYOL paper's form). z detached.
torch::Tensor byol_loss(const torch::Tensor& p, const torch::Tensor& z, double eps = 1e-8);

// §6. byol_loss(p1, z2) + byol_loss(p2, z1) = 4 - 2·(cos(p1,z2).mean + cos(p2,z1).mean).
// The ContrastiveCrop reference writes -2·(cos(p1,z2).mean + cos(p2,z1).mean): the same loss minus the
// constant 4, so the gradients are identical; only the logged value differs (ours is ≥ 0, 0 at perfect
// agreement; the reference's lies in [-4, 4]).
torch::Tensor byol_symmetric_loss(const torch::Tensor& p1, const torch::Tensor& p2, const torch::Tensor& z1,
                                  const torch::Tensor& z2, double eps = 1e-8);

// §7. r_src [N,D] (sources, e.g. global r1 of view 1), r_trg [N,D,L] (L target locations of view 2; [N,D,H,W]
// is flattened). Scores s(i,j,l) = r_src_i·r_trg_{j,:,l} / √D; lgt_reg = 0.05·mean(s²) over all (i,j,l);
// s <- c·tanh(s/c); for each (i,l): log-softmax of the positive s(i,i,l) against itself plus all locations of
// every other image j≠i (negatives shared across l); loss = -mean over (i,l). Needs N ≥ 2.
AMDIMNCEResult amdim_nce(const torch::Tensor& r_src, const torch::Tensor& r_trg, double tclip = 20.0);

// §7. The full AMDIM objective from the two views' features. `idx1`, `idx2` [N] (int64) pick the one r5
// location per sample used as the 5→5 source in view 1 and view 2; `amdim_loss` with a generator draws them
// uniformly (each view independently, like the reference).
AMDIMLossOutput amdim_loss(const AMDIMFeatures& x1, const AMDIMFeatures& x2, const torch::Tensor& idx1,
                           const torch::Tensor& idx2, const AMDIMLossOptions& options = {});
AMDIMLossOutput amdim_loss(const AMDIMFeatures& x1, const AMDIMFeatures& x2,
                           c10::optional<at::Generator> generator = c10::nullopt,
                           const AMDIMLossOptions& options = {});

// §5 collapse metric: per-channel std over the batch (unbiased, like torch.std) of z/‖z‖, averaged over
// channels. ≈ 1/√D for a healthy representation, 0 when collapsed. z [N,D] with N ≥ 2; returns a detached
// float32 scalar.
torch::Tensor collapse_std(const torch::Tensor& z);

// Effective rank (RankMe) of the batch of z/‖z‖: exp of the entropy of the singular values normalised to sum 1.
// Between 1 (every row on one line) and min(N, D). It sees the collapse collapse_std cannot: behind a BatchNorm
// in train mode every channel keeps unit batch variance, so a batch that lies on one line (or two points) still
// has a per-channel std of ~1/√D, but an effective rank near 1. z [N,D] with N ≥ 2; returns a detached float32
// scalar.
torch::Tensor effective_rank(const torch::Tensor& z);

}  // namespace functional

// ---------------------------------------------------------------------------------------------------------
// Modules.

class SupConLossImpl : public torch::nn::Cloneable<SupConLossImpl> {
 public:
  explicit SupConLossImpl(const SupConLossOptions& options_ = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  // See functional::supcon_loss.
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& labels = {},
                        const torch::Tensor& mask = {});
  SupConLossOptions options;
};
TORCH_MODULE(SupConLoss);

class NTXentLossImpl : public torch::nn::Cloneable<NTXentLossImpl> {
 public:
  explicit NTXentLossImpl(const NTXentLossOptions& options_ = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& z1, const torch::Tensor& z2);
  NTXentLossOptions options;
};
TORCH_MODULE(NTXentLoss);

class InfoNCELossImpl : public torch::nn::Cloneable<InfoNCELossImpl> {
 public:
  explicit InfoNCELossImpl(const InfoNCELossOptions& options_ = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  // q, k [N,D]; queue [D,K] (see the layout note above).
  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& queue);
  InfoNCELossOptions options;
};
TORCH_MODULE(InfoNCELoss);

class MoCoV3LossImpl : public torch::nn::Cloneable<MoCoV3LossImpl> {
 public:
  explicit MoCoV3LossImpl(const MoCoV3LossOptions& options_ = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  // Symmetric MoCo v3 loss: moco_v3_loss(q1, k2) + moco_v3_loss(q2, k1).
  torch::Tensor forward(const torch::Tensor& q1, const torch::Tensor& q2, const torch::Tensor& k1,
                        const torch::Tensor& k2);
  MoCoV3LossOptions options;
};
TORCH_MODULE(MoCoV3Loss);

class SimSiamLossImpl : public torch::nn::Cloneable<SimSiamLossImpl> {
 public:
  explicit SimSiamLossImpl(const SimSiamLossOptions& options_ = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  // ½[negcos(p1, z2) + negcos(p2, z1)] (§5).
  torch::Tensor forward(const torch::Tensor& p1, const torch::Tensor& p2, const torch::Tensor& z1,
                        const torch::Tensor& z2);
  SimSiamLossOptions options;
};
TORCH_MODULE(SimSiamLoss);

class BYOLLossImpl : public torch::nn::Cloneable<BYOLLossImpl> {
 public:
  explicit BYOLLossImpl(const BYOLLossOptions& options_ = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  // byol_symmetric_loss(p1, p2, z1, z2) (§6).
  torch::Tensor forward(const torch::Tensor& p1, const torch::Tensor& p2, const torch::Tensor& z1,
                        const torch::Tensor& z2);
  BYOLLossOptions options;
};
TORCH_MODULE(BYOLLoss);

class AMDIMLossImpl : public torch::nn::Cloneable<AMDIMLossImpl> {
 public:
  explicit AMDIMLossImpl(const AMDIMLossOptions& options_ = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  // idx1/idx2 [N] int64 in [0, L5) pick the 5→5 source locations; when undefined they are drawn with
  // `generator` (the default CPU generator when that is unset). One forward (no overloads): ModuleHolder's
  // operator() cannot dispatch overloaded forwards.
  AMDIMLossOutput forward(const AMDIMFeatures& x1, const AMDIMFeatures& x2, const torch::Tensor& idx1 = {},
                          const torch::Tensor& idx2 = {});
  AMDIMLossOptions options;
  // Source of the random 5→5 locations, e.g. a CPU generator seeded from mix_seed(seed, step) for resumable runs.
  c10::optional<at::Generator> generator;
};
TORCH_MODULE(AMDIMLoss);

}  // namespace contrastive
