// Tests for include/contrastive/losses.h: values and gradients against fixtures computed independently in Python
// (tests/fixtures/make_loss_fixtures.py), finite-difference gradients, invariances, edge cases and bad input.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "contrastive/common.h"
#include "contrastive/losses.h"
#include "contrastive/train.h"
#include "test_grad.h"

using namespace contrastive;
namespace CF = contrastive::functional;
using json = nlohmann::json;

using test_util::analytic_grad;
using test_util::expect_close;
using test_util::numeric_grad;

namespace {

const json& fixtures() {
  static const json data = [] {
    const std::string path = std::string(CONTRASTIVE_SOURCE_DIR) + "/tests/fixtures/losses.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return json::parse(in);
  }();
  return data;
}

const json& fixture(const std::string& name) { return fixtures().at("cases").at(name); }

torch::Tensor decode(const json& t, torch::Dtype dtype = torch::kFloat64) {
  auto shape = t.at("shape").get<std::vector<int64_t>>();
  auto data = t.at("data").get<std::vector<double>>();
  return torch::tensor(data, torch::kFloat64).reshape(shape).to(dtype);
}

torch::Tensor input(const json& c, const std::string& name, torch::Dtype dtype = torch::kFloat64) {
  return decode(c.at("inputs").at(name), dtype);
}

torch::Tensor leaf(const json& c, const std::string& name, torch::Dtype dtype = torch::kFloat64) {
  return input(c, name, dtype).requires_grad_(true);
}

void expect_value(const torch::Tensor& loss, double expected, double rtol, const std::string& what) {
  ASSERT_EQ(loss.numel(), 1) << what;
  EXPECT_NEAR(loss.item<double>(), expected, rtol * std::max(1.0, std::abs(expected))) << what;
}

ContrastMode mode_of(const json& c) {
  return c.at("params").at("mode").get<std::string>() == "one" ? ContrastMode::One : ContrastMode::All;
}

SupConLossOptions supcon_options(const json& c) {
  return SupConLossOptions()
      .temperature(c.at("params").at("temperature").get<double>())
      .base_temperature(c.at("params").at("base_temperature").get<double>())
      .contrast_mode(mode_of(c));
}

torch::Tensor normalized(std::vector<int64_t> shape, torch::Dtype dtype = torch::kFloat64) {
  return torch::nn::functional::normalize(torch::randn(shape, torch::TensorOptions().dtype(dtype)),
                                          torch::nn::functional::NormalizeFuncOptions().dim(-1));
}

}  // namespace

// ------------------------------------------------------------------------------------------------------------
// SupCon (§1)

TEST(SupConLoss, MatchesFixturesInDoubleAndFloat) {
  int checked = 0;
  for (const auto& [name, c] : fixtures().at("cases").items()) {
    if (name.rfind("supcon_", 0) != 0 && name.rfind("simclr_", 0) != 0) continue;
    for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
      const double rtol = dtype == torch::kFloat64 ? 1e-9 : 2e-5;
      auto features = leaf(c, "features", dtype);
      torch::Tensor labels, mask;
      if (c.at("inputs").contains("labels")) labels = input(c, "labels").to(torch::kLong);
      if (c.at("inputs").contains("mask")) mask = input(c, "mask", dtype);
      SupConLoss loss_fn(supcon_options(c));
      auto loss = loss_fn(features, labels, mask);
      EXPECT_EQ(loss.scalar_type(), dtype);
      expect_value(loss, c.at("loss").get<double>(), rtol, name);
      loss.backward();
      expect_close(features.grad(), decode(c.at("grads").at("features")), rtol, 1e-12, name + " grad");
    }
    ++checked;
  }
  EXPECT_EQ(checked, 8);
}

