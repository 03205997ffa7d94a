// The built-in callbacks of a run (trainer.h): classifier and kNN evaluation, collapse warnings, ContrastiveCrop
// boxes (with compute_boxes) and the curves picture.
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "contrastive/augment.h"
#include "contrastive/common.h"
#include "contrastive/data.h"
#include "contrastive/eval.h"
#include "contrastive/io.h"
#include "contrastive/plot.h"
#include "contrastive/train.h"
#include "contrastive/trainer.h"

namespace contrastive {

namespace {

// Collapse warning: effective rank of the batch's normalised output below this. Measured on Fashion-MNIST
// (SimSiam, width 8, batch 128, lr 0.5): 15.6-47 with the stop-gradient, 1.35-1.9 without it once collapsed.
constexpr double kCollapsedRank = 3.0;

// Due at the epoch's end (epoch is 1-based here): every `every` epochs and at the last.
bool due(int64_t epoch, int64_t every, int64_t epochs) {
  return every > 0 && (epoch % every == 0 || epoch == epochs);
}

// kNN top-1 of `query`'s images against a bank of `bank`'s, with the trainer's method and device.
double knn_score(Trainer& trainer, const std::shared_ptr<Dataset>& bank, const std::shared_ptr<Dataset>& query,
                 const Normalization& norm, int64_t k, double t) {
  MethodImpl& method = trainer.method();
  auto bank_f = extract_features_sharded(method, bank, norm, trainer.device());
  auto query_f = extract_features_sharded(method, query, norm, trainer.device());
  return knn_top1(bank_f, bank->labels(), query_f, query->labels(), bank->num_classes(), k, t);
}

}  // namespace

torch::Tensor compute_boxes(MethodImpl& method, const Dataset& data, const Normalization& norm,
                            torch::Device device, double threshold, int64_t count) {
  torch::NoGradGuard no_grad;
  const bool was_training = method.is_training();
  method.eval();
  std::vector<torch::Tensor> parts;
  const int64_t n = count > 0 ? std::min(count, data.size()) : data.size();
  for (int64_t s = 0; s < n; s += 512) {
    auto idx = torch::arange(s, std::min(n, s + 512), torch::kLong);
    auto maps = method.feature_map(normalize_images(data.get(idx), norm, device));
    parts.push_back(localize_boxes(maps, data.height(), data.width(), threshold).to(torch::kCPU));
  }
  method.train(was_training);
  return torch::cat(parts);
}

ClassifierEvalCallback::ClassifierEvalCallback(std::shared_ptr<Dataset> test, std::shared_ptr<Dataset> train_eval,
                                               Normalization norm, int64_t every)
    : test_(std::move(test)), train_eval_(std::move(train_eval)), norm_(std::move(norm)), every_(every) {}

void ClassifierEvalCallback::on_epoch_end(Trainer& trainer, EpochRecord& rec) {
  MethodImpl& method = trainer.method();
  if (!method.has_classifier() || !due(rec.epoch, every_, trainer.config().train.epochs)) return;
  const TopK top = evaluate_classifier_sharded(method, test_, norm_, trainer.device());
  rec.values["test_top1"] = top.top1;
  rec.values["test_top5"] = top.top5;
  rec.values["test_ece"] = top.ece;
  // Not the `train_top1` stat (view 1 of the augmented batches, train-mode BN, while the weights move).
  if (train_eval_)
    rec.values["train_clean_top1"] =
        evaluate_classifier_sharded(method, train_eval_, norm_, trainer.device()).top1;
  rec.metric = top.top1;
}

KnnMonitorCallback::KnnMonitorCallback(std::shared_ptr<Dataset> train, std::shared_ptr<Dataset> test,
                                       Normalization norm, int64_t every, int64_t k, double t)
    : train_(std::move(train)), test_(std::move(test)), norm_(std::move(norm)), every_(every), k_(k), t_(t) {}

void KnnMonitorCallback::on_epoch_end(Trainer& trainer, EpochRecord& rec) {
  if (!due(rec.epoch, every_, trainer.config().train.epochs)) return;
  const double knn = knn_score(trainer, train_, test_, norm_, k_, t_);
  rec.values["knn_top1"] = knn;
  if (!trainer.method().has_classifier()) rec.metric = knn;
}

FinalTestCallback::FinalTestCallback(std::shared_ptr<Dataset> train, std::shared_ptr<Dataset> test,
                                     Normalization norm, int64_t k, double t)
    : train_(std::move(train)), test_(std::move(test)), norm_(std::move(norm)), k_(k), t_(t) {}

void FinalTestCallback::on_fit_end(Trainer& trainer, const TrainResult& result) {
  if (result.interrupted || !test_) return;
  MethodImpl& method = trainer.method();
  RunDirectory* dir = trainer.run_directory();
  std::string weights = "the last epoch's weights (no best.ckpt)";
  int64_t best_epoch = -1;
  if (dir && std::filesystem::exists(dir->best_checkpoint())) {
    const Checkpoint best = Checkpoint::read(dir->best_checkpoint());
    best.load_model(method);
    best_epoch = best.position().epoch;
    weights = "best.ckpt, epoch " + std::to_string(best_epoch) + ", chosen on the validation split";
  }
  nlohmann::json out{{"split", "test"}, {"images", test_->size()}, {"best_epoch", best_epoch}};
  std::string line = "test split, evaluated once (" + std::to_string(test_->size()) + " images, " + weights + "):";
  if (method.has_classifier()) {
    const TopK top = evaluate_classifier_sharded(method, test_, norm_, trainer.device());
    out["test_top1"] = top.top1;
    out["test_top5"] = top.top5;
    line += " top-1 " + std::to_string(100 * top.top1) + "%";
  }
  const double knn = knn_score(trainer, train_, test_, norm_, k_, t_);
  out["knn_top1"] = knn;
  line += " kNN top-1 " + std::to_string(100 * knn) + "%";
  log_info(line);
  if (dir && dir->writer()) dir->write_file("test_result.json", out.dump(2) + "\n");
}

void CollapseMonitorCallback::on_epoch_end(Trainer& /*trainer*/, EpochRecord& rec) {
  if (rec.has("collapse_std")) {
    const double dim = rec.value("collapse_dim", 1.0);
    const double healthy = 1.0 / std::sqrt(dim), measured = rec.value("collapse_std");
    if (measured < 0.2 * healthy)
      log_warn("representation collapse detected: per-channel std of the normalised output is " +
               std::to_string(measured) + " (healthy ~ 1/sqrt(d) = " + std::to_string(healthy) + ")");
  }
  if (rec.has("effective_rank") && rec.has("rank_bound")) {
    // Behind a train-mode BatchNorm the std above stays ~1/sqrt(d) even for a batch on one line; the
    // effective rank (RankMe) sees it.
    const double bound = rec.value("rank_bound"), erank = rec.value("effective_rank");
    if (erank < kCollapsedRank)
      log_warn("representation collapse detected: effective rank of the normalised output is " +
               std::to_string(erank) + " of at most " + std::to_string(static_cast<int64_t>(bound)) +
               " (the batch lies on a few directions)");
  }
}

ContrastiveCropCallback::ContrastiveCropCallback(std::shared_ptr<ViewGenerator> views,
                                                 std::shared_ptr<Dataset> train, Normalization norm,
                                                 AugmentConfig augment)
    : views_(std::move(views)), train_(std::move(train)), norm_(std::move(norm)), augment_(std::move(augment)) {}

void ContrastiveCropCallback::on_epoch_begin(Trainer& /*trainer*/, int64_t epoch) {
  views_->use_boxes(augment_.crop == "contrastive" && epoch >= augment_.box_warmup);
}

void ContrastiveCropCallback::on_epoch_end(Trainer& trainer, EpochRecord& rec) {
  if (augment_.crop != "contrastive" || rec.epoch < augment_.box_warmup ||
      rec.epoch % augment_.box_interval != 0 || rec.epoch == trainer.config().train.epochs)
    return;
  views_->set_boxes(compute_boxes(trainer.method(), *train_, norm_, trainer.device(), augment_.box_thresh));
  rec.flags["boxes_updated"] = true;
  log_info("ContrastiveCrop: boxes recomputed over " + std::to_string(train_->size()) + " images");
}

void CurvesCallback::on_epoch_logged(Trainer& trainer, const EpochRecord& /*record*/) {
  if (auto* dir = trainer.run_directory(); dir && dir->writer()) plot_run_curves_or_warn(dir->path());
}

}  // namespace contrastive
