// Image-folder datasets: lazy decoding (libjpeg-turbo for JPEG where built with it, stb_image otherwise), fixed
// bilinear resize, bounded in-memory cache, and unreadable files skipped (listed) instead of ending the run.
#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

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
// stb_image_resize asserts that each output pixel's filter weights sum to within 10% of 1 before it divides them
// by their sum; with the triangle filter some downscales (e.g. 94 -> 32) miss that bound in float rounding, which
// aborts a build with assertions on (the sanitizer tests). The weights are renormalised either way.
#define STBIR_ASSERT(x) ((void)0)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb_image.h>
#include <stb_image_resize.h>
#pragma GCC diagnostic pop
#ifdef CONTRASTIVE_WITH_TURBOJPEG
#include <turbojpeg.h>
#endif

namespace fs = std::filesystem;

namespace contrastive {
namespace {

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

// The whole file, or InputError.
std::vector<unsigned char> read_file(const std::string& path) {
  std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) throw InputError(path + ": cannot open image");
  std::vector<unsigned char> bytes;
  unsigned char buf[1 << 16];
  size_t got = 0;
  while ((got = std::fread(buf, 1, sizeof buf, file.get())) > 0) bytes.insert(bytes.end(), buf, buf + got);
  if (std::ferror(file.get())) throw InputError(path + ": cannot read image");
  return bytes;
}

// HWC pixels with `c` channels, from the decoder that takes the file.
struct Pixels {
  std::vector<uint8_t> hwc;
  int w = 0, h = 0;
};

// One grey value per RGB pixel, with stb_image's PNG weights (77 R + 150 G + 29 B) >> 8: every decoder and format
// gives the same grey image.
std::vector<uint8_t> grey_of_rgb(const uint8_t* rgb, size_t n) {
  std::vector<uint8_t> grey(n);
  for (size_t i = 0; i < n; ++i)
    grey[i] = static_cast<uint8_t>((rgb[3 * i] * 77 + rgb[3 * i + 1] * 150 + rgb[3 * i + 2] * 29) >> 8);
  return grey;
}

#ifdef CONTRASTIVE_WITH_TURBOJPEG
struct TjDestroy {
  void operator()(void* h) const { tjDestroy(h); }
};

// libjpeg-turbo for a JPEG file (its first bytes FF D8): false when it leaves the file to stb_image (CMYK and YCCK
// files, which it cannot convert to RGB); InputError when the file is damaged (a warning such as a premature end
// counts: the image would be partly grey). Grey output from a colour file uses stb_image's weights, so that either
// decoder gives the same grey image up to the IDCT's rounding.
bool turbo_decode(const std::vector<unsigned char>& bytes, int c, const std::string& path, Pixels& out) {
  if (bytes.size() < 3 || bytes[0] != 0xFF || bytes[1] != 0xD8) return false;
  thread_local std::unique_ptr<void, TjDestroy> handle(tjInitDecompress());
  if (!handle) return false;
  auto* src = const_cast<unsigned char*>(bytes.data());
  const auto size = static_cast<unsigned long>(bytes.size());
  int sub = 0, space = 0;
  if (tjDecompressHeader3(handle.get(), src, size, &out.w, &out.h, &sub, &space) != 0)
    throw InputError(path + ": cannot decode image (" + tjGetErrorStr2(handle.get()) + ")");
  if (space == TJCS_CMYK || space == TJCS_YCCK) return false;
  const bool grey_file = space == TJCS_GRAY;
  const int file_c = grey_file ? 1 : 3;
  std::vector<uint8_t> px(static_cast<size_t>(out.w) * out.h * file_c);
  if (tjDecompress2(handle.get(), src, size, px.data(), out.w, 0, out.h, grey_file ? TJPF_GRAY : TJPF_RGB, 0) != 0)
    throw InputError(path + ": cannot decode image (" + tjGetErrorStr2(handle.get()) + ")");
  const size_t n = static_cast<size_t>(out.w) * out.h;
  if (file_c == c) {
    out.hwc = std::move(px);
  } else if (c == 3) {  // grey file, RGB wanted: the value in each channel
    out.hwc.resize(n * 3);
    for (size_t i = 0; i < n; ++i) out.hwc[3 * i] = out.hwc[3 * i + 1] = out.hwc[3 * i + 2] = px[i];
  } else {  // colour file, grey wanted
    out.hwc = grey_of_rgb(px.data(), n);
  }
  return true;
}
#endif

// Decodes `path`, resizes it to size x size and writes it as CHW into `dst`; InputError with the reason when
// it cannot.
void decode_into(const std::string& path, int64_t size, int64_t channels, uint8_t* dst) {
  const auto bytes = read_file(path);
  const int c = static_cast<int>(channels);
  Pixels px;
  bool done = false;
#ifdef CONTRASTIVE_WITH_TURBOJPEG
  done = turbo_decode(bytes, c, path, px);
#endif
  if (!done) {
    // Grey output is computed from RGB with stb_image's PNG weights for every format (its JPEG decoder would
    // return the luma channel instead), so that both decoders and all formats make the same grey image.
    int comp = 0;
    std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
        stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &px.w, &px.h, &comp, 3),
        stbi_image_free);
    if (!pixels) throw InputError(path + ": cannot decode image (" + stbi_failure_reason() + ")");
    const size_t n = static_cast<size_t>(px.w) * px.h;
    const stbi_uc* p = pixels.get();
    px.hwc = c == 3 ? std::vector<uint8_t>(p, p + n * 3) : grey_of_rgb(p, n);
  }
  const int w = px.w, h = px.h;
  const int s = static_cast<int>(size);
  std::vector<uint8_t> resized;
  const uint8_t* hwc = px.hwc.data();
  if (w != s || h != s) {
    // The triangle filter is bilinear interpolation (averaging over the footprint when shrinking).
    resized.resize(static_cast<size_t>(s) * s * c);
    if (!stbir_resize_uint8_generic(px.hwc.data(), w, h, 0, resized.data(), s, s, 0, c, STBIR_ALPHA_CHANNEL_NONE,
                                    0, STBIR_EDGE_CLAMP, STBIR_FILTER_TRIANGLE, STBIR_COLORSPACE_LINEAR,
                                    nullptr)) {
      throw InputError(path + ": cannot resize image");
    }
    hwc = resized.data();
  }
  const int64_t plane = size * size;
  for (int64_t p = 0; p < plane; ++p) {
    for (int64_t ch = 0; ch < channels; ++ch) dst[ch * plane + p] = hwc[p * channels + ch];
  }
}

