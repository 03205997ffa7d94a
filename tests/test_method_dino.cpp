// DINO as a method (src/methods/dino.cpp, docs/methods.md §10): the teacher takes no gradient and follows the
// student by EMA after the step; the centre moves towards the teacher's batch mean; with multi-crop only the
// global crops reach the teacher; two epochs train through the CLI.
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

namespace {

MethodSpec dino_spec() {
  auto spec = test_util::small_method_spec("dino");
  method_option<int64_t>(spec.config, "prototypes") = 32;
  return spec;
}

std::vector<torch::Tensor> views_of(int64_t globals, int64_t locals) {
  std::vector<torch::Tensor> v;
  for (int64_t i = 0; i < globals; ++i) v.push_back(torch::randn({8, 3, 16, 16}));
  for (int64_t i = 0; i < locals; ++i) v.push_back(torch::randn({8, 3, 8, 8}));
  return v;
}

}  // namespace

TEST(DINO, TeacherTakesNoGradientAndFollowsTheStudentAfterTheStep) {
  torch::manual_seed(0);
  auto m = make_method(dino_spec());
  m->train();
  auto params = m->named_parameters();
  for (const auto& p : params)
    EXPECT_FALSE(p.key().rfind("teacher_", 0) == 0 && p.value().requires_grad()) << p.key();
  auto teacher_w = m->named_parameters()["teacher_head.net.0.weight"];
  auto student_w = m->named_parameters()["head.net.0.weight"];
  ASSERT_TRUE(teacher_w.defined() && student_w.defined());
  EXPECT_TRUE(teacher_w.equal(student_w));  // starts as a copy
  auto center0 = m->named_buffers()["loss.center"].clone();
  auto out = m->loss(views_of(2, 0), torch::zeros({8}, torch::kLong), torch::arange(8), StepContext{});
  EXPECT_TRUE(std::isfinite(out.terms["dino"].item<double>()));
  EXPECT_FALSE(m->named_buffers()["loss.center"].equal(center0));  // the centre moved
  out.total().backward();
  EXPECT_GT(student_w.grad().abs().sum().item<double>(), 0);
  {
    torch::NoGradGuard no_grad;
    student_w.add_(torch::ones_like(student_w));  // as if an optimizer step had moved the student
  }
  const auto before = teacher_w.clone();
  StepContext ctx;
  ctx.global_step = 0;
  ctx.total_steps = 10;
  m->after_step(ctx);  // τ = 0.996 at step 0
  auto expected = before * 0.996 + student_w.detach() * (1 - 0.996);
  EXPECT_TRUE(teacher_w.allclose(expected, 1e-5, 1e-6));
}

TEST(DINO, MultiCropLossEqualsTheFunctionalWithTheTeacherOnGlobalCropsOnly) {
  torch::manual_seed(2);
  auto m = make_method(dino_spec());
  m->train();
  auto views = views_of(2, 2);
  auto out = m->loss(views, torch::zeros({8}, torch::kLong), torch::arange(8), StepContext{});
  EXPECT_TRUE(std::isfinite(out.terms["dino"].item<double>()));
  // The same loss with the centre at its starting value (zeros), recomputed from the definition.
  auto net = std::dynamic_pointer_cast<ResNetImpl>(m->backbone());
  auto head = std::dynamic_pointer_cast<MLPImpl>(m->named_children()["head"]);
  auto tnet = std::dynamic_pointer_cast<ResNetImpl>(m->named_children()["teacher_backbone"]);
  auto thead = std::dynamic_pointer_cast<MLPImpl>(m->named_children()["teacher_head"]);
  ASSERT_TRUE(net && head && tnet && thead);
  torch::NoGradGuard no_grad;
  auto protos = m->named_parameters()["prototypes"], tprotos = m->named_buffers()["teacher_prototypes"];
  auto logits = [](MLPImpl& h, const torch::Tensor& p, const torch::Tensor& f) {
    return torch::mm(l2n(h.forward(f)), l2n(p).t());
  };
  auto s_global = logits(*head, protos, net->features(torch::cat({views[0], views[1]}))).chunk(2);
  auto s_local = logits(*head, protos, net->features(torch::cat({views[2], views[3]}))).chunk(2);
  auto t_global = logits(*thead, tprotos, tnet->features(torch::cat({views[0], views[1]}))).chunk(2);
  auto expected =
      functional::dino_loss({t_global[0], t_global[1]}, {s_global[0], s_global[1], s_local[0], s_local[1]},
                            torch::zeros({1, 32}), 0.04, 0.1);
  EXPECT_NEAR(out.terms["dino"].item<double>(), expected.item<double>(), 1e-4);
}

TEST(DINO, ThePrototypesGetNoGradientWhileFrozen) {
  torch::manual_seed(4);
  auto spec = dino_spec();
  method_option<int64_t>(spec.config, "freeze_last_epochs") = 1;
  auto m = make_method(spec);
  m->train();
  auto protos = m->named_parameters()["prototypes"];
  StepContext ctx;
  ctx.epoch = 0;
  m->loss(views_of(2, 0), torch::zeros({8}, torch::kLong), torch::arange(8), ctx).total().backward();
  EXPECT_FALSE(protos.grad().defined() && protos.grad().abs().sum().item<double>() > 0);
  ctx.epoch = 1;
  m->loss(views_of(2, 0), torch::zeros({8}, torch::kLong), torch::arange(8), ctx).total().backward();
  ASSERT_TRUE(protos.grad().defined());
  EXPECT_GT(protos.grad().abs().sum().item<double>(), 0);
}

TEST(DINO, LocalCropsBeforeGlobalOnesAreRefused) {
  auto spec = dino_spec();
  spec.config.augment.multi_crop = "4x14,2x28";
  try {
    validate(spec.config);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--multi-crop"), std::string::npos) << e.what();
  }
}

TEST(MethodCLI, DINOTrainsTwoEpochsWithMultiCrop) {
  REQUIRE_FASHION_MNIST();
  test_util::expect_trains_two_epochs("dino", "--prototypes 256 --multi-crop 2x28,2x14", "\ndino:\n");
}