TEST(SupConLoss, FunctionalEqualsModuleAndDefaults) {
  torch::manual_seed(1);
  auto f = normalized({6, 2, 8});
  auto y = torch::tensor({0, 1, 0, 1, 2, 2});
  SupConLoss module;  // defaults 0.07 / 0.07 / all
  EXPECT_DOUBLE_EQ(module->options.temperature(), 0.07);
  EXPECT_DOUBLE_EQ(module->options.base_temperature(), 0.07);
  EXPECT_EQ(module->options.contrast_mode(), ContrastMode::All);
  EXPECT_DOUBLE_EQ(module(f, y).item<double>(), CF::supcon_loss(f, y).item<double>());
  // Labels [B] and the equivalent explicit mask give the same loss.
  auto mask = torch::eq(y.view({-1, 1}), y.view({1, -1})).to(torch::kFloat64);
  EXPECT_NEAR(module(f, torch::Tensor(), mask).item<double>(), module(f, y).item<double>(), 1e-12);
  // Tensors with more than 3 dims are reshaped to [B,V,-1].
  EXPECT_NEAR(module(f.reshape({6, 2, 2, 4}), y).item<double>(), module(f, y).item<double>(), 1e-12);
}

TEST(SupConLoss, FiniteDifferenceGradient) {
  torch::manual_seed(2);
  auto x = normalized({4, 2, 3});
  auto y = torch::tensor({0, 1, 0, 1});
  for (auto mode : {ContrastMode::All, ContrastMode::One}) {
    auto opts = SupConLossOptions().temperature(0.3).base_temperature(0.07).contrast_mode(mode);
    auto f = [&](const torch::Tensor& t) { return CF::supcon_loss(t, y, {}, opts); };
    expect_close(analytic_grad(f, x), numeric_grad(f, x), 1e-6, 1e-7, "supcon finite differences");
  }
  // An explicit weighted, asymmetric mask with one anchor lacking positives (V = 1).
  auto m = torch::tensor({1.0, 0.5, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0},
                         torch::kFloat64)
               .view({4, 4});
  auto x1 = normalized({4, 1, 5});
  auto g = [&](const torch::Tensor& t) { return CF::supcon_loss(t, {}, m, SupConLossOptions().temperature(0.2)); };
  expect_close(analytic_grad(g, x1), numeric_grad(g, x1), 1e-6, 1e-7, "supcon mask finite differences");
}

TEST(SupConLoss, InvariantToBatchPermutationAndViewSwap) {
  torch::manual_seed(3);
  auto f = normalized({10, 2, 16});
  auto y = torch::randint(0, 3, {10}, torch::kLong);
  auto opts = SupConLossOptions().temperature(0.1);
  auto base = CF::supcon_loss(f, y, {}, opts).item<double>();
  auto perm = torch::randperm(10, torch::kLong);
  EXPECT_NEAR(CF::supcon_loss(f.index_select(0, perm), y.index_select(0, perm), {}, opts).item<double>(), base,
              1e-10);
  // Swapping the views permutes the 'all' anchors and the contrast set together.
  EXPECT_NEAR(CF::supcon_loss(f.flip({1}), y, {}, opts).item<double>(), base, 1e-10);
  // Permuting an explicit mask consistently with the batch.
  auto mask = torch::eq(y.view({-1, 1}), y.view({1, -1}));
  auto pmask = mask.index_select(0, perm).index_select(1, perm);
  EXPECT_NEAR(CF::supcon_loss(f.index_select(0, perm), {}, pmask, opts).item<double>(), base, 1e-10);
}

TEST(SupConLoss, DistinctLabelsEqualSimCLR) {
  // One label per sample: the only positive is the other view, exactly the SimCLR (no labels) case.
  torch::manual_seed(4);
  auto f = normalized({7, 2, 8});
  auto opts = SupConLossOptions().temperature(0.5);
  EXPECT_NEAR(CF::supcon_loss(f, torch::arange(7), {}, opts).item<double>(),
              CF::supcon_loss(f, {}, {}, opts).item<double>(), 1e-12);
}

TEST(SupConLoss, AllOneLabel) {
  // Every other view is a positive: the loss per anchor is -(T/Tb) (mean_p logits_p - logsumexp_{k≠i}) and it
  // is at least (T/Tb)·log(2B-1) (the mean log-probability over all 2B-1 others is at most -log(2B-1)).
  torch::manual_seed(5);
  const int64_t b = 6;
  auto f = normalized({b, 2, 8});
  auto loss = CF::supcon_loss(f, torch::zeros({b}, torch::kLong), {}, SupConLossOptions().temperature(0.07));
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
  EXPECT_GE(loss.item<double>(), std::log(2.0 * b - 1) - 1e-9);
  // With identical features the bound is attained exactly.
  auto same = normalized({1, 1, 8}).expand({b, 2, 8}).contiguous();
  EXPECT_NEAR(CF::supcon_loss(same, torch::zeros({b}, torch::kLong), {}, SupConLossOptions()).item<double>(),
              std::log(2.0 * b - 1), 1e-9);
}

