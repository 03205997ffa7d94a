// Evaluation: classifier top-k, weighted kNN monitor (§8), linear probe on the frozen backbone (§3), collapse.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "contrastive/data.h"
#include "contrastive/methods.h"

namespace contrastive {

struct Normalization {
  std::vector<double> mean, std;
};

// uint8 [B,C,H,W] -> normalised float on `device` (the `test` transform).
torch::Tensor normalize_images(const torch::Tensor& images, const Normalization& norm, torch::Device device);

// Accuracies and the ECE are fractions in [0, 1], like every accuracy of the library (metrics.jsonl, --json).
struct TopK {
  double top1 = 0, top5 = 0;
  double ece = 0;  // expected calibration error, 15 bins (CalibrationBins, docs/experiments.md)
  int64_t count = 0;
};

// Expected calibration error (Guo et al., ICML 2017; docs/experiments.md). Confidence is the largest class
// probability and the prediction its class. Sample i falls into bin b = ceil(conf_i * B) - 1 (clamped to
// [0, B-1]), so the bins are (0, 1/B], (1/B, 2/B], ..., ((B-1)/B, 1]. Per bin the sums are kept, not the means,
// so that the bins of several shards or batches add up exactly:
//   ECE = sum_b (|B_b| / N) * |acc(B_b) - conf(B_b)| = sum_b |correct_b - confidence_b| / N.
struct CalibrationBins {
  CalibrationBins() : CalibrationBins(15) {}
  explicit CalibrationBins(int64_t bins);  // bins < 1 -> InputError
  // probs [N, C] (rows are probability vectors, e.g. softmax of the logits), labels int64 [N]. A wrong shape, or
  // values outside [0, 1] (logits passed by mistake), -> InputError.
  void add(const torch::Tensor& probs, const torch::Tensor& labels);
  void add(const CalibrationBins& other);  // same number of bins, else InputError
  int64_t bins() const { return static_cast<int64_t>(count.size()); }
  double total() const;  // N
  double ece() const;    // 0 when N is 0
  // One entry per bin: samples, sum of their confidences, correct predictions among them.
  std::vector<double> count, confidence, correct;
};

// The ECE of one set of predictions: CalibrationBins(bins), add(probs, labels), ece().
double expected_calibration_error(const torch::Tensor& probs, const torch::Tensor& labels, int64_t bins = 15);

// Top-1/top-5 and the 15-bin ECE (of the softmax of the logits) of the method's classifier over a dataset, in
// eval mode, no grad.
TopK evaluate_classifier(MethodImpl& method, const Dataset& data, const Normalization& norm, torch::Device device,
                         int64_t batch_size = 512);

// Pre-head backbone features [N, D] (float, CPU) of a whole dataset with the test transform, eval mode.
torch::Tensor extract_features(MethodImpl& method, const Dataset& data, const Normalization& norm,
                               torch::Device device, int64_t batch_size = 512);

// Several processes (dist.h): each rank evaluates every world_size-th image and the results are combined
// (counts and calibration bins added; features gathered back into dataset order on every rank). One process: the
// functions above.
TopK evaluate_classifier_sharded(MethodImpl& method, const std::shared_ptr<Dataset>& data,
                                 const Normalization& norm, torch::Device device, int64_t batch_size = 512);
torch::Tensor extract_features_sharded(MethodImpl& method, const std::shared_ptr<Dataset>& data,
                                       const Normalization& norm, torch::Device device, int64_t batch_size = 512);

// Weighted kNN (§8): cosine similarity to the bank, top-k neighbours weighted exp(sim / t), class vote.
double knn_top1(const torch::Tensor& bank_features, const torch::Tensor& bank_labels,
                const torch::Tensor& query_features, const torch::Tensor& query_labels, int64_t num_classes,
                int64_t k = 200, double t = 0.1);

struct LinearProbeOptions {
  int64_t epochs = 30;
  int64_t batch_size = 256;
  double lr = 1.0;  // SGD on the normalised frozen features
  double momentum = 0.9;
  double weight_decay = 0.0;
  uint64_t seed = 0;
  // The share of the training features held out to choose the probe's epoch (a seeded draw), when no validation
  // features are given; 0 reports the last epoch.
  double val_fraction = 0.1;
};
struct LinearProbeResult {
  double top1 = 0;       // test top-1 at the epoch chosen on validation (the last epoch without validation)
  int64_t epoch = 0;     // that epoch, 1-based
  double val_top1 = 0;   // validation top-1 at that epoch (0 without validation)
  double top1_last = 0;  // test top-1 after the last epoch
  double top1_best = 0;  // the highest test top-1 of any epoch: chosen on test, for comparison with papers only
  int64_t train_count = 0, val_count = 0;
  std::vector<double> per_epoch;      // test top-1 per epoch
  std::vector<double> val_per_epoch;  // validation top-1 per epoch
};

// Linear classifier on frozen pre-head features (backbone in eval mode). Features are extracted once with the
// test transform (no augmentation), standardised with the training set's statistics, and a Linear layer is
// trained with SGD + cosine schedule. The epoch is chosen on validation features (`val_*`, or a seeded
// `val_fraction` of the training features when those are undefined), and the test top-1 of that epoch reported.
LinearProbeResult linear_probe(const torch::Tensor& train_features, const torch::Tensor& train_labels,
                               const torch::Tensor& test_features, const torch::Tensor& test_labels,
                               int64_t num_classes, const LinearProbeOptions& options,
                               const torch::Tensor& val_features = {}, const torch::Tensor& val_labels = {});

}  // namespace contrastive
