// Internal to src/train/ (not installed): the progress output of an epoch (Trainer::train_epoch).
#pragma once

#include <chrono>
#include <cstdint>

namespace contrastive::detail {

// Progress on a terminal (a bar with rate and ETA, redrawn in place) or plain periodic lines otherwise.
class Progress {
 public:
  Progress(int64_t epoch, int64_t epochs, int64_t steps, int64_t log_every, bool quiet = false);
  void update(int64_t step, int64_t images, double loss);
  void set_first(int64_t first) { first_ = first; }
  void finish();

 private:
  int64_t epoch_, epochs_, steps_, log_every_, first_ = 0;
  bool tty_, quiet_;
  double images_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace contrastive::detail
