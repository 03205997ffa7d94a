// Internal: the checkpoint file format over bytes in memory (not installed). read_checkpoint and
// write_checkpoint are thin file wrappers over these; the fuzz target and the regression tests call them
// directly.
#pragma once

#include <torch/serialize/input-archive.h>

#include <string>

namespace contrastive::detail {

// The whole checkpoint file for a LibTorch archive payload: header (magic, version, size, checksum) + payload.
std::string frame_checkpoint(const std::string& payload);

// Verifies the header and checksum of `file` (a checkpoint file's whole content) and loads its payload into
// `archive`. `name` (usually the path) starts every error message. Throws InputError.
void read_checkpoint_bytes(const std::string& file, const std::string& name,
                           torch::serialize::InputArchive& archive);

}  // namespace contrastive::detail
