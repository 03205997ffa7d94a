// One config tree for a run: filled from YAML (--config), overridden by flags, resolved (per-method defaults),
// validated once before any work, and written back into the run directory as config.yaml.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace contrastive {

struct DataConfig {
  std::string dataset = "fashion-mnist";
  std::string path;            // "" = the dataset's default location
  int64_t train_subset = 0;    // > 0: first N training images
  int64_t test_subset = 0;     // > 0: first N test images
  int64_t image_size = 0;      // folder datasets: fixed resize (0 = 32)
  int64_t decode_threads = 2;  // folder datasets
  std::string labels = "fine";  // cifar100: fine | coarse
};

struct ModelConfig {
  std::string arch = "resnet18";  // resnet18 | resnet34 | resnet50 | amdim
  int64_t width = 16;             // base channels (64 in the papers; 16 keeps CPU runs fast)
  int64_t zero_init_residual = -1;  // -1: method default
  std::string init_from;          // state dict (.pt) to start from
};

struct MethodConfig {
  std::string name = "cds";       // ce | supcon | simclr | moco | simsiam | byol | amdim | cds
  double temperature = -1;        // -1: method default
  double base_temperature = -1;   // -1: method default
  int64_t proj_hidden = -1;       // projection MLP hidden size (-1: feature dim / method default)
  int64_t proj_dim = -1;          // projection output
  bool proj_bn = false;           // supcon/simclr/moco: BN after the head's hidden Linear (SimCLR paper's head)
  int64_t pred_hidden = -1;       // SimSiam/BYOL predictor hidden size
  double label_smoothing = 0.0;   // ce / cds cross-entropy
  // MoCo
  int64_t queue_size = -1;
  double momentum_ema = -1;       // MoCo m / BYOL base tau
  bool symmetric = false;
  int64_t bn_splits = -1;         // SplitBatchNorm splits (MoCo shuffle-BN on one process)
  // SimSiam / BYOL
  bool fix_pred_lr = false;
  bool no_stop_grad = false;      // ablation: SimSiam without stop-gradient (collapses)
  // Negatives for supcon/simclr: in-batch | memory-bank
  std::string negatives = "in-batch";
  int64_t bank_negatives = 4096;  // memory-bank: negatives drawn per step
  double bank_momentum = 0.5;     // memory-bank: update momentum of stored embeddings
  // CDS
  double cds_lambda = 0.1;
  std::vector<double> cds_weights = {1, 1, 1, 1};  // per stage (1..4) multiplier of lambda
  std::string cds_loss = "supcon";  // supcon | simclr
  std::string cds_head = "sepconv";  // sepconv | mlp
  double labeled_fraction = 1.0;     // semi-supervised: fraction of labelled training images
  int64_t labeled_per_class = 0;     // semi-supervised: labelled images per class (overrides fraction)
  std::string teacher;               // distillation: teacher checkpoint
  double kd_temperature = 3.0;
  double kd_weight = 1.0;
  double feat_weight = 0.1;
  bool teacher_train_bn = true;      // reference: teacher never put in eval()
};

struct AugmentConfig {
  std::string preset;          // "" = method default
  int64_t views = -1;          // -1 = method default
  std::string multi_crop;      // e.g. "2x32,4x16"
  double crop_scale_min = 0.2;
  std::string crop = "rrc";    // rrc | contrastive
  int64_t box_warmup = 100;    // ContrastiveCrop: epochs of plain RRC before boxes are used
  int64_t box_interval = 100;  // ... boxes recomputed every N epochs
  double box_thresh = 0.1;
  double box_alpha = 0.6;
};

struct OptimConfig {
  std::string optimizer = "sgd";  // sgd | lars | adam
  double lr = -1;                 // -1: method default
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = -1;       // -1: method default
  std::string schedule = "cosine";  // cosine | step | constant
  std::vector<double> milestones;   // step: epochs (fractions of `epochs` when all < 1)
  double gamma = 0.1;
  double warmup_epochs = 0;
  double warmup_from = 0.01;        // absolute lr at the start of warm-up
  double min_lr_ratio = 0.0;        // cosine floor as a fraction of lr
  double lars_trust = 0.001;
};

