// Batched augmentation on tensors: every transform acts on a whole float batch [B,C,H,W] in [0,1] on the
// batch's device, with its own random parameters per sample drawn from a seeded CPU generator.
// Spec: docs/methods.md §0 (SimCLR-CIFAR, MoCo-v2 aug-plus), §2 (CDS views), §6 (ContrastiveCrop).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "contrastive/augment_names.h"
#include "contrastive/config.h"
#include "contrastive/transforms.h"

namespace contrastive {

struct AugmentOptions {
  std::string preset = "simclr-cifar";  // simclr-cifar | moco-v2 | cds | supervised | test | ...
  int64_t views = 2;                    // number of global views per image
  std::string multi_crop;               // e.g. "2x32,4x16" (overrides `views` when set)
  int64_t size = 0;                     // output size of global views (0 = the dataset's image size)
  std::vector<double> mean;             // per-channel normalisation (empty = dataset default)
  std::vector<double> std;
  double crop_scale_min = 0.2;  // RandomResizedCrop scale lower bound
  std::string crop = "rrc";     // rrc | contrastive (ContrastiveCrop, needs boxes)
  double box_alpha = 0.6;       // ContrastiveCrop Beta(alpha, alpha)
};

class ViewGenerator {
 public:
  virtual ~ViewGenerator() = default;
  // uint8 [B,C,H,W] images (dataset `indices` [B] select ContrastiveCrop boxes) -> normalised float views on
  // `device`. Same seed -> same views.
  virtual std::vector<torch::Tensor> operator()(const torch::Tensor& images, const torch::Tensor& indices,
                                                uint64_t seed, torch::Device device) const = 0;
  virtual int64_t num_views() const = 0;
  // ContrastiveCrop: per-image boxes, float [N,4] as (h0, w0, h1, w1) in [0,1]. Until set, (0,0,1,1).
  virtual void set_boxes(torch::Tensor boxes) = 0;
  virtual torch::Tensor boxes() const = 0;
  // Turns ContrastiveCrop on/off (off during the box warm-up: plain RandomResizedCrop).
  virtual void use_boxes(bool on) = 0;
  virtual std::string describe() const = 0;
  // Data-parallel runs: this process holds positions rank, rank + world, ... of every global batch (the
  // loader's strided shards), and random parameters are drawn for the global batch and sliced, so the views
  // of an image do not depend on the number of processes.
  void set_shard(int64_t rank, int64_t world_size) {
    shard_rank_ = rank;
    shard_world_ = world_size;
  }
  // ContrastiveCrop visualisation: the crop boxes (i, j, h, w) int64 [B,4] in pixels that operator() draws with
  // the same arguments, one tensor per view that starts with a resized crop (empty when none does).
  virtual std::vector<torch::Tensor> sample_crop_boxes(const torch::Tensor& images, const torch::Tensor& indices,
                                                       uint64_t seed) const {
    (void)images, (void)indices, (void)seed;
    return {};
  }

 protected:
  int64_t shard_rank_ = 0, shard_world_ = 1;
};

// A ViewGenerator made of pipelines: an optional `shared` pipeline whose random draws are common to all views
// (AMDIM's flip), then one pipeline per view, each with its own generator seeded by mix_seed(seed, view).
class PipelineViewGenerator : public ViewGenerator {
 public:
  PipelineViewGenerator(std::string name, int64_t channels, std::vector<Pipeline> views, Pipeline shared = {},
                        bool contrastive_crop = false, double box_alpha = 0.6);
  std::vector<torch::Tensor> operator()(const torch::Tensor& images, const torch::Tensor& indices, uint64_t seed,
                                        torch::Device device) const override;
  int64_t num_views() const override { return static_cast<int64_t>(views_.size()); }
  void set_boxes(torch::Tensor boxes) override;
  torch::Tensor boxes() const override { return boxes_; }
  void use_boxes(bool on) override { use_boxes_ = on; }
  std::string describe() const override;
  std::vector<torch::Tensor> sample_crop_boxes(const torch::Tensor& images, const torch::Tensor& indices,
                                               uint64_t seed) const override;

 private:
  AugmentContext context(const torch::Tensor& indices, int64_t batch) const;

  std::string name_;
  int64_t channels_;
  std::vector<Pipeline> views_;
  Pipeline shared_;
  bool contrastive_crop_, use_boxes_ = false;
  double box_alpha_;
  torch::Tensor boxes_;  // float [N,4] on the CPU, undefined = (0,0,1,1) for every image
};

// Builds the named preset for images of `channels` x `height` x `width`. Grayscale images skip the colour
// transforms (saturation, hue, grayscale), which is logged, not an error. Unknown preset -> InputError.
std::shared_ptr<ViewGenerator> make_view_generator(const AugmentOptions& options, int64_t channels, int64_t height,
                                                   int64_t width);

// Default normalisation for a dataset kind (CIFAR-10 constants for cifar*, (0.2860, 0.3530) Fashion-MNIST...).
std::pair<std::vector<double>, std::vector<double>> default_normalization(const std::string& dataset,
                                                                          int64_t channels);

// ContrastiveCrop box localisation (§6): feature maps [B,C,h,w] -> boxes [B,4] (h0,w0,h1,w1) for images of
// size height x width, thresholding the min-max normalised channel-sum upsampled bilinearly.
torch::Tensor localize_boxes(const torch::Tensor& feature_maps, int64_t height, int64_t width, double threshold);

// Writes a PNG grid of uint8 images [B,C,H,W], each upscaled by `scale` (nearest), with its box float [B,4]
// (h0,w0,h1,w1 in [0,1]) in red and the crops of each view (crop_boxes[v]: [B,4] i,j,h,w in pixels) in green,
// blue, then other colours. Throws InputError if the file cannot be written.
void draw_boxes_grid(const torch::Tensor& images_u8, const torch::Tensor& boxes,
                     const std::vector<torch::Tensor>& crop_boxes, int64_t scale, const std::string& png_path);

}  // namespace contrastive
