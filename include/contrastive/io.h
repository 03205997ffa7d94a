// Run directories, metrics, and crash-safe checkpoints.
#pragma once

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace contrastive {

// Checkpoint file layout: "CTRVCKPT" | u32 format version | u64 payload bytes | u64 FNV-1a of payload | payload,
// where the payload is a LibTorch archive. Written to a temp file, fsync'ed, then renamed over the target, so a
// crash or full disk leaves the previous checkpoint intact.
constexpr uint32_t kCheckpointVersion = 1;

void write_checkpoint(const std::string& path, torch::serialize::OutputArchive& archive);
// The same checkpoint to several files, serialised once and written (atomically each) in the given order.
void write_checkpoint(const std::vector<std::string>& paths, torch::serialize::OutputArchive& archive);
// Verifies magic, version, size and checksum; a torn or foreign file throws InputError naming the file.
void read_checkpoint(const std::string& path, torch::serialize::InputArchive& archive);

// Writes `data` to `path` atomically (temp file + fsync + rename). Throws RunError on any failure, leaving
// the previous file untouched.
void write_file_atomic(const std::string& path, const std::string& data);

// Appends one JSON object per line.
void append_jsonl(const std::string& path, const nlohmann::json& record);

// runs/<method>-<dataset>-<YYYYmmdd-HHMMSS>
std::string default_run_dir(const std::string& method, const std::string& dataset);

// Scalar helpers for archives.
void archive_put(torch::serialize::OutputArchive& a, const std::string& key, int64_t v);
void archive_put(torch::serialize::OutputArchive& a, const std::string& key, double v);
void archive_put(torch::serialize::OutputArchive& a, const std::string& key, const std::string& v);
int64_t archive_get_int(torch::serialize::InputArchive& a, const std::string& key);
double archive_get_double(torch::serialize::InputArchive& a, const std::string& key);
std::string archive_get_string(torch::serialize::InputArchive& a, const std::string& key);

}  // namespace contrastive
