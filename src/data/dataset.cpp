// In-memory datasets, subsets and the dataset-kind dispatcher.
#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>

#include "contrastive/common.h"
#include "contrastive/data.h"
#include "data/io.h"

namespace contrastive {

TensorDataset::TensorDataset(torch::Tensor images, torch::Tensor labels, std::vector<std::string> class_names)
    : images_(std::move(images)), labels_(std::move(labels)), class_names_(std::move(class_names)) {
  if (images_.dim() != 4 || images_.scalar_type() != at::kByte) {
    throw InputError("TensorDataset: images must be uint8 [N,C,H,W]");
  }
  if (labels_.dim() != 1 || labels_.scalar_type() != at::kLong || labels_.size(0) != images_.size(0)) {
    throw InputError("TensorDataset: labels must be int64 [N] with one label per image");
  }
  images_ = images_.contiguous();
}

int64_t TensorDataset::size() const { return images_.size(0); }
int64_t TensorDataset::channels() const { return images_.size(1); }
int64_t TensorDataset::height() const { return images_.size(2); }
int64_t TensorDataset::width() const { return images_.size(3); }
torch::Tensor TensorDataset::get(const torch::Tensor& indices) const {
  return images_.index_select(0, indices.to(at::kLong));
}

namespace {

// A view of some samples of another dataset, addressed by their position in `indices`.
class SubsetDataset : public Dataset {
 public:
  SubsetDataset(std::shared_ptr<Dataset> base, torch::Tensor indices)
      : base_(std::move(base)), indices_(std::move(indices)) {
    labels_ = base_->labels().index_select(0, indices_);
  }
  int64_t size() const override { return indices_.size(0); }
  int64_t channels() const override { return base_->channels(); }
  int64_t height() const override { return base_->height(); }
  int64_t width() const override { return base_->width(); }
  torch::Tensor labels() const override { return labels_; }
  torch::Tensor get(const torch::Tensor& indices) const override {
    return base_->get(indices_.index_select(0, indices.to(at::kLong)));
  }
  const std::vector<std::string>& class_names() const override { return base_->class_names(); }
  bool labelled() const override { return base_->labelled(); }
  std::string item_name(int64_t i) const override { return base_->item_name(indices_.data_ptr<int64_t>()[i]); }
  std::vector<std::string> skipped_files() const override { return base_->skipped_files(); }

 private:
  std::shared_ptr<Dataset> base_;
  torch::Tensor indices_, labels_;
};

}  // namespace

std::shared_ptr<Dataset> take_first(std::shared_ptr<Dataset> base, int64_t n) {
  if (n <= 0) throw InputError("subset size must be positive, got " + std::to_string(n));
  if (n > base->size()) {
    throw InputError("subset of " + std::to_string(n) + " samples asked from a dataset of " +
                     std::to_string(base->size()));
  }
  if (n == base->size()) return base;
  return std::make_shared<SubsetDataset>(std::move(base), at::arange(n, at::kLong));
}

std::shared_ptr<Dataset> take_indices(std::shared_ptr<Dataset> base, torch::Tensor indices) {
  indices = indices.to(at::kLong).flatten().contiguous();
  if (indices.numel() > 0) {
    const int64_t lo = indices.min().item<int64_t>();
    const int64_t hi = indices.max().item<int64_t>();
    if (lo < 0 || hi >= base->size()) {
      throw InputError("subset index out of range [0," + std::to_string(base->size()) +
                       "): " + std::to_string(lo < 0 ? lo : hi));
    }
  }
  return std::make_shared<SubsetDataset>(std::move(base), std::move(indices));
}

namespace {

const std::vector<std::string> kDatasetKinds = {"fashion-mnist", "mnist", "cifar10", "cifar100", "folder"};

std::vector<std::string> numbered_names(int64_t n) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < n; ++i) names.push_back(std::to_string(i));
  return names;
}

