// Training on your own images: the three folder layouts, unreadable files skipped and listed, the validation
// split's stability, the channel conversion, and the CLI from a folder to embeddings (docs/own-images.md).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "contrastive/common.h"
#include "contrastive/data.h"
#include "test_util.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

using namespace contrastive;
namespace fs = std::filesystem;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

// A w x h image of `comp` channels: a diagonal gradient whose phase is `seed`, so images differ.
std::vector<uint8_t> pattern(int w, int h, int comp, int seed) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * comp);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < comp; ++c)
        px[(static_cast<size_t>(y) * w + x) * comp + c] =
            static_cast<uint8_t>((x * 7 + y * 3 + seed * 29 + c * 50) % 256);
  return px;
}

void write_image(const std::string& path, int w, int h, int comp, int seed) {
  fs::create_directories(fs::path(path).parent_path());
  const auto px = pattern(w, h, comp, seed);
  const std::string ext = fs::path(path).extension().string();
  int ok = 0;
  if (ext == ".jpg" || ext == ".jpeg") {
    ok = stbi_write_jpg(path.c_str(), w, h, comp, px.data(), 90);
  } else if (ext == ".bmp") {
    ok = stbi_write_bmp(path.c_str(), w, h, comp, px.data());
  } else {
    ok = stbi_write_png(path.c_str(), w, h, comp, px.data(), w * comp);
  }
  ASSERT_TRUE(ok) << path;
}

// `n` images of mixed formats and sizes (24..90 px) under `dir`/`sub`, some one folder deeper.
void fill(const std::string& dir, const std::string& sub, int n, int seed) {
  const char* exts[] = {".png", ".jpg", ".bmp"};
  for (int i = 0; i < n; ++i) {
    const int size = 24 + (i * 13 + seed) % 67;
    const std::string deeper = i % 4 == 0 ? "nested/" : "";
    write_image(dir + "/" + sub + deeper + "img" + std::to_string(seed * 1000 + i) + exts[i % 3], size,
                size + i % 5, 3, seed * 100 + i);
  }
}

// A JPEG cut to its first third: its header reads, its pixels do not (`scratch` holds the whole file meanwhile).
void write_truncated_jpeg(const std::string& path, const std::string& scratch, int seed) {
  write_image(scratch, 64, 64, 3, seed);
  const std::string jpg = read_all(scratch);
  write_bytes(path, jpg.substr(0, jpg.size() / 3));
  fs::remove(scratch);
}

