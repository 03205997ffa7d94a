// The data pipeline alone, as the trainer runs it: a folder dataset (decode + resize, with or without the
// decoded-image cache) read by the background Loader, whose worker makes two SimCLR views of each batch.
// No model. Prints one JSON line: images per second over the timed batches.
//
//   contrastive_pipeline_bench --data DIR [--size 64] [--batch 256] [--batches 40] [--warmup 5]
//                              [--cache-mb 0] [--decode-threads 2] [--threads 2] [--preset simclr-cifar]
//
// bench/pipeline/run.sh sets it against torchvision's ImageFolder + PIL transforms and lightly's SimCLRTransform.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "contrastive/augment.h"
#include "contrastive/common.h"
#include "contrastive/data.h"
#include "contrastive/platform.h"

using namespace contrastive;

int main(int argc, char** argv) {
  std::string data, preset = "simclr-cifar";
  int64_t size = 64, batch = 256, batches = 40, warmup = 5, cache_mb = 0, decode_threads = 2, threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--data")
      data = v;
    else if (k == "--preset")
      preset = v;
    else if (k == "--size")
      size = std::stoll(v);
    else if (k == "--batch")
      batch = std::stoll(v);
    else if (k == "--batches")
      batches = std::stoll(v);
    else if (k == "--warmup")
      warmup = std::stoll(v);
    else if (k == "--cache-mb")
      cache_mb = std::stoll(v);
    else if (k == "--decode-threads")
      decode_threads = std::stoll(v);
    else if (k == "--threads")
      threads = std::stoll(v);
    else {
      std::cerr << "pipeline_bench: unknown option " << k << "\n";
      return 2;
    }
  }
  if (data.empty()) {
    std::cerr << "pipeline_bench: --data DIR is required\n";
    return 2;
  }
  try {
    configure_threads(static_cast<int>(threads));
    DataOptions o;
    o.dataset = "folder";
    o.path = data;
    o.image_size = size;
    o.cache_mb = cache_mb;
    o.decode_threads = static_cast<int>(decode_threads);
    o.val_fraction = 0;
    auto splits = load_dataset(o);
    AugmentOptions a;
    a.preset = preset;
    a.views = 2;
    const auto& train = *splits.train;
    a.mean.assign(static_cast<size_t>(train.channels()), 0.5);
    a.std.assign(static_cast<size_t>(train.channels()), 0.25);
    auto views = make_view_generator(a, train.channels(), train.height(), train.width());
    LoaderOptions lo;
    lo.batch_size = batch;
    lo.shuffle = true;
    lo.drop_last = true;
    lo.threads = threads;
    Loader loader(splits.train, lo, [&](Batch& b) {
      b.views = (*views)(b.images, b.indices, static_cast<uint64_t>(b.step), torch::kCPU);
    });
    const int64_t per_epoch = loader.steps_per_epoch();
    if (per_epoch < 1) throw InputError("fewer images than one batch");
    int64_t done = 0, timed = 0, epoch = 0;
    auto t0 = std::chrono::steady_clock::now();
    while (timed < batches) {
      loader.start_epoch(epoch++, 0);
      while (auto b = loader.next()) {
        if (done == warmup) t0 = std::chrono::steady_clock::now();
        if (done >= warmup) ++timed;
        ++done;
        if (timed >= batches) break;
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "{\"impl\": \"contrastive\", \"images_per_s\": %.1f, \"batches\": %lld, \"batch\": %lld, \"size\": %lld, "
        "\"cache_mb\": %lld, \"decode_threads\": %lld, \"threads\": %lld, \"images\": %lld, \"skipped\": %zu, "
        "\"cpu\": \"%s\"}\n",
        static_cast<double>(timed * batch) / secs, static_cast<long long>(timed), static_cast<long long>(batch),
        static_cast<long long>(size), static_cast<long long>(cache_mb), static_cast<long long>(decode_threads),
        static_cast<long long>(threads), static_cast<long long>(train.size()), train.skipped_files().size(),
        describe_cpu(host_cpu()).c_str());
    return 0;
  } catch (const InputError& e) {
    std::cerr << "pipeline_bench: " << e.what() << "\n";
    return 2;
  }
}
