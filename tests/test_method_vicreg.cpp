// VICReg as a method (src/methods/vicreg.cpp, docs/methods.md §10): the loss terms are the functional terms of
// the expander outputs, weighted; gradients reach the backbone; two epochs train through the CLI.
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

TEST(VICReg, TermsAreTheWeightedFunctionalTermsOfTheExpanderOutputs) {
  torch::manual_seed(0);
  auto spec = test_util::small_method_spec("vicreg");
  method_option<double>(spec.config, "var_weight") = 10;
  auto m = make_method(spec);
  m->train();
  std::vector<torch::Tensor> views{torch::randn({8, 3, 16, 16}), torch::randn({8, 3, 16, 16})};
  auto out = m->loss(views, torch::zeros({8}, torch::kLong), torch::arange(8), StepContext{});
  ASSERT_EQ(out.terms.size(), 3u);
  // Recomputed outside the method: the same modules in train mode give the same batch statistics.
  auto expander = std::dynamic_pointer_cast<MLPImpl>(m->named_children()["expander"]);
  auto net = std::dynamic_pointer_cast<ResNetImpl>(m->backbone());
  ASSERT_TRUE(expander && net);
  EXPECT_EQ(expander->forward(net->features(views[0])).size(1), 4 * net->feature_dim());  // -1: 4 x features
  torch::NoGradGuard no_grad;
  auto t = functional::vicreg_terms(expander->forward(net->features(views[0])),
                                    expander->forward(net->features(views[1])));
  EXPECT_NEAR(out.terms["invariance"].item<double>(), 25 * t.invariance.item<double>(), 1e-4);
  EXPECT_NEAR(out.terms["variance"].item<double>(), 10 * t.variance.item<double>(), 1e-4);
  EXPECT_NEAR(out.terms["covariance"].item<double>(), 1 * t.covariance.item<double>(), 1e-4);
}

TEST(VICReg, GradientReachesTheBackbone) {
  torch::manual_seed(1);
  auto m = make_method(test_util::small_method_spec("vicreg"));
  EXPECT_GT(test_util::backbone_gradient_after_one_loss(*m), 0);
}

TEST(VICReg, BadOptionsAreRefusedNamingTheFlag) {
  auto spec = test_util::small_method_spec("vicreg");
  method_option<double>(spec.config, "cov_weight") = -1;
  try {
    validate(spec.config);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--vicreg-cov"), std::string::npos) << e.what();
  }
}

TEST(MethodCLI, VICRegTrainsTwoEpochs) {
  REQUIRE_FASHION_MNIST();
  test_util::expect_trains_two_epochs("vicreg", "", "\nvicreg:\n");
}
