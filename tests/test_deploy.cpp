// Deploy and watch: ONNX export checked by onnx's checker and onnxruntime, TensorBoard event files read back by
// TensorBoard's own EventAccumulator, and the projector's files. The verifiers run in CONTRASTIVE_VERIFY_PYTHON
// (the project's .venv, requirements/verify.txt); without them these tests skip, except under CI=true, where
// they fail.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "contrastive/common.h"
#include "contrastive/eval.h"
#include "contrastive/export.h"
#include "contrastive/onnx_export.h"
#include "contrastive/registry.h"
#include "contrastive/train.h"
#include "test_runs.h"
#include "test_util.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>

namespace fs = std::filesystem;
using namespace contrastive;

namespace {

// Runs a Python file of the source tree (`path` relative to it) in the verifiers' Python.
test_util::Run run_python(const std::string& path, const std::string& args) {
  return test_util::run_command(std::string(CONTRASTIVE_VERIFY_PYTHON) + " " + CONTRASTIVE_SOURCE_DIR + "/" +
                                path + " " + args);
}

// Runs a verifier script; returns its last output line parsed as JSON (null when it failed).
nlohmann::json run_verifier(const std::string& script, const std::string& args, std::string& output) {
  const auto r = run_python("tests/verify/" + script, args);
  output = r.output;
  if (r.status != 0) return nullptr;
  // The JSON object is the last line.
  std::string text = output;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  const auto start = text.rfind('\n');
  return nlohmann::json::parse(start == std::string::npos ? text : text.substr(start + 1), nullptr, false);
}

bool python_imports(const std::string& modules) {
  return test_util::run_command(std::string(CONTRASTIVE_VERIFY_PYTHON) + " -c 'import " + modules + "'").status ==
         0;
}

// Skips when the verifier's modules are missing (fails under CI=true, where they must be there).
#define REQUIRE_VERIFIER(modules)                                                                     \
  do {                                                                                                \
    if (!python_imports(modules)) {                                                                   \
      if (test_util::in_ci())                                                                         \
        FAIL() << CONTRASTIVE_VERIFY_PYTHON << " cannot import " << modules << " (setup.sh installs " \
               << "requirements/verify.txt)";                                                         \
      GTEST_SKIP() << CONTRASTIVE_VERIFY_PYTHON << " cannot import " << modules;                      \
    }                                                                                                 \
  } while (0)

// The test split of a checkpoint's data as the model takes it (normalised) or as pixels in [0, 1], plus labels.
void write_inputs(const std::string& ckpt, const std::string& dir) {
  auto m = load_model(ckpt, nullptr, "cpu");
  ASSERT_TRUE(m.data.test) << ckpt;
  auto images = m.data.test->get(torch::arange(m.data.test->size(), torch::kLong));
  write_npy(dir + "/x.npy", normalize_images(images, m.norm, torch::kCPU));
  write_npy(dir + "/raw.npy", images.to(torch::kFloat).div(255.0));
  write_npy(dir + "/labels.npy", m.data.test->labels());
}

std::string train(const std::string& out, const std::string& args) {
  auto r = test_util::run_cli("train " + args + " --epochs 1 --seed 3 --out " + out);
  EXPECT_EQ(r.status, 0) << r.output;
  return out + "/last.ckpt";
}

struct OnnxCase {
  std::string name, ckpt, export_flags, input = "x.npy";
  bool classifier = false;
  int64_t channels = 1, dim = 0;
};

// Exports, embeds and runs the verifier; returns its JSON.
nlohmann::json export_and_verify(const OnnxCase& c, const std::string& dir) {
  const std::string onnx = dir + "/" + c.name + ".onnx";
  auto r =
      test_util::run_cli("export --format onnx --checkpoint " + c.ckpt + " --out " + onnx + " " + c.export_flags);
  EXPECT_EQ(r.status, 0) << c.name << "\n" << r.output;
  auto e = test_util::run_cli("embed --checkpoint " + c.ckpt + " --out " + dir + "/" + c.name + "_emb");
  EXPECT_EQ(e.status, 0) << e.output;
  std::string out;
  auto j = run_verifier(
      "onnx_verify.py",
      onnx + " " + dir + "/" + c.input + " " + dir + "/" + c.name + "_emb.npy " + dir + "/labels.npy", out);
  EXPECT_FALSE(j.is_null()) << c.name << "\n" << out;
  std::cout << "[ onnx     ] " << c.name << ": " << out;
  return j;
}

// Two-class RGB pictures in DIR/train/<class>/ and DIR/test/<class>/ (the train-test layout).
void write_rgb_folder(const std::string& dir) {
  for (const char* split : {"train", "test"}) {
    const int n = std::string(split) == "train" ? 48 : 16;
    for (int cls = 0; cls < 2; ++cls) {
      const std::string sub = dir + "/" + split + "/" + (cls ? "warm" : "cool");
      fs::create_directories(sub);
      for (int i = 0; i < n; ++i) {
        std::vector<unsigned char> px(16 * 16 * 3);
        for (size_t k = 0; k < px.size(); ++k)
          px[k] =
              static_cast<unsigned char>((k % 3 == static_cast<size_t>(cls) ? 160 : 40) + (k * 7 + i * 13) % 60);
        ASSERT_TRUE(stbi_write_png((sub + "/" + std::to_string(i) + ".png").c_str(), 16, 16, 3, px.data(), 48));
      }
    }
  }
}

}  // namespace

