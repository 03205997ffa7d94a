#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>

#include "contrastive/models.h"

using namespace contrastive;

TEST(ResNet, StageShapesForEveryDepthAndInputSize) {
  for (std::string arch : {"resnet18", "resnet34", "resnet50"}) {
    const int64_t exp = arch == "resnet50" ? 4 : 1;
    for (int64_t size : {28, 32}) {
      for (int64_t ch : {1, 3}) {
        ResNet net(ResNetOptions().arch(arch).width(8).in_channels(ch).num_classes(10));
        net->eval();
        auto x = torch::randn({2, ch, size, size});
        auto s = net->stages(x);
        ASSERT_EQ(s.size(), 4u);
        const int64_t sizes[4] = {size, (size + 1) / 2, ((size + 1) / 2 + 1) / 2,
                                  (((size + 1) / 2 + 1) / 2 + 1) / 2};
        for (int64_t i = 0; i < 4; ++i) {
          EXPECT_EQ(s[i].size(1), 8 * (1 << i) * exp) << arch;
          EXPECT_EQ(s[i].size(2), sizes[i]) << arch << " " << size;
          EXPECT_EQ(net->stage_channels(i), 8 * (1 << i) * exp);
        }
        EXPECT_EQ(net->forward(x).sizes(), (std::vector<int64_t>{2, 10}));
        EXPECT_EQ(net->feature_dim(), 64 * exp);
      }
    }
  }
}

TEST(ResNet, ParameterNamesFollowTorchvision) {
  ResNet net(ResNetOptions().arch("resnet18").width(64).num_classes(10));
  auto params = net->named_parameters();
  auto buffers = net->named_buffers();
  for (const char* name : {"conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight", "layer1.1.bn2.bias",
                           "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight", "layer4.1.conv2.weight",
                           "fc.weight", "fc.bias"})
    EXPECT_TRUE(params.contains(name)) << name;
  for (const char* name :
       {"bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked", "layer3.0.downsample.1.running_var"})
    EXPECT_TRUE(buffers.contains(name)) << name;
  EXPECT_FALSE(params.contains("layer1.0.downsample.0.weight"));  // stride 1, same width: identity shortcut
  // torchvision's CIFAR-stem resnet18 with 10 classes has 11,173,962 parameters.
  EXPECT_EQ(count_parameters(*net), 11173962);
}

TEST(ResNet, ZeroInitResidualZeroesLastBNOfEachBlock) {
  ResNet net(ResNetOptions().arch("resnet18").width(4).zero_init_residual(true));
  EXPECT_EQ(net->named_parameters()["layer1.0.bn2.weight"].abs().sum().item<double>(), 0.0);
  EXPECT_GT(net->named_parameters()["layer1.0.bn1.weight"].abs().sum().item<double>(), 0.0);
  ResNet b(ResNetOptions().arch("resnet50").width(4).zero_init_residual(true));
  EXPECT_EQ(b->named_parameters()["layer2.1.bn3.weight"].abs().sum().item<double>(), 0.0);
}

TEST(SplitBatchNorm, NormalisesInterleavedSplitsSeparately) {
  torch::manual_seed(0);
  SplitBatchNorm2d bn(3, 2);
  bn->train();
  auto x = torch::randn({8, 3, 4, 4});
  x.index({torch::indexing::Slice(0, torch::indexing::None, 2)}) += 5;  // even samples shifted
  auto y = bn(x);
  // Split 0 = samples 0,2,4,6: normalised on their own statistics, so each split has mean ~0 per channel.
  auto even = y.index({torch::indexing::Slice(0, torch::indexing::None, 2)});
  auto odd = y.index({torch::indexing::Slice(1, torch::indexing::None, 2)});
  EXPECT_LT(even.mean({0, 2, 3}).abs().max().item<double>(), 1e-5);
  EXPECT_LT(odd.mean({0, 2, 3}).abs().max().item<double>(), 1e-5);
  // Plain BN over the whole batch would leave the shift visible.
  SplitBatchNorm2d plain(3, 1);
  plain->train();
  EXPECT_GT(plain(x).index({torch::indexing::Slice(0, torch::indexing::None, 2)}).mean().item<double>(), 0.5);
  // Running stats are the mean of the splits' stats: mean moved by momentum towards ~2.5 (avg of 5 and 0).
  EXPECT_NEAR(bn->running_mean.mean().item<double>(), 0.1 * 2.5, 0.1);
  bn->eval();
  EXPECT_EQ(bn(x).sizes(), x.sizes());
}

