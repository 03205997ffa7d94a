#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <sstream>

#include "contrastive/common.h"
#include "contrastive/losses.h"
#include "contrastive/methods.h"
#include "contrastive/resolve.h"

using namespace contrastive;

namespace {
MethodSpec cds_spec(const std::string& arch, int64_t size, int64_t channels) {
  MethodSpec spec;
  spec.config.method.name = "cds";
  spec.config.model.arch = arch;
  spec.config.model.width = 4;
  spec.config.train.batch_size = 8;
  resolve_defaults(spec.config);
  spec.in_channels = channels;
  spec.image_size = size;
  spec.num_classes = 10;
  spec.train_size = 100;
  spec.train_labels = torch::arange(100, torch::kLong).remainder(10);
  return spec;
}

// A second method of `spec` holding the state `saved` (taken before the first one's forward moved its BN
// statistics), in train mode: the reference side of the hand-built loss sums below.
MethodPtr method_from_state(const MethodSpec& spec, torch::serialize::OutputArchive& saved) {
  auto ref = make_method(spec);
  std::stringstream ss;
  saved.save_to(ss);
  torch::serialize::InputArchive in;
  in.load_from(ss);
  ref->load(in);
  ref->train();
  return ref;
}
}  // namespace

TEST(CDS, HeadsMapEveryStageToTheLastStageWidthForEveryDepthAndSize) {
  for (std::string arch : {"resnet18", "resnet34", "resnet50"}) {
    for (int64_t size : {28, 32}) {
      for (std::string design : {"sepconv", "mlp"}) {
        auto spec = cds_spec(arch, size, size == 28 ? 1 : 3);
        method_option<std::string>(spec.config, "head") = design;
        auto m = make_method(spec);
        auto backbone = std::dynamic_pointer_cast<ResNetImpl>(m->backbone());
        ASSERT_TRUE(backbone);
        std::vector<int64_t> ch;
        for (int64_t s = 0; s < 4; ++s) ch.push_back(backbone->stage_channels(s));
        CDSHeads heads(ch, design);
        auto stages = backbone->stages(torch::randn({3, spec.in_channels, size, size}));
        auto emb = heads->forward(stages);
        ASSERT_EQ(emb.size(), 4u);
        for (const auto& e : emb) EXPECT_EQ(e.sizes(), (std::vector<int64_t>{3, ch[3]})) << arch << size << design;
      }
    }
  }
}

TEST(CDS, LossIsCEOnViewOnePlusWeightedSupConOverFourStages) {
  torch::manual_seed(1);
  auto spec = cds_spec("resnet18", 16, 3);
  method_option<std::vector<double>>(spec.config, "weights") = {1, 0.5, 0, 2};
  auto m = make_method(spec);
  m->train();
  auto v1 = torch::randn({8, 3, 16, 16}), v2 = torch::randn({8, 3, 16, 16});
  auto y = torch::tensor({0, 1, 2, 3, 0, 1, 2, 3}, torch::kLong);
  auto idx = torch::arange(8, torch::kLong);
  // The method's forward updates BN running stats; compare against a hand-built sum on a copy of the state.
  torch::serialize::OutputArchive saved;
  m->save(saved);
  auto terms = m->loss({v1, v2}, y, idx, StepContext{});
  EXPECT_EQ(terms.terms.count("contrast_s3"), 0u);  // weight 0 drops the stage

  auto ref = method_from_state(spec, saved);
  auto backbone = std::dynamic_pointer_cast<ResNetImpl>(ref->backbone());
  auto heads = std::dynamic_pointer_cast<CDSHeadsImpl>(ref->named_children()["heads"]);
  ASSERT_TRUE(heads);
  auto stages = backbone->stages(torch::cat({v1, v2}));
  auto emb = heads->forward(stages);
  auto logits = backbone->fc(emb[3]).narrow(0, 0, 8);
  double expected = torch::nn::functional::cross_entropy(logits, y).item<double>();
  const double w[4] = {1, 0.5, 0, 2};
  for (int l = 0; l < 4; ++l) {
    auto e = torch::nn::functional::normalize(emb[l], torch::nn::functional::NormalizeFuncOptions().dim(1));
    auto f = torch::stack({e.narrow(0, 0, 8), e.narrow(0, 8, 8)}, 1);
    expected +=
        0.1 * w[l] * functional::supcon_loss(f, y, {}, SupConLossOptions().temperature(0.07)).item<double>();
  }
  EXPECT_NEAR(terms.total().item<double>(), expected, 1e-5);
}

