// Throughput benchmark of a training step (`contrastive bench`): end to end, model only and augmentation only,
// with peak memory and the fraction of the machine's measured GEMM peak that the model step reaches.
#pragma once

#include <cstdint>
#include <string>

#include "contrastive/config.h"
#include "contrastive/methods.h"

namespace contrastive {

// The workload `contrastive bench` times when no --method is given (the README's speed tables use it).
inline const std::string kBenchDefaultMethod = "simclr";

struct BenchOptions {
  Config config;       // method, model, data, batch size, threads, device (resolve_defaults is applied)
  int64_t steps = 20;  // timed steps of each measurement
  int64_t warmup = 3;  // untimed steps first (allocator, oneDNN primitive caches)
  // Precision, memory format and the augmentation thread's count come from config.train (precision,
  // memory_format, allow_emulated_bf16, loader_threads: "auto" / 0 picks this machine's default, as `train` does).
  int64_t peak_size = 2048;  // n of the n x n x n float32 GEMM that measures the peak (0 = skip)
  // Non-empty: the model-only measurement also runs `steps` more steps under LibTorch's operator profiler and
  // writes them to this file as a Chrome trace (bench/profile_compare.py sets it against the Python reference's).
  std::string profile_path;
};

struct BenchResult {
  std::string method, arch, dataset, device;
  int64_t width = 0, batch_size = 0, steps = 0, warmup = 0, threads = 0, views = 0, loader_threads = 0;
  bool bf16 = false, channels_last = false;  // the resolved choices
  std::string precision, memory_format, fused_bn;
  std::string cpu, build;           // describe_cpu / describe_build of the machine it ran on
  double images_per_s = 0;          // end to end: loader + background augmentation + forward/backward/step
  double model_images_per_s = 0;    // forward/backward/step on views made once
  double augment_images_per_s = 0;  // the ViewGenerator alone on uint8 batches
  double peak_rss_mb = 0;           // getrusage ru_maxrss of this process
  double fwd_gflops_per_image = 0;  // conv + linear multiply-adds x 2, one view of one image
  double model_gflops_per_s = 0;    // 3 x forward (forward + backward) x views x model images/s
  double e2e_gflops_per_s = 0;      // the same at the end-to-end rate
  double peak_gflops_measured = 0;  // float32 GEMM on this machine with the same threads
  double fraction_of_peak = 0;      // model_gflops_per_s / peak_gflops_measured
};

// Runs the three measurements. Invalid options -> InputError.
BenchResult run_bench(const BenchOptions& options);

// Forward FLOPs (2 x multiply-adds of every Conv2d and Linear; BN, activations and losses not counted) of one
// image of size height x width through a ResNet-based method: backbone, projection MLPs and CDS heads.
double method_forward_flops(MethodImpl& method, int64_t height, int64_t width);

// Float32 GEMM rate of this machine in GFLOP/s: the median of `reps` n^3 products.
double measure_gemm_gflops(int64_t n, int reps = 5);

}  // namespace contrastive
