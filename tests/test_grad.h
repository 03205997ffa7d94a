// Numerical checks shared by the loss tests: tensor closeness and finite-difference gradients.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>

namespace test_util {

// max |a - b| <= atol + rtol * max |b|.
inline void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, double rtol, double atol,
                         const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what << ": undefined";
  auto a = actual.detach().to(torch::kFloat64).cpu();
  auto b = expected.detach().to(torch::kFloat64).cpu();
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double err = (a - b).abs().max().item<double>();
  const double scale = b.abs().max().item<double>();
  EXPECT_LE(err, atol + rtol * scale) << what << ": max abs error " << err << " (scale " << scale << ")";
}

// Central finite differences of a scalar function of `x` (double), every element.
inline torch::Tensor numeric_grad(const std::function<torch::Tensor(const torch::Tensor&)>& f,
                                  const torch::Tensor& x, double eps = 1e-6) {
  torch::NoGradGuard no_grad;
  auto base = x.detach().clone();
  auto grad = torch::zeros_like(base);
  auto flat = base.view({-1});
  auto gflat = grad.view({-1});
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double v = flat[i].item<double>();
    flat[i] = v + eps;
    const double up = f(base).item<double>();
    flat[i] = v - eps;
    const double down = f(base).item<double>();
    flat[i] = v;
    gflat[i] = (up - down) / (2 * eps);
  }
  return grad;
}

inline torch::Tensor analytic_grad(const std::function<torch::Tensor(const torch::Tensor&)>& f,
                                   const torch::Tensor& x) {
  auto leaf_x = x.detach().clone().requires_grad_(true);
  f(leaf_x).backward();
  return leaf_x.grad();
}

}  // namespace test_util