std::string join(const std::string& dir, const std::string& name) {
  return (std::filesystem::path(dir) / name).string();
}

// The raw file if present, else its gzipped form; neither is an error naming both.
std::string find_idx_file(const std::string& dir, const std::string& name) {
  const std::string raw = join(dir, name);
  if (detail::file_exists(raw)) return raw;
  if (detail::file_exists(raw + ".gz")) return raw + ".gz";
  throw InputError(raw + "(.gz): missing");
}

std::shared_ptr<Dataset> load_idx_split(const std::string& dir, const std::string& prefix,
                                        const std::vector<std::string>& class_names) {
  const std::string images_path = find_idx_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_idx_file(dir, prefix + "-labels-idx1-ubyte");
  auto images = read_idx_images(images_path);
  auto labels = read_idx_labels(labels_path);
  if (images.size(0) != labels.size(0)) {
    throw InputError(images_path + ": holds " + std::to_string(images.size(0)) + " images but " + labels_path +
                     " holds " + std::to_string(labels.size(0)) + " labels");
  }
  if (images.size(0) == 0) throw InputError(images_path + ": holds no images");
  const auto n_classes = static_cast<int64_t>(class_names.size());
  const int64_t max_label = labels.max().item<int64_t>();
  if (max_label >= n_classes) {
    throw InputError(labels_path + ": label " + std::to_string(max_label) + " out of range [0," +
                     std::to_string(n_classes) + ")");
  }
  return std::make_shared<TensorDataset>(images, labels, class_names);
}

// Class names from a text file when it is there and has one line per class, else "0", "1", ...
std::vector<std::string> class_names_from(const std::string& path, int64_t n) {
  if (!detail::file_exists(path)) return numbered_names(n);
  auto names = detail::read_lines(path);
  if (static_cast<int64_t>(names.size()) != n) {
    throw InputError(path + ": has " + std::to_string(names.size()) + " class names, expected " +
                     std::to_string(n));
  }
  return names;
}

// The folder holding the .bin files: `path` itself or its conventional sub-folder.
std::string cifar_dir(const std::string& path, const std::string& probe, const std::string& subfolder) {
  if (detail::file_exists(join(path, probe))) return path;
  const std::string sub = join(path, subfolder);
  if (detail::file_exists(join(sub, probe))) return sub;
  return path;  // the reader then reports the missing file by its full name
}

DataSplits load_cifar10(const std::string& path) {
  const std::string dir = cifar_dir(path, "data_batch_1.bin", "cifar-10-batches-bin");
  std::vector<std::string> train_files;
  for (int i = 1; i <= 5; ++i) train_files.push_back(join(dir, "data_batch_" + std::to_string(i) + ".bin"));
  const auto names = class_names_from(join(dir, "batches.meta.txt"), 10);
  auto train = read_cifar_batches(train_files, false, false);
  auto test = read_cifar_batches({join(dir, "test_batch.bin")}, false, false);
  return {std::make_shared<TensorDataset>(train.first, train.second, names),
          std::make_shared<TensorDataset>(test.first, test.second, names)};
}

DataSplits load_cifar100(const std::string& path, bool coarse) {
  const std::string dir = cifar_dir(path, "train.bin", "cifar-100-binary");
  const auto names = coarse ? class_names_from(join(dir, "coarse_label_names.txt"), 20)
                            : class_names_from(join(dir, "fine_label_names.txt"), 100);
  auto train = read_cifar_batches({join(dir, "train.bin")}, true, coarse);
  auto test = read_cifar_batches({join(dir, "test.bin")}, true, coarse);
  return {std::make_shared<TensorDataset>(train.first, train.second, names),
          std::make_shared<TensorDataset>(test.first, test.second, names)};
}

