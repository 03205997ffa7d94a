// The random transforms: each draws its per-sample parameters on the CPU and calls one batched op.
#include "contrastive/transforms.h"

#include <torch/torch.h>

#include <cmath>
#include <sstream>

namespace contrastive {

namespace {

std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

torch::Tensor full_long(int64_t n, int64_t v) { return torch::full({n}, v, torch::kLong); }

class RandomApply : public Transform {
 public:
  RandomApply(TransformPtr t, double p) : t_(std::move(t)), p_(p) {}
  torch::Tensor apply(const torch::Tensor& x, at::Generator& gen, const AugmentContext& ctx) const override {
    auto drawn = aug::bernoulli_mask(ctx.count(x.size(0)), p_, gen);  // CPU bool over the whole draw
    if (!drawn.any().item<bool>()) return x;
    auto local = ctx.pick(drawn);
    auto chosen = local.nonzero().flatten();  // CPU int64
    const int64_t n = chosen.numel();
    const auto inner = ctx.chosen(local, drawn);
    if (n == 0) {
      // Other processes transform some of their samples: draw the same parameters (and discard the result)
      // so that the generator stays in step with theirs.
      AugmentContext dummy = inner;
      dummy.rows = torch::zeros({1}, torch::kLong);
      dummy.boxes = torch::Tensor();
      (void)t_->apply(x.narrow(0, 0, 1), gen, dummy);
      return x;
    }
    if (n == x.size(0)) return t_->apply(x, gen, inner);
    // Transform only the chosen samples (their parameters are drawn for them alone) and scatter them back.
    auto index = chosen.to(x.device());
    auto out = x.clone();
    out.index_copy_(0, index, t_->apply(x.index_select(0, index), gen, inner));
    return out;
  }
  std::string describe() const override { return "RandomApply(" + t_->describe() + ", p=" + fmt(p_) + ")"; }

 private:
  TransformPtr t_;
  double p_;
};

class RandomCrop : public Transform {
 public:
  // size 0 keeps the input size (a random translation).
  RandomCrop(int64_t size, int64_t pad, double fill, bool reflect)
      : size_(size), pad_(pad), fill_(fill), reflect_(reflect) {}
  torch::Tensor apply(const torch::Tensor& x, at::Generator& gen, const AugmentContext& ctx) const override {
    const int64_t B = ctx.count(x.size(0)), oh = size_ > 0 ? size_ : x.size(2), ow = size_ > 0 ? size_ : x.size(3);
    TORCH_CHECK(oh <= x.size(2) + 2 * pad_ && ow <= x.size(3) + 2 * pad_, "RandomCrop: size ", oh,
                " exceeds the padded image");
    auto top = ctx.pick(aug::randint_upto(full_long(B, x.size(2) + 2 * pad_ - oh), gen));
    auto left = ctx.pick(aug::randint_upto(full_long(B, x.size(3) + 2 * pad_ - ow), gen));
    return aug::crop_padded(x, torch::stack({top, left}, 1), oh, ow, pad_, fill_, reflect_);
  }
  std::string describe() const override {
    if (size_ == 0) return "RandomTranslateWithReflect(" + std::to_string(pad_) + ")";
    return "RandomCrop(" + std::to_string(size_) + ", pad=" + std::to_string(pad_) +
           (reflect_ ? ", reflect" : ", fill=" + fmt(fill_)) + ")";
  }

 private:
  int64_t size_, pad_;
  double fill_;
  bool reflect_;
};

class HorizontalFlip : public Transform {
 public:
  explicit HorizontalFlip(double p) : p_(p) {}
  torch::Tensor apply(const torch::Tensor& x, at::Generator& gen, const AugmentContext& ctx) const override {
    return aug::hflip(x, ctx.pick(aug::bernoulli_mask(ctx.count(x.size(0)), p_, gen)));
  }
  std::string describe() const override { return "HorizontalFlip(p=" + fmt(p_) + ")"; }

