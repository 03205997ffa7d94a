// `contrastive bench`: the trainer's step (same config resolution, method, optimizer, loader and augmentation)
// timed three ways, so that a slow end-to-end rate can be attributed to the model or to the augmentation.
#include "contrastive/bench.h"

#include <sys/resource.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <tuple>

#include "contrastive/augment.h"
#include "contrastive/common.h"
#include "contrastive/data.h"
#include "contrastive/platform.h"
#include "contrastive/train.h"
#include "contrastive/trainer.h"

namespace contrastive {

namespace {

namespace nn = torch::nn;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux reports kilobytes
}

// LibTorch up to 2.0 has its own c10::variant; from 2.1 on c10 uses std::variant. (Not __has_include: a pip build
// on Debian also sees libtorch-dev's old c10 headers in /usr/include.)
#if TORCH_VERSION_MAJOR < 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR < 1)
#define variant_get_if c10::get_if
#else
#define variant_get_if std::get_if
#endif

// Spatial size walk: each counter takes the input height/width and returns the output's.
struct Walk {
  double flops = 0;

  std::pair<int64_t, int64_t> conv(const nn::Conv2dImpl& c, int64_t h, int64_t w) {
    const auto& o = c.options;
    const auto k = *o.kernel_size(), s = *o.stride(), d = *o.dilation();
    const auto* pad = variant_get_if<torch::ExpandingArray<2>>(&o.padding());
    const int64_t ph = pad ? (**pad)[0] : 0, pw = pad ? (**pad)[1] : 0;
    const int64_t oh = (h + 2 * ph - d[0] * (k[0] - 1) - 1) / s[0] + 1;
    const int64_t ow = (w + 2 * pw - d[1] * (k[1] - 1) - 1) / s[1] + 1;
    flops += 2.0 * static_cast<double>(k[0] * k[1] * o.in_channels() / o.groups() * o.out_channels() * oh * ow);
    return {oh, ow};
  }

  void linear(const nn::LinearImpl& l) {
    flops += 2.0 * static_cast<double>(l.options.in_features() * l.options.out_features());
  }

  // Any module of a chain: containers and blocks recurse, convs and linears count, the rest keep the size.
  std::pair<int64_t, int64_t> module(nn::Module& m, int64_t h, int64_t w) {
    if (auto* c = m.as<nn::Conv2dImpl>()) return conv(*c, h, w);
    if (auto* l = m.as<nn::LinearImpl>()) {
      linear(*l);
      return {1, 1};
    }
    if (auto* b = m.as<BasicBlockImpl>()) {
      auto s1 = conv(*b->conv1, h, w);
      auto out = conv(*b->conv2, s1.first, s1.second);
      if (b->downsample) module(*b->downsample, h, w);
      return out;
    }
    if (auto* b = m.as<BottleneckImpl>()) {
      auto s1 = conv(*b->conv1, h, w);
      auto s2 = conv(*b->conv2, s1.first, s1.second);
      auto out = conv(*b->conv3, s2.first, s2.second);
      if (b->downsample) module(*b->downsample, h, w);
      return out;
    }
    if (auto* seq = m.as<nn::SequentialImpl>()) {
      for (auto& child : seq->children()) std::tie(h, w) = module(*child, h, w);
      return {h, w};
    }
    if (auto* sep = m.as<SepConvImpl>()) return module(*sep->net, h, w);
    if (auto* mlp = m.as<MLPImpl>()) return module(*mlp->net, h, w);
    return {h, w};
  }
};

}  // namespace

double method_forward_flops(MethodImpl& method, int64_t height, int64_t width) {
  auto net = std::dynamic_pointer_cast<ResNetImpl>(method.backbone());
  if (!net) return 0;  // AMDIM's encoder: not counted
  Walk walk;
  auto hw = walk.module(*net->conv1, height, width);
  std::vector<std::pair<int64_t, int64_t>> stage_hw;
  for (auto* layer : {&net->layer1, &net->layer2, &net->layer3, &net->layer4}) {
    hw = walk.module(**layer, hw.first, hw.second);
    stage_hw.push_back(hw);
  }
  if (net->fc) walk.linear(*net->fc);
  // The method's own modules besides the backbone: CDS heads start from their stage's map, the rest
  // (projection and prediction MLPs) act on pooled vectors.
  for (const auto& item : method.named_children()) {
    const auto& child = item.value();
    if (child.get() == static_cast<nn::Module*>(net.get())) continue;
    if (auto* heads = child->as<CDSHeadsImpl>()) {
      for (const auto& head : heads->named_children()) {
        const auto l = static_cast<size_t>(std::stoll(head.key().substr(3)) - 1);  // "aux1".."aux3"
        walk.module(*head.value(), stage_hw.at(l).first, stage_hw.at(l).second);
      }
      continue;
    }
    for (auto& m : child->modules())
      if (auto* l = m->as<nn::LinearImpl>()) walk.linear(*l);
  }
  return walk.flops;
}