TEST(Deploy, OnnxFeaturesMatchEmbedAndLogitsMatchEval) {
  REQUIRE_FASHION_MNIST();
  REQUIRE_VERIFIER("onnx, onnxruntime");
  const auto dir = test_util::temp_dir("onnx");
  const std::string ce = train(dir + "/ce", "--method ce " + test_util::quick_flags());
  write_inputs(ce, dir);
  auto eval = test_util::run_cli("eval --json --checkpoint " + ce);
  ASSERT_EQ(eval.status, 0) << eval.output;
  const double eval_top1 = nlohmann::json::parse(eval.output.substr(eval.output.rfind('{')))["top1"];

  for (const OnnxCase& c : {OnnxCase{"bn_nodes", ce, "--with-classifier", "x.npy", true, 1, 32},
                            OnnxCase{"bn_folded", ce, "--with-classifier --fold-bn", "x.npy", true, 1, 32},
                            OnnxCase{"baked", ce, "--bake-normalization", "raw.npy", false, 1, 32}}) {
    auto j = export_and_verify(c, dir);
    ASSERT_FALSE(j.is_null());
    EXPECT_LE(j["max_abs"].get<double>(), 1e-4) << c.name;
    EXPECT_GT(j["ref_max"].get<double>(), 0.01) << c.name;  // real features, not zeros
    EXPECT_EQ(j["shape"][1].get<int64_t>(), c.dim) << c.name;
    EXPECT_EQ(j["batch_dim"], "batch") << c.name;
    EXPECT_EQ(j["outputs"].size(), c.classifier ? 2u : 1u) << c.name;
    if (c.classifier) EXPECT_DOUBLE_EQ(j["top1"].get<double>(), eval_top1) << c.name;
    const auto& meta = j["metadata"];
    EXPECT_EQ(meta["channels"], "1");
    EXPECT_EQ(meta["image_size"], "[28,28]");
    EXPECT_EQ(meta["method"], "ce");
    EXPECT_EQ(nlohmann::json::parse(meta["class_names"].get<std::string>()).size(), 10u);
    EXPECT_EQ(nlohmann::json::parse(meta["mean"].get<std::string>()).size(), 1u);
    EXPECT_EQ(meta["normalization_baked"], c.name == "baked" ? "true" : "false");
  }
}