 private:
  double p_;
};

class RandomGrayscale : public Transform {
 public:
  explicit RandomGrayscale(double p) : p_(p) {}
  torch::Tensor apply(const torch::Tensor& x, at::Generator& gen, const AugmentContext& ctx) const override {
    if (x.size(1) != 3) return x;  // grayscale already
    auto mask = ctx.pick(aug::bernoulli_mask(ctx.count(x.size(0)), p_, gen)).to(x.device()).view({-1, 1, 1, 1});
    return torch::where(mask, aug::rgb_to_grayscale(x, 3), x);
  }
  std::string describe() const override { return "RandomGrayscale(p=" + fmt(p_) + ")"; }

 private:
  double p_;
};

class GaussianBlur : public Transform {
 public:
  GaussianBlur(double lo, double hi) : lo_(lo), hi_(hi) {}
  torch::Tensor apply(const torch::Tensor& x, at::Generator& gen, const AugmentContext& ctx) const override {
    auto sigma = ctx.pick(aug::uniform(ctx.count(x.size(0)), lo_, hi_, gen));
    return aug::gaussian_blur(x, sigma, blur_kernel_size(std::min(x.size(2), x.size(3))));
  }
  std::string describe() const override { return "GaussianBlur(sigma=[" + fmt(lo_) + "," + fmt(hi_) + "])"; }

 private:
  double lo_, hi_;
};

class Solarize : public Transform {
 public:
  explicit Solarize(double threshold) : threshold_(threshold) {}
  torch::Tensor apply(const torch::Tensor& x, at::Generator&, const AugmentContext&) const override {
    return aug::solarize(x, threshold_);
  }
  std::string describe() const override { return "Solarize(" + fmt(threshold_) + ")"; }

 private:
  double threshold_;
};

class Cutout : public Transform {
 public:
  Cutout(int64_t holes, int64_t side) : holes_(holes), side_(side) {}
  torch::Tensor apply(const torch::Tensor& x, at::Generator& gen, const AugmentContext& ctx) const override {
    const int64_t B = ctx.count(x.size(0));
    // Hole centres uniform over all pixels, as in DeVries & Taylor's Cutout.
    auto y = ctx.pick(aug::randint_upto(torch::full({B, holes_}, x.size(2) - 1, torch::kLong), gen));
    auto c = ctx.pick(aug::randint_upto(torch::full({B, holes_}, x.size(3) - 1, torch::kLong), gen));
    return aug::cutout(x, torch::stack({y, c}, 2), side_);
  }
  std::string describe() const override {
    return "Cutout(" + std::to_string(holes_) + "x" + std::to_string(side_) + "px)";
  }

 private:
  int64_t holes_, side_;
};

class Resize : public Transform {
 public:
  Resize(int64_t h, int64_t w) : h_(h), w_(w) {}
  torch::Tensor apply(const torch::Tensor& x, at::Generator&, const AugmentContext&) const override {
    if (x.size(2) == h_ && x.size(3) == w_) return x;
    auto full = torch::tensor({int64_t{0}, int64_t{0}, x.size(2), x.size(3)}).view({1, 4}).expand({x.size(0), 4});
    return aug::resized_crop(x, full, h_, w_);
  }
  std::string describe() const override { return "Resize(" + std::to_string(h_) + "x" + std::to_string(w_) + ")"; }

 private:
  int64_t h_, w_;
};

class Normalize : public Transform {
 public:
  Normalize(std::vector<double> mean, std::vector<double> std) : mean_(std::move(mean)), std_(std::move(std)) {}
  torch::Tensor apply(const torch::Tensor& x, at::Generator&, const AugmentContext&) const override {
    return aug::normalize(x, mean_, std_);
  }
  std::string describe() const override {
    std::string s = "Normalize(mean=";
    for (double m : mean_) s += fmt(m) + " ";
    s += "std=";
    for (double v : std_) s += fmt(v) + " ";
    s.back() = ')';
    return s;
  }

