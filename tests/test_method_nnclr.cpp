// NNCLR as a method (src/methods/nnclr.cpp, docs/methods.md §10): the loss uses the support set as it was
// before the step, then the batch's normalised view-1 projections enter it at the pointer (wrapping around);
// two epochs train through the CLI.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "contrastive/losses.h"
#include "contrastive/method.h"
#include "contrastive/methods.h"
#include "test_runs.h"
#include "test_util.h"

using namespace contrastive;

namespace {

MethodSpec nnclr_spec(int64_t support) {
  auto spec = test_util::small_method_spec("nnclr");
  method_option<int64_t>(spec.config, "support_size") = support;
  return spec;
}

}  // namespace

TEST(NNCLR, LossUsesTheOldSupportSetThenEnqueuesTheNormalisedProjections) {
  torch::manual_seed(0);
  auto m = make_method(nnclr_spec(12));
  m->train();
  auto support0 = m->named_buffers()["support"].clone();
  ASSERT_EQ(support0.size(0), 12);
  std::vector<torch::Tensor> views{torch::randn({8, 3, 16, 16}), torch::randn({8, 3, 16, 16})};
  // The expected loss from the same modules, against the support set before the step.
  auto projector = std::dynamic_pointer_cast<MLPImpl>(m->named_children()["projector"]);
  auto predictor = std::dynamic_pointer_cast<MLPImpl>(m->named_children()["predictor"]);
  auto net = std::dynamic_pointer_cast<ResNetImpl>(m->backbone());
  ASSERT_TRUE(projector && predictor && net);
  torch::Tensor expected, z1;
  {
    torch::NoGradGuard no_grad;
    z1 = projector->forward(net->features(views[0]));
    auto z2 = projector->forward(net->features(views[1]));
    expected = functional::nnclr_loss(z1, z2, predictor->forward(z1), predictor->forward(z2), support0);
  }
  auto out = m->loss(views, torch::zeros({8}, torch::kLong), torch::arange(8), StepContext{});
  EXPECT_NEAR(out.terms["nnclr"].item<double>(), expected.item<double>(), 1e-4);
  auto support1 = m->named_buffers()["support"];
  EXPECT_TRUE(support1.narrow(0, 0, 8).allclose(l2n(z1), 1e-5, 1e-5));    // rows 0..7: this batch
  EXPECT_TRUE(support1.narrow(0, 8, 4).equal(support0.narrow(0, 8, 4)));  // the rest untouched
  EXPECT_EQ(m->named_buffers()["support_ptr"].item<int64_t>(), 8);
  // The next batch wraps around: rows 8..11, then 0..3.
  m->loss(views, torch::zeros({8}, torch::kLong), torch::arange(8), StepContext{});
  EXPECT_EQ(m->named_buffers()["support_ptr"].item<int64_t>(), 4);
}

TEST(NNCLR, GradientReachesTheBackboneButNotTheSupportSet) {
  torch::manual_seed(1);
  auto m = make_method(nnclr_spec(32));
  EXPECT_GT(test_util::backbone_gradient_after_one_loss(*m), 0);
  EXPECT_FALSE(m->named_buffers()["support"].requires_grad());
}

TEST(MethodCLI, NNCLRTrainsTwoEpochs) {
  REQUIRE_FASHION_MNIST();
  test_util::expect_trains_two_epochs("nnclr", "--support-size 512", "support_size: 512");
}
