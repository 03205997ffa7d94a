// Export to / import from Python: state dicts with torchvision names that torch.load opens, --init-from, and
// agreement of the logits of the two implementations of the network.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "contrastive/common.h"
#include "contrastive/export.h"
#include "contrastive/train.h"
#include "test_util.h"

using namespace contrastive;
using test_util::run_cli;

namespace {

// The Python that matches this build's LibTorch (CMake's CONTRASTIVE_PYTHON): Debian's python3 with its torch
// 1.13 for the Debian build, the project's .venv with pip torch 2.x for the pip build. Both carry torchvision.
const char* const kPython = CONTRASTIVE_PYTHON;

// Interop is part of what is tested: a Python without torch or torchvision fails these tests instead of
// skipping them (setup.sh installs both for either build).
::testing::AssertionResult python_has(const std::string& module) {
  const std::string cmd = std::string(kPython) + " -c 'import " + module + "' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << kPython << " cannot import " << module << " (run setup.sh)";
}

// One tiny CE run shared by the tests of this file (training is the slow part).
const std::string& trained_ce_checkpoint() {
  static const std::string ckpt = [] {
    const auto dir = test_util::temp_dir("interop-run");
    auto r =
        run_cli("train --method ce --epochs 1 --seed 1 " + test_util::quick_flags() + " --out " + dir + "/run");
    EXPECT_EQ(r.status, 0) << r.output;
    return dir + "/run/last.ckpt";
  }();
  return ckpt;
}

void save_tensor(const std::string& path, const torch::Tensor& t) {
  auto bytes = torch::pickle_save(t);
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

torch::Tensor load_tensor(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes).toTensor();
}

// A fixed normalised input batch of the model's shape.
torch::Tensor fixed_input(const LoadedModel& m) {
  torch::manual_seed(11);
  return torch::randn({5, m.data.train->channels(), m.data.train->height(), m.data.train->width()});
}

torch::Tensor logits_of(const LoadedModel& m, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  m.method->eval();
  return m.method->classify(x);
}

}  // namespace

TEST(Export, StateDictHasTorchvisionNamesBuffersAndSidecar) {
  REQUIRE_FASHION_MNIST();
  const auto& ckpt = trained_ce_checkpoint();
  const auto dir = test_util::temp_dir("export");
  auto r = run_cli("export --checkpoint " + ckpt + " --out " + dir + "/model.pt");
  ASSERT_EQ(r.status, 0) << r.output;
  auto tensors = read_state_dict(dir + "/model.pt");
  std::map<std::string, torch::Tensor> by_name(tensors.begin(), tensors.end());
  for (const char* name :
       {"conv1.weight", "bn1.weight", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
        "layer1.0.conv1.weight", "layer1.1.bn2.bias", "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_var", "layer4.1.conv2.weight", "fc.weight", "fc.bias"})
    EXPECT_TRUE(by_name.count(name)) << name;
  EXPECT_EQ(by_name.at("bn1.num_batches_tracked").scalar_type(), torch::kLong);
  EXPECT_GT(by_name.at("bn1.num_batches_tracked").item<int64_t>(), 0);  // trained statistics, not the init

  // Exactly the backbone's tensors (no heads), with its values.
  auto m = load_model(ckpt, nullptr, "cpu");
  auto bb = m.method->backbone();
  size_t expected = 0;
  for (const auto& p : bb->named_parameters()) {
    ++expected;
    ASSERT_TRUE(by_name.count(p.key())) << p.key();
    EXPECT_TRUE(by_name.at(p.key()).equal(p.value())) << p.key();
  }
  for (const auto& b : bb->named_buffers()) {
    ++expected;
    ASSERT_TRUE(by_name.count(b.key())) << b.key();
    EXPECT_TRUE(by_name.at(b.key()).equal(b.value())) << b.key();
  }
  EXPECT_EQ(tensors.size(), expected);

  std::ifstream jf(dir + "/model.pt.json");
  auto meta = nlohmann::json::parse(jf);
  EXPECT_EQ(meta["arch"], "resnet18");
  EXPECT_EQ(meta["width"], 4);
  EXPECT_EQ(meta["in_channels"], 1);
  EXPECT_EQ(meta["num_classes"], 10);
  EXPECT_EQ(meta["class_names"].size(), 10u);
  EXPECT_EQ(meta["method"], "ce");
  EXPECT_EQ(meta["image_size"], 28);
  EXPECT_EQ(meta["normalize"]["mean"].size(), 1u);
  EXPECT_EQ(meta["normalize"]["std"].size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir + "/model.pt.tmp"));

  auto b = run_cli("export --backbone-only --checkpoint " + ckpt + " --out " + dir + "/backbone.pt");
  ASSERT_EQ(b.status, 0) << b.output;
  auto bt = read_state_dict(dir + "/backbone.pt");
  EXPECT_EQ(bt.size(), expected - 2);
  for (const auto& [name, t] : bt) EXPECT_NE(name.rfind("fc.", 0), 0u) << name;
  std::ifstream bj(dir + "/backbone.pt.json");
  EXPECT_EQ(nlohmann::json::parse(bj)["num_classes"], 0);
}

