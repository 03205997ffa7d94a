// One config tree for a run: filled from YAML (--config), overridden by flags, resolved and validated once
// before any work (resolve.h), and written back into the run directory as config.yaml.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace contrastive {

struct DataConfig {
  std::string dataset = "fashion-mnist";
  std::string path;             // "" = the dataset's default location
  int64_t train_subset = 0;     // > 0: first N training images
  int64_t test_subset = 0;      // > 0: first N test images
  int64_t image_size = 0;       // folder datasets: fixed resize (0 = 32)
  int64_t decode_threads = 2;   // folder datasets
  std::string labels = "fine";  // cifar100: fine | coarse
  std::string layout = "auto";  // folder datasets: auto | unlabelled | classes | train-test
  int64_t channels = 0;         // folder datasets: 1 | 3 (0: from the first image)
  double val_fraction = -1;     // validation share of the training images (-1: 0.1 for class folders, else 0)
  bool strict = false;          // folder datasets: an unreadable file is an error, not skipped
  int64_t cache_mb = 2048;      // folder datasets: decoded-image cache budget (MiB)
  // Per-channel normalisation; empty: the dataset's standard values, or for a folder statistics measured on a
  // sample of its training images when a run starts (then written here, so config.yaml and the checkpoint keep
  // them).
  std::vector<double> mean, std;
};

struct ModelConfig {
  std::string arch = "resnet18";    // resnet18 | resnet34 | resnet50 | amdim
  int64_t width = 16;               // base channels (64 in the papers; 16 keeps CPU runs fast)
  int64_t zero_init_residual = -1;  // -1: method default
  std::string init_from;            // state dict (.pt) to start from
};

// A method's options behind one face (docs/adding-a-method.md): the config copies them, and reads and writes
// their fields through keys(), as YAML keys of the method's own section and as CLI flags.
using ConfigTarget = std::variant<std::string*, int64_t*, double*, bool*, std::vector<double>*>;

struct OptionKey {
  std::string name;     // key in the method's YAML section
  std::string flag;     // CLI flag without dashes; methods may share one (--temperature)
  ConfigTarget target;  // the field, inside the options object
  std::string help;
  std::vector<std::string> legacy =
      {};  // other names of this key in the flat `method:` section of earlier versions
};

class MethodOptionsBase {
 public:
  virtual ~MethodOptionsBase() = default;
  virtual std::unique_ptr<MethodOptionsBase> clone() const = 0;
  virtual std::vector<OptionKey> keys() = 0;  // targets point into this object
};

// The options struct O of one method (e.g. SimCLROptions), with the function that lists its keys.
template <typename O>
class MethodOptionsOf final : public MethodOptionsBase {
 public:
  using Binder = std::vector<OptionKey> (*)(O&);
  MethodOptionsOf(O value, Binder binder) : value(std::move(value)), binder_(binder) {}
  std::unique_ptr<MethodOptionsBase> clone() const override { return std::make_unique<MethodOptionsOf>(*this); }
  std::vector<OptionKey> keys() override { return binder_(value); }
  O value;

 private:
  Binder binder_;
};

// Method name -> its options; copies deeply, so that a Config stays a value.
class MethodOptionsMap {
 public:
  MethodOptionsMap() = default;
  MethodOptionsMap(const MethodOptionsMap& other) { *this = other; }
  MethodOptionsMap& operator=(const MethodOptionsMap& other) {
    if (this == &other) return *this;
    items_.clear();
    for (const auto& [name, options] : other.items_) items_.emplace_back(name, options->clone());
    return *this;
  }
  MethodOptionsMap(MethodOptionsMap&&) = default;
  MethodOptionsMap& operator=(MethodOptionsMap&&) = default;
  void set(const std::string& name, std::unique_ptr<MethodOptionsBase> options);
  MethodOptionsBase* find(const std::string& name) const;  // nullptr when unknown
  const std::vector<std::pair<std::string, std::unique_ptr<MethodOptionsBase>>>& items() const { return items_; }

 private:
  std::vector<std::pair<std::string, std::unique_ptr<MethodOptionsBase>>> items_;  // registry order
};

struct MethodConfig {
  MethodConfig();            // every registered method's options at their defaults
  std::string name = "cds";  // --method: a registered method (the main job is CDS)
  MethodOptionsMap options;  // per method; the run uses options of `name`, config.yaml holds only those
};

// The options of method `name` in `config`, typed (O is the method's options struct). Throws std::logic_error
// when the method is unknown or its options are of another type.
template <typename O>
O& method_options(MethodConfig& method, const std::string& name) {
  auto* holder = dynamic_cast<MethodOptionsOf<O>*>(method.options.find(name));
  if (!holder) throw std::logic_error("method_options: no options of this type for method '" + name + "'");
  return holder->value;
}
template <typename O>
const O& method_options(const MethodConfig& method, const std::string& name) {
  return method_options<O>(const_cast<MethodConfig&>(method), name);
}

