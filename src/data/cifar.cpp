// CIFAR-10/100 binary batches: fixed-size records of label byte(s) followed by a 3x32x32 CHW image.
#include <ATen/ATen.h>

#include <cstring>

#include "contrastive/common.h"
#include "contrastive/data.h"
#include "data/io.h"
#include "data/parse.h"

namespace contrastive {
namespace {

constexpr int64_t kPixels = 3 * 32 * 32;
// The largest official file is CIFAR-100 train.bin (~154 MB); anything far beyond is not CIFAR.
constexpr uint64_t kMaxFileBytes = uint64_t{1} << 32;

int64_t record_bytes(bool cifar100) { return (cifar100 ? 2 : 1) + kPixels; }

}  // namespace

namespace detail {

int64_t cifar_record_count(size_t size, const std::string& name, bool cifar100) {
  const auto record = static_cast<size_t>(record_bytes(cifar100));
  if (size == 0) throw InputError(name + ": empty CIFAR batch file");
  if (size % record != 0) {
    throw InputError(name + ": truncated CIFAR batch (" + std::to_string(size) +
                     " bytes is not a multiple of the " + std::to_string(record) + "-byte record)");
  }
  return static_cast<int64_t>(size / record);
}

void decode_cifar_records(const uint8_t* data, size_t size, const std::string& name, bool cifar100, bool coarse,
                          uint8_t* images, int64_t* labels) {
  const int64_t label_bytes = cifar100 ? 2 : 1;
  const int64_t record = record_bytes(cifar100);
  const int64_t count = cifar_record_count(size, name, cifar100);
  for (int64_t i = 0; i < count; ++i) {
    const uint8_t* rec = data + i * record;
    // Both CIFAR-100 labels are checked even when only one is used: a bad one means a bad file.
    if (cifar100) {
      if (rec[0] >= 20 || rec[1] >= 100) {
        throw InputError(name + ": record " + std::to_string(i) + " has label out of range (coarse " +
                         std::to_string(rec[0]) + ", fine " + std::to_string(rec[1]) + ")");
      }
      labels[i] = coarse ? rec[0] : rec[1];
    } else {
      if (rec[0] >= 10) {
        throw InputError(name + ": record " + std::to_string(i) + " has label " + std::to_string(rec[0]) +
                         " out of range [0,10)");
      }
      labels[i] = rec[0];
    }
    std::memcpy(images + i * kPixels, rec + label_bytes, kPixels);
  }
}

std::pair<torch::Tensor, torch::Tensor> parse_cifar_batch(const uint8_t* data, size_t size,
                                                          const std::string& name, bool cifar100, bool coarse) {
  const int64_t count = cifar_record_count(size, name, cifar100);
  auto images = at::empty({count, 3, 32, 32}, at::kByte);
  auto labels = at::empty({count}, at::kLong);
  decode_cifar_records(data, size, name, cifar100, coarse, images.data_ptr<uint8_t>(), labels.data_ptr<int64_t>());
  return {images, labels};
}

}  // namespace detail

std::pair<torch::Tensor, torch::Tensor> read_cifar_batches(const std::vector<std::string>& files, bool cifar100,
                                                           bool coarse) {
  if (files.empty()) throw InputError("CIFAR: no batch files given");
  std::vector<std::vector<uint8_t>> contents;
  int64_t total = 0;
  for (const auto& path : files) {
    contents.push_back(detail::read_file_bytes(path, kMaxFileBytes));
    total += detail::cifar_record_count(contents.back().size(), path, cifar100);
  }
  // One allocation for all files: the decoded set is copied once, straight from the file bytes.
  auto images = at::empty({total, 3, 32, 32}, at::kByte);
  auto labels = at::empty({total}, at::kLong);
  int64_t n = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const auto& bytes = contents[f];
    detail::decode_cifar_records(bytes.data(), bytes.size(), files[f], cifar100, coarse,
                                 images.data_ptr<uint8_t>() + n * kPixels, labels.data_ptr<int64_t>() + n);
    n += detail::cifar_record_count(bytes.size(), files[f], cifar100);
  }
  return {images, labels};
}

}  // namespace contrastive
