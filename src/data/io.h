// Internal helpers shared by the dataset readers (not installed).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace contrastive::detail {

// Whole (decompressed) content of `path`, gzipped or raw: zlib's gzread passes raw files through.
// Stops after `limit` bytes so that a corrupt header promising terabytes cannot exhaust memory; callers
// pass one byte more than they expect and detect trailing data from the size. Throws InputError.
std::vector<uint8_t> read_file_bytes(const std::string& path, uint64_t limit);

bool file_exists(const std::string& path);

// Non-empty, trimmed lines of a text file (class-name lists).
std::vector<std::string> read_lines(const std::string& path);

}  // namespace contrastive::detail