TEST(Export, InitFromChecksNamesAndShapes) {
  REQUIRE_FASHION_MNIST();
  const auto& ckpt = trained_ce_checkpoint();
  const auto dir = test_util::temp_dir("export-init");
  ASSERT_EQ(run_cli("export --checkpoint " + ckpt + " --out " + dir + "/model.pt").status, 0);
  ASSERT_EQ(run_cli("export --backbone-only --checkpoint " + ckpt + " --out " + dir + "/bb.pt").status, 0);
  auto good = read_state_dict(dir + "/model.pt");

  auto renamed = good;
  for (auto& [name, t] : renamed)
    if (name == "layer1.0.conv1.weight") name = "layer1.0.convX.weight";
  save_state_dict(dir + "/renamed.pt", renamed);
  auto reshaped = good;
  for (auto& [name, t] : reshaped)
    if (name == "layer3.1.bn1.weight") t = torch::ones({7});
  save_state_dict(dir + "/reshaped.pt", reshaped);

  const std::string base = "train --method ce --epochs 1 " + test_util::quick_flags() + " --out " + dir;
  struct Case {
    std::string file, needle;
  };
  for (const Case& c : std::vector<Case>{{"renamed.pt", "layer1.0.convX.weight"},
                                         {"renamed.pt", "layer1.0.conv1.weight"},  // then missing from the file
                                         {"reshaped.pt", "layer3.1.bn1.weight"},
                                         {"nonexistent.pt", "nonexistent.pt"}}) {
    auto r = run_cli(base + "/bad --init-from " + dir + "/" + c.file);
    EXPECT_EQ(r.status, 2) << c.file << "\n" << r.output;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("Exception raised from"), std::string::npos) << r.output;
  }
  // A classifier-less file into a model with a classifier: fc starts fresh, and the log says so.
  auto ok = run_cli(base + "/from-bb --init-from " + dir + "/bb.pt");
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_NE(ok.output.find("left at initialisation"), std::string::npos) << ok.output;
  // A file with fc into a model without one (SimCLR): named, with the way out.
  auto no_fc = run_cli("train --method simclr --epochs 1 " + test_util::quick_flags() + " --out " + dir +
                       "/simclr --init-from " + dir + "/model.pt");
  EXPECT_EQ(no_fc.status, 2) << no_fc.output;
  EXPECT_NE(no_fc.output.find("fc.weight"), std::string::npos) << no_fc.output;
  EXPECT_NE(no_fc.output.find("--backbone-only"), std::string::npos) << no_fc.output;

  // The library call: nothing is changed when it throws, and the error lists at most ten names.
  auto m = load_model(ckpt, nullptr, "cpu");
  auto before = m.method->backbone()->named_parameters()["conv1.weight"].clone();
  NamedTensors junk = good;
  for (int i = 0; i < 15; ++i) junk.emplace_back("extra." + std::to_string(i), torch::zeros({1}));
  junk[0].second = torch::zeros_like(junk[0].second);
  try {
    load_state_dict(*m.method->backbone(), junk, "junk.pt");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("and 5 more"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(m.method->backbone()->named_parameters()["conv1.weight"].equal(before));
}

TEST(Interop, PythonLoadsTheExportAndComputesTheSameLogits) {
  REQUIRE_FASHION_MNIST();
  ASSERT_TRUE(python_has("torch"));
  const auto& ckpt = trained_ce_checkpoint();
  const auto dir = test_util::temp_dir("interop-py");
  ASSERT_EQ(run_cli("export --checkpoint " + ckpt + " --out " + dir + "/model.pt").status, 0);
  auto m = load_model(ckpt, nullptr, "cpu");
  auto x = fixed_input(m);
  save_tensor(dir + "/input.pt", x);
  save_tensor(dir + "/logits.pt", logits_of(m, x));
  const std::string script = std::string(CONTRASTIVE_SOURCE_DIR) + "/tests/interop_check.py";
  const std::string cmd = std::string(kPython) + " " + script + " check --state " + dir + "/model.pt --input " +
                          dir + "/input.pt --logits " + dir + "/logits.pt 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST(Interop, StateDictSavedByPythonInitialisesTheModel) {
  REQUIRE_FASHION_MNIST();
  ASSERT_TRUE(python_has("torch"));
  const auto& ckpt = trained_ce_checkpoint();
  const auto dir = test_util::temp_dir("interop-back");
  ASSERT_EQ(run_cli("export --checkpoint " + ckpt + " --out " + dir + "/model.pt").status, 0);
  auto m = load_model(ckpt, nullptr, "cpu");
  auto x = fixed_input(m);
  save_tensor(dir + "/input.pt", x);
  const std::string script = std::string(CONTRASTIVE_SOURCE_DIR) + "/tests/interop_check.py";
  const std::string cmd = std::string(kPython) + " " + script + " roundtrip --state " + dir +
                          "/model.pt --input " + dir + "/input.pt --out-state " + dir + "/py.pt --out-logits " +
                          dir + "/py_logits.pt 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  auto before = logits_of(m, x);
  auto report = load_state_dict(*m.method->backbone(), dir + "/py.pt");
  EXPECT_FALSE(report.classifier_left);
  auto after = logits_of(m, x);
  auto expected = load_tensor(dir + "/py_logits.pt");
  EXPECT_GT((before - expected).abs().max().item<double>(), 1e-3);  // the Python side really changed it
  EXPECT_LT((after - expected).abs().max().item<double>(), 1e-5);

  // And through the CLI.
  auto r = run_cli("train --method ce --epochs 1 " + test_util::quick_flags() + " --out " + dir +
                   "/run --init-from " + dir + "/py.pt");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("initialised"), std::string::npos) << r.output;

  // model.state_dict() saved as is (an OrderedDict): refused with the fix, not an internal assertion.
  auto od = run_cli("train --method ce --epochs 1 " + test_util::quick_flags() + " --out " + dir +
                    "/run-od --init-from " + dir + "/py.pt.ordered");
  EXPECT_EQ(od.status, 2) << od.output;
  EXPECT_NE(od.output.find("dict(model.state_dict())"), std::string::npos) << od.output;
}

