// Datasets (uint8 images in memory or decoded lazily) and the background batch loader.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace contrastive {

// An image set, labelled or not. Images come out as uint8 [B,C,H,W] tensors on the CPU.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int64_t channels() const = 0;
  virtual int64_t height() const = 0;
  virtual int64_t width() const = 0;
  // int64 [N] class indices in [0, num_classes()).
  virtual torch::Tensor labels() const = 0;
  // uint8 [B,C,H,W] for the given int64 [B] indices. Thread-safe.
  virtual torch::Tensor get(const torch::Tensor& indices) const = 0;
  virtual const std::vector<std::string>& class_names() const = 0;
  int64_t num_classes() const { return static_cast<int64_t>(class_names().size()); }
  // False for a folder of images without class folders: labels() is then all 0 and class_names() empty.
  virtual bool labelled() const { return true; }
  // The name of sample i for listings (a folder's path relative to its root; else the index).
  virtual std::string item_name(int64_t i) const { return std::to_string(i); }
  // Files skipped because they cannot be decoded, as "path: reason" lines, in the order they were found.
  virtual std::vector<std::string> skipped_files() const { return {}; }
};

// Held fully in memory (IDX, CIFAR): images uint8 [N,C,H,W], labels int64 [N].
class TensorDataset : public Dataset {
 public:
  TensorDataset(torch::Tensor images, torch::Tensor labels, std::vector<std::string> class_names);
  int64_t size() const override;
  int64_t channels() const override;
  int64_t height() const override;
  int64_t width() const override;
  torch::Tensor labels() const override { return labels_; }
  torch::Tensor get(const torch::Tensor& indices) const override;
  const std::vector<std::string>& class_names() const override { return class_names_; }
  const torch::Tensor& images() const { return images_; }

 private:
  torch::Tensor images_, labels_;
  std::vector<std::string> class_names_;
};

// The image files of a folder (src/data/folder_scan.cpp). Paths are relative to `root`.
struct ImageList {
  std::string root;
  std::vector<std::string> files;
  std::vector<int64_t> labels;           // one per file; empty when unlabelled
  std::vector<std::string> class_names;  // empty when unlabelled
};

// How a --dataset folder directory is organised (docs/own-images.md):
//   unlabelled   images anywhere under DIR, at any depth, no class folders
//   classes      DIR/<class>/... (torchvision's ImageFolder): labelled, classes from the sorted folder names
//   train-test   DIR/train/<class>/... and DIR/test/<class>/... (or DIR/val/<class>/...)
// "auto" picks train-test when DIR/train is a folder, unlabelled when DIR itself holds images or has fewer
// than two sub-folders with images, and classes otherwise.
std::string detect_folder_layout(const std::string& dir);
const std::vector<std::string>& folder_layout_names();  // auto, unlabelled, classes, train-test
// Every image file (.png .jpg .jpeg .bmp, any case; hidden files and folders skipped) under `dir`, sorted by
// relative path. `classes`: the first level of folders are the classes (an empty one is an error).
ImageList list_images(const std::string& dir, bool classes);
// Whether the file at relative path `rel` belongs to the validation split: a hash of the path and the seed
// below `fraction`, so adding or removing other files never moves an image between splits.
bool in_validation_split(const std::string& rel, uint64_t seed, double fraction);

struct ImageFolderOptions {
  int64_t image_size = 32;         // every image is resized (bilinear) to image_size x image_size
  int64_t cache_mb = 2048;         // decoded-image cache budget
  int decode_threads = 2;          // decoders per batch (the caller's thread is one of them)
  int64_t channels = 0;            // 1 or 3; 0: 3 when the first readable image is colour, else 1
  bool strict = false;             // an unreadable file is an error instead of being skipped
  double max_bad_fraction = 0.05;  // more unreadable files than this fraction of the set: InputError
};

// Images decoded lazily, resized and converted to one channel count, and kept in a cache bounded by cache_mb;
// when the whole set fits, each image is decoded only once. A file that cannot be decoded (empty, not an image,
// truncated, deleted while the run goes on) is skipped and listed in skipped_files(): found from its header when
// the set is opened, it leaves the list; found when decoding, its sample is served as the next readable image
// of the set (the same one every time, so runs stay reproducible).
class ImageFolderDataset : public Dataset {
 public:
  ImageFolderDataset(ImageList list, ImageFolderOptions options);
  // `root`/<class>/<image> (the classes layout), as before.
  ImageFolderDataset(const std::string& root, int64_t image_size = 32, int64_t cache_mb = 2048,
                     int decode_threads = 2, int64_t channels = 0);
  ~ImageFolderDataset() override;
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int64_t channels() const override { return channels_; }
  int64_t height() const override { return options_.image_size; }
  int64_t width() const override { return options_.image_size; }
  torch::Tensor labels() const override { return labels_; }
  torch::Tensor get(const torch::Tensor& indices) const override;
  const std::vector<std::string>& class_names() const override { return class_names_; }
  bool labelled() const override { return labelled_; }
  std::string item_name(int64_t i) const override { return rel_files_.at(static_cast<size_t>(i)); }
  std::vector<std::string> skipped_files() const override;
  // Full paths of the images, in sample order.
  const std::vector<std::string>& files() const { return files_; }
  // How many decoded images the cache holds now.
  int64_t cached() const;

