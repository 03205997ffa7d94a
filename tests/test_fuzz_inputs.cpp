// The fuzz targets' inputs in the normal suite: every crash input kept under fuzz/regressions/<target>/ and
// every seed under fuzz/corpus/<target>/ goes through the same reader as in the fuzzer, and must end in
// success or InputError (never a crash, a sanitizer report or another exception type). Also checks the
// in-memory decoders the fuzz targets call against the file readers.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <typeinfo>
#include <vector>

#include "contrastive/common.h"
#include "contrastive/config.h"
#include "contrastive/data.h"
#include "contrastive/io.h"
#include "contrastive/resolve.h"
#include "data/parse.h"
#include "io/checkpoint_bytes.h"
#include "test_util.h"

using namespace contrastive;
namespace fs = std::filesystem;

namespace {

// Sorted files under fuzz/<kind>/<target>/ (kind: corpus | regressions).
std::vector<std::string> fuzz_inputs(const std::string& kind, const std::string& target) {
  std::vector<std::string> out;
  const fs::path dir = fs::path(CONTRASTIVE_SOURCE_DIR) / "fuzz" / kind / target;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename().string()[0] != '.') out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

enum class Outcome { kOk, kInputError, kOther };

// Runs `body`; any exception other than InputError is recorded as a test failure naming the input.
template <typename Body>
Outcome outcome_of(const std::string& input, Body&& body) {
  try {
    body();
    return Outcome::kOk;
  } catch (const InputError&) {
    return Outcome::kInputError;
  } catch (const std::exception& e) {
    ADD_FAILURE() << input << ": " << typeid(e).name() << " escaped: " << e.what();
  } catch (...) {
    ADD_FAILURE() << input << ": a non-std exception escaped";
  }
  return Outcome::kOther;
}

// As the checkpoint fuzz target: a file with the magic is a checkpoint, anything else a payload to frame.
void read_checkpoint_input(const std::string& path) {
  const std::string bytes = slurp(path);
  torch::serialize::InputArchive archive;
  if (bytes.compare(0, 8, "CTRVCKPT") == 0)
    read_checkpoint(path, archive);
  else
    contrastive::detail::read_checkpoint_bytes(contrastive::detail::frame_checkpoint(bytes), path, archive);
}

void load_config_input(const std::string& path) {
  Config config;
  load_config_file(path, config);
  resolve_defaults(config);
  validate(config);
}

}  // namespace

// Each of these reads the corpus seeds and the kept regressions of its target, and asserts that there are some,
// so that a moved or emptied folder fails the test instead of passing it over nothing.
static std::vector<std::string> seeds_and_regressions(const std::string& target) {
  auto inputs = fuzz_inputs("corpus", target);
  const auto kept = fuzz_inputs("regressions", target);
  inputs.insert(inputs.end(), kept.begin(), kept.end());
  return inputs;
}

TEST(FuzzRegressions, IdxInputsEndInInputErrorOrSuccess) {
  const auto inputs = seeds_and_regressions("idx");
  ASSERT_GE(inputs.size(), 5u) << "fuzz/corpus/idx or fuzz/regressions/idx lost its files";
  for (const auto& path : inputs) {
    outcome_of(path, [&] { read_idx_images(path); });
    outcome_of(path, [&] { read_idx_labels(path); });
  }
}

// No CIFAR crash has been kept yet (fuzz/regressions/cifar does not exist): the corpus seeds are what this
// checks, so that the test cannot pass over an empty folder. The seeds are well-formed batches: each reads in
// its own format (cifar10-*.bin as CIFAR-10, cifar100-*.bin as CIFAR-100) and the other format is refused.
TEST(FuzzRegressions, CifarInputsEndInInputErrorOrSuccess) {
  auto inputs = fuzz_inputs("corpus", "cifar");
  const auto kept = fuzz_inputs("regressions", "cifar");
  inputs.insert(inputs.end(), kept.begin(), kept.end());
  ASSERT_GE(inputs.size(), 2u) << "fuzz/corpus/cifar lost its seeds";
  int ok = 0;
  for (const auto& path : inputs)
    for (bool cifar100 : {false, true})
      for (bool coarse : {false, true}) {
        const auto outcome = outcome_of(path, [&] { read_cifar_batches({path}, cifar100, coarse); });
        const bool own_format = (fs::path(path).filename().string().rfind("cifar100-", 0) == 0) == cifar100;
        if (outcome == Outcome::kOk) ++ok;
        if (kept.empty() || path.find("/corpus/") != std::string::npos)
          EXPECT_EQ(outcome, own_format ? Outcome::kOk : Outcome::kInputError) << path << " cifar100=" << cifar100;
      }
  EXPECT_GT(ok, 0);
}

