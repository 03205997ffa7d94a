// The named augmentation presets (docs/methods.md §0 SimCLR-CIFAR / MoCo-v2, §2 CDS, §6 ContrastiveCrop,
// §7 AMDIM) and the dataset normalisation defaults.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "contrastive/augment.h"
#include "contrastive/common.h"
#include "contrastive/config.h"

namespace contrastive {

namespace {

const char* kPresets = "simclr-cifar, moco-v2, cds, supervised, rrc-flip, amdim, test";

// What every preset builder needs to know.
struct Spec {
  const AugmentOptions& o;
  int64_t channels, height, width, size;
  bool colour;  // RGB images: saturation, hue and grayscale apply
  TransformPtr norm;
};

TransformPtr jitter(const Spec& s, double hue, double p) {
  return random_apply(color_jitter(0.4, 0.4, 0.4, hue, s.colour), p);
}

void add_grayscale(const Spec& s, Pipeline& pl, double p) {
  if (s.colour) pl.add(random_grayscale(p));
}

// Pipelines built around a RandomResizedCrop, parameterised by output size and scale.
Pipeline rrc_view(const std::string& preset, const Spec& s, int64_t size, std::pair<double, double> scale) {
  Pipeline pl;
  pl.add(random_resized_crop(size, scale));
  if (preset == "simclr-cifar") {
    pl.add(horizontal_flip(0.5)).add(jitter(s, 0.1, 0.8));
    add_grayscale(s, pl, 0.2);
  } else if (preset == "moco-v2") {
    pl.add(jitter(s, 0.1, 0.8));
    add_grayscale(s, pl, 0.2);
    pl.add(random_apply(gaussian_blur(0.1, 2.0), 0.5)).add(horizontal_flip(0.5));
  } else {  // rrc-flip
    pl.add(horizontal_flip(0.5));
  }
  return pl.add(s.norm);
}

std::vector<Pipeline> rrc_views(const std::string& preset, const Spec& s) {
  std::vector<Pipeline> views;
  const std::pair<double, double> global{s.o.crop_scale_min, 1.0};
  if (s.o.multi_crop.empty()) {
    for (int64_t v = 0; v < s.o.views; ++v) views.push_back(rrc_view(preset, s, s.size, global));
    return views;
  }
  // Multi-crop: the largest size gets the global scale range, smaller ones (0.05, crop_scale_min).
  auto crops = parse_multi_crop(s.o.multi_crop);
  int64_t largest = 0;
  for (auto& c : crops) largest = std::max(largest, c.second);
  for (auto& c : crops) {
    auto scale = c.second == largest ? global : std::make_pair(0.05, s.o.crop_scale_min);
    for (int64_t v = 0; v < c.first; ++v) views.push_back(rrc_view(preset, s, c.second, scale));
  }
  return views;
}

// CDS (§2): view 1 is crop+flip+Cutout (before Normalize, so the hole is 0 in [0,1]), view 2 is crop+colour.
std::vector<Pipeline> cds_views(const Spec& s) {
  const auto hole = static_cast<int64_t>(std::lround(16.0 * static_cast<double>(s.size) / 32.0));
  Pipeline v1, v2;
  v1.add(random_crop(s.size, 4, 128.0 / 255.0)).add(horizontal_flip(0.5)).add(cutout(1, hole)).add(s.norm);
  v2.add(random_crop(s.size, 4, 0.0)).add(horizontal_flip(0.5)).add(jitter(s, 0.1, 0.8));
  add_grayscale(s, v2, 0.2);
  v2.add(s.norm);
  return {v1, v2};
}

// AMDIM (§7): the shared flip is built by the caller; here the independent per-view part.
Pipeline amdim_view(const Spec& s) {
  Pipeline pl;
  if (s.size != s.height || s.size != s.width) pl.add(resize(s.size, s.size));
  pl.add(random_apply(random_translate_reflect(4), 0.8)).add(jitter(s, 0.2, 0.8));
  add_grayscale(s, pl, 0.25);
  return pl.add(s.norm);
}

std::vector<double> checked(std::vector<double> v, int64_t channels, const char* what) {
  if (v.empty()) v.assign(static_cast<size_t>(channels), 0.5);
  if (static_cast<int64_t>(v.size()) != channels && v.size() != 1)
    throw InputError(std::string("augment: ") + what + " has " + std::to_string(v.size()) + " values for " +
                     std::to_string(channels) + "-channel images");
  return v;
}

}  // namespace

const std::vector<std::string>& augment_preset_names() {
  static const std::vector<std::string> names{"simclr-cifar", "moco-v2", "cds", "supervised",
                                              "rrc-flip",     "amdim",   "test"};
  return names;
}

std::shared_ptr<ViewGenerator> make_view_generator(const AugmentOptions& o, int64_t channels, int64_t height,
                                                   int64_t width) {
  const std::string& p = o.preset;
  const bool has_rrc = p == "simclr-cifar" || p == "moco-v2" || p == "rrc-flip";
  const bool known = has_rrc || p == "cds" || p == "supervised" || p == "amdim" || p == "test";
  if (!known) throw InputError("augment: unknown preset '" + p + "' (valid: " + kPresets + ")");
  if (o.crop != "rrc" && o.crop != "contrastive")
    throw InputError("augment: unknown crop '" + o.crop + "' (valid: rrc, contrastive)");
  if (o.crop == "contrastive" && !has_rrc)
    throw InputError("augment: crop=contrastive replaces RandomResizedCrop; preset '" + p + "' has none");
  if (!o.multi_crop.empty() && !has_rrc)
    throw InputError("augment: multi-crop needs a RandomResizedCrop preset, not '" + p + "'");
  if (o.views < 1) throw InputError("augment: views must be >= 1");
  if (o.crop_scale_min <= 0 || o.crop_scale_min > 1) throw InputError("augment: crop_scale_min must be in (0, 1]");
  if (channels < 1 || height < 1 || width < 1) throw InputError("augment: bad image shape");

  Spec s{o, channels, height, width, o.size > 0 ? o.size : std::min(height, width), channels == 3, nullptr};
  s.norm = normalize(checked(o.mean, channels, "mean"), checked(o.std, channels, "std"));
  const bool uses_colour = p != "supervised" && p != "rrc-flip" && p != "test";
  if (!s.colour && uses_colour)
    log_info("augment: " + std::to_string(channels) +
             "-channel images: skipping saturation, hue and RandomGrayscale (brightness and contrast kept)");

  std::vector<Pipeline> views;
  Pipeline shared;
  if (has_rrc) {
    views = rrc_views(p, s);
  } else if (p == "cds") {
    if (o.views != 2)
      throw InputError("augment: the cds preset makes exactly 2 views, got views=" + std::to_string(o.views));
    views = cds_views(s);
  } else if (p == "amdim") {
    shared.add(horizontal_flip(0.5));  // one flip for both views (§7)
    views.assign(static_cast<size_t>(o.views), amdim_view(s));
  } else if (p == "supervised") {
    views.assign(static_cast<size_t>(o.views),
                 Pipeline({random_crop(s.size, 4, 0.0), horizontal_flip(0.5), s.norm}));
  } else {  // test
    Pipeline pl;
    if (s.size != height || s.size != width) pl.add(resize(s.size, s.size));
    views.assign(static_cast<size_t>(o.views), pl.add(s.norm));
  }
  return std::make_shared<PipelineViewGenerator>(p, channels, std::move(views), std::move(shared),
                                                 o.crop == "contrastive", o.box_alpha);
}

std::pair<std::vector<double>, std::vector<double>> default_normalization(const std::string& dataset,
                                                                          int64_t channels) {
  if (dataset == "cifar10" || dataset == "cifar100" || dataset == "folder")
    return {{0.4914, 0.4822, 0.4465}, {0.2023, 0.1994, 0.2010}};
  if (dataset == "fashion-mnist") return {{0.2860}, {0.3530}};
  if (dataset == "mnist") return {{0.1307}, {0.3081}};
  const auto n = static_cast<size_t>(std::max<int64_t>(channels, 1));
  return {std::vector<double>(n, 0.5), std::vector<double>(n, 0.5)};
}

}  // namespace contrastive