template <typename F>
void expect_input_error(F f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "expected InputError containing '" << part << "'";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(OwnImages, DetectsTheThreeLayouts) {
  const std::string root = test_util::temp_dir("layouts");
  // Images at the top and in a sub-folder: unlabelled.
  fill(root + "/flat", "", 6, 1);
  write_image(root + "/flat/holiday/a.png", 30, 30, 3, 5);
  EXPECT_EQ(detect_folder_layout(root + "/flat"), "unlabelled");
  // Only one folder of images: no classes to tell apart, so unlabelled too.
  fill(root + "/one", "photos/", 5, 2);
  EXPECT_EQ(detect_folder_layout(root + "/one"), "unlabelled");
  fill(root + "/classes", "cat/", 5, 3);
  fill(root + "/classes", "dog/", 5, 4);
  EXPECT_EQ(detect_folder_layout(root + "/classes"), "classes");
  fill(root + "/split", "train/a/", 3, 5);
  fill(root + "/split", "test/a/", 3, 6);
  EXPECT_EQ(detect_folder_layout(root + "/split"), "train-test");
  expect_input_error([&] { detect_folder_layout(root + "/absent"); }, "absent: missing image folder");

  // Unlabelled: every image at any depth, hidden ones and other files left out, named by relative path.
  write_image(root + "/flat/.hidden.png", 8, 8, 3, 1);
  write_image(root + "/flat/.cache/x.png", 8, 8, 3, 1);
  write_bytes(root + "/flat/notes.txt", "not an image");
  const ImageList flat = list_images(root + "/flat", false);
  EXPECT_EQ(flat.files.size(), 7u);
  EXPECT_TRUE(flat.class_names.empty());
  EXPECT_EQ(std::count(flat.files.begin(), flat.files.end(), "holiday/a.png"), 1);
  ImageFolderDataset ds(flat, ImageFolderOptions{});
  EXPECT_FALSE(ds.labelled());
  EXPECT_EQ(ds.num_classes(), 0);
  EXPECT_EQ(ds.size(), 7);
  EXPECT_EQ(ds.item_name(0), flat.files[0]);
  EXPECT_EQ(ds.get(torch::arange(7)).sizes(), (std::vector<int64_t>{7, 3, 32, 32}));

  // Classes: images at any depth under each class folder.
  const ImageList classes = list_images(root + "/classes", true);
  EXPECT_EQ(classes.class_names, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(classes.files.size(), 10u);
  EXPECT_EQ(classes.labels.front(), 0);
  EXPECT_EQ(classes.labels.back(), 1);
}

TEST(OwnImages, LoadDatasetSplitsEachLayout) {
  const std::string root = test_util::temp_dir("load");
  fill(root + "/flat", "", 12, 1);
  fill(root + "/classes", "a/", 40, 2);
  fill(root + "/classes", "b/", 40, 3);
  DataOptions o;
  o.dataset = "folder";
  o.path = root + "/flat";
  DataSplits flat = load_dataset(o);
  EXPECT_EQ(flat.layout, "unlabelled");
  EXPECT_EQ(flat.train->size(), 12);
  EXPECT_FALSE(flat.train->labelled());
  EXPECT_EQ(flat.test, nullptr);

  o.path = root + "/classes";
  DataSplits cl = load_dataset(o);
  EXPECT_EQ(cl.layout, "classes");
  EXPECT_EQ(cl.eval_split_name, "validation");
  ASSERT_NE(cl.test, nullptr);
  EXPECT_EQ(cl.train->size() + cl.test->size(), 80);
  EXPECT_GT(cl.test->size(), 0);
  EXPECT_EQ(cl.test->class_names(), cl.train->class_names());
  o.val_fraction = 0;
  DataSplits whole = load_dataset(o);
  EXPECT_EQ(whole.train->size(), 80);
  EXPECT_EQ(whole.test, nullptr);
  // The layout can be forced: the class folders read as one unlabelled set.
  o.layout = "unlabelled";
  o.val_fraction = -1;
  EXPECT_FALSE(load_dataset(o).train->labelled());
  o.val_fraction = 0.2;
  expect_input_error([&] { load_dataset(o); }, "has no labels");
}

TEST(OwnImages, BuiltInDatasetsHoldOutAValidationSplitAndKeepTheirTestForTheEnd) {
  REQUIRE_FASHION_MNIST();
  DataOptions o;  // Fashion-MNIST: 60,000 training and 10,000 test images
  DataSplits plain = load_dataset(o);
  EXPECT_EQ(plain.eval_split_name, "test");  // the default (-1) holds out nothing where a test split exists
  EXPECT_EQ(plain.final_test, nullptr);
  o.val_fraction = 0.1;
  DataSplits s = load_dataset(o);
  EXPECT_EQ(s.eval_split_name, "validation");
  ASSERT_NE(s.final_test, nullptr);
  EXPECT_EQ(s.final_test->size(), 10000);
  EXPECT_EQ(s.train->size() + s.test->size(), 60000);
  EXPECT_NEAR(static_cast<double>(s.test->size()), 6000.0, 300.0);  // a binomial's 3 sigma is about 220
  // The validation images are training images (same pixels as the full set at their index), none of them kept
  // for training, and the same seed draws the same split.
  std::vector<int64_t> held;
  for (int64_t i = 0; i < 60000; ++i)
    if (in_validation_split(std::to_string(i), 0, 0.1)) held.push_back(i);
  ASSERT_EQ(static_cast<int64_t>(held.size()), s.test->size());
  auto first = torch::tensor(std::vector<int64_t>{0}, torch::kLong);
  EXPECT_TRUE(torch::equal(s.test->get(first), plain.train->get(torch::tensor(std::vector<int64_t>{held[0]}))));
  EXPECT_TRUE(torch::equal(load_dataset(o).test->labels(), s.test->labels()));
  o.split_seed = 1;
  EXPECT_FALSE(torch::equal(load_dataset(o).test->labels().narrow(0, 0, 500), s.test->labels().narrow(0, 0, 500)));
}

TEST(OwnImages, ValidationSplitIsStableWhenFilesAreAdded) {
  const std::string root = test_util::temp_dir("valsplit");
  fill(root, "a/", 60, 1);
  fill(root, "b/", 60, 2);
  DataOptions o;
  o.dataset = "folder";
  o.path = root;
  o.val_fraction = 0.25;
  auto names = [](const Dataset& d) {
    std::set<std::string> s;
    for (int64_t i = 0; i < d.size(); ++i) s.insert(d.item_name(i));
    return s;
  };
  DataSplits before = load_dataset(o);
  const auto val_before = names(*before.test), train_before = names(*before.train);
  // About a quarter held out (120 images: a binomial's 3 sigma is about 14).
  EXPECT_NEAR(static_cast<double>(val_before.size()), 30.0, 15.0);
  fill(root, "a/", 50, 7);
  fill(root, "c/", 30, 8);
  DataSplits after = load_dataset(o);
  const auto val_after = names(*after.test), train_after = names(*after.train);
  for (const auto& n : val_before) EXPECT_EQ(val_after.count(n), 1u) << n << " left the validation split";
  for (const auto& n : train_before) EXPECT_EQ(train_after.count(n), 1u) << n << " left the training split";
  EXPECT_EQ(val_after.size() + train_after.size(), 200u);
  // Another seed draws another split.
  o.split_seed = 1;
  EXPECT_NE(names(*load_dataset(o).test), val_after);
}

TEST(OwnImages, UnreadableFilesAreSkippedAndListed) {
  const std::string root = test_util::temp_dir("badfiles");
  fill(root, "a/", 50, 1);
  fill(root, "b/", 50, 2);
  write_bytes(root + "/a/empty.png", "");
  write_bytes(root + "/a/notes.png", "these are my notes, not a picture\n");
  // A JPEG cut after its header: it passes the header check and fails when decoded.
  write_truncated_jpeg(root + "/b/truncated.jpg", root + "/whole.jpg", 9);

  ImageFolderOptions io;
  io.decode_threads = 2;
  ImageFolderDataset ds(list_images(root, true), io);
  EXPECT_EQ(ds.size(), 101);  // 100 images + the truncated one; empty.png and notes.png left out
  auto skipped = ds.skipped_files();
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_EQ(skipped[0].rfind("a/empty.png: empty file", 0), 0u) << skipped[0];
  EXPECT_EQ(skipped[1].rfind("a/notes.png: not a readable image", 0), 0u) << skipped[1];

  int64_t truncated = -1;
  for (int64_t i = 0; i < ds.size(); ++i)
    if (ds.item_name(i) == "b/truncated.jpg") truncated = i;
  ASSERT_GE(truncated, 0);
  // Its sample is served as the next readable image, the same each time.
  auto x = ds.get(torch::tensor({truncated}, torch::kLong));
  const int64_t next = (truncated + 1) % ds.size();
  EXPECT_TRUE(torch::equal(x, ds.get(torch::tensor({next}, torch::kLong))));
  EXPECT_TRUE(torch::equal(x, ds.get(torch::tensor({truncated}, torch::kLong))));
  skipped = ds.skipped_files();
  ASSERT_EQ(skipped.size(), 3u);
  EXPECT_EQ(skipped[2].rfind("b/truncated.jpg: cannot decode image", 0), 0u) << skipped[2];

  // A file deleted while the run goes on (not yet cached).
  ImageFolderOptions nocache = io;
  nocache.cache_mb = 0;
  ImageFolderDataset live(list_images(root, true), nocache);
  const int64_t victim = 5;
  const std::string victim_path = live.files()[victim];
  fs::remove(victim_path);
  auto all = live.get(torch::arange(live.size()));
  EXPECT_EQ(all.size(0), live.size());
  bool listed = false;
  for (const auto& s : live.skipped_files())
    listed |= s.rfind(live.item_name(victim) + ": cannot open image", 0) == 0;
  EXPECT_TRUE(listed) << "the deleted file is not in the skip list";

  // --strict-data: the first unreadable file is an error.
  ImageFolderOptions strict = io;
  strict.strict = true;
  expect_input_error([&] { ImageFolderDataset(list_images(root, true), strict); }, "empty.png: empty file");

  // Above 5% unreadable, the set is refused.
  for (int i = 0; i < 6; ++i) write_bytes(root + "/a/broken" + std::to_string(i) + ".png", "x");
  expect_input_error([&] { ImageFolderDataset(list_images(root, true), io); }, "more than the 5.0%");
}

TEST(OwnImages, ConvertsEveryImageToOneChannelCount) {
  const std::string root = test_util::temp_dir("channels");
  write_image(root + "/a/grey.png", 20, 20, 1, 1);
  write_image(root + "/a/rgba.png", 20, 20, 4, 2);
  write_image(root + "/b/rgb.jpg", 40, 30, 3, 3);
  write_image(root + "/b/grey.jpg", 40, 30, 1, 4);
  write_image(root + "/b/rgb.bmp", 10, 12, 3, 5);
  ImageFolderOptions io;
  io.image_size = 16;
  ImageFolderDataset first(list_images(root, true), io);  // the first image is grey: the set is grey
  EXPECT_EQ(first.channels(), 1);
  EXPECT_EQ(first.get(torch::arange(5)).sizes(), (std::vector<int64_t>{5, 1, 16, 16}));
  io.channels = 3;
  ImageFolderDataset rgb(list_images(root, true), io);
  auto x = rgb.get(torch::arange(5));
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{5, 3, 16, 16}));
  // A grey image converted to three channels has three equal planes.
  EXPECT_TRUE(torch::equal(x[0][0], x[0][1]));
  EXPECT_TRUE(torch::equal(x[0][0], x[0][2]));
  EXPECT_TRUE(rgb.skipped_files().empty());
}

