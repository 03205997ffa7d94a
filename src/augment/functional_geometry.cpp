// Batched geometric ops: every sample has its own parameters, all samples run in one tensor op.
#include <torch/torch.h>

#include "contrastive/transforms.h"

namespace contrastive {
namespace aug {

namespace F = torch::nn::functional;

torch::Tensor hflip(const torch::Tensor& x, const torch::Tensor& mask) {
  return torch::where(mask.to(x.device()).view({-1, 1, 1, 1}), x.flip(3), x);
}

torch::Tensor resized_crop(const torch::Tensor& x, const torch::Tensor& boxes, int64_t out_h, int64_t out_w) {
  TORCH_CHECK(x.dim() == 4 && boxes.dim() == 2 && boxes.size(1) == 4 && boxes.size(0) == x.size(0),
              "resized_crop: expects x [B,C,H,W] and boxes [B,4], got ", x.sizes(), " and ", boxes.sizes());
  const double H = static_cast<double>(x.size(2)), W = static_cast<double>(x.size(3));
  auto b = boxes.to(torch::kFloat64);
  auto i = b.select(1, 0), j = b.select(1, 1), h = b.select(1, 2), w = b.select(1, 3);
  // With align_corners=false, normalised coordinates -1 and +1 are the outer pixel edges. The output's edges
  // map onto the crop's edges [j, j + w) x [i, i + h): a scale of w/W and a shift to the crop centre.
  auto zeros = torch::zeros_like(i);
  auto row_x = torch::stack({w / W, zeros, (2.0 * j + w) / W - 1.0}, 1);
  auto row_y = torch::stack({zeros, h / H, (2.0 * i + h) / H - 1.0}, 1);
  auto theta = torch::stack({row_x, row_y}, 1).to(x.device(), x.scalar_type());
  auto grid = F::affine_grid(theta, {x.size(0), x.size(1), out_h, out_w}, /*align_corners=*/false);
  // Border padding clamps the sample points like interpolate() does at the image edge. (torchvision crops
  // first, so at a crop edge inside the image it clamps to the crop; here the half-pixel outside the crop
  // blends with the true neighbour pixel, which is a sub-pixel difference.)
  return F::grid_sample(
      x, grid,
      F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kBorder).align_corners(false));
}

torch::Tensor crop_padded(const torch::Tensor& x, const torch::Tensor& offsets, int64_t out_h, int64_t out_w,
                          int64_t pad, double fill, bool reflect) {
  auto padded = x;
  if (pad > 0) {
    auto opts = F::PadFuncOptions({pad, pad, pad, pad});
    padded = reflect ? F::pad(x, opts.mode(torch::kReflect)) : F::pad(x, opts.mode(torch::kConstant).value(fill));
  }
  const int64_t B = x.size(0), C = x.size(1), Wp = padded.size(3);
  TORCH_CHECK(out_h <= padded.size(2) && out_w <= Wp, "crop_padded: crop ", out_h, "x", out_w,
              " is larger than the padded image ", padded.size(2), "x", Wp);
  auto off = offsets.to(x.device(), torch::kLong);
  auto rows = off.select(1, 0).view({B, 1}) + torch::arange(out_h, off.options()).view({1, out_h});
  auto cols = off.select(1, 1).view({B, 1}) + torch::arange(out_w, off.options()).view({1, out_w});
  auto out = padded.gather(2, rows.view({B, 1, out_h, 1}).expand({B, C, out_h, Wp}));
  return out.gather(3, cols.view({B, 1, 1, out_w}).expand({B, C, out_h, out_w}));
}

torch::Tensor cutout(const torch::Tensor& x, const torch::Tensor& centres, int64_t side, double value) {
  const int64_t B = x.size(0), H = x.size(2), W = x.size(3);
  auto c = centres.to(x.device(), torch::kLong).view({B, -1, 2});  // [B,K,2] (y, x)
  // The hole is [y - side/2, y - side/2 + side) per axis, clipped at the image border.
  auto y0 = (c.select(2, 0) - side / 2).view({B, -1, 1, 1});
  auto x0 = (c.select(2, 1) - side / 2).view({B, -1, 1, 1});
  auto ys = torch::arange(H, c.options()).view({1, 1, H, 1});
  auto xs = torch::arange(W, c.options()).view({1, 1, 1, W});
  auto in_hole = (ys >= y0) & (ys < y0 + side) & (xs >= x0) & (xs < x0 + side);  // [B,K,H,W]
  auto hole = std::get<0>(in_hole.max(1, /*keepdim=*/true));                     // any hole, [B,1,H,W]
  return x.masked_fill(hole, value);
}

torch::Tensor gaussian_blur(const torch::Tensor& x, const torch::Tensor& sigma, int64_t kernel_size) {
  TORCH_CHECK(kernel_size % 2 == 1, "gaussian_blur: kernel size must be odd");
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), r = kernel_size / 2;
  // One normalised 1-D kernel per sample: [B,k].
  auto pos = torch::arange(kernel_size, x.options()) - static_cast<double>(r);
  auto s = sigma.to(x.device(), x.scalar_type()).view({B, 1});
  auto k = torch::exp(-(pos * pos).view({1, -1}) / (2.0 * s * s));
  k = k / k.sum(1, /*keepdim=*/true);
  // Separable grouped conv over all B*C planes at once, each plane with its sample's kernel.
  auto kc = k.repeat_interleave(C, 0);  // [B*C,k]
  auto planes = F::pad(x.reshape({1, B * C, H, W}), F::PadFuncOptions({r, r, r, r}).mode(torch::kReflect));
  planes = F::conv2d(planes, kc.view({B * C, 1, kernel_size, 1}), F::Conv2dFuncOptions().groups(B * C));
  planes = F::conv2d(planes, kc.view({B * C, 1, 1, kernel_size}), F::Conv2dFuncOptions().groups(B * C));
  return planes.view({B, C, H, W});
}

torch::Tensor normalize(const torch::Tensor& x, const std::vector<double>& mean, const std::vector<double>& std) {
  const int64_t C = x.size(1);
  TORCH_CHECK(
      !mean.empty() && mean.size() == std.size() && (static_cast<int64_t>(mean.size()) == C || mean.size() == 1),
      "normalize: mean/std need 1 or ", C, " values, got ", mean.size(), "/", std.size());
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  auto m = torch::tensor(mean, opts).to(x.device(), x.scalar_type()).view({1, -1, 1, 1});
  auto s = torch::tensor(std, opts).to(x.device(), x.scalar_type()).view({1, -1, 1, 1});
  return (x - m) / s;
}

}  // namespace aug
}  // namespace contrastive
