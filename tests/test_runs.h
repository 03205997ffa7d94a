// Helpers for tests that inspect run directories (metrics, checkpoints).
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "contrastive/train.h"

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

}  // namespace test_util
