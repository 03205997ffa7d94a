// Internal: the IDX and CIFAR decoders over bytes already in memory (not installed). The file readers in
// data.h read (and gunzip) a file and call these; the fuzz targets and regression tests call them directly.
// `name` (usually the path) starts every error message. All problems throw InputError.
#pragma once

#include <torch/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace contrastive::detail {

// IDX header size for a magic (4 bytes of magic + 4 per dimension).
size_t idx_header_bytes(uint32_t magic);
// Total file size the IDX header at `data` promises (header + payload). Checks the magic and that the
// dimension sizes are plausible; `size` may be just the header.
uint64_t idx_expected_bytes(const uint8_t* data, size_t size, uint32_t magic, const std::string& name);

torch::Tensor parse_idx_images(const uint8_t* data, size_t size, const std::string& name);  // uint8 [N,1,H,W]
torch::Tensor parse_idx_labels(const uint8_t* data, size_t size, const std::string& name);  // int64 [N]

constexpr uint32_t kIdxImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension

// Records in one CIFAR batch file of `size` bytes; throws when empty or not a whole number of records.
int64_t cifar_record_count(size_t size, const std::string& name, bool cifar100);
// Checks the labels of one batch file's records and copies them into `images` (uint8, 3072 per record)
// and `labels`.
void decode_cifar_records(const uint8_t* data, size_t size, const std::string& name, bool cifar100, bool coarse,
                          uint8_t* images, int64_t* labels);
// One batch file's content: images uint8 [N,3,32,32], labels int64 [N].
std::pair<torch::Tensor, torch::Tensor> parse_cifar_batch(const uint8_t* data, size_t size,
                                                          const std::string& name, bool cifar100, bool coarse);

}  // namespace contrastive::detail
