// Run directories, metrics, and crash-safe checkpoints.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "contrastive/config.h"

namespace contrastive {

// Checkpoint file layout: "CTRVCKPT" | u32 format version | u64 payload bytes | u64 FNV-1a of payload | payload,
// where the payload is a LibTorch archive. Written to a temp file, fsync'ed, then renamed over the target, so a
// crash or full disk leaves the previous checkpoint intact.
constexpr uint32_t kCheckpointVersion = 1;

void write_checkpoint(const std::string& path, torch::serialize::OutputArchive& archive);
// The same checkpoint to several files, serialised once and written (atomically each) in the given order.
void write_checkpoint(const std::vector<std::string>& paths, torch::serialize::OutputArchive& archive);
// Verifies magic, version, size and checksum; a torn or foreign file throws InputError naming the file.
void read_checkpoint(const std::string& path, torch::serialize::InputArchive& archive);

// Writes `data` to `path` atomically (temp file + fsync + rename). Throws RunError on any failure, leaving
// the previous file untouched.
void write_file_atomic(const std::string& path, const std::string& data);

// Appends one JSON object per line.
void append_jsonl(const std::string& path, const nlohmann::json& record);

// runs/<method>-<dataset>-<YYYYmmdd-HHMMSS>
std::string default_run_dir(const std::string& method, const std::string& dataset);

// Scalar helpers for archives.
void archive_put(torch::serialize::OutputArchive& a, const std::string& key, int64_t v);
void archive_put(torch::serialize::OutputArchive& a, const std::string& key, double v);
void archive_put(torch::serialize::OutputArchive& a, const std::string& key, const std::string& v);
int64_t archive_get_int(torch::serialize::InputArchive& a, const std::string& key);
double archive_get_double(torch::serialize::InputArchive& a, const std::string& key);
std::string archive_get_string(torch::serialize::InputArchive& a, const std::string& key);

// Where a training run stands; a checkpoint carries it beside the states (docs/architecture.md, "Checkpoints").
struct TrainPosition {
  int64_t epoch = 0;  // the epoch to run next (0-based)
  int64_t step = 0;   // the first step of that epoch
  int64_t global_step = 0;
  double best_metric = -1;  // what best.ckpt holds: test top-1, else kNN top-1, else -loss
  int64_t nan_skips = 0;
};

// A checkpoint written by the trainer, read and verified once. The one reader behind resume, load_model and a
// CDS distillation teacher: every failure (torn file, foreign file, missing entry, weights of another model) is
// an InputError naming the file.
class Checkpoint {
 public:
  static Checkpoint read(const std::string& path);

  const std::string& path() const { return path_; }
  // The run's config as it was saved (not resolved again: call resolve_defaults/validate as needed).
  const Config& config() const { return config_; }
  const TrainPosition& position() const { return position_; }
  int64_t world_size() const { return world_size_; }  // processes of the run that wrote it (1 when not recorded)

  // Loads the model state into `module` (a method built from config()); a mismatch -> InputError
  // "<path>: <what>", with `what` saying what did not match.
  void load_model(torch::nn::Module& module,
                  const std::string& what = "weights do not match the model its config describes") const;
  void load_optimizer(torch::optim::Optimizer& optimizer) const;
  // ContrastiveCrop boxes [n, 4], undefined when the run had none.
  torch::Tensor boxes() const;

 private:
  std::string path_;
  Config config_;
  TrainPosition position_;
  int64_t world_size_ = 1;
  std::shared_ptr<torch::serialize::InputArchive> archive_;
};

// Writes a trainer checkpoint (model, optimizer, config, position, world size, boxes when defined) to `paths`,
// in order, each atomically.
void write_run_checkpoint(const std::vector<std::string>& paths, const Config& config, torch::nn::Module& model,
                          torch::optim::Optimizer& optimizer, const TrainPosition& position, int64_t world_size,
                          const torch::Tensor& boxes);

}  // namespace contrastive
