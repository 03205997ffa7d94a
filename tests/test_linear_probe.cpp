// The linear probe chooses its epoch on validation features, never on the test split it reports.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "contrastive/common.h"
#include "contrastive/eval.h"

using namespace contrastive;

namespace {

// Two Gaussian classes in 8 dimensions, separable up to noise.
std::pair<torch::Tensor, torch::Tensor> blobs(int64_t n, uint64_t seed, double spread) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto y = torch::arange(n, torch::kLong).remainder(2);
  auto x = torch::randn({n, 8}, gen) * spread + y.to(torch::kFloat).unsqueeze(1) * 2.0;
  return {x, y};
}

}  // namespace

TEST(LinearProbe, ChoosesTheEpochOnAHeldOutShareOfTheTrainingFeatures) {
  auto [xtr, ytr] = blobs(400, 1, 1.5);
  auto [xte, yte] = blobs(200, 2, 1.5);
  LinearProbeOptions o;
  o.epochs = 6;
  o.lr = 0.05;
  auto r = linear_probe(xtr, ytr, xte, yte, 2, o);
  EXPECT_EQ(r.val_count, 40);
  EXPECT_EQ(r.train_count, 360);
  ASSERT_EQ(r.val_per_epoch.size(), 6u);
  ASSERT_EQ(r.per_epoch.size(), 6u);
  // The chosen epoch is the first with the highest validation top-1, and the reported test top-1 is that epoch's.
  const auto best_val = std::max_element(r.val_per_epoch.begin(), r.val_per_epoch.end());
  EXPECT_EQ(r.epoch, 1 + (best_val - r.val_per_epoch.begin()));
  EXPECT_DOUBLE_EQ(r.val_top1, *best_val);
  EXPECT_DOUBLE_EQ(r.top1, r.per_epoch[r.epoch - 1]);
  EXPECT_DOUBLE_EQ(r.top1_last, r.per_epoch.back());
  EXPECT_DOUBLE_EQ(r.top1_best, *std::max_element(r.per_epoch.begin(), r.per_epoch.end()));
  EXPECT_GT(r.top1, 0.8);  // the classes are separable: the probe learns them
}

TEST(LinearProbe, GivenValidationFeaturesAreUsedAndTheTrainingSetIsKeptWhole) {
  auto [xtr, ytr] = blobs(300, 3, 1.0);
  auto [xva, yva] = blobs(90, 4, 1.0);
  auto [xte, yte] = blobs(100, 5, 1.0);
  LinearProbeOptions o;
  o.epochs = 3;
  auto r = linear_probe(xtr, ytr, xte, yte, 2, o, xva, yva);
  EXPECT_EQ(r.train_count, 300);
  EXPECT_EQ(r.val_count, 90);
  // Validation labels that disagree with the features move the choice: with them inverted, the chosen epoch is
  // the one with the lowest true validation top-1.
  auto inverted = linear_probe(xtr, ytr, xte, yte, 2, o, xva, 1 - yva);
  ASSERT_EQ(inverted.val_per_epoch.size(), 3u);
  for (size_t e = 0; e < 3; ++e) EXPECT_NEAR(inverted.val_per_epoch[e], 1 - r.val_per_epoch[e], 1e-9);
}

TEST(LinearProbe, WithoutValidationTheLastEpochIsReported) {
  auto [xtr, ytr] = blobs(200, 6, 1.0);
  auto [xte, yte] = blobs(100, 7, 1.0);
  LinearProbeOptions o;
  o.epochs = 4;
  o.val_fraction = 0;
  auto r = linear_probe(xtr, ytr, xte, yte, 2, o);
  EXPECT_EQ(r.val_count, 0);
  EXPECT_EQ(r.epoch, 4);
  EXPECT_DOUBLE_EQ(r.top1, r.top1_last);
  o.val_fraction = 1.0;
  EXPECT_THROW(linear_probe(xtr, ytr, xte, yte, 2, o), InputError);
}
