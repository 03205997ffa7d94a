#include "contrastive/platform.h"

#include <ATen/Version.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace contrastive {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// The first match's group 1 of `pattern` in `text`, or "".
std::string find_first(const std::string& text, const std::string& pattern) {
  std::smatch m;
  const std::regex re(pattern);
  return std::regex_search(text, m, re) ? m[1].str() : "";
}

}  // namespace

CpuCapabilities capabilities_from_flags(const std::vector<std::string>& flags) {
  const std::set<std::string> f(flags.begin(), flags.end());
  CpuCapabilities c;
  c.avx2 = f.count("avx2") > 0;
  c.avx512f = f.count("avx512f") > 0;
  c.avx512_bf16 = f.count("avx512_bf16") > 0;
  c.amx_bf16 = f.count("amx_bf16") > 0;
  return c;
}

CpuCapabilities parse_cpuinfo(const std::string& text) {
  std::istringstream in(text);
  std::string line, model, flags_line;
  int processors = 0;
  bool have_flags = false;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
    if (key == "processor") ++processors;
    if (key == "model name" && model.empty()) model = value;
    if (key == "flags" && !have_flags) {
      flags_line = value;
      have_flags = true;
    }
  }
  std::vector<std::string> flags;
  std::istringstream fs(flags_line);
  for (std::string w; fs >> w;) flags.push_back(w);
  CpuCapabilities c = capabilities_from_flags(flags);
  c.model = model.empty() ? "unknown" : model;
  c.logical_cpus = processors;
  return c;
}

const CpuCapabilities& host_cpu() {
  static const CpuCapabilities cpu = [] {
    // CONTRASTIVE_CPUINFO names another file in /proc/cpuinfo's format: to see what the program would choose
    // on another CPU (the tests use it), not for normal runs.
    const char* path = std::getenv("CONTRASTIVE_CPUINFO");
    std::ifstream in(path != nullptr && *path != '\0' ? path : "/proc/cpuinfo");
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_cpuinfo(ss.str());
  }();
  return cpu;
}

std::string describe_cpu(const CpuCapabilities& c) {
  auto yn = [](bool b) { return b ? "yes" : "no"; };
  std::ostringstream s;
  s << c.model << ", " << c.logical_cpus << " logical CPUs: AVX2 " << yn(c.avx2) << ", AVX-512 " << yn(c.avx512f)
    << ", AVX512-BF16 " << yn(c.avx512_bf16) << ", AMX-BF16 " << yn(c.amx_bf16);
  return s.str();
}

BuildInfo build_info() {
  BuildInfo b;
#ifdef CONTRASTIVE_VERSION
  b.version = CONTRASTIVE_VERSION;
#else
  b.version = "unknown";
#endif
  b.torch_version = TORCH_VERSION;
#ifdef CONTRASTIVE_WITH_CUDA
  b.cuda_compiled = true;
#endif
  b.cuda_available = torch::cuda::is_available();
  const std::string config = at::show_config();
  b.blas = find_first(config, "BLAS_INFO=([^,\\s]+)");
  b.onednn = find_first(config, "(?:oneDNN|MKL-DNN) (v[0-9][0-9.]*)");
  if (!b.onednn.empty()) b.onednn = "oneDNN " + b.onednn;
  b.cpu_kernels = find_first(config, "CPU capability usage: ([A-Za-z0-9_]+)");
  return b;
}

std::string describe_build(const BuildInfo& b) {
  std::ostringstream s;
  s << "contrastive " << b.version << ", LibTorch " << b.torch_version << " ("
    << (b.cuda_compiled
            ? (b.cuda_available ? "CUDA compiled in, CUDA device present" : "CUDA compiled in, no CUDA device")
            : "CPU-only build")
    << "), BLAS " << (b.blas.empty() ? "unknown" : b.blas) << ", " << (b.onednn.empty() ? "no oneDNN" : b.onednn)
    << ", ATen kernels " << (b.cpu_kernels.empty() ? "unknown" : b.cpu_kernels);
  return s.str();
}

}  // namespace contrastive
