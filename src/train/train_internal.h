// Internal to src/train/ (not installed): helpers shared by its files.
#pragma once

#include <cstdint>
#include <string>

namespace contrastive::detail {

// Empty when a checkpoint written by `saved` processes can continue in a run of `world`; else why not. The data
// order and the batch per process depend on the world size, so a resume keeps it (docs/usage.md, "Long jobs").
std::string world_size_mismatch(const std::string& path, int64_t saved, int64_t world);

}  // namespace contrastive::detail
