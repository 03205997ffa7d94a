// IDX files (MNIST, Fashion-MNIST): a big-endian header of magic + dimension sizes, then uint8 data.
#include "contrastive/common.h"
#include "contrastive/data.h"
#include "data/io.h"

#include <ATen/ATen.h>

#include <cstring>

namespace contrastive {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension
// No real IDX file comes close; the cap keeps the product of corrupt header sizes from overflowing.
// (Memory is not at risk: the file is read in chunks, so a lying header costs only the real file's size.)
constexpr uint64_t kMaxBytes = uint64_t{1} << 36;

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

// Reads a whole IDX file with the given magic and returns its dimension sizes and payload.
std::vector<uint8_t> read_idx(const std::string& path, uint32_t magic, std::vector<uint64_t>& dims) {
  const size_t ndims = magic & 0xff;
  const size_t header = 4 + 4 * ndims;
  // Read the header first so the payload size is known before reading the whole file.
  std::vector<uint8_t> head = detail::read_file_bytes(path, header);
  if (head.size() < 4) throw InputError(path + ": truncated IDX file (no header)");
  const uint32_t found = big_endian_u32(head.data());
  if (found != magic) {
    throw InputError(path + ": wrong IDX magic " + hex(found) + " (expected " + hex(magic) + ")");
  }
  if (head.size() < header) throw InputError(path + ": truncated IDX header");
  uint64_t payload = 1;
  dims.clear();
  for (size_t i = 0; i < ndims; ++i) {
    dims.push_back(big_endian_u32(head.data() + 4 + 4 * i));
    payload *= dims.back();
    if (payload > kMaxBytes) throw InputError(path + ": IDX header dimensions are implausibly large");
  }
  // One byte beyond the expected size tells trailing garbage apart from an exact file.
  std::vector<uint8_t> all = detail::read_file_bytes(path, header + payload + 1);
  if (all.size() < header + payload) {
    throw InputError(path + ": truncated IDX file (" + std::to_string(all.size()) + " bytes, header says " +
                     std::to_string(header + payload) + ")");
  }
  if (all.size() > header + payload) {
    throw InputError(path + ": IDX file is longer than its header says (" + std::to_string(header + payload) +
                     " bytes)");
  }
  all.erase(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(header));
  return all;
}

}  // namespace

torch::Tensor read_idx_images(const std::string& path) {
  std::vector<uint64_t> dims;
  std::vector<uint8_t> data = read_idx(path, kImagesMagic, dims);
  if (dims[1] == 0 || dims[2] == 0) throw InputError(path + ": IDX images have zero height or width");
  auto images = at::empty({static_cast<int64_t>(dims[0]), 1, static_cast<int64_t>(dims[1]),
                           static_cast<int64_t>(dims[2])},
                          at::kByte);
  if (!data.empty()) std::memcpy(images.data_ptr<uint8_t>(), data.data(), data.size());
  return images;
}

torch::Tensor read_idx_labels(const std::string& path) {
  std::vector<uint64_t> dims;
  std::vector<uint8_t> data = read_idx(path, kLabelsMagic, dims);
  auto labels = at::empty({static_cast<int64_t>(dims[0])}, at::kLong);
  int64_t* out = labels.data_ptr<int64_t>();
  for (size_t i = 0; i < data.size(); ++i) out[i] = data[i];
  return labels;
}

}  // namespace contrastive