// Holds out the training images whose key (relative path, or index for the built-in datasets) the hash puts in
// the validation split: the monitors then use it, and the dataset's own test split is kept for one evaluation at
// the end (DataSplits::final_test).
void hold_out(DataSplits& s, const std::vector<std::string>& keys, uint64_t seed, double fraction) {
  std::vector<int64_t> keep, held;
  for (size_t i = 0; i < keys.size(); ++i)
    (in_validation_split(keys[i], seed, fraction) ? held : keep).push_back(static_cast<int64_t>(i));
  if (keep.empty()) throw InputError("--val-fraction left no training images");
  if (held.empty()) {
    log_warn("the validation split drew no image; the monitors use the test split");
    return;
  }
  auto index = [](const std::vector<int64_t>& v) { return torch::tensor(v, torch::kLong); };
  s.final_test = s.test;
  auto all = s.train;
  s.train = take_indices(all, index(keep));
  s.test = take_indices(all, index(held));
  s.eval_split_name = "validation";
}

DataSplits load_folder(const DataOptions& o) {
  const std::string& root = o.path;
  const auto& layouts = folder_layout_names();
  if (std::find(layouts.begin(), layouts.end(), o.layout) == layouts.end())
    throw InputError("--layout: unknown folder layout '" + o.layout +
                     "' (valid: auto, unlabelled, classes, train-test)");
  DataSplits s;
  s.layout = o.layout == "auto" ? detect_folder_layout(root) : o.layout;
  ImageFolderOptions io;
  io.image_size = o.image_size;
  io.cache_mb = o.cache_mb;
  io.decode_threads = o.decode_threads;
  io.channels = o.channels;
  io.strict = o.strict;
  if (s.layout == "unlabelled" && o.val_fraction > 0) {
    throw InputError("--val-fraction: " + root +
                     " has no labels (the unlabelled layout), so a validation split would have nothing to score");
  }
  if (s.layout == "train-test") {
    std::string test_dir = join(root, "test");
    std::error_code ec;
    if (!std::filesystem::is_directory(test_dir, ec) && std::filesystem::is_directory(join(root, "val"), ec)) {
      test_dir = join(root, "val");
    }
    const ImageList train_list = list_images(join(root, "train"), true);
    auto train = std::make_shared<ImageFolderDataset>(train_list, io);
    // The test split follows the train split's channel count: the model sees one input format.
    io.channels = train->channels();
    auto test = std::make_shared<ImageFolderDataset>(list_images(test_dir, true), io);
    if (train->class_names() != test->class_names()) {
      throw InputError(test_dir + ": class folders differ from those of " + join(root, "train"));
    }
    s.train = train;
    s.test = test;
    if (o.val_fraction > 0) hold_out(s, train_list.files, o.split_seed, o.val_fraction);
  } else if (s.layout == "classes") {
    const double fraction = o.val_fraction < 0 ? 0.1 : o.val_fraction;
    if (fraction >= 1) throw InputError("--val-fraction must be below 1, not " + std::to_string(fraction));
    ImageList all = list_images(root, true), train_list, val_list;
    train_list.root = val_list.root = all.root;
    train_list.class_names = val_list.class_names = all.class_names;
    for (size_t i = 0; i < all.files.size(); ++i) {
      ImageList& to = in_validation_split(all.files[i], o.split_seed, fraction) ? val_list : train_list;
      to.files.push_back(all.files[i]);
      to.labels.push_back(all.labels[i]);
    }
    if (train_list.files.empty()) throw InputError(root + ": --val-fraction left no training images");
    auto train = std::make_shared<ImageFolderDataset>(train_list, io);
    s.train = train;
    if (!val_list.files.empty()) {
      io.channels = train->channels();
      s.test = std::make_shared<ImageFolderDataset>(val_list, io);
      s.eval_split_name = "validation";
    } else {
      s.eval_split_name = "";
      if (fraction > 0) log_warn(root + ": the validation split drew no image; the per-epoch monitors are off");
    }
  } else {
    s.train = std::make_shared<ImageFolderDataset>(list_images(root, false), io);
    s.eval_split_name = "";
  }
  return s;
}

}  // namespace

