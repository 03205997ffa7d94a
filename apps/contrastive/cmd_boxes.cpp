// `contrastive boxes`: ContrastiveCrop visualisation (docs/methods.md §6). Localises the boxes of the first
// training images with a checkpoint's backbone and draws them (red) with two sampled crops per image.
#include <torch/torch.h>

#include <iostream>
#include <memory>

#include "commands.h"
#include "contrastive/augment.h"
#include "contrastive/common.h"
#include "contrastive/eval.h"
#include "contrastive/train.h"

namespace contrastive::cli {
namespace {

struct BoxesArgs {
  std::string checkpoint, out = "boxes.png", device = "auto";
  int64_t count = 16, scale = 4, seed = 0, threads = 0;
  double thresh = 0.1, alpha = 0.6;
};

int run_boxes(const BoxesArgs& a) {
  if (a.count < 1) throw InputError("invalid value for --count: " + std::to_string(a.count) + " (must be >= 1)");
  if (a.scale < 1) throw InputError("invalid value for --scale: " + std::to_string(a.scale) + " (must be >= 1)");
  if (!(a.thresh >= 0 && a.thresh < 1))
    throw InputError("invalid value for --thresh: " + std::to_string(a.thresh) + " (must be in [0, 1))");
  if (!(a.alpha > 0)) throw InputError("invalid value for --alpha: " + std::to_string(a.alpha) + " (must be > 0)");
  configure_threads(static_cast<int>(a.threads));
  LoadedModel m = load_model(a.checkpoint, nullptr, a.device);
  const Dataset& train = *m.data.train;
  const int64_t n = std::min(a.count, train.size());
  auto boxes = compute_boxes(*m.method, train, m.norm, m.device, a.thresh, n);

  // The run's own augmentation with ContrastiveCrop switched on (§6 sampling, Beta(alpha, alpha)).
  const auto& ac = m.config.augment;
  AugmentOptions opt;
  opt.preset = ac.preset;
  opt.views = ac.views;
  opt.multi_crop = ac.multi_crop;
  opt.crop_scale_min = ac.crop_scale_min;
  opt.crop = "contrastive";
  opt.box_alpha = a.alpha;
  opt.mean = m.norm.mean;
  opt.std = m.norm.std;
  auto views = make_view_generator(opt, train.channels(), train.height(), train.width());
  views->set_boxes(boxes);
  views->use_boxes(true);
  auto idx = torch::arange(n, torch::kLong);
  auto images = train.get(idx);
  auto crops = views->sample_crop_boxes(images, idx, mix_seed(static_cast<uint64_t>(a.seed), 0xB0E5));
  if (crops.size() > 2) crops.resize(2);
  draw_boxes_grid(images, boxes, crops, a.scale, a.out);
  std::cout << "wrote " << a.out << ": " << n << " images, their boxes (red) and " << crops.size()
            << " sampled crops each\n";
  return 0;
}

const CommandRegistration kBoxes([](CLI::App& app) -> std::function<int()> {
  auto args = std::make_shared<BoxesArgs>();
  auto* c = app.add_subcommand("boxes", "draw ContrastiveCrop boxes and sampled crops of a checkpoint (PNG)");
  c->add_option("--checkpoint", args->checkpoint, "checkpoint file")->required();
  c->add_option("--out", args->out, "output PNG")->capture_default_str();
  c->add_option("--count", args->count, "number of training images")->capture_default_str();
  c->add_option("--thresh", args->thresh, "box threshold on the normalised activation map")->capture_default_str();
  c->add_option("--alpha", args->alpha, "Beta(alpha, alpha) of the crop centres")->capture_default_str();
  c->add_option("--scale", args->scale, "upscaling of each image")->capture_default_str();
  c->add_option("--seed", args->seed, "seed of the sampled crops")->capture_default_str();
  c->add_option("--device", args->device, "auto | cpu | cuda")->capture_default_str();
  c->add_option("--threads", args->threads, "intra-op threads (0 = all cores)")->capture_default_str();
  return [args] { return run_boxes(*args); };
});

}  // namespace
}  // namespace contrastive::cli
