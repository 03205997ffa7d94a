// The fused SupCon operator against ATen's chain (SupConLossOptions().fused(false)): the same loss and gradients
// within float rounding, in every mode it takes, and the same bits for any number of threads.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "contrastive/losses.h"

using namespace contrastive;

namespace {

struct LossAndGrad {
  double loss;
  torch::Tensor grad;
};

LossAndGrad run(const torch::Tensor& feats, const torch::Tensor& labels, const SupConLossOptions& o) {
  auto x = feats.detach().clone().requires_grad_(true);
  auto f = torch::nn::functional::normalize(x, torch::nn::functional::NormalizeFuncOptions().dim(2));
  auto loss = functional::supcon_loss(f, labels, {}, o);
  (loss * 1.7).backward();  // an upstream gradient other than 1
  return {loss.item<double>(), x.grad()};
}

void expect_same(const torch::Tensor& feats, const torch::Tensor& labels, SupConLossOptions o) {
  const auto fused = run(feats, labels, o.fused(true));
  const auto aten = run(feats, labels, o.fused(false));
  EXPECT_NEAR(fused.loss, aten.loss, 1e-5 * std::max(1.0, std::abs(aten.loss)));
  const double scale = aten.grad.abs().max().item<double>();
  EXPECT_LT((fused.grad - aten.grad).abs().max().item<double>(), 2e-5 * std::max(scale, 1e-3))
      << "gradient scale " << scale;
}

}  // namespace

TEST(FusedSupCon, MatchesAtenWithLabelsWithoutLabelsAndInBothContrastModes) {
  torch::manual_seed(3);
  for (int64_t views : {2, 3}) {
    for (auto mode : {ContrastMode::All, ContrastMode::One}) {
      auto feats = torch::randn({40, views, 16});
      auto labels = torch::randint(5, {40}, torch::kLong);
      auto o = SupConLossOptions().temperature(0.1).base_temperature(0.07).contrast_mode(mode);
      SCOPED_TRACE("views " + std::to_string(views) + (mode == ContrastMode::All ? ", all" : ", one"));
      expect_same(feats, labels, o);  // SupCon
      expect_same(feats, {}, o);      // SimCLR
      expect_same(feats, labels.to(torch::kInt), o.temperature(0.5));
    }
  }
}

TEST(FusedSupCon, AnchorsWithoutAPositiveAreLeftOutAsInAten) {
  // One view and distinct labels except two samples: only those two anchors have a positive.
  auto feats = torch::randn({12, 1, 8});
  auto labels = torch::arange(12, torch::kLong);
  labels[5] = 0;
  expect_same(feats, labels, SupConLossOptions().temperature(0.2));
  // No anchor has a positive: the loss is 0 and so is the gradient.
  const auto none = run(feats, torch::arange(12, torch::kLong), SupConLossOptions());
  EXPECT_EQ(none.loss, 0.0);
  EXPECT_EQ(none.grad.abs().sum().item<double>(), 0.0);
}

TEST(FusedSupCon, SameBitsForOneAndTwoThreads) {
  auto feats = torch::randn({256, 2, 32});
  auto labels = torch::randint(10, {256}, torch::kLong);
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = run(feats, labels, SupConLossOptions());
  at::set_num_threads(2);
  const auto two = run(feats, labels, SupConLossOptions());
  at::set_num_threads(before);
  EXPECT_EQ(one.loss, two.loss);
  EXPECT_TRUE(torch::equal(one.grad, two.grad));
}

TEST(FusedSupCon, NonFiniteFeaturesGiveANonFiniteLoss) {
  auto feats = torch::randn({16, 2, 8});
  feats[3][1][2] = std::numeric_limits<float>::quiet_NaN();
  auto f = torch::nn::functional::normalize(feats, torch::nn::functional::NormalizeFuncOptions().dim(2));
  EXPECT_FALSE(std::isfinite(functional::supcon_loss(f, {}, {}, SupConLossOptions()).item<double>()));
}

TEST(FusedSupCon, ChecksTheLabelCount) {
  auto f = torch::randn({8, 2, 4});
  EXPECT_THROW(functional::supcon_loss(f, torch::zeros({7}, torch::kLong)), InputError);
}