 private:
  struct Cache;
  void decode_or_substitute(int64_t index, uint8_t* dst) const;
  void note_bad(int64_t index, const std::string& reason) const;
  std::vector<std::string> files_, rel_files_;
  std::vector<std::string> class_names_;
  torch::Tensor labels_;
  bool labelled_ = true;
  ImageFolderOptions options_;
  int64_t channels_ = 3;
  int64_t listed_ = 0;  // files listed, readable or not
  std::unique_ptr<Cache> cache_;
};

// The first `n` samples of another dataset (--train-subset).
std::shared_ptr<Dataset> take_first(std::shared_ptr<Dataset> base, int64_t n);
// The samples at the given indices.
std::shared_ptr<Dataset> take_indices(std::shared_ptr<Dataset> base, torch::Tensor indices);

struct DataOptions {
  std::string dataset = "fashion-mnist";  // fashion-mnist | mnist | cifar10 | cifar100 | folder
  std::string path;                       // empty: the dataset's default location
  int64_t image_size = 0;                 // folder datasets: fixed resize (0 = 32)
  bool cifar100_coarse = false;           // cifar100: use the 20 coarse labels
  int64_t cache_mb = 2048;                // folder datasets: decoded-image cache budget
  int decode_threads = 2;                 // folder datasets: decoder threads
  std::string layout = "auto";            // folder datasets: auto | unlabelled | classes | train-test
  int64_t channels = 0;                   // folder datasets: 1 | 3 (0: from the first image)
  // Share of the training images held out for validation, chosen by a hash of each image's relative path (the
  // index for the built-in datasets) and split_seed, so that adding images moves none between the splits. -1: 0.1
  // for the class-folder layout (it has no test split of its own), 0 for datasets with a test split.
  double val_fraction = -1;
  uint64_t split_seed = 0;
  bool strict = false;  // folder datasets: an unreadable file is an error
};

struct DataSplits {
  DataSplits() = default;
  DataSplits(std::shared_ptr<Dataset> train_split, std::shared_ptr<Dataset> test_split)
      : train(std::move(train_split)), test(std::move(test_split)) {}
  std::shared_ptr<Dataset> train;
  // The split the per-epoch monitors and best.ckpt use: the dataset's test split, or the validation split held
  // out of the training images (eval_split_name says which); null for unlabelled data or no held-out split.
  std::shared_ptr<Dataset> test;
  std::string eval_split_name = "test";
  // When `test` is a validation split: the dataset's own test split, evaluated once, at the end (null otherwise).
  std::shared_ptr<Dataset> final_test;
  std::string layout;  // folder datasets: the layout found
};

// Default path of a dataset kind ("" when it has none).
std::string default_data_path(const std::string& dataset);
// Loads train and test splits. Every problem (missing file, truncated, wrong magic, label out of range,
// image of another size, empty class folder, unknown dataset) throws InputError naming the file.
DataSplits load_dataset(const DataOptions& options);

// Readers, also usable alone. `path` may be gzipped (".gz") or raw.
torch::Tensor read_idx_images(const std::string& path);  // uint8 [N,1,H,W]
torch::Tensor read_idx_labels(const std::string& path);  // int64 [N]
// CIFAR binary: records of <label bytes><3072 pixel bytes>; cifar100 has <coarse><fine>.
std::pair<torch::Tensor, torch::Tensor> read_cifar_batches(const std::vector<std::string>& files, bool cifar100,
                                                           bool coarse);

// One mini-batch. `views` is filled by the loader's prepare callback (augmentation) in the background.
struct Batch {
  torch::Tensor images;   // uint8 [B,C,H,W]
  torch::Tensor labels;   // int64 [B]
  torch::Tensor indices;  // int64 [B] dataset indices
  std::vector<torch::Tensor> views;
  int64_t epoch = 0;
  int64_t step = 0;
};

struct LoaderOptions {
  int64_t batch_size = 256;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 0;
  int64_t prefetch = 2;  // batches prepared ahead
  int64_t rank = 0;      // distributed sampler: this process' shard
  int64_t world_size = 1;
  int64_t threads = 0;  // intra-op threads of the worker thread (at::set_num_threads there); 0 = leave as is
};

// Produces batches in a background thread so the model never waits on I/O. The permutation of epoch e is
// a function of (seed, e) only, and the sharding gives every rank the same number of samples.
class Loader {
 public:
  using Prepare = std::function<void(Batch&)>;
  Loader(std::shared_ptr<Dataset> dataset, LoaderOptions options, Prepare prepare = nullptr);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts producing the batches of `epoch`, beginning at `first_step` (for resume).
  void start_epoch(int64_t epoch, int64_t first_step = 0);
  // The next batch of the current epoch, or nullopt at its end. Rethrows errors from the worker.
  std::optional<Batch> next();
  int64_t steps_per_epoch() const;
  // Seconds next() has spent waiting for the worker since the loader was made: the time the consumer (the
  // training step) waited on data.
  double wait_seconds() const;
  int64_t samples_per_rank() const;
  const Dataset& dataset() const { return *dataset_; }

 private:
  struct State;
  std::shared_ptr<Dataset> dataset_;
  LoaderOptions options_;
  Prepare prepare_;
  std::unique_ptr<State> state_;
};

}  // namespace contrastive
