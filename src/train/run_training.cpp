// run_training: a Config (or a run directory to continue) -> data, method, Trainer, RunDirectory and callbacks,
// then fit; with method_spec and make_config_view_generator, which bench and load_model share (train.h).
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <sstream>

#include "contrastive/augment.h"
#include "contrastive/common.h"
#include "contrastive/data.h"
#include "contrastive/dist.h"
#include "contrastive/eval.h"
#include "contrastive/export.h"
#include "contrastive/io.h"
#include "contrastive/platform.h"
#include "contrastive/train.h"
#include "train/train_internal.h"

namespace fs = std::filesystem;

namespace contrastive {

using detail::world_size_mismatch;

MethodSpec method_spec(const Config& config, const Dataset& train) {
  MethodSpec spec;
  spec.config = config;
  spec.in_channels = train.channels();
  spec.image_size = train.height();
  spec.num_classes = train.num_classes();
  spec.train_size = train.size();
  spec.train_labels = train.labels();
  return spec;
}

std::shared_ptr<ViewGenerator> make_config_view_generator(const Config& config, const Dataset& train) {
  AugmentOptions aopt;
  aopt.preset = config.augment.preset;
  aopt.views = config.augment.views;
  aopt.multi_crop = config.augment.multi_crop;
  aopt.crop_scale_min = config.augment.crop_scale_min;
  aopt.crop = config.augment.crop;
  aopt.box_alpha = config.augment.box_alpha;
  const Normalization norm = data_normalization(config, train.channels());
  aopt.mean = norm.mean;
  aopt.std = norm.std;
  return make_view_generator(aopt, train.channels(), train.height(), train.width());
}

namespace {

// Classifier runs also log the top-1 on clean training images (test transform, eval mode), for overfitting
// curves; at most this many, at evenly spaced positions of the training set (docs/experiments.md).
constexpr int64_t kTrainEvalImages = 10000;

// The fixed images of that evaluation: floor(i * N / n) for i < n = min(N, cap). Evenly spaced rather than the
// first n, so that a training set stored class by class (folders) still gives every class its share.
std::shared_ptr<Dataset> train_eval_subset(const std::shared_ptr<Dataset>& train, int64_t cap) {
  const int64_t size = train->size(), n = std::min(size, cap);
  if (n == size) return train;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i * size / n;
  return take_indices(train, torch::tensor(idx, torch::kLong));
}

// A checkpoint to continue from: the saved config becomes the run's, except the keys a resume may change
// (taken from `config`). A checkpoint of another world size -> InputError.
Checkpoint read_resume_point(const std::string& path, Config& config, int64_t world) {
  Checkpoint ckpt = Checkpoint::read(path);
  Config saved = ckpt.config();
  // The saved run defines the work; only how long, where, with how many threads and how often it
  // checkpoints may change.
  copy_config_keys(config, saved, resume_mutable_keys());
  config = saved;
  const std::string mismatch = world_size_mismatch(path, ckpt.world_size(), world);
  if (!mismatch.empty()) throw InputError(mismatch);
  return ckpt;
}

}  // namespace

TrainResult run_training(Config config, const std::string& resume_dir) {
  const DistEnv denv = read_dist_env();
  const int64_t world = denv.world_size;
  const bool lead = denv.rank == 0;  // only rank 0 writes files and information lines
  set_log_rank(denv.rank);
  struct DistGuard {
    ~DistGuard() { dist::shutdown(); }
  } dist_guard;
  std::optional<Checkpoint> resume;  // the checkpoint this run continues (none for a fresh run)
  if (!resume_dir.empty()) {
    const std::string ckpt = resume_dir + "/last.ckpt";
    if (!fs::exists(ckpt)) throw InputError(ckpt + ": no checkpoint to resume from");
    resume = read_resume_point(ckpt, config, world);
    config.train.out = resume_dir;
  }
  const torch::Device device = resolve_device(config.train.device);
  ResolvedConfig resolved = resolve_config(std::move(config), {world, speed_context(device)});
  config = std::move(resolved.config);
  const std::string speed = resolved.speed;
  const auto& tc = config.train;

  const int threads = configure_threads(static_cast<int>(tc.threads));
  torch::manual_seed(static_cast<uint64_t>(tc.seed));
  if (world > 1) {
    DistOptions dopt;
    dopt.backend = config.dist.backend;
    dopt.timeout_s = config.dist.timeout;
    dopt.bucket_mb = config.dist.bucket_mb;
    dist::init(denv, dopt, device);
  }

  // Rank 0 names the run directory (the default one has a time stamp) and is the only one to write in it.
  auto run_dir = std::make_shared<RunDirectory>(
      dist::broadcast_string(tc.out.empty() ? default_run_dir(config.method.name, config.data.dataset) : tc.out),
      lead);
  config.train.out = run_dir->path();
  // One training per run directory: a second one (a script started twice, a requeue while the first still runs)
  // would interleave its records and checkpoints with the first's.
  if (const std::string busy = dist::broadcast_string(lead ? run_dir->try_lock() : ""); !busy.empty())
    throw InputError(busy);
  std::vector<std::string> resume_notes;
  bool auto_resumed = false;
  if (resume_dir.empty()) {
    // Automatic resume: rank 0 looks at the directory and every rank takes its decision.
    const std::string decision =
        dist::broadcast_string(lead ? run_dir->resume_decision(config, world, resume_notes) : "");
    const auto colon = decision.find(':');
    const std::string kind = decision.substr(0, colon),
                      what = colon == std::string::npos ? "" : decision.substr(colon + 1);
    if (kind == "error") throw InputError(what);
    if (kind == "complete") {
      for (const auto& n : resume_notes) log_warn(n);
      log_info("run " + run_dir->path() + " is complete (" + what + " has all " + std::to_string(tc.epochs) +
               " epochs); nothing to do");
      TrainResult done;
      done.run_dir = run_dir->path();
      done.already_complete = true;
      done.epochs_done = tc.epochs;
      return done;
    }
    if (kind == "resume") {
      resume = read_resume_point(what, config, world);
      config.train.out = run_dir->path();
      // The checkpoint's config is an input too: checked as it was stored (its speed choices kept).
      config = resolve_config(std::move(config), {world, speed_context(device), false}).config;
      auto_resumed = true;
    }
  }

  DataSplits data = load_data(config);
  if (!resume) settle_data_config(config, data);  // a resumed run keeps the settled values it stored
  dist::barrier();  // every rank has checked the directory before rank 0 writes into it
  run_dir->open(config, resume ? resume->position().epoch : 0);
  for (const auto& n : resume_notes) log_warn(n);

  log_info("contrastive train: method " + config.method.name + ", dataset " + config.data.dataset + " (" +
           std::to_string(data.train->size()) + " train / " +
           (data.test ? std::to_string(data.test->size()) + " " + data.eval_split_name : "no held-out") + ", " +
           std::to_string(data.train->channels()) + "x" + std::to_string(data.train->height()) + "x" +
           std::to_string(data.train->width()) + "), run directory " + run_dir->path());
  log_info(describe_build(build_info()));
  log_info("CPU: " + describe_cpu(host_cpu()));
  log_info("device " + device.str() + ", " + std::to_string(threads) + " intra-op threads" +
           (tc.threads == 0 ? " (all cores; --threads overrides)" : ""));
  log_info(speed);
  if (dist::active()) {
    log_info(
        "distributed: world size " + std::to_string(world) + ", backend " + dist::backend_name() +
        ", launched by " + denv.source + ", rendezvous " + denv.master_addr + ":" +
        std::to_string(denv.master_port) + "; batch " + std::to_string(tc.batch_size) +
        " per process, global batch " + std::to_string(tc.batch_size * world) +
        (config.dist.sync_bn ? ", synchronised BatchNorm" : ", BatchNorm per process") +
        (config.dist.no_gather ? ", negatives from the local batch only" : ", negatives gathered from all ranks"));
  }

  MethodPtr method = make_method(method_spec(config, *data.train));
  if (!config.model.init_from.empty() && !resume) {  // a resumed run already has its own weights
    const InitReport init = load_state_dict(*method->backbone(), config.model.init_from);
    log_info("initialised " + std::to_string(init.loaded) + " backbone tensors from " + config.model.init_from +
             (init.classifier_left ? "; the file has no classifier: fc left at initialisation" : ""));
  }
  if (auto mask = method->labeled_mask(); mask.defined() && lead) {  // the semi-supervised split, for the record
    std::ostringstream ids;
    auto idx = mask.nonzero().view(-1);
    for (int64_t i = 0; i < idx.size(0); ++i) ids << idx[i].item<int64_t>() << "\n";
    run_dir->write_file("labeled_indices.txt", ids.str());
    log_info("semi-supervised: " + std::to_string(idx.size(0)) + " of " + std::to_string(mask.size(0)) +
             " training images keep their labels (list in labeled_indices.txt)");
  }
  Trainer trainer(config, method, device);
  log_info("model: " + config.model.arch + " width " + std::to_string(config.model.width) + ", " +
           std::to_string(count_parameters(*method)) + " parameters in training (backbone " +
           std::to_string(count_parameters(*method->backbone())) + ")");

  const Normalization norm = data_normalization(config, data.train->channels());
  auto views = make_config_view_generator(config, *data.train);
  log_info("augmentation: " + views->describe());
  trainer.set_run_directory(run_dir);
  trainer.set_view_generator(views);
  if (resume) {
    trainer.resume_from(*resume);
    const TrainPosition& pos = trainer.position();
    log_info(std::string(auto_resumed ? "auto-resume: this run directory holds a checkpoint of the same "
                                        "configuration; "
                                      : "") +
             "resumed from " + resume->path() + " at epoch " + std::to_string(pos.epoch + 1) + ", step " +
             std::to_string(pos.step) + " (global step " + std::to_string(pos.global_step) + ")");
  }
  // Every rank starts from rank 0's weights and buffers (identical by seeding already; this makes it a fact).
  dist::broadcast_module(*method);
  views->set_shard(dist::rank(), dist::world_size());

  LoaderOptions lopt;
  lopt.batch_size = tc.batch_size;
  lopt.shuffle = true;
  lopt.drop_last = tc.drop_last;
  lopt.seed = static_cast<uint64_t>(tc.seed);
  lopt.rank = dist::rank();
  lopt.world_size = dist::world_size();
  lopt.threads = tc.loader_threads;
  const uint64_t seed = static_cast<uint64_t>(tc.seed);
  Loader loader(data.train, lopt, [&, seed](Batch& b) {
    b.views = (*views)(b.images, b.indices, mix_seed(seed, b.epoch, b.step, kViewSeedTag), device);
  });
  if (loader.steps_per_epoch() == 0)
    throw InputError("--batch-size " + std::to_string(tc.batch_size) + ": no full batch in " +
                     std::to_string(data.train->size()) + " training images with --drop-last");

  if (data.test) {
    const auto train_eval = method->has_classifier() ? train_eval_subset(data.train, kTrainEvalImages) : nullptr;
    trainer.add_callback(std::make_shared<ClassifierEvalCallback>(data.test, train_eval, norm, tc.eval_every));
    trainer.add_callback(
        std::make_shared<KnnMonitorCallback>(data.train, data.test, norm, tc.knn_every, tc.knn_k, tc.knn_t));
  } else {
    log_info(std::string(data.train->labelled() ? "no held-out split" : "no labels") +
             ": the kNN and classifier monitors are off (best.ckpt follows the training loss); the collapse "
             "and effective-rank monitors stay on");
  }
  if (data.final_test) {
    log_info("the monitors and best.ckpt use the validation split; the test split (" +
             std::to_string(data.final_test->size()) + " images) is evaluated once, at the end");
    trainer.add_callback(
        std::make_shared<FinalTestCallback>(data.train, data.final_test, norm, tc.knn_k, tc.knn_t));
  }
  trainer.add_callback(std::make_shared<SkippedFilesCallback>(data.train, data.test));
  trainer.add_callback(std::make_shared<CollapseMonitorCallback>());
  trainer.add_callback(std::make_shared<ContrastiveCropCallback>(views, data.train, norm, config.augment));
  trainer.add_callback(std::make_shared<CurvesCallback>());
  if (tc.tensorboard == "on") trainer.add_callback(std::make_shared<TensorBoardCallback>(tc.tensorboard_every));
  return trainer.fit(loader);
}

}  // namespace contrastive
