// TensorBoard event files of a run (TensorBoardCallback, include/contrastive/trainer.h).
#include <torch/torch.h>

#include "contrastive/common.h"
#include "contrastive/dist.h"
#include "contrastive/tensorboard.h"
#include "contrastive/trainer.h"

namespace contrastive {

TensorBoardCallback::TensorBoardCallback(int64_t every) : every_(every) {}
TensorBoardCallback::~TensorBoardCallback() = default;

void TensorBoardCallback::on_fit_begin(Trainer& trainer) {
  RunDirectory* dir = trainer.run_directory();
  if (!dir || !dir->writer() || writer_) return;
  try {
    writer_ = std::make_unique<EventWriter>(dir->path());
  } catch (const std::exception& e) {  // a run never fails for its event file (nor for a build without protobuf,
                                       // whose EventWriter says which packages to install)
    log_warn(std::string("no TensorBoard event files: ") + e.what());
  }
  since_ = std::chrono::steady_clock::now();
}

void TensorBoardCallback::on_step_end(Trainer& trainer, const StepContext& ctx, const StepOutcome& step) {
  if (!writer_) return;
  if (ctx.step == 0) {  // images/s counts from the end of the epoch's first step, not over the evaluation before
    since_ = std::chrono::steady_clock::now();
    images_since_ = 0;
  } else {
    images_since_ += trainer.config().train.batch_size * dist::world_size();
  }
  if (step.skipped || (ctx.global_step + 1) % every_ != 0) return;
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - since_).count();
  std::map<std::string, double> values{{"step/loss", step.loss},
                                       {"step/lr", trainer.optimizer().param_groups()[0].options().get_lr()}};
  for (const auto& [name, v] : step.terms) values["step/terms/" + name] = v;
  if (seconds > 0 && images_since_ > 0) values["step/images_per_s"] = static_cast<double>(images_since_) / seconds;
  writer_->scalars(values, ctx.global_step + 1);
  since_ = now;
  images_since_ = 0;
}

void TensorBoardCallback::on_epoch_logged(Trainer& /*trainer*/, const EpochRecord& record) {
  if (!writer_) return;
  std::map<std::string, double> values;
  for (const auto& [k, v] : record.values) values["epoch/" + k] = v;
  for (const auto& [k, v] : record.terms) values["epoch/terms/" + k] = v;
  for (const auto& [k, v] : record.counts) values["epoch/" + k] = static_cast<double>(v);
  writer_->scalars(values, record.epoch);
}

}  // namespace contrastive
