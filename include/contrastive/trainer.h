// The Trainer: train_step, train_epoch and fit over any method, a RunDirectory for what a run writes, and
// callbacks for everything an epoch does besides training (docs/architecture.md, "The trainer"). It knows
// nothing method-specific. run_training (train.h) builds one from a Config; a C++ user can build one directly
// (examples/trainer_callbacks.cpp).
#pragma once

#include <torch/optim/optimizer.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "contrastive/config.h"
#include "contrastive/eval.h"
#include "contrastive/io.h"
#include "contrastive/methods.h"

namespace contrastive {

// Seed tags for mix_seed (common.h): StepContext::seed of a step is mix_seed(seed, epoch, step, kStepSeedTag)
// and the augmentation of a batch draws from mix_seed(seed, epoch, step, kViewSeedTag). Bench uses the same.
constexpr uint64_t kStepSeedTag = 0x57E9;
constexpr uint64_t kViewSeedTag = 0xA06;

class Dataset;
class Loader;
class ViewGenerator;
class Trainer;

struct TrainResult {
  std::string run_dir;
  int64_t epochs_done = 0;
  bool interrupted = false;       // stopped by a signal or --stop-after-steps after writing a checkpoint
  bool requeue = false;           // ... by SIGTERM or SIGUSR1 (pre-emption): the job should be requeued
  bool already_complete = false;  // --out held a finished run of the same configuration: nothing was done
  double last_test_top1 = -1;     // -1: the method has no classifier
  double best_test_top1 = -1;
  double last_knn_top1 = -1;  // -1: kNN monitor off
  int64_t nan_skips = 0;
};

// What one train_step did.
struct StepOutcome {
  bool skipped = false;  // a non-finite loss or gradient under --on-nan skip: no update was made
  double loss = 0;       // the total loss (when not skipped)
  std::map<std::string, double> terms, stats;
  bool stop = false, requeue = false;  // a stop (and requeue) was requested, agreed over all processes
};

// One epoch's metrics: one line of metrics.jsonl. Callbacks add values in on_epoch_end.
struct EpochRecord {
  int64_t epoch = 0;                      // 1-based
  std::map<std::string, double> values;   // loss, lr, stat averages, images_per_s, test_top1, ...
  std::map<std::string, double> terms;    // the loss terms' epoch averages
  std::map<std::string, int64_t> counts;  // integer values (nan_skips)
  std::map<std::string, bool> flags;      // boxes_updated
  double metric = 0;                      // what best.ckpt tracks (-loss unless a callback sets it)

  bool has(const std::string& key) const { return values.count(key) > 0; }
  double value(const std::string& key, double fallback = 0) const;
  nlohmann::json to_json() const;
};

// Hooks around training. Every method has an empty default; a callback overrides what it needs.
class TrainerCallback {
 public:
  virtual ~TrainerCallback() = default;
  virtual void on_fit_begin(Trainer& /*trainer*/) {}
  virtual void on_epoch_begin(Trainer& /*trainer*/, int64_t /*epoch (0-based)*/) {}
  virtual void on_step_end(Trainer& /*trainer*/, const StepContext& /*ctx*/, const StepOutcome& /*step*/) {}
  // After the epoch's steps, before the record is logged and the checkpoint written: evaluate, monitor, and
  // put the results in `record` (and record.metric for best.ckpt).
  virtual void on_epoch_end(Trainer& /*trainer*/, EpochRecord& /*record*/) {}
  // After the record was appended to metrics.jsonl (curves).
  virtual void on_epoch_logged(Trainer& /*trainer*/, const EpochRecord& /*record*/) {}
  virtual void on_fit_end(Trainer& /*trainer*/, const TrainResult& /*result*/) {}
};

// A run directory and everything written into it: config.yaml, metrics.jsonl, train.log, last/best/step
// checkpoints, labeled_indices.txt. Only a writer (rank 0) writes; the other processes' copies only read.
class RunDirectory {
 public:
  RunDirectory(std::string path, bool writer = true) : path_(std::move(path)), writer_(writer) {}
  ~RunDirectory();
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;

  const std::string& path() const { return path_; }
  bool writer() const { return writer_; }
  std::string last_checkpoint() const { return path_ + "/last.ckpt"; }
  std::string best_checkpoint() const { return path_ + "/best.ckpt"; }
  // RUN_DIR/step-NNNNNN.ckpt: the interval checkpoint after NNNNNN global steps.
  std::string step_checkpoint(int64_t global_step) const;
  // The step checkpoints present, newest first (temporary files of an interrupted write are not).
  std::vector<std::string> step_checkpoints() const;
  // Keeps the `keep` newest step checkpoints.
  void prune_step_checkpoints(int64_t keep) const;

