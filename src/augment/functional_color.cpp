// Batched colour ops with torchvision semantics (docs/methods.md §0). Each takes per-sample factors [B].
#include "contrastive/transforms.h"

#include <torch/torch.h>

namespace contrastive {
namespace aug {

namespace {

// Per-sample scalars [B] -> [B,1,1,1] on x's device and dtype, ready to broadcast.
torch::Tensor per_sample(const torch::Tensor& v, const torch::Tensor& x) {
  return v.to(x.device(), x.scalar_type()).view({-1, 1, 1, 1});
}

// f * a + (1 - f) * b, clamped to [0, 1] (torchvision's _blend for float images).
torch::Tensor blend(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& f) {
  return (f * a + (1 - f) * b).clamp(0.0, 1.0);
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
  return (x * per_sample(factor, x)).clamp(0.0, 1.0);
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

torch::Tensor rgb_to_hsv(const torch::Tensor& x) {
  check_rgb(x, "rgb_to_hsv");
  auto r = x.select(1, 0), g = x.select(1, 1), b = x.select(1, 2);
  auto maxc = std::get<0>(x.max(1));
  auto minc = std::get<0>(x.min(1));
  auto chroma = maxc - minc;
  auto gray = chroma == 0;  // hue and saturation are 0 where all channels are equal
  auto ones = torch::ones_like(maxc);
  auto s = chroma / torch::where(gray, ones, maxc);
  auto c = torch::where(gray, ones, chroma);
  // Distance of each channel from the maximum, in units of chroma.
  auto rc = (maxc - r) / c, gc = (maxc - g) / c, bc = (maxc - b) / c;
  auto is_r = maxc == r;
  auto is_g = (maxc == g).logical_and(is_r.logical_not());
  auto is_b = is_r.logical_or(maxc == g).logical_not();
  auto h = is_r * (bc - gc) + is_g * (2.0 + rc - bc) + is_b * (4.0 + gc - rc);
  h = torch::fmod(h / 6.0 + 1.0, 1.0);
  h = torch::where(gray, torch::zeros_like(h), h);
  return torch::stack({h, s, maxc}, 1);
}

torch::Tensor hsv_to_rgb(const torch::Tensor& x) {
  auto h = x.select(1, 0), s = x.select(1, 1), v = x.select(1, 2);
  auto h6 = h * 6.0;
  auto sector = torch::floor(h6);
  auto f = h6 - sector;
  sector = torch::remainder(sector, 6.0);
  auto p = (v * (1.0 - s)).clamp(0.0, 1.0);
  auto q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
  auto t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
  // One-hot over the six hue sectors, then pick each channel's value per sector.
  auto sectors = torch::arange(6, x.options()).view({1, 6, 1, 1});
  auto onehot = (sector.unsqueeze(1) == sectors).to(x.scalar_type());  // [B,6,H,W]
  auto pick = [&](std::initializer_list<torch::Tensor> per_sector) {
    return (onehot * torch::stack(std::vector<torch::Tensor>(per_sector), 1)).sum(1);
  };
  auto r = pick({v, q, p, p, t, v});
  auto g = pick({t, v, v, q, p, p});
  auto b = pick({p, p, t, v, v, q});
  return torch::stack({r, g, b}, 1);
}

torch::Tensor adjust_hue(const torch::Tensor& x, const torch::Tensor& shift) {
  if (x.size(1) == 1) return x;  // no hue in a grayscale image
  auto hsv = rgb_to_hsv(x);
  auto h = torch::remainder(hsv.select(1, 0) + shift.to(x.device(), x.scalar_type()).view({-1, 1, 1}), 1.0);
  return hsv_to_rgb(torch::stack({h, hsv.select(1, 1), hsv.select(1, 2)}, 1));
}

torch::Tensor solarize(const torch::Tensor& x, double threshold) {
  return torch::where(x >= threshold, 1.0 - x, x);
}

}  // namespace aug
}  // namespace contrastive
