// Image-folder datasets: lazy stb_image decoding, fixed bilinear resize, bounded in-memory cache.
#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>

#include "contrastive/common.h"
#include "contrastive/data.h"

// The stb implementations are private to this file (static), so no other TU or library that embeds stb
// can clash with them at link time.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb_image.h>
#include <stb_image_resize.h>
#pragma GCC diagnostic pop

namespace fs = std::filesystem;

namespace contrastive {
namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

bool is_hidden(const fs::path& p) { return p.filename().string().rfind('.', 0) == 0; }

// Sorted entries of `dir` that satisfy `keep`; sorting by name makes class indices and sample order
// independent of the file system's listing order.
template <typename Keep>
std::vector<fs::path> sorted_entries(const fs::path& dir, Keep keep) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!is_hidden(it->path()) && keep(*it)) out.push_back(it->path());
  }
  if (ec) throw InputError(dir.string() + ": cannot list folder (" + ec.message() + ")");
  std::sort(out.begin(), out.end());
  return out;
}

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

// Decodes `path`, resizes it to size x size and writes it as CHW into `dst`.
void decode_into(const std::string& path, int64_t size, int64_t channels, uint8_t* dst) {
  std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) throw InputError(path + ": cannot open image");
  int w = 0, h = 0, comp = 0;
  const int c = static_cast<int>(channels);
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load_from_file(file.get(), &w, &h, &comp, c),
                                                   stbi_image_free);
  if (!pixels) throw InputError(path + ": cannot decode image (" + stbi_failure_reason() + ")");
  const int s = static_cast<int>(size);
  std::vector<uint8_t> resized;
  const uint8_t* hwc = pixels.get();
  if (w != s || h != s) {
    // The triangle filter is bilinear interpolation (averaging over the footprint when shrinking).
    resized.resize(static_cast<size_t>(s) * s * c);
    if (!stbir_resize_uint8_generic(pixels.get(), w, h, 0, resized.data(), s, s, 0, c, STBIR_ALPHA_CHANNEL_NONE, 0,
                                    STBIR_EDGE_CLAMP, STBIR_FILTER_TRIANGLE, STBIR_COLORSPACE_LINEAR, nullptr)) {
      throw InputError(path + ": cannot resize image");
    }
    hwc = resized.data();
  }
  const int64_t plane = size * size;
  for (int64_t p = 0; p < plane; ++p) {
    for (int64_t ch = 0; ch < channels; ++ch) dst[ch * plane + p] = hwc[p * channels + ch];
  }
}

}  // namespace

// Decoded images by sample index; first come, first kept until the budget is used up. No eviction: with
// random access every image is equally likely next, so replacing cached images would gain nothing.
struct ImageFolderDataset::Cache {
  std::mutex mutex;
  std::vector<torch::Tensor> slots;
  int64_t count = 0;
  int64_t capacity = 0;
};

ImageFolderDataset::ImageFolderDataset(const std::string& root, int64_t image_size, int64_t cache_mb,
                                       int decode_threads, int64_t channels)
    : image_size_(image_size > 0 ? image_size : 32),
      decode_threads_(std::max(1, decode_threads)),
      cache_(std::make_unique<Cache>()) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw InputError(root + ": missing image folder");
  const auto class_dirs = sorted_entries(root, [](const fs::directory_entry& e) {
    std::error_code ec2;
    return e.is_directory(ec2);
  });
  if (class_dirs.empty()) throw InputError(root + ": no class folders (expected <class>/<image> sub-folders)");

  std::vector<int64_t> labels;
  for (size_t k = 0; k < class_dirs.size(); ++k) {
    class_names_.push_back(class_dirs[k].filename().string());
    const auto images = sorted_entries(class_dirs[k], [](const fs::directory_entry& e) {
      std::error_code ec2;
      return e.is_regular_file(ec2) && is_image_file(e.path());
    });
    if (images.empty()) {
      throw InputError(class_dirs[k].string() + ": empty class folder (no .png/.jpg/.jpeg/.bmp images)");
    }
    for (const auto& p : images) {
      files_.push_back(p.string());
      labels.push_back(static_cast<int64_t>(k));
    }
  }
  labels_ = at::tensor(labels, at::kLong);

  if (channels == 1 || channels == 3) {
    channels_ = channels;
  } else if (channels == 0) {
    int w = 0, h = 0, comp = 0;
    if (!stbi_info(files_[0].c_str(), &w, &h, &comp)) {
      throw InputError(files_[0] + ": cannot decode image (" + stbi_failure_reason() + ")");
    }
    channels_ = comp >= 3 ? 3 : 1;  // alpha is dropped
  } else {
    throw InputError(root + ": image channels must be 1 or 3, not " + std::to_string(channels));
  }

  const int64_t image_bytes = channels_ * image_size_ * image_size_;
  cache_->slots.resize(files_.size());
  cache_->capacity = std::max<int64_t>(0, cache_mb) * (int64_t{1} << 20) / image_bytes;
}

ImageFolderDataset::~ImageFolderDataset() = default;

int64_t ImageFolderDataset::cached() const {
  std::lock_guard<std::mutex> lock(cache_->mutex);
  return cache_->count;
}

torch::Tensor ImageFolderDataset::get(const torch::Tensor& indices) const {
  const auto idx = indices.to(at::kLong).contiguous();
  const int64_t batch = idx.numel();
  const int64_t* ip = idx.data_ptr<int64_t>();
  const int64_t image_bytes = channels_ * image_size_ * image_size_;
  auto out = at::empty({batch, channels_, image_size_, image_size_}, at::kByte);
  uint8_t* dst = out.data_ptr<uint8_t>();

  std::vector<int64_t> misses;  // positions in the batch
  {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    for (int64_t i = 0; i < batch; ++i) {
      if (ip[i] < 0 || ip[i] >= size()) {
        throw std::out_of_range("ImageFolderDataset: index " + std::to_string(ip[i]) + " out of range");
      }
      const auto& slot = cache_->slots[ip[i]];
      if (slot.defined()) {
        std::memcpy(dst + i * image_bytes, slot.data_ptr<uint8_t>(), image_bytes);
      } else {
        misses.push_back(i);
      }
    }
  }
  if (misses.empty()) return out;

  // decode_threads decoders (the caller is one of them) pull work from a shared counter; the first error
  // is rethrown once all have stopped.
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  auto work = [&] {
    for (size_t m = next++; m < misses.size(); m = next++) {
      const int64_t i = misses[m];
      try {
        decode_into(files_[ip[i]], image_size_, channels_, dst + i * image_bytes);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = misses.size();  // stop the others early
      }
    }
  };
  const size_t n_threads = std::min<size_t>(static_cast<size_t>(decode_threads_), misses.size());
  std::vector<std::thread> threads;
  for (size_t t = 1; t < n_threads; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);

  std::lock_guard<std::mutex> lock(cache_->mutex);
  for (const int64_t i : misses) {
    if (cache_->count >= cache_->capacity) break;
    auto& slot = cache_->slots[ip[i]];
    if (slot.defined()) continue;  // the same index twice in a batch, or another thread was faster
    slot = out[i].clone();
    ++cache_->count;
  }
  return out;
}

}  // namespace contrastive
