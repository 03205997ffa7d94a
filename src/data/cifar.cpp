// CIFAR-10/100 binary batches: fixed-size records of label byte(s) followed by a 3x32x32 CHW image.
#include "contrastive/common.h"
#include "contrastive/data.h"
#include "data/io.h"

#include <ATen/ATen.h>

#include <cstring>

namespace contrastive {
namespace {

constexpr int64_t kPixels = 3 * 32 * 32;
// The largest official file is CIFAR-100 train.bin (~154 MB); anything far beyond is not CIFAR.
constexpr uint64_t kMaxFileBytes = uint64_t{1} << 32;

}  // namespace

std::pair<torch::Tensor, torch::Tensor> read_cifar_batches(const std::vector<std::string>& files, bool cifar100,
                                                            bool coarse) {
  if (files.empty()) throw InputError("CIFAR: no batch files given");
  const int64_t label_bytes = cifar100 ? 2 : 1;
  const int64_t record = label_bytes + kPixels;
  std::vector<std::vector<uint8_t>> contents;
  int64_t total = 0;
  for (const auto& path : files) {
    contents.push_back(detail::read_file_bytes(path, kMaxFileBytes));
    const auto size = static_cast<int64_t>(contents.back().size());
    if (size == 0) throw InputError(path + ": empty CIFAR batch file");
    if (size % record != 0) {
      throw InputError(path + ": truncated CIFAR batch (" + std::to_string(size) + " bytes is not a multiple of the " +
                       std::to_string(record) + "-byte record)");
    }
    total += size / record;
  }

  auto images = at::empty({total, 3, 32, 32}, at::kByte);
  auto labels = at::empty({total}, at::kLong);
  uint8_t* img = images.data_ptr<uint8_t>();
  int64_t* lab = labels.data_ptr<int64_t>();
  int64_t n = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const auto& bytes = contents[f];
    const int64_t count = static_cast<int64_t>(bytes.size()) / record;
    for (int64_t i = 0; i < count; ++i, ++n) {
      const uint8_t* rec = bytes.data() + i * record;
      // Both CIFAR-100 labels are checked even when only one is used: a bad one means a bad file.
      if (cifar100) {
        if (rec[0] >= 20 || rec[1] >= 100) {
          throw InputError(files[f] + ": record " + std::to_string(i) + " has label out of range (coarse " +
                           std::to_string(rec[0]) + ", fine " + std::to_string(rec[1]) + ")");
        }
        lab[n] = coarse ? rec[0] : rec[1];
      } else {
        if (rec[0] >= 10) {
          throw InputError(files[f] + ": record " + std::to_string(i) + " has label " + std::to_string(rec[0]) +
                           " out of range [0,10)");
        }
        lab[n] = rec[0];
      }
      std::memcpy(img + n * kPixels, rec + label_bytes, kPixels);
    }
  }
  return {images, labels};
}

}  // namespace contrastive