TEST(Deploy, OnnxExportsEveryArchitectureAndRefusesWithOneLine) {
  REQUIRE_FASHION_MNIST();
  REQUIRE_VERIFIER("onnx, onnxruntime, PIL");
  const auto dir = test_util::temp_dir("onnx-arch");
  // Three channels, another width, a folder of pictures; and the AMDIM encoder (28x28 padded to 32 inside).
  write_rgb_folder(dir + "/rgb");
  const std::string rgb = train(dir + "/simclr", "--method simclr --dataset folder --data " + dir +
                                                     "/rgb --image-size 16 --width 8 "
                                                     "--batch-size 32 --threads 2");
  const std::string amdim = train(dir + "/amdim", "--method amdim --arch amdim " + test_util::quick_flags());
  for (const OnnxCase& c : {OnnxCase{"simclr_rgb_w8", rgb, "", "x.npy", false, 3, 64},
                            OnnxCase{"amdim", amdim, "", "x.npy", false, 1, 0}}) {
    write_inputs(c.ckpt, dir);
    auto j = export_and_verify(c, dir);
    ASSERT_FALSE(j.is_null());
    EXPECT_LE(j["max_abs"].get<double>(), 1e-4) << c.name;
    EXPECT_GT(j["ref_max"].get<double>(), 0.01) << c.name;
    if (c.dim) EXPECT_EQ(j["shape"][1].get<int64_t>(), c.dim) << c.name;
    EXPECT_EQ(j["metadata"]["channels"], std::to_string(c.channels)) << c.name;
  }
  // examples/serve_onnx.py (docs/deploy.md) on two picture files: onnxruntime alone, the contract from metadata.
  const auto served =
      run_python("examples/serve_onnx.py",
                 dir + "/simclr_rgb_w8.onnx " + dir + "/rgb/test/warm/0.png " + dir + "/rgb/test/cool/1.png");
  EXPECT_EQ(served.status, 0) << served.output;
  EXPECT_EQ(std::count(served.output.begin(), served.output.end(), '\n'), 2) << served.output;
  EXPECT_NE(served.output.find("0.png: 64 features"), std::string::npos) << served.output;

  // One line and exit 2: no classifier to add; a pt-only flag with onnx; an onnx-only flag with pt.
  for (const std::string& bad :
       {"--format onnx --with-classifier", "--format onnx --backbone-only", "--fold-bn"}) {
    auto r = test_util::run_cli("export " + bad + " --checkpoint " + rgb + " --out " + dir + "/bad.onnx");
    EXPECT_EQ(r.status, 2) << bad << "\n" << r.output;
    // One error line; the other lines are the information lines of loading the checkpoint ("[date] ...").
    std::istringstream lines(r.output);
    int errors = 0;
    for (std::string l; std::getline(lines, l);) errors += !l.empty() && l[0] != '[';
    EXPECT_EQ(errors, 1) << bad << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir + "/bad.onnx")) << bad;
  }
}

TEST(Watch, TensorBoardEventsHoldTheMetricsAndPerStepCurves) {
  REQUIRE_FASHION_MNIST();
  REQUIRE_VERIFIER("tensorboard");
  const auto dir = test_util::temp_dir("tensorboard");
  // 256 images in batches of 64: 4 steps an epoch, 8 in all; per-step scalars every 3 steps: steps 3 and 6.
  auto r = test_util::run_cli("train --method simclr --epochs 2 --tensorboard-every 3 " +
                              test_util::quick_flags() + " --out " + dir + "/run");
  ASSERT_EQ(r.status, 0) << r.output;
  std::string out;
  auto tb = run_verifier("tensorboard_verify.py", dir + "/run", out);
  ASSERT_FALSE(tb.is_null()) << out;
  ASSERT_EQ(tb["_files"].size(), 1u) << out;

  // Every value of every metrics.jsonl record, under epoch/ at the epoch's number, as float32.
  const auto metrics = test_util::read_metrics(dir + "/run");
  ASSERT_EQ(metrics.size(), 2u);
  int64_t compared = 0;
  for (const auto& rec : metrics) {
    const int64_t epoch = rec["epoch"];
    for (const auto& [key, v] : rec.items()) {
      if (key == "epoch" || !(v.is_number() || v.is_object())) continue;
      std::vector<std::pair<std::string, double>> want;
      if (v.is_object()) {
        for (const auto& [term, tv] : v.items()) want.emplace_back("epoch/" + key + "/" + term, tv.get<double>());
      } else {
        want.emplace_back("epoch/" + key, v.get<double>());
      }
      for (const auto& [tag, value] : want) {
        ASSERT_TRUE(tb.contains(tag)) << tag << "\n" << out;
        bool found = false;
        for (const auto& point : tb[tag])
          if (point[0].get<int64_t>() == epoch) {
            EXPECT_FLOAT_EQ(point[1].get<float>(), static_cast<float>(value)) << tag;
            found = true;
          }
        EXPECT_TRUE(found) << tag << " at epoch " << epoch;
        ++compared;
      }
    }
  }
  EXPECT_GE(compared, 16);  // loss, lr, images_per_s, knn_top1, the collapse monitors, the loss term, ...
  for (const char* tag : {"step/loss", "step/lr", "step/images_per_s"}) {
    ASSERT_TRUE(tb.contains(tag)) << tag;
    ASSERT_EQ(tb[tag].size(), 2u) << tag;
    EXPECT_EQ(tb[tag][0][0], 3);
    EXPECT_EQ(tb[tag][1][0], 6);
    for (const auto& point : tb[tag]) EXPECT_TRUE(std::isfinite(point[1].get<double>())) << tag;
  }
  EXPECT_GT(tb["step/loss"][0][1].get<double>(), 0.0);

  // --tensorboard off: no event file; anything but on|off: one line, exit 2.
  auto off = test_util::run_cli("train --method simclr --epochs 1 --tensorboard off " + test_util::quick_flags() +
                                " --out " + dir + "/off");
  ASSERT_EQ(off.status, 0) << off.output;
  for (const auto& f : fs::directory_iterator(dir + "/off"))
    EXPECT_EQ(f.path().filename().string().find("events.out.tfevents"), std::string::npos) << f.path();
  auto bad = test_util::run_cli("train --tensorboard maybe --out " + dir + "/bad");
  EXPECT_EQ(bad.status, 2) << bad.output;
}

