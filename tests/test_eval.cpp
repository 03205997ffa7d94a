// Evaluation: expected calibration error (docs/experiments.md) and the classifier evaluation that reports it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "contrastive/common.h"
#include "contrastive/eval.h"
#include "test_runs.h"

using namespace contrastive;

namespace {

// Rows of 4-class probabilities: the largest, `conf`, at class `pred`; the rest shared evenly by the others.
torch::Tensor probability_rows(const std::vector<double>& conf, const std::vector<int64_t>& pred) {
  auto p = torch::empty({static_cast<int64_t>(conf.size()), 4}, torch::kDouble);
  for (size_t i = 0; i < conf.size(); ++i) {
    const auto r = static_cast<int64_t>(i);
    p[r].fill_((1.0 - conf[i]) / 3.0);
    p[r][pred[i]] = conf[i];
  }
  return p;
}

}  // namespace

TEST(Calibration, ExpectedCalibrationErrorMatchesAHandComputation) {
  // Eight samples, 15 bins of width 1/15; bin b = ceil(15 * conf) - 1:
  //   conf 0.95, 0.95, 0.99 -> bin 14 (14/15, 1]:      correct, wrong, correct  -> 3 samples, conf sum 2.89, 2
  //   hits conf 0.85, 0.85       -> bin 12 (12/15, 13/15]:  correct, correct         -> 2 samples, conf sum 1.70,
  //   2 hits conf 0.55, 0.55       -> bin 8  (8/15, 9/15]:    correct, wrong           -> 2 samples, conf
  //   sum 1.10, 1 hit conf 0.30             -> bin 4  (4/15, 5/15]:    wrong                    -> 1 sample,  conf
  //   sum 0.30, 0 hits
  // ECE = sum_b |B_b|/N * |acc_b - conf_b| = 3/8 |2/3 - 2.89/3| + 2/8 |1 - 0.85| + 2/8 |0.5 - 0.55| + 1/8 |0 -
  // 0.3|
  //     = (0.89 + 0.30 + 0.10 + 0.30) / 8 = 0.19875.
  const std::vector<double> conf{0.95, 0.95, 0.99, 0.85, 0.85, 0.55, 0.55, 0.30};
  const std::vector<int64_t> pred{0, 1, 2, 3, 0, 1, 2, 3};
  auto labels = torch::tensor({0, 2, 2, 3, 0, 1, 3, 0}, torch::kLong);  // wrong: samples 1, 6 and 7
  auto probs = probability_rows(conf, pred);
  EXPECT_NEAR(expected_calibration_error(probs, labels), 0.19875, 1e-12);
  // One bin: |overall accuracy - mean confidence| = |5 - 5.99| / 8.
  EXPECT_NEAR(expected_calibration_error(probs, labels, 1), 0.12375, 1e-12);

  CalibrationBins bins;
  bins.add(probs, labels);
  EXPECT_DOUBLE_EQ(bins.total(), 8);
  EXPECT_DOUBLE_EQ(bins.count[14], 3);
  EXPECT_NEAR(bins.confidence[14], 2.89, 1e-12);
  EXPECT_DOUBLE_EQ(bins.correct[14], 2);
  EXPECT_DOUBLE_EQ(bins.count[12], 2);
  EXPECT_DOUBLE_EQ(bins.count[8], 2);
  EXPECT_DOUBLE_EQ(bins.count[4], 1);
  EXPECT_DOUBLE_EQ(bins.count[13], 0);
}

TEST(Calibration, BinsOfShardsAddUpToTheWhole) {
  // evaluate_classifier_sharded adds the ranks' bins: the ECE of the sum must be the ECE of all samples.
  torch::manual_seed(5);
  auto probs = torch::softmax(3 * torch::randn({50, 6}, torch::kDouble), 1);
  auto labels = torch::randint(0, 6, {50}, torch::kLong);
  CalibrationBins a, b;
  a.add(probs.narrow(0, 0, 17), labels.narrow(0, 0, 17));
  b.add(probs.narrow(0, 17, 33), labels.narrow(0, 17, 33));
  a.add(b);
  EXPECT_NEAR(a.ece(), expected_calibration_error(probs, labels), 1e-12);
  EXPECT_GT(a.ece(), 0.0);
  EXPECT_THROW(a.add(CalibrationBins(10)), InputError);
}

