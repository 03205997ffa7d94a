// Data layer: IDX/CIFAR readers, image folders, subsets, dataset loading and the background loader.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>
#include <thread>

#include "contrastive/common.h"
#include "contrastive/data.h"
#include "test_util.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image_write.h>  // /usr/include/stb is only on the library's include path
#pragma GCC diagnostic pop

using namespace contrastive;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed with everything in it at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path =
        fs::temp_directory_path() / ("contrastive_data_test_" + std::to_string(rd()) + "_" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

using Bytes = std::vector<uint8_t>;

void write_file(const std::string& path, const Bytes& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_gz(const std::string& path, const Bytes& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}

void put_u32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

// IDX images whose pixel (n, y, x) is (n * 7 + y * 3 + x) mod 256.
Bytes idx_images(uint32_t n, uint32_t h, uint32_t w) {
  Bytes b;
  put_u32(b, 0x803);
  put_u32(b, n);
  put_u32(b, h);
  put_u32(b, w);
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t y = 0; y < h; ++y)
      for (uint32_t x = 0; x < w; ++x) b.push_back(static_cast<uint8_t>(i * 7 + y * 3 + x));
  return b;
}

Bytes idx_labels(uint32_t n) {
  Bytes b;
  put_u32(b, 0x801);
  put_u32(b, n);
  for (uint32_t i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(i % 10));
  return b;
}

// Runs `fn`, expecting an InputError whose message contains `needle`.
template <typename Fn>
void expect_input_error(Fn fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no InputError (expected one mentioning '" << needle << "')";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

// CIFAR records with pixel value (record * 5 + byte) mod 256 and labels from `label`.
Bytes cifar_records(int n, bool cifar100, int base) {
  Bytes b;
  for (int i = 0; i < n; ++i) {
    const int r = base + i;
    if (cifar100) {
      b.push_back(static_cast<uint8_t>(r % 20));
      b.push_back(static_cast<uint8_t>(r % 100));
    } else {
      b.push_back(static_cast<uint8_t>(r % 10));
    }
    for (int p = 0; p < 3072; ++p) b.push_back(static_cast<uint8_t>(r * 5 + p));
  }
  return b;
}

void write_png(const std::string& path, int w, int h, int comp, uint8_t value) {
  fs::create_directories(fs::path(path).parent_path());
  Bytes pixels(static_cast<size_t>(w) * h * comp);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(value + i % comp);
  ASSERT_TRUE(stbi_write_png(path.c_str(), w, h, comp, pixels.data(), w * comp));
}

}  // namespace

// ---------------------------------------------------------------- IDX

TEST(DataIdx, ReadsRawAndGzipped) {
  TempDir dir;
  write_file(dir / "img", idx_images(5, 4, 3));
  write_gz(dir / "img.gz", idx_images(5, 4, 3));
  write_gz(dir / "lab.gz", idx_labels(5));
  for (const auto& name : {"img", "img.gz"}) {
    auto images = read_idx_images(dir / name);
    ASSERT_EQ(images.sizes(), (std::vector<int64_t>{5, 1, 4, 3}));
    EXPECT_EQ(images.scalar_type(), torch::kByte);
    EXPECT_EQ(images[2][0][1][2].item<int>(), (2 * 7 + 1 * 3 + 2) % 256);
  }
  auto labels = read_idx_labels(dir / "lab.gz");
  EXPECT_EQ(labels.scalar_type(), torch::kLong);
  EXPECT_TRUE(torch::equal(labels, torch::tensor({0, 1, 2, 3, 4}, torch::kLong)));
}

TEST(DataIdx, RejectsTruncatedFiles) {
  TempDir dir;
  Bytes bytes = idx_images(5, 4, 3);
  bytes.resize(bytes.size() - 1);
  write_file(dir / "raw", bytes);
  write_gz(dir / "cut.gz", bytes);
  write_file(dir / "header", Bytes{0, 0, 8, 3, 0, 0});
  expect_input_error([&] { read_idx_images(dir / "raw"); }, "truncated");
  expect_input_error([&] { read_idx_images(dir / "cut.gz"); }, "cut.gz: truncated");
  expect_input_error([&] { read_idx_images(dir / "header"); }, "truncated");
  // A gzip stream itself cut short must not read as a shorter valid file either.
  write_gz(dir / "full.gz", idx_images(50, 8, 8));
  auto gz = std::ifstream(dir / "full.gz", std::ios::binary);
  Bytes compressed((std::istreambuf_iterator<char>(gz)), std::istreambuf_iterator<char>());
  compressed.resize(compressed.size() / 2);
  write_file(dir / "half.gz", compressed);
  EXPECT_THROW(read_idx_images(dir / "half.gz"), InputError);
}

TEST(DataIdx, RejectsWrongMagicTrailingBytesAndMissingFile) {
  TempDir dir;
  write_file(dir / "labels", idx_labels(4));
  expect_input_error([&] { read_idx_images(dir / "labels"); }, "wrong IDX magic 0x00000801");
  write_file(dir / "images", idx_images(2, 2, 2));
  expect_input_error([&] { read_idx_labels(dir / "images"); }, "wrong IDX magic");
  Bytes longer = idx_labels(4);
  longer.push_back(0);
  write_file(dir / "longer", longer);
  expect_input_error([&] { read_idx_labels(dir / "longer"); }, "longer than its header");
  expect_input_error([&] { read_idx_labels(dir / "nothing"); }, "nothing: missing");
}

TEST(DataIdx, LoadsMnistLayoutAndChecksConsistency) {
  TempDir dir;
  write_gz(dir / "train-images-idx3-ubyte.gz", idx_images(12, 6, 6));
  write_file(dir / "train-labels-idx1-ubyte", idx_labels(12));
  write_file(dir / "t10k-images-idx3-ubyte", idx_images(4, 6, 6));
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_labels(4));
  DataOptions opts;
  opts.dataset = "fashion-mnist";
  opts.path = dir.path.string();
  auto splits = load_dataset(opts);
  EXPECT_EQ(splits.train->size(), 12);
  EXPECT_EQ(splits.test->size(), 4);
  EXPECT_EQ(splits.train->height(), 6);
  EXPECT_EQ(splits.train->class_names().at(0), "T-shirt/top");
  EXPECT_EQ(splits.train->class_names().at(9), "Ankle boot");
  opts.dataset = "mnist";
  EXPECT_EQ(load_dataset(opts).train->class_names().at(3), "3");

  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_labels(5));
  expect_input_error([&] { load_dataset(opts); }, "holds 4 images but");
  Bytes bad_label = idx_labels(4);
  bad_label.back() = 11;
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", bad_label);
  expect_input_error([&] { load_dataset(opts); }, "label 11 out of range");
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_labels(4));
  write_file(dir / "t10k-images-idx3-ubyte", idx_images(4, 5, 6));
  expect_input_error([&] { load_dataset(opts); }, "test images are 1x5x6");
  fs::remove(dir / "t10k-images-idx3-ubyte");
  expect_input_error([&] { load_dataset(opts); }, "t10k-images-idx3-ubyte(.gz): missing");
}

