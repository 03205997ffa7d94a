// `contrastive bench` end to end on a tiny model: it runs, reports every number, and rejects bad values.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "contrastive/bench.h"
#include "contrastive/resolve.h"
#include "test_util.h"

using namespace contrastive;
using test_util::run_cli;

// The FLOP count against a hand count: CIFAR ResNet-18 at width 64 on 32x32x3 is 0.5554 G multiply-adds (stem
// 1.77M, layer1 151M, layers 2-4 134M each), the SimCLR head adds 512*512 + 512*128.
TEST(Bench, ForwardFlopsOfCifarResNet18) {
  Config c;
  c.method.name = "simclr";
  c.model.width = 64;
  resolve_defaults(c);
  MethodSpec spec;
  spec.config = c;
  spec.in_channels = 3;
  spec.image_size = 32;
  auto m = make_method(spec);
  const double macs = method_forward_flops(*m, 32, 32) / 2;
  const double expected = 3 * 64 * 9 * 1024.0 + 4 * 64 * 64 * 9 * 1024.0 +
                          3 * (64 * 128 * 9 * 256.0 + 3 * 128 * 128 * 9 * 256.0 + 64 * 128 * 256.0) + 512 * 512 +
                          512 * 128;
  EXPECT_NEAR(macs, expected, 1.0);
  EXPECT_NEAR(macs / 1e9, 0.5557, 0.001);
}

TEST(Bench, TinySimCLRReportsPositiveNumbers) {
  REQUIRE_FASHION_MNIST();
  auto r = run_cli(
      "bench --method simclr --width 4 --batch-size 16 --steps 2 --warmup 1 --json --threads 2 "
      "--peak-size 256");
  ASSERT_EQ(r.status, 0) << r.output;
  // stdout and stderr are merged: the JSON object is the line that starts with '{'.
  const auto at = r.output.rfind("\n{") == std::string::npos ? r.output.find('{') : r.output.rfind("\n{") + 1;
  ASSERT_NE(at, std::string::npos) << r.output;
  const auto j = nlohmann::json::parse(r.output.substr(at, r.output.find('\n', at) - at));
  for (const char* key : {"images_per_s", "model_images_per_s", "augment_images_per_s", "peak_rss_mb",
                          "fwd_gflops_per_image", "model_gflops_per_s", "peak_gflops_measured", "fraction_of_peak",
                          "threads", "width", "batch_size", "steps"}) {
    ASSERT_TRUE(j.contains(key)) << key << "\n" << r.output;
    EXPECT_GT(j[key].get<double>(), 0) << key << "\n" << r.output;
  }
  EXPECT_EQ(j["method"], "simclr");
  EXPECT_EQ(j["arch"], "resnet18");
  EXPECT_EQ(j["width"], 4);
  EXPECT_EQ(j["batch_size"], 16);
}

TEST(Bench, InvalidValuesExitTwo) {
  for (const char* args : {"bench --steps 0", "bench --warmup -1", "bench --width 0", "bench --method nope"}) {
    auto r = run_cli(args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
    EXPECT_EQ(r.output.find("Exception raised from"), std::string::npos) << r.output;
  }
}