TEST(Heads, SepConvHalvesTheResolution) {
  SepConv s(16, 32);
  auto y = s(torch::randn({2, 16, 14, 14}));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 32, 7, 7}));
  EXPECT_GE(y.min().item<double>(), 0.0);  // ends with ReLU
  MLP mlp(
      MLPOptions(8, 16, 4).layers(3).hidden_bn(true).last_bn(true).last_bn_affine(false).freeze_last_bias(true));
  mlp->train();
  EXPECT_EQ(mlp(torch::randn({5, 8})).sizes(), (std::vector<int64_t>{5, 4}));
  int frozen = 0;
  for (auto& p : mlp->parameters()) frozen += !p.requires_grad();
  EXPECT_EQ(frozen, 1);
}

// ---- fused BN (+ residual) + ReLU (src/models/fused_bn.cpp) against ATen's unfused chain ----

namespace {

struct BnCase {
  torch::Tensor y, dx, dres, dw, db, rm, rv;
};

// Training-mode BN + optional residual + ReLU, forward and backward with a fixed upstream gradient, fused (with
// activations in `fused_type`, float32 weights) or through torch::batch_norm / add / relu in double (the
// reference), results in float.
BnCase run_bn_case(const torch::Tensor& x0, const torch::Tensor& res0, const torch::Tensor& w0,
                   const torch::Tensor& b0, const torch::Tensor& gy, bool fused,
                   torch::ScalarType fused_type = torch::kFloat) {
  const auto type = fused ? fused_type : torch::kDouble, param_type = fused ? torch::kFloat : torch::kDouble;
  auto x = x0.to(type).clone(torch::MemoryFormat::ChannelsLast).requires_grad_(true);
  torch::Tensor res;
  if (res0.defined()) res = res0.to(type).clone(torch::MemoryFormat::ChannelsLast).requires_grad_(true);
  auto w = w0.to(param_type).clone().requires_grad_(true), b = b0.to(param_type).clone().requires_grad_(true);
  auto rm = torch::zeros({x0.size(1)}, param_type), rv = torch::ones({x0.size(1)}, param_type);
  torch::Tensor y;
  if (fused) {
    EXPECT_TRUE(fused_bn_relu_applies(x, res, w));
    y = fused_batch_norm_relu(x, res, w, b, rm, rv, 0.1, 1e-5);
  } else {
    y = torch::batch_norm(x, w, b, rm, rv, true, 0.1, 1e-5, true);
    if (res.defined()) y = y + res;
    y = torch::relu(y);
  }
  y.backward(gy.to(type));
  auto f = [](const torch::Tensor& t) { return t.defined() ? t.to(torch::kFloat) : t; };
  return {f(y.detach()), f(x.grad()), f(res.defined() ? res.grad() : torch::Tensor()), f(w.grad()), f(b.grad()),
          f(rm),         f(rv)};
}

void expect_close(const torch::Tensor& a, const torch::Tensor& b, double tol, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double err = (a - b).abs().max().item<double>(), scale = b.abs().max().item<double>() + 1e-12;
  EXPECT_LE(err, tol * scale) << what << ": max error " << err << " against max " << scale;
}

// Every output of a fused case against the reference: the activation outputs within the given tolerances (they
// depend on the activations' dtype), the float32 weight gradients and running statistics within fixed ones.
void expect_bn_case_close(const BnCase& f, const BnCase& r, double y_tol, double dx_tol, double dres_tol,
                          const std::string& what) {
  expect_close(f.y, r.y, y_tol, what + " y");
  expect_close(f.dx, r.dx, dx_tol, what + " dx");
  expect_close(f.dw, r.dw, 1e-4, what + " dweight");
  expect_close(f.db, r.db, 1e-5, what + " dbias");
  expect_close(f.rm, r.rm, 1e-6, what + " running_mean");
  expect_close(f.rv, r.rv, 1e-5, what + " running_var");
  if (r.dres.defined()) expect_close(f.dres, r.dres, dres_tol, what + " dresidual");
}

}  // namespace