TEST(DataLoad, RejectsUnknownDatasetAndMissingFolder) {
  DataOptions opts;
  opts.dataset = "imagenet";
  expect_input_error([&] { load_dataset(opts); }, "valid: fashion-mnist, mnist, cifar10, cifar100, folder");
  opts.dataset = "cifar10";
  opts.path = "/nonexistent/cifar";
  expect_input_error([&] { load_dataset(opts); }, "/nonexistent/cifar: missing");
  opts.dataset = "folder";
  opts.path = "";
  expect_input_error([&] { load_dataset(opts); }, "needs a data path");
}

// Fashion-MNIST as shipped on the machine, when present.
TEST(DataFashionMnist, ReadsTheRealFiles) {
  const std::string path = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(path + "/train-images-idx3-ubyte.gz") && !fs::exists(path + "/train-images-idx3-ubyte")) {
    if (test_util::in_ci()) FAIL() << "Fashion-MNIST is missing under CI=true: " << path;
    GTEST_SKIP() << "Fashion-MNIST not installed at " << path;
  }
  auto splits = load_dataset(DataOptions{});
  ASSERT_EQ(splits.train->size(), 60000);
  ASSERT_EQ(splits.test->size(), 10000);
  EXPECT_EQ(splits.train->channels(), 1);
  EXPECT_EQ(splits.train->height(), 28);
  EXPECT_EQ(splits.train->width(), 28);
  for (const auto& split : {splits.train, splits.test}) {
    auto labels = split->labels();
    EXPECT_EQ(labels.min().item<int64_t>(), 0);
    EXPECT_EQ(labels.max().item<int64_t>(), 9);
    EXPECT_EQ(torch::bincount(labels).min().item<int64_t>(), split->size() / 10);  // balanced classes
  }
  EXPECT_EQ(splits.train->num_classes(), 10);
}

