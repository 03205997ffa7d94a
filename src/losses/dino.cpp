// DINO: cross-entropy between the centred, sharpened teacher and the student over crop pairs, with an EMA
// centre (docs/methods.md §10).
//
// Versus lightly 1.6.0 (lightly/loss/dino_loss.py): the same loss. lightly stacks the crops, computes
// -einsum("tbd,sbd->ts", softmax((t - c)/τ_t), log_softmax(s/τ_s)), zeroes the diagonal (teacher crop i vs
// student crop i) and divides the sum by n_terms·B (lines 142-167): our mean over the pairs s ≠ t of the batch
// mean. Its centre update (lines 170-189, lightly/models/modules/center.py) is c·m + mean over (crops,
// batch)·(1-m) on the raw teacher outputs, all-reduced when torch.distributed is initialised (ours:
// center_reducer). Its warm-up (lines 96-101, 133-137) is torch.linspace(warmup, teacher, W)[epoch] for epoch < W,
// like dino_teacher_temperature; only its default W = 30 differs from ours (0, as in facebookresearch/dino's
// argparse default). lightly keeps the centre as [1, 1, K] (stacked crops), ours is [1, K].
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "contrastive/losses.h"
#include "losses/loss_utils.h"

namespace contrastive {
namespace functional {

namespace {

// Every crop [B,K] with the same B and K.
void check_crops(const std::vector<torch::Tensor>& crops, const char* where, const std::string& name,
                 int64_t batch, int64_t dim) {
  for (size_t i = 0; i < crops.size(); ++i) {
    const std::string label = name + "[" + std::to_string(i) + "]";
    detail::require_dim(crops[i], 2, where, label);
    detail::require(crops[i].size(0) == batch && crops[i].size(1) == dim, where,
                    label + " must be [" + std::to_string(batch) + ", " + std::to_string(dim) + "], got shape " +
                        detail::shape_str(crops[i]));
  }
}

}  // namespace

torch::Tensor dino_loss(const std::vector<torch::Tensor>& teacher_logits,
                        const std::vector<torch::Tensor>& student_logits, const torch::Tensor& center,
                        double teacher_temp, double student_temp) {
  const char* where = "dino_loss";
  detail::require_positive(teacher_temp, where, "teacher_temp");
  detail::require_positive(student_temp, where, "student_temp");
  detail::require(!teacher_logits.empty(), where, "no teacher crops");
  detail::require(student_logits.size() >= teacher_logits.size(), where,
                  "the student crops must include the " + std::to_string(teacher_logits.size()) +
                      " global (teacher) crops first, got " + std::to_string(student_logits.size()) + " crops");
  detail::require(student_logits.size() >= 2, where, "needs at least two crops (no pair otherwise)");
  detail::require_dim(teacher_logits[0], 2, where, "teacher_logits[0]");
  const int64_t batch = teacher_logits[0].size(0), dim = teacher_logits[0].size(1);
  detail::require(batch >= 1 && dim >= 1, where, "empty logits " + detail::shape_str(teacher_logits[0]));
  check_crops(teacher_logits, where, "teacher_logits", batch, dim);
  check_crops(student_logits, where, "student_logits", batch, dim);
  detail::require_defined(center, where, "center");
  detail::require((center.dim() == 1 && center.size(0) == dim) ||
                      (center.dim() == 2 && center.size(0) == 1 && center.size(1) == dim),
                  where,
                  "center must be [1, " + std::to_string(dim) + "] or [" + std::to_string(dim) + "], got shape " +
                      detail::shape_str(center));
  detail::NoAutocast no_autocast;  // float32 softmaxes under train --bf16

  // Student log-probabilities [S,B,K] (with gradient) and teacher probabilities [T,B,K] (none).
  std::vector<torch::Tensor> students;
  students.reserve(student_logits.size());
  const auto dtype = detail::to_compute_dtype(student_logits[0]).scalar_type();
  for (const auto& s : student_logits) students.push_back(detail::to_compute_dtype(s).to(dtype));
  auto log_p_student = torch::log_softmax(torch::stack(students, 0) / student_temp, -1);
  torch::Tensor p_teacher;
  {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> teachers;
    teachers.reserve(teacher_logits.size());
    for (const auto& t : teacher_logits) teachers.push_back(detail::to_compute_dtype(t).detach().to(dtype));
    auto c = detail::to_compute_dtype(center).detach().to(dtype).reshape({1, 1, dim});
    p_teacher = torch::softmax((torch::stack(teachers, 0) - c) / teacher_temp, -1);
  }

  // Cross-entropy of every (teacher crop, student crop) pair, summed over batch and classes: [T,S].
  const int64_t n_t = static_cast<int64_t>(teacher_logits.size());
  const int64_t n_s = static_cast<int64_t>(student_logits.size());
  auto ce = -torch::matmul(p_teacher.reshape({n_t, batch * dim}), log_p_student.reshape({n_s, batch * dim}).t());
  // Leave out the pairs of a crop with itself (teacher crop i is student crop i).
  auto same_crop = torch::eye(n_t, n_s, torch::TensorOptions().dtype(torch::kBool).device(ce.device()));
  const int64_t n_pairs = n_t * n_s - n_t;
  return ce.masked_fill(same_crop, 0.0).sum() / static_cast<double>(n_pairs * batch);
}

double dino_teacher_temperature(int64_t epoch, const DINOLossOptions& options) {
  const char* where = "dino_teacher_temperature";
  detail::require(epoch >= 0, where, "epoch must be >= 0, got " + std::to_string(epoch));
  detail::require(options.warmup_teacher_temp_epochs() >= 0, where, "warmup_teacher_temp_epochs must be >= 0");
  const int64_t w = options.warmup_teacher_temp_epochs();
  if (epoch >= w) return options.teacher_temp();
  if (w == 1) return options.warmup_teacher_temp();
  // np.linspace(warmup, teacher, W)[epoch]: both ends included.
  const double frac = static_cast<double>(epoch) / static_cast<double>(w - 1);
  return options.warmup_teacher_temp() + (options.teacher_temp() - options.warmup_teacher_temp()) * frac;
}

torch::Tensor dino_batch_center(const std::vector<torch::Tensor>& teacher_logits) {
  const char* where = "dino_batch_center";
  detail::require(!teacher_logits.empty(), where, "no teacher crops");
  detail::require_dim(teacher_logits[0], 2, where, "teacher_logits[0]");
  check_crops(teacher_logits, where, "teacher_logits", teacher_logits[0].size(0), teacher_logits[0].size(1));
  torch::NoGradGuard no_grad;
  detail::NoAutocast no_autocast;
  std::vector<torch::Tensor> teachers;
  teachers.reserve(teacher_logits.size());
  const auto dtype = detail::to_compute_dtype(teacher_logits[0]).scalar_type();
  for (const auto& t : teacher_logits) teachers.push_back(detail::to_compute_dtype(t).detach().to(dtype));
  // Every crop has B rows, so the mean over the concatenation is lightly's mean over (crops, batch).
  return torch::cat(teachers, 0).mean(0, /*keepdim=*/true);
}

}  // namespace functional

DINOLossImpl::DINOLossImpl(const DINOLossOptions& options_) : options(options_) { reset(); }

void DINOLossImpl::reset() {
  const char* where = "DINOLoss";
  detail::require(options.out_dim() >= 1, where, "out_dim must be >= 1, got " + std::to_string(options.out_dim()));
  detail::require_positive(options.student_temp(), where, "student_temp");
  detail::require_positive(options.teacher_temp(), where, "teacher_temp");
  detail::require_positive(options.warmup_teacher_temp(), where, "warmup_teacher_temp");
  detail::require(options.warmup_teacher_temp_epochs() >= 0, where, "warmup_teacher_temp_epochs must be >= 0");
  detail::require(std::isfinite(options.center_momentum()) && options.center_momentum() >= 0.0 &&
                      options.center_momentum() <= 1.0,
                  where, "center_momentum must lie in [0, 1], got " + std::to_string(options.center_momentum()));
  center = register_buffer("center", torch::zeros({1, options.out_dim()}));
}

void DINOLossImpl::pretty_print(std::ostream& stream) const {
  stream << "contrastive::DINOLoss(out_dim=" << options.out_dim() << ", student_temp=" << options.student_temp()
         << ", teacher_temp=" << options.teacher_temp()
         << ", warmup_teacher_temp=" << options.warmup_teacher_temp()
         << ", warmup_teacher_temp_epochs=" << options.warmup_teacher_temp_epochs()
         << ", center_momentum=" << options.center_momentum() << ")";
}

torch::Tensor DINOLossImpl::forward(const std::vector<torch::Tensor>& teacher_logits,
                                    const std::vector<torch::Tensor>& student_logits, int64_t epoch) {
  auto loss = functional::dino_loss(teacher_logits, student_logits, center,
                                    functional::dino_teacher_temperature(epoch, options), options.student_temp());
  update_center(teacher_logits);
  return loss;
}

void DINOLossImpl::update_center(const std::vector<torch::Tensor>& teacher_logits) {
  torch::NoGradGuard no_grad;
  auto batch_center = functional::dino_batch_center(teacher_logits);
  detail::require(batch_center.size(1) == options.out_dim(), "DINOLoss",
                  "teacher logits have " + std::to_string(batch_center.size(1)) + " classes, out_dim is " +
                      std::to_string(options.out_dim()));
  if (center_reducer) batch_center = center_reducer(batch_center);
  const double m = options.center_momentum();
  // In place: `center` is the registered buffer (reassigning the member would detach it from the module).
  center.mul_(m).add_(batch_center.to(center.device(), center.scalar_type()), 1.0 - m);
}

}  // namespace contrastive