TEST(FusedBatchNorm, MatchesATenForwardBackwardAndRunningStats) {
  torch::manual_seed(3);
  // C from 1 (stem of a grey image's first BN is wider, but 1 tests the edge) to beyond a vector; rows not a
  // multiple of the block size; a mean far from zero (the shifted sums must not cancel).
  for (auto shape : std::vector<std::vector<int64_t>>{
           {4, 1, 5, 5}, {3, 16, 7, 9}, {8, 33, 4, 4}, {2, 130, 3, 5}, {5, 16, 20, 20}})
    for (bool with_res : {false, true}) {
      const int64_t C = shape[1];
      auto x = torch::randn(shape) * 3 + 20;
      auto res = with_res ? torch::randn(shape) : torch::Tensor();
      auto w = torch::rand({C}) + 0.5, b = torch::randn({C});
      auto gy = torch::randn(shape).contiguous(torch::MemoryFormat::ChannelsLast);
      auto f = run_bn_case(x, res, w, b, gy, true), r = run_bn_case(x, res, w, b, gy, false);
      const std::string what = "C=" + std::to_string(C) + (with_res ? " residual" : "");
      EXPECT_TRUE(f.y.is_contiguous(torch::MemoryFormat::ChannelsLast)) << what;
      EXPECT_EQ(r.dres.defined(), with_res) << what;
      expect_bn_case_close(f, r, 1e-5, 1e-4, 1e-6, what);
    }
}

// The autocast path: bfloat16 activations (a bf16 convolution's output) with float32 weights and statistics.
// The reference runs in double on the same bf16 values; the fused outputs are rounded once to bf16 (relative
// error up to 2^-8 of each value), the weight gradients and statistics are float sums.
TEST(FusedBatchNorm, Bfloat16ActivationsMatchADoubleReference) {
  torch::manual_seed(7);
  for (auto shape : std::vector<std::vector<int64_t>>{{3, 16, 7, 9}, {8, 33, 4, 4}, {6, 64, 5, 5}})
    for (bool with_res : {false, true}) {
      const int64_t C = shape[1];
      auto bf = [](const torch::Tensor& t) { return t.to(torch::kBFloat16).to(torch::kFloat); };
      auto x = bf(torch::randn(shape) * 3 + 20);
      auto res = with_res ? bf(torch::randn(shape)) : torch::Tensor();
      auto w = torch::rand({C}) + 0.5, b = torch::randn({C});
      auto gy = bf(torch::randn(shape)).contiguous(torch::MemoryFormat::ChannelsLast);
      auto f = run_bn_case(x, res, w, b, gy, true, torch::kBFloat16), r = run_bn_case(x, res, w, b, gy, false);
      const std::string what = "bf16 C=" + std::to_string(C) + (with_res ? " residual" : "");
      EXPECT_EQ(r.dres.defined(), with_res) << what;
      // The residual's gradient is the masked bf16 gradient itself: exact (tolerance 0).
      expect_bn_case_close(f, r, 8e-3, 8e-3, 0, what);
    }
  // Under autocast the module takes the fused path on a bf16 convolution's output.
  auto cl = torch::randn({4, 8, 6, 6}).contiguous(torch::MemoryFormat::ChannelsLast);
  SplitBatchNorm2d fused_bn(8), plain_bn(8);
  plain_bn->set_fused(false);
  auto xb = cl.to(torch::kBFloat16);
  EXPECT_TRUE(fused_bn_relu_applies(xb, {}, fused_bn->weight));
  EXPECT_FALSE(fused_bn_relu_applies(xb, cl, fused_bn->weight));  // a float residual: ATen's chain
  auto yf = fused_bn->forward_relu(xb), yp = plain_bn->forward_relu(xb);
  EXPECT_EQ(yf.scalar_type(), torch::kBFloat16);
  expect_close(yf.to(torch::kFloat), yp.to(torch::kFloat), 8e-3, "module, bf16");
}