// ---------------------------------------------------------------- CIFAR

TEST(DataCifar, Cifar10RoundTripsValuesLabelsAndNames) {
  TempDir dir;
  const std::string bin = dir / "cifar-10-batches-bin";  // the conventional sub-folder is found
  for (int b = 1; b <= 5; ++b)
    write_file(bin + "/data_batch_" + std::to_string(b) + ".bin", cifar_records(3, false, (b - 1) * 3));
  write_file(bin + "/test_batch.bin", cifar_records(2, false, 100));
  std::ofstream(bin + "/batches.meta.txt")
      << "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
  DataOptions opts;
  opts.dataset = "cifar10";
  opts.path = dir.path.string();
  auto splits = load_dataset(opts);
  ASSERT_EQ(splits.train->size(), 15);
  ASSERT_EQ(splits.test->size(), 2);
  EXPECT_EQ(splits.train->channels(), 3);
  EXPECT_EQ(splits.train->class_names().at(9), "truck");
  auto train = std::dynamic_pointer_cast<TensorDataset>(splits.train);
  ASSERT_TRUE(train);
  // Record 7 (batch 3, second record): label 7, byte p of the CHW image is (7 * 5 + p) mod 256.
  EXPECT_EQ(train->labels()[7].item<int64_t>(), 7);
  auto flat = train->images()[7].flatten();
  for (int p : {0, 1, 1023, 1024, 2047, 3071}) EXPECT_EQ(flat[p].item<int>(), (7 * 5 + p) % 256) << p;
  EXPECT_EQ(train->images()[7][1][0][0].item<int>(), (7 * 5 + 1024) % 256);  // channel-major
  EXPECT_EQ(splits.test->labels()[1].item<int64_t>(), 101 % 10);

  fs::remove(bin + "/batches.meta.txt");
  EXPECT_EQ(load_dataset(opts).train->class_names().at(4), "4");
}

TEST(DataCifar, Cifar100FineAndCoarseLabels) {
  TempDir dir;
  write_file(dir / "train.bin", cifar_records(130, true, 0));
  write_file(dir / "test.bin", cifar_records(3, true, 7));
  DataOptions opts;
  opts.dataset = "cifar100";
  opts.path = dir.path.string();
  auto fine = load_dataset(opts);
  EXPECT_EQ(fine.train->num_classes(), 100);
  EXPECT_EQ(fine.train->labels()[123].item<int64_t>(), 23);
  opts.cifar100_coarse = true;
  auto coarse = load_dataset(opts);
  EXPECT_EQ(coarse.train->num_classes(), 20);
  EXPECT_EQ(coarse.train->labels()[123].item<int64_t>(), 123 % 20);
  EXPECT_EQ(coarse.test->get(torch::tensor({1}, torch::kLong)).flatten()[5].item<int>(), (8 * 5 + 5) % 256);
}

TEST(DataCifar, RejectsTruncatedBadLabelsAndMissingFiles) {
  TempDir dir;
  Bytes cut = cifar_records(2, false, 0);
  cut.pop_back();
  write_file(dir / "cut.bin", cut);
  expect_input_error([&] { read_cifar_batches({dir / "cut.bin"}, false, false); }, "cut.bin: truncated");
  Bytes bad = cifar_records(3, false, 0);
  bad[3073 * 2] = 10;
  write_file(dir / "bad.bin", bad);
  expect_input_error([&] { read_cifar_batches({dir / "bad.bin"}, false, false); }, "record 2 has label 10");
  Bytes bad100 = cifar_records(2, true, 0);
  bad100[3074] = 20;  // coarse label of record 1
  write_file(dir / "bad100.bin", bad100);
  expect_input_error([&] { read_cifar_batches({dir / "bad100.bin"}, true, false); }, "out of range");
  // A CIFAR-10 file is not a whole number of CIFAR-100 records.
  write_file(dir / "ten.bin", cifar_records(2, false, 0));
  expect_input_error([&] { read_cifar_batches({dir / "ten.bin"}, true, false); }, "truncated");
  DataOptions opts;
  opts.dataset = "cifar10";
  opts.path = dir.path.string();
  expect_input_error([&] { load_dataset(opts); }, "data_batch_1.bin: missing");
}

