// End-to-end tests of the `contrastive` binary on slices of the real Fashion-MNIST.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "contrastive/io.h"
#include "contrastive/platform.h"
#include "contrastive/registry.h"
#include "contrastive/train.h"
#include "test_runs.h"
#include "test_util.h"

using namespace contrastive;
using test_util::read_metrics;
using test_util::run_cli;
using test_util::same_weights;

TEST(CLI, BadInputsGiveOneLineErrorsAndExitTwo) {
  struct Case {
    std::string args, needle;
  };
  const std::vector<Case> cases = {
      {"train --lr -1", "--lr"},
      {"train --batch-size 0", "--batch-size"},
      {"train --method nope", "--method"},
      {"train --dataset imagenet", "--dataset"},
      {"train --dataset cifar10 --data /nonexistent/cifar", "/nonexistent/cifar"},
      {"train --epochs many", "--epochs"},
      {"train --config /nonexistent.yaml", "nonexistent.yaml"},
      {"train --resume /nonexistent/run", "/nonexistent/run"},
      {"eval --checkpoint /nonexistent.ckpt", "nonexistent.ckpt"},
      {"frobnicate", ""},
  };
  for (const auto& c : cases) {
    auto r = run_cli(c.args);
    EXPECT_EQ(r.status, 2) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_EQ(r.output.find("Exception raised from"), std::string::npos) << r.output;  // no raw torch trace
  }
}

TEST(CLI, HelpOnEverySubcommand) {
  for (const char* sub : {"train", "eval", "knn", "linear"}) {
    auto r = run_cli(std::string(sub) + " --help");
    EXPECT_EQ(r.status, 0) << sub;
    EXPECT_NE(r.output.find("--"), std::string::npos);
  }
  auto r = run_cli("train --help");
  EXPECT_NE(r.output.find("--method"), std::string::npos);
  EXPECT_NE(r.output.find("--cds-lambda"), std::string::npos);
}

TEST(CLI, TrainWritesTheRunDirectoryAndEvalReadsIt) {
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("cli-train");
  auto r = run_cli("train --method ce --epochs 2 --seed 3 " + test_util::quick_flags() + " --out " + dir + "/run");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* f : {"config.yaml", "metrics.jsonl", "last.ckpt", "best.ckpt", "train.log"})
    EXPECT_TRUE(std::filesystem::exists(dir + "/run/" + f)) << f;
  auto metrics = read_metrics(dir + "/run");
  ASSERT_EQ(metrics.size(), 2u);
  for (const char* k : {"epoch", "loss", "lr", "train_top1", "test_top1", "test_ece", "train_clean_top1",
                        "images_per_s", "seconds"})
    EXPECT_TRUE(metrics[0].contains(k)) << k;
  for (const char* k : {"test_ece", "train_clean_top1"}) {
    const double v = metrics[1][k].get<double>();
    EXPECT_TRUE(v >= 0 && v <= 1) << k << " " << v;  // fractions, like top-1
  }
  EXPECT_LT(metrics[1]["loss"].get<double>(), metrics[0]["loss"].get<double>());
  EXPECT_NE(r.output.find("intra-op threads"), std::string::npos);

  auto e = run_cli("eval --checkpoint " + dir + "/run/last.ckpt --json --threads 2");
  ASSERT_EQ(e.status, 0) << e.output;
  auto j = nlohmann::json::parse(e.output.substr(e.output.find('{')));
  EXPECT_NEAR(j["top1"].get<double>(), metrics[1]["test_top1"].get<double>(), 1e-9);
  EXPECT_GE(j["top5"].get<double>(), j["top1"].get<double>());
  EXPECT_NEAR(j["ece"].get<double>(), metrics[1]["test_ece"].get<double>(), 1e-5);  // continuous in the logits

  // A finished run is never overwritten by a fresh one.
  auto clash = run_cli("train --method ce --epochs 1 " + test_util::quick_flags() + " --out " + dir + "/run");
  EXPECT_EQ(clash.status, 2) << clash.output;
  EXPECT_NE(clash.output.find("--resume"), std::string::npos) << clash.output;
  EXPECT_EQ(read_metrics(dir + "/run").size(), 2u);

  // The written config reloads and reproduces the same run.
  auto again = run_cli("train --config " + dir + "/run/config.yaml --out " + dir + "/run2");
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_TRUE(same_weights(dir + "/run/last.ckpt", dir + "/run2/last.ckpt"));
}

TEST(CLI, ResumedRunEndsWithTheSameWeights) {
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("cli-resume");
  for (std::string method : {"ce", "cds"}) {
    const std::string base =
        "train --method " + method + " --seed 5 " + test_util::quick_flags() + " --out " + dir;
    auto full = run_cli(base + "/" + method + "-full --epochs 3");
    ASSERT_EQ(full.status, 0) << full.output;
    // Stopped in the middle of epoch 2 (4 steps per epoch), as SIGTERM would, then resumed.
    auto part = run_cli(base + "/" + method + "-part --epochs 3 --stop-after-steps 6");
    ASSERT_EQ(part.status, 130) << part.output;
    EXPECT_EQ(read_metrics(dir + "/" + method + "-part").size(), 1u);
    auto resumed = run_cli("train --resume " + dir + "/" + method + "-part --epochs 3 --threads 2");
    ASSERT_EQ(resumed.status, 0) << resumed.output;
    EXPECT_NE(resumed.output.find("resumed from"), std::string::npos);
    EXPECT_EQ(read_metrics(dir + "/" + method + "-part").size(), 3u);
    EXPECT_TRUE(same_weights(dir + "/" + method + "-full/last.ckpt", dir + "/" + method + "-part/last.ckpt"))
        << method;
  }
}