TEST(SupConLoss, AnchorWithoutPositiveIsLeftOutOfTheMean) {
  // V = 1 with an explicit mask; anchor 2 has no positive other than itself (removed as self-contrast).
  torch::manual_seed(6);
  const double t = 0.2, tb = 0.07;
  auto f = normalized({4, 1, 6});
  auto m = torch::tensor({1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1}, torch::kFloat64).view({4, 4});
  auto loss = CF::supcon_loss(f, {}, m, SupConLossOptions().temperature(t).base_temperature(tb));
  ASSERT_TRUE(std::isfinite(loss.item<double>()));
  // Hand computation (§1 formula), averaging only over anchors with at least one positive.
  auto s = torch::matmul(f.squeeze(1), f.squeeze(1).t());
  double total = 0;
  int anchors = 0;
  for (int i = 0; i < 4; ++i) {
    double denom = 0;
    for (int k = 0; k < 4; ++k)
      if (k != i) denom += std::exp(s[i][k].item<double>() / t);
    double sum = 0;
    int n = 0;
    for (int p = 0; p < 4; ++p)
      if (p != i && m[i][p].item<double>() > 0) {
        sum += s[i][p].item<double>() / t - std::log(denom);
        ++n;
      }
    if (n == 0) continue;
    total += -(t / tb) * sum / n;
    ++anchors;
  }
  ASSERT_EQ(anchors, 3);
  EXPECT_NEAR(loss.item<double>(), total / anchors, 1e-10);
}

TEST(SupConLoss, NoPositiveAtAllGivesZeroConnectedToGraph) {
  // B = 1, V = 1: nothing to contrast. And V = 1 with distinct labels: no anchor has a positive.
  for (auto shape : {std::vector<int64_t>{1, 1, 4}, std::vector<int64_t>{5, 1, 4}}) {
    auto f = normalized(shape).requires_grad_(true);
    auto loss = CF::supcon_loss(f, torch::arange(shape[0]));
    EXPECT_EQ(loss.item<double>(), 0.0);
    ASSERT_TRUE(loss.requires_grad());
    loss.backward();
    ASSERT_TRUE(f.grad().defined());
    EXPECT_TRUE(torch::isfinite(f.grad()).all().item<bool>());
    EXPECT_EQ(f.grad().abs().sum().item<double>(), 0.0);
  }
}

TEST(SupConLoss, ExtremeTemperaturesStayFinite) {
  torch::manual_seed(7);
  for (double t : {100.0, 0.01, 0.001}) {
    for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      auto f = normalized({16, 2, 32}).to(dtype).requires_grad_(true);
      auto y = torch::randint(0, 4, {16}, torch::kLong);
      auto loss = CF::supcon_loss(f, y, {}, SupConLossOptions().temperature(t).base_temperature(0.07));
      loss.backward();
      EXPECT_TRUE(std::isfinite(loss.item<double>())) << "T=" << t;
      EXPECT_TRUE(torch::isfinite(f.grad()).all().item<bool>()) << "T=" << t;
    }
  }
}

TEST(SupConLoss, BFloat16CloseToFloatAndReturnsFloat) {
  torch::manual_seed(8);
  auto f = normalized({32, 2, 64}, torch::kFloat32);
  auto y = torch::randint(0, 5, {32}, torch::kLong);
  auto fb = f.to(torch::kBFloat16);
  auto lb = CF::supcon_loss(fb, y, {}, SupConLossOptions().temperature(0.1));
  EXPECT_EQ(lb.scalar_type(), torch::kFloat32);
  // Reference: the float32 loss of the same (rounded) bf16 features, and of the original features.
  auto lf_rounded = CF::supcon_loss(fb.to(torch::kFloat32), y, {}, SupConLossOptions().temperature(0.1));
  auto lf = CF::supcon_loss(f, y, {}, SupConLossOptions().temperature(0.1));
  EXPECT_NEAR(lb.item<double>(), lf_rounded.item<double>(), 1e-5 * lf.item<double>());
  EXPECT_NEAR(lb.item<double>(), lf.item<double>(), 2e-2 * lf.item<double>());
  auto fh = f.to(torch::kHalf).requires_grad_(true);
  auto lh = CF::supcon_loss(fh, y, {}, SupConLossOptions().temperature(0.1));
  lh.backward();
  EXPECT_EQ(fh.grad().scalar_type(), torch::kHalf);
  EXPECT_NEAR(lh.item<double>(), lf.item<double>(), 5e-3 * lf.item<double>());
}