// ---------------------------------------------------------------- image folders

TEST(DataFolder, ClassesSortedByNameAndPixelsRoundTrip) {
  TempDir dir;
  // Created out of order: indices must follow the sorted names, not creation order.
  for (const auto& split : {"train", "test"}) {
    write_png(dir / (std::string(split) + "/zebra/1.png"), 8, 8, 3, 200);
    write_png(dir / (std::string(split) + "/apple/1.png"), 8, 8, 3, 10);
    write_png(dir / (std::string(split) + "/apple/2.PNG"), 8, 8, 3, 20);
    write_png(dir / (std::string(split) + "/mango/1.png"), 8, 8, 3, 100);
  }
  write_file(dir / "train/mango/notes.txt", Bytes{'h', 'i'});  // not an image: ignored
  DataOptions opts;
  opts.dataset = "folder";
  opts.path = dir.path.string();
  opts.image_size = 8;
  auto splits = load_dataset(opts);
  auto& train = *splits.train;
  EXPECT_EQ(train.class_names(), (std::vector<std::string>{"apple", "mango", "zebra"}));
  ASSERT_EQ(train.size(), 4);
  EXPECT_TRUE(torch::equal(train.labels(), torch::tensor({0, 0, 1, 2}, torch::kLong)));
  EXPECT_EQ(train.channels(), 3);
  auto images = train.get(torch::tensor({3, 0, 1}, torch::kLong));
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{3, 3, 8, 8}));
  // write_png stores value + channel in every pixel.
  EXPECT_EQ(images[0][0][5][5].item<int>(), 200);
  EXPECT_EQ(images[0][2][5][5].item<int>(), 202);
  EXPECT_EQ(images[1][1][0][0].item<int>(), 11);
  EXPECT_EQ(images[2][0][7][7].item<int>(), 20);
}

TEST(DataFolder, ResizesAndConvertsGrayscaleToTheFirstImagesChannels) {
  TempDir dir;
  write_png(dir / "train/a/1.png", 20, 10, 3, 50);   // colour first: the set is RGB
  write_png(dir / "train/a/2.png", 7, 7, 1, 90);     // grayscale, converted
  write_png(dir / "train/b/1.png", 16, 16, 4, 120);  // alpha dropped
  write_png(dir / "val/a/1.png", 5, 5, 1, 30);
  write_png(dir / "val/b/1.png", 5, 5, 1, 40);
  DataOptions opts;
  opts.dataset = "folder";
  opts.path = dir.path.string();
  opts.image_size = 12;
  auto splits = load_dataset(opts);  // "val" stands in for a missing "test"
  ASSERT_EQ(splits.train->channels(), 3);
  ASSERT_EQ(splits.test->channels(), 3);
  auto images = splits.train->get(torch::arange(3, torch::kLong));
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{3, 3, 12, 12}));
  // Uniform images stay uniform under bilinear resizing (up to rounding).
  EXPECT_NEAR(images[0][1].to(torch::kFloat).mean().item<float>(), 51, 1);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(images[1][c].to(torch::kFloat).mean().item<float>(), 90, 1);
  EXPECT_NEAR(images[2][2].to(torch::kFloat).mean().item<float>(), 122, 1);
  EXPECT_EQ(splits.test->get(torch::tensor({1}, torch::kLong))[0][2][3][3].item<int>(), 40);

  // A grayscale first image makes a one-channel set; the default size is 32.
  TempDir gray;
  write_png(gray / "train/a/1.png", 9, 9, 1, 7);
  write_png(gray / "train/a/2.png", 9, 9, 3, 7);
  write_png(gray / "test/a/1.png", 9, 9, 3, 7);
  opts.path = gray.path.string();
  opts.image_size = 0;
  auto g = load_dataset(opts);
  EXPECT_EQ(g.train->channels(), 1);
  EXPECT_EQ(g.test->get(torch::tensor({0}, torch::kLong)).sizes(), (std::vector<int64_t>{1, 1, 32, 32}));
}

