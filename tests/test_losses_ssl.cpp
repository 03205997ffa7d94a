// Tests for the §10 losses of include/contrastive/losses.h (VICReg, Barlow Twins, NNCLR, DINO): values against
// the formulas recomputed here with plain loops on small fixed inputs, autograd against central finite
// differences in double precision, invariants, the modules (options, buffers) and bad input.
// Parity with lightly is in test_peer_parity.cpp.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "contrastive/common.h"
#include "contrastive/losses.h"
#include "test_grad.h"

using namespace contrastive;
namespace CF = contrastive::functional;

using test_util::analytic_grad;
using test_util::expect_close;
using test_util::numeric_grad;

namespace {

using Matrix = std::vector<std::vector<double>>;

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

torch::Tensor from_rows(const Matrix& m) {
  std::vector<double> flat;
  for (const auto& row : m) flat.insert(flat.end(), row.begin(), row.end());
  return torch::tensor(flat, kF64).reshape({static_cast<int64_t>(m.size()), static_cast<int64_t>(m[0].size())});
}

Matrix to_rows(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kFloat64).contiguous();
  Matrix m(c.size(0), std::vector<double>(c.size(1)));
  for (int64_t i = 0; i < c.size(0); ++i)
    for (int64_t j = 0; j < c.size(1); ++j) m[i][j] = c[i][j].item<double>();
  return m;
}

void expect_fd_gradient(const std::function<torch::Tensor(const torch::Tensor&)>& f, const torch::Tensor& x,
                        const std::string& what) {
  expect_close(analytic_grad(f, x), numeric_grad(f, x), 1e-6, 1e-8, what);
}

// Two fixed 4x3 embeddings: dimension 0 has a batch std below 1, dimension 2 above 1 (VICReg's hinge is active
// on some dimensions only), all dimensions correlated.
const Matrix kZ1 = {{0.5, -1.0, 2.0}, {0.1, 0.3, -1.5}, {-0.4, 0.8, 0.7}, {0.2, -0.6, -2.2}};
const Matrix kZ2 = {{0.3, -0.7, 1.1}, {0.0, 0.9, -0.8}, {-0.6, 0.2, 0.4}, {0.5, -0.1, -1.9}};

// Columns of a 4x4 Hadamard matrix without the constant one: zero mean, pairwise orthogonal, biased variance 1.
const Matrix kDecorrelated = {{1, 1, 1}, {-1, 1, -1}, {1, -1, -1}, {-1, -1, 1}};

std::vector<double> column_means(const Matrix& x) {
  std::vector<double> m(x[0].size(), 0.0);
  for (const auto& row : x)
    for (size_t j = 0; j < row.size(); ++j) m[j] += row[j] / static_cast<double>(x.size());
  return m;
}

std::vector<double> column_vars(const Matrix& x, bool unbiased) {
  const auto m = column_means(x);
  std::vector<double> v(m.size(), 0.0);
  for (const auto& row : x)
    for (size_t j = 0; j < row.size(); ++j) v[j] += (row[j] - m[j]) * (row[j] - m[j]);
  const double denom = static_cast<double>(x.size()) - (unbiased ? 1.0 : 0.0);
  for (auto& e : v) e /= denom;
  return v;
}

// ---- VICReg by hand ----

double hand_variance(const Matrix& x, double gamma, double eps) {
  const auto v = column_vars(x, /*unbiased=*/true);
  double acc = 0;
  for (double e : v) acc += std::max(0.0, gamma - std::sqrt(e + eps));
  return acc / static_cast<double>(v.size());
}

double hand_covariance(const Matrix& x) {
  const auto m = column_means(x);
  const size_t n = x.size(), d = m.size();
  double acc = 0;
  for (size_t j = 0; j < d; ++j)
    for (size_t k = 0; k < d; ++k) {
      if (j == k) continue;
      double c = 0;
      for (size_t i = 0; i < n; ++i) c += (x[i][j] - m[j]) * (x[i][k] - m[k]);
      c /= static_cast<double>(n - 1);
      acc += c * c;
    }
  return acc / static_cast<double>(d);
}

double hand_invariance(const Matrix& a, const Matrix& b) {
  double acc = 0;
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < a[i].size(); ++j) acc += (a[i][j] - b[i][j]) * (a[i][j] - b[i][j]);
  return acc / static_cast<double>(a.size() * a[0].size());
}

// ---- Barlow Twins by hand ----

double hand_barlow(const Matrix& a, const Matrix& b, double lambda, double eps, bool unbiased) {
  const size_t n = a.size(), d = a[0].size();
  auto standardise = [&](const Matrix& x) {
    const auto m = column_means(x);
    const auto v = column_vars(x, unbiased);
    Matrix out = x;
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < d; ++j) out[i][j] = (x[i][j] - m[j]) / std::sqrt(v[j] + eps);
    return out;
  };
  const Matrix sa = standardise(a), sb = standardise(b);
  double loss = 0;
  for (size_t j = 0; j < d; ++j)
    for (size_t k = 0; k < d; ++k) {
      double c = 0;
      for (size_t i = 0; i < n; ++i) c += sa[i][j] * sb[i][k];
      c /= static_cast<double>(n);
      loss += j == k ? (1 - c) * (1 - c) : lambda * c * c;
    }
  return loss;
}

