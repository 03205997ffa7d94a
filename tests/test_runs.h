// Helpers for tests that inspect run directories (metrics, checkpoints).
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "contrastive/train.h"
#include "test_util.h"

namespace test_util {

// The records of RUN/metrics.jsonl.
inline std::vector<nlohmann::json> read_metrics(const std::string& run) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// Every parameter and buffer of two checkpoints' models, compared bit for bit.
inline bool same_weights(const std::string& a, const std::string& b) {
  auto ma = contrastive::load_model(a, nullptr, "cpu");
  auto mb = contrastive::load_model(b, nullptr, "cpu");
  auto pa = ma.method->named_parameters(), pb = mb.method->named_parameters();
  auto ba = ma.method->named_buffers(), bb = mb.method->named_buffers();
  if (pa.size() != pb.size() || ba.size() != bb.size()) return false;
  for (const auto& p : pa)
    if (!pb.contains(p.key()) || !p.value().equal(pb[p.key()])) return false;
  for (const auto& p : ba)
    if (!bb.contains(p.key()) || !p.value().equal(bb[p.key()])) return false;
  return true;
}

// A MethodSpec for unit tests of a method: width 4, batch `batch`, 3-channel 16x16 images, 10 classes, 100
// training images (labels 0..9 repeating), the method's defaults resolved.
inline contrastive::MethodSpec small_method_spec(const std::string& method, int64_t batch = 8) {
  contrastive::MethodSpec spec;
  spec.config.method.name = method;
  spec.config.model.width = 4;
  spec.config.train.batch_size = batch;
  if (method == "amdim") spec.config.model.arch = "amdim";
  if (method == "moco") contrastive::method_option<int64_t>(spec.config, "queue_size") = 4 * batch;
  contrastive::resolve_defaults(spec.config);
  spec.in_channels = 3;
  spec.image_size = 16;
  spec.num_classes = 10;
  spec.train_size = 100;
  spec.train_labels = torch::arange(100, torch::kLong).remainder(10);
  return spec;
}

// Trains `method` for 2 epochs through the CLI on the quick slice (test_util::quick_flags, plus `extra`):
// exit 0, one record per epoch with a finite loss and the kNN monitor, and `in_config` in config.yaml.
inline void expect_trains_two_epochs(const std::string& method, const std::string& extra,
                                     const std::string& in_config) {
  const auto out = temp_dir(method) + "/run";
  auto r = run_cli("train --method " + method + " " + extra + " --epochs 2 " + quick_flags() + " --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  auto metrics = read_metrics(out);
  ASSERT_EQ(metrics.size(), 2u);
  for (const auto& rec : metrics) {
    EXPECT_TRUE(std::isfinite(rec["loss"].get<double>())) << method;
    EXPECT_TRUE(rec.contains("knn_top1")) << method;  // self-supervised: the kNN monitor is on by default
  }
  std::ifstream in(out + "/config.yaml");
  std::stringstream yaml;
  yaml << in.rdbuf();
  EXPECT_NE(yaml.str().find(in_config), std::string::npos) << yaml.str();
}

// Sum of |gradient| over the backbone's parameters after one backward of the method's loss on two random views.
inline double backbone_gradient_after_one_loss(contrastive::MethodImpl& m, int64_t batch = 8) {
  m.train();
  std::vector<torch::Tensor> views{torch::randn({batch, 3, 16, 16}), torch::randn({batch, 3, 16, 16})};
  m.loss(views, torch::zeros({batch}, torch::kLong), torch::arange(batch), contrastive::StepContext{})
      .total()
      .backward();
  double g = 0;
  for (auto& p : m.backbone()->parameters())
    if (p.grad().defined()) g += p.grad().abs().sum().item<double>();
  return g;
}

}  // namespace test_util