TEST(DataFolder, ReportsCorruptImagesEmptyClassesAndMismatchedSplits) {
  TempDir dir;
  write_png(dir / "a/1.png", 4, 4, 3, 1);
  write_file(dir / "a/2.jpg", Bytes{0xff, 0xd8, 0xff, 0x00, 1, 2, 3});
  // One unreadable file of two is more than a run tolerates (tests/test_own_images.cpp has the skipping).
  expect_input_error([&] { ImageFolderDataset(dir.path.string(), 4, 64, 2); }, "a/2.jpg: not a readable image");
  TempDir first;
  write_file(first / "a/0.png", Bytes{1, 2, 3});
  expect_input_error([&] { ImageFolderDataset(first.path.string()); }, "none of its 1 images can be read");

  TempDir empty;
  write_png(empty / "a/1.png", 4, 4, 3, 1);
  fs::create_directories(empty.path / "b");
  expect_input_error([&] { ImageFolderDataset(empty.path.string()); }, "b: empty class folder");
  TempDir none;
  expect_input_error([&] { ImageFolderDataset(none.path.string()); }, "no class folders");
  expect_input_error([&] { ImageFolderDataset(none / "absent"); }, "absent: missing");

  TempDir split;
  write_png(split / "train/a/1.png", 4, 4, 3, 1);
  write_png(split / "train/b/1.png", 4, 4, 3, 1);
  write_png(split / "test/a/1.png", 4, 4, 3, 1);
  write_png(split / "test/c/1.png", 4, 4, 3, 1);
  DataOptions opts;
  opts.dataset = "folder";
  opts.path = split.path.string();
  expect_input_error([&] { load_dataset(opts); }, "class folders differ");
  fs::remove_all(split.path / "test");
  expect_input_error([&] { load_dataset(opts); }, "test: missing image folder");
}

TEST(DataFolder, CacheIsBoundedAndServesTheSameImages) {
  TempDir dir;
  for (int i = 0; i < 6; ++i)
    write_png(dir / ("c/" + std::to_string(i) + ".png"), 10, 10, 3, static_cast<uint8_t>(i * 30));
  ImageFolderDataset all(dir.path.string(), 16, 64, 3);
  auto idx = torch::tensor({5, 1, 1, 3, 0, 2, 4}, torch::kLong);
  auto first = all.get(idx);
  EXPECT_EQ(all.cached(), 6);
  // Served from the cache now, even with the files gone.
  fs::remove_all(dir.path / "c");
  EXPECT_TRUE(torch::equal(all.get(idx), first));

  TempDir dir2;
  for (int i = 0; i < 6; ++i)
    write_png(dir2 / ("c/" + std::to_string(i) + ".png"), 10, 10, 3, static_cast<uint8_t>(i * 30));
  ImageFolderDataset none(dir2.path.string(), 16, 0, 1);
  EXPECT_TRUE(torch::equal(none.get(idx), first));
  EXPECT_EQ(none.cached(), 0);
}

// ---------------------------------------------------------------- subsets

namespace {
// N samples whose every pixel is the sample index (mod 256) and whose label is index mod 10.
std::shared_ptr<TensorDataset> counting_dataset(int64_t n) {
  auto images =
      (torch::arange(n, torch::kLong) % 256).to(torch::kByte).view({n, 1, 1, 1}).expand({n, 1, 2, 2}).contiguous();
  std::vector<std::string> names;
  for (int i = 0; i < 10; ++i) names.push_back(std::to_string(i));
  return std::make_shared<TensorDataset>(images, torch::arange(n, torch::kLong) % 10, names);
}
}  // namespace

TEST(DataSubset, TakeFirstAndTakeIndices) {
  auto base = counting_dataset(30);
  auto first = take_first(base, 12);
  EXPECT_EQ(first->size(), 12);
  EXPECT_EQ(first->num_classes(), 10);
  EXPECT_TRUE(torch::equal(first->labels(), torch::arange(12, torch::kLong) % 10));
  auto picked = take_indices(base, torch::tensor({29, 3, 17}, torch::kLong));
  EXPECT_TRUE(torch::equal(picked->labels(), torch::tensor({9, 3, 7}, torch::kLong)));
  EXPECT_EQ(picked->get(torch::tensor({0, 2}, torch::kLong))[1][0][1][1].item<int>(), 17);
  // Subsets of subsets compose.
  EXPECT_EQ(take_first(picked, 1)->get(torch::tensor({0}, torch::kLong))[0][0][0][0].item<int>(), 29);
  expect_input_error([&] { take_first(base, 31); }, "31");
  expect_input_error([&] { take_first(base, 0); }, "positive");
  expect_input_error([&] { take_indices(base, torch::tensor({30}, torch::kLong)); }, "out of range");
}