// torchvision's own resnet18 (with the CIFAR stem) loads an export with torch.load(weights_only=True) and
// predicts the same logits. Its base width is 64, so this run trains at width 64.
TEST(Interop, TorchvisionResNetLoadsTheExportWithWeightsOnly) {
  REQUIRE_FASHION_MNIST();
  ASSERT_TRUE(python_has("torchvision"));
  const auto dir = test_util::temp_dir("interop-tv");
  auto r = run_cli(
      "train --method ce --epochs 1 --seed 3 --train-subset 128 --test-subset 64 --width 64 "
      "--batch-size 64 --threads 2 --out " +
      dir + "/run");
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_EQ(run_cli("export --checkpoint " + dir + "/run/last.ckpt --out " + dir + "/model.pt").status, 0);
  auto m = load_model(dir + "/run/last.ckpt", nullptr, "cpu");
  auto x = fixed_input(m);
  save_tensor(dir + "/input.pt", x);
  save_tensor(dir + "/logits.pt", logits_of(m, x));
  const std::string script = std::string(CONTRASTIVE_SOURCE_DIR) + "/tests/interop_check.py";
  const std::string cmd = std::string(kPython) + " " + script + " check --torchvision --state " + dir +
                          "/model.pt --input " + dir + "/input.pt --logits " + dir + "/logits.pt 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}
