// The Trainer's members (trainer.h): construction, resume, train_step, train_epoch with interval checkpoints,
// and fit with the callbacks and the epoch-end records and checkpoints.
#include "contrastive/trainer.h"

#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iomanip>
#include <limits>
#include <sstream>

#include "contrastive/augment.h"
#include "contrastive/common.h"
#include "contrastive/data.h"
#include "contrastive/dist.h"
#include "contrastive/io.h"
#include "contrastive/models.h"
#include "contrastive/train.h"
#include "train/progress.h"

namespace contrastive {

using detail::Progress;

namespace {

// Current resident set size in MB (from /proc/self/statm), for the memory-flatness check in metrics.
double resident_memory_mb() {
  std::ifstream statm("/proc/self/statm");
  double pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

// Returns false when some gradient is not finite.
bool gradients_finite(MethodImpl& method) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> sums;
  for (const auto& p : method.parameters())
    if (p.grad().defined()) sums.push_back(p.grad().sum());
  if (sums.empty()) return true;
  return torch::stack(sums).isfinite().all().item<bool>();
}

}  // namespace

Trainer::Trainer(Config config, MethodPtr method, torch::Device device)
    : config_(std::move(config)), method_(std::move(method)), device_(device) {
  TORCH_CHECK(method_, "Trainer: no method");
  method_->to(device_);
  if (config_.train.memory_format == "channels-last")
    module_to_channels_last(*method_);  // before the optimizer makes its buffers
  if (config_.dist.sync_bn) convert_sync_batchnorm(*method_);
  set_fused_batchnorm(*method_, config_.train.fused_bn != "off");
  optimizer_ = make_optimizer(config_, *method_);
  for (auto& p : method_->parameters())
    if (p.requires_grad()) trained_params_.push_back(p);
  last_checkpoint_time_ = std::chrono::steady_clock::now();
}

void Trainer::resume_from(const Checkpoint& checkpoint) {
  checkpoint.load_model(*method_, "state does not match this method and model");
  checkpoint.load_optimizer(*optimizer_);
  if (auto boxes = checkpoint.boxes(); boxes.defined() && views_) views_->set_boxes(boxes);
  position_ = checkpoint.position();
  result_.nan_skips = position_.nan_skips;
}

StepOutcome Trainer::train_step(const std::vector<torch::Tensor>& views, const torch::Tensor& labels,
                                const torch::Tensor& indices, const StepContext& ctx) {
  const auto& tc = config_.train;
  const double lr = scheduled_lr(config_.optim, tc.epochs,
                                 static_cast<double>(ctx.global_step) / std::max<int64_t>(1, ctx.steps_per_epoch));
  auto& groups = optimizer_->param_groups();
  groups[0].options().set_lr(lr);
  for (size_t g = 1; g < groups.size(); ++g) groups[g].options().set_lr(config_.optim.lr);

  LossTerms out;
  {
    CpuBf16Autocast autocast(tc.precision == "bf16");  // thread-local: only the model's thread computes in bf16
    out = method_->loss(tc.memory_format == "channels-last" ? views_to_channels_last(views) : views, labels,
                        indices, ctx);
  }
  if (ctx.global_step == tc.inject_nan_at_step) {  // fault injection: the first loss term becomes NaN
    auto& first = out.terms.begin()->second;
    first = first * std::numeric_limits<double>::quiet_NaN();
  }
  torch::Tensor total = out.total();
  optimizer_->zero_grad();
  std::string bad;
  if (!total.isfinite().item<bool>()) {
    bad = "loss";
    for (const auto& [name, term] : out.terms)
      if (!term.isfinite().all().item<bool>()) bad = "loss term '" + name + "'";
  }
  StepOutcome step;
  step.stop = stop_requested();
  step.requeue = requeue_requested();
  if (dist::active()) {  // all ranks take the same decision: skip/stop together, or none does
    auto flags = dist::all_reduce_sum(
        torch::tensor({bad.empty() ? 0.0 : 1.0, step.stop ? 1.0 : 0.0, step.requeue ? 1.0 : 0.0}));
    if (bad.empty() && flags[0].item<double>() > 0) bad = "loss on another rank";
    if (!bad.empty() && dist::rank() != 0) bad += " (rank " + std::to_string(dist::rank()) + ")";
    step.stop = flags[1].item<double>() > 0;
    step.requeue = flags[2].item<double>() > 0;
  }
  if (bad.empty()) {
    total.backward();
    dist::all_reduce_gradients(trained_params_);
    if (!gradients_finite(*method_)) bad = "gradient";
  }
  if (!bad.empty()) {
    const std::string where = "non-finite " + bad + " at epoch " + std::to_string(ctx.epoch + 1) + ", step " +
                              std::to_string(ctx.step) + " (global step " + std::to_string(ctx.global_step) + ")";
    if (tc.on_nan == "skip") {
      log_warn(where + ": step skipped (--on-nan skip)");
      optimizer_->zero_grad();
      ++result_.nan_skips;
      step.skipped = true;
      return step;
    }
    throw RunError(where + (run_dir_ ? "; the last good checkpoint is kept in " + run_dir_->path() : "") +
                   " (use --on-nan skip to skip such steps)");
  }
  finish_step(config_, *method_, *optimizer_, ctx);
  step.loss = total.item<double>();
  for (const auto& [name, term] : out.terms) step.terms[name] = term.item<double>();
  step.stats = out.stats;
  return step;
}

bool Trainer::interval_due(int64_t steps_done) const {
  const auto& tc = config_.train;
  if (tc.checkpoint_every_steps > 0 && steps_done % tc.checkpoint_every_steps == 0) return true;
  if (tc.checkpoint_every_minutes <= 0) return false;
  const double minutes =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - last_checkpoint_time_).count() / 60.0;
  return minutes >= tc.checkpoint_every_minutes;
}