// Under `train --bf16` the losses run inside the CPU autocast scope. Their similarity matmuls must stay in
// float32 (autocast would round the logits, up to 1/T = 14 at T = 0.07, to 8 mantissa bits): float inputs give
// exactly the value they give without autocast.
TEST(Losses, Float32UnderBf16AutocastIsExactlyFloat32) {
  torch::manual_seed(9);
  auto f = normalized({64, 2, 128}, torch::kFloat32);
  auto y = torch::randint(0, 10, {64}, torch::kLong);
  auto q = f.select(1, 0).contiguous(), k = f.select(1, 1).contiguous();
  auto queue = normalized({512, 128}, torch::kFloat32).t().contiguous();
  auto src = torch::randn({16, 32}), trg = torch::randn({16, 32, 9});
  auto bank = normalized({256, 128}, torch::kFloat32);
  auto bank_labels = torch::randint(0, 10, {256}, torch::kLong);
  auto all = [&] {
    return std::vector<double>{
        CF::supcon_loss(f, y, {}, SupConLossOptions().temperature(0.07)).item<double>(),
        CF::nt_xent_loss(q, k, NTXentLossOptions().temperature(0.5)).item<double>(),
        CF::info_nce(q, k, queue, 0.2).item<double>(),
        CF::moco_v3_loss(q, k, MoCoV3LossOptions()).item<double>(),
        CF::simsiam_loss(q, k, k, q).item<double>(),
        CF::amdim_nce(src, trg).loss.item<double>(),
        CF::supcon_with_bank(f, y, bank, bank_labels, SupConLossOptions().temperature(0.07)).item<double>()};
  };
  const auto plain = all();
  std::vector<double> autocast;
  {
    CpuBf16Autocast on(true);
    // The guard is real: a bare matmul in this scope is computed in bf16.
    ASSERT_EQ(torch::matmul(q, k.t()).scalar_type(), torch::kBFloat16);
    autocast = all();
  }
  ASSERT_EQ(plain.size(), autocast.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_EQ(plain[i], autocast[i]) << "loss #" << i;
}

TEST(SupConLoss, ParseContrastMode) {
  EXPECT_EQ(parse_contrast_mode("all"), ContrastMode::All);
  EXPECT_EQ(parse_contrast_mode("one"), ContrastMode::One);
  EXPECT_THROW(parse_contrast_mode("both"), InputError);
}

TEST(SupConLoss, BadInputThrowsInputError) {
  auto f = normalized({4, 2, 8});
  auto y = torch::tensor({0, 1, 0, 1});
  auto mask = torch::ones({4, 4});
  EXPECT_THROW(CF::supcon_loss(f.select(1, 0), y), InputError);            // not [B,V,D]
  EXPECT_THROW(CF::supcon_loss(f, torch::tensor({0, 1, 0})), InputError);  // labels size != B
  EXPECT_THROW(CF::supcon_loss(f, {}, torch::ones({4, 3})), InputError);   // mask not [B,B]
  EXPECT_THROW(CF::supcon_loss(f, y, mask), InputError);                   // both
  EXPECT_THROW(CF::supcon_loss(f, y, {}, SupConLossOptions().temperature(0)), InputError);
  EXPECT_THROW(CF::supcon_loss(f, y, {}, SupConLossOptions().temperature(-1)), InputError);
  EXPECT_THROW(CF::supcon_loss(f, y, {}, SupConLossOptions().base_temperature(0)), InputError);
  EXPECT_THROW(CF::supcon_loss(torch::Tensor(), y), InputError);
  try {
    CF::supcon_loss(f, y, mask);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not both"), std::string::npos) << e.what();
  }
}

// ------------------------------------------------------------------------------------------------------------
// NT-Xent (§1)

TEST(NTXentLoss, MatchesFixtures) {
  for (const std::string name : {"ntxent_T0.5", "ntxent_T0.5_base0.07"}) {
    const auto& c = fixture(name);
    auto opts = NTXentLossOptions().temperature(c.at("params").at("temperature").get<double>());
    if (c.at("params").contains("base_temperature"))
      opts.base_temperature(c.at("params").at("base_temperature").get<double>());
    for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
      const double rtol = dtype == torch::kFloat64 ? 1e-9 : 2e-5;
      auto z1 = leaf(c, "z1", dtype), z2 = leaf(c, "z2", dtype);
      NTXentLoss loss_fn(opts);
      auto loss = loss_fn(z1, z2);
      expect_value(loss, c.at("loss").get<double>(), rtol, name);
      loss.backward();
      expect_close(z1.grad(), decode(c.at("grads").at("z1")), rtol, 1e-12, name + " grad z1");
      expect_close(z2.grad(), decode(c.at("grads").at("z2")), rtol, 1e-12, name + " grad z2");
    }
  }
}

