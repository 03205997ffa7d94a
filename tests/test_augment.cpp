// Semantics of the augmentation engine: exact values for deterministic ops, distributions for samplers,
// determinism and per-sample independence for the presets, and ContrastiveCrop (docs/methods.md §0, §2, §6).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

#include "contrastive/augment.h"
#include "contrastive/common.h"

using namespace contrastive;
using torch::indexing::Slice;

namespace {

at::Generator gen(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

torch::Tensor per_sample(std::initializer_list<double> v) { return torch::tensor(std::vector<double>(v)); }

// One image [1,3,1,N] from N RGB pixels.
torch::Tensor pixels(const std::vector<std::array<float, 3>>& px) {
  auto t = torch::empty({1, 3, 1, static_cast<int64_t>(px.size())});
  for (size_t k = 0; k < px.size(); ++k)
    for (int c = 0; c < 3; ++c) t[0][c][0][static_cast<int64_t>(k)] = px[k][c];
  return t;
}

torch::Tensor random_images(int64_t B, int64_t C, int64_t H, int64_t W, uint64_t seed = 7) {
  auto g = gen(seed);
  return torch::randint(0, 256, {B, C, H, W}, g, torch::kUInt8);
}

AugmentOptions preset(const std::string& name) {
  AugmentOptions o;
  o.preset = name;
  return o;
}

}  // namespace

// ---------------------------------------------------------------- deterministic ops

TEST(AugmentOps, FlipIsExactWhereApplied) {
  auto g = gen(1);
  auto x = torch::rand({32, 3, 6, 5}, g);
  auto out = horizontal_flip(0.5)->apply(x, g, {});
  int flipped = 0;
  for (int64_t b = 0; b < 32; ++b) {
    const bool f = torch::equal(out[b], x[b].flip(2));
    EXPECT_TRUE(f || torch::equal(out[b], x[b])) << "sample " << b;
    flipped += f;
  }
  EXPECT_GT(flipped, 4);
  EXPECT_LT(flipped, 28);
}

TEST(AugmentOps, GrayscaleUsesItu601Weights) {
  auto x = pixels({{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {0.2f, 0.4f, 0.6f}});
  auto g = aug::rgb_to_grayscale(x, 3);
  const float expected[4] = {0.299f, 0.587f, 0.114f, 0.299f * 0.2f + 0.587f * 0.4f + 0.114f * 0.6f};
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < 4; ++k) EXPECT_NEAR(g[0][c][0][k].item<float>(), expected[k], 1e-6);
  // RandomGrayscale(p=1) is exactly that; p=0 is the identity.
  auto gg = gen(0);
  EXPECT_TRUE(torch::allclose(random_grayscale(1.0)->apply(x, gg, {}), g));
  EXPECT_TRUE(torch::equal(random_grayscale(0.0)->apply(x, gg, {}), x));
}

TEST(AugmentOps, BrightnessScalesAndClamps) {
  auto x = torch::cat({pixels({{0.2f, 0.4f, 0.6f}}), pixels({{0.2f, 0.4f, 0.6f}})});
  auto y = aug::adjust_brightness(x, per_sample({1.5, 2.0}));
  EXPECT_NEAR(y[0][0][0][0].item<float>(), 0.3f, 1e-6);
  EXPECT_NEAR(y[0][2][0][0].item<float>(), 0.9f, 1e-6);
  EXPECT_NEAR(y[1][1][0][0].item<float>(), 0.8f, 1e-6);
  EXPECT_NEAR(y[1][2][0][0].item<float>(), 1.0f, 1e-6);  // 1.2 clamped
}

TEST(AugmentOps, ContrastBlendsWithGrayscaleMean) {
  auto x = pixels({{0.2f, 0.4f, 0.6f}, {0.8f, 0.8f, 0.8f}});
  const float mean = ((0.299f * 0.2f + 0.587f * 0.4f + 0.114f * 0.6f) + 0.8f) / 2;  // one value for all channels
  auto y = aug::adjust_contrast(x, per_sample({0.5}));
  EXPECT_NEAR(y[0][0][0][0].item<float>(), 0.5f * 0.2f + 0.5f * mean, 1e-6);
  EXPECT_NEAR(y[0][2][0][0].item<float>(), 0.5f * 0.6f + 0.5f * mean, 1e-6);
  EXPECT_NEAR(y[0][1][0][1].item<float>(), 0.5f * 0.8f + 0.5f * mean, 1e-6);
  auto z = aug::adjust_contrast(x, per_sample({2.0}));  // 2x - mean, clamped
  EXPECT_NEAR(z[0][0][0][0].item<float>(), std::max(0.0f, 0.4f - mean), 1e-6);
  EXPECT_NEAR(z[0][0][0][1].item<float>(), std::min(1.0f, 1.6f - mean), 1e-6);
}

TEST(AugmentOps, SaturationAndHue) {
  auto x = pixels({{0.2f, 0.4f, 0.6f}, {1, 0, 0}, {0.3f, 0.3f, 0.3f}});
  // Saturation 0 is the grayscale image, 1 the identity.
  EXPECT_TRUE(torch::allclose(aug::adjust_saturation(x, per_sample({0.0})), aug::rgb_to_grayscale(x, 3)));
  EXPECT_TRUE(torch::allclose(aug::adjust_saturation(x, per_sample({1.0})), x));
  // HSV round trip, zero hue shift, and a third of a turn takes red to green.
  auto rand = torch::rand({4, 3, 5, 5});
  EXPECT_TRUE(torch::allclose(aug::hsv_to_rgb(aug::rgb_to_hsv(rand)), rand, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(aug::adjust_hue(x, per_sample({0.0})), x, 1e-5, 1e-5));
  auto y = aug::adjust_hue(x, per_sample({1.0 / 3.0}));
  EXPECT_NEAR(y[0][0][0][1].item<float>(), 0.0f, 1e-5);
  EXPECT_NEAR(y[0][1][0][1].item<float>(), 1.0f, 1e-5);
  EXPECT_NEAR(y[0][1][0][2].item<float>(), 0.3f, 1e-6);  // gray has no hue
  // 0.2,0.4,0.6 has H = 7/12; shifting by 1/3 gives H = 11/12: R max (0.6), G min (0.2), B = 0.4.
  EXPECT_NEAR(y[0][0][0][0].item<float>(), 0.6f, 1e-5);
  EXPECT_NEAR(y[0][1][0][0].item<float>(), 0.2f, 1e-5);
  EXPECT_NEAR(y[0][2][0][0].item<float>(), 0.4f, 1e-5);
}

TEST(AugmentOps, ColorJitterIdentityAndPerSampleFactors) {
  auto g = gen(3);
  auto x = torch::rand({8, 3, 4, 4}, g);
  EXPECT_TRUE(torch::equal(color_jitter(0, 0, 0, 0)->apply(x, g, {}), x));
  // Brightness only: each output is x * f for one f per sample, and the factors differ between samples.
  auto same = torch::full({16, 3, 4, 4}, 0.25f);
  auto y = color_jitter(0.4, 0, 0, 0)->apply(same, g, {});
  auto f = y.div(same).flatten(1);
  EXPECT_TRUE(torch::allclose(f.amin(1), f.amax(1), 1e-5, 1e-5));
  EXPECT_GE(f.min().item<float>(), 0.6f - 1e-5);
  EXPECT_LE(f.max().item<float>(), 1.4f + 1e-5);
  EXPECT_GT((f.amax(1) - f.amax(1)[0]).abs().max().item<float>(), 1e-3);
  // All four ops on grayscale input: only brightness/contrast run; the image stays gray and in range.
  auto gray = torch::rand({8, 1, 4, 4}, g);
  auto z = color_jitter(0.4, 0.4, 0.4, 0.1)->apply(gray, g, {});
  EXPECT_EQ(z.sizes(), gray.sizes());
  EXPECT_GE(z.min().item<float>(), 0.0f);
  EXPECT_LE(z.max().item<float>(), 1.0f);
}

TEST(AugmentOps, ColorJitterMatchesPerSampleReferenceInRandomOrder) {
  // Replay the jitter's documented draws (order permutation, then brightness, contrast, saturation, hue
  // factors) and apply the four ops one sample at a time in each sample's own order.
  const int64_t B = 48;
  auto g = gen(11);
  auto x = torch::rand({B, 3, 5, 5}, g);
  auto jg = gen(12);
  auto y = color_jitter(0.4, 0.4, 0.4, 0.1)->apply(x, jg, {});
  auto rg = gen(12);
  auto order = torch::rand({B, 4}, rg, torch::kFloat64).argsort(int64_t{1});
  torch::Tensor f[4] = {aug::uniform(B, 0.6, 1.4, rg), aug::uniform(B, 0.6, 1.4, rg),
                        aug::uniform(B, 0.6, 1.4, rg), aug::uniform(B, -0.1, 0.1, rg)};
  std::set<std::vector<int64_t>> orders_seen;
  for (int64_t b = 0; b < B; ++b) {
    auto ref = x.narrow(0, b, 1);
    std::vector<int64_t> ord;
    for (int64_t k = 0; k < 4; ++k) {
      const int64_t op = order[b][k].item<int64_t>();
      ord.push_back(op);
      auto fb = f[op].narrow(0, b, 1);
      ref = op == 0   ? aug::adjust_brightness(ref, fb)
            : op == 1 ? aug::adjust_contrast(ref, fb)
            : op == 2 ? aug::adjust_saturation(ref, fb)
                      : aug::adjust_hue(ref, fb);
    }
    orders_seen.insert(ord);
    EXPECT_TRUE(torch::allclose(y.narrow(0, b, 1), ref, 1e-5, 1e-5)) << "sample " << b;
  }
  EXPECT_GT(orders_seen.size(), 10u);  // of 24 possible orders
}

TEST(AugmentOps, GaussianBlurWeights) {
  auto x = torch::zeros({2, 1, 9, 9});
  x.index_put_({Slice(), 0, 4, 4}, 1.0);
  auto y = aug::gaussian_blur(x, per_sample({1.0, 0.1}), 3);
  const double w0 = std::exp(-0.5), c = 1.0 / (1.0 + 2.0 * w0);  // normalised centre weight for sigma 1
  EXPECT_NEAR(y[0][0][4][4].item<float>(), c * c, 1e-6);
  EXPECT_NEAR(y[0][0][3][4].item<float>(), c * c * w0, 1e-6);
  EXPECT_NEAR(y[1][0][4][4].item<float>(), 1.0, 1e-6);  // tiny sigma: identity
  EXPECT_NEAR(y[0].sum().item<float>(), 1.0, 1e-5);     // mass preserved away from the border
  EXPECT_EQ(blur_kernel_size(32), 3);
  EXPECT_EQ(blur_kernel_size(224), 23);
}

TEST(AugmentOps, SolarizeAndNormalize) {
  auto x = torch::tensor({0.3f, 0.5f, 0.7f}).view({1, 1, 1, 3});
  auto s = aug::solarize(x, 0.5);
  EXPECT_NEAR(s[0][0][0][0].item<float>(), 0.3f, 1e-6);
  EXPECT_NEAR(s[0][0][0][1].item<float>(), 0.5f, 1e-6);
  EXPECT_NEAR(s[0][0][0][2].item<float>(), 0.3f, 1e-6);
  auto n = aug::normalize(pixels({{0.5f, 0.5f, 0.5f}}), {0.1, 0.2, 0.3}, {0.5, 0.25, 0.1});
  EXPECT_NEAR(n[0][0][0][0].item<float>(), 0.8f, 1e-5);
  EXPECT_NEAR(n[0][1][0][0].item<float>(), 1.2f, 1e-5);
  EXPECT_NEAR(n[0][2][0][0].item<float>(), 2.0f, 1e-5);
}

TEST(AugmentOps, RandomApplyIsPerSample) {
  auto g = gen(5);
  auto x = torch::full({400, 1, 2, 2}, 0.2f);
  auto y = random_apply(solarize(0.0), 0.3)->apply(x, g, {});
  auto applied = (y.flatten(1).select(1, 0) > 0.5f).to(torch::kFloat).mean().item<float>();
  EXPECT_NEAR(applied, 0.3f, 0.07f);
  EXPECT_TRUE(torch::equal(random_apply(solarize(0.0), 0.0)->apply(x, g, {}), x));
}

// ---------------------------------------------------------------- crops

TEST(AugmentCrop, ResizedCropMapsTheBoxOntoTheOutput) {
  auto x = torch::rand({3, 2, 12, 10});
  auto full = torch::tensor(std::vector<int64_t>{0, 0, 12, 10}).view({1, 4}).repeat({3, 1});
  EXPECT_TRUE(torch::allclose(aug::resized_crop(x, full, 12, 10), x, 1e-5, 1e-5));  // identity
  // A crop resized to its own size is an exact window of the image.
  auto boxes = torch::tensor(std::vector<int64_t>{2, 3, 4, 5, 0, 0, 6, 6, 8, 5, 4, 5}).view({3, 4});
  auto y = aug::resized_crop(x, torch::tensor(std::vector<int64_t>{2, 3, 4, 5}).view({1, 4}).repeat({3, 1}), 4, 5);
  EXPECT_TRUE(torch::allclose(y, x.index({Slice(), Slice(), Slice(2, 6), Slice(3, 8)}), 1e-5, 1e-5));
  // Upsampling a crop by 2 matches interpolate() on the crop at interior pixels.
  auto z = aug::resized_crop(x, boxes, 8, 10);
  auto crop = x.index({Slice(0, 1), Slice(), Slice(2, 6), Slice(3, 8)});
  auto ref = torch::nn::functional::interpolate(crop, torch::nn::functional::InterpolateFuncOptions()
                                                          .size(std::vector<int64_t>{8, 10})
                                                          .mode(torch::kBilinear)
                                                          .align_corners(false));
  EXPECT_TRUE(torch::allclose(z.index({Slice(0, 1), Slice(), Slice(1, 7), Slice(1, 9)}),
                              ref.index({Slice(), Slice(), Slice(1, 7), Slice(1, 9)}), 1e-5, 1e-5));
}

TEST(AugmentCrop, RrcBoxesInsideAndDistributionMatches) {
  auto g = gen(2);
  const int64_t N = 20000, H = 64, W = 64;
  aug::CropScale cs;
  cs.scale = {0.2, 1.0};
  auto b = aug::sample_rrc_boxes(N, H, W, cs, g);
  auto i = b.select(1, 0), j = b.select(1, 1), h = b.select(1, 2), w = b.select(1, 3);
  EXPECT_TRUE((i >= 0).all().item<bool>() && (j >= 0).all().item<bool>());
  EXPECT_TRUE((h > 0).all().item<bool>() && (w > 0).all().item<bool>());
  EXPECT_TRUE((i + h <= H).all().item<bool>() && (j + w <= W).all().item<bool>());
  // Offsets are spread over the whole free range.
  EXPECT_TRUE(((i == 0) & (h < H)).any().item<bool>());
  EXPECT_TRUE((i + h == H).logical_and(h < H).any().item<bool>());

  // With scale (0.2, 0.5) no try is ever out of bounds, so the area fraction is U(0.2, 0.5) (mean 0.35,
  // sd 0.0866) and the log aspect ratio is U(log 3/4, log 4/3) (mean 0), up to rounding to whole pixels.
  cs.scale = {0.2, 0.5};
  b = aug::sample_rrc_boxes(N, 100, 100, cs, g).to(torch::kFloat64);
  auto area = (b.select(1, 2) * b.select(1, 3) / 1e4);
  EXPECT_NEAR(area.mean().item<double>(), 0.35, 0.005);
  EXPECT_NEAR(area.std().item<double>(), 0.3 / std::sqrt(12.0), 0.005);
  auto log_ratio = torch::log(b.select(1, 3) / b.select(1, 2));
  EXPECT_NEAR(log_ratio.mean().item<double>(), 0.0, 0.01);
  EXPECT_LE(log_ratio.max().item<double>(), std::log(4.0 / 3.0) + 0.05);
  // With scale (0.2, 1) the accepted area fraction stays in range and averages below 0.6 (large areas with
  // a skewed ratio are out of bounds and retried, as in torchvision; about 0.54).
  cs.scale = {0.2, 1.0};
  b = aug::sample_rrc_boxes(N, 100, 100, cs, g).to(torch::kFloat64);
  area = b.select(1, 2) * b.select(1, 3) / 1e4;
  EXPECT_GE(area.min().item<double>(), 0.19);
  EXPECT_LE(area.max().item<double>(), 1.0);
  EXPECT_GT(area.mean().item<double>(), 0.5);
  EXPECT_LT(area.mean().item<double>(), 0.6);
}

TEST(AugmentCrop, RrcFallbackIsCentreCrop) {
  // An impossible scale (> image) forces the fallback: the largest centred crop with a ratio in range.
  auto g = gen(4);
  aug::CropScale cs;
  cs.scale = {5.0, 6.0};
  auto b = aug::sample_rrc_boxes(3, 10, 40, cs, g);  // W/H = 4 > 4/3 -> h = 10, w = round(10 * 4/3) = 13
  for (int64_t k = 0; k < 3; ++k) {
    EXPECT_EQ(b[k][2].item<int64_t>(), 10);
    EXPECT_EQ(b[k][3].item<int64_t>(), 13);
    EXPECT_EQ(b[k][0].item<int64_t>(), 0);
    EXPECT_EQ(b[k][1].item<int64_t>(), 13);  // (40 - 13) / 2
  }
}

TEST(AugmentCrop, RandomCropIsShiftedCopyWithFill) {
  auto g = gen(9);
  auto x = torch::rand({16, 3, 10, 10}, g) * 0.5f;
  const float fill = 0.75f;
  auto y = random_crop(10, 4, fill)->apply(x, g, {});
  std::set<std::pair<int, int>> shifts;
  for (int64_t b = 0; b < 16; ++b) {
    bool found = false;
    for (int dy = -4; dy <= 4 && !found; ++dy)
      for (int dx = -4; dx <= 4 && !found; ++dx) {
        // Expected: out[r][c] = x[r + dy][c + dx] inside, fill outside.
        auto padded = torch::constant_pad_nd(x[b], {4, 4, 4, 4}, fill);
        auto ref = padded.index({Slice(), Slice(4 + dy, 14 + dy), Slice(4 + dx, 14 + dx)});
        if (torch::equal(y[b], ref)) found = true, shifts.insert({dy, dx});
      }
    EXPECT_TRUE(found) << "sample " << b;
  }
  EXPECT_GT(shifts.size(), 5u);
}

TEST(AugmentCrop, TranslateWithReflectKeepsSizeAndShifts) {
  auto g = gen(10);
  auto x = torch::rand({8, 1, 12, 12}, g);
  auto y = random_translate_reflect(4)->apply(x, g, {});
  ASSERT_EQ(y.sizes(), x.sizes());
  for (int64_t b = 0; b < 8; ++b) {
    auto padded = torch::nn::functional::pad(
        x[b].unsqueeze(0), torch::nn::functional::PadFuncOptions({4, 4, 4, 4}).mode(torch::kReflect))[0];
    bool found = false;
    for (int dy = 0; dy <= 8 && !found; ++dy)
      for (int dx = 0; dx <= 8 && !found; ++dx)
        found = torch::equal(y[b], padded.index({Slice(), Slice(dy, dy + 12), Slice(dx, dx + 12)}));
    EXPECT_TRUE(found);
  }
}

TEST(AugmentCrop, CutoutHoleSizeAndClipping) {
  auto x = torch::ones({3, 1, 10, 10});
  auto centres = torch::tensor(std::vector<int64_t>{5, 5, 0, 0, 9, 2}).view({3, 2});
  auto y = aug::cutout(x, centres, 4);
  // Interior: a 4x4 hole at rows/cols [3, 7).
  EXPECT_EQ((y[0] == 0).sum().item<int64_t>(), 16);
  EXPECT_TRUE((y[0].index({0, Slice(3, 7), Slice(3, 7)}) == 0).all().item<bool>());
  EXPECT_EQ((y[1] == 0).sum().item<int64_t>(), 4);  // corner: rows/cols [0, 2)
  EXPECT_TRUE((y[1].index({0, Slice(0, 2), Slice(0, 2)}) == 0).all().item<bool>());
  EXPECT_EQ((y[2] == 0).sum().item<int64_t>(), 3 * 4);  // rows [7, 10), cols [0, 4)
  EXPECT_TRUE((y[2].index({0, Slice(7, 10), Slice(0, 4)}) == 0).all().item<bool>());
  // The transform: one hole per sample, at most side^2 pixels, a filled rectangle.
  auto g = gen(6);
  auto z = cutout(1, 6)->apply(torch::ones({32, 3, 16, 16}), g, {});
  for (int64_t b = 0; b < 32; ++b) {
    auto zero = (z[b][0] == 0);
    const auto n = zero.sum().item<int64_t>();
    EXPECT_GE(n, 9);  // at least the quarter hole at a corner
    EXPECT_LE(n, 36);
    auto rows = zero.any(1).sum().item<int64_t>(), cols = zero.any(0).sum().item<int64_t>();
    EXPECT_EQ(rows * cols, n);
    EXPECT_TRUE(torch::equal(z[b][0], z[b][2]));  // same hole in every channel
  }
}

// ---------------------------------------------------------------- presets and the view generator

TEST(AugmentViews, SameSeedSameViewsDifferentSeedDifferent) {
  auto gen_views = make_view_generator(preset("simclr-cifar"), 3, 32, 32);
  auto images = random_images(8, 3, 32, 32);
  auto idx = torch::arange(8);
  auto a = (*gen_views)(images, idx, 42, torch::kCPU);
  auto b = (*gen_views)(images, idx, 42, torch::kCPU);
  auto c = (*gen_views)(images, idx, 43, torch::kCPU);
  ASSERT_EQ(a.size(), 2u);
  for (int v = 0; v < 2; ++v) {
    EXPECT_TRUE(torch::equal(a[v], b[v]));
    EXPECT_FALSE(torch::equal(a[v], c[v]));
    EXPECT_EQ(a[v].sizes(), (std::vector<int64_t>{8, 3, 32, 32}));
  }
  EXPECT_FALSE(torch::equal(a[0], a[1]));  // the two views are independent
}

TEST(AugmentViews, SamplesInABatchGetDifferentParameters) {
  auto gen_views = make_view_generator(preset("simclr-cifar"), 3, 32, 32);
  auto one = random_images(1, 3, 32, 32);
  auto views = (*gen_views)(one.repeat({16, 1, 1, 1}), torch::arange(16), 1, torch::kCPU);
  for (int64_t b = 1; b < 16; ++b) EXPECT_FALSE(torch::equal(views[0][b], views[0][0])) << b;
}

TEST(AugmentViews, CdsPresetViews) {
  AugmentOptions o = preset("cds");
  o.mean = {0.4914, 0.4822, 0.4465};
  o.std = {0.2023, 0.1994, 0.2010};
  auto gen_views = make_view_generator(o, 3, 32, 32);
  ASSERT_EQ(gen_views->num_views(), 2);
  auto images = torch::full({16, 3, 32, 32}, 200, torch::kUInt8);
  auto views = (*gen_views)(images, torch::arange(16), 5, torch::kCPU);
  ASSERT_EQ(views.size(), 2u);
  auto mean = torch::tensor(o.mean).view({1, 3, 1, 1}).to(torch::kFloat);
  auto sd = torch::tensor(o.std).view({1, 3, 1, 1}).to(torch::kFloat);
  auto v1 = views[0] * sd + mean, v2 = views[1] * sd + mean;  // back to [0,1]
  bool saw_fill = false;
  for (int64_t b = 0; b < 16; ++b) {
    // View 1: a 16x16 zero square (clipped: at least 8x8), and the padding filled with 128/255.
    auto zero = v1[b][0].abs() < 1e-5;
    const auto n = zero.sum().item<int64_t>();
    EXPECT_GE(n, 64);
    EXPECT_LE(n, 256);
    EXPECT_EQ(zero.any(1).sum().item<int64_t>() * zero.any(0).sum().item<int64_t>(), n);
    saw_fill |= ((v1[b] - 128.0f / 255.0f).abs() < 1e-5).any().item<bool>();
    // View 2: no Cutout. Zero padding can only reach the outer 4 pixels; the centre is jittered image.
    auto zero2 = (v2[b].abs() < 1e-5).all(0);
    EXPECT_FALSE(zero2.index({Slice(4, 28), Slice(4, 28)}).any().item<bool>()) << "sample " << b;
  }
  EXPECT_TRUE(saw_fill);
  // CDS is defined for exactly two views.
  o.views = 3;
  EXPECT_THROW(make_view_generator(o, 3, 32, 32), InputError);
}

TEST(AugmentViews, GrayscaleInputRunsEveryPreset) {
  auto images = random_images(4, 1, 28, 28);
  for (std::string name : {"simclr-cifar", "moco-v2", "cds", "supervised", "rrc-flip", "amdim", "test"}) {
    auto o = preset(name);
    o.mean = {0.2860};
    o.std = {0.3530};
    auto g = make_view_generator(o, 1, 28, 28);
    auto views = (*g)(images, torch::arange(4), 3, torch::kCPU);
    ASSERT_EQ(static_cast<int64_t>(views.size()), g->num_views()) << name;
    for (auto& v : views) {
      EXPECT_EQ(v.sizes(), (std::vector<int64_t>{4, 1, 28, 28})) << name;
      EXPECT_TRUE(v.isfinite().all().item<bool>()) << name;
    }
  }
}

TEST(AugmentViews, UnknownPresetListsValidNames) {
  try {
    make_view_generator(preset("nope"), 3, 32, 32);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("simclr-cifar"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("amdim"), std::string::npos);
  }
  auto o = preset("simclr-cifar");
  o.multi_crop = "2x32,x16";
  EXPECT_THROW(make_view_generator(o, 3, 32, 32), InputError);
  o = preset("simclr-cifar");
  o.mean = {0.5, 0.5};
  EXPECT_THROW(make_view_generator(o, 3, 32, 32), InputError);
}

TEST(AugmentViews, MultiCropSizesAndScales) {
  auto o = preset("simclr-cifar");
  o.multi_crop = "2x32,4x16";
  auto g = make_view_generator(o, 3, 32, 32);
  ASSERT_EQ(g->num_views(), 6);
  auto views = (*g)(random_images(2, 3, 32, 32), torch::arange(2), 1, torch::kCPU);
  for (int v = 0; v < 6; ++v) EXPECT_EQ(views[v].size(2), v < 2 ? 32 : 16);
  auto boxes = g->sample_crop_boxes(random_images(500, 3, 32, 32), torch::arange(500), 1);
  ASSERT_EQ(boxes.size(), 6u);
  auto frac = [](const torch::Tensor& b) { return (b.select(1, 2) * b.select(1, 3)).to(torch::kFloat) / 1024.0f; };
  EXPECT_GE(frac(boxes[0]).min().item<float>(), 0.19f);  // global: (0.2, 1)
  EXPECT_LE(frac(boxes[3]).max().item<float>(), 0.21f);  // local: (0.05, 0.2)
  EXPECT_GE(frac(boxes[3]).min().item<float>(), 0.04f);
  EXPECT_EQ(parse_multi_crop("2x32,4x16"), (std::vector<std::pair<int64_t, int64_t>>{{2, 32}, {4, 16}}));
}

TEST(AugmentViews, AmdimFlipIsSharedBetweenViews) {
  // Only the shared flip and the normalisation would remain if translate/jitter were off; check instead that
  // with an image whose left half is dark and right half bright, both views agree on the side (translation
  // by <= 4 px and colour jitter keep the halves apart).
  auto o = preset("amdim");
  auto g = make_view_generator(o, 3, 32, 32);
  auto images = torch::zeros({32, 3, 32, 32}, torch::kUInt8);
  images.index_put_({Slice(), Slice(), Slice(), Slice(16, 32)}, 255);
  auto views = (*g)(images, torch::arange(32), 8, torch::kCPU);
  int flipped = 0;
  for (int64_t b = 0; b < 32; ++b) {
    auto side = [&](const torch::Tensor& v) {
      return v[b].index({Slice(), Slice(), Slice(0, 8)}).mean().item<float>() >
             v[b].index({Slice(), Slice(), Slice(24, 32)}).mean().item<float>();
    };
    EXPECT_EQ(side(views[0]), side(views[1])) << b;
    flipped += side(views[0]);
  }
  EXPECT_GT(flipped, 4);
  EXPECT_LT(flipped, 28);
}

// ---------------------------------------------------------------- ContrastiveCrop

TEST(ContrastiveCrop, CentresFallInsideASmallCornerBox) {
  auto g = gen(12);
  aug::CropScale cs;
  cs.scale = {0.02, 0.1};  // crops smaller than the box's distance to the far border
  const int64_t N = 5000, H = 64, W = 64;
  for (auto corner : {std::array<double, 4>{0, 0, 0.25, 0.25}, std::array<double, 4>{0.75, 0.7, 0.98, 0.98}}) {
    auto boxes = torch::tensor(std::vector<double>(corner.begin(), corner.end())).view({1, 4}).repeat({N, 1});
    auto b = aug::sample_contrastive_crop_boxes(boxes, H, W, cs, 0.6, g).to(torch::kFloat64);
    auto cy = b.select(1, 0) + b.select(1, 2) / 2, cx = b.select(1, 1) + b.select(1, 3) / 2;
    // Inside the box [int(H*h0), int(H*h1)], up to the half-pixel of h//2, unless the clamp that keeps the
    // crop in the image moved it.
    auto inside_y = (cy >= std::floor(H * corner[0])) & (cy <= std::floor(H * corner[2]) + 0.5);
    auto inside_x = (cx >= std::floor(W * corner[1])) & (cx <= std::floor(W * corner[3]) + 0.5);
    auto clamped_y = (b.select(1, 0) == 0) | (b.select(1, 0) + b.select(1, 2) == H);
    auto clamped_x = (b.select(1, 1) == 0) | (b.select(1, 1) + b.select(1, 3) == W);
    EXPECT_TRUE((inside_y | clamped_y).all().item<bool>());
    EXPECT_TRUE((inside_x | clamped_x).all().item<bool>());
    EXPECT_GT((inside_y & inside_x).to(torch::kFloat).mean().item<float>(), 0.9f);
    EXPECT_TRUE((b.select(1, 0) + b.select(1, 2) <= H).all().item<bool>());
  }
}

TEST(ContrastiveCrop, SmallAlphaIsUShaped) {
  // Fixed crop 20x20 (scale 0.1 of 64x64, ratio 1): ch0 = 16 - 10 = 6, ch1 = 48 - 10 = 38.
  aug::CropScale cs;
  cs.scale = {400.0 / 4096, 400.0 / 4096};
  cs.ratio = {1.0, 1.0};
  auto boxes = torch::tensor({0.25, 0.25, 0.75, 0.75}).view({1, 4}).repeat({20000, 1});
  auto edge_mass = [&](double alpha, uint64_t seed) {
    auto g = gen(seed);
    auto b = aug::sample_contrastive_crop_boxes(boxes, 64, 64, cs, alpha, g);
    EXPECT_TRUE((b.select(1, 2) == 20).all().item<bool>());
    auto i = b.select(1, 0);
    EXPECT_GE(i.min().item<int64_t>(), 6);
    EXPECT_LE(i.max().item<int64_t>(), 38);
    auto t = (i - 6).to(torch::kFloat) / 32.0f;  // position in the allowed range, [0, 1]
    auto edge = ((t < 0.25f) | (t >= 0.75f)).to(torch::kFloat).mean().item<float>();
    return edge;
  };
  EXPECT_GT(edge_mass(0.1, 1), 0.8f);   // U-shaped: most mass near the edges
  EXPECT_GT(edge_mass(0.6, 2), 0.55f);  // still more than uniform (0.5)
  EXPECT_LT(edge_mass(5.0, 3), 0.3f);   // alpha > 1 concentrates in the middle
}

TEST(ContrastiveCrop, ViewGeneratorUsesBoxesWhenOn) {
  auto o = preset("simclr-cifar");
  o.crop = "contrastive";
  o.box_alpha = 0.1;
  auto g = make_view_generator(o, 3, 32, 32);
  auto images = random_images(256, 3, 32, 32);
  auto idx = torch::arange(256);
  auto boxes = torch::tensor({0.0, 0.0, 0.2, 0.2}).view({1, 4}).repeat({256, 1});
  g->set_boxes(boxes);
  EXPECT_TRUE(torch::allclose(g->boxes(), boxes.to(torch::kFloat64)));
  auto off = g->sample_crop_boxes(images, idx, 9);  // use_boxes is off: plain RRC
  g->use_boxes(true);
  auto on = g->sample_crop_boxes(images, idx, 9);
  ASSERT_EQ(on.size(), 2u);
  auto mean_centre = [](const torch::Tensor& b) {
    return (b.select(1, 0) + b.select(1, 2) / 2).to(torch::kFloat).mean().item<float>();
  };
  EXPECT_LT(mean_centre(on[0]), mean_centre(off[0]) - 3.0f);  // pulled towards the top-left box
  // The views are still produced and deterministic.
  auto a = (*g)(images, idx, 9, torch::kCPU), b = (*g)(images, idx, 9, torch::kCPU);
  EXPECT_TRUE(torch::equal(a[1], b[1]));
  // The sampled boxes are exactly the ones the views use: a crop-only generator reproduces them.
  PipelineViewGenerator crop_only("crop", 3, {Pipeline({random_resized_crop(32, {0.2, 1.0})})}, {}, true, 0.1);
  crop_only.set_boxes(boxes);
  crop_only.use_boxes(true);
  auto cropped = crop_only(images, idx, 9, torch::kCPU)[0];
  auto used = crop_only.sample_crop_boxes(images, idx, 9);
  EXPECT_TRUE(torch::equal(used[0], on[0]));
  EXPECT_TRUE(torch::allclose(cropped, aug::resized_crop(images.to(torch::kFloat).div(255), used[0], 32, 32)));
  // A grid of images with boxes and crops is written as a PNG.
  const std::string png = std::string(CONTRASTIVE_BINARY_DIR) + "/test_cc_grid.png";
  draw_boxes_grid(images.narrow(0, 0, 6), boxes.narrow(0, 0, 6), {on[0].narrow(0, 0, 6), on[1].narrow(0, 0, 6)}, 3,
                  png);
  std::ifstream f(png, std::ios::binary);
  char sig[4] = {};
  f.read(sig, 4);
  EXPECT_EQ(std::string(sig + 1, 3), "PNG");
  std::remove(png.c_str());
}

TEST(ContrastiveCrop, LocalizeBoxesHotBlockAndConstantMap) {
  auto fm = torch::zeros({3, 4, 8, 8});
  fm.index_put_({0, Slice(), Slice(2, 4), Slice(4, 7)}, 1.0);  // hot rows 2-3, cols 4-6
  fm.index_put_({1, 1, Slice(0, 1), Slice(0, 1)}, 5.0);        // hot top-left pixel
  fm[2].fill_(3.0);                                            // constant
  auto boxes = localize_boxes(fm, 32, 32, 0.1);
  // Bilinear x4 upsampling (align_corners=false) maps output row y to source (y + 0.5) / 4 - 0.5; the
  // interpolated value exceeds 0.1 for source rows in (1.1, 3.9) -> y in 6..17, and source cols (3.1, 6.9) ->
  // x in 14..29. Edges are index / size.
  EXPECT_NEAR(boxes[0][0].item<float>(), 6.0f / 32, 1e-6);
  EXPECT_NEAR(boxes[0][1].item<float>(), 14.0f / 32, 1e-6);
  EXPECT_NEAR(boxes[0][2].item<float>(), 17.0f / 32, 1e-6);
  EXPECT_NEAR(boxes[0][3].item<float>(), 29.0f / 32, 1e-6);
  // Top-left pixel: source (-0.5 clamped, ..., 0.9) -> y in 0..5 for both axes.
  EXPECT_NEAR(boxes[1][0].item<float>(), 0.0f, 1e-6);
  EXPECT_NEAR(boxes[1][2].item<float>(), 5.0f / 32, 1e-6);
  EXPECT_NEAR(boxes[1][3].item<float>(), 5.0f / 32, 1e-6);
  // Constant map: whole image, no NaN.
  EXPECT_TRUE(boxes.isfinite().all().item<bool>());
  EXPECT_TRUE(torch::equal(boxes[2], torch::tensor({0.0f, 0.0f, 1.0f, 1.0f})));
}
