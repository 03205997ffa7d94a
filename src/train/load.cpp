#include <torch/torch.h>

#include <cmath>
#include <sstream>

#include "contrastive/augment.h"
#include "contrastive/common.h"
#include "contrastive/io.h"
#include "contrastive/registry.h"
#include "contrastive/train.h"

namespace contrastive {

DataSplits load_data(const Config& config) {
  DataOptions dopt;
  dopt.dataset = config.data.dataset;
  dopt.path = config.data.path;
  dopt.image_size = config.data.image_size;
  dopt.cifar100_coarse = config.data.labels == "coarse";
  dopt.decode_threads = static_cast<int>(config.data.decode_threads);
  dopt.cache_mb = config.data.cache_mb;
  dopt.layout = config.data.layout;
  dopt.channels = config.data.channels;
  dopt.val_fraction = config.data.val_fraction;
  dopt.split_seed = static_cast<uint64_t>(config.train.seed);
  dopt.strict = config.data.strict;
  DataSplits data = load_dataset(dopt);
  if (config.data.train_subset > 0) data.train = take_first(data.train, config.data.train_subset);
  if (config.data.test_subset > 0 && data.test) data.test = take_first(data.test, config.data.test_subset);
  if (config.data.test_subset > 0 && data.final_test)
    data.final_test = take_first(data.final_test, config.data.test_subset);
  return data;
}

Normalization data_normalization(const Config& config, int64_t channels) {
  if (!config.data.mean.empty()) {
    const auto n = static_cast<int64_t>(config.data.mean.size());
    if (n != channels || static_cast<int64_t>(config.data.std.size()) != channels) {
      throw InputError("--mean/--std: give " + std::to_string(channels) + " value" + (channels == 1 ? "" : "s") +
                       " each, one per channel of the images, not " + std::to_string(n) + " and " +
                       std::to_string(config.data.std.size()));
    }
    return {config.data.mean, config.data.std};
  }
  auto [mean, std] = default_normalization(config.data.dataset, channels);
  return {mean, std};
}

Normalization measure_normalization(const Dataset& train, int64_t sample) {
  const int64_t n = std::min(train.size(), std::max<int64_t>(sample, 1));
  auto idx = at::linspace(0, static_cast<double>(train.size() - 1), n).round().to(at::kLong);
  const int64_t c = train.channels();
  auto sum = torch::zeros({c}, torch::kDouble), sq = torch::zeros({c}, torch::kDouble);
  int64_t pixels = 0;
  for (int64_t i = 0; i < n; i += 256) {
    auto x = train.get(idx.slice(0, i, std::min(n, i + 256))).to(torch::kDouble).div_(255.0);
    sum += x.sum({0, 2, 3});
    sq += x.pow(2).sum({0, 2, 3});
    pixels += x.size(0) * x.size(2) * x.size(3);
  }
  auto mean = sum / static_cast<double>(pixels);
  auto var = (sq / static_cast<double>(pixels) - mean.pow(2)).clamp_min(0);
  auto sd = var.sqrt().clamp_min(1e-3);  // a constant channel would otherwise divide by zero
  Normalization out;
  for (int64_t k = 0; k < c; ++k) {
    // Four decimals, as the standard tables give them: the value config.yaml stores is the one used.
    out.mean.push_back(std::round(mean[k].item<double>() * 1e4) / 1e4);
    out.std.push_back(std::max(1e-3, std::round(sd[k].item<double>() * 1e4) / 1e4));
  }
  return out;
}

void settle_data_config(Config& config, const DataSplits& data) {
  const MethodInfo& info = method_info(config);
  if (!data.train->labelled() && info.uses_labels) {
    throw InputError("--method " + config.method.name + " trains on labels, but " + config.data.path +
                     " is an unlabelled folder (images with no class folders); use a self-supervised method, or "
                     "put the images in DIR/<class>/ folders");
  }
  if (config.data.dataset == "folder" && config.data.channels == 0)
    config.data.channels = data.train->channels();  // the input contract, for embed and export
  if (config.data.dataset == "folder" && config.data.mean.empty()) {
    const int64_t sample = std::min<int64_t>(data.train->size(), 2000);
    const Normalization n = measure_normalization(*data.train, sample);
    config.data.mean = n.mean;
    config.data.std = n.std;
    auto list = [](const std::vector<double>& v) {
      std::ostringstream ss;
      for (size_t i = 0; i < v.size(); ++i) ss << (i ? "," : "") << v[i];
      return ss.str();
    };
    log_info("normalisation measured on " + std::to_string(sample) + " training images: --mean " + list(n.mean) +
             " --std " + list(n.std) + " (kept in config.yaml)");
  }
}

void adopt_settled_data(const Config& stored, Config& asked) {
  if (stored.data.dataset != "folder" || asked.data.dataset != "folder") return;
  if (asked.data.mean.empty() && asked.data.std.empty()) {
    asked.data.mean = stored.data.mean;
    asked.data.std = stored.data.std;
  }
  if (asked.data.channels == 0) asked.data.channels = stored.data.channels;
}

DataConfig folder_data_like(const Config& trained, const std::string& dir, const std::string& layout) {
  DataConfig d;
  d.dataset = "folder";
  d.path = dir;
  d.layout = layout;
  d.val_fraction = 0;  // every image of the folder
  d.decode_threads = trained.data.decode_threads;
  const bool grey = trained.data.dataset == "fashion-mnist" || trained.data.dataset == "mnist";
  if (trained.data.dataset == "folder") {
    d.image_size = trained.data.image_size;
    d.channels = trained.data.channels;
  } else {
    d.image_size = grey ? 28 : 32;
    d.channels = grey ? 1 : 3;
  }
  const Normalization n = data_normalization(trained, d.channels != 0 ? d.channels : 3);
  d.mean = n.mean;
  d.std = n.std;
  return d;
}

LoadedModel load_model(const std::string& checkpoint, const DataConfig* data_override, const std::string& device) {
  const Checkpoint ckpt = Checkpoint::read(checkpoint);
  LoadedModel out;
  out.config = ckpt.config();
  if (data_override && !data_override->dataset.empty()) out.config.data = *data_override;
  out.device = resolve_device(device);
  // The stored config through the front door, its speed choices kept.
  out.config = resolve_config(std::move(out.config), {1, speed_context(out.device), false}).config;
  out.data = load_data(out.config);
  if (out.data.final_test) {  // a run that chose on a validation split: eval, knn, linear and embed report test
    out.data.test = out.data.final_test;
    out.data.final_test = nullptr;
    out.data.eval_split_name = "test";
  }
  out.norm = data_normalization(out.config, out.data.train->channels());

  MethodSpec spec = method_spec(out.config, *out.data.train);
  // Inference: what is only needed to train (a distillation teacher, whose checkpoint may not even be here any
  // more) is not built.
  spec.inference = true;
  out.method = make_method(spec);
  ckpt.load_model(*out.method, "weights do not match the model its config describes (different data shape?)");
  out.method->to(out.device);
  out.method->eval();
  return out;
}

}  // namespace contrastive