// The header check made when a set is opened: "" when the file looks like an image stb can read (it may still
// be truncated), else the reason. `comp` receives the file's channel count.
std::string header_problem(const std::string& path, int& comp) {
  std::error_code ec;
  const auto bytes = fs::file_size(path, ec);
  if (ec) return "cannot read file (" + ec.message() + ")";
  if (bytes == 0) return "empty file";
  std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) return "cannot open file";
  int w = 0, h = 0;
  if (!stbi_info_from_file(file.get(), &w, &h, &comp))
    return std::string("not a readable image (") + stbi_failure_reason() + ")";
  if (w <= 0 || h <= 0) return "image has no pixels";
  return "";
}

std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * fraction);
  return buf;
}

// InputError when `n_bad` unreadable files are more than `max_fraction` of the `listed` ones.
void check_bad_share(int64_t n_bad, int64_t listed, double max_fraction, const std::string& where,
                     const std::string& tail) {
  if (static_cast<double>(n_bad) <= max_fraction * static_cast<double>(listed)) return;
  throw InputError(where + ": " + std::to_string(n_bad) + " of " + std::to_string(listed) + " images (" +
                   percent(static_cast<double>(n_bad) / static_cast<double>(listed)) +
                   ") cannot be read, more than the " + percent(max_fraction) + " a run tolerates" + tail);
}

}  // namespace

// Decoded images by sample index; first come, first kept until the budget is used up. No eviction: with
// random access every image is equally likely next, so replacing cached images would gain nothing. The same
// mutex guards the record of unreadable files.
struct ImageFolderDataset::Cache {
  std::mutex mutex;
  std::vector<torch::Tensor> slots;
  int64_t count = 0;
  int64_t capacity = 0;
  std::vector<std::string> skipped;  // "relative path: reason"
  std::set<int64_t> bad;             // sample indices found unreadable while decoding
};

ImageFolderDataset::ImageFolderDataset(ImageList list, ImageFolderOptions options)
    : options_(std::move(options)), cache_(std::make_unique<Cache>()) {
  if (options_.image_size <= 0) options_.image_size = 32;
  options_.decode_threads = std::max(1, options_.decode_threads);
  if (options_.channels != 0 && options_.channels != 1 && options_.channels != 3) {
    throw InputError(list.root + ": image channels must be 1 or 3, not " + std::to_string(options_.channels));
  }
  labelled_ = !list.class_names.empty();
  class_names_ = list.class_names;
  listed_ = static_cast<int64_t>(list.files.size());
  if (listed_ == 0) throw InputError(list.root + ": no images");

  // Header check of every file: an empty file or one that is no image leaves the set here, listed.
  std::vector<int64_t> labels;
  int first_comp = 0;
  for (size_t i = 0; i < list.files.size(); ++i) {
    const std::string full = (fs::path(list.root) / list.files[i]).string();
    int comp = 0;
    const std::string problem = header_problem(full, comp);
    if (!problem.empty()) {
      if (options_.strict) throw InputError(full + ": " + problem + " (--strict-data)");
      cache_->skipped.push_back(list.files[i] + ": " + problem);
      continue;
    }
    if (files_.empty()) first_comp = comp;
    files_.push_back(full);
    rel_files_.push_back(list.files[i]);
    labels.push_back(labelled_ ? list.labels.at(i) : 0);
  }
  const auto n_bad = static_cast<int64_t>(cache_->skipped.size());
  if (n_bad > 0) {
    const size_t shown = std::min<size_t>(cache_->skipped.size(), 20);
    for (size_t i = 0; i < shown; ++i)
      log_warn("skipping unreadable file " + list.root + "/" + cache_->skipped[i]);
    if (shown < cache_->skipped.size())
      log_warn("... and " + std::to_string(cache_->skipped.size() - shown) + " more unreadable files");
  }
  if (files_.empty())
    throw InputError(list.root + ": none of its " + std::to_string(listed_) + " images can be read");
  check_bad_share(n_bad, listed_, options_.max_bad_fraction, list.root,
                  "; first: " + (n_bad > 0 ? cache_->skipped.front() : std::string()));
  labels_ = at::tensor(labels, at::kLong);
  channels_ = options_.channels != 0 ? options_.channels : (first_comp >= 3 ? 3 : 1);  // alpha is dropped

  const int64_t image_bytes = channels_ * options_.image_size * options_.image_size;
  cache_->slots.resize(files_.size());
  cache_->capacity = std::max<int64_t>(0, options_.cache_mb) * (int64_t{1} << 20) / image_bytes;
}

