// The Trainer as a library object (trainer.h): its hooks, its run directory, one checkpoint reader for resume,
// the step's NaN policy, and the explicit distributed options. Small models on a slice of Fashion-MNIST.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "contrastive/augment.h"
#include "contrastive/common.h"
#include "contrastive/data.h"
#include "contrastive/models.h"
#include "contrastive/train.h"
#include "contrastive/trainer.h"
#include "test_runs.h"

using namespace contrastive;
namespace fs = std::filesystem;

namespace {

Config small_config(const std::string& method, int64_t images, int64_t epochs) {
  Config c;
  c.method.name = method;
  c.model.width = 4;
  c.data.dataset = "fashion-mnist";
  c.data.train_subset = images;
  c.data.test_subset = 128;
  c.train.batch_size = 32;
  c.train.epochs = epochs;
  c.train.threads = 2;
  c.train.precision = "fp32";
  c.train.memory_format = "contiguous";
  resolve_defaults(c);
  resolve_speed_defaults(c, speed_context(torch::kCPU));
  validate(c);
  return c;
}

// Every hook with a count, and a value of its own in each epoch's record.
struct CountingCallback : TrainerCallback {
  int fit_begin = 0, epoch_begin = 0, steps = 0, epoch_end = 0, logged = 0, fit_end = 0;
  std::vector<int64_t> global_steps;
  void on_fit_begin(Trainer&) override { ++fit_begin; }
  void on_epoch_begin(Trainer&, int64_t) override { ++epoch_begin; }
  void on_step_end(Trainer&, const StepContext& ctx, const StepOutcome& step) override {
    ++steps;
    global_steps.push_back(ctx.global_step);
    EXPECT_FALSE(step.skipped);
    EXPECT_TRUE(std::isfinite(step.loss));
  }
  void on_epoch_end(Trainer&, EpochRecord& r) override {
    ++epoch_end;
    r.values["my_value"] = 10.0 * static_cast<double>(r.epoch);
  }
  void on_epoch_logged(Trainer&, const EpochRecord& r) override {
    ++logged;
    EXPECT_DOUBLE_EQ(r.value("my_value"), 10.0 * static_cast<double>(r.epoch));
  }
  void on_fit_end(Trainer&, const TrainResult&) override { ++fit_end; }
};

struct Setup {
  Config config;
  DataSplits data;
  std::shared_ptr<ViewGenerator> views;
  std::unique_ptr<Trainer> trainer;
  std::unique_ptr<Loader> loader;
};

Setup make_setup(const Config& config) {
  Setup s;
  s.config = config;
  s.data = load_data(config);
  s.views = make_config_view_generator(config, *s.data.train);
  torch::manual_seed(0);
  s.trainer = std::make_unique<Trainer>(config, make_method(method_spec(config, *s.data.train)), torch::kCPU);
  s.trainer->set_view_generator(s.views);
  LoaderOptions lo;
  lo.batch_size = config.train.batch_size;
  lo.drop_last = true;
  auto views = s.views;
  s.loader = std::make_unique<Loader>(s.data.train, lo, [views](Batch& b) {
    b.views = (*views)(b.images, b.indices, mix_seed(0, b.epoch, b.step, kViewSeedTag), torch::kCPU);
  });
  return s;
}

}  // namespace

TEST(Trainer, CallsEveryHookAndWritesNothingWithoutARunDirectory) {
  auto s = make_setup(small_config("simclr", 128, 2));  // 4 steps per epoch
  auto cb = std::make_shared<CountingCallback>();
  s.trainer->add_callback(cb);
  const TrainResult r = s.trainer->fit(*s.loader);
  EXPECT_EQ(r.epochs_done, 2);
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.run_dir, "");
  EXPECT_EQ(cb->fit_begin, 1);
  EXPECT_EQ(cb->epoch_begin, 2);
  EXPECT_EQ(cb->steps, 8);
  EXPECT_EQ(cb->global_steps, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(cb->epoch_end, 2);
  EXPECT_EQ(cb->logged, 2);
  EXPECT_EQ(cb->fit_end, 1);
  EXPECT_EQ(s.trainer->position().epoch, 2);
  EXPECT_EQ(s.trainer->position().global_step, 8);
  EXPECT_EQ(s.trainer->run_directory(), nullptr);
  EXPECT_EQ(s.trainer->save_checkpoint(s.trainer->position(), true, true), 0.0);  // nowhere to write: a no-op
}

TEST(Trainer, ARunDirectoryIsLockedByOneWriterAtATime) {
  const std::string dir = test_util::temp_dir("trainer-lock") + "/run";
  const std::string pid = std::to_string(::getpid());
  {
    RunDirectory first(dir);
    EXPECT_EQ(first.try_lock(), "");
    EXPECT_EQ(first.try_lock(), "");  // taking it again is a no-op
    RunDirectory second(dir);
    const std::string why = second.try_lock();
    EXPECT_EQ(why, "run directory " + dir + " is in use by another training (pid " + pid +
                       "); wait for it to end, or choose another --out");
    RunDirectory reader(dir, /*writer=*/false);
    EXPECT_EQ(reader.try_lock(), "");  // a reader takes no lock
  }
  RunDirectory after(dir);  // the first one released it when destroyed
  EXPECT_EQ(after.try_lock(), "");
  std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
}