double Trainer::save_checkpoint(const TrainPosition& at, bool best, bool interval) {
  if (!run_dir_ || !run_dir_->writer()) return 0;
  const auto start = std::chrono::steady_clock::now();
  const int64_t keep = config_.train.keep_checkpoints;
  // last.ckpt first, so that it is never older than a step file (auto-resume takes it).
  std::vector<std::string> paths{run_dir_->last_checkpoint()};
  if (best) paths.push_back(run_dir_->best_checkpoint());
  if (interval && keep > 0) paths.push_back(run_dir_->step_checkpoint(at.global_step));
  write_run_checkpoint(paths, config_, *method_, *optimizer_, at, dist::world_size(),
                       views_ ? views_->boxes() : torch::Tensor());
  if (interval && keep > 0) run_dir_->prune_step_checkpoints(keep);
  last_checkpoint_time_ = std::chrono::steady_clock::now();
  return std::chrono::duration<double>(last_checkpoint_time_ - start).count();
}

Trainer::EpochOutcome Trainer::train_epoch(Loader& loader, int64_t epoch) {
  const auto& tc = config_.train;
  const bool lead = dist::rank() == 0;
  const int64_t steps = loader.steps_per_epoch(), total_steps = steps * tc.epochs;
  const int64_t first = epoch == position_.epoch ? position_.step : 0;
  const uint64_t seed = static_cast<uint64_t>(tc.seed);
  const std::string where = run_dir_ ? run_dir_->path() : std::string("memory");
  loader.start_epoch(epoch, first);
  method_->train();
  Progress progress(epoch, tc.epochs, steps, tc.log_every, !lead);
  progress.set_first(first);
  EpochOutcome outcome;
  double loss_sum = 0, last_lr = config_.optim.lr;
  int64_t counted = 0, images = 0;
  std::map<std::string, double> term_sums, stat_sums;
  const auto t0 = std::chrono::steady_clock::now();
  const double wait_before = loader.wait_seconds();
  while (auto batch = loader.next()) {
    StepContext ctx;
    ctx.epoch = epoch;
    ctx.step = batch->step;
    ctx.steps_per_epoch = steps;
    ctx.global_step = epoch * steps + batch->step;
    ctx.total_steps = total_steps;
    ctx.seed = mix_seed(seed, epoch, batch->step, kStepSeedTag);
    const StepOutcome step = train_step(batch->views, batch->labels.to(device_), batch->indices, ctx);
    last_lr = optimizer_->param_groups()[0].options().get_lr();
    for (auto& cb : callbacks_) cb->on_step_end(*this, ctx, step);
    if (step.skipped) continue;
    const int64_t b = batch->labels.size(0);
    loss_sum += step.loss * b;
    counted += b;
    images += b;
    for (const auto& [name, v] : step.terms) term_sums[name] += v * b;
    for (const auto& [name, v] : step.stats) stat_sums[name] += v * b;
    progress.update(batch->step, b * dist::world_size(), step.loss);

    if (step.stop || (tc.stop_after_steps > 0 && ctx.global_step + 1 == tc.stop_after_steps)) {
      progress.finish();
      position_ = {epoch, batch->step + 1, ctx.global_step + 1, position_.best_metric, result_.nan_skips};
      save_checkpoint(position_, false, false);
      log_info("stopped by signal after epoch " + std::to_string(epoch + 1) + " step " +
               std::to_string(batch->step) + "; checkpoint written to " + where + "/last.ckpt");
      outcome.stopped = true;
      outcome.requeue = step.stop && step.requeue;
      return outcome;
    }
    // A mid-epoch checkpoint; at the epoch's last step the epoch-end checkpoint is the one.
    if (lead && run_dir_ && batch->step + 1 < steps && interval_due(ctx.global_step + 1)) {
      const TrainPosition here{epoch, batch->step + 1, ctx.global_step + 1, position_.best_metric,
                               result_.nan_skips};
      const double took = save_checkpoint(here, false, true);
      log_info("checkpoint at global step " + std::to_string(here.global_step) + " (epoch " +
               std::to_string(epoch + 1) + ", step " + std::to_string(here.step) + ") written to " + where +
               "/last.ckpt" +
               (tc.keep_checkpoints > 0 ? " and " + run_dir_->step_checkpoint(here.global_step) : "") + " in " +
               std::to_string(static_cast<int64_t>(took * 1000 + 0.5)) + " ms");
    }
  }
  progress.finish();
  const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (dist::active()) {  // epoch averages over the global batch
    std::vector<double> sums{loss_sum, static_cast<double>(counted), static_cast<double>(images)};
    for (const auto& [name, v] : term_sums) sums.push_back(v);
    for (const auto& [name, v] : stat_sums) sums.push_back(v);
    auto total = dist::all_reduce_sum(torch::tensor(sums, torch::kDouble));
    auto at = [&](size_t i) { return total[static_cast<int64_t>(i)].item<double>(); };
    size_t i = 0;
    loss_sum = at(i++);
    counted = static_cast<int64_t>(at(i++));
    images = static_cast<int64_t>(at(i++));
    for (auto& [name, v] : term_sums) v = at(i++);
    for (auto& [name, v] : stat_sums) v = at(i++);
  }
  EpochRecord& rec = outcome.record;
  rec.epoch = epoch + 1;
  rec.values["loss"] = counted ? loss_sum / counted : 0.0;
  rec.values["lr"] = last_lr;
  for (const auto& [name, s] : term_sums) rec.terms[name] = counted ? s / counted : 0.0;
  for (const auto& [name, s] : stat_sums) rec.values[name] = counted ? s / counted : 0.0;
  rec.values["images_per_s"] = train_seconds > 0 ? images / train_seconds : 0.0;
  rec.values["train_seconds"] = train_seconds;
  // The share of the epoch the step spent waiting for the loader (decoding, augmentation): 0 when data keeps up.
  rec.values["data_wait_frac"] = train_seconds > 0 ? (loader.wait_seconds() - wait_before) / train_seconds : 0.0;
  rec.metric = -rec.values["loss"];
  return outcome;
}

