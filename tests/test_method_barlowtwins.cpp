// Barlow Twins as a method (src/methods/barlowtwins.cpp, docs/methods.md §10): its loss is the functional loss
// of the projector outputs; gradients reach the backbone; two epochs train through the CLI.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "contrastive/losses.h"
#include "contrastive/method.h"
#include "contrastive/methods.h"
#include "contrastive/resolve.h"
#include "test_runs.h"
#include "test_util.h"

using namespace contrastive;

TEST(BarlowTwins, LossIsTheFunctionalLossOfTheProjectorOutputs) {
  torch::manual_seed(0);
  auto spec = test_util::small_method_spec("barlowtwins");
  method_option<double>(spec.config, "lambda") = 0.01;
  method_option<int64_t>(spec.config, "projector_dim") = 24;
  auto m = make_method(spec);
  m->train();
  std::vector<torch::Tensor> views{torch::randn({8, 3, 16, 16}), torch::randn({8, 3, 16, 16})};
  auto out = m->loss(views, torch::zeros({8}, torch::kLong), torch::arange(8), StepContext{});
  auto projector = std::dynamic_pointer_cast<MLPImpl>(m->named_children()["projector"]);
  auto net = std::dynamic_pointer_cast<ResNetImpl>(m->backbone());
  ASSERT_TRUE(projector && net);
  torch::NoGradGuard no_grad;
  auto z1 = projector->forward(net->features(views[0])), z2 = projector->forward(net->features(views[1]));
  EXPECT_EQ(z1.size(1), 24);
  const double expected =
      functional::barlow_twins_loss(z1, z2, BarlowTwinsLossOptions().lambda(0.01)).item<double>();
  EXPECT_NEAR(out.terms["barlowtwins"].item<double>(), expected, 1e-4 * std::max(1.0, expected));
}

TEST(BarlowTwins, GradientReachesTheBackbone) {
  torch::manual_seed(1);
  auto m = make_method(test_util::small_method_spec("barlowtwins"));
  EXPECT_GT(test_util::backbone_gradient_after_one_loss(*m), 0);
}

TEST(BarlowTwins, BadOptionsAreRefusedNamingTheFlag) {
  auto spec = test_util::small_method_spec("barlowtwins");
  method_option<double>(spec.config, "lambda") = -0.5;
  try {
    validate(spec.config);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--barlow-lambda"), std::string::npos) << e.what();
  }
}

TEST(MethodCLI, BarlowTwinsTrainsTwoEpochs) {
  REQUIRE_FASHION_MNIST();
  test_util::expect_trains_two_epochs("barlowtwins", "", "\nbarlowtwins:\n");
}
