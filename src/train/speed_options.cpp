// How the model computes: --device resolution, the machine facts behind resolve_speed_defaults, CPU bf16
// autocast (--precision bf16) and the channels-last layout (--memory-format channels-last).
#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "contrastive/common.h"
#include "contrastive/platform.h"
#include "contrastive/train.h"

namespace contrastive {

// LibTorch 2.4 replaced the per-device autocast setters with ones taking the device type (the old ones are
// deprecated there); 1.13 has only the old ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define CONTRASTIVE_AUTOCAST_BY_DEVICE 1
#endif

CpuBf16Autocast::CpuBf16Autocast(bool on) : on_(on) {
  if (!on_) return;
#ifdef CONTRASTIVE_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCPU, true);
#else
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::set_cpu_enabled(true);
#endif
}

CpuBf16Autocast::~CpuBf16Autocast() {
  if (!on_) return;
#ifdef CONTRASTIVE_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(at::kCPU, false);
#else
  at::autocast::set_cpu_enabled(false);
#endif
  at::autocast::clear_cache();
}

namespace {
// `t` with real NHWC strides: itself when suggest_memory_format() already says channels-last (unlike
// is_contiguous(ChannelsLast), it does not count size-1 dimensions as matching either layout), else a copy.
torch::Tensor with_nhwc_strides(const torch::Tensor& t) {
  if (t.suggest_memory_format() == torch::MemoryFormat::ChannelsLast) return t;
  return torch::empty_like(t, torch::MemoryFormat::ChannelsLast).copy_(t);
}
}  // namespace

void module_to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  // The same trap as in views_to_channels_last below: a 1x1 kernel [O,I,1,1] or a one-channel stem [O,1,k,k]
  // already counts as channels-last-contiguous, so contiguous(ChannelsLast) kept its NCHW strides; those layers'
  // backward then mixed layouts (BatchNorm and ReLU backward of layer 2 up to 10x slower than in Python).
  for (auto& p : module.parameters()) {
    if (p.dim() != 4) continue;
    auto nhwc = with_nhwc_strides(p);
    if (!nhwc.is_same(p)) p.set_data(nhwc);
  }
}

std::vector<torch::Tensor> views_to_channels_last(std::vector<torch::Tensor> views) {
  // Not v.contiguous(ChannelsLast): with one channel (Fashion-MNIST) an NCHW tensor already counts as
  // channels-last-contiguous, so that returns it unchanged with NCHW strides, suggest_memory_format() then says
  // contiguous, and the stem's output comes out NCHW: every op of the first block then mixed the two layouts
  // (its residual add_ 12x slower, ReLU backward 3x; docs/benchmarks.md). A copy into channels-last strides is
  // what Python's .to(memory_format=torch.channels_last) does.
  for (auto& v : views)
    if (v.dim() == 4) v = with_nhwc_strides(v);
  return views;
}

SpeedContext speed_context(const torch::Device& device) {
  SpeedContext c;
  c.native_bf16 = host_cpu().native_bf16();
  c.avx512 = host_cpu().avx512f;
  c.cuda = device.is_cuda();
  c.cpu_model = host_cpu().model;
  return c;
}

torch::Device resolve_device(const std::string& device) {
  if (device == "cpu") return torch::kCPU;
  if (device == "cuda") {
    if (!torch::cuda::is_available()) {
#ifdef CONTRASTIVE_WITH_CUDA
      throw InputError("--device cuda: this build has CUDA (LibTorch " TORCH_VERSION
                       ") but no CUDA device is visible on this machine; use --device cpu");
#else
      throw InputError("--device cuda: this build's LibTorch (" TORCH_VERSION
                       ") is CPU-only; build against a CUDA LibTorch (docs/building.md) or use --device cpu");
#endif
    }
    return torch::kCUDA;
  }
  return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

}  // namespace contrastive