TEST(FuzzRegressions, CheckpointInputsEndInInputErrorOrSuccess) {
  size_t count = 0;
  for (const std::string target : {"checkpoint", "checkpoint_payload"})
    for (const auto& path : seeds_and_regressions(target)) {
      outcome_of(path, [&] { read_checkpoint_input(path); });
      ++count;
    }
  EXPECT_GE(count, 3u) << "fuzz/corpus/checkpoint* or fuzz/regressions/checkpoint_payload lost their files";
}

// Found by fuzz_checkpoint_payload: LibTorch's TorchScript importer throws std::runtime_error (not c10::Error)
// for a damaged code/ entry; it escaped read_checkpoint and the CLI reported an internal error.
TEST(FuzzRegressions, DamagedTorchScriptInAPayloadIsAnInputError) {
  const auto path =
      std::string(CONTRASTIVE_SOURCE_DIR) + "/fuzz/regressions/checkpoint_payload/torchscript-parse-error.payload";
  ASSERT_TRUE(fs::exists(path));
  try {
    read_checkpoint_input(path);
    FAIL() << "accepted";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("checkpoint payload cannot be read"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST(FuzzRegressions, ConfigInputsEndInInputErrorOrSuccess) {
  const auto inputs = seeds_and_regressions("config");
  ASSERT_GE(inputs.size(), 9u) << "fuzz/corpus/config or fuzz/regressions/config lost its files";
  for (const auto& path : inputs) outcome_of(path, [&] { load_config_input(path); });
}

TEST(FuzzRegressions, IdxDimensionsWhoseProductWrapsAroundAreRejected) {
  const auto path =
      std::string(CONTRASTIVE_SOURCE_DIR) + "/fuzz/regressions/idx/images-dims-product-wraps-to-zero.idx";
  ASSERT_TRUE(fs::exists(path));
  try {
    read_idx_images(path);
    FAIL() << "accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("implausibly large"), std::string::npos) << e.what();
  }
}

TEST(FuzzRegressions, YamlKeysThatAreNotScalarsAreInputErrors) {
  Config config;
  for (const char* text :
       {"[data]: 1\n", "? {a: 1}\n: 2\n", "data:\n  [dataset]: mnist\n", "data: {? [x] : 1}\n"}) {
    EXPECT_THROW(config_from_yaml_string(text, config, "t.yaml"), InputError) << text;
  }
}

// Found by review while fuzzing (UBSan in fuzz_config and in scripts/sanitize_tests.sh reports it): MoCo's keys
// per step, batch size x 2 with symmetric loss, overflowed int64.
TEST(FuzzRegressions, MocoKeysPerStepDoNotOverflow) {
  Config config;
  load_config_file(
      std::string(CONTRASTIVE_SOURCE_DIR) + "/fuzz/regressions/config/moco-symmetric-batch-overflow.yaml", config);
  resolve_defaults(config);
  EXPECT_THROW(validate(config), InputError);
}

// The seeds are valid files of their kind: each decodes as at least one of the kinds its fuzz target tries.
TEST(FuzzCorpus, IdxSeedsDecode) {
  const auto seeds = fuzz_inputs("corpus", "idx");
  ASSERT_FALSE(seeds.empty());
  for (const auto& path : seeds) {
    const bool images = outcome_of(path, [&] { read_idx_images(path); }) == Outcome::kOk;
    const bool labels = outcome_of(path, [&] { read_idx_labels(path); }) == Outcome::kOk;
    EXPECT_TRUE(images || labels) << path;
  }
}

TEST(FuzzCorpus, CifarSeedsDecode) {
  const auto seeds = fuzz_inputs("corpus", "cifar");
  ASSERT_FALSE(seeds.empty());
  for (const auto& path : seeds) {
    const bool c10 = outcome_of(path, [&] { read_cifar_batches({path}, false, false); }) == Outcome::kOk;
    const bool c100 = outcome_of(path, [&] { read_cifar_batches({path}, true, false); }) == Outcome::kOk;
    EXPECT_TRUE(c10 || c100) << path;
  }
}

TEST(FuzzCorpus, CheckpointSeedsLoad) {
  auto seeds = fuzz_inputs("corpus", "checkpoint");
  const auto payloads = fuzz_inputs("corpus", "checkpoint_payload");
  ASSERT_FALSE(seeds.empty());
  ASSERT_FALSE(payloads.empty());
  seeds.insert(seeds.end(), payloads.begin(), payloads.end());
  for (const auto& path : seeds)
    EXPECT_EQ(outcome_of(path, [&] { read_checkpoint_input(path); }), Outcome::kOk) << path;
}

TEST(FuzzCorpus, ConfigSeedsLoadOrFailWithInputError) {
  const auto seeds = fuzz_inputs("corpus", "config");
  ASSERT_FALSE(seeds.empty());
  int valid = 0;
  for (const auto& path : seeds) valid += outcome_of(path, [&] { load_config_input(path); }) == Outcome::kOk;
  EXPECT_GE(valid, 3);  // the corpus holds valid configs as well as edge cases that must be rejected
}

// The in-memory decoders (the fuzz targets' entry points) agree with the file readers.
TEST(FuzzEntryPoints, InMemoryDecodersMatchTheFileReaders) {
  const std::string dir = std::string(CONTRASTIVE_SOURCE_DIR) + "/fuzz/corpus/";
  const std::string idx = slurp(dir + "idx/images-2x3x4.idx");
  const auto* p = reinterpret_cast<const uint8_t*>(idx.data());
  EXPECT_TRUE(contrastive::detail::parse_idx_images(p, idx.size(), "m")
                  .equal(read_idx_images(dir + "idx/images-2x3x4.idx")));
  const std::string lab = slurp(dir + "idx/labels-2.idx");
  const auto labels =
      contrastive::detail::parse_idx_labels(reinterpret_cast<const uint8_t*>(lab.data()), lab.size(), "m");
  EXPECT_TRUE(labels.equal(torch::tensor({3, 9}, torch::kLong)));
  EXPECT_THROW(contrastive::detail::parse_idx_labels(p, idx.size(), "m"), InputError);  // images magic
  EXPECT_THROW(contrastive::detail::parse_idx_images(p, idx.size() - 1, "m"), InputError);

  const std::string cifar = slurp(dir + "cifar/cifar100-1.bin");
  const auto [images, fine] = contrastive::detail::parse_cifar_batch(
      reinterpret_cast<const uint8_t*>(cifar.data()), cifar.size(), "m", true, false);
  const auto [file_images, file_fine] = read_cifar_batches({dir + "cifar/cifar100-1.bin"}, true, false);
  EXPECT_TRUE(images.equal(file_images));
  EXPECT_EQ(fine.item<int64_t>(), 42);
  EXPECT_EQ(file_fine.item<int64_t>(), 42);

  // A payload framed in memory reads back, as does a file written by write_checkpoint.
  torch::serialize::OutputArchive out;
  archive_put(out, "epoch", int64_t{7});
  std::ostringstream payload;
  out.save_to(payload);
  const std::string framed = contrastive::detail::frame_checkpoint(payload.str());
  EXPECT_EQ(framed.size(), payload.str().size() + 28);
  torch::serialize::InputArchive in;
  contrastive::detail::read_checkpoint_bytes(framed, "m", in);
  EXPECT_EQ(archive_get_int(in, "epoch"), 7);
  const auto tmp = test_util::temp_dir("frame");
  write_checkpoint(tmp + "/a.ckpt", out);
  torch::serialize::InputArchive in2;
  contrastive::detail::read_checkpoint_bytes(slurp(tmp + "/a.ckpt"), "m", in2);
  EXPECT_EQ(archive_get_int(in2, "epoch"), 7);
  std::string torn = framed.substr(0, framed.size() - 1);
  EXPECT_THROW(contrastive::detail::read_checkpoint_bytes(torn, "m", in), InputError);
}

// Writes fuzz/corpus/checkpoint/tiny.ckpt and checkpoint_payload/tiny.payload (run with
// --gtest_also_run_disabled_tests to refresh the seed).
TEST(FuzzCorpus, DISABLED_WriteCheckpointSeed) {
  torch::serialize::OutputArchive a;
  a.write("w", torch::arange(6, torch::kFloat).reshape({2, 3}));
  a.write("step", torch::tensor({int64_t{3}}), /*is_buffer=*/true);
  archive_put(a, "epoch", int64_t{4});
  archive_put(a, "best_metric", 0.5);
  archive_put(a, "config", std::string("method:\n  name: cds\n"));
  const auto dir = std::string(CONTRASTIVE_SOURCE_DIR) + "/fuzz/corpus/";
  fs::create_directories(dir + "checkpoint");
  fs::create_directories(dir + "checkpoint_payload");
  write_checkpoint(dir + "checkpoint/tiny.ckpt", a);
  std::ostringstream payload;
  a.save_to(payload);
  std::ofstream(dir + "checkpoint_payload/tiny.payload", std::ios::binary) << payload.str();
}