// ---- through the CLI ----

namespace {

std::string quick_train(const std::string& data, const std::string& out, const std::string& method,
                        const std::string& extra = "", int epochs = 1) {
  return "train --method " + method + " --dataset folder --data " + data + " --image-size 16 --epochs " +
         std::to_string(epochs) + " --width 4" + " --batch-size 32 --threads 2 --out " + out + " " + extra;
}

}  // namespace

TEST(OwnImagesCLI, UnlabelledFolderWithBrokenFilesTrainsToTheEnd) {
  const std::string root = test_util::temp_dir("cli-unlabelled");
  const std::string data = root + "/photos";
  fill(data, "", 90, 1);
  fill(data, "more/", 30, 2);
  write_bytes(data + "/empty.png", "");
  write_bytes(data + "/more/notes.png", "not a picture");
  write_truncated_jpeg(data + "/cut.jpg", root + "/whole.jpg", 3);

  auto r = test_util::run_cli(quick_train(data, root + "/run", "simclr"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("layout unlabelled (detected"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no labels: the kNN and classifier monitors are off"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("normalisation measured on"), std::string::npos) << r.output;
  for (const std::string f : {"empty.png", "more/notes.png", "cut.jpg"}) {
    EXPECT_NE(r.output.find(f), std::string::npos) << f << " not named in the log\n" << r.output;
  }
  const std::string list = read_all(root + "/run/skipped_files.txt");
  EXPECT_NE(list.find("empty.png: empty file"), std::string::npos) << list;
  EXPECT_NE(list.find("more/notes.png: not a readable image"), std::string::npos) << list;
  EXPECT_NE(list.find("cut.jpg: cannot decode image"), std::string::npos) << list;
  const std::string config = read_all(root + "/run/config.yaml");
  EXPECT_NE(config.find("mean:"), std::string::npos) << config;
  EXPECT_TRUE(fs::exists(root + "/run/last.ckpt"));

  // A second command continues the same run (the measured normalisation is the run's, not the command's).
  auto again = test_util::run_cli(quick_train(data, root + "/run", "simclr", "", 2));
  EXPECT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("auto-resume"), std::string::npos) << again.output;

  // Methods that read labels are refused, with one line.
  auto sup = test_util::run_cli(quick_train(data, root + "/sup", "supcon"));
  EXPECT_EQ(sup.status, 2) << sup.output;
  EXPECT_NE(sup.output.find("--method supcon trains on labels, but"), std::string::npos) << sup.output;
  auto knn = test_util::run_cli("knn --checkpoint " + root + "/run/last.ckpt");
  EXPECT_EQ(knn.status, 2) << knn.output;
  EXPECT_NE(knn.output.find("no labels"), std::string::npos) << knn.output;

  // Embeddings of any folder: names relative to it, no label column.
  const std::string other = root + "/other";
  fill(other, "x/", 4, 5);
  write_image(other + "/top.png", 33, 33, 3, 7);
  auto emb = test_util::run_cli("embed --checkpoint " + root + "/run/last.ckpt --data " + other + " --out " +
                                root + "/emb --threads 2");
  ASSERT_EQ(emb.status, 0) << emb.output;
  std::istringstream csv(read_all(root + "/emb.csv"));
  std::string line;
  ASSERT_TRUE(std::getline(csv, line));
  EXPECT_EQ(line.rfind("name,f0,f1,", 0), 0u) << line;
  std::set<std::string> names;
  int rows = 0;
  while (std::getline(csv, line)) {
    names.insert(line.substr(0, line.find(',')));
    ++rows;
  }
  EXPECT_EQ(rows, 5);
  EXPECT_EQ(names.count("top.png"), 1u);
  EXPECT_FALSE(fs::exists(root + "/emb_labels.npy"));
}

TEST(OwnImagesCLI, ClassFoldersTrainSupConWithGivenAndMeasuredNormalisation) {
  const std::string root = test_util::temp_dir("cli-classes");
  const std::string data = root + "/data";
  fill(data, "shirt/", 40, 1);
  fill(data, "shoe/", 40, 2);
  auto given = test_util::run_cli(
      quick_train(data, root + "/given", "supcon", "--mean 0.5,0.4,0.3 --std 0.2,0.2,0.25 --val-fraction 0.2"));
  ASSERT_EQ(given.status, 0) << given.output;
  EXPECT_NE(given.output.find("layout classes (detected"), std::string::npos) << given.output;
  EXPECT_NE(given.output.find("validation"), std::string::npos) << given.output;
  EXPECT_EQ(given.output.find("normalisation measured"), std::string::npos) << given.output;
  EXPECT_NE(given.output.find("0.5 0.4 0.3"), std::string::npos) << "the given mean is not the one used\n"
                                                                 << given.output;
  auto measured = test_util::run_cli(quick_train(data, root + "/measured", "supcon"));
  ASSERT_EQ(measured.status, 0) << measured.output;
  EXPECT_NE(measured.output.find("normalisation measured on"), std::string::npos) << measured.output;
  auto knn = test_util::run_cli("knn --checkpoint " + root + "/measured/last.ckpt --threads 2");
  EXPECT_EQ(knn.status, 0) << knn.output;
  // A wrong count of values is one line, exit 2.
  auto bad = test_util::run_cli(quick_train(data, root + "/bad", "supcon", "--mean 0.5 --std 0.2"));
  EXPECT_EQ(bad.status, 2) << bad.output;
  EXPECT_NE(bad.output.find("--mean/--std: give 3 values"), std::string::npos) << bad.output;
}

// The formats a scraped folder holds, written by Pillow (Debian's python3-pil, which setup.sh installs; the same
// Python as the interop tests): 16-bit grey PNG, palette PNG, RGBA PNG, grey JPEG and CMYK JPEG. Each decodes to
// Pillow's own RGB conversion of the file (16-bit: the top byte; JPEG: within 2 levels, another IDCT).
TEST(OwnImages, DecodesWhatPillowWrites) {
  const std::string dir = test_util::temp_dir("pillow");
  const std::string script = R"PY(
import sys, numpy as np
from PIL import Image
d = sys.argv[1]
y, x = np.mgrid[0:32, 0:32]
a = ((x * 7 + y * 3) % 256).astype(np.uint8)
rgb = np.stack([a, (a // 2).astype(np.uint8), (255 - a).astype(np.uint8)], -1)
def save(name, im, expect):
    im.save(d + "/img/" + name)
    open(d + "/" + name + ".rgb", "wb").write(np.ascontiguousarray(expect, dtype=np.uint8).tobytes())
g16 = (a.astype(np.uint16) * 257 + 3).astype(np.uint16)
im16 = Image.fromarray(g16)
assert im16.mode.startswith("I")
save("grey16.png", im16, np.repeat((g16 >> 8)[..., None], 3, -1))
pal = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=16)
save("palette.png", pal, np.array(pal.convert("RGB")))
rgba = Image.fromarray(np.concatenate([rgb, a[..., None]], -1), "RGBA")
save("rgba.png", rgba, rgb)
gj = Image.fromarray(a, "L")
gj.save(d + "/img/grey.jpg", quality=95)
open(d + "/grey.jpg.rgb", "wb").write(np.repeat(np.array(Image.open(d + "/img/grey.jpg"))[..., None], 3, -1).tobytes())
cm = Image.fromarray(rgb).convert("CMYK")
cm.save(d + "/img/cmyk.jpg", quality=95)
open(d + "/cmyk.jpg.rgb", "wb").write(np.array(Image.open(d + "/img/cmyk.jpg").convert("RGB")).tobytes())
assert open(d + "/img/grey16.png", "rb").read()[24] == 16, "not a 16-bit PNG"
)PY";
  std::ofstream(dir + "/make.py") << script;
  fs::create_directories(dir + "/img");
  const std::string cmd = std::string(CONTRASTIVE_PYTHON) + " " + dir + "/make.py " + dir + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  ImageFolderOptions io;
  io.image_size = 32;  // the files' own size: no resize, so pixels compare exactly
  io.channels = 3;
  ImageFolderDataset ds(list_images(dir + "/img", false), io);
  ASSERT_EQ(ds.size(), 5);
  EXPECT_TRUE(ds.skipped_files().empty());
  for (int64_t i = 0; i < ds.size(); ++i) {
    const std::string name = ds.item_name(i);
    const std::string raw = read_all(dir + "/" + name + ".rgb");
    ASSERT_EQ(raw.size(), 32u * 32u * 3u) << name;
    auto expect = torch::from_blob(const_cast<char*>(raw.data()), {32, 32, 3}, torch::kUInt8).permute({2, 0, 1});
    auto got = ds.get(torch::tensor({i}, torch::kLong))[0];
    const int64_t diff = (got.to(torch::kInt) - expect.to(torch::kInt)).abs().max().item<int64_t>();
    const bool jpeg = fs::path(name).extension() == ".jpg";
    EXPECT_LE(diff, jpeg ? 2 : 0) << name;
  }
}

// A colour image read as one channel is the grey of its RGB decode by stb_image's weights (77 R + 150 G + 29 B) /
// 256, for JPEG (whichever decoder the build uses, libjpeg-turbo or stb_image) and PNG alike.
TEST(OwnImages, ColourJpegReadAsGreyUsesTheSameWeightsAsItsRgb) {
  const std::string dir = test_util::temp_dir("jpeg-grey");
  write_image(dir + "/img/a.jpg", 32, 32, 3, 5);
  write_image(dir + "/img/b.png", 32, 32, 3, 6);
  ImageFolderOptions io;
  io.image_size = 32;
  io.channels = 3;
  ImageFolderDataset rgb(list_images(dir + "/img", false), io);
  io.channels = 1;
  ImageFolderDataset grey(list_images(dir + "/img", false), io);
  ASSERT_EQ(rgb.size(), 2);
  for (int64_t i = 0; i < 2; ++i) {
    auto c = rgb.get(torch::tensor({i}, torch::kLong))[0].to(torch::kInt);
    auto g = grey.get(torch::tensor({i}, torch::kLong))[0][0].to(torch::kInt);
    auto expect = (c[0] * 77 + c[1] * 150 + c[2] * 29).div(256, "floor");
    EXPECT_EQ((g - expect).abs().max().item<int64_t>(), 0) << rgb.item_name(i);
  }
}

TEST(OwnImagesCLI, ValidationSplitPicksBestAndTheTestSplitIsEvaluatedOnceAtTheEnd) {
  REQUIRE_FASHION_MNIST();
  const std::string root = test_util::temp_dir("cli-val");
  auto r = test_util::run_cli(
      "train --method ce --dataset fashion-mnist --train-subset 600 --test-subset 300 --val-fraction 0.2 "
      "--epochs 2 --width 4 --batch-size 64 --threads 2 --tensorboard off --out " +
      root + "/run");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("validation, 10000 test (evaluated once, at the end)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("test split, evaluated once (300 images, best.ckpt, epoch"), std::string::npos)
      << r.output;
  const auto result = nlohmann::json::parse(read_all(root + "/run/test_result.json"));
  EXPECT_EQ(result.at("images").get<int64_t>(), 300);
  EXPECT_GE(result.at("best_epoch").get<int64_t>(), 1);
  // ce trains a classifier: its top-1 and the kNN top-1 are both there, and they are best.ckpt's on the test
  // split, as `contrastive eval` of that checkpoint reports it.
  ASSERT_TRUE(result.contains("test_top1") && result.contains("knn_top1")) << result.dump();
  auto ev = test_util::run_cli("eval --checkpoint " + root + "/run/best.ckpt --threads 2");
  ASSERT_EQ(ev.status, 0) << ev.output;
  const auto at = ev.output.find("test top-1 ");
  ASSERT_NE(at, std::string::npos) << ev.output;
  EXPECT_NEAR(std::stod(ev.output.substr(at + 11)), result.at("test_top1").get<double>(), 0.5 / 300) << ev.output;
  EXPECT_NE(ev.output.find("over 300"), std::string::npos) << ev.output;
}
