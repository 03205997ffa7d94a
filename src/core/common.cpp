#include "contrastive/common.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

namespace contrastive {

namespace {

void set_blas_threads(int n) {
  // OpenBLAS (the BLAS of Debian's LibTorch) keeps a thread pool of its own, sized at load time from
  // OPENBLAS_NUM_THREADS / OMP_NUM_THREADS or the core count; at::set_num_threads does not reach it. Looked up
  // at run time because the pip wheel's LibTorch has MKL instead, which at::set_num_threads sets.
  using SetThreads = void (*)(int);
  static const auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set != nullptr) set(n);
}

}  // namespace

int configure_threads(int requested) {
  int n = requested > 0 ? requested : static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  at::set_num_threads(n);
  // A thread takes LibTorch's global count at its first parallel op: taking it now keeps this thread at n even
  // when another thread (the loader's) changes that global later.
  (void)at::get_num_threads();
  // The GEMMs (linear layers, similarity matrices) then run on n threads whatever the environment says: with
  // OpenBLAS at its load-time default, a run's weights depended on OMP_NUM_THREADS (docs/architecture.md,
  // "Threads").
  set_blas_threads(n);
  return n;
}

uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  // splitmix64 over the four words.
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  uint64_t h = mix(seed);
  h = mix(h ^ a);
  h = mix(h ^ b);
  h = mix(h ^ c);
  return h;
}

namespace {
std::mutex g_log_mutex;
std::unique_ptr<std::ofstream> g_log_file;
std::atomic<int64_t> g_log_rank{0};

void write_line(const char* level, const std::string& message) {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  std::lock_guard<std::mutex> lock(g_log_mutex);
  std::cerr << "[" << stamp << "] " << level << message << "\n";
  if (g_log_file) {
    *g_log_file << "[" << stamp << "] " << level << message << "\n";
    g_log_file->flush();
  }
}
}  // namespace

void log_info(const std::string& message) {
  if (g_log_rank.load() == 0) write_line("", message);
}
void log_warn(const std::string& message) {
  const int64_t r = g_log_rank.load();
  write_line(r == 0 ? "warning: " : ("warning: [rank " + std::to_string(r) + "] ").c_str(), message);
}
void set_log_rank(int64_t rank) { g_log_rank.store(rank); }

void attach_log_file(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  g_log_file = std::make_unique<std::ofstream>(path, std::ios::app);
  if (!*g_log_file) throw InputError(path + ": cannot open log file for writing");
}

void detach_log_file() {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  g_log_file.reset();
}

}  // namespace contrastive
