#include "contrastive/tsne.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "contrastive/common.h"

namespace contrastive {

namespace {

// Squared Euclidean distances between the rows of x (double), clamped at 0 against rounding.
torch::Tensor squared_distances(const torch::Tensor& x) {
  auto sq = (x * x).sum(1);
  return (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * x.mm(x.t())).clamp_min(0);
}

}  // namespace

torch::Tensor tsne_conditional_affinities(const torch::Tensor& x_in, double perplexity, torch::Tensor* betas_out) {
  torch::NoGradGuard no_grad;
  const int64_t n = x_in.size(0);
  if (!(perplexity >= 1) || perplexity >= static_cast<double>(n - 1))
    throw InputError("t-SNE perplexity " + std::to_string(perplexity) + " must be in [1, " +
                     std::to_string(n - 1) + ") for " + std::to_string(n) + " points");
  auto x = x_in.to(torch::kCPU, torch::kDouble);
  auto d = squared_distances(x);
  auto off_diag = 1 - torch::eye(n, torch::kDouble);
  // Shifting each row by its smallest off-diagonal distance leaves p(j|i) and the entropy unchanged but keeps
  // exp() from underflowing to an all-zero row for far-away points.
  auto nearest = std::get<0>(d.clone().fill_diagonal_(std::numeric_limits<double>::infinity()).min(1));
  d = (d - nearest.unsqueeze(1)).mul(off_diag);
  const double target = std::log(perplexity);
  // Start each search at the scale of its row's distances; bisect on [lo, hi], doubling while hi is unbounded.
  auto beta = 1.0 / (d.sum(1) / (n - 1)).clamp_min(1e-12);
  auto lo = torch::zeros({n}, torch::kDouble);
  auto hi = torch::full({n}, std::numeric_limits<double>::infinity(), torch::kDouble);
  torch::Tensor p;
  for (int it = 0; it < 200; ++it) {
    p = torch::exp(-d * beta.unsqueeze(1)) * off_diag;
    auto sum = p.sum(1);
    auto entropy = torch::log(sum) + beta * (d * p).sum(1) / sum;
    auto diff = entropy - target;
    if (diff.abs().max().item<double>() < 1e-6) break;
    auto too_flat = diff > 0;  // entropy too high: sharpen (larger beta)
    lo = torch::where(too_flat, beta, lo);
    hi = torch::where(too_flat, hi, beta);
    beta = torch::where(hi.isinf(), beta * 2, (lo + hi) / 2);
  }
  p = p / p.sum(1, /*keepdim=*/true);
  if (betas_out) *betas_out = beta;
  return p;
}

TsneResult tsne(const torch::Tensor& x, const TsneOptions& o) {
  torch::NoGradGuard no_grad;
  const int64_t n = x.size(0);
  if (x.dim() != 2 || n < 4) throw InputError("t-SNE needs a [N, D] matrix with at least 4 points");
  if (o.iterations < 1) throw InputError("t-SNE iterations must be >= 1");
  auto cond = tsne_conditional_affinities(x, o.perplexity);
  // Symmetric joint affinities; each conditional row sums to 1, so this sums to 1.
  auto p = ((cond + cond.t()) / (2.0 * n)).clamp_min(1e-12);
  const double lr = o.learning_rate > 0 ? o.learning_rate : std::max(200.0, n / 12.0);

  // Small Gaussian start from the seed (std::mt19937_64 so the result does not depend on LibTorch's global RNG).
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<double> normal(0.0, 1e-4);
  auto y = torch::empty({n, o.dims}, torch::kDouble);
  auto* yp = y.data_ptr<double>();
  for (int64_t i = 0; i < n * o.dims; ++i) yp[i] = normal(rng);
  auto update = torch::zeros_like(y);
  auto gains = torch::ones_like(y);
  auto off_diag = 1 - torch::eye(n, torch::kDouble);
  torch::Tensor q;
  for (int64_t it = 0; it < o.iterations; ++it) {
    const bool early = it < o.exaggeration_iterations;
    const double exaggeration = early ? o.exaggeration : 1.0;
    const double momentum = early ? o.momentum_start : o.momentum_final;
    // Student-t kernel (1 + |yi - yj|^2)^-1 and its normalised form Q.
    auto num = (1.0 / (1.0 + squared_distances(y))) * off_diag;
    q = (num / num.sum()).clamp_min(1e-12);
    // dC/dy_i = 4 sum_j (p_ij - q_ij) num_ij (y_i - y_j)
    auto w = (exaggeration * p - q) * num;
    auto grad = 4.0 * (w.sum(1, /*keepdim=*/true) * y - w.mm(y));
    // Delta-bar-delta gains: grow where the gradient keeps pointing against the step, shrink where it flips.
    auto same_direction = (grad > 0) == (update > 0);
    gains = torch::where(same_direction, gains * 0.8, gains + 0.2).clamp_min(o.min_gain);
    update = momentum * update - lr * gains * grad;
    y = y + update;
    y = y - y.mean(0, /*keepdim=*/true);
  }
  TsneResult out;
  out.embedding = y.to(torch::kFloat);
  out.kl = (p * torch::log(p / q)).sum().item<double>();
  return out;
}

torch::Tensor stratified_subsample(const torch::Tensor& labels_in, int64_t max_points, uint64_t seed) {
  auto labels = labels_in.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t n = labels.size(0);
  if (max_points < 1) throw InputError("--max-points must be >= 1");
  if (n <= max_points) return torch::arange(n, torch::kLong);
  std::map<int64_t, std::vector<int64_t>> by_class;
  const auto* lp = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) by_class[lp[i]].push_back(i);
  std::mt19937_64 rng(seed);
  std::vector<int64_t> chosen;
  for (auto& [label, idx] : by_class) {
    std::shuffle(idx.begin(), idx.end(), rng);
    const auto take =
        std::max<int64_t>(1, static_cast<int64_t>(std::llround(static_cast<double>(idx.size()) * max_points / n)));
    chosen.insert(chosen.end(), idx.begin(), idx.begin() + std::min<int64_t>(take, idx.size()));
  }
  // Rounding can overshoot by a few; drop a seeded random few so the cap holds exactly.
  std::shuffle(chosen.begin(), chosen.end(), rng);
  if (static_cast<int64_t>(chosen.size()) > max_points) chosen.resize(max_points);
  std::sort(chosen.begin(), chosen.end());
  return torch::tensor(chosen, torch::kLong);
}

}  // namespace contrastive