TEST(Trainer, RunDirectoryHoldsTheRecordsAndACheckpointThatResumesExactly) {
  const std::string dir = test_util::temp_dir("trainer-rundir");
  const Config config = small_config("ce", 128, 2);
  auto s = make_setup(config);
  auto run = std::make_shared<RunDirectory>(dir + "/run");
  run->open(config, 0);
  s.trainer->set_run_directory(run);
  s.trainer->add_callback(std::make_shared<CountingCallback>());
  s.trainer->add_callback(
      std::make_shared<ClassifierEvalCallback>(s.data.test, nullptr, data_normalization(config, 1), 1));
  const TrainResult r = s.trainer->fit(*s.loader);
  EXPECT_EQ(r.run_dir, dir + "/run");
  ASSERT_GT(r.last_test_top1, 0.0);

  const auto records = test_util::read_metrics(dir + "/run");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1]["epoch"].get<int64_t>(), 2);
  EXPECT_DOUBLE_EQ(records[1]["my_value"].get<double>(), 20.0);
  EXPECT_DOUBLE_EQ(records[1]["test_top1"].get<double>(), r.last_test_top1);
  EXPECT_TRUE(records[1]["nan_skips"].is_number_integer());
  EXPECT_TRUE(fs::exists(dir + "/run/config.yaml"));
  EXPECT_TRUE(fs::exists(run->best_checkpoint()));

  // The one checkpoint reader: position, config and states.
  const Checkpoint ckpt = Checkpoint::read(run->last_checkpoint());
  EXPECT_EQ(ckpt.position().epoch, 2);
  EXPECT_EQ(ckpt.position().global_step, 8);
  EXPECT_DOUBLE_EQ(ckpt.position().best_metric, std::max(records[0]["test_top1"].get<double>(), r.last_test_top1));
  EXPECT_EQ(ckpt.world_size(), 1);
  EXPECT_EQ(ckpt.config().method.name, "ce");
  std::vector<std::string> notes;
  EXPECT_EQ(run->resume_decision(config, 1, notes), "complete:" + run->last_checkpoint());

  auto other = make_setup(config);
  torch::manual_seed(123);
  other.trainer->resume_from(ckpt);
  EXPECT_EQ(other.trainer->position().epoch, 2);
  auto a = s.trainer->method().named_parameters(), b = other.trainer->method().named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& p : a) EXPECT_TRUE(p.value().equal(b[p.key()])) << p.key();

  // Weights of another model: one clear InputError naming the file.
  auto wrong = small_config("ce", 128, 2);
  wrong.model.width = 8;
  auto w = make_setup(wrong);
  try {
    w.trainer->resume_from(ckpt);
    FAIL() << "loading width-4 weights into a width-8 model did not throw";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(run->last_checkpoint()), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Trainer, CheckpointReaderRejectsATornFileNamingIt) {
  const std::string dir = test_util::temp_dir("trainer-torn");
  const std::string path = dir + "/last.ckpt";
  std::ofstream(path) << "CTRVCKPT not really";
  try {
    (void)Checkpoint::read(path);
    FAIL() << "a torn checkpoint was read";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Trainer, TrainStepSkipsANonFiniteLossUnderOnNanSkipAndStopsOtherwise) {
  Config config = small_config("simclr", 64, 1);
  config.train.inject_nan_at_step = 1;
  config.train.on_nan = "skip";
  auto s = make_setup(config);
  auto before = s.trainer->method().parameters()[0].clone();
  s.loader->start_epoch(0);
  auto batch = s.loader->next();
  ASSERT_TRUE(batch);
  StepContext ctx;
  ctx.steps_per_epoch = 2;
  ctx.total_steps = 2;
  ctx.global_step = ctx.step = 1;
  const StepOutcome skipped = s.trainer->train_step(batch->views, batch->labels, batch->indices, ctx);
  EXPECT_TRUE(skipped.skipped);
  EXPECT_TRUE(s.trainer->method().parameters()[0].equal(before));  // no update
  EXPECT_EQ(s.trainer->result().nan_skips, 1);
  ctx.global_step = ctx.step = 0;
  const StepOutcome ok = s.trainer->train_step(batch->views, batch->labels, batch->indices, ctx);
  EXPECT_FALSE(ok.skipped);
  EXPECT_TRUE(std::isfinite(ok.loss));
  EXPECT_FALSE(ok.terms.empty());
  EXPECT_FALSE(s.trainer->method().parameters()[0].equal(before));  // updated

  config.train.on_nan = "stop";
  auto e = make_setup(config);
  ctx.global_step = ctx.step = 1;
  EXPECT_THROW(e.trainer->train_step(batch->views, batch->labels, batch->indices, ctx), RunError);
}

TEST(Trainer, SyncBatchNormIsAnOptionOfTheModuleNotAProcessFlag) {
  ResNetOptions o;
  o.arch("resnet18").width(4).in_channels(1);
  ResNet net(o);
  const int64_t bns = convert_sync_batchnorm(*net);
  EXPECT_EQ(bns, 20);  // stem 1 + 8 blocks x 2 + 3 downsample BNs
  int64_t synced = 0;
  for (auto& m : net->modules())
    if (auto* bn = m->as<SplitBatchNorm2dImpl>()) synced += bn->sync() ? 1 : 0;
  EXPECT_EQ(synced, bns);
  convert_sync_batchnorm(*net, false);
  for (auto& m : net->modules())
    if (auto* bn = m->as<SplitBatchNorm2dImpl>()) EXPECT_FALSE(bn->sync());
  // A second network is untouched by the first's switch.
  ResNet other(o);
  convert_sync_batchnorm(*net);
  for (auto& m : other->modules())
    if (auto* bn = m->as<SplitBatchNorm2dImpl>()) EXPECT_FALSE(bn->sync());
  // Through the trainer: --sync-bn switches the method's backbone.
  Config config = small_config("simclr", 64, 1);
  config.dist.sync_bn = true;
  auto s = make_setup(config);
  int64_t in_method = 0;
  for (auto& m : s.trainer->method().modules())
    if (auto* bn = m->as<SplitBatchNorm2dImpl>()) in_method += bn->sync() ? 1 : 0;
  EXPECT_EQ(in_method, 20);
}