ImageFolderDataset::ImageFolderDataset(const std::string& root, int64_t image_size, int64_t cache_mb,
                                       int decode_threads, int64_t channels)
    : ImageFolderDataset(list_images(root, /*classes=*/true),
                         ImageFolderOptions{image_size, cache_mb, decode_threads, channels}) {}

ImageFolderDataset::~ImageFolderDataset() = default;

int64_t ImageFolderDataset::cached() const {
  std::lock_guard<std::mutex> lock(cache_->mutex);
  return cache_->count;
}

std::vector<std::string> ImageFolderDataset::skipped_files() const {
  std::lock_guard<std::mutex> lock(cache_->mutex);
  return cache_->skipped;
}

void ImageFolderDataset::note_bad(int64_t index, const std::string& reason) const {
  int64_t n_bad = 0;
  {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    if (!cache_->bad.insert(index).second) return;
    cache_->skipped.push_back(rel_files_[index] + ": " + reason);
    n_bad = static_cast<int64_t>(cache_->skipped.size());
  }
  log_warn("skipping unreadable file " + files_[index] + ": " + reason + " (its sample is served as the next " +
           "readable image)");
  check_bad_share(n_bad, listed_, options_.max_bad_fraction, files_[index], "");
}

// Decodes sample `index` into dst; when its file cannot be read any more (truncated, deleted, replaced), the
// file is recorded and the next readable sample of the set is decoded in its place.
void ImageFolderDataset::decode_or_substitute(int64_t index, uint8_t* dst) const {
  const int64_t n = size();
  for (int64_t k = 0; k < n; ++k) {
    const int64_t j = (index + k) % n;
    {
      std::lock_guard<std::mutex> lock(cache_->mutex);
      if (cache_->bad.count(j)) continue;
    }
    try {
      decode_into(files_[j], options_.image_size, channels_, dst);
      return;
    } catch (const InputError& e) {
      if (options_.strict) throw InputError(std::string(e.what()) + " (--strict-data)");
      std::string reason = e.what();
      const auto colon = reason.find(": ", files_[j].size());
      if (reason.rfind(files_[j], 0) == 0 && colon != std::string::npos) reason = reason.substr(colon + 2);
      note_bad(j, reason);
    }
  }
  throw InputError(files_[index] + ": no readable image is left in its set");
}

torch::Tensor ImageFolderDataset::get(const torch::Tensor& indices) const {
  const auto idx = indices.to(at::kLong).contiguous();
  const int64_t batch = idx.numel();
  const int64_t* ip = idx.data_ptr<int64_t>();
  const int64_t image_bytes = channels_ * options_.image_size * options_.image_size;
  auto out = at::empty({batch, channels_, options_.image_size, options_.image_size}, at::kByte);
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
        decode_or_substitute(ip[i], dst + i * image_bytes);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = misses.size();  // stop the others early
      }
    }
  };
  const size_t n_threads = std::min<size_t>(static_cast<size_t>(options_.decode_threads), misses.size());
  std::vector<std::thread> threads;
  for (size_t t = 1; t < n_threads; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);

  std::lock_guard<std::mutex> lock(cache_->mutex);
  for (const int64_t i : misses) {
    if (cache_->count >= cache_->capacity) break;
    if (cache_->bad.count(ip[i])) continue;  // a substitute: not this sample's own pixels
    auto& slot = cache_->slots[ip[i]];
    if (slot.defined()) continue;  // the same index twice in a batch, or another thread was faster
    slot = out[i].clone();
    ++cache_->count;
  }
  return out;
}

}  // namespace contrastive
