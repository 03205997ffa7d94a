// IDX files (MNIST, Fashion-MNIST): a big-endian header of magic + dimension sizes, then uint8 data.
#include <ATen/ATen.h>

#include <cstring>

#include "contrastive/common.h"
#include "contrastive/data.h"
#include "data/io.h"
#include "data/parse.h"

namespace contrastive {
namespace detail {
namespace {

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

// Checks a whole IDX file's size against its header; returns the dimension sizes.
std::vector<int64_t> checked_idx_dims(const uint8_t* data, size_t size, uint32_t magic, const std::string& name) {
  const uint64_t expected = idx_expected_bytes(data, size, magic, name);
  if (size < expected) {
    throw InputError(name + ": truncated IDX file (" + std::to_string(size) + " bytes, header says " +
                     std::to_string(expected) + ")");
  }
  if (size > expected) {
    throw InputError(name + ": IDX file is longer than its header says (" + std::to_string(expected) + " bytes)");
  }
  std::vector<int64_t> dims;
  for (size_t i = 0; i < (magic & 0xff); ++i) dims.push_back(big_endian_u32(data + 4 + 4 * i));
  return dims;
}

}  // namespace

size_t idx_header_bytes(uint32_t magic) { return 4 + 4 * size_t{magic & 0xff}; }

uint64_t idx_expected_bytes(const uint8_t* data, size_t size, uint32_t magic, const std::string& name) {
  if (size < 4) throw InputError(name + ": truncated IDX file (no header)");
  const uint32_t found = big_endian_u32(data);
  if (found != magic) {
    throw InputError(name + ": wrong IDX magic " + hex(found) + " (expected " + hex(magic) + ")");
  }
  const size_t header = idx_header_bytes(magic);
  if (size < header) throw InputError(name + ": truncated IDX header");
  uint64_t payload = 1;
  for (size_t i = 0; i < (magic & 0xff); ++i) {
    const uint64_t dim = big_endian_u32(data + 4 + 4 * i);
    // Checked before multiplying: the product of several 32-bit sizes can wrap around 64 bits.
    if (dim != 0 && payload > kMaxBytes / dim) {
      throw InputError(name + ": IDX header dimensions are implausibly large");
    }
    payload *= dim;
  }
  return header + payload;
}

torch::Tensor parse_idx_images(const uint8_t* data, size_t size, const std::string& name) {
  const auto dims = checked_idx_dims(data, size, kIdxImagesMagic, name);
  if (dims[1] == 0 || dims[2] == 0) throw InputError(name + ": IDX images have zero height or width");
  auto images = at::empty({dims[0], 1, dims[1], dims[2]}, at::kByte);
  const size_t header = idx_header_bytes(kIdxImagesMagic);
  if (size > header) std::memcpy(images.data_ptr<uint8_t>(), data + header, size - header);
  return images;
}

torch::Tensor parse_idx_labels(const uint8_t* data, size_t size, const std::string& name) {
  const auto dims = checked_idx_dims(data, size, kIdxLabelsMagic, name);
  auto labels = at::empty({dims[0]}, at::kLong);
  int64_t* out = labels.data_ptr<int64_t>();
  const size_t header = idx_header_bytes(kIdxLabelsMagic);
  for (size_t i = header; i < size; ++i) out[i - header] = data[i];
  return labels;
}

}  // namespace detail

namespace {

// Reads the header first, so that the whole file is read only up to the size it promises; one byte
// beyond that tells trailing garbage apart from an exact file.
std::vector<uint8_t> read_idx_file(const std::string& path, uint32_t magic) {
  const std::vector<uint8_t> head = detail::read_file_bytes(path, detail::idx_header_bytes(magic));
  const uint64_t expected = detail::idx_expected_bytes(head.data(), head.size(), magic, path);
  return detail::read_file_bytes(path, expected + 1);
}

}  // namespace

torch::Tensor read_idx_images(const std::string& path) {
  const auto bytes = read_idx_file(path, detail::kIdxImagesMagic);
  return detail::parse_idx_images(bytes.data(), bytes.size(), path);
}

torch::Tensor read_idx_labels(const std::string& path) {
  const auto bytes = read_idx_file(path, detail::kIdxLabelsMagic);
  return detail::parse_idx_labels(bytes.data(), bytes.size(), path);
}

}  // namespace contrastive