// ---- NNCLR by hand ----

std::vector<double> unit(const std::vector<double>& v) {
  double s = 0;
  for (double e : v) s += e * e;
  std::vector<double> out = v;
  for (auto& e : out) e /= std::sqrt(s);
  return out;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

Matrix hand_nearest(const Matrix& z, const Matrix& support) {
  Matrix out;
  for (const auto& row : z) {
    const auto q = unit(row);
    size_t best = 0;
    double best_sim = -2;
    for (size_t m = 0; m < support.size(); ++m) {
      const double s = dot(q, unit(support[m]));
      if (s > best_sim) best_sim = s, best = m;
    }
    out.push_back(unit(support[best]));
  }
  return out;
}

double hand_info_nce(const Matrix& a, const Matrix& b, double t) {
  const size_t n = a.size();
  double loss = 0;
  for (size_t i = 0; i < n; ++i) {
    const auto ai = unit(a[i]);
    double denom = 0;
    for (size_t k = 0; k < n; ++k) denom += std::exp(dot(ai, unit(b[k])) / t);
    loss += -(dot(ai, unit(b[i])) / t - std::log(denom));
  }
  return loss / static_cast<double>(n);
}

// ---- DINO by hand ----

std::vector<double> softmax_row(const std::vector<double>& x) {
  const double mx = *std::max_element(x.begin(), x.end());
  std::vector<double> e(x.size());
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += (e[i] = std::exp(x[i] - mx));
  for (auto& v : e) v /= s;
  return e;
}

double hand_dino(const std::vector<Matrix>& teacher, const std::vector<Matrix>& student,
                 const std::vector<double>& center, double tt, double ts) {
  double total = 0;
  int pairs = 0;
  for (size_t t = 0; t < teacher.size(); ++t)
    for (size_t s = 0; s < student.size(); ++s) {
      if (s == t) continue;
      double batch = 0;
      for (size_t b = 0; b < teacher[t].size(); ++b) {
        std::vector<double> tl(center.size()), sl(center.size());
        for (size_t k = 0; k < center.size(); ++k) {
          tl[k] = (teacher[t][b][k] - center[k]) / tt;
          sl[k] = student[s][b][k] / ts;
        }
        const auto p = softmax_row(tl);
        const auto q = softmax_row(sl);
        for (size_t k = 0; k < center.size(); ++k) batch += -p[k] * std::log(q[k]);
      }
      total += batch / static_cast<double>(teacher[t].size());
      ++pairs;
    }
  return total / pairs;
}

std::vector<torch::Tensor> randn_crops(int n, int64_t b, int64_t k, double scale = 1.0) {
  std::vector<torch::Tensor> out;
  for (int i = 0; i < n; ++i) out.push_back(torch::randn({b, k}, kF64) * scale);
  return out;
}

std::vector<Matrix> to_rows(const std::vector<torch::Tensor>& crops) {
  std::vector<Matrix> out;
  for (const auto& c : crops) out.push_back(to_rows(c));
  return out;
}

}  // namespace

// ------------------------------------------------------------------------------------------------------------
// VICReg

