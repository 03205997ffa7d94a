// Augmentation throughput: the simclr-cifar preset, 2 views, batch 256, on the CPU (images/s counts input
// images, each producing two views).
#include <ATen/CPUGeneratorImpl.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "contrastive/augment.h"

namespace {

void BM_AugmentSimclr(benchmark::State& state) {
  const int64_t B = 256, C = state.range(0), S = state.range(1);
  contrastive::AugmentOptions o;
  o.preset = "simclr-cifar";
  o.views = 2;
  auto views = contrastive::make_view_generator(o, C, S, S);
  auto g = at::detail::createCPUGenerator(1);
  auto images = torch::randint(0, 256, {B, C, S, S}, g, torch::kUInt8);
  auto idx = torch::arange(B);
  uint64_t seed = 0;
  for (auto _ : state) {
    auto out = (*views)(images, idx, seed++, torch::kCPU);
    benchmark::DoNotOptimize(out[1].data_ptr<float>());
  }
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(B), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_AugmentSimclr)
    ->Args({3, 32})
    ->Args({3, 224})
    ->Args({1, 28})
    ->ArgNames({"C", "size"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