TEST(CDS, SimCLRVariantUsesNoLabels) {
  torch::manual_seed(2);
  auto spec = cds_spec("resnet18", 16, 3);
  method_option<std::string>(spec.config, "loss") = "simclr";
  auto m = make_method(spec);
  m->eval();  // deterministic BN so both calls see the same features
  auto v1 = torch::randn({8, 3, 16, 16}), v2 = torch::randn({8, 3, 16, 16});
  auto idx = torch::arange(8, torch::kLong);
  auto a = m->loss({v1, v2}, torch::zeros({8}, torch::kLong), idx, StepContext{});
  auto b = m->loss({v1, v2}, torch::arange(8, torch::kLong), idx, StepContext{});
  // Labels change CE but not the label-free contrastive terms.
  EXPECT_NEAR(a.terms["contrast_s2"].item<double>(), b.terms["contrast_s2"].item<double>(), 1e-6);
  EXPECT_NE(a.terms["ce"].item<double>(), b.terms["ce"].item<double>());
}

TEST(CDS, LabelSplitIsStratifiedAndSeeded) {
  auto labels = torch::arange(1000, torch::kLong).remainder(10);
  auto m = choose_labeled(labels, 0.1, 0, 7);
  EXPECT_EQ(m.sum().item<int64_t>(), 100);
  for (int64_t c = 0; c < 10; ++c) EXPECT_EQ(m.index({labels == c}).sum().item<int64_t>(), 10);
  EXPECT_TRUE(m.equal(choose_labeled(labels, 0.1, 0, 7)));
  EXPECT_FALSE(m.equal(choose_labeled(labels, 0.1, 0, 8)));
  auto p = choose_labeled(labels, 1.0, 3, 7);
  EXPECT_EQ(p.sum().item<int64_t>(), 30);
}

TEST(CDS, SemiSupervisedLossIgnoresLabelsOfUnlabelledImages) {
  torch::manual_seed(3);
  auto spec = cds_spec("resnet18", 16, 3);
  method_option<double>(spec.config, "labeled_fraction") = 0.5;
  spec.train_labels = torch::arange(8, torch::kLong).remainder(4);
  spec.train_size = 8;
  auto m = make_method(spec);
  m->eval();
  auto labeled = m->named_buffers()["labeled"];
  ASSERT_EQ(labeled.sum().item<int64_t>(), 4);
  auto v1 = torch::randn({8, 3, 16, 16}), v2 = torch::randn({8, 3, 16, 16});
  auto idx = torch::arange(8, torch::kLong);
  auto y = spec.train_labels.clone();
  auto a = m->loss({v1, v2}, y, idx, StepContext{});
  auto y2 = y.clone();
  y2.index_put_({~labeled}, (y2.index({~labeled}) + 1).remainder(4));  // change only unlabelled labels
  auto b = m->loss({v1, v2}, y2, idx, StepContext{});
  EXPECT_NEAR(a.total().item<double>(), b.total().item<double>(), 1e-6);
}

TEST(CDS, InferenceModelHasExactlyTheParametersOfCE) {
  auto spec = cds_spec("resnet18", 32, 3);
  auto cds = make_method(spec);
  auto ce_spec = spec;
  ce_spec.config.method.name = "ce";
  auto ce = make_method(ce_spec);
  auto a = cds->backbone()->named_parameters();
  auto b = ce->backbone()->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& p : b) {
    ASSERT_TRUE(a.contains(p.key())) << p.key();
    EXPECT_EQ(a[p.key()].sizes(), p.value().sizes());
  }
  EXPECT_EQ(count_parameters(*cds->backbone()), count_parameters(*ce->backbone()));
  EXPECT_GT(count_parameters(*cds), count_parameters(*ce));  // the heads exist only in training
  auto x = torch::randn({2, 3, 32, 32});
  cds->eval();
  EXPECT_EQ(cds->classify(x).sizes(), (std::vector<int64_t>{2, 10}));
}

