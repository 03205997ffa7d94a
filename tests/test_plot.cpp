// Pictures (gnuplot) and embedding files: training curves, run comparison, t-SNE scatter, .npy/.csv outputs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "contrastive/export.h"
#include "contrastive/plot.h"
#include "test_util.h"

using namespace contrastive;
using test_util::run_cli;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A PNG signature, an IHDR of the expected size, and more than a blank canvas' worth of bytes.
void expect_png(const std::string& path, uint32_t width = 1200, uint32_t height = 800) {
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  const std::string png = read_all(path);
  ASSERT_GT(png.size(), 10000u) << path;
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << path;
  auto be32 = [&](size_t o) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<unsigned char>(png[o + i]);
    return v;
  };
  EXPECT_EQ(png.substr(12, 4), "IHDR");
  EXPECT_EQ(be32(16), width);
  EXPECT_EQ(be32(20), height);
}

// A run directory with synthetic metrics (no training needed to test the picture).
std::string fake_run(const std::string& dir, const std::string& name, bool classifier, int64_t epochs) {
  const std::string run = dir + "/" + name;
  std::filesystem::create_directories(run);
  std::ofstream out(run + "/metrics.jsonl");
  for (int64_t e = 1; e <= epochs; ++e) {
    nlohmann::json rec = {{"epoch", e},
                          {"loss", 2.0 / e},
                          {"lr", 0.1 * (1.0 - e / (epochs + 1.0))},
                          {"images_per_s", 900 + 10 * e},
                          {"knn_top1", 0.5 + 0.04 * e}};
    if (classifier && e % 2 == 0) {  // --eval-every 2
      rec["test_top1"] = 0.55 + 0.04 * e;
      rec["train_clean_top1"] = 0.6 + 0.045 * e;
    }
    out << rec.dump() << "\n";
  }
  return run;
}

}  // namespace

TEST(Plot, OverlayOfRunsAndSingleRunCurves) {
  if (find_gnuplot().empty()) GTEST_SKIP() << "gnuplot not installed";
  const auto dir = test_util::temp_dir("plot");
  const auto a = fake_run(dir, "ce-run", true, 8);
  const auto b = fake_run(dir, "simclr_run 'quoted'", false, 5);
  auto r = run_cli("plot " + a + " '" + dir + "/simclr_run '\\''quoted'\\''' --out " + dir + "/cmp.png");
  ASSERT_EQ(r.status, 0) << r.output;
  expect_png(dir + "/cmp.png");
  EXPECT_FALSE(std::filesystem::exists(dir + "/cmp.png.tmp.png"));
  ASSERT_TRUE(plot_run_curves(a));
  expect_png(a + "/curves.png");
}

TEST(Plot, RunWithoutMetricsExitsTwo) {
  const auto dir = test_util::temp_dir("plot-bad");
  std::filesystem::create_directories(dir + "/empty");
  auto r = run_cli("plot " + dir + "/empty --out " + dir + "/x.png");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find(dir + "/empty"), std::string::npos) << r.output;
  std::filesystem::create_directories(dir + "/blank");
  std::ofstream(dir + "/blank/metrics.jsonl") << "\n";
  auto b = run_cli("plot " + fake_run(dir, "ok", true, 3) + " " + dir + "/blank --out " + dir + "/y.png");
  EXPECT_EQ(b.status, 2) << b.output;
  EXPECT_NE(b.output.find("blank"), std::string::npos) << b.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/y.png"));
}

TEST(Plot, TrainerDrawsCurvesAndOnlyWarnsWithoutGnuplot) {
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("plot-train");
  if (!find_gnuplot().empty()) {
    auto r = run_cli("train --method ce --epochs 2 " + test_util::quick_flags() + " --out " + dir + "/run");
    ASSERT_EQ(r.status, 0) << r.output;
    expect_png(dir + "/run/curves.png");
  }
  // PATH without gnuplot: training still succeeds, with one warning.
  const std::string cmd = "env PATH=/nonexistent " + std::string(CONTRASTIVE_CLI) +
                          " train --method ce --epochs 2 " + test_util::quick_flags() + " --out " + dir +
                          "/nogp2 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(pipe), 0) << out;
  size_t warnings = 0;
  for (size_t p = out.find("gnuplot not found"); p != std::string::npos; p = out.find("gnuplot not found", p + 1))
    ++warnings;
  EXPECT_EQ(warnings, 1u) << out;
  EXPECT_FALSE(std::filesystem::exists(dir + "/nogp2/curves.png"));
}

TEST(Embed, WritesNpyCsvAndTsnePicture) {
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("embed");
  auto t = run_cli("train --method ce --epochs 1 " + test_util::quick_flags() + " --out " + dir + "/run");
  ASSERT_EQ(t.status, 0) << t.output;
  auto r = run_cli("embed --checkpoint " + dir + "/run/last.ckpt --split test --out " + dir + "/emb --tsne " +
                   dir + "/tsne.png --perplexity 10 --iterations 300 --max-points 100 --threads 2");
  ASSERT_EQ(r.status, 0) << r.output;

  // .npy: header parsed by hand (magic, version 1.0, dict, 64-byte aligned data), then the raw values.
  const std::string npy = read_all(dir + "/emb.npy");
  ASSERT_GT(npy.size(), 10u);
  EXPECT_EQ(npy.substr(0, 6), "\x93NUMPY");
  EXPECT_EQ(npy[6], 1);
  EXPECT_EQ(npy[7], 0);
  const size_t header_len = static_cast<unsigned char>(npy[8]) | static_cast<unsigned char>(npy[9]) << 8;
  EXPECT_EQ((10 + header_len) % 64, 0u);
  const std::string header = npy.substr(10, header_len);
  EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos) << header;
  EXPECT_NE(header.find("'shape': (128,32)"), std::string::npos) << header;  // resnet18 width 4: 8*4 features
  EXPECT_EQ(header.back(), '\n');
  EXPECT_EQ(npy.size(), 10 + header_len + 128 * 32 * 4);

  const std::string labels = read_all(dir + "/emb_labels.npy");
  EXPECT_NE(labels.find("'descr': '<i8'"), std::string::npos);
  EXPECT_NE(labels.find("'shape': (128,)"), std::string::npos);

  std::ifstream csv(dir + "/emb.csv");
  std::string line;
  int64_t rows = 0;
  ASSERT_TRUE(std::getline(csv, line));
  EXPECT_EQ(line.rfind("name,label,f0,f1,", 0), 0u) << line;
  EXPECT_EQ(std::count(line.begin(), line.end(), ','), 33) << line;
  while (std::getline(csv, line)) {
    EXPECT_EQ(line.rfind(std::to_string(rows) + ",", 0), 0u) << line;  // the image's index in the split
    ++rows;
    EXPECT_EQ(std::count(line.begin(), line.end(), ','), 33) << line;
  }
  EXPECT_EQ(rows, 128);
  EXPECT_TRUE(std::filesystem::exists(dir + "/emb_tsne.npy"));
  if (!find_gnuplot().empty()) expect_png(dir + "/tsne.png", 1000, 800);

  auto bad = run_cli("embed --checkpoint " + dir + "/run/last.ckpt --split valid --out " + dir + "/x");
  EXPECT_EQ(bad.status, 2) << bad.output;
}