double measure_gemm_gflops(int64_t n, int reps) {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({n, n}), b = torch::randn({n, n}), c = torch::empty({n, n});
  torch::mm_out(c, a, b);  // warm-up
  std::vector<double> rates;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    torch::mm_out(c, a, b);
    rates.push_back(2.0 * static_cast<double>(n * n * n) / seconds_since(t0) / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

BenchResult run_bench(const BenchOptions& options) {
  if (options.steps < 1)
    throw InputError("invalid value for --steps: " + std::to_string(options.steps) + " (must be >= 1)");
  if (options.warmup < 0)
    throw InputError("invalid value for --warmup: " + std::to_string(options.warmup) + " (must be >= 0)");
  if (options.peak_size < 0)
    throw InputError("invalid value for --peak-size: " + std::to_string(options.peak_size));
  const torch::Device device = resolve_device(options.config.train.device);
  // The same front door as `train`, speed choices included (precision and memory format "auto" unless asked for).
  const Config config = resolve_config(options.config, {1, speed_context(device)}).config;
  const auto& tc = config.train;
  const bool bf16 = tc.precision == "bf16", channels_last = tc.memory_format == "channels-last";
  const int threads = configure_threads(static_cast<int>(tc.threads));
  torch::manual_seed(static_cast<uint64_t>(tc.seed));

  DataSplits data = load_data(config);
  MethodPtr method = make_method(method_spec(config, *data.train));
  // The trainer's own object: device, channels-last and optimizer as in training, and below its train_step.
  Trainer trainer(config, method, device);
  method->train();
  auto views = make_config_view_generator(config, *data.train);

  BenchResult r;
  r.method = config.method.name;
  r.arch = config.model.arch;
  r.dataset = config.data.dataset;
  r.device = device.str();
  r.width = config.model.width;
  r.batch_size = tc.batch_size;
  r.steps = options.steps;
  r.warmup = options.warmup;
  r.threads = threads;
  r.views = views->num_views();
  r.bf16 = bf16;
  r.channels_last = channels_last;
  r.precision = tc.precision;
  r.memory_format = tc.memory_format;
  r.fused_bn = tc.fused_bn;
  r.cpu = describe_cpu(host_cpu());
  r.build = describe_build(build_info());
  r.loader_threads = tc.loader_threads;

  const uint64_t seed = static_cast<uint64_t>(tc.seed);
  // Trainer::train_step, the training step itself (schedule, autocast, NaN policy, backward, optimizer step,
  // after_step), at the positions of the first epoch of a run whose epoch has every step bench makes.
  const int64_t epoch_steps = options.warmup + 2 * options.steps;
  auto step = [&](const std::vector<torch::Tensor>& v, const torch::Tensor& labels, const torch::Tensor& idx,
                  int64_t s) {
    StepContext ctx;
    ctx.step = ctx.global_step = s;
    ctx.steps_per_epoch = epoch_steps;
    ctx.total_steps = epoch_steps * std::max<int64_t>(1, tc.epochs);
    ctx.seed = mix_seed(seed, 0, static_cast<uint64_t>(s), kStepSeedTag);
    trainer.train_step(v, labels, idx, ctx);
  };

  // (a) End to end: the trainer's loader with augmentation in its background thread. Full batches only, and
  // as many epochs as the steps need (a subset may be smaller than steps x batch).
  {
    LoaderOptions lopt;
    lopt.batch_size = tc.batch_size;
    lopt.drop_last = true;
    lopt.seed = seed;
    lopt.threads = tc.loader_threads;
    Loader loader(data.train, lopt, [&, seed](Batch& b) {
      b.views = (*views)(b.images, b.indices, mix_seed(seed, b.epoch, b.step, kViewSeedTag), device);
    });
    if (loader.steps_per_epoch() == 0)
      throw InputError("--batch-size " + std::to_string(tc.batch_size) + ": larger than the " +
                       std::to_string(data.train->size()) + " training images");
    int64_t epoch = 0, done = 0, images = 0;
    loader.start_epoch(epoch);
    Clock::time_point t0 = Clock::now();
    while (done < options.warmup + options.steps) {
      auto batch = loader.next();
      if (!batch) {
        loader.start_epoch(++epoch);
        continue;
      }
      if (done == options.warmup) t0 = Clock::now();  // the loader keeps prefetching meanwhile, as in training
      step(batch->views, batch->labels.to(device), batch->indices, done);
      if (done >= options.warmup) images += batch->labels.size(0);
      ++done;
    }
    r.images_per_s = static_cast<double>(images) / seconds_since(t0);
  }

  // Fixed uint8 batches for (b) and (c): the first batches of the training set.
  const int64_t n_batches = std::min<int64_t>(4, std::max<int64_t>(1, data.train->size() / tc.batch_size));
  std::vector<torch::Tensor> images, indices;
  for (int64_t i = 0; i < n_batches; ++i) {
    auto idx =
        torch::arange(i * tc.batch_size, std::min(data.train->size(), (i + 1) * tc.batch_size), torch::kLong);
    indices.push_back(idx);
    images.push_back(data.train->get(idx));
  }

  // (b) Model only: views made once and reused. A few different batches in turn, not one: many steps on a single
  // batch drive a contrastive loss towards degenerate values (denormals) that run slower than real training.
  {
    std::vector<std::vector<torch::Tensor>> v;
    std::vector<torch::Tensor> labels;
    for (int64_t i = 0; i < n_batches; ++i) {
      v.push_back(
          (*views)(images[i], indices[i], mix_seed(seed, 1, static_cast<uint64_t>(i), kViewSeedTag), device));
      labels.push_back(data.train->labels().index_select(0, indices[i]).to(device));
    }
    int64_t count = 0;
    auto run = [&](int64_t s) {
      const auto i = static_cast<size_t>(s % n_batches);
      step(v[i], labels[i], indices[i], s);
      count += images[i].size(0);
    };
    for (int64_t s = 0; s < options.warmup; ++s) run(s);
    count = 0;
    const auto t0 = Clock::now();
    for (int64_t s = 0; s < options.steps; ++s) run(options.warmup + s);
    r.model_images_per_s = static_cast<double>(count) / seconds_since(t0);
    if (!options.profile_path.empty()) {  // after the timing: the profiler's own cost stays out of the rate
      torch::autograd::profiler::RecordProfile guard(options.profile_path);
      for (int64_t s = 0; s < options.steps; ++s) run(options.warmup + options.steps + s);
    }
  }

  // (c) Augmentation only, on this thread with the same intra-op threads.
  {
    int64_t count = 0;
    auto run = [&](int64_t s) {
      const auto i = static_cast<size_t>(s % n_batches);
      auto v = (*views)(images[i], indices[i], mix_seed(seed, 2, static_cast<uint64_t>(s), kViewSeedTag), device);
      count += images[i].size(0);
      return v;
    };
    for (int64_t s = 0; s < std::min<int64_t>(options.warmup, 1); ++s) run(s);
    count = 0;
    const auto t0 = Clock::now();
    for (int64_t s = 0; s < options.steps; ++s) run(s);
    r.augment_images_per_s = static_cast<double>(count) / seconds_since(t0);
  }
  r.peak_rss_mb = peak_rss_mb();  // before the GEMM's buffers, which training does not need

  r.fwd_gflops_per_image = method_forward_flops(*method, data.train->height(), data.train->width()) / 1e9;
  const double train_gflop_per_image = 3.0 * r.fwd_gflops_per_image * static_cast<double>(r.views);
  r.model_gflops_per_s = train_gflop_per_image * r.model_images_per_s;
  r.e2e_gflops_per_s = train_gflop_per_image * r.images_per_s;
  if (options.peak_size > 0) {
    r.peak_gflops_measured = measure_gemm_gflops(options.peak_size);
    r.fraction_of_peak = r.model_gflops_per_s / r.peak_gflops_measured;
  }
  return r;
}

}  // namespace contrastive