struct TrainConfig {
  int64_t epochs = 3;
  int64_t batch_size = 256;
  int64_t seed = 0;
  int64_t threads = 0;            // 0 = all cores
  std::string device = "auto";    // auto | cpu | cuda
  std::string out;                // "" = runs/<method>-<dataset>-<timestamp>
  int64_t eval_every = 1;         // test top-1 every N epochs
  int64_t knn_every = -1;         // kNN monitor every N epochs (0 = off; -1: 1 for self-supervised methods, 0
                                  // for ce/cds, which report test accuracy)
  int64_t knn_k = 200;
  double knn_t = 0.1;
  std::string on_nan = "stop";    // stop | skip
  int64_t inject_nan_at_step = -1;
  int64_t stop_after_steps = 0;   // > 0: stop cleanly (checkpoint, exit 130) after this many global steps
  int64_t log_every = 20;         // steps between plain progress lines
  bool drop_last = false;
  // Speed by default (resolve_speed_defaults): "auto" picks per machine; config.yaml records the choice.
  std::string precision = "auto";      // auto | fp32 | bf16 (CPU autocast of the training forward)
  std::string memory_format = "auto";  // auto | channels-last | contiguous
  bool allow_emulated_bf16 = false;    // run bf16 even on a CPU without native bf16 (many times slower)
  bool bf16 = false;           // request alias of precision bf16 (the flag of earlier versions); cleared when resolved
  bool channels_last = false;  // request alias of memory_format channels-last; likewise
  // Long jobs: checkpoints between epoch ends (both 0 = only at epoch ends), step files kept, automatic resume.
  int64_t checkpoint_every_steps = 0;   // > 0: also write last.ckpt every N global steps
  double checkpoint_every_minutes = 0;  // > 0: also write last.ckpt when M minutes passed since the last one
  int64_t keep_checkpoints = 0;         // > 0: keep the last K interval checkpoints as step-NNNNNN.ckpt
  bool no_auto_resume = false;          // true: an --out that holds a checkpoint is an error (no auto-resume)
};

// Data-parallel settings (the world size itself comes from the launcher's environment, see dist.h).
struct DistConfig {
  bool sync_bn = false;          // BatchNorm statistics over the global batch
  bool no_gather = false;        // contrastive losses see only this process' batch (ablation)
  std::string backend = "auto";  // auto | gloo | nccl
  double timeout = 300;          // seconds: rendezvous and collectives (a dead rank ends the run by then)
  double bucket_mb = 25;         // gradient all-reduce bucket size
};

struct Config {
  DataConfig data;
  ModelConfig model;
  MethodConfig method;
  AugmentConfig augment;
  OptimConfig optim;
  TrainConfig train;
  DistConfig dist;
};

// One entry of the key table that drives YAML loading, flag registration and YAML writing.
struct ConfigKey {
  std::string section;  // YAML section
  std::string name;     // YAML key inside the section
  std::string flag;     // CLI flag without dashes
  std::variant<std::string*, int64_t*, double*, bool*, std::vector<double>*> target;
  std::string help;
};

// The table over a Config instance (pointers into `config`).
std::vector<ConfigKey> config_keys(Config& config);

// Loads a YAML file into `config`; unknown keys, wrong types -> InputError naming the file and the key.
void load_config_file(const std::string& path, Config& config);
// YAML text of the whole config (reloadable with --config).
std::string config_to_yaml(const Config& config);
void config_from_yaml_string(const std::string& text, Config& config, const std::string& origin);

// Fills the -1 / "" placeholders with the method's reference defaults (docs/methods.md), in one place.
// --batch-size is per process: default learning rates scale with the global batch, batch_size * world_size.
void resolve_defaults(Config& config, int64_t world_size = 1);
// What the speed choices depend on: the CPU's native bf16 and the device (see platform.h for the detection).
struct SpeedContext {
  bool native_bf16 = false;
  bool cuda = false;
  std::string cpu_model;  // named in the refusal
};
// Resolves train.precision and train.memory_format ("auto" -> a choice for this machine; the bf16 /
// channels_last aliases folded in and cleared), so that the trainer reads precision == "bf16" and
// memory_format == "channels-last". precision auto = bf16 only on a CPU with native bf16 and for a method
// whose accuracy was measured to hold in bf16 (bf16_keeps_accuracy); memory_format auto = channels-last. bf16
// on a CPU without native bf16 -> InputError naming the missing feature, unless allow_emulated_bf16. Returns a
// one-line description of the choice and its reason, for the log.
std::string resolve_speed_defaults(Config& config, const SpeedContext& context);
// Methods whose accuracy in bf16 was measured against fp32 (README, "Speed by default").
bool bf16_keeps_accuracy(const std::string& method);

// Range and consistency checks; throws InputError naming the key and the value.
void validate(const Config& config, int64_t world_size = 1);

// Keys ("section.name") that may differ between a run's saved config and the command that continues it
// (--resume or automatic resume): how long, where, with how many threads, logging and checkpoint cadence.
const std::vector<std::string>& resume_mutable_keys();
// Copies the values of `keys` ("section.name") from `from` into `to`.
void copy_config_keys(const Config& from, Config& to, const std::vector<std::string>& keys);
// The first key (table order) whose value differs between `a` and `b`, skipping `ignored`, as
// "--flag (A in a, B in b)" with the given names for a and b; "" when they agree. Values are compared after
// a YAML round trip, as a checkpoint stores them.
std::string first_config_difference(const Config& a, const Config& b, const std::vector<std::string>& ignored,
                                    const std::string& name_a, const std::string& name_b);

// Parses a multi-crop spec "2x32,4x16" into (count, size) pairs. Bad syntax -> InputError.
std::vector<std::pair<int64_t, int64_t>> parse_multi_crop(const std::string& spec);

}  // namespace contrastive
