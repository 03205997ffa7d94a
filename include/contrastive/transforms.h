// Building blocks of the augmentation engine (docs/methods.md §0, §2, §6, §7).
//
// Two layers, like torchvision's functional/transform split:
//  - `aug::` functions are deterministic batched ops: given a float batch [B,C,H,W] and per-sample parameters
//    (CPU or same-device tensors of length B), they transform every sample at once on the batch's device.
//  - `Transform` classes draw those parameters per sample from a seeded CPU torch::Generator and call the ops.
// Images are float in [0,1] everywhere except after Normalize.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace contrastive {
namespace aug {

// ---- colour ops (factor/shift: float [B], one value per sample) ----
// ITU-R 601 luma 0.299 R + 0.587 G + 0.114 B, replicated to `out_channels`. C=1 input is returned as is.
torch::Tensor rgb_to_grayscale(const torch::Tensor& x, int64_t out_channels = 1);
torch::Tensor adjust_brightness(const torch::Tensor& x, const torch::Tensor& factor);  // clamp(x * f)
// Blend with the mean of the grayscale image: clamp(f * x + (1 - f) * mean(gray(x))).
torch::Tensor adjust_contrast(const torch::Tensor& x, const torch::Tensor& factor);
torch::Tensor adjust_saturation(const torch::Tensor& x, const torch::Tensor& factor);  // blend with gray(x)
torch::Tensor adjust_hue(const torch::Tensor& x, const torch::Tensor& shift);  // shift in [-0.5, 0.5] of H in HSV
torch::Tensor rgb_to_hsv(const torch::Tensor& x);
torch::Tensor hsv_to_rgb(const torch::Tensor& x);
torch::Tensor solarize(const torch::Tensor& x, double threshold);  // x >= t -> 1 - x

// ---- geometric ops ----
// `mask` bool [B]: samples to flip (left-right).
torch::Tensor hflip(const torch::Tensor& x, const torch::Tensor& mask);
// Crops boxes int64 [B,4] (i, j, h, w) in pixels and resizes each to out_h x out_w, bilinear, half-pixel
// centres (align_corners=false), all samples in one affine_grid + grid_sample.
torch::Tensor resized_crop(const torch::Tensor& x, const torch::Tensor& boxes, int64_t out_h, int64_t out_w);
// Pads by `pad` (constant `fill`, or reflect when `reflect`) and takes an out_h x out_w window at offsets
// int64 [B,2] (top, left) in padded coordinates. Pure gather: exact copies of pixels.
torch::Tensor crop_padded(const torch::Tensor& x, const torch::Tensor& offsets, int64_t out_h, int64_t out_w,
                          int64_t pad, double fill, bool reflect);
// Zeroes squares of side `side` centred at int64 [B,2] (y, x), clipped at the borders (DeVries Cutout).
torch::Tensor cutout(const torch::Tensor& x, const torch::Tensor& centres, int64_t side, double value = 0.0);
// Separable Gaussian blur, sigma float [B], odd kernel size, reflect padding.
torch::Tensor gaussian_blur(const torch::Tensor& x, const torch::Tensor& sigma, int64_t kernel_size);
torch::Tensor normalize(const torch::Tensor& x, const std::vector<double>& mean, const std::vector<double>& std);

// ---- crop box samplers: int64 [B,4] (i, j, h, w) on the CPU ----
struct CropScale {
  std::pair<double, double> scale{0.08, 1.0};
  std::pair<double, double> ratio{3.0 / 4.0, 4.0 / 3.0};
};
// torchvision RandomResizedCrop: area = H*W*U(scale), log-uniform ratio, up to 10 tries, centre-crop fallback;
// i ~ U{0..H-h}, j ~ U{0..W-w}.
torch::Tensor sample_rrc_boxes(int64_t batch, int64_t height, int64_t width, const CropScale& cs,
                               at::Generator& gen);
// ContrastiveCrop (§6): same (h, w) as RRC, but the crop centre is placed inside `boxes` float [B,4]
// (h0, w0, h1, w1) with independent Beta(alpha, alpha) draws per axis.
torch::Tensor sample_contrastive_crop_boxes(const torch::Tensor& boxes, int64_t height, int64_t width,
                                            const CropScale& cs, double alpha, at::Generator& gen);

// ---- helpers for drawing per-sample parameters on the CPU ----
torch::Tensor uniform(int64_t n, double lo, double hi, at::Generator& gen);  // float64 [n]
torch::Tensor bernoulli_mask(int64_t n, double p, at::Generator& gen);       // bool [n]
torch::Tensor randint_upto(const torch::Tensor& hi, at::Generator& gen);     // int64, U{0..hi} per element

}  // namespace aug

