// What the program runs on: the CPU's vector features (read from /proc/cpuinfo), and the LibTorch build it was
// compiled against (version, CUDA, BLAS, oneDNN). Logged at start-up and written into bench's JSON, so that every
// speed figure names its machine. See docs/building.md (builds) and docs/usage.md, "Speed by default" (precision).
#pragma once

#include <string>
#include <vector>

namespace contrastive {

struct CpuCapabilities {
  std::string model;  // "model name" of /proc/cpuinfo ("unknown" when absent)
  int logical_cpus = 0;
  bool avx2 = false;
  bool avx512f = false;
  bool avx512_bf16 = false;  // native bfloat16 dot products (Cooper Lake, Sapphire Rapids, Zen 4 and later)
  bool amx_bf16 = false;     // Advanced Matrix Extensions with bf16 tiles (Sapphire Rapids and later)
  // Whether bfloat16 matmuls and convolutions run natively. Without it oneDNN emulates bf16 in fp32 and the
  // "fast" path is many times slower than fp32 (17x measured on an AVX2-only EPYC).
  bool native_bf16() const { return avx512_bf16 || amx_bf16; }
};

// Parses /proc/cpuinfo text (the first processor's "model name" and "flags"; logical CPUs counted by
// "processor" lines). Missing lines leave the defaults.
CpuCapabilities parse_cpuinfo(const std::string& text);
// The flags of one "flags" line, split on spaces.
CpuCapabilities capabilities_from_flags(const std::vector<std::string>& flags);
// This machine's CPU (read once).
const CpuCapabilities& host_cpu();
// One line: "AMD EPYC, 2 logical CPUs: AVX2 yes, AVX-512 yes, AVX512-BF16 yes, AMX-BF16 no".
std::string describe_cpu(const CpuCapabilities& cpu);

struct BuildInfo {
  std::string version;          // this project's version
  std::string torch_version;    // LibTorch's TORCH_VERSION
  bool cuda_compiled = false;   // built against a CUDA-enabled LibTorch
  bool cuda_available = false;  // and a CUDA device is visible now
  std::string blas;         // BLAS_INFO of LibTorch's build settings (e.g. "mkl", "generic" = OpenBLAS on Debian)
  std::string onednn;       // e.g. "oneDNN v3.13.3" / "MKL-DNN v2.6.3"
  std::string cpu_kernels;  // ATen's vector kernel level in use ("AVX2", "AVX512")
};

BuildInfo build_info();
// One line: "contrastive 0.1.0, LibTorch 2.15.0 (CUDA compiled in, no CUDA device), BLAS mkl, oneDNN v3.13.3,
// ATen kernels AVX512".
std::string describe_build(const BuildInfo& info);

}  // namespace contrastive