TEST(CLI, NonFiniteLossStopsOrSkipsAsAsked) {
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("cli-nan");
  auto stop = run_cli("train --method cds --epochs 2 --inject-nan-at-step 5 " + test_util::quick_flags() +
                      " --out " + dir + "/stop");
  EXPECT_EQ(stop.status, 1) << stop.output;
  EXPECT_NE(stop.output.find("global step 5"), std::string::npos) << stop.output;
  EXPECT_NE(stop.output.find("'ce'"), std::string::npos) << stop.output;  // names a loss term
  EXPECT_TRUE(std::filesystem::exists(dir + "/stop/last.ckpt"));          // epoch 1's checkpoint is kept
  auto skip = run_cli("train --method ce --epochs 1 --inject-nan-at-step 2 --on-nan skip " +
                      test_util::quick_flags() + " --out " + dir + "/skip");
  EXPECT_EQ(skip.status, 0) << skip.output;
  auto m = read_metrics(dir + "/skip");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0]["nan_skips"].get<int64_t>(), 1);
}

TEST(CLI, SemiSupervisedRunRecordsItsStratifiedLabelSplit) {
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("cli-semi");
  auto r =
      run_cli("train --method ce --epochs 1 --labeled-fraction 0.1 " + test_util::quick_flags() + " --out " + dir);
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream in(dir + "/labeled_indices.txt");
  std::vector<int64_t> ids;
  for (int64_t i; in >> i;) ids.push_back(i);
  // 10% of each class of the first 256 images, rounded per class: about 26 images, all distinct, in range.
  EXPECT_GE(ids.size(), 20u);
  EXPECT_LE(ids.size(), 32u);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
  EXPECT_LT(ids.back(), 256);
  EXPECT_NE(r.output.find("keep their labels"), std::string::npos);
}

// The CPU fast path (bfloat16 autocast + channels-last) trains, and a stopped run resumes to the same weights.
TEST(CliFastPath, Bf16ChannelsLastTrainsAndResumesBitIdentically) {
  REQUIRE_FASHION_MNIST();
  const std::string dir = test_util::temp_dir("bf16");
  // This CPU's fast path: bf16 only with native support (refused otherwise), channels-last at width >= 8
  // (config.h, kMinChannelsLastWidth).
  const std::string precision = host_cpu().native_bf16() ? "--bf16" : "--precision fp32";
  const std::string flags = "train --method simclr --epochs 2 --seed 4 --knn-every 0 " + precision +
                            " --channels-last --train-subset 256 --test-subset 128 --width 8 --batch-size 64 "
                            "--threads 2 --knn-k 20";
  auto full = test_util::run_cli(flags + " --out " + dir + "/full");
  ASSERT_EQ(full.status, 0) << full.output;
  auto part = test_util::run_cli(flags + " --stop-after-steps 5 --out " + dir + "/part");
  ASSERT_EQ(part.status, 130) << part.output;
  auto rest = test_util::run_cli("train --resume " + dir + "/part --threads 2");
  ASSERT_EQ(rest.status, 0) << rest.output;
  EXPECT_TRUE(test_util::same_weights(dir + "/full/last.ckpt", dir + "/part/last.ckpt"));
  const auto metrics = test_util::read_metrics(dir + "/full");
  ASSERT_EQ(metrics.size(), 2u);
  EXPECT_TRUE(std::isfinite(metrics.back()["loss"].get<double>()));
  std::filesystem::remove_all(dir);
}

// The registry is what the CLI offers: `contrastive methods` lists every method, --help shows each method's
// default of a shared flag, and a method's flag given for another method is refused (it would do nothing).
TEST(CLI, MethodsComeFromTheRegistryAndForeignMethodFlagsAreRefused) {
  auto list = run_cli("methods");
  ASSERT_EQ(list.status, 0) << list.output;
  for (const auto& name : method_registry().names())
    EXPECT_NE(list.output.find(name + " "), std::string::npos) << name;
  auto help = run_cli("train --help");
  EXPECT_NE(help.output.find("[cds: 0.07, supcon: 0.1, simclr: 0.5, moco: 0.1"), std::string::npos) << help.output;
  auto foreign = run_cli("train --method cds --queue-size 128 --epochs 1 " + test_util::quick_flags());
  EXPECT_EQ(foreign.status, 2) << foreign.output;
  EXPECT_NE(foreign.output.find("--queue-size is an option of --method moco, not of cds"), std::string::npos)
      << foreign.output;
  auto unknown = run_cli("train --method nope --epochs 1");
  EXPECT_EQ(unknown.status, 2) << unknown.output;
  EXPECT_NE(unknown.output.find("vicreg"), std::string::npos) << unknown.output;  // the list of methods
}
