#include <torch/torch.h>

#include "contrastive/augment.h"
#include "contrastive/common.h"
#include "contrastive/io.h"
#include "contrastive/train.h"

namespace contrastive {

DataSplits load_data(const Config& config) {
  DataOptions dopt;
  dopt.dataset = config.data.dataset;
  dopt.path = config.data.path;
  dopt.image_size = config.data.image_size;
  dopt.cifar100_coarse = config.data.labels == "coarse";
  dopt.decode_threads = static_cast<int>(config.data.decode_threads);
  DataSplits data = load_dataset(dopt);
  if (config.data.train_subset > 0) data.train = take_first(data.train, config.data.train_subset);
  if (config.data.test_subset > 0) data.test = take_first(data.test, config.data.test_subset);
  return data;
}

Normalization data_normalization(const Config& config, int64_t channels) {
  auto [mean, std] = default_normalization(config.data.dataset, channels);
  return {mean, std};
}

LoadedModel load_model(const std::string& checkpoint, const DataConfig* data_override, const std::string& device) {
  const Checkpoint ckpt = Checkpoint::read(checkpoint);
  LoadedModel out;
  out.config = ckpt.config();
  if (data_override && !data_override->dataset.empty()) out.config.data = *data_override;
  resolve_defaults(out.config);
  validate(out.config);
  out.device = resolve_device(device);
  out.data = load_data(out.config);
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
