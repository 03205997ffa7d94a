// Shared basics: error types with exit codes, logging, thread set-up, seeded counters.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace contrastive {

// A user mistake (bad flag, bad file, bad value). The CLI prints its message on one line and exits 2.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Something went wrong inside a run that is not the user's input (e.g. a non-finite loss). Exit 1.
class RunError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Sets LibTorch's intra-op threads and OpenBLAS's where LibTorch uses it (MKL follows LibTorch's count):
// `requested` > 0 wins, otherwise every core. Returns the count used. The calling thread keeps that count even
// if another thread sets a different one later (docs/architecture.md, "Threads").
int configure_threads(int requested);

// Mixes a seed with counters (epoch, step, purpose) into a new 64-bit seed: all randomness in a run is
// derived from such counters, which makes resuming at any step deterministic without saving RNG state.
uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0);

// Human-readable log line to stderr (and to the run's train.log when one is attached).
void log_info(const std::string& message);
void log_warn(const std::string& message);
// Data-parallel runs: ranks other than 0 print warnings (prefixed with their rank) but no information lines.
void set_log_rank(int64_t rank);
void attach_log_file(const std::string& path);
void detach_log_file();

}  // namespace contrastive
