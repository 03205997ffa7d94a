// Training-mode BatchNorm + ReLU (+ residual add) forward and backward at the shapes of a width-16 resnet18 on
// 28x28 images with two views of batch 256: the fused operator (fused_batch_norm_relu) against ATen's
// batch_norm / add / relu chain. docs/benchmarks.md, "Fused BatchNorm + ReLU".
//   build/bench/contrastive_microbench --benchmark_filter=BnRelu   (every core; Debian's LibTorch defaults to one)
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <algorithm>
#include <thread>

#include "contrastive/models.h"

namespace {

// Args: fused (0/1), residual (0/1), channels, spatial size, bf16 activations (0/1: float32).
void BM_BnRelu(benchmark::State& state) {
  const bool fused = state.range(0) != 0, residual = state.range(1) != 0;
  const int64_t N = 512, C = state.range(2), H = state.range(3);
  torch::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));  // every core
  auto cl = torch::MemoryFormat::ChannelsLast;
  const auto type = state.range(4) != 0 ? torch::kBFloat16 : torch::kFloat;
  auto x0 = torch::randn({N, C, H, H}).to(type).contiguous(cl),
       r0 = torch::randn({N, C, H, H}).to(type).contiguous(cl);
  auto gy = torch::randn({N, C, H, H}).to(type).contiguous(cl);
  contrastive::SplitBatchNorm2d bn(C);
  bn->set_fused(fused);
  for (auto _ : state) {
    auto x = x0.detach().requires_grad_(true), r = r0.detach().requires_grad_(true);
    auto y = residual ? bn->forward_relu(x, r) : bn->forward_relu(x);
    y.backward(gy);
    benchmark::DoNotOptimize(x.grad().data_ptr());
  }
}

}  // namespace

BENCHMARK(BM_BnRelu)
    ->ArgsProduct({{0, 1}, {0, 1}, {16}, {28}, {0, 1}})
    ->ArgsProduct({{0, 1}, {0, 1}, {64}, {7}, {0, 1}})
    ->ArgNames({"fused", "residual", "C", "size", "bf16"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