std::string default_data_path(const std::string& dataset) {
  if (dataset == "fashion-mnist") return "/usr/share/datasets/fashion-mnist";
  if (dataset == "mnist") return "/usr/share/datasets/mnist";
  if (dataset == "cifar10") return "/usr/share/datasets/cifar10";
  if (dataset == "cifar100") return "/usr/share/datasets/cifar100";
  return "";
}

DataSplits load_dataset(const DataOptions& options) {
  if (std::find(kDatasetKinds.begin(), kDatasetKinds.end(), options.dataset) == kDatasetKinds.end()) {
    std::string valid;
    for (const auto& k : kDatasetKinds) valid += (valid.empty() ? "" : ", ") + k;
    throw InputError("unknown dataset '" + options.dataset + "' (valid: " + valid + ")");
  }
  DataOptions opts = options;
  if (opts.path.empty()) opts.path = default_data_path(opts.dataset);
  if (opts.path.empty()) throw InputError("dataset '" + opts.dataset + "' needs a data path");
  std::error_code ec;
  if (!std::filesystem::is_directory(opts.path, ec)) {
    throw InputError(opts.path + ": missing data folder for dataset '" + opts.dataset + "'");
  }

  if (opts.dataset != "folder" && opts.channels != 0) {
    throw InputError("--channels: only folder datasets convert their images; " + opts.dataset + " has " +
                     "its own channel count");
  }

  DataSplits splits;
  if (opts.dataset == "fashion-mnist") {
    const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                            "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    splits = {load_idx_split(opts.path, "train", names), load_idx_split(opts.path, "t10k", names)};
  } else if (opts.dataset == "mnist") {
    splits = {load_idx_split(opts.path, "train", numbered_names(10)),
              load_idx_split(opts.path, "t10k", numbered_names(10))};
  } else if (opts.dataset == "cifar10") {
    splits = load_cifar10(opts.path);
  } else if (opts.dataset == "cifar100") {
    splits = load_cifar100(opts.path, opts.cifar100_coarse);
  } else {
    splits = load_folder(opts);
  }
  if (opts.dataset != "folder" && opts.val_fraction > 0) {
    // The built-in datasets: a hash of each training image's index.
    std::vector<std::string> keys(static_cast<size_t>(splits.train->size()));
    for (size_t i = 0; i < keys.size(); ++i) keys[i] = std::to_string(i);
    hold_out(splits, keys, opts.split_seed, opts.val_fraction);
  }
  const auto& a = *splits.train;
  if (splits.test) {
    const auto& b = *splits.test;
    if (a.channels() != b.channels() || a.height() != b.height() || a.width() != b.width()) {
      throw InputError(opts.path + ": test images are " + std::to_string(b.channels()) + "x" +
                       std::to_string(b.height()) + "x" + std::to_string(b.width()) + " but train images are " +
                       std::to_string(a.channels()) + "x" + std::to_string(a.height()) + "x" +
                       std::to_string(a.width()));
    }
  }
  std::string what = std::to_string(a.size()) + " train";
  if (splits.test) what += ", " + std::to_string(splits.test->size()) + " " + splits.eval_split_name;
  if (splits.final_test)
    what += ", " + std::to_string(splits.final_test->size()) + " test (evaluated once, at the end)";
  what += a.labelled() ? ", " + std::to_string(a.num_classes()) + " classes" : ", no labels";
  if (!splits.layout.empty()) {
    what += "; layout " + splits.layout + (options.layout == "auto" ? " (detected; --layout overrides)" : "");
    what += ", " + std::to_string(a.channels()) + " channel" + (a.channels() == 1 ? "" : "s");
  }
  log_info("dataset " + opts.dataset + " from " + opts.path + ": " + what);
  return splits;
}

}  // namespace contrastive