  // Starts writing a run that continues after `epochs_kept` epochs: creates the directory, drops metrics of
  // later epochs (a run killed between its metrics and its checkpoint repeats that epoch), attaches train.log
  // and writes config.yaml.
  void open(const Config& config, int64_t epochs_kept);
  void append_metrics(const EpochRecord& record) const;
  // RUN_DIR/name, written atomically.
  void write_file(const std::string& name, const std::string& text) const;

  // Takes RUN_DIR/.lock (flock, held until this object is destroyed or the process ends, however it ends), so
  // that a second training cannot write into a run directory that one is using. Returns "" when taken, else
  // the one-line reason (the holder's pid). Creates the directory; a reader (writer() false) takes no lock.
  std::string try_lock();

  // For a run given without --resume: "fresh", "resume:<ckpt>", "complete:<ckpt>" or "error:<message>".
  // `config` is this command's resolved config; `notes` collects warnings about unreadable checkpoints that
  // were passed over.
  std::string resume_decision(const Config& config, int64_t world, std::vector<std::string>& notes) const;

 private:
  std::string path_;
  bool writer_;
  bool log_attached_ = false;
  int lock_fd_ = -1;
};

class Trainer {
 public:
  // `config` resolved and validated (resolve_defaults, resolve_speed_defaults, validate). Moves the method to
  // `device`, applies channels-last and --sync-bn (convert_sync_batchnorm), then makes the optimizer.
  Trainer(Config config, MethodPtr method, torch::Device device);

  const Config& config() const { return config_; }
  MethodImpl& method() { return *method_; }
  const MethodPtr& method_ptr() const { return method_; }
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  torch::Device device() const { return device_; }
  TrainPosition& position() { return position_; }
  const TrainResult& result() const { return result_; }

  // Optional parts: without a run directory nothing is written (a custom loop, bench); the view generator's
  // ContrastiveCrop boxes go into checkpoints.
  void set_run_directory(std::shared_ptr<RunDirectory> dir) { run_dir_ = std::move(dir); }
  RunDirectory* run_directory() const { return run_dir_.get(); }
  void set_view_generator(std::shared_ptr<ViewGenerator> views) { views_ = std::move(views); }
  ViewGenerator* view_generator() const { return views_.get(); }
  void add_callback(std::shared_ptr<TrainerCallback> callback) { callbacks_.push_back(std::move(callback)); }

  // Continues from a checkpoint: weights, optimizer, boxes and position.
  void resume_from(const Checkpoint& checkpoint);

  // One step: the scheduled learning rate, the loss (bf16 autocast and channels-last views as configured), the
  // NaN policy, backward, the gradient all-reduce, the optimizer step and the method's after_step.
  // A non-finite loss or gradient with --on-nan error -> RunError.
  StepOutcome train_step(const std::vector<torch::Tensor>& views, const torch::Tensor& labels,
                         const torch::Tensor& indices, const StepContext& ctx);

  struct EpochOutcome {
    EpochRecord record;    // the training part (loss, lr, terms, stats, images_per_s, train_seconds)
    bool stopped = false;  // stopped mid-epoch by a signal or --stop-after-steps; last.ckpt was written
    bool requeue = false;
  };
  // The steps of `epoch` from position(), with progress output and interval checkpoints.
  EpochOutcome train_epoch(Loader& loader, int64_t epoch);

  // Epochs position().epoch .. config.train.epochs: train_epoch, the callbacks, metrics, checkpoints, and a
  // stop at an epoch's end when a signal asked for it.
  TrainResult fit(Loader& loader);

  // Writes last.ckpt (and best.ckpt, and a step checkpoint) at `at`; returns the seconds it took. No-op
  // without a run directory or on a process that does not write.
  double save_checkpoint(const TrainPosition& at, bool best, bool interval);

 private:
  bool interval_due(int64_t steps_done) const;

  Config config_;
  MethodPtr method_;
  torch::Device device_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::vector<torch::Tensor> trained_params_;
  TrainPosition position_;
  TrainResult result_;
  std::shared_ptr<RunDirectory> run_dir_;
  std::shared_ptr<ViewGenerator> views_;
  std::vector<std::shared_ptr<TrainerCallback>> callbacks_;
  std::chrono::steady_clock::time_point last_checkpoint_time_;
};

// ---- the callbacks run_training installs (each usable on its own) ----

// Test top-1/top-5/ECE of a classifier method every `every` epochs and at the last, and top-1 on clean
// training images (`train_eval`, test transform): test_top1, test_top5, test_ece, train_clean_top1; the
// metric becomes test top-1.
class ClassifierEvalCallback : public TrainerCallback {
 public:
  ClassifierEvalCallback(std::shared_ptr<Dataset> test, std::shared_ptr<Dataset> train_eval, Normalization norm,
                         int64_t every);
  void on_epoch_end(Trainer& trainer, EpochRecord& record) override;