// ---------------------------------------------------------------- loader

namespace {
std::vector<std::vector<int64_t>> epoch_indices(Loader& loader, int64_t epoch, int64_t first_step = 0) {
  loader.start_epoch(epoch, first_step);
  std::vector<std::vector<int64_t>> out;
  while (auto batch = loader.next()) {
    EXPECT_EQ(batch->epoch, epoch);
    EXPECT_EQ(batch->step, first_step + static_cast<int64_t>(out.size()));
    auto idx = batch->indices.contiguous();
    out.emplace_back(idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + idx.numel());
  }
  return out;
}

std::vector<int64_t> flatten(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> out;
  for (const auto& b : batches) out.insert(out.end(), b.begin(), b.end());
  return out;
}
}  // namespace

TEST(Loader, CoversEveryIndexOnceWithMatchingImagesAndLabels) {
  auto ds = counting_dataset(103);
  LoaderOptions opts;
  opts.batch_size = 10;
  opts.seed = 7;
  Loader loader(ds, opts);
  EXPECT_EQ(loader.steps_per_epoch(), 11);
  EXPECT_EQ(loader.samples_per_rank(), 103);
  loader.start_epoch(0);
  std::vector<int64_t> seen;
  while (auto batch = loader.next()) {
    EXPECT_TRUE(torch::equal(batch->labels, batch->indices % 10));
    EXPECT_TRUE(
        torch::equal(batch->images.select(1, 0).select(1, 0).select(1, 0).to(torch::kLong), batch->indices % 256));
    auto idx = batch->indices;
    seen.insert(seen.end(), idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + idx.numel());
  }
  EXPECT_EQ(seen.size(), 103u);
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 103u);
  EXPECT_EQ(loader.next(), std::nullopt);  // the epoch stays finished
}

TEST(Loader, OrderDependsOnlyOnSeedAndEpoch) {
  auto ds = counting_dataset(50);
  LoaderOptions opts;
  opts.batch_size = 8;
  opts.seed = 3;
  Loader a(ds, opts), b(ds, opts);
  const auto a1 = epoch_indices(a, 1);
  EXPECT_EQ(a1, epoch_indices(b, 1));
  EXPECT_NE(a1, epoch_indices(a, 2));
  EXPECT_EQ(a1, epoch_indices(a, 1));  // revisiting an epoch repeats it
  opts.seed = 4;
  Loader c(ds, opts);
  EXPECT_NE(a1, epoch_indices(c, 1));
  opts.shuffle = false;
  Loader d(ds, opts);
  auto in_order = flatten(epoch_indices(d, 5));
  std::vector<int64_t> expected(50);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(in_order, expected);
}

TEST(Loader, DropLastDropsTheShortBatch) {
  auto ds = counting_dataset(25);
  LoaderOptions opts;
  opts.batch_size = 10;
  Loader keep(ds, opts);
  auto kept = epoch_indices(keep, 0);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept.back().size(), 5u);
  opts.drop_last = true;
  Loader drop(ds, opts);
  EXPECT_EQ(drop.steps_per_epoch(), 2);
  auto dropped = epoch_indices(drop, 0);
  ASSERT_EQ(dropped.size(), 2u);
  for (const auto& b : dropped) EXPECT_EQ(b.size(), 10u);
  opts.batch_size = 26;
  EXPECT_THROW(Loader(ds, opts), InputError);  // no batch at all
}

