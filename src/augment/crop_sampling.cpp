// Per-sample parameter draws on the CPU: RandomResizedCrop and ContrastiveCrop boxes (docs/methods.md §0, §6).
// Every draw is vectorised over the batch; the generator is consumed in a fixed order, so a seed fixes the
// result.
#include <torch/torch.h>

#include <cmath>

#include "contrastive/transforms.h"

namespace contrastive {
namespace aug {

namespace {

constexpr int64_t kTries = 10;  // torchvision's attempts before the centre-crop fallback

// Crop sizes as RandomResizedCrop draws them: float64 h, w [B] and `fallback` [B] (no try was valid; h, w are
// then the centre-crop size).
struct CropSizes {
  torch::Tensor h, w, fallback;
};

CropSizes sample_crop_sizes(int64_t B, int64_t H, int64_t W, const CropScale& cs, at::Generator& gen) {
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const double area = static_cast<double>(H * W);
  auto target = area * (torch::rand({B, kTries}, gen, f64) * (cs.scale.second - cs.scale.first) + cs.scale.first);
  const double lr0 = std::log(cs.ratio.first), lr1 = std::log(cs.ratio.second);
  auto ratio = torch::exp(torch::rand({B, kTries}, gen, f64) * (lr1 - lr0) + lr0);
  auto w = torch::round(torch::sqrt(target * ratio));
  auto h = torch::round(torch::sqrt(target / ratio));
  auto valid = (w > 0) & (w <= W) & (h > 0) & (h <= H);
  // First valid try per sample (argmax of a 0/1 row returns the first maximum).
  auto first = valid.to(torch::kLong).argmax(1, /*keepdim=*/true);
  auto fallback = valid.any(1).logical_not();
  h = h.gather(1, first).squeeze(1);
  w = w.gather(1, first).squeeze(1);

  // Fallback: the largest centre crop whose aspect ratio is clamped into the ratio range.
  double fh = H, fw = W;
  const double in_ratio = static_cast<double>(W) / H;
  if (in_ratio < cs.ratio.first) {
    fh = std::round(W / cs.ratio.first);
  } else if (in_ratio > cs.ratio.second) {
    fw = std::round(H * cs.ratio.second);
  }
  h = torch::where(fallback, torch::full_like(h, fh), h);
  w = torch::where(fallback, torch::full_like(w, fw), w);
  return {h, w, fallback};
}

torch::Tensor centre_offset(int64_t extent, const torch::Tensor& size) {
  return torch::floor((static_cast<double>(extent) - size) / 2.0);
}

torch::Tensor to_boxes(const torch::Tensor& i, const torch::Tensor& j, const CropSizes& s) {
  return torch::stack({i, j, s.h, s.w}, 1).to(torch::kLong);
}

// Beta(a, a) [n] from two Gamma(a) draws; if both underflow to 0 (tiny a) the draw is a fair coin's edge.
torch::Tensor beta_symmetric(int64_t n, double a, at::Generator& gen) {
  auto alpha = torch::full({n}, a, torch::kFloat64);
  auto g1 = torch::_standard_gamma(alpha, gen);
  auto g2 = torch::_standard_gamma(alpha, gen);
  auto sum = g1 + g2;
  auto coin = (torch::rand({n}, gen, torch::kFloat64) < 0.5).to(torch::kFloat64);
  return torch::where(sum > 0, g1 / sum.clamp_min(1e-300), coin);
}

}  // namespace

torch::Tensor uniform(int64_t n, double lo, double hi, at::Generator& gen) {
  return torch::rand({n}, gen, torch::kFloat64) * (hi - lo) + lo;
}

torch::Tensor bernoulli_mask(int64_t n, double p, at::Generator& gen) {
  return torch::rand({n}, gen, torch::kFloat64) < p;
}

torch::Tensor randint_upto(const torch::Tensor& hi, at::Generator& gen) {
  auto top = hi.to(torch::kFloat64);
  auto u = torch::rand(hi.sizes(), gen, torch::kFloat64);
  return torch::minimum(torch::floor(u * (top + 1.0)), top).to(torch::kLong);
}

torch::Tensor sample_rrc_boxes(int64_t batch, int64_t height, int64_t width, const CropScale& cs,
                               at::Generator& gen) {
  auto s = sample_crop_sizes(batch, height, width, cs, gen);
  auto i = randint_upto(height - s.h, gen).to(torch::kFloat64);
  auto j = randint_upto(width - s.w, gen).to(torch::kFloat64);
  i = torch::where(s.fallback, centre_offset(height, s.h), i);
  j = torch::where(s.fallback, centre_offset(width, s.w), j);
  return to_boxes(i, j, s);
}

torch::Tensor sample_contrastive_crop_boxes(const torch::Tensor& boxes, int64_t height, int64_t width,
                                            const CropScale& cs, double alpha, at::Generator& gen) {
  const int64_t B = boxes.size(0);
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "ContrastiveCrop boxes must be [B,4], got ", boxes.sizes());
  auto s = sample_crop_sizes(B, height, width, cs, gen);
  auto b = boxes.to(torch::kCPU, torch::kFloat64);
  // Range of top-left corners whose crop centre lies inside the box (§6), clamped to keep the crop inside.
  auto corner = [](const torch::Tensor& edge, int64_t extent, const torch::Tensor& size) {
    auto c = torch::trunc(extent * edge) - torch::floor(size / 2.0);  // int(H*h0) - h//2
    return torch::minimum(torch::maximum(c, torch::zeros_like(c)), extent - size);
  };
  auto ch0 = corner(b.select(1, 0), height, s.h), ch1 = corner(b.select(1, 2), height, s.h);
  auto cw0 = corner(b.select(1, 1), width, s.w), cw1 = corner(b.select(1, 3), width, s.w);
  auto bi = beta_symmetric(B, alpha, gen);
  auto bj = beta_symmetric(B, alpha, gen);
  auto i = ch0 + torch::trunc((ch1 - ch0) * bi);
  auto j = cw0 + torch::trunc((cw1 - cw0) * bj);
  i = torch::where(s.fallback, centre_offset(height, s.h), i);
  j = torch::where(s.fallback, centre_offset(width, s.w), j);
  return to_boxes(i, j, s);
}

}  // namespace aug
}  // namespace contrastive