struct AugmentConfig {
  std::string preset;      // "" = method default
  int64_t views = -1;      // -1 = method default
  std::string multi_crop;  // e.g. "2x32,4x16"
  double crop_scale_min = 0.2;
  std::string crop = "rrc";    // rrc | contrastive
  int64_t box_warmup = 100;    // ContrastiveCrop: epochs of plain RRC before boxes are used
  int64_t box_interval = 100;  // ... boxes recomputed every N epochs
  double box_thresh = 0.1;
  double box_alpha = 0.6;
};

struct OptimConfig {
  std::string optimizer;  // sgd | lars | adam ("" = the method's default)
  double lr = -1;         // -1: method default
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = -1;         // -1: method default
  std::string schedule = "cosine";  // cosine | step | constant
  std::vector<double> milestones;   // step: epochs (fractions of `epochs` when all < 1)
  double gamma = 0.1;
  double warmup_epochs = -1;       // -1: method default (0 for most)
  double warmup_from = 0.01;       // absolute lr at the start of warm-up
  double min_lr_ratio = 0.0;       // cosine floor as a fraction of lr
  double lars_trust = -1;          // -1: method default (0.001 for most)
  std::vector<double> adam_betas;  // Adam (beta1, beta2); empty = the method's default
};

struct TrainConfig {
  int64_t epochs = 3;
  int64_t batch_size = 256;
  int64_t seed = 0;
  int64_t threads = 0;          // 0 = all cores
  int64_t loader_threads = 0;   // intra-op threads of the augmentation thread; 0 = auto (1: docs/architecture.md)
  std::string device = "auto";  // auto | cpu | cuda
  std::string out;              // "" = runs/<method>-<dataset>-<timestamp>
  int64_t eval_every = 1;       // test top-1 every N epochs
  int64_t knn_every = -1;       // kNN monitor every N epochs (0 = off; -1: 1 for self-supervised methods, 0
                                // for ce/cds, which report test accuracy)
  int64_t knn_k = 200;
  double knn_t = 0.1;
  std::string on_nan = "stop";  // stop | skip
  int64_t inject_nan_at_step = -1;
  int64_t stop_after_steps = 0;    // > 0: stop cleanly (checkpoint, exit 130) after this many global steps
  int64_t log_every = 20;          // steps between plain progress lines
  std::string tensorboard = "on";  // on | off: TensorBoard event files in the run directory
  int64_t tensorboard_every = 10;  // steps between per-step TensorBoard scalars
  bool drop_last = false;
  // Speed by default (resolve_speed_defaults): "auto" picks per machine; config.yaml records the choice.
  std::string precision = "auto";      // auto | fp32 | bf16 (CPU autocast of the training forward)
  std::string memory_format = "auto";  // auto | channels-last | contiguous
  std::string fused_bn = "on";         // on | off: fused BN + ReLU kernels where they apply (channels-last CPU)
  bool allow_emulated_bf16 = false;    // run bf16 even on a CPU without native bf16 (many times slower)
  bool bf16 = false;  // request alias of precision bf16 (the flag of earlier versions); cleared when resolved
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
  std::string section;  // YAML section (a method's own keys: the method's name)
  std::string name;     // YAML key inside the section
  std::string flag;     // CLI flag without dashes
  ConfigTarget target;
  std::string help;
  std::vector<std::string> legacy =
      {};  // method keys: their names in the flat `method:` section of earlier versions
};

// The table over a Config instance (pointers into `config`): the shared sections, then every registered
// method's section (method_registry() order). A flag may appear in several method sections.
std::vector<ConfigKey> config_keys(Config& config);

// Option `key` (its YAML name) of `method` (default: the config's method), typed, without naming the method's
// options struct: method_option<double>(config, "temperature") = 0.2. Unknown method or key -> InputError;
// another type -> std::logic_error.
ConfigTarget method_option_target(Config& config, const std::string& key, const std::string& method = "");
template <typename T>
T& method_option(Config& config, const std::string& key, const std::string& method = "") {
  auto target = method_option_target(config, key, method);
  if (auto* p = std::get_if<T*>(&target)) return **p;
  throw std::logic_error("method_option: '" + key + "' has another type");
}
template <typename T>
const T& method_option(const Config& config, const std::string& key, const std::string& method = "") {
  return method_option<T>(const_cast<Config&>(config), key, method);
}

// Loads a YAML file into `config`; unknown keys, wrong types -> InputError naming the file and the key.
void load_config_file(const std::string& path, Config& config);
// YAML text of the whole config (reloadable with --config).
std::string config_to_yaml(const Config& config);
void config_from_yaml_string(const std::string& text, Config& config, const std::string& origin);

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

}  // namespace contrastive