TEST(NTXentLoss, EqualsSupConWithoutLabelsOnNormalisedInputs) {
  torch::manual_seed(9);
  auto z1 = normalized({12, 32}), z2 = normalized({12, 32});
  for (auto base : {0.5, 0.07}) {
    auto nt = CF::nt_xent_loss(z1, z2, NTXentLossOptions().temperature(0.5).base_temperature(base));
    auto sc = CF::supcon_loss(torch::stack({z1, z2}, 1), {}, {},
                              SupConLossOptions().temperature(0.5).base_temperature(base));
    EXPECT_NEAR(nt.item<double>(), sc.item<double>(), 1e-12);
  }
  // Default base_temperature = temperature: no scaling.
  EXPECT_NEAR(NTXentLoss(NTXentLossOptions().temperature(0.2))(z1, z2).item<double>(),
              CF::supcon_loss(torch::stack({z1, z2}, 1), {}, {},
                              SupConLossOptions().temperature(0.2).base_temperature(0.2))
                  .item<double>(),
              1e-12);
  EXPECT_THROW(CF::nt_xent_loss(z1, z2.slice(0, 0, 5)), InputError);
  EXPECT_THROW(CF::nt_xent_loss(z1, z2, NTXentLossOptions().temperature(0)), InputError);
}

// ------------------------------------------------------------------------------------------------------------
// MoCo InfoNCE with a queue and MoCo v3 (§4)

TEST(InfoNCELoss, MatchesFixtureAndDoesNotBackpropIntoKeysOrQueue) {
  const auto& c = fixture("info_nce_T0.2");
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    const double rtol = dtype == torch::kFloat64 ? 1e-9 : 2e-5;
    auto q = leaf(c, "q", dtype), k = leaf(c, "k", dtype), queue = leaf(c, "queue", dtype);
    InfoNCELoss loss_fn(InfoNCELossOptions().temperature(0.2));
    auto loss = loss_fn(q, k, queue);
    expect_value(loss, c.at("loss").get<double>(), rtol, "info_nce");
    loss.backward();
    expect_close(q.grad(), decode(c.at("grads").at("q")), rtol, 1e-12, "info_nce grad q");
    EXPECT_FALSE(k.grad().defined());
    EXPECT_FALSE(queue.grad().defined());
  }
}

TEST(InfoNCELoss, EmptyQueueAndBadShapes) {
  auto q = normalized({4, 8}), k = normalized({4, 8});
  // With no negatives the only logit is the positive: CE = 0.
  EXPECT_NEAR(CF::info_nce(q, k, torch::zeros({8, 0}, torch::kFloat64), 0.2).item<double>(), 0.0, 1e-12);
  EXPECT_THROW(CF::info_nce(q, k, torch::zeros({16, 8}), 0.2), InputError);  // [K,D] queue: wrong layout
  EXPECT_THROW(CF::info_nce(q, k.slice(0, 0, 3), torch::zeros({8, 16}), 0.2), InputError);
  EXPECT_THROW(CF::info_nce(q, k, torch::zeros({8, 16}), 0.0), InputError);
  EXPECT_THROW(CF::info_nce(q.view({4, 2, 4}), k, torch::zeros({8, 16}), 0.2), InputError);
}

