// Exact t-SNE (van der Maaten & Hinton 2008) on torch tensors: O(N^2) memory and time, meant for a few thousand
// points (subsample larger sets). Deterministic for a seed.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace contrastive {

struct TsneOptions {
  double perplexity = 30;
  int64_t iterations = 1000;
  int64_t exaggeration_iterations = 250;  // early exaggeration phase (also the momentum switch)
  double exaggeration = 12;
  double learning_rate = 0;  // <= 0: max(200, N / 12)
  double momentum_start = 0.5, momentum_final = 0.8;
  double min_gain = 0.01;
  int64_t dims = 2;
  uint64_t seed = 0;
};

// Conditional affinities p(j|i) [N,N] (rows sum to 1, zero diagonal) of the rows of x [N,D]: per point, a binary
// search of the Gaussian precision such that the row's Shannon entropy is log(perplexity) (nats). `betas`, when
// given, receives the precisions 1/(2 sigma_i^2) [N]. Needs 1 <= perplexity < N.
torch::Tensor tsne_conditional_affinities(const torch::Tensor& x, double perplexity,
                                          torch::Tensor* betas = nullptr);

struct TsneResult {
  torch::Tensor embedding;  // float [N, dims]
  double kl = 0;            // KL(P || Q) at the end
};

// Embeds the rows of x [N,D] (any float dtype). Needs 1 <= perplexity < N - 1 and iterations >= 1, otherwise
// InputError.
TsneResult tsne(const torch::Tensor& x, const TsneOptions& options = {});

// At most `max_points` of n indices (int64, sorted), chosen per class in proportion to its size (at least one
// from each class that has any), seeded. All indices when n <= max_points.
torch::Tensor stratified_subsample(const torch::Tensor& labels, int64_t max_points, uint64_t seed);

}  // namespace contrastive