 private:
  std::shared_ptr<Dataset> test_, train_eval_;
  Normalization norm_;
  int64_t every_;
};

// The kNN monitor (docs/methods.md, "kNN monitor"): knn_top1 every `every` epochs and at the last; the metric
// of a method without a classifier.
class KnnMonitorCallback : public TrainerCallback {
 public:
  KnnMonitorCallback(std::shared_ptr<Dataset> train, std::shared_ptr<Dataset> test, Normalization norm,
                     int64_t every, int64_t k, double t);
  void on_epoch_end(Trainer& trainer, EpochRecord& record) override;

 private:
  std::shared_ptr<Dataset> train_, test_;
  Normalization norm_;
  int64_t every_, k_;
  double t_;
};

// Collapse warnings from the methods' collapse_std / effective_rank stats (docs/methods.md, "Collapse").
class CollapseMonitorCallback : public TrainerCallback {
 public:
  void on_epoch_end(Trainer& trainer, EpochRecord& record) override;
};

// ContrastiveCrop: boxes on from epoch box_warmup, recomputed every box_interval epochs (docs/methods.md).
class ContrastiveCropCallback : public TrainerCallback {
 public:
  ContrastiveCropCallback(std::shared_ptr<ViewGenerator> views, std::shared_ptr<Dataset> train, Normalization norm,
                          AugmentConfig augment);
  void on_epoch_begin(Trainer& trainer, int64_t epoch) override;
  void on_epoch_end(Trainer& trainer, EpochRecord& record) override;

 private:
  std::shared_ptr<ViewGenerator> views_;
  std::shared_ptr<Dataset> train_;
  Normalization norm_;
  AugmentConfig augment_;
};

// RUN_DIR/skipped_files.txt: the files of the training and held-out sets that could not be decoded, rewritten
// when the list grows (at the start and after each epoch), with a warning that counts them.
class SkippedFilesCallback : public TrainerCallback {
 public:
  SkippedFilesCallback(std::shared_ptr<Dataset> train, std::shared_ptr<Dataset> held_out)
      : train_(std::move(train)), held_out_(std::move(held_out)) {}
  void on_fit_begin(Trainer& trainer) override { update(trainer); }
  void on_epoch_end(Trainer& trainer, EpochRecord& record) override;

 private:
  void update(Trainer& trainer);
  std::shared_ptr<Dataset> train_, held_out_;
  size_t written_ = 0;
};

class EventWriter;

// TensorBoard event files in the run directory (--tensorboard, on by default; docs/watching.md): every `every`
// steps the loss, each loss term, the learning rate and images per second under step/ at the global step; after
// each epoch every value of its metrics.jsonl record under epoch/ at the epoch number (1-based). In a build
// without TensorBoard support it warns once and writes nothing.
class TensorBoardCallback : public TrainerCallback {
 public:
  explicit TensorBoardCallback(int64_t every);
  ~TensorBoardCallback() override;
  void on_fit_begin(Trainer& trainer) override;
  void on_step_end(Trainer& trainer, const StepContext& ctx, const StepOutcome& step) override;
  void on_epoch_logged(Trainer& trainer, const EpochRecord& record) override;

 private:
  int64_t every_;
  std::unique_ptr<EventWriter> writer_;
  std::chrono::steady_clock::time_point since_;
  int64_t images_since_ = 0;
};

// The dataset's test split, evaluated once, when training ends, with the weights of best.ckpt (chosen on the
// validation split): the classifier's top-1 (ce, cds) and the kNN top-1, logged and written to
// RUN_DIR/test_result.json. run_training installs it when --val-fraction holds out a validation split.
class FinalTestCallback : public TrainerCallback {
 public:
  FinalTestCallback(std::shared_ptr<Dataset> train, std::shared_ptr<Dataset> test, Normalization norm, int64_t k,
                    double t);
  void on_fit_end(Trainer& trainer, const TrainResult& result) override;

 private:
  std::shared_ptr<Dataset> train_, test_;
  Normalization norm_;
  int64_t k_;
  double t_;
};

// curves.png of the run directory after each record (gnuplot; a warning when it cannot).
class CurvesCallback : public TrainerCallback {
 public:
  void on_epoch_logged(Trainer& trainer, const EpochRecord& record) override;
};

}  // namespace contrastive