TEST(MoCoV3Loss, MatchesFixtureAndIsSymmetricSum) {
  const auto& c = fixture("moco_v3_T0.2");
  auto q = leaf(c, "q"), k = leaf(c, "k");
  auto loss = CF::moco_v3_loss(q, k, MoCoV3LossOptions().temperature(0.2));
  expect_value(loss, c.at("loss").get<double>(), 1e-9, "moco_v3");
  loss.backward();
  expect_close(q.grad(), decode(c.at("grads").at("q")), 1e-9, 1e-12, "moco_v3 grad q");
  EXPECT_FALSE(k.grad().defined());
  MoCoV3Loss module(MoCoV3LossOptions().temperature(0.2));
  auto q2 = normalized({8, 16}), k2 = normalized({8, 16});
  EXPECT_NEAR(module(q, q2, k, k2).item<double>(),
              (CF::moco_v3_loss(q, k2, module->options) + CF::moco_v3_loss(q2, k, module->options)).item<double>(),
              1e-12);
  // Gathered keys with a rank offset: rows [offset, offset+N) of k hold this rank's positives.
  auto big_k = torch::cat({k2, k.detach()});
  auto logits = torch::matmul(q, big_k.t()) / 0.2;
  auto expected = torch::nn::functional::cross_entropy(logits, torch::arange(8, 16)) * 0.4;
  EXPECT_NEAR(CF::moco_v3_loss(q, big_k, MoCoV3LossOptions().temperature(0.2).label_offset(8)).item<double>(),
              expected.item<double>(), 1e-12);
  EXPECT_THROW(CF::moco_v3_loss(q, k, MoCoV3LossOptions().label_offset(1)), InputError);
}

// ------------------------------------------------------------------------------------------------------------
// SimSiam (§5), BYOL (§6), collapse metric (§5)

TEST(SimSiamLoss, MatchesFixtureAndDoesNotBackpropIntoZ) {
  const auto& c = fixture("simsiam");
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    const double rtol = dtype == torch::kFloat64 ? 1e-9 : 2e-5;
    auto p1 = leaf(c, "p1", dtype), p2 = leaf(c, "p2", dtype), z1 = leaf(c, "z1", dtype),
         z2 = leaf(c, "z2", dtype);
    SimSiamLoss loss_fn;
    auto loss = loss_fn(p1, p2, z1, z2);
    expect_value(loss, c.at("loss").get<double>(), rtol, "simsiam");
    loss.backward();
    expect_close(p1.grad(), decode(c.at("grads").at("p1")), rtol, 1e-12, "simsiam grad p1");
    expect_close(p2.grad(), decode(c.at("grads").at("p2")), rtol, 1e-12, "simsiam grad p2");
    EXPECT_FALSE(z1.grad().defined());
    EXPECT_FALSE(z2.grad().defined());
  }
  auto p = normalized({4, 8});
  EXPECT_NEAR(CF::negative_cosine(p, p).item<double>(), -1.0, 1e-12);
  EXPECT_THROW(CF::negative_cosine(p, p.slice(1, 0, 4)), InputError);
}

TEST(BYOLLoss, MatchesFixtureAndDiffersFromReferenceFormByAConstant) {
  const auto& c = fixture("byol");
  auto p1 = leaf(c, "p1"), p2 = leaf(c, "p2"), z1 = leaf(c, "z1"), z2 = leaf(c, "z2");
  BYOLLoss loss_fn;
  auto loss = loss_fn(p1, p2, z1, z2);
  expect_value(loss, c.at("loss").get<double>(), 1e-9, "byol");
  loss.backward();
  expect_close(p1.grad(), decode(c.at("grads").at("p1")), 1e-9, 1e-12, "byol grad p1");
  expect_close(p2.grad(), decode(c.at("grads").at("p2")), 1e-9, 1e-12, "byol grad p2");
  EXPECT_FALSE(z1.grad().defined());
  // ContrastiveCrop's -2·(cos(p1,z2).mean + cos(p2,z1).mean) = ours - 4.
  auto cc = -2.0 * (torch::cosine_similarity(p1, z2, 1).mean() + torch::cosine_similarity(p2, z1, 1).mean());
  EXPECT_NEAR(loss.item<double>() - 4.0, cc.item<double>(), 1e-12);
  // 2 - 2cos = squared distance of the normalised vectors.
  auto a = normalized({5, 8}), b = normalized({5, 8});
  EXPECT_NEAR(CF::byol_loss(a, b).item<double>(), (a - b).pow(2).sum(1).mean().item<double>(), 1e-12);
}

