// Exact t-SNE: perplexity calibration, separation of clusters, determinism; stratified subsampling.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "contrastive/common.h"
#include "contrastive/tsne.h"

using namespace contrastive;

namespace {

// k well-separated Gaussian clusters in d dimensions: centres far apart relative to the unit spread.
std::pair<torch::Tensor, torch::Tensor> clusters(int64_t k, int64_t per, int64_t d, uint64_t seed) {
  torch::manual_seed(seed);
  auto centres = torch::randn({k, d}) * 8;
  auto labels = torch::arange(k, torch::kLong).repeat_interleave(per);
  auto x = centres.index_select(0, labels) + torch::randn({k * per, d});
  return {x, labels};
}

// Leave-one-out 1-NN label accuracy.
double one_nn_accuracy(const torch::Tensor& y, const torch::Tensor& labels) {
  auto d = torch::cdist(y, y);
  d.fill_diagonal_(std::numeric_limits<float>::infinity());
  auto nn = d.argmin(1);
  return labels.index_select(0, nn).eq(labels).to(torch::kDouble).mean().item<double>();
}

}  // namespace

TEST(Tsne, PerplexityCalibrationGivesTheAskedEntropy) {
  torch::manual_seed(0);
  auto x = torch::randn({150, 10}) * torch::rand({150, 1}) * 5;  // points at very different densities
  for (double perplexity : {5.0, 30.0}) {
    torch::Tensor betas;
    auto p = tsne_conditional_affinities(x, perplexity, &betas);
    ASSERT_EQ(p.sizes(), (std::vector<int64_t>{150, 150}));
    EXPECT_LT((p.sum(1) - 1).abs().max().item<double>(), 1e-9);
    EXPECT_EQ(p.diagonal().abs().max().item<double>(), 0.0);
    auto entropy = -(p * torch::log(p.clamp_min(1e-300))).sum(1);
    EXPECT_LT((entropy - std::log(perplexity)).abs().max().item<double>(), 1e-4) << perplexity;
    EXPECT_TRUE((betas > 0).all().item<bool>());
  }
  EXPECT_THROW(tsne_conditional_affinities(x, 200, nullptr), InputError);
  EXPECT_THROW(tsne_conditional_affinities(x, 0.5, nullptr), InputError);
}

TEST(Tsne, SeparatesGaussianClustersAndIsSeeded) {
  auto [x, labels] = clusters(5, 60, 20, 3);
  TsneOptions o;
  o.perplexity = 30;
  o.iterations = 500;
  o.seed = 4;
  auto r = tsne(x, o);
  ASSERT_EQ(r.embedding.sizes(), (std::vector<int64_t>{300, 2}));
  EXPECT_TRUE(r.embedding.isfinite().all().item<bool>());
  EXPECT_GT(one_nn_accuracy(r.embedding, labels), 0.95);
  // Clusters apart: every point is closer to its own cluster's centre than to any other centre.
  std::vector<torch::Tensor> centres;
  for (int64_t c = 0; c < 5; ++c) centres.push_back(r.embedding.index({labels == c}).mean(0));
  auto nearest = torch::cdist(r.embedding, torch::stack(centres)).argmin(1);
  EXPECT_GT(nearest.eq(labels).to(torch::kDouble).mean().item<double>(), 0.95);
  EXPECT_GT(r.kl, 0);
  EXPECT_LT(r.kl, 2.0);

  auto again = tsne(x, o);
  EXPECT_TRUE(again.embedding.equal(r.embedding));
  o.seed = 5;
  EXPECT_FALSE(tsne(x, o).embedding.equal(r.embedding));
}

TEST(Tsne, StratifiedSubsampleKeepsClassProportions) {
  auto labels = torch::cat(
      {torch::zeros({900}, torch::kLong), torch::ones({100}, torch::kLong), torch::full({5}, 2, torch::kLong)});
  auto idx = stratified_subsample(labels, 100, 1);
  EXPECT_LE(idx.size(0), 100);
  EXPECT_GE(idx.size(0), 98);
  auto picked = labels.index_select(0, idx);
  EXPECT_NEAR(picked.eq(0).sum().item<int64_t>(), 90, 2);
  EXPECT_NEAR(picked.eq(1).sum().item<int64_t>(), 10, 2);
  EXPECT_GE(picked.eq(2).sum().item<int64_t>(), 1);  // a small class is not dropped
  EXPECT_EQ(std::get<0>(torch::_unique(idx)).size(0), idx.size(0));
  EXPECT_TRUE(idx.equal(stratified_subsample(labels, 100, 1)));
  EXPECT_EQ(stratified_subsample(labels, 5000, 1).size(0), labels.size(0));
}
