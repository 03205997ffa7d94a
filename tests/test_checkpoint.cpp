#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "contrastive/common.h"
#include "contrastive/io.h"
#include "test_util.h"

using namespace contrastive;

namespace {
void write_sample(const std::string& path, double value) {
  torch::serialize::OutputArchive a;
  a.write("w", torch::full({3}, value));
  archive_put(a, "epoch", int64_t{4});
  archive_put(a, "name", std::string("cds"));
  write_checkpoint(path, a);
}
}  // namespace

TEST(Checkpoint, RoundTripsTensorsAndScalars) {
  const auto dir = test_util::temp_dir("ckpt");
  write_sample(dir + "/a.ckpt", 1.5);
  torch::serialize::InputArchive in;
  read_checkpoint(dir + "/a.ckpt", in);
  torch::Tensor w;
  in.read("w", w);
  EXPECT_TRUE(w.equal(torch::full({3}, 1.5)));
  EXPECT_EQ(archive_get_int(in, "epoch"), 4);
  EXPECT_EQ(archive_get_string(in, "name"), "cds");
  EXPECT_THROW(archive_get_int(in, "missing"), InputError);
  EXPECT_FALSE(std::filesystem::exists(dir + "/a.ckpt.tmp"));
}

TEST(Checkpoint, TornForeignAndCorruptFilesAreReported) {
  const auto dir = test_util::temp_dir("ckpt-bad");
  write_sample(dir + "/a.ckpt", 2.0);
  const auto size = std::filesystem::file_size(dir + "/a.ckpt");
  std::filesystem::copy_file(dir + "/a.ckpt", dir + "/torn.ckpt");
  std::filesystem::resize_file(dir + "/torn.ckpt", size / 2);
  torch::serialize::InputArchive in;
  try {
    read_checkpoint(dir + "/torn.ckpt", in);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  // One flipped byte in the payload: checksum.
  std::filesystem::copy_file(dir + "/a.ckpt", dir + "/flip.ckpt");
  {
    std::fstream f(dir + "/flip.ckpt", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size - 10));
    char c;
    f.read(&c, 1);
    f.seekp(static_cast<std::streamoff>(size - 10));
    c ^= 0x5a;
    f.write(&c, 1);
  }
  EXPECT_THROW(read_checkpoint(dir + "/flip.ckpt", in), InputError);
  std::ofstream(dir + "/foreign.ckpt") << "hello, not a checkpoint";
  EXPECT_THROW(read_checkpoint(dir + "/foreign.ckpt", in), InputError);
  EXPECT_THROW(read_checkpoint(dir + "/missing.ckpt", in), InputError);
}

TEST(Checkpoint, FailedWriteKeepsThePreviousFile) {
  const auto dir = test_util::temp_dir("ckpt-keep");
  write_sample(dir + "/a.ckpt", 3.0);
  // A directory in place of the temp file makes the write fail before the rename.
  std::filesystem::create_directories(dir + "/a.ckpt.tmp");
  EXPECT_THROW(write_sample(dir + "/a.ckpt", 4.0), RunError);
  torch::serialize::InputArchive in;
  read_checkpoint(dir + "/a.ckpt", in);
  torch::Tensor w;
  in.read("w", w);
  EXPECT_TRUE(w.equal(torch::full({3}, 3.0)));
}
