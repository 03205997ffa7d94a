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

// A labelled image set. Images come out as uint8 [B,C,H,W] tensors on the CPU.
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

// A folder of `<class>/<image>.png|jpg|jpeg|bmp` (like torchvision's ImageFolder: classes are the sorted
// sub-folder names). Images are decoded lazily, resized to image_size x image_size (bilinear) and kept
// in a cache bounded by cache_mb; when the whole set fits, each image is decoded only once.
class ImageFolderDataset : public Dataset {
 public:
  // `channels` 0: 3 when the first image is colour, 1 when it is grayscale (the others are converted).
  ImageFolderDataset(const std::string& root, int64_t image_size = 32, int64_t cache_mb = 2048,
                     int decode_threads = 2, int64_t channels = 0);
  ~ImageFolderDataset() override;
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int64_t channels() const override { return channels_; }
  int64_t height() const override { return image_size_; }
  int64_t width() const override { return image_size_; }
  torch::Tensor labels() const override { return labels_; }
  torch::Tensor get(const torch::Tensor& indices) const override;
  const std::vector<std::string>& class_names() const override { return class_names_; }
  const std::vector<std::string>& files() const { return files_; }
  // How many decoded images the cache holds now.
  int64_t cached() const;

 private:
  struct Cache;
  std::vector<std::string> files_;
  std::vector<std::string> class_names_;
  torch::Tensor labels_;
  int64_t image_size_ = 32;
  int64_t channels_ = 3;
  int decode_threads_ = 2;
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
};

struct DataSplits {
  std::shared_ptr<Dataset> train;
  std::shared_ptr<Dataset> test;
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
