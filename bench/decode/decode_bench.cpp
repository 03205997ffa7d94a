// Image decoding alone, one thread, from memory: stb_image (what the folder dataset uses) against libjpeg-turbo
// (TurboJPEG API) on JPEG files and against libspng and libpng (simplified API) on PNG files, all to 8-bit RGB.
//
//   decode_bench [--rounds 5] DIR...      each DIR: a flat folder of .jpg or .png files of one size
//
// Every file of a folder is read into memory first, so no I/O is timed. The decoders alternate within every round
// in a rotating order; the output is one line per folder and decoder with the median images/s over the rounds,
// and a check that the decoders agree: PNG is lossless, so every decoder must give the same bytes; for JPEG the
// largest per-pixel difference to stb is printed (IDCT and upsampling differ between the libraries).
#include <png.h>
#include <spng.h>
#include <turbojpeg.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_image.h>
#pragma GCC diagnostic pop

namespace fs = std::filesystem;
using Bytes = std::vector<unsigned char>;
using Decoder = std::function<bool(const Bytes&, Bytes&)>;  // file bytes -> RGB8 pixels

namespace {

bool stb_decode(const Bytes& in, Bytes& out) {
  int w = 0, h = 0, c = 0;
  stbi_uc* p = stbi_load_from_memory(in.data(), static_cast<int>(in.size()), &w, &h, &c, 3);
  if (!p) return false;
  out.assign(p, p + static_cast<size_t>(w) * h * 3);
  stbi_image_free(p);
  return true;
}

bool turbo_decode(const Bytes& in, Bytes& out) {
  static tjhandle handle = tjInitDecompress();
  int w = 0, h = 0, sub = 0, space = 0;
  auto* src = const_cast<unsigned char*>(in.data());
  if (tjDecompressHeader3(handle, src, in.size(), &w, &h, &sub, &space) != 0) return false;
  out.resize(static_cast<size_t>(w) * h * 3);
  return tjDecompress2(handle, src, in.size(), out.data(), w, 0, h, TJPF_RGB, 0) == 0;
}

bool spng_decode(const Bytes& in, Bytes& out) {
  spng_ctx* ctx = spng_ctx_new(0);
  size_t size = 0;
  bool ok = spng_set_png_buffer(ctx, in.data(), in.size()) == 0 &&
            spng_decoded_image_size(ctx, SPNG_FMT_RGB8, &size) == 0;
  if (ok) {
    out.resize(size);
    ok = spng_decode_image(ctx, out.data(), size, SPNG_FMT_RGB8, 0) == 0;
  }
  spng_ctx_free(ctx);
  return ok;
}

bool libpng_decode(const Bytes& in, Bytes& out) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, in.data(), in.size())) return false;
  img.format = PNG_FORMAT_RGB;
  out.resize(PNG_IMAGE_SIZE(img));
  const bool ok = png_image_finish_read(&img, nullptr, out.data(), 0, nullptr) != 0;
  png_image_free(&img);
  return ok;
}

Bytes read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 5;
  std::vector<std::string> dirs;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else {
      dirs.push_back(a);
    }
  }
  if (dirs.empty() || rounds < 1) {
    std::fprintf(stderr, "usage: decode_bench [--rounds N] DIR...\n");
    return 2;
  }
  for (const auto& dir : dirs) {
    std::vector<Bytes> files;
    std::string ext;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (!e.is_regular_file()) continue;
      ext = e.path().extension().string();
      files.push_back(read_file(e.path()));
    }
    if (files.empty()) {
      std::fprintf(stderr, "%s: no files\n", dir.c_str());
      return 2;
    }
    const bool jpeg = ext == ".jpg" || ext == ".jpeg";
    std::vector<std::pair<std::string, Decoder>> decoders = {{"stb_image", stb_decode}};
    if (jpeg) {
      decoders.emplace_back("libjpeg-turbo", turbo_decode);
    } else {
      decoders.emplace_back("libspng", spng_decode);
      decoders.emplace_back("libpng", libpng_decode);
    }
    // Agreement with stb on every file.
    int max_diff = 0;
    for (const auto& f : files) {
      Bytes ref, got;
      if (!stb_decode(f, ref)) {
        std::fprintf(stderr, "%s: stb cannot decode a file\n", dir.c_str());
        return 1;
      }
      for (size_t d = 1; d < decoders.size(); ++d) {
        if (!decoders[d].second(f, got) || got.size() != ref.size()) {
          std::fprintf(stderr, "%s: %s failed or gave another size\n", dir.c_str(), decoders[d].first.c_str());
          return 1;
        }
        for (size_t i = 0; i < ref.size(); ++i) max_diff = std::max(max_diff, std::abs(int(ref[i]) - int(got[i])));
      }
    }
    if (!jpeg && max_diff != 0) {
      std::fprintf(stderr, "%s: PNG decoders disagree (max difference %d)\n", dir.c_str(), max_diff);
      return 1;
    }
    std::vector<std::vector<double>> rate(decoders.size());
    Bytes out;
    for (int r = 0; r < rounds; ++r) {
      for (size_t k = 0; k < decoders.size(); ++k) {
        const size_t d = (k + r) % decoders.size();
        const auto t0 = std::chrono::steady_clock::now();
        for (const auto& f : files) decoders[d].second(f, out);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        rate[d].push_back(files.size() / s);
      }
    }
    const double base = median(rate[0]);
    for (size_t d = 0; d < decoders.size(); ++d) {
      const double m = median(rate[d]);
      std::printf("%s\t%zu files\t%s\t%.0f images/s\t%.2fx stb\tmax |diff| to stb %d\n", dir.c_str(), files.size(),
                  decoders[d].first.c_str(), m, m / base, d == 0 ? 0 : max_diff);
    }
  }
  return 0;
}