 private:
  std::vector<double> mean_, std_;
};

}  // namespace

AugmentContext AugmentContext::chosen(const torch::Tensor& local_mask, const torch::Tensor& drawn) const {
  AugmentContext out = *this;
  auto index = local_mask.nonzero().flatten();
  if (boxes.defined()) out.boxes = boxes.index_select(0, index.to(boxes.device()));
  if (rows.defined()) {
    // Position of every drawn sample among the chosen ones of the whole draw.
    auto position = drawn.to(torch::kLong).cumsum(0) - 1;
    out.rows = position.index_select(0, rows.index_select(0, index));
    out.draw_count = drawn.sum().item<int64_t>();
  }
  return out;
}

torch::Tensor Pipeline::apply(const torch::Tensor& x, at::Generator& gen, const AugmentContext& ctx) const {
  auto y = x;
  for (const auto& t : transforms_) y = t->apply(y, gen, ctx);
  return y;
}

std::string Pipeline::describe() const {
  std::string s;
  for (const auto& t : transforms_) s += (s.empty() ? "" : " -> ") + t->describe();
  return s.empty() ? "identity" : s;
}

torch::Tensor RandomResizedCrop::sample_boxes(int64_t batch, int64_t height, int64_t width, at::Generator& gen,
                                              const AugmentContext& ctx) const {
  if (ctx.boxes.defined()) {
    auto boxes = ctx.boxes;
    if (ctx.rows.defined()) {  // other processes' rows: any box, the draws do not depend on the box values
      boxes = torch::tensor({0.0, 0.0, 1.0, 1.0}, ctx.boxes.options()).repeat({ctx.draw_count, 1});
      boxes.index_copy_(0, ctx.rows.to(boxes.device()), ctx.boxes);
    }
    return ctx.pick(aug::sample_contrastive_crop_boxes(boxes, height, width, cs_, ctx.box_alpha, gen));
  }
  return ctx.pick(aug::sample_rrc_boxes(ctx.count(batch), height, width, cs_, gen));
}

torch::Tensor RandomResizedCrop::apply(const torch::Tensor& x, at::Generator& gen,
                                       const AugmentContext& ctx) const {
  return aug::resized_crop(x, sample_boxes(x.size(0), x.size(2), x.size(3), gen, ctx), out_h_, out_w_);
}

std::string RandomResizedCrop::describe() const {
  return "RandomResizedCrop(" + std::to_string(out_h_) + "x" + std::to_string(out_w_) + ", scale=(" +
         fmt(cs_.scale.first) + "," + fmt(cs_.scale.second) + "))";
}

int64_t blur_kernel_size(int64_t side) {
  auto k = static_cast<int64_t>(std::lround(0.1 * static_cast<double>(side)));
  if (k % 2 == 0) ++k;
  return std::max<int64_t>(k, 3);
}

TransformPtr random_apply(TransformPtr t, double p) {
  if (p >= 1.0) return t;
  return std::make_shared<RandomApply>(std::move(t), p);
}
TransformPtr random_resized_crop(int64_t size, std::pair<double, double> scale) {
  aug::CropScale cs;
  cs.scale = scale;
  return std::make_shared<RandomResizedCrop>(size, size, cs);
}
TransformPtr random_crop(int64_t size, int64_t pad, double fill, bool reflect) {
  return std::make_shared<RandomCrop>(size, pad, fill, reflect);
}
TransformPtr random_translate_reflect(int64_t max_shift) {
  return std::make_shared<RandomCrop>(0, max_shift, 0.0, true);
}
TransformPtr horizontal_flip(double p) { return std::make_shared<HorizontalFlip>(p); }
TransformPtr random_grayscale(double p) { return std::make_shared<RandomGrayscale>(p); }
TransformPtr gaussian_blur(double lo, double hi) { return std::make_shared<GaussianBlur>(lo, hi); }
TransformPtr solarize(double threshold) { return std::make_shared<Solarize>(threshold); }
TransformPtr cutout(int64_t holes, int64_t side) { return std::make_shared<Cutout>(holes, side); }
TransformPtr resize(int64_t out_h, int64_t out_w) { return std::make_shared<Resize>(out_h, out_w); }
TransformPtr normalize(std::vector<double> mean, std::vector<double> std) {
  return std::make_shared<Normalize>(std::move(mean), std::move(std));
}

}  // namespace contrastive
