// ContrastiveCrop box localisation (docs/methods.md §6) and a PNG visualisation of boxes and crops.
#include <torch/torch.h>

#include <cmath>

#include "contrastive/augment.h"
#include "contrastive/common.h"

// stb_image_write, compiled privately into this file (static functions: no clash with another copy elsewhere).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace contrastive {

namespace F = torch::nn::functional;

torch::Tensor localize_boxes(const torch::Tensor& feature_maps, int64_t height, int64_t width, double threshold) {
  if (feature_maps.dim() != 4) throw InputError("localize_boxes: feature maps must be [B,C,h,w]");
  const int64_t B = feature_maps.size(0);
  auto map = feature_maps.to(torch::kFloat32).sum(1);  // [B,h,w]
  // Per-image min-max normalisation. A constant map has max 0 after the shift: it is flagged (whole-image box)
  // and divided by 1 instead of 0, so no NaN appears.
  map = map - std::get<0>(map.flatten(1).min(1)).view({B, 1, 1});
  auto peak = std::get<0>(map.flatten(1).max(1));
  auto constant = peak.le(0).logical_or(peak.isfinite().logical_not());
  map = map / torch::where(constant, torch::ones_like(peak), peak).view({B, 1, 1});
  // A named options object: with a temporary, g++ 12 warns (-Wmaybe-uninitialized) inside LibTorch 2.x's
  // InterpolateFuncOptions destructor.
  F::InterpolateFuncOptions resize;
  resize.size(std::vector<int64_t>{height, width}).mode(torch::kBilinear).align_corners(false);
  auto up = F::interpolate(map.unsqueeze(1), resize).squeeze(1);  // [B,H,W]
  auto rows = std::get<0>(up.max(2)) > threshold;                 // [B,H]
  auto cols = std::get<0>(up.max(1)) > threshold;                 // [B,W]
  // First and last true entry: argmax of a 0/1 row is its first maximum.
  auto first = [](const torch::Tensor& m) { return m.to(torch::kLong).argmax(1); };
  auto last = [&](const torch::Tensor& m) { return m.size(1) - 1 - first(m.flip(1)); };
  auto box = torch::stack({first(rows).to(torch::kFloat32) / height, first(cols).to(torch::kFloat32) / width,
                           last(rows).to(torch::kFloat32) / height, last(cols).to(torch::kFloat32) / width},
                          1);
  auto whole = constant.logical_or(rows.any(1).logical_not()).logical_or(cols.any(1).logical_not());
  auto full = torch::tensor({0.0f, 0.0f, 1.0f, 1.0f}, box.options()).view({1, 4});
  return torch::where(whole.view({B, 1}), full, box);
}

namespace {

// Outline of the inclusive pixel rectangle [y0,y1] x [x0,x1] on an RGB canvas [3,H,W], clipped to it.
void draw_rect(torch::Tensor& img, int64_t y0, int64_t x0, int64_t y1, int64_t x1, const torch::Tensor& colour) {
  using torch::indexing::Slice;
  const int64_t H = img.size(1), W = img.size(2);
  y0 = std::clamp<int64_t>(y0, 0, H - 1), y1 = std::clamp<int64_t>(y1, 0, H - 1);
  x0 = std::clamp<int64_t>(x0, 0, W - 1), x1 = std::clamp<int64_t>(x1, 0, W - 1);
  auto c = colour.view({3, 1});
  img.index_put_({Slice(), y0, Slice(x0, x1 + 1)}, c);
  img.index_put_({Slice(), y1, Slice(x0, x1 + 1)}, c);
  img.index_put_({Slice(), Slice(y0, y1 + 1), x0}, c);
  img.index_put_({Slice(), Slice(y0, y1 + 1), x1}, c);
}

}  // namespace

void draw_boxes_grid(const torch::Tensor& images_u8, const torch::Tensor& boxes,
                     const std::vector<torch::Tensor>& crop_boxes, int64_t scale, const std::string& png_path) {
  using torch::indexing::Slice;
  if (images_u8.dim() != 4 || images_u8.scalar_type() != torch::kUInt8)
    throw InputError("draw_boxes_grid: images must be uint8 [B,C,H,W]");
  if (scale < 1) throw InputError("draw_boxes_grid: scale must be >= 1");
  const int64_t B = images_u8.size(0), H = images_u8.size(2), W = images_u8.size(3);
  auto rgb = images_u8.to(torch::kCPU);
  rgb = rgb.size(1) == 3 ? rgb : rgb.narrow(1, 0, 1).expand({B, 3, H, W});
  rgb = rgb.repeat_interleave(scale, 2).repeat_interleave(scale, 3).contiguous();  // nearest upscale
  const int64_t Hs = H * scale, Ws = W * scale, gap = 2;
  const auto cols = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(B))));
  const int64_t rows = (B + cols - 1) / std::max<int64_t>(cols, 1);

  auto u8 = torch::TensorOptions().dtype(torch::kUInt8);
  const torch::Tensor red = torch::tensor({255, 0, 0}, u8);
  const std::vector<torch::Tensor> crop_colours = {
      torch::tensor({0, 255, 0}, u8), torch::tensor({0, 96, 255}, u8), torch::tensor({255, 255, 0}, u8),
      torch::tensor({255, 0, 255}, u8), torch::tensor({0, 255, 255}, u8)};
  auto box = boxes.defined() ? boxes.to(torch::kCPU, torch::kFloat64) : torch::Tensor();
  auto canvas = torch::full({3, rows * (Hs + gap) + gap, cols * (Ws + gap) + gap}, 48, u8);
  for (int64_t b = 0; b < B; ++b) {
    auto img = rgb[b].clone();
    for (size_t v = 0; v < crop_boxes.size(); ++v) {
      auto c = crop_boxes[v][b].to(torch::kCPU, torch::kLong);
      const int64_t i = c[0].item<int64_t>(), j = c[1].item<int64_t>(), h = c[2].item<int64_t>(),
                    w = c[3].item<int64_t>();
      draw_rect(img, i * scale, j * scale, (i + h) * scale - 1, (j + w) * scale - 1,
                crop_colours[v % crop_colours.size()]);
    }
    if (box.defined()) {
      // Box edges are row/col indices divided by H/W (§6): the last row is included.
      auto y0 = std::lround(box[b][0].item<double>() * H), x0 = std::lround(box[b][1].item<double>() * W);
      auto y1 = std::lround(box[b][2].item<double>() * H), x1 = std::lround(box[b][3].item<double>() * W);
      draw_rect(img, y0 * scale, x0 * scale, (y1 + 1) * scale - 1, (x1 + 1) * scale - 1, red);
    }
    const int64_t top = gap + (b / cols) * (Hs + gap), left = gap + (b % cols) * (Ws + gap);
    canvas.index_put_({Slice(), Slice(top, top + Hs), Slice(left, left + Ws)}, img);
  }
  auto hwc = canvas.permute({1, 2, 0}).contiguous();
  const int ok = stbi_write_png(png_path.c_str(), static_cast<int>(hwc.size(1)), static_cast<int>(hwc.size(0)), 3,
                                hwc.data_ptr<uint8_t>(), static_cast<int>(hwc.size(1) * 3));
  if (!ok) throw InputError(png_path + ": cannot write PNG");
}

}  // namespace contrastive