TEST(Watch, EmbedWritesTheProjectorFiles) {
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("projector");
  const std::string ckpt = train(dir + "/run", "--method simclr " + test_util::quick_flags());
  auto r =
      test_util::run_cli("embed --checkpoint " + ckpt + " --out " + dir + "/emb --projector " + dir + "/proj");
  ASSERT_EQ(r.status, 0) << r.output;
  auto lines = [](const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    std::string l;
    while (std::getline(in, l)) out.push_back(l);
    return out;
  };
  const auto tensors = lines(dir + "/proj/tensors.tsv");
  const auto meta = lines(dir + "/proj/metadata.tsv");
  ASSERT_EQ(tensors.size(), 128u);                                        // --test-subset 128
  EXPECT_EQ(std::count(tensors[0].begin(), tensors[0].end(), '\t'), 31);  // width 4: 32 features
  ASSERT_EQ(meta.size(), 129u);                                           // header + one row per image
  EXPECT_EQ(meta[0], "name\tlabel");
  std::ifstream cfg(dir + "/proj/projector_config.pbtxt");
  std::stringstream text;
  text << cfg.rdbuf();
  EXPECT_NE(text.str().find("tensor_path: \"tensors.tsv\""), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("metadata_path: \"metadata.tsv\""), std::string::npos) << text.str();
  // The first feature row equals embed's .npy row.
  std::ifstream csv(dir + "/emb.csv");
  std::string header, first;
  std::getline(csv, header);
  std::getline(csv, first);
  const std::string first_value = first.substr(first.find(',', first.find(',') + 1) + 1);
  EXPECT_NEAR(std::stod(tensors[0].substr(0, tensors[0].find('\t'))),
              std::stod(first_value.substr(0, first_value.find(','))), 1e-5);
}

// Every registered method's network exports (the C++ checker inside export_onnx accepts the graph), in process and
// without training: the ResNet methods through their backbone, AMDIM through its encoder; a method whose model
// has no classifier refuses --with-classifier with an InputError.
TEST(Deploy, EveryMethodExportsItsBackbone) {
  if (!onnx_export_available()) {
    if (test_util::in_ci()) FAIL() << "this build has no ONNX exporter under CI=true";
    GTEST_SKIP() << "built without libonnx-dev";
  }
  const auto dir = test_util::temp_dir("onnx-methods");
  auto images = torch::randint(0, 256, {20, 3, 16, 16}, torch::kUInt8);
  auto labels = torch::arange(20, torch::kLong).remainder(10);
  std::vector<std::string> names;
  for (int i = 0; i < 10; ++i) names.push_back("c" + std::to_string(i));
  auto data = std::make_shared<TensorDataset>(images, labels, names);
  ASSERT_GE(method_registry().names().size(), 12u);
  for (const auto& method : method_registry().names()) {
    LoadedModel m;
    MethodSpec spec = test_util::small_method_spec(method);
    spec.inference = true;
    m.config = spec.config;
    m.method = make_method(spec);
    m.data = DataSplits(data, data);
    m.norm = Normalization{{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
    const std::string out = dir + "/" + method + ".onnx";
    export_onnx(m, out);
    EXPECT_GT(fs::file_size(out), 1000u) << method;
    const bool classifier = m.method->has_classifier();
    if (classifier) {
      EXPECT_NO_THROW(export_onnx(m, out, OnnxExportOptions().with_classifier(true))) << method;
    } else {
      EXPECT_THROW(export_onnx(m, out, OnnxExportOptions().with_classifier(true)), InputError) << method;
    }
  }
}