TEST(LossCollapseStd, HealthyAndCollapsed) {
  torch::manual_seed(10);
  const int64_t d = 64;
  auto healthy = CF::collapse_std(torch::randn({4096, d})).item<double>();
  EXPECT_NEAR(healthy, 1.0 / std::sqrt(static_cast<double>(d)), 0.01);
  auto collapsed = CF::collapse_std(torch::randn({1, d}).expand({256, d}) * torch::rand({256, 1}) + 0.0);
  EXPECT_LT(collapsed.item<double>(), 1e-5);
  EXPECT_EQ(collapsed.scalar_type(), torch::kFloat32);
  EXPECT_THROW(CF::collapse_std(torch::randn({1, d})), InputError);
}

// ------------------------------------------------------------------------------------------------------------
// AMDIM NCE (§7)

TEST(AmdimNce, MatchesFixtures) {
  for (const std::string name : {"amdim_nce_tclip20", "amdim_nce_tclip2"}) {
    const auto& c = fixture(name);
    const double tclip = c.at("params").at("tclip").get<double>();
    for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
      const double rtol = dtype == torch::kFloat64 ? 1e-9 : 2e-5;
      auto src = leaf(c, "r_src", dtype), trg = leaf(c, "r_trg", dtype);
      auto out = CF::amdim_nce(src, trg, tclip);
      expect_value(out.loss, c.at("loss").get<double>(), rtol, name);
      expect_value(out.lgt_reg, c.at("terms").at("lgt_reg").get<double>(), rtol, name + " lgt_reg");
      out.loss.backward();
      expect_close(src.grad(), decode(c.at("grads").at("r_src")), rtol, 1e-12, name + " grad r_src");
      expect_close(trg.grad(), decode(c.at("grads").at("r_trg")), rtol, 1e-12, name + " grad r_trg");
    }
  }
}

TEST(AmdimNce, FiniteDifferenceGradient) {
  torch::manual_seed(11);
  auto src = torch::randn({3, 4}, torch::kFloat64) * 3;
  auto trg = torch::randn({3, 4, 5}, torch::kFloat64) * 3;
  for (double tclip : {20.0, 1.5}) {
    auto fs = [&](const torch::Tensor& s) {
      auto out = CF::amdim_nce(s, trg, tclip);
      return out.loss + out.lgt_reg;
    };
    auto ft = [&](const torch::Tensor& t) {
      auto out = CF::amdim_nce(src, t, tclip);
      return out.loss + out.lgt_reg;
    };
    expect_close(analytic_grad(fs, src), numeric_grad(fs, src), 1e-6, 1e-7, "amdim d/dsrc");
    expect_close(analytic_grad(ft, trg), numeric_grad(ft, trg), 1e-6, 1e-7, "amdim d/dtrg");
  }
}

TEST(AmdimNce, ExtremeScoresFiniteAndBadShapes) {
  auto src = torch::randn({4, 8}) * 1e3, trg = torch::randn({4, 8, 9}) * 1e3;
  auto out = CF::amdim_nce(src.to(torch::kBFloat16), trg.to(torch::kBFloat16));
  EXPECT_TRUE(std::isfinite(out.loss.item<double>()));
  EXPECT_EQ(out.loss.scalar_type(), torch::kFloat32);
  EXPECT_THROW(CF::amdim_nce(src, trg.slice(1, 0, 4)), InputError);
  EXPECT_THROW(CF::amdim_nce(src.slice(0, 0, 1), trg.slice(0, 0, 1)), InputError);  // N = 1: no negatives
  EXPECT_THROW(CF::amdim_nce(src, trg, 0.0), InputError);
  EXPECT_THROW(CF::amdim_nce(src.unsqueeze(2), trg), InputError);
  // [N,D,H,W] targets are flattened.
  EXPECT_NEAR(CF::amdim_nce(src, trg.view({4, 8, 3, 3})).loss.item<double>(),
              CF::amdim_nce(src, trg).loss.item<double>(), 0);
}