TrainResult Trainer::fit(Loader& loader) {
  const auto& tc = config_.train;
  const bool lead = dist::rank() == 0;
  const int64_t steps = loader.steps_per_epoch();
  if (steps == 0)
    throw InputError("--batch-size " + std::to_string(tc.batch_size) + ": the loader has no batch to train on");
  result_.run_dir = run_dir_ ? run_dir_->path() : "";
  result_.nan_skips = position_.nan_skips;
  result_.epochs_done = position_.epoch;
  for (auto& cb : callbacks_) cb->on_fit_begin(*this);
  for (int64_t epoch = position_.epoch; epoch < tc.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& cb : callbacks_) cb->on_epoch_begin(*this, epoch);
    EpochOutcome outcome = train_epoch(loader, epoch);
    if (outcome.stopped) {
      result_.interrupted = true;
      result_.requeue = outcome.requeue;
      result_.epochs_done = epoch;
      for (auto& cb : callbacks_) cb->on_fit_end(*this, result_);
      return result_;
    }
    EpochRecord& rec = outcome.record;
    for (auto& cb : callbacks_) cb->on_epoch_end(*this, rec);
    if (rec.has("test_top1")) {
      result_.last_test_top1 = rec.value("test_top1");
      result_.best_test_top1 = std::max(result_.best_test_top1, result_.last_test_top1);
    }
    if (rec.has("knn_top1")) result_.last_knn_top1 = rec.value("knn_top1");
    rec.counts["nan_skips"] = result_.nan_skips;
    rec.values["rss_mb"] = resident_memory_mb();
    rec.values["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    std::ostringstream summary;
    summary << "epoch " << epoch + 1 << "/" << tc.epochs << ": loss " << std::fixed << std::setprecision(4)
            << rec.value("loss");
    if (rec.has("test_top1")) {
      summary << ", test top-1 " << rec.value("test_top1") << " (ECE " << rec.value("test_ece");
      if (rec.has("train_clean_top1")) summary << "; clean train top-1 " << rec.value("train_clean_top1");
      summary << ")";
    }
    if (rec.has("knn_top1")) summary << ", kNN top-1 " << rec.value("knn_top1");
    summary << ", " << std::setprecision(0) << rec.value("images_per_s") << " img/s (waiting for data "
            << std::setprecision(1) << 100.0 * rec.value("data_wait_frac") << "%), " << rec.value("seconds")
            << " s";
    log_info(summary.str());

    if (run_dir_) run_dir_->append_metrics(rec);
    for (auto& cb : callbacks_) cb->on_epoch_logged(*this, rec);
    const bool improved = rec.metric > position_.best_metric;
    position_ = {epoch + 1, 0, (epoch + 1) * steps, std::max(position_.best_metric, rec.metric),
                 result_.nan_skips};
    if (lead) save_checkpoint(position_, improved, interval_due(position_.global_step));
    result_.epochs_done = epoch + 1;
    bool stop_end = stop_requested(), requeue_end = requeue_requested();
    if (dist::active()) {
      auto flags = dist::all_reduce_sum(torch::tensor({stop_end ? 1.0 : 0.0, requeue_end ? 1.0 : 0.0}));
      stop_end = flags[0].item<double>() > 0;
      requeue_end = flags[1].item<double>() > 0;
    }
    if (stop_end && epoch + 1 < tc.epochs) {
      log_info("stopped by signal after epoch " + std::to_string(epoch + 1) + "; checkpoint written to " +
               (run_dir_ ? run_dir_->path() : std::string("memory")) + "/last.ckpt");
      result_.interrupted = true;
      result_.requeue = requeue_end;
      break;
    }
  }
  for (auto& cb : callbacks_) cb->on_fit_end(*this, result_);
  return result_;
}

}  // namespace contrastive