TEST(Loader, DistributedShardsAreEqualDisjointAndCoverAll) {
  for (int64_t n : {100, 103}) {
    auto ds = counting_dataset(n);
    const int64_t world = 4;
    std::vector<int64_t> all;
    for (int64_t r = 0; r < world; ++r) {
      LoaderOptions opts;
      opts.batch_size = 7;
      opts.seed = 11;
      opts.rank = r;
      opts.world_size = world;
      Loader loader(ds, opts);
      EXPECT_EQ(loader.samples_per_rank(), (n + world - 1) / world);
      auto shard = flatten(epoch_indices(loader, 2));
      EXPECT_EQ(static_cast<int64_t>(shard.size()), loader.samples_per_rank()) << "rank " << r;
      all.insert(all.end(), shard.begin(), shard.end());
    }
    std::set<int64_t> distinct(all.begin(), all.end());
    EXPECT_EQ(static_cast<int64_t>(distinct.size()), n);  // every sample somewhere
    // Only the padding repeats samples: 100 splits evenly, 103 needs one extra.
    EXPECT_EQ(static_cast<int64_t>(all.size()) - n, n == 100 ? 0 : 1);
  }
  LoaderOptions bad;
  bad.rank = 2;
  bad.world_size = 2;
  EXPECT_THROW(Loader(counting_dataset(4), bad), InputError);
}

TEST(Loader, ResumeFromFirstStepGivesTheRemainingBatches) {
  auto ds = counting_dataset(64);
  LoaderOptions opts;
  opts.batch_size = 6;
  opts.seed = 99;
  Loader loader(ds, opts);
  auto full = epoch_indices(loader, 4);
  auto rest = epoch_indices(loader, 4, 5);
  ASSERT_EQ(rest.size(), full.size() - 5);
  EXPECT_TRUE(std::equal(rest.begin(), rest.end(), full.begin() + 5));
  EXPECT_TRUE(epoch_indices(loader, 4, loader.steps_per_epoch()).empty());
  EXPECT_THROW(loader.start_epoch(4, loader.steps_per_epoch() + 1), InputError);
}

TEST(Loader, PrepareRunsInTheBackgroundAndItsErrorsReachNext) {
  auto ds = counting_dataset(40);
  LoaderOptions opts;
  opts.batch_size = 10;
  const auto caller = std::this_thread::get_id();
  std::atomic<bool> on_caller{false};
  Loader loader(ds, opts, [&](Batch& b) {
    if (std::this_thread::get_id() == caller) on_caller = true;
    b.views = {b.images.to(torch::kFloat), b.images.to(torch::kFloat) + 1};
  });
  loader.start_epoch(0);
  auto batch = loader.next();
  ASSERT_TRUE(batch);
  ASSERT_EQ(batch->views.size(), 2u);
  EXPECT_FALSE(on_caller);

  Loader failing(ds, opts, [](Batch& b) {
    if (b.epoch == 0 && b.step == 2) throw InputError("augmentation failed at step 2");
  });
  failing.start_epoch(0);
  EXPECT_TRUE(failing.next());
  EXPECT_TRUE(failing.next());
  expect_input_error([&] { failing.next(); }, "augmentation failed at step 2");
  EXPECT_EQ(failing.next(), std::nullopt);  // the error ends the epoch, once
  // After a failure the loader can start over.
  EXPECT_EQ(epoch_indices(failing, 1).size(), 4u);
}

TEST(Loader, ThreadsSetsTheWorkersIntraOpCountAndLeavesTheCallersAlone) {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  if (cores < 2) GTEST_SKIP() << "needs 2 cores";
  configure_threads(2);
  auto ds = counting_dataset(20);
  LoaderOptions opts;
  opts.batch_size = 10;
  opts.threads = 1;
  std::atomic<int> seen{0};
  Loader loader(ds, opts, [&](Batch&) { seen = at::get_num_threads(); });
  EXPECT_EQ(epoch_indices(loader, 0).size(), 2u);  // two batches of 10
  EXPECT_EQ(seen.load(), 1);
  EXPECT_EQ(at::get_num_threads(), 2);
  configure_threads(0);
}

TEST(Loader, StoppingMidEpochDoesNotHang) {
  auto ds = counting_dataset(1000);
  LoaderOptions opts;
  opts.batch_size = 4;
  opts.prefetch = 1;
  auto slow = [](Batch&) { std::this_thread::sleep_for(std::chrono::milliseconds(2)); };
  const auto t0 = std::chrono::steady_clock::now();
  {
    Loader loader(ds, opts, slow);
    loader.start_epoch(0);
    ASSERT_TRUE(loader.next());
    loader.start_epoch(1);  // abandons epoch 0 while it is being produced
    auto batch = loader.next();
    ASSERT_TRUE(batch);
    EXPECT_EQ(batch->epoch, 1);
    EXPECT_EQ(batch->step, 0);
  }  // destroyed with the worker blocked on a full queue
  { Loader never_started(ds, opts, slow); }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}