TEST(CDS, DSNVariantIsCEOfAClassifierOnEachAuxiliaryHead) {
  torch::manual_seed(4);
  auto spec = cds_spec("resnet18", 16, 3);
  method_option<std::string>(spec.config, "loss") = "ce";
  method_option<std::vector<double>>(spec.config, "weights") = {1, 0.5, 2, 3};  // w_4 is not used with ce
  auto m = make_method(spec);
  auto backbone = std::dynamic_pointer_cast<ResNetImpl>(m->backbone());
  const int64_t last = backbone->stage_channels(3);
  auto aux = std::dynamic_pointer_cast<torch::nn::ModuleListImpl>(m->named_children()["aux_fc"]);
  ASSERT_TRUE(aux);  // the classifiers: one per auxiliary head, outside the backbone (dropped at inference)
  ASSERT_EQ(aux->size(), 3u);
  for (size_t l = 0; l < 3; ++l) {
    EXPECT_EQ(aux->at<torch::nn::LinearImpl>(l).weight.sizes(), (std::vector<int64_t>{10, last}));
  }
  EXPECT_FALSE(make_method(cds_spec("resnet18", 16, 3))->named_children().contains("aux_fc"));  // supcon: none
  EXPECT_EQ(count_parameters(*m->backbone()),
            count_parameters(*make_method(cds_spec("resnet18", 16, 3))->backbone()));

  m->train();
  auto v1 = torch::randn({8, 3, 16, 16}), v2 = torch::randn({8, 3, 16, 16});
  auto y = torch::tensor({0, 1, 2, 3, 0, 1, 2, 3}, torch::kLong);
  auto idx = torch::arange(8, torch::kLong);
  torch::serialize::OutputArchive saved;
  m->save(saved);
  auto out = m->loss({v1, v2}, y, idx, StepContext{});
  std::vector<std::string> names;
  for (const auto& [name, term] : out.terms) {
    names.push_back(name);
    EXPECT_TRUE(std::isfinite(term.item<double>())) << name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"ce", "ce_s1", "ce_s2", "ce_s3"}));  // no contrastive terms

  // By hand on a copy of the state: CE(fc(e_4)) + λ Σ_{l=1..3} w_l CE(aux_l(e_l)), all on view 1.
  auto ref = method_from_state(spec, saved);
  auto rb = std::dynamic_pointer_cast<ResNetImpl>(ref->backbone());
  auto heads = std::dynamic_pointer_cast<CDSHeadsImpl>(ref->named_children()["heads"]);
  auto raux = std::dynamic_pointer_cast<torch::nn::ModuleListImpl>(ref->named_children()["aux_fc"]);
  ASSERT_TRUE(heads && raux);
  auto emb = heads->forward(rb->stages(torch::cat({v1, v2})));
  namespace F = torch::nn::functional;
  double expected = F::cross_entropy(rb->fc(emb[3]).narrow(0, 0, 8), y).item<double>();
  const double w[3] = {1, 0.5, 2};
  for (size_t l = 0; l < 3; ++l) {
    auto logits = raux->at<torch::nn::LinearImpl>(l).forward(emb[l].narrow(0, 0, 8));
    expected += 0.1 * w[l] * F::cross_entropy(logits, y).item<double>();
  }
  EXPECT_NEAR(out.total().item<double>(), expected, 1e-5);

  out.total().backward();
  double g_backbone = 0, g_aux = 0;
  for (auto& p : m->backbone()->parameters())
    if (p.grad().defined()) g_backbone += p.grad().abs().sum().item<double>();
  for (auto& p : aux->parameters())
    if (p.grad().defined()) g_aux += p.grad().abs().sum().item<double>();
  EXPECT_GT(g_backbone, 0);
  EXPECT_GT(g_aux, 0);
}

TEST(CDS, DSNVariantSemiSupervisedUsesOnlyTheLabelledImages) {
  torch::manual_seed(6);
  auto spec = cds_spec("resnet18", 16, 3);
  method_option<std::string>(spec.config, "loss") = "ce";
  method_option<double>(spec.config, "labeled_fraction") = 0.5;
  spec.train_labels = torch::arange(8, torch::kLong).remainder(4);
  spec.train_size = 8;
  auto m = make_method(spec);
  m->eval();
  auto labeled = m->named_buffers()["labeled"];
  auto v1 = torch::randn({8, 3, 16, 16}), v2 = torch::randn({8, 3, 16, 16});
  auto idx = torch::arange(8, torch::kLong);
  auto y = spec.train_labels.clone();
  auto a = m->loss({v1, v2}, y, idx, StepContext{});
  auto y2 = y.clone();
  y2.index_put_({~labeled}, (y2.index({~labeled}) + 1).remainder(4));  // change only unlabelled labels
  auto b = m->loss({v1, v2}, y2, idx, StepContext{});
  EXPECT_NEAR(a.terms["ce_s2"].item<double>(), b.terms["ce_s2"].item<double>(), 1e-6);
  EXPECT_NEAR(a.total().item<double>(), b.total().item<double>(), 1e-6);
  auto y3 = y.clone();
  y3.index_put_({labeled}, (y3.index({labeled}) + 1).remainder(4));  // the labelled ones do count
  EXPECT_GT(std::abs(m->loss({v1, v2}, y3, idx, StepContext{}).terms["ce_s2"].item<double>() -
                     a.terms["ce_s2"].item<double>()),
            1e-6);
}

TEST(CDS, StageLossValidationNamesTheFlagAndTheChoices) {
  for (std::string loss : {"supcon", "simclr", "ce"}) {
    Config c;
    c.method.name = "cds";
    method_option<std::string>(c, "loss") = loss;
    resolve_defaults(c);
    EXPECT_NO_THROW(validate(c)) << loss;
  }
  Config c;
  c.method.name = "cds";
  method_option<std::string>(c, "loss") = "dsn";
  resolve_defaults(c);
  try {
    validate(c);
    FAIL() << "--cds-loss dsn was accepted";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("--cds-loss"), std::string::npos) << what;
    EXPECT_NE(what.find("ce, simclr, supcon"), std::string::npos) << what;
  }
}
