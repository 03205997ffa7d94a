// What the front door checks of the augmentation settings without building any (no LibTorch here): the preset
// names and the multi-crop spec.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace contrastive {

// The augmentation presets (augment/presets.cpp), for validating --augment before any work.
const std::vector<std::string>& augment_preset_names();

// Parses a multi-crop spec "2x32,4x16" into (count, size) pairs. Bad syntax -> InputError.
std::vector<std::pair<int64_t, int64_t>> parse_multi_crop(const std::string& spec);

}  // namespace contrastive