TEST(AMDIMLoss, MatchesFixtureWithGivenLocations) {
  const auto& c = fixture("amdim_full");
  AMDIMFeatures x1{leaf(c, "x1_r1"), leaf(c, "x1_r5"), input(c, "x1_r7")};
  AMDIMFeatures x2{leaf(c, "x2_r1"), input(c, "x2_r5"), input(c, "x2_r7")};
  auto idx1 = input(c, "idx1").to(torch::kLong), idx2 = input(c, "idx2").to(torch::kLong);
  AMDIMLoss loss_fn(AMDIMLossOptions().tclip(c.at("params").at("tclip").get<double>()));
  auto out = loss_fn(x1, x2, idx1, idx2);
  const auto& terms = c.at("terms");
  expect_value(out.loss_1t5, terms.at("loss_1t5").get<double>(), 1e-9, "1t5");
  expect_value(out.loss_1t7, terms.at("loss_1t7").get<double>(), 1e-9, "1t7");
  expect_value(out.loss_5t5, terms.at("loss_5t5").get<double>(), 1e-9, "5t5");
  expect_value(out.lgt_reg, terms.at("lgt_reg").get<double>(), 1e-9, "lgt_reg");
  expect_value(out.total, c.at("loss").get<double>(), 1e-9, "total");
  out.total.backward();
  expect_close(x1.r1.grad(), decode(c.at("grads").at("x1_r1")), 1e-9, 1e-12, "grad x1.r1");
  expect_close(x2.r1.grad(), decode(c.at("grads").at("x2_r1")), 1e-9, 1e-12, "grad x2.r1");
  expect_close(x1.r5.grad(), decode(c.at("grads").at("x1_r5")), 1e-9, 1e-12, "grad x1.r5");
}

TEST(AMDIMLoss, GeneratorDrawsAreReproducibleAndShapesChecked) {
  torch::manual_seed(12);
  auto make = [] {
    return AMDIMFeatures{torch::randn({4, 8, 1, 1}), torch::randn({4, 8, 5, 5}), torch::randn({4, 8, 7, 7})};
  };
  auto x1 = make(), x2 = make();
  AMDIMLoss loss_fn;
  loss_fn->generator = at::make_generator<at::CPUGeneratorImpl>(123);
  auto a = loss_fn(x1, x2);
  loss_fn->generator = at::make_generator<at::CPUGeneratorImpl>(123);
  auto b = loss_fn(x1, x2);
  EXPECT_EQ(a.total.item<double>(), b.total.item<double>());
  auto g = at::make_generator<at::CPUGeneratorImpl>(123);
  EXPECT_EQ(CF::amdim_loss(x1, x2, g).total.item<double>(), a.total.item<double>());
  EXPECT_THROW(loss_fn(x1, x2, torch::tensor({0, 1, 2, 3})), InputError);
  EXPECT_TRUE(std::isfinite(loss_fn(x1, x2).total.item<double>()));
  EXPECT_THROW(loss_fn(x1, x2, torch::tensor({0, 1, 2, 25}), torch::tensor({0, 1, 2, 3})), InputError);
  EXPECT_THROW(loss_fn(x1, x2, torch::tensor({0, 1, 2}), torch::tensor({0, 1, 2, 3})), InputError);
  AMDIMFeatures bad{torch::randn({4, 8, 2}), x1.r5, x1.r7};
  EXPECT_THROW(loss_fn(bad, x2), InputError);
}

// ------------------------------------------------------------------------------------------------------------
// Devices: every loss on CUDA agrees with the CPU (skipped without a GPU).

TEST(LossDevices, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(13);
  auto f = normalized({8, 2, 16}, torch::kFloat32);
  auto y = torch::randint(0, 3, {8}, torch::kLong);
  auto cpu = CF::supcon_loss(f, y).item<double>();
  auto gpu = CF::supcon_loss(f.cuda(), y.cuda()).item<double>();
  EXPECT_NEAR(cpu, gpu, 1e-4 * std::abs(cpu));
  auto gpu_bf16 = CF::supcon_loss(f.cuda().to(torch::kBFloat16), y).item<double>();
  EXPECT_NEAR(cpu, gpu_bf16, 2e-2 * std::abs(cpu));
  auto src = torch::randn({4, 8}), trg = torch::randn({4, 8, 9});
  EXPECT_NEAR(CF::amdim_nce(src, trg).loss.item<double>(),
              CF::amdim_nce(src.cuda(), trg.cuda()).loss.item<double>(), 1e-4);
}