TEST(SSLLosses, VICRegTermsMatchTheFormulaOnAFixedInput) {
  const auto z1 = from_rows(kZ1), z2 = from_rows(kZ2);
  const auto opts = VICRegLossOptions();
  const auto t = CF::vicreg_terms(z1, z2, opts);
  const double inv = hand_invariance(kZ1, kZ2);
  const double var = 0.5 * (hand_variance(kZ1, 1.0, 1e-4) + hand_variance(kZ2, 1.0, 1e-4));
  const double cov = hand_covariance(kZ1) + hand_covariance(kZ2);
  EXPECT_NEAR(t.invariance.item<double>(), inv, 1e-12);
  EXPECT_NEAR(t.variance.item<double>(), var, 1e-12);
  EXPECT_NEAR(t.covariance.item<double>(), cov, 1e-12);
  // The hinge is active on some dimensions, not all (so the test covers both sides of the relu).
  EXPECT_GT(var, 0.0);
  EXPECT_LT(var, 0.5 * 2 * 1.0);
  EXPECT_NEAR(CF::vicreg_loss(z1, z2).item<double>(), 25 * inv + 25 * var + 1 * cov, 1e-10);
  // Other weights, γ and ε.
  auto other = VICRegLossOptions().sim_weight(2).var_weight(3).cov_weight(0.5).gamma(1.5).eps(1e-2);
  const double var2 = 0.5 * (hand_variance(kZ1, 1.5, 1e-2) + hand_variance(kZ2, 1.5, 1e-2));
  EXPECT_NEAR(CF::vicreg_loss(z1, z2, other).item<double>(), 2 * inv + 3 * var2 + 0.5 * cov, 1e-10);
  // The module: defaults, the same value, float32 in float32.
  VICRegLoss module;
  EXPECT_DOUBLE_EQ(module->options.sim_weight(), 25.0);
  EXPECT_DOUBLE_EQ(module->options.var_weight(), 25.0);
  EXPECT_DOUBLE_EQ(module->options.cov_weight(), 1.0);
  EXPECT_DOUBLE_EQ(module->options.gamma(), 1.0);
  EXPECT_DOUBLE_EQ(module->options.eps(), 1e-4);
  EXPECT_DOUBLE_EQ(module(z1, z2).item<double>(), CF::vicreg_loss(z1, z2).item<double>());
  auto f32 = module(z1.to(torch::kFloat32), z2.to(torch::kFloat32));
  EXPECT_EQ(f32.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(f32.item<double>(), CF::vicreg_loss(z1, z2).item<double>(), 1e-5 * f32.item<double>());
  std::ostringstream printed;
  printed << *module;
  EXPECT_NE(printed.str().find("VICRegLoss(sim_weight=25"), std::string::npos) << printed.str();
}

TEST(SSLLosses, VICRegFiniteDifferenceGradient) {
  torch::manual_seed(101);
  // Scale 0.3: every batch std well below γ = 1 (the hinge active, away from its kink); scale 3: mostly inactive.
  for (double scale : {0.3, 3.0}) {
    auto z1 = torch::randn({6, 4}, kF64) * scale, z2 = torch::randn({6, 4}, kF64) * scale;
    expect_fd_gradient([&](const torch::Tensor& x) { return CF::vicreg_loss(x, z2); }, z1, "vicreg d/dz1");
    expect_fd_gradient([&](const torch::Tensor& x) { return CF::vicreg_loss(z1, x); }, z2, "vicreg d/dz2");
  }
}

TEST(SSLLosses, VICRegIsZeroForIdenticalDecorrelatedViewsWithUnitSpread) {
  // Orthogonal zero-mean columns: the covariance term vanishes; unbiased std sqrt(4/3) > γ: the variance term
  // too; identical views: the invariance term too.
  const auto z = from_rows(kDecorrelated);
  const auto t = CF::vicreg_terms(z, z);
  EXPECT_NEAR(t.covariance.item<double>(), 0.0, 1e-15);
  EXPECT_EQ(t.variance.item<double>(), 0.0);
  EXPECT_EQ(t.invariance.item<double>(), 0.0);
  // Shifting a view by a constant changes neither its variance nor its covariance term.
  const auto shifted = CF::vicreg_terms(z, z + 5.0);
  EXPECT_NEAR(shifted.covariance.item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(shifted.invariance.item<double>(), 25.0, 1e-12);
  // A collapsed batch (every row the same) pays the full hinge γ - sqrt(ε) on every dimension.
  const auto collapsed = torch::ones({5, 3}, kF64);
  EXPECT_NEAR(CF::vicreg_terms(collapsed, collapsed).variance.item<double>(), 1.0 - std::sqrt(1e-4), 1e-12);
  // Correlated columns: positive covariance term.
  EXPECT_GT(CF::vicreg_terms(from_rows(kZ1), from_rows(kZ2)).covariance.item<double>(), 0.0);
}

TEST(SSLLosses, VICRegBadInput) {
  auto z = torch::randn({4, 3});
  EXPECT_THROW(CF::vicreg_loss(z, torch::randn({4, 2})), InputError);
  EXPECT_THROW(CF::vicreg_loss(z.view({-1}), z.view({-1})), InputError);
  EXPECT_THROW(CF::vicreg_loss(z.narrow(0, 0, 1), z.narrow(0, 0, 1)), InputError);  // N = 1
  EXPECT_THROW(CF::vicreg_loss(z, torch::Tensor()), InputError);
  EXPECT_THROW(CF::vicreg_loss(z, z, VICRegLossOptions().eps(-1)), InputError);
  EXPECT_THROW(CF::vicreg_loss(z, z, VICRegLossOptions().sim_weight(std::nan(""))), InputError);
}

// ------------------------------------------------------------------------------------------------------------
// Barlow Twins

TEST(SSLLosses, BarlowTwinsMatchesTheFormulaOnAFixedInput) {
  const auto z1 = from_rows(kZ1), z2 = from_rows(kZ2);
  EXPECT_NEAR(CF::barlow_twins_loss(z1, z2).item<double>(), hand_barlow(kZ1, kZ2, 0.0051, 1e-5, false), 1e-12);
  auto opts = BarlowTwinsLossOptions().lambda(0.5).eps(1e-3);
  EXPECT_NEAR(CF::barlow_twins_loss(z1, z2, opts).item<double>(), hand_barlow(kZ1, kZ2, 0.5, 1e-3, false), 1e-12);
  // The torch.std form (older lightly releases): unbiased variance, no eps.
  auto old = BarlowTwinsLossOptions().lambda(5e-3).eps(0).unbiased_std(true);
  EXPECT_NEAR(CF::barlow_twins_loss(z1, z2, old).item<double>(), hand_barlow(kZ1, kZ2, 5e-3, 0.0, true), 1e-12);
  // The module and its defaults.
  BarlowTwinsLoss module;
  EXPECT_DOUBLE_EQ(module->options.lambda(), 0.0051);
  EXPECT_DOUBLE_EQ(module->options.eps(), 1e-5);
  EXPECT_FALSE(module->options.unbiased_std());
  EXPECT_DOUBLE_EQ(module(z1, z2).item<double>(), CF::barlow_twins_loss(z1, z2).item<double>());
  std::ostringstream printed;
  printed << *module;
  EXPECT_NE(printed.str().find("BarlowTwinsLoss(lambda=0.0051"), std::string::npos) << printed.str();
}

TEST(SSLLosses, BarlowTwinsFiniteDifferenceGradient) {
  torch::manual_seed(102);
  auto z1 = torch::randn({6, 4}, kF64), z2 = torch::randn({6, 4}, kF64) * 2 + 1;
  for (const auto& opts :
       {BarlowTwinsLossOptions().lambda(0.3), BarlowTwinsLossOptions().unbiased_std(true).eps(0)}) {
    expect_fd_gradient([&](const torch::Tensor& x) { return CF::barlow_twins_loss(x, z2, opts); }, z1,
                       "barlow d/dz1");
    expect_fd_gradient([&](const torch::Tensor& x) { return CF::barlow_twins_loss(z1, x, opts); }, z2,
                       "barlow d/dz2");
  }
}

TEST(SSLLosses, BarlowTwinsInvariants) {
  // Identical views with orthogonal standardised dimensions: C = I, loss 0 (eps 0 makes it exact).
  const auto z = from_rows(kDecorrelated);
  const auto exact = BarlowTwinsLossOptions().eps(0);
  EXPECT_NEAR(CF::barlow_twins_loss(z, z, exact).item<double>(), 0.0, 1e-24);
  // With the default eps 1e-5: C = I / (1 + eps), loss 3·(eps / (1 + eps))².
  EXPECT_NEAR(CF::barlow_twins_loss(z, z).item<double>(), 3 * std::pow(1e-5 / (1 + 1e-5), 2), 1e-18);
  // Standardisation removes a per-dimension positive scale and shift of either view (exactly so with eps 0).
  torch::manual_seed(103);
  auto a = torch::randn({8, 5}, kF64), b = torch::randn({8, 5}, kF64);
  auto scale = torch::rand({1, 5}, kF64) * 3 + 0.2, shift = torch::randn({1, 5}, kF64) * 4;
  EXPECT_NEAR(CF::barlow_twins_loss(a * scale + shift, b, exact).item<double>(),
              CF::barlow_twins_loss(a, b, exact).item<double>(), 1e-10);
  // Swapping the views transposes C: the same loss.
  EXPECT_NEAR(CF::barlow_twins_loss(b, a).item<double>(), CF::barlow_twins_loss(a, b).item<double>(), 1e-12);
  // torch.std vs BatchNorm standardisation (eps 0): C scales by (N-1)/N, a different loss.
  EXPECT_GT(
      std::abs(CF::barlow_twins_loss(a, b, exact).item<double>() -
               CF::barlow_twins_loss(a, b, BarlowTwinsLossOptions().eps(0).unbiased_std(true)).item<double>()),
      1e-3);
}

TEST(SSLLosses, BarlowTwinsBadInput) {
  auto z = torch::randn({4, 3});
  EXPECT_THROW(CF::barlow_twins_loss(z, torch::randn({5, 3})), InputError);
  EXPECT_THROW(CF::barlow_twins_loss(z.narrow(0, 0, 1), z.narrow(0, 0, 1)), InputError);
  EXPECT_THROW(CF::barlow_twins_loss(z, z, BarlowTwinsLossOptions().lambda(-1)), InputError);
  EXPECT_THROW(CF::barlow_twins_loss(z, z, BarlowTwinsLossOptions().eps(-1e-5)), InputError);
  EXPECT_THROW(CF::barlow_twins_loss(torch::randint(0, 3, {4, 3}, torch::kLong),
                                     torch::randint(0, 3, {4, 3}, torch::kLong)),
               InputError);
}

// ------------------------------------------------------------------------------------------------------------
// NNCLR

TEST(SSLLosses, NNCLRNearestNeighboursMatchBruteForceAndFindThemselves) {
  torch::manual_seed(104);
  auto z = torch::randn({5, 4}, kF64);
  auto support = torch::randn({9, 4}, kF64) * 3;
  expect_close(CF::nearest_neighbours(z, support), from_rows(hand_nearest(to_rows(z), to_rows(support))), 1e-12, 0,
               "nearest neighbours");
  // A support set that contains z (rescaled and shuffled among other rows): each row's neighbour is itself.
  auto with_self = torch::cat({support, z * 2.5}, 0);
  with_self = with_self.index_select(0, torch::randperm(with_self.size(0), torch::kLong));
  auto nn = CF::nearest_neighbours(z, with_self);
  expect_close(nn, torch::nn::functional::normalize(z, torch::nn::functional::NormalizeFuncOptions().dim(1)),
               1e-12, 1e-15, "NN(z) = z");
  // Detached: no gradient to z or the support.
  auto zl = z.clone().requires_grad_(true), sl = support.clone().requires_grad_(true);
  EXPECT_FALSE(CF::nearest_neighbours(zl, sl).requires_grad());
  // A float32 support for double queries: computed (and returned) in double.
  EXPECT_EQ(CF::nearest_neighbours(z, support.to(torch::kFloat32)).scalar_type(), torch::kFloat64);
}

TEST(SSLLosses, NNCLRLossMatchesTheFormulaOnAFixedInput) {
  const Matrix p1 = {{1.0, 0.2, -0.3}, {0.4, -1.1, 0.5}, {-0.7, 0.3, 0.9}, {0.1, 0.8, -0.6}};
  const Matrix p2 = {{0.6, -0.2, 0.1}, {-0.3, 0.9, 0.4}, {0.8, 0.5, -1.0}, {-0.2, -0.4, 0.7}};
  const Matrix support = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {-1, -1, 0}, {0.5, 0.5, 0.5}};
  const double t = 0.1;
  // InfoNCE alone, with a ≠ b.
  EXPECT_NEAR(CF::nnclr_info_nce(from_rows(kZ1), from_rows(p2), t).item<double>(), hand_info_nce(kZ1, p2, t),
              1e-10);
  // The full loss: ½[InfoNCE(NN(z1), p2) + InfoNCE(NN(z2), p1)].
  const double expected =
      0.5 * (hand_info_nce(hand_nearest(kZ1, support), p2, t) + hand_info_nce(hand_nearest(kZ2, support), p1, t));
  auto loss = CF::nnclr_loss(from_rows(kZ1), from_rows(kZ2), from_rows(p1), from_rows(p2), from_rows(support));
  EXPECT_NEAR(loss.item<double>(), expected, 1e-10);
  NNCLRLoss module;
  EXPECT_DOUBLE_EQ(module->options.temperature(), 0.1);
  EXPECT_DOUBLE_EQ(
      module(from_rows(kZ1), from_rows(kZ2), from_rows(p1), from_rows(p2), from_rows(support)).item<double>(),
      loss.item<double>());
  // Another temperature.
  const double t2 = 0.5;
  EXPECT_NEAR(CF::nnclr_loss(from_rows(kZ1), from_rows(kZ2), from_rows(p1), from_rows(p2), from_rows(support),
                             NNCLRLossOptions().temperature(t2))
                  .item<double>(),
              0.5 * (hand_info_nce(hand_nearest(kZ1, support), p2, t2) +
                     hand_info_nce(hand_nearest(kZ2, support), p1, t2)),
              1e-10);
}

TEST(SSLLosses, NNCLRFiniteDifferenceGradientOnlyIntoThePredictions) {
  torch::manual_seed(105);
  auto z1 = torch::randn({5, 4}, kF64), z2 = torch::randn({5, 4}, kF64);
  auto p1 = torch::randn({5, 4}, kF64), p2 = torch::randn({5, 4}, kF64);
  auto support = torch::randn({12, 4}, kF64);
  const auto opts = NNCLRLossOptions().temperature(0.3);
  expect_fd_gradient([&](const torch::Tensor& x) { return CF::nnclr_loss(z1, z2, x, p2, support, opts); }, p1,
                     "nnclr d/dp1");
  expect_fd_gradient([&](const torch::Tensor& x) { return CF::nnclr_loss(z1, z2, p1, x, support, opts); }, p2,
                     "nnclr d/dp2");
  // InfoNCE itself is differentiable in both arguments.
  expect_fd_gradient([&](const torch::Tensor& x) { return CF::nnclr_info_nce(x, p2, 0.3); }, z1, "info_nce d/da");
  // The neighbours are targets: z1, z2 and the support get no gradient.
  auto z1l = z1.clone().requires_grad_(true), z2l = z2.clone().requires_grad_(true);
  auto sl = support.clone().requires_grad_(true), p1l = p1.clone().requires_grad_(true);
  CF::nnclr_loss(z1l, z2l, p1l, p2, sl, opts).backward();
  EXPECT_FALSE(z1l.grad().defined());
  EXPECT_FALSE(z2l.grad().defined());
  EXPECT_FALSE(sl.grad().defined());
  ASSERT_TRUE(p1l.grad().defined());
}

TEST(SSLLosses, NNCLRInvariants) {
  torch::manual_seed(106);
  auto z = torch::randn({6, 8}, kF64), p = torch::randn({6, 8}, kF64);
  // Scale-free in both arguments (both are normalised), and ≥ 0 with value log B for identical rows of b.
  EXPECT_NEAR(CF::nnclr_info_nce(z * 3, p * 0.2).item<double>(), CF::nnclr_info_nce(z, p).item<double>(), 1e-12);
  auto same = torch::randn({1, 8}, kF64).expand({6, 8}).contiguous();
  EXPECT_NEAR(CF::nnclr_info_nce(z, same).item<double>(), std::log(6.0), 1e-12);
  // Permuting the batch (z, p together) leaves the loss unchanged.
  auto perm = torch::randperm(6, torch::kLong);
  EXPECT_NEAR(CF::nnclr_info_nce(z.index_select(0, perm), p.index_select(0, perm)).item<double>(),
              CF::nnclr_info_nce(z, p).item<double>(), 1e-12);
  // With z1 (resp. z2) in the support set the neighbours are the views themselves.
  auto z1 = torch::randn({6, 8}, kF64), z2 = torch::randn({6, 8}, kF64);
  auto p1 = torch::randn({6, 8}, kF64), p2 = torch::randn({6, 8}, kF64);
  auto support = torch::cat({z1, z2, torch::randn({20, 8}, kF64)}, 0);
  EXPECT_NEAR(CF::nnclr_loss(z1, z2, p1, p2, support).item<double>(),
              0.5 * (CF::nnclr_info_nce(z1, p2, 0.1) + CF::nnclr_info_nce(z2, p1, 0.1)).item<double>(), 1e-10);
}

TEST(SSLLosses, NNCLRBadInput) {
  auto z = torch::randn({4, 3});
  EXPECT_THROW(CF::nearest_neighbours(z, torch::randn({5, 2})), InputError);
  EXPECT_THROW(CF::nearest_neighbours(z, torch::randn({0, 3})), InputError);
  EXPECT_THROW(CF::nearest_neighbours(z, torch::randn({3})), InputError);
  EXPECT_THROW(CF::nnclr_info_nce(z, torch::randn({5, 3})), InputError);
  EXPECT_THROW(CF::nnclr_info_nce(z, z, 0.0), InputError);
  EXPECT_THROW(CF::nnclr_loss(z, z, z, torch::randn({4, 2}), torch::randn({8, 3})), InputError);
  EXPECT_THROW(CF::nnclr_loss(z, z, z, z, torch::randn({8, 3}), NNCLRLossOptions().temperature(-1)), InputError);
}

// ------------------------------------------------------------------------------------------------------------
// DINO

TEST(SSLLosses, DINOLossMatchesTheFormulaOnASmallInput) {
  torch::manual_seed(107);
  // 2 global crops (teacher and student) + 2 local crops (student only), B = 3, K = 5.
  auto teacher = randn_crops(2, 3, 5), student = randn_crops(4, 3, 5);
  auto center = torch::randn({1, 5}, kF64) * 0.3;
  const double tt = 0.04, ts = 0.1;
  std::vector<double> c(5);
  for (int k = 0; k < 5; ++k) c[k] = center[0][k].item<double>();
  const double expected = hand_dino(to_rows(teacher), to_rows(student), c, tt, ts);
  EXPECT_NEAR(CF::dino_loss(teacher, student, center, tt, ts).item<double>(), expected, 1e-10);
  // A [K] centre works the same.
  EXPECT_NEAR(CF::dino_loss(teacher, student, center.view({5}), tt, ts).item<double>(), expected, 1e-10);
  // Only global crops (S = T = 2): the two cross pairs.
  std::vector<torch::Tensor> globals(student.begin(), student.begin() + 2);
  EXPECT_NEAR(CF::dino_loss(teacher, globals, center, 0.07, 0.2).item<double>(),
              hand_dino(to_rows(teacher), to_rows(globals), c, 0.07, 0.2), 1e-10);
  // One teacher crop against three student crops.
  std::vector<torch::Tensor> one(teacher.begin(), teacher.begin() + 1);
  EXPECT_NEAR(CF::dino_loss(one, student, center, tt, ts).item<double>(),
              hand_dino(to_rows(one), to_rows(student), c, tt, ts), 1e-10);
}

TEST(SSLLosses, DINOFiniteDifferenceGradientAndNoGradientToTheTeacher) {
  torch::manual_seed(108);
  auto teacher = randn_crops(2, 3, 4), student = randn_crops(3, 3, 4);
  auto center = torch::randn({1, 4}, kF64) * 0.1;
  for (size_t i = 0; i < student.size(); ++i) {
    auto f = [&](const torch::Tensor& x) {
      auto crops = student;
      crops[i] = x;
      return CF::dino_loss(teacher, crops, center, 0.2, 0.3);
    };
    expect_fd_gradient(f, student[i], "dino d/dstudent[" + std::to_string(i) + "]");
  }
  auto t0 = teacher[0].clone().requires_grad_(true);
  auto cl = center.clone().requires_grad_(true);
  auto s0 = student[0].clone().requires_grad_(true);
  auto loss = CF::dino_loss({t0, teacher[1]}, {s0, student[1], student[2]}, cl, 0.04, 0.1);
  loss.backward();
  EXPECT_FALSE(t0.grad().defined());
  EXPECT_FALSE(cl.grad().defined());
  EXPECT_TRUE(s0.grad().defined());
}

TEST(SSLLosses, DINOLossIsAtLeastTheTeacherEntropyWithEqualityAtAgreement) {
  torch::manual_seed(109);
  const double tt = 0.05, ts = 0.1;
  auto t = torch::randn({4, 6}, kF64);
  auto center = torch::randn({1, 6}, kF64) * 0.2;
  // Mean entropy of the teacher distribution over the batch.
  auto p = torch::softmax((t - center) / tt, 1);
  const double entropy = -(p * torch::log(p)).sum(1).mean().item<double>();
  // Cross-entropy ≥ entropy for any student.
  for (int trial = 0; trial < 5; ++trial) {
    auto student = randn_crops(3, 4, 6, 2.0);
    EXPECT_GE(CF::dino_loss({t, t}, student, center, tt, ts).item<double>(), entropy - 1e-12);
  }
  // A student whose tempered logits equal the centred, tempered teacher's: the bound is attained.
  auto matched = (t - center) * (ts / tt) + 3.0;  // a constant shift does not change the log-softmax
  EXPECT_NEAR(CF::dino_loss({t, t}, {matched, matched, matched}, center, tt, ts).item<double>(), entropy, 1e-10);
}

TEST(SSLLosses, DINOTeacherTemperatureWarmsUpLinearly) {
  auto opts = DINOLossOptions(16);
  EXPECT_EQ(opts.warmup_teacher_temp_epochs(), 0);
  EXPECT_DOUBLE_EQ(CF::dino_teacher_temperature(0, opts), 0.04);  // no warm-up: the teacher temperature
  opts.teacher_temp(0.07).warmup_teacher_temp(0.04).warmup_teacher_temp_epochs(10);
  EXPECT_DOUBLE_EQ(CF::dino_teacher_temperature(0, opts), 0.04);
  EXPECT_NEAR(CF::dino_teacher_temperature(3, opts), 0.05, 1e-15);  // 0.04 + 0.03·3/9
  EXPECT_NEAR(CF::dino_teacher_temperature(9, opts), 0.07, 1e-15);  // linspace includes the end at W - 1
  EXPECT_DOUBLE_EQ(CF::dino_teacher_temperature(10, opts), 0.07);
  EXPECT_DOUBLE_EQ(CF::dino_teacher_temperature(500, opts), 0.07);
  opts.warmup_teacher_temp_epochs(1);
  EXPECT_DOUBLE_EQ(CF::dino_teacher_temperature(0, opts), 0.04);
  EXPECT_DOUBLE_EQ(CF::dino_teacher_temperature(1, opts), 0.07);
  EXPECT_THROW(CF::dino_teacher_temperature(-1, opts), InputError);
}

TEST(SSLLosses, DINOModuleUsesThenUpdatesItsCentreBuffer) {
  torch::manual_seed(110);
  const int64_t k = 6;
  DINOLoss module(DINOLossOptions(k).teacher_temp(0.07).warmup_teacher_temp(0.04).warmup_teacher_temp_epochs(4));
  EXPECT_DOUBLE_EQ(module->options.student_temp(), 0.1);
  EXPECT_DOUBLE_EQ(module->options.center_momentum(), 0.9);
  // The buffer: registered as "center", zeros [1, K].
  auto buffers = module->named_buffers();
  ASSERT_TRUE(buffers.contains("center"));
  EXPECT_TRUE(buffers["center"].is_same(module->center));
  EXPECT_EQ(module->center.sizes(), (std::vector<int64_t>{1, k}));
  EXPECT_EQ(module->center.abs().sum().item<double>(), 0.0);
  module->to(torch::kFloat64);
  EXPECT_EQ(module->center.scalar_type(), torch::kFloat64);
  EXPECT_TRUE(module->named_buffers()["center"].is_same(module->center));

  auto teacher = randn_crops(2, 5, k), student = randn_crops(3, 5, k);
  // First call: loss with the zero centre at τ_t(epoch 2) = 0.06, then c = 0.1·batch mean.
  auto zero = torch::zeros({1, k}, kF64);
  const double t2 = CF::dino_teacher_temperature(2, module->options);
  EXPECT_NEAR(t2, 0.06, 1e-15);
  EXPECT_NEAR(module(teacher, student, 2).item<double>(),
              CF::dino_loss(teacher, student, zero, t2, 0.1).item<double>(), 1e-12);
  auto mean = torch::cat(teacher, 0).mean(0, true);
  expect_close(CF::dino_batch_center(teacher), mean, 1e-14, 0, "batch centre");
  expect_close(module->center, 0.1 * mean, 1e-14, 0, "centre after one step");
  // Second call (default epoch 0: τ_t = 0.04): uses the updated centre, then c = 0.9·c + 0.1·mean.
  const auto c1 = module->center.clone();
  auto teacher2 = randn_crops(2, 5, k);
  EXPECT_NEAR(module(teacher2, student).item<double>(),
              CF::dino_loss(teacher2, student, c1, 0.04, 0.1).item<double>(), 1e-12);
  expect_close(module->center, 0.9 * c1 + 0.1 * torch::cat(teacher2, 0).mean(0, true), 1e-14, 0,
               "centre after two steps");
  // The centre update has no gradient, even from teacher outputs that carry one.
  auto tg = teacher2[0].clone().requires_grad_(true);
  module->update_center({tg, teacher2[1]});
  EXPECT_FALSE(module->center.requires_grad());

  // A reducer (e.g. the mean over ranks) is applied to the batch centre before the EMA.
  DINOLoss reduced(DINOLossOptions(k).center_momentum(0.5));
  reduced->to(torch::kFloat64);
  int calls = 0;
  reduced->center_reducer = [&calls](const torch::Tensor& c) {
    ++calls;
    return c * 2;
  };
  reduced->update_center(teacher);
  EXPECT_EQ(calls, 1);
  expect_close(reduced->center, 0.5 * 2 * mean, 1e-14, 0, "reduced centre");

  // clone() copies the centre into an independent buffer.
  auto copy = std::dynamic_pointer_cast<DINOLossImpl>(reduced->clone());
  ASSERT_TRUE(copy);
  expect_close(copy->center, reduced->center, 0, 0, "cloned centre");
  EXPECT_TRUE(copy->named_buffers()["center"].is_same(copy->center));
  copy->center.zero_();
  EXPECT_GT(reduced->center.abs().sum().item<double>(), 0.0);
  std::ostringstream printed;
  printed << *module;
  EXPECT_NE(printed.str().find("DINOLoss(out_dim=6"), std::string::npos) << printed.str();
}

TEST(SSLLosses, DINOBadInput) {
  torch::manual_seed(111);
  auto teacher = randn_crops(2, 3, 4), student = randn_crops(3, 3, 4);
  auto c = torch::zeros({1, 4}, kF64);
  EXPECT_THROW(CF::dino_loss({}, student, c, 0.04, 0.1), InputError);
  EXPECT_THROW(CF::dino_loss(teacher, {student[0]}, c, 0.04, 0.1), InputError);       // fewer student than teacher
  EXPECT_THROW(CF::dino_loss({teacher[0]}, {student[0]}, c, 0.04, 0.1), InputError);  // no pair
  EXPECT_THROW(CF::dino_loss(teacher, {student[0], student[1], torch::randn({3, 5}, kF64)}, c, 0.04, 0.1),
               InputError);
  EXPECT_THROW(CF::dino_loss(teacher, student, torch::zeros({2, 4}, kF64), 0.04, 0.1), InputError);
  EXPECT_THROW(CF::dino_loss(teacher, student, torch::Tensor(), 0.04, 0.1), InputError);
  EXPECT_THROW(CF::dino_loss(teacher, student, c, 0.0, 0.1), InputError);
  EXPECT_THROW(CF::dino_loss(teacher, student, c, 0.04, -0.1), InputError);
  EXPECT_THROW(DINOLoss(DINOLossOptions(0)), InputError);
  EXPECT_THROW(DINOLoss(DINOLossOptions(4).center_momentum(1.5)), InputError);
  DINOLoss module(DINOLossOptions(5));
  EXPECT_THROW(module->update_center(teacher), InputError);  // K = 4 logits for out_dim 5
}

// ------------------------------------------------------------------------------------------------------------
// Precision: bf16 inputs are computed and returned in float32, close to the float32 result.

TEST(SSLLosses, BFloat16InputsGiveFloat32CloseToFloat32) {
  torch::manual_seed(112);
  auto a = torch::randn({16, 8}), b = torch::randn({16, 8});
  auto check = [](const torch::Tensor& bf, const torch::Tensor& f, const std::string& what) {
    EXPECT_EQ(bf.scalar_type(), torch::kFloat32) << what;
    EXPECT_NEAR(bf.item<double>(), f.item<double>(), 2e-2 * std::max(1.0, std::abs(f.item<double>()))) << what;
  };
  auto abf = a.to(torch::kBFloat16), bbf = b.to(torch::kBFloat16);
  // The float32 reference on the bf16-rounded values, so that only the computation precision differs.
  auto ar = abf.to(torch::kFloat32), br = bbf.to(torch::kFloat32);
  check(CF::vicreg_loss(abf, bbf), CF::vicreg_loss(ar, br), "vicreg");
  check(CF::barlow_twins_loss(abf, bbf), CF::barlow_twins_loss(ar, br), "barlow");
  check(CF::nnclr_loss(abf, bbf, bbf, abf, abf), CF::nnclr_loss(ar, br, br, ar, ar), "nnclr");
  check(CF::dino_loss({abf, bbf}, {abf, bbf, abf}, torch::zeros({1, 8}), 0.04, 0.1),
        CF::dino_loss({ar, br}, {ar, br, ar}, torch::zeros({1, 8}), 0.04, 0.1), "dino");
}

TEST(SSLLosses, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(113);
  auto a = torch::randn({16, 8}), b = torch::randn({16, 8}), s = torch::randn({32, 8});
  auto near = [](const torch::Tensor& gpu, const torch::Tensor& cpu, const std::string& what) {
    EXPECT_TRUE(gpu.is_cuda()) << what;
    EXPECT_NEAR(gpu.item<double>(), cpu.item<double>(), 1e-4 * std::max(1.0, std::abs(cpu.item<double>())))
        << what;
  };
  near(CF::vicreg_loss(a.cuda(), b.cuda()), CF::vicreg_loss(a, b), "vicreg");
  near(CF::barlow_twins_loss(a.cuda(), b.cuda()), CF::barlow_twins_loss(a, b), "barlow");
  near(CF::nnclr_loss(a.cuda(), b.cuda(), b.cuda(), a.cuda(), s.cuda()), CF::nnclr_loss(a, b, b, a, s), "nnclr");
  near(CF::dino_loss({a.cuda(), b.cuda()}, {b.cuda(), a.cuda(), b.cuda()}, torch::zeros({1, 8}).cuda(), 0.04, 0.1),
       CF::dino_loss({a, b}, {b, a, b}, torch::zeros({1, 8}), 0.04, 0.1), "dino");
  DINOLoss module(DINOLossOptions(8));
  module->to(torch::kCUDA);
  module(std::vector<torch::Tensor>{a.cuda(), b.cuda()}, std::vector<torch::Tensor>{b.cuda(), a.cuda()});
  EXPECT_TRUE(module->center.is_cuda());
  expect_close(module->center.cpu(), 0.1 * torch::cat({a, b}, 0).mean(0, true), 1e-5, 1e-6, "cuda centre");
}