TEST(Calibration, CalibratedPredictionsGiveZeroAndConfidentMistakesGiveTheConfidence) {
  // Ten samples at confidence 0.8 with 8 correct, four at 0.5 with 2 correct: every bin's accuracy equals its
  // confidence.
  std::vector<double> conf(10, 0.8);
  conf.insert(conf.end(), 4, 0.5);
  const std::vector<int64_t> pred(14, 1);
  auto labels = torch::ones({14}, torch::kLong);
  labels[0] = 0;
  labels[1] = 2;  // 8 of the ten 0.8-samples right
  labels[10] = 3;
  labels[11] = 0;  // 2 of the four 0.5-samples right
  EXPECT_NEAR(expected_calibration_error(probability_rows(conf, pred), labels), 0.0, 1e-12);

  // All wrong at confidence 0.99: ECE = 0.99. All right at confidence 1 (the last bin includes 1): ECE = 0.
  const std::vector<int64_t> zeros(6, 0);
  EXPECT_NEAR(expected_calibration_error(probability_rows(std::vector<double>(6, 0.99), zeros),
                                         torch::ones({6}, torch::kLong)),
              0.99, 1e-12);
  EXPECT_NEAR(expected_calibration_error(probability_rows(std::vector<double>(6, 1.0), zeros),
                                         torch::zeros({6}, torch::kLong)),
              0.0, 1e-12);
  EXPECT_EQ(expected_calibration_error(torch::empty({0, 4}, torch::kDouble), torch::empty({0}, torch::kLong)),
            0.0);
}

TEST(Calibration, RefusesLogitsBadShapesAndNoBins) {
  auto labels = torch::zeros({3}, torch::kLong);
  EXPECT_THROW(expected_calibration_error(torch::full({3, 4}, 2.5), labels), InputError);  // logits, not probs
  EXPECT_THROW(expected_calibration_error(torch::full({3, 4}, -0.5), labels), InputError);
  EXPECT_THROW(expected_calibration_error(torch::full({3, 4}, 0.25), torch::zeros({2}, torch::kLong)), InputError);
  EXPECT_THROW(expected_calibration_error(torch::full({3}, 0.25), labels), InputError);
  EXPECT_THROW(expected_calibration_error(torch::full({3, 4}, 0.25), labels, 0), InputError);
}

TEST(Calibration, EvaluateClassifierReportsTheECEOfItsSoftmax) {
  torch::manual_seed(9);
  auto spec = test_util::small_method_spec("ce");
  auto m = make_method(spec);
  auto images = torch::randint(0, 256, {20, 3, 16, 16}, torch::kLong).to(torch::kUInt8);
  auto labels = torch::arange(20, torch::kLong).remainder(10);
  TensorDataset data(images, labels, std::vector<std::string>(10, "c"));
  const Normalization norm{{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
  m->train();
  const TopK top = evaluate_classifier(*m, data, norm, torch::kCPU, /*batch_size=*/7);  // three batches
  EXPECT_TRUE(m->is_training());                                                        // the flag is restored
  EXPECT_EQ(top.count, 20);

  m->eval();
  torch::NoGradGuard no_grad;
  auto logits = m->classify(normalize_images(images, norm, torch::kCPU)).to(torch::kDouble);
  const double ece = expected_calibration_error(torch::softmax(logits, 1), labels);
  EXPECT_GT(ece, 0.0);  // an untrained classifier is not calibrated on random images
  EXPECT_NEAR(top.ece, ece, 1e-6);
  EXPECT_NEAR(top.top1, logits.argmax(1).eq(labels).to(torch::kDouble).mean().item<double>(), 1e-12);
}
