// ColorJitter (torchvision semantics) with a random order of the four ops per sample, batched: at each of the
// four positions, every op runs once on the subset of samples that drew it there.
#include <torch/torch.h>

#include <sstream>

#include "contrastive/transforms.h"

namespace contrastive {

namespace {

enum JitterOp : int64_t { kBrightness = 0, kContrast = 1, kSaturation = 2, kHue = 3 };

class ColorJitter : public Transform {
 public:
  ColorJitter(double brightness, double contrast, double saturation, double hue, bool colour)
      : b_(brightness), c_(contrast), s_(saturation), h_(hue), colour_(colour) {}

  torch::Tensor apply(const torch::Tensor& x, at::Generator& gen, const AugmentContext& ctx) const override {
    const int64_t B = ctx.count(x.size(0));
    const bool colour = colour_ && x.size(1) == 3;
    // Draw order: permutation, then the four factors (always drawn, so the stream does not depend on C).
    auto order = ctx.pick(torch::rand({B, 4}, gen, torch::kFloat64).argsort(int64_t{1}));  // op per position
    torch::Tensor factor[4] = {ctx.pick(aug::uniform(B, std::max(0.0, 1 - b_), 1 + b_, gen)),
                               ctx.pick(aug::uniform(B, std::max(0.0, 1 - c_), 1 + c_, gen)),
                               ctx.pick(aug::uniform(B, std::max(0.0, 1 - s_), 1 + s_, gen)),
                               ctx.pick(aug::uniform(B, -h_, h_, gen))};
    const bool enabled[4] = {b_ > 0, c_ > 0, colour && s_ > 0, colour && h_ > 0};

    auto y = x;
    for (int64_t pos = 0; pos < 4; ++pos) {
      auto op_here = order.select(1, pos);
      auto next = y.clone();
      for (int64_t op = 0; op < 4; ++op) {
        if (!enabled[op]) continue;
        auto chosen = (op_here == op).nonzero().flatten();
        if (chosen.numel() == 0) continue;
        auto index = chosen.to(x.device());
        next.index_copy_(0, index, run(op, y.index_select(0, index), factor[op].index_select(0, chosen)));
      }
      y = next;
    }
    return y;
  }

  std::string describe() const override {
    std::ostringstream s;
    s << "ColorJitter(" << b_ << "," << c_ << "," << s_ << "," << h_
      << (colour_ ? "" : ", brightness/contrast only") << ")";
    return s.str();
  }

 private:
  static torch::Tensor run(int64_t op, const torch::Tensor& x, const torch::Tensor& f) {
    switch (op) {
      case kBrightness:
        return aug::adjust_brightness(x, f);
      case kContrast:
        return aug::adjust_contrast(x, f);
      case kSaturation:
        return aug::adjust_saturation(x, f);
      default:
        return aug::adjust_hue(x, f);
    }
  }

  double b_, c_, s_, h_;
  bool colour_;
};

}  // namespace

TransformPtr color_jitter(double brightness, double contrast, double saturation, double hue, bool colour) {
  return std::make_shared<ColorJitter>(brightness, contrast, saturation, hue, colour);
}

}  // namespace contrastive
