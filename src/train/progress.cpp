// The progress output of an epoch: a bar with rate and ETA on a terminal, periodic lines otherwise.
#include "train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>

namespace contrastive::detail {

namespace {

std::string format_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  std::ostringstream ss;
  ss << s / 60 << ":" << std::setw(2) << std::setfill('0') << s % 60;
  return ss.str();
}

}  // namespace

Progress::Progress(int64_t epoch, int64_t epochs, int64_t steps, int64_t log_every, bool quiet)
    : epoch_(epoch),
      epochs_(epochs),
      steps_(steps),
      log_every_(log_every),
      tty_(isatty(STDERR_FILENO)),
      quiet_(quiet) {
  start_ = std::chrono::steady_clock::now();
}

void Progress::update(int64_t step, int64_t images, double loss) {
  images_ += images;
  if (quiet_) return;
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = el > 0 ? images_ / el : 0;
  const double eta = step > 0 ? el / (step + 1 - first_) * (steps_ - step - 1) : 0;
  std::ostringstream line;
  line << "epoch " << epoch_ + 1 << "/" << epochs_ << " ";
  if (tty_) {
    const int width = 24;
    const int filled = static_cast<int>(width * (step + 1) / std::max<int64_t>(1, steps_));
    line << "[" << std::string(filled, '#') << std::string(width - filled, '.') << "] ";
  }
  line << step + 1 << "/" << steps_ << " loss " << std::fixed << std::setprecision(4) << loss << " "
       << std::setprecision(0) << rate << " img/s ETA " << format_duration(eta);
  if (tty_) {
    std::cerr << "\r" << line.str() << "   " << std::flush;
  } else if ((step + 1) % log_every_ == 0 || step + 1 == steps_) {
    std::cerr << line.str() << "\n";
  }
}

void Progress::finish() {
  if (tty_ && !quiet_) std::cerr << "\n";
}

}  // namespace contrastive::detail
