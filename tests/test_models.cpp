#include <gtest/gtest.h>
#include <torch/torch.h>

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