TEST(FusedBatchNorm, SameBitsForAnyThreadCountAndPropagatesNaN) {
  torch::manual_seed(4);
  auto x = torch::randn({16, 24, 9, 9}), res = torch::randn({16, 24, 9, 9}), gy = torch::randn({16, 24, 9, 9});
  auto w = torch::rand({24}) + 0.5, b = torch::randn({24});
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  auto one = run_bn_case(x, res, w, b, gy, true);
  torch::set_num_threads(std::max(2, threads));
  auto many = run_bn_case(x, res, w, b, gy, true);
  torch::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one.y, many.y));
  EXPECT_TRUE(torch::equal(one.dx, many.dx));
  EXPECT_TRUE(torch::equal(one.dw, many.dw));
  EXPECT_TRUE(torch::equal(one.rv, many.rv));
  // A NaN in the input must reach the output (as relu's does), so the trainer's finiteness check sees it.
  auto bad = x.clone();
  bad.index_put_({0, 0, 0, 0}, std::numeric_limits<float>::quiet_NaN());
  auto xb = bad.contiguous(torch::MemoryFormat::ChannelsLast);
  auto rm = torch::zeros({24}), rv = torch::ones({24});
  auto y = fused_batch_norm_relu(xb, {}, w, b, rm, rv, 0.1, 1e-5);
  EXPECT_TRUE(torch::isnan(y).any().item<bool>());
}

// One module used twice before the backward, first through ATen's batch_norm (an NCHW input: another crop size
// in multi-crop), then through the fused operator: ATen saved the running statistics for its backward, so the
// fused update must not bump their version counters (it did once, and the backward threw).
TEST(FusedBatchNorm, AnATenForwardThenAFusedForwardOfOneModuleBothBackpropagate) {
  torch::manual_seed(6);
  SplitBatchNorm2d bn(8);
  auto a = torch::randn({4, 8, 5, 5}).requires_grad_(true);  // NCHW: ATen's path
  auto b = torch::randn({4, 8, 5, 5}).contiguous(torch::MemoryFormat::ChannelsLast).requires_grad_(true);
  ASSERT_TRUE(fused_bn_relu_applies(b, {}, bn->weight));
  const auto version = bn->running_var._version();
  auto loss = bn->forward_relu(a).sum() + bn->forward_relu(b).square().sum();
  EXPECT_EQ(bn->running_var._version(), version);  // neither update moves it
  ASSERT_NO_THROW(loss.backward());
  EXPECT_GT(a.grad().abs().sum().item<double>(), 0);
  EXPECT_GT(b.grad().abs().sum().item<double>(), 0);
  EXPECT_EQ(bn->num_batches_tracked.item<int64_t>(), 2);
}

TEST(FusedBatchNorm, OnlyFloatChannelsLastCpuQualifiesAndTheModuleFallsBack) {
  auto w = torch::ones({8});
  auto cl = torch::randn({2, 8, 4, 4}).contiguous(torch::MemoryFormat::ChannelsLast);
  EXPECT_TRUE(fused_bn_relu_applies(cl, {}, w));
  EXPECT_FALSE(fused_bn_relu_applies(torch::randn({2, 8, 4, 4}), {}, w));  // NCHW
  EXPECT_FALSE(fused_bn_relu_applies(cl.to(torch::kDouble), {}, w));
  EXPECT_FALSE(fused_bn_relu_applies(cl, torch::randn({2, 8, 4, 4}), w));  // residual in another layout
  EXPECT_FALSE(fused_bn_relu_applies(torch::randn({1, 8, 1, 1}), {}, w));  // one value per channel
  // The module: fused and unfused give the same result (within float rounding) in training, and eval mode
  // (running statistics) takes the unfused path.
  SplitBatchNorm2d fused_bn(8), plain_bn(8);
  plain_bn->set_fused(false);
  auto r = torch::randn({2, 8, 4, 4}).contiguous(torch::MemoryFormat::ChannelsLast);
  expect_close(fused_bn->forward_relu(cl, r), plain_bn->forward_relu(cl, r), 1e-5, "module, training");
  EXPECT_TRUE(torch::allclose(fused_bn->running_var, plain_bn->running_var, 1e-5, 1e-6));
  EXPECT_EQ(fused_bn->num_batches_tracked.item<int64_t>(), 1);
  fused_bn->eval();
  plain_bn->eval();
  expect_close(fused_bn->forward_relu(cl), plain_bn->forward_relu(cl), 1e-5, "module, eval");
  ResNet net(ResNetOptions().width(8).in_channels(1));
  EXPECT_EQ(set_fused_batchnorm(*net, false), 1 + 2 * 8 + 3);  // stem, two per block, three downsamples
}