// What a pipeline knows besides the images: ContrastiveCrop boxes float [B,4] (undefined = plain RRC), and
// for data-parallel runs which rows of the global batch this process holds.
struct AugmentContext {
  torch::Tensor boxes;
  double box_alpha = 0.6;
  // Sharded draws: parameters are drawn for `draw_count` samples (the global batch of all processes) and this
  // batch takes rows `rows` (CPU int64 [B]) of every draw, so an image gets exactly the parameters that one
  // process holding the whole batch would give it. Undefined rows: draw for the batch itself.
  torch::Tensor rows;
  int64_t draw_count = 0;
  // How many samples to draw parameters for, for a batch of `local` samples.
  int64_t count(int64_t local) const { return rows.defined() ? draw_count : local; }
  // This batch's rows (dim 0) of parameters drawn for count() samples.
  torch::Tensor pick(const torch::Tensor& drawn) const {
    return rows.defined() ? drawn.index_select(0, rows.to(drawn.device())) : drawn;
  }
  // RandomApply: the context of the samples of this batch with local_mask[i] (bool [B]) set, given the mask
  // `drawn` (bool [count()]) over every sample of the draw.
  AugmentContext chosen(const torch::Tensor& local_mask, const torch::Tensor& drawn) const;
};

// One random transform. Parameters are drawn per sample from `gen`; the op runs batched on x's device.
class Transform {
 public:
  virtual ~Transform() = default;
  virtual torch::Tensor apply(const torch::Tensor& x, at::Generator& gen, const AugmentContext& ctx) const = 0;
  virtual std::string describe() const = 0;
};
using TransformPtr = std::shared_ptr<const Transform>;

// A list of transforms applied in order to one view.
class Pipeline {
 public:
  Pipeline() = default;
  explicit Pipeline(std::vector<TransformPtr> transforms) : transforms_(std::move(transforms)) {}
  Pipeline& add(TransformPtr t) {
    transforms_.push_back(std::move(t));
    return *this;
  }
  torch::Tensor apply(const torch::Tensor& x, at::Generator& gen, const AugmentContext& ctx) const;
  const std::vector<TransformPtr>& transforms() const { return transforms_; }
  std::string describe() const;

 private:
  std::vector<TransformPtr> transforms_;
};

// ---- transforms (factories; each returns a shared immutable transform) ----
// RandomApply: each sample gets `t` with probability p (Bernoulli per sample); the others pass unchanged.
// `t` must keep the image size.
TransformPtr random_apply(TransformPtr t, double p);

// RandomResizedCrop to out_h x out_w. When the context carries boxes, crops are placed by ContrastiveCrop.
class RandomResizedCrop : public Transform {
 public:
  RandomResizedCrop(int64_t out_h, int64_t out_w, aug::CropScale cs) : out_h_(out_h), out_w_(out_w), cs_(cs) {}
  torch::Tensor apply(const torch::Tensor& x, at::Generator& gen, const AugmentContext& ctx) const override;
  std::string describe() const override;
  // The boxes (i, j, h, w) int64 [B,4] that apply() would draw with the same generator state.
  torch::Tensor sample_boxes(int64_t batch, int64_t height, int64_t width, at::Generator& gen,
                             const AugmentContext& ctx) const;

 private:
  int64_t out_h_, out_w_;
  aug::CropScale cs_;
};

TransformPtr random_resized_crop(int64_t size, std::pair<double, double> scale);
// RandomCrop(size, padding, fill) — constant fill in [0,1] units, or reflect padding (AMDIM translate).
TransformPtr random_crop(int64_t size, int64_t pad, double fill, bool reflect = false);
// AMDIM RandomTranslateWithReflect(max): shift by U{-max..max} per axis with reflect padding.
TransformPtr random_translate_reflect(int64_t max_shift);
TransformPtr horizontal_flip(double p = 0.5);
// ColorJitter with torchvision semantics and a random order of the four ops per sample. With colour=false
// (grayscale images) only brightness and contrast are applied.
TransformPtr color_jitter(double brightness, double contrast, double saturation, double hue, bool colour = true);
TransformPtr random_grayscale(double p);
// sigma ~ U[sigma_lo, sigma_hi] per sample; kernel size odd, about 10% of the image side.
TransformPtr gaussian_blur(double sigma_lo = 0.1, double sigma_hi = 2.0);
TransformPtr solarize(double threshold = 0.5);
TransformPtr cutout(int64_t holes, int64_t side);
TransformPtr resize(int64_t out_h, int64_t out_w);
TransformPtr normalize(std::vector<double> mean, std::vector<double> std);

// Kernel size used by gaussian_blur for an image side: round(0.1 * side) made odd, at least 3.
int64_t blur_kernel_size(int64_t side);

}  // namespace contrastive
