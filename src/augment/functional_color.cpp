// Batched colour ops with torchvision semantics (docs/methods.md §0). Each takes per-sample factors [B].
#include <torch/torch.h>

#include "contrastive/transforms.h"

namespace contrastive {
namespace aug {

namespace {

// Per-sample scalars [B] -> [B,1,1,1] on x's device and dtype, ready to broadcast.
torch::Tensor per_sample(const torch::Tensor& v, const torch::Tensor& x) {
  return v.to(x.device(), x.scalar_type()).view({-1, 1, 1, 1});
}

// f * a + (1 - f) * b, clamped to [0, 1] (torchvision's _blend for float images), as one lerp.
torch::Tensor blend(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& f) {
  return torch::lerp(b.expand_as(a), a, f).clamp_(0.0, 1.0);
}

void check_rgb(const torch::Tensor& x, const char* op) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3, op, " needs an RGB batch [B,3,H,W], got ", x.sizes());
}

}  // namespace

torch::Tensor rgb_to_grayscale(const torch::Tensor& x, int64_t out_channels) {
  TORCH_CHECK(x.dim() == 4, "rgb_to_grayscale expects [B,C,H,W]");
  if (x.size(1) == 1) return out_channels == 1 ? x : x.expand({-1, out_channels, -1, -1}).contiguous();
  check_rgb(x, "rgb_to_grayscale");
  // ITU-R 601-2 luma transform.
  auto gray = 0.299 * x.select(1, 0) + 0.587 * x.select(1, 1) + 0.114 * x.select(1, 2);
  gray = gray.unsqueeze(1);
  return out_channels == 1 ? gray : gray.expand({-1, out_channels, -1, -1}).contiguous();
}

torch::Tensor adjust_brightness(const torch::Tensor& x, const torch::Tensor& factor) {
  // Blend with black = scale.
  return (x * per_sample(factor, x)).clamp_(0.0, 1.0);
}

torch::Tensor adjust_contrast(const torch::Tensor& x, const torch::Tensor& factor) {
  // The reference value is the mean of the grayscale image (over H and W), the same for every channel.
  auto mean = rgb_to_grayscale(x, 1).mean({1, 2, 3}, /*keepdim=*/true);
  return blend(x, mean, per_sample(factor, x));
}

torch::Tensor adjust_saturation(const torch::Tensor& x, const torch::Tensor& factor) {
  if (x.size(1) == 1) return x;  // a grayscale image is its own desaturation
  return blend(x, rgb_to_grayscale(x, 1), per_sample(factor, x));
}

namespace {

// Hue in [0,1) (0 for gray pixels), value (max) and chroma (max - min) of an RGB batch, each [B,H,W].
struct HueParts {
  torch::Tensor hue, value, chroma;
};

HueParts hue_parts(const torch::Tensor& x) {
  check_rgb(x, "rgb_to_hsv");
  auto r = x.select(1, 0), g = x.select(1, 1), b = x.select(1, 2);
  // Elementwise max/min of the three planes: much faster than a reduction over dim 1 with indices.
  auto maxc = torch::maximum(torch::maximum(r, g), b);
  auto chroma = maxc - torch::minimum(torch::minimum(r, g), b);
  // Hue in sixths of a turn from the dominant channel: R -> (G-B)/c, G -> 2 + (B-R)/c, B -> 4 + (R-G)/c.
  // Ties go to R, then G (as in colorsys/torchvision); tied candidates give the same hue anyway.
  auto num = torch::where(maxc == r, g - b, torch::where(maxc == g, b - r + 2 * chroma, r - g + 4 * chroma));
  auto gray = chroma == 0;
  auto h = torch::remainder(num / torch::where(gray, torch::ones_like(chroma), chroma) / 6.0, 1.0);
  h.masked_fill_(gray, 0.0);
  return {h, maxc, chroma};
}

// RGB from hue [B,H,W], value and chroma. Closed form of the six-sector table: channel n (R: 5, G: 3, B: 1) is
// V - C * clamp(min(k, 4 - k), 0, 1) with k = (n + 6H) mod 6.
torch::Tensor rgb_from_hue(const torch::Tensor& hue, const torch::Tensor& value, const torch::Tensor& chroma) {
  auto n = torch::tensor({5.0, 3.0, 1.0}, torch::TensorOptions().dtype(hue.scalar_type())).to(hue.device());
  auto k = torch::remainder((hue * 6.0).unsqueeze(1) + n.view({1, 3, 1, 1}), 6.0);
  auto ramp = torch::minimum(k, 4.0 - k).clamp_(0.0, 1.0);
  return value.unsqueeze(1) - chroma.unsqueeze(1) * ramp;
}

}  // namespace

torch::Tensor rgb_to_hsv(const torch::Tensor& x) {
  auto p = hue_parts(x);
  auto s = p.chroma / torch::where(p.value == 0, torch::ones_like(p.value), p.value);
  return torch::stack({p.hue, s, p.value}, 1);
}

torch::Tensor hsv_to_rgb(const torch::Tensor& x) {
  auto v = x.select(1, 2);
  return rgb_from_hue(x.select(1, 0), v, v * x.select(1, 1));
}

torch::Tensor adjust_hue(const torch::Tensor& x, const torch::Tensor& shift) {
  if (x.size(1) == 1) return x;  // no hue in a grayscale image
  // Shifting H in HSV keeps V (max) and the chroma (max - min); only the hue is rotated.
  auto p = hue_parts(x);
  auto h = torch::remainder(p.hue + shift.to(x.device(), x.scalar_type()).view({-1, 1, 1}), 1.0);
  return rgb_from_hue(h, p.value, p.chroma);
}

torch::Tensor solarize(const torch::Tensor& x, double threshold) {
  return torch::where(x >= threshold, 1.0 - x, x);
}

}  // namespace aug
}  // namespace contrastive
