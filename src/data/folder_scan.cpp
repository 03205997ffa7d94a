// Finding the images of a folder: the layout (unlabelled, class folders, train/test), the recursive listing,
// and the hash that holds out a validation split.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>

#include "contrastive/common.h"
#include "contrastive/data.h"

namespace fs = std::filesystem;

namespace contrastive {
namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

bool is_hidden(const fs::path& p) { return p.filename().string().rfind('.', 0) == 0; }

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// Relative paths (generic form, '/' separated) of the image files under `dir` at any depth, unsorted; hidden
// files and folders are left out, symbolic links to folders followed. Stops once `out` holds `limit` paths.
void collect_images(const fs::path& dir, const fs::path& base, std::vector<std::string>& out,
                    size_t limit = SIZE_MAX) {
  std::error_code ec;
  auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink, ec);
  if (ec) throw InputError(dir.string() + ": cannot list folder (" + ec.message() + ")");
  for (const auto end = fs::recursive_directory_iterator(); it != end; it.increment(ec)) {
    if (ec) throw InputError(dir.string() + ": cannot list folder (" + ec.message() + ")");
    const fs::path& p = it->path();
    if (is_hidden(p)) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (is_image_file(p) && it->is_regular_file(ec)) {
      out.push_back(p.lexically_relative(base).generic_string());
      if (out.size() >= limit) return;
    }
  }
}

// The visible sub-folders of `dir`, sorted by name.
std::vector<fs::path> sub_folders(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!is_hidden(it->path()) && is_dir(it->path())) out.push_back(it->path());
  }
  if (ec) throw InputError(dir.string() + ": cannot list folder (" + ec.message() + ")");
  std::sort(out.begin(), out.end());
  return out;
}

bool holds_image_files(const fs::path& dir) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!is_hidden(it->path()) && is_image_file(it->path()) && it->is_regular_file(ec)) return true;
  }
  return false;
}

bool holds_images_anywhere(const fs::path& dir) {
  std::vector<std::string> found;
  collect_images(dir, dir, found, 1);
  return !found.empty();
}

}  // namespace

const std::vector<std::string>& folder_layout_names() {
  static const std::vector<std::string> names{"auto", "unlabelled", "classes", "train-test"};
  return names;
}

std::string detect_folder_layout(const std::string& dir) {
  if (!is_dir(dir)) throw InputError(dir + ": missing image folder");
  if (is_dir(fs::path(dir) / "train")) return "train-test";
  if (holds_image_files(dir)) return "unlabelled";
  int with_images = 0;
  for (const auto& sub : sub_folders(dir)) with_images += holds_images_anywhere(sub) ? 1 : 0;
  return with_images >= 2 ? "classes" : "unlabelled";
}

ImageList list_images(const std::string& dir, bool classes) {
  if (!is_dir(dir)) throw InputError(dir + ": missing image folder");
  ImageList list;
  list.root = dir;
  if (!classes) {
    collect_images(dir, dir, list.files);
    std::sort(list.files.begin(), list.files.end());
    if (list.files.empty()) throw InputError(dir + ": no images (.png/.jpg/.jpeg/.bmp) in this folder or below");
    return list;
  }
  const auto class_dirs = sub_folders(dir);
  if (class_dirs.empty()) throw InputError(dir + ": no class folders (expected <class>/<image> sub-folders)");
  for (size_t k = 0; k < class_dirs.size(); ++k) {
    std::vector<std::string> files;
    collect_images(class_dirs[k], dir, files);
    if (files.empty()) {
      throw InputError(class_dirs[k].string() + ": empty class folder (no .png/.jpg/.jpeg/.bmp images)");
    }
    std::sort(files.begin(), files.end());
    list.class_names.push_back(class_dirs[k].filename().string());
    for (auto& f : files) {
      list.files.push_back(std::move(f));
      list.labels.push_back(static_cast<int64_t>(k));
    }
  }
  return list;
}

bool in_validation_split(const std::string& rel, uint64_t seed, double fraction) {
  if (fraction <= 0) return false;
  // FNV-1a over the path, then a splitmix64 finaliser with the seed: every path gets an independent uniform
  // number, fixed for the path and the seed.
  uint64_t h = 1469598103934665603ULL;
  for (const unsigned char c : rel) h = (h ^ c) * 1099511628211ULL;
  uint64_t z = h + seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  const double u = static_cast<double>(z >> 11) * 0x1.0p-53;
  return u < fraction;
}

}  // namespace contrastive
