// `contrastive bench`: throughput of the training step (end to end, model only, augmentation only), peak memory
// and the fraction of the measured GEMM peak. Library side: src/bench/bench.cpp.
#include <CLI/CLI.hpp>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "contrastive/bench.h"
#include "contrastive/common.h"
#include "contrastive/registry.h"

namespace contrastive::cli {
namespace {

struct BenchFlags {
  std::string method = kBenchDefaultMethod, arch = "resnet18", dataset = "fashion-mnist", data, device = "cpu";
  int64_t width = 16, batch_size = 256, steps = 20, warmup = 3, threads = 0, train_subset = 0, peak_size = 2048,
          loader_threads = 0;
  std::string precision = "auto", memory_format = "auto", fused_bn = "on", profile;
  bool json = false, bf16 = false, channels_last = false, allow_emulated_bf16 = false;
};

nlohmann::json to_json(const BenchResult& r) {
  return {{"method", r.method},
          {"arch", r.arch},
          {"dataset", r.dataset},
          {"device", r.device},
          {"width", r.width},
          {"batch_size", r.batch_size},
          {"steps", r.steps},
          {"warmup", r.warmup},
          {"threads", r.threads},
          {"views", r.views},
          {"bf16", r.bf16},
          {"channels_last", r.channels_last},
          {"precision", r.precision},
          {"memory_format", r.memory_format},
          {"fused_bn", r.fused_bn},
          {"cpu", r.cpu},
          {"build", r.build},
          {"loader_threads", r.loader_threads},
          {"images_per_s", r.images_per_s},
          {"model_images_per_s", r.model_images_per_s},
          {"augment_images_per_s", r.augment_images_per_s},
          {"peak_rss_mb", r.peak_rss_mb},
          {"fwd_gflops_per_image", r.fwd_gflops_per_image},
          {"model_gflops_per_s", r.model_gflops_per_s},
          {"e2e_gflops_per_s", r.e2e_gflops_per_s},
          {"peak_gflops_measured", r.peak_gflops_measured},
          {"fraction_of_peak", r.fraction_of_peak}};
}

void print_table(const BenchResult& r) {
  std::cout << "bench: " << r.method << " " << r.arch << " width " << r.width << ", batch " << r.batch_size
            << " x " << r.views << " views, " << r.steps << " steps (+" << r.warmup << " warm-up), " << r.threads
            << " threads, " << r.device << (r.bf16 ? ", bf16 autocast" : "")
            << (r.channels_last ? ", channels-last" : "") << "\n"
            << "  CPU: " << r.cpu << "\n  build: " << r.build << "\n"
            << std::fixed << std::setprecision(1) << "  end to end          " << std::setw(10) << r.images_per_s
            << " images/s\n"
            << "  model only          " << std::setw(10) << r.model_images_per_s << " images/s\n"
            << "  augmentation only   " << std::setw(10) << r.augment_images_per_s << " images/s\n"
            << "  peak RSS            " << std::setw(10) << r.peak_rss_mb << " MB\n"
            << std::setprecision(4) << "  forward per image   " << std::setw(10) << r.fwd_gflops_per_image
            << " GFLOP (conv + linear)\n"
            << std::setprecision(1) << "  model step          " << std::setw(10) << r.model_gflops_per_s
            << " GFLOP/s (3 x forward x views x images/s)\n"
            << "  measured GEMM peak  " << std::setw(10) << r.peak_gflops_measured << " GFLOP/s (float32)\n"
            << std::setprecision(3) << "  fraction of peak    " << std::setw(10) << r.fraction_of_peak << "\n";
}

const CommandRegistration registration([](CLI::App& app) -> std::function<int()> {
  auto f = std::make_shared<BenchFlags>();
  auto* cmd = app.add_subcommand("bench", "throughput of the training step: end to end, model only, augmentation");
  cmd->add_option("--method", f->method, "training method: " + method_registry().names_joined())
      ->capture_default_str();
  cmd->add_option("--arch", f->arch, "backbone")->capture_default_str();
  cmd->add_option("--width", f->width, "base channels")->capture_default_str();
  cmd->add_option("--batch-size", f->batch_size, "images per step")->capture_default_str();
  cmd->add_option("--steps", f->steps, "timed steps per measurement")->capture_default_str();
  cmd->add_option("--warmup", f->warmup, "untimed steps before each measurement")->capture_default_str();
  cmd->add_option("--dataset", f->dataset, "dataset")->capture_default_str();
  cmd->add_option("--data", f->data, "dataset path (default: the dataset's location)");
  cmd->add_option("--train-subset", f->train_subset, "use the first N training images (0 = all)");
  cmd->add_option("--device", f->device, "auto | cpu | cuda")->capture_default_str();
  cmd->add_option("--threads", f->threads, "intra-op threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--loader-threads", f->loader_threads,
                  "intra-op threads of the augmentation thread (0 = auto, as in training: 1)")
      ->capture_default_str();
  cmd->add_option("--peak-size", f->peak_size, "n of the n^3 float32 GEMM measuring the peak (0 = skip)")
      ->capture_default_str();
  cmd->add_option("--precision", f->precision, "auto | fp32 | bf16 (auto: as train picks it on this machine)")
      ->capture_default_str();
  cmd->add_option("--memory-format", f->memory_format, "auto | channels-last | contiguous")->capture_default_str();
  cmd->add_option("--fused-bn", f->fused_bn, "on | off: fused BatchNorm + ReLU kernels")->capture_default_str();
  cmd->add_flag("--allow-emulated-bf16", f->allow_emulated_bf16, "bf16 even without native bf16 (slow)");
  cmd->add_flag("--bf16", f->bf16, "same as --precision bf16");
  cmd->add_flag("--channels-last", f->channels_last, "same as --memory-format channels-last");
  cmd->add_flag("--json", f->json, "print one JSON object on stdout");
  cmd->add_option("--profile", f->profile,
                  "also profile the model-only steps per operator into this Chrome-trace file "
                  "(bench/profile_compare.py)");
  return [f]() -> int {
    BenchOptions o;
    o.config.method.name = f->method;
    o.config.model.arch = f->arch;
    o.config.model.width = f->width;
    o.config.train.batch_size = f->batch_size;
    o.config.train.threads = f->threads;
    o.config.train.device = f->device;
    o.config.data.dataset = f->dataset;
    o.config.data.path = f->data;
    o.config.data.train_subset = f->train_subset;
    o.steps = f->steps;
    o.warmup = f->warmup;
    o.config.train.precision = f->precision;
    o.config.train.memory_format = f->memory_format;
    o.config.train.fused_bn = f->fused_bn;
    o.config.train.allow_emulated_bf16 = f->allow_emulated_bf16;
    o.config.train.bf16 = f->bf16;
    o.config.train.channels_last = f->channels_last;
    o.config.train.loader_threads = f->loader_threads;
    o.peak_size = f->peak_size;
    o.profile_path = f->profile;
    const BenchResult r = run_bench(o);
    if (f->json)
      std::cout << to_json(r).dump() << std::endl;
    else
      print_table(r);
    return 0;
  };
});

}  // namespace
}  // namespace contrastive::cli
