#include "contrastive/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "contrastive/common.h"
#include "contrastive/registry.h"

namespace contrastive {

std::vector<ConfigKey> config_keys(Config& c) {
  auto& d = c.data;
  auto& m = c.model;
  auto& me = c.method;
  auto& a = c.augment;
  auto& o = c.optim;
  auto& t = c.train;
  std::vector<ConfigKey> keys{
      {"data", "dataset", "dataset", &d.dataset, "fashion-mnist | mnist | cifar10 | cifar100 | folder"},
      {"data", "path", "data", &d.path, "dataset location (default: the dataset's standard path)"},
      {"data", "train_subset", "train-subset", &d.train_subset, "train on the first N training images (0 = all)"},
      {"data", "test_subset", "test-subset", &d.test_subset, "evaluate on the first N test images (0 = all)"},
      {"data", "image_size", "image-size", &d.image_size, "folder datasets: resize to this square size"},
      {"data", "decode_threads", "decode-threads", &d.decode_threads, "folder datasets: image decoder threads"},
      {"data", "labels", "labels", &d.labels, "cifar100 label set: fine | coarse"},
      {"data", "layout", "layout", &d.layout,
       "folder datasets: auto | unlabelled | classes | train-test (docs/own-images.md)"},
      {"data", "channels", "channels", &d.channels, "folder datasets: convert every image to 1 or 3 channels"},
      {"data", "val_fraction", "val-fraction", &d.val_fraction,
       "folder DIR/<class>/ layout: share held out for validation (-1: 0.1)"},
      {"data", "strict", "strict-data", &d.strict,
       "folder datasets: stop at an unreadable file instead of skipping"},
      {"data", "cache_mb", "cache-mb", &d.cache_mb, "folder datasets: decoded-image cache budget in MiB"},
      {"data", "mean", "mean", &d.mean,
       "per-channel normalisation mean (default: the dataset's; folders: measured)"},
      {"data", "std", "std", &d.std, "per-channel normalisation std (default: the dataset's; folders: measured)"},

      {"model", "arch", "arch", &m.arch, "resnet18 | resnet34 | resnet50 | amdim"},
      {"model", "width", "width", &m.width, "base channels of the ResNet (64 in the papers)"},
      {"model", "zero_init_residual", "zero-init-residual", &m.zero_init_residual,
       "1: last BN of each block starts at 0 (-1: method default)"},
      {"model", "init_from", "init-from", &m.init_from, "initialise the network from a state dict (.pt)"},

      {"method", "name", "method", &me.name,
       "training method: " + method_registry().names_joined() + " (docs/methods.md)"},

      {"augment", "preset", "augment", &a.preset,
       "simclr-cifar | moco-v2 | cds | supervised | rrc-flip | amdim | test (default: the method's)"},
      {"augment", "views", "views", &a.views, "views per image (-1: method default)"},
      {"augment", "multi_crop", "multi-crop", &a.multi_crop, "multi-crop views, e.g. 2x32,4x16"},
      {"augment", "crop_scale_min", "crop-scale-min", &a.crop_scale_min, "RandomResizedCrop smallest area"},
      {"augment", "crop", "crop", &a.crop, "crop policy: rrc | contrastive (ContrastiveCrop)"},
      {"augment", "box_warmup", "box-warmup", &a.box_warmup, "ContrastiveCrop: epochs before boxes are used"},
      {"augment", "box_interval", "box-interval", &a.box_interval, "ContrastiveCrop: epochs between box updates"},
      {"augment", "box_thresh", "box-thresh", &a.box_thresh, "ContrastiveCrop: heat-map threshold"},
      {"augment", "box_alpha", "box-alpha", &a.box_alpha, "ContrastiveCrop: Beta(alpha, alpha) of the centre"},

      {"optim", "optimizer", "optimizer", &o.optimizer, "sgd | lars | adam (default: the method's)"},
      {"optim", "lr", "lr", &o.lr, "base learning rate (-1: method default, scaled by batch size)"},
      {"optim", "momentum", "momentum", &o.momentum, "SGD/LARS momentum"},
      {"optim", "nesterov", "nesterov", &o.nesterov, "Nesterov momentum"},
      {"optim", "weight_decay", "weight-decay", &o.weight_decay, "weight decay (-1: method default)"},
      {"optim", "schedule", "schedule", &o.schedule, "cosine | step | constant"},
      {"optim", "milestones", "milestones", &o.milestones, "step schedule: epochs (or fractions of epochs)"},
      {"optim", "gamma", "gamma", &o.gamma, "step schedule: factor at each milestone"},
      {"optim", "warmup_epochs", "warmup-epochs", &o.warmup_epochs, "linear warm-up length in epochs (per step)"},
      {"optim", "warmup_from", "warmup-from", &o.warmup_from, "learning rate at the start of warm-up"},
      {"optim", "min_lr_ratio", "min-lr-ratio", &o.min_lr_ratio, "cosine floor as a fraction of lr"},
      {"optim", "lars_trust", "lars-trust", &o.lars_trust, "LARS trust coefficient"},
      {"optim", "adam_betas", "adam-betas", &o.adam_betas, "Adam beta1,beta2 (default: the method's)"},

      {"train", "epochs", "epochs", &t.epochs, "training epochs"},
      {"train", "batch_size", "batch-size", &t.batch_size, "images per step (each gives several views)"},
      {"train", "seed", "seed", &t.seed, "random seed (a CPU run with the same seed and threads repeats)"},
      {"train", "threads", "threads", &t.threads, "intra-op threads (0 = all cores)"},
      {"train", "loader_threads", "loader-threads", &t.loader_threads,
       "intra-op threads of the augmentation thread (0 = auto: 1)"},
      {"train", "device", "device", &t.device, "auto | cpu | cuda"},
      {"train", "out", "out", &t.out, "run directory (default runs/<method>-<dataset>-<time>)"},
      {"train", "eval_every", "eval-every", &t.eval_every, "test accuracy every N epochs"},
      {"train", "knn_every", "knn-every", &t.knn_every,
       "kNN monitor every N epochs (0 = off; -1: method default)"},
      {"train", "knn_k", "knn-k", &t.knn_k, "kNN monitor neighbours"},
      {"train", "knn_t", "knn-t", &t.knn_t, "kNN monitor temperature"},
      {"train", "on_nan", "on-nan", &t.on_nan, "non-finite loss: stop | skip"},
      {"train", "inject_nan_at_step", "inject-nan-at-step", &t.inject_nan_at_step,
       "fault injection: make this global step's loss NaN"},
      {"train", "stop_after_steps", "stop-after-steps", &t.stop_after_steps,
       "stop cleanly after N global steps, as SIGTERM does (time-boxed jobs; resume later)"},
      {"train", "log_every", "log-every", &t.log_every, "steps between progress lines when not on a terminal"},
      {"train", "tensorboard", "tensorboard", &t.tensorboard,
       "on | off: TensorBoard event files in the run directory (tensorboard --logdir runs/)"},
      {"train", "tensorboard_every", "tensorboard-every", &t.tensorboard_every,
       "steps between per-step TensorBoard scalars (loss, terms, lr, images/s)"},
      {"train", "drop_last", "drop-last", &t.drop_last, "drop the last short batch of each epoch"},
      {"train", "precision", "precision", &t.precision,
       "auto | fp32 | bf16: bf16 autocast of the training forward (auto: bf16 only on CPUs with native bf16)"},
      {"train", "memory_format", "memory-format", &t.memory_format,
       "auto | channels-last | contiguous: layout of conv weights and views (auto: channels-last)"},
      {"train", "fused_bn", "fused-bn", &t.fused_bn,
       "on | off: fused BatchNorm + ReLU kernels where they apply (channels-last CPU training, float32 or bf16)"},
      {"train", "allow_emulated_bf16", "allow-emulated-bf16", &t.allow_emulated_bf16,
       "run --precision bf16 on a CPU without native bf16 (emulated: many times slower than fp32)"},
      {"train", "bf16", "bf16", &t.bf16, "same as --precision bf16 (evaluation stays fp32)"},
      {"train", "channels_last", "channels-last", &t.channels_last, "same as --memory-format channels-last"},
      {"train", "checkpoint_every_steps", "checkpoint-every-steps", &t.checkpoint_every_steps,
       "also write last.ckpt every N global steps (0 = at epoch ends only); a resume continues mid-epoch"},
      {"train", "checkpoint_every_minutes", "checkpoint-every-minutes", &t.checkpoint_every_minutes,
       "also write last.ckpt when M minutes passed since the previous checkpoint (0 = off)"},
      {"train", "keep_checkpoints", "keep-checkpoints", &t.keep_checkpoints,
       "keep the last K interval checkpoints as step-NNNNNN.ckpt beside last.ckpt (0 = none)"},
      {"train", "no_auto_resume", "no-auto-resume", &t.no_auto_resume,
       "an --out that holds a checkpoint is an error instead of being continued"},
      {"dist", "sync_bn", "sync-bn", &c.dist.sync_bn,
       "several processes: BatchNorm statistics of the global batch"},
      {"dist", "no_gather", "no-gather", &c.dist.no_gather,
       "several processes: contrastive losses use only the local batch as negatives (ablation)"},
      {"dist", "backend", "dist-backend", &c.dist.backend, "several processes: auto | gloo | nccl"},
      {"dist", "timeout", "dist-timeout", &c.dist.timeout,
       "several processes: seconds before a missing or silent rank ends the run"},
      {"dist", "bucket_mb", "bucket-mb", &c.dist.bucket_mb, "several processes: gradient all-reduce bucket (MB)"},
  };
  // Each method's own section, from the registry.
  for (const auto& [name, options] : me.options.items())
    for (auto& k : options->keys()) keys.push_back({name, k.name, k.flag, k.target, k.help, k.legacy});
  return keys;
}

ConfigTarget method_option_target(Config& config, const std::string& key, const std::string& method) {
  const std::string& name = method.empty() ? config.method.name : method;
  auto* options = config.method.options.find(name);
  if (!options)
    throw InputError("unknown method '" + name + "' (expected one of: " + method_registry().names_joined(", ") +
                     ")");
  for (auto& k : options->keys())
    if (k.name == key) return k.target;
  throw InputError("method " + name + " has no option '" + key + "'");
}

namespace {

template <typename T>
T yaml_as(const YAML::Node& node, const std::string& where) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    throw InputError(where + ": wrong type for this key");
  }
}

}  // namespace

namespace {

void assign_from_yaml(const ConfigTarget& target, const YAML::Node& v, const std::string& where) {
  std::visit(
      [&](auto* t) {
        using T = std::decay_t<decltype(*t)>;
        if constexpr (std::is_same_v<T, std::vector<double>>) {
          if (!v.IsSequence()) throw InputError(where + ": expected a list of numbers");
          t->clear();
          for (const auto& x : v) t->push_back(yaml_as<double>(x, where));
        } else {
          if (!v.IsScalar()) throw InputError(where + ": expected a single value");
          *t = yaml_as<T>(v, where);
        }
      },
      target);
}

}  // namespace

void config_from_yaml_string(const std::string& text, Config& config, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw InputError(origin + ": not valid YAML (" + e.msg + " at line " + std::to_string(e.mark.line + 1) + ")");
  }
  if (root.IsNull()) return;
  if (!root.IsMap()) throw InputError(origin + ": expected a mapping of sections (data, model, method, ...)");
  auto keys = config_keys(config);
  std::map<std::string, std::map<std::string, ConfigKey*>> table;
  for (auto& k : keys) table[k.section][k.name] = &k;
  // Earlier versions kept every method's keys in one flat `method:` section (method.temperature,
  // method.cds_lambda, ...). Those of the run's method are read into its own section; the rest never applied
  // to that method and are dropped.
  std::vector<std::pair<std::string, YAML::Node>> legacy;
  for (const auto& section : root) {
    // A key that is itself a list or mapping ("[a]: 1", "? {a: 1}") is valid YAML but names nothing.
    if (!section.first.IsScalar()) throw InputError(origin + ": section names must be plain words");
    const auto sname = section.first.as<std::string>();
    auto sit = table.find(sname);
    if (sit == table.end())
      throw InputError(origin + ": unknown section '" + sname +
                       "' (sections: data, model, method, augment, optim, " +
                       "train, dist, and one per method: " + method_registry().names_joined(", ") + ")");
    if (!section.second.IsMap()) throw InputError(origin + ": section '" + sname + "' must be a mapping");
    for (const auto& entry : section.second) {
      if (!entry.first.IsScalar())
        throw InputError(origin + ": keys in section '" + sname + "' must be plain words");
      const auto kname = entry.first.as<std::string>();
      auto kit = sit->second.find(kname);
      const std::string where = origin + ": " + sname + "." + kname;
      if (kit == sit->second.end()) {
        if (sname == "method") {
          legacy.emplace_back(kname, entry.second);
          continue;
        }
        throw InputError(origin + ": unknown key '" + sname + "." + kname + "'");
      }
      assign_from_yaml(kit->second->target, entry.second, where);
    }
  }
  if (!legacy.empty()) {
    // Names any method ever had in the flat section, so that a misspelt key is still an error.
    std::map<std::string, ConfigKey*> own;  // the run's method: legacy and current names
    std::set<std::string> known;
    for (auto& k : keys) {
      if (k.section == "method" || !config.method.options.find(k.section)) continue;
      known.insert(k.name);
      for (const auto& l : k.legacy) known.insert(l);
      if (k.section != config.method.name) continue;
      own[k.name] = &k;
      for (const auto& l : k.legacy) own[l] = &k;
    }
    for (const auto& [kname, value] : legacy) {
      auto it = own.find(kname);
      if (it != own.end()) {
        assign_from_yaml(it->second->target, value, origin + ": method." + kname);
      } else if (!known.count(kname)) {
        throw InputError(origin + ": unknown key 'method." + kname +
                         "' (a method's options go in its own section, " + "e.g. '" + config.method.name + ":')");
      }
    }
  }
  // Run directories of earlier versions have train.bf16 / train.channels_last but no precision / memory_format:
  // their explicit choice stands (a resumed fp32 run must not turn into bf16 on a bf16 machine).
  const YAML::Node train = root["train"];
  if (train && train.IsMap()) {
    // Folded in here (as resolve_speed_defaults would), so that such a run compares equal to this version's
    // resolved config of the same command.
    if (train["bf16"] && !train["precision"]) {
      config.train.precision = config.train.bf16 ? "bf16" : "fp32";
      config.train.bf16 = false;
    }
    if (train["channels_last"] && !train["memory_format"]) {
      config.train.memory_format = config.train.channels_last ? "channels-last" : "contiguous";
      config.train.channels_last = false;
    }
  }
}

void load_config_file(const std::string& path, Config& config) {
  std::ifstream in(path);
  if (!in) throw InputError(path + ": cannot open config file");
  std::stringstream ss;
  ss << in.rdbuf();
  config_from_yaml_string(ss.str(), config, path);
}

namespace {

// The shortest decimal that reads back as the same double (0.07, not 0.070000000000000007).
std::string short_double(double x) {
  if (!std::isfinite(x)) return std::isnan(x) ? ".nan" : (x > 0 ? ".inf" : "-.inf");
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), x);
  std::string s(buf, r.ptr);
  // Keep it a float to a YAML reader: 1 -> 1.0, 1e-05 stays.
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

std::string config_to_yaml(const Config& config) {
  Config copy = config;
  auto keys = config_keys(copy);
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::string current;
  for (const auto& k : keys) {
    // A method's section: only the run's own method.
    if (copy.method.options.find(k.section) && k.section != copy.method.name) continue;
    if (k.section != current) {
      if (!current.empty()) out << YAML::EndMap;
      out << YAML::Key << k.section << YAML::Value << YAML::BeginMap;
      current = k.section;
    }
    out << YAML::Key << k.name << YAML::Value;
    std::visit(
        [&](auto* target) {
          using T = std::decay_t<decltype(*target)>;
          if constexpr (std::is_same_v<T, std::vector<double>>) {
            out << YAML::Flow << YAML::BeginSeq;
            for (double x : *target) out << short_double(x);
            out << YAML::EndSeq;
          } else if constexpr (std::is_same_v<T, std::string>) {
            out << YAML::DoubleQuoted << *target;
          } else if constexpr (std::is_same_v<T, double>) {
            out << short_double(*target);
          } else {
            out << *target;
          }
        },
        k.target);
  }
  if (!current.empty()) out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

const std::vector<std::string>& resume_mutable_keys() {
  static const std::vector<std::string> keys{"train.epochs",
                                             "train.threads",
                                             "train.device",
                                             "train.log_every",
                                             "train.tensorboard",
                                             "train.tensorboard_every",
                                             "train.stop_after_steps",
                                             "train.out",
                                             "train.checkpoint_every_steps",
                                             "train.checkpoint_every_minutes",
                                             "train.keep_checkpoints",
                                             "train.no_auto_resume",
                                             "dist.timeout"};
  return keys;
}

void copy_config_keys(const Config& from, Config& to, const std::vector<std::string>& keys) {
  Config src = from;
  auto a = config_keys(src), b = config_keys(to);
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::find(keys.begin(), keys.end(), a[i].section + "." + a[i].name) == keys.end()) continue;
    std::visit([&](auto* s) { *std::get<std::decay_t<decltype(s)>>(b[i].target) = *s; }, a[i].target);
  }
}

std::string first_config_difference(const Config& a, const Config& b, const std::vector<std::string>& ignored,
                                    const std::string& name_a, const std::string& name_b) {
  // Both through the same YAML emitter and parser, so that a value a checkpoint stored compares equal to the
  // value it came from.
  Config ra, rb;
  config_from_yaml_string(config_to_yaml(a), ra, name_a);
  config_from_yaml_string(config_to_yaml(b), rb, name_b);
  auto ka = config_keys(ra), kb = config_keys(rb);
  for (size_t i = 0; i < ka.size(); ++i) {
    if (std::find(ignored.begin(), ignored.end(), ka[i].section + "." + ka[i].name) != ignored.end()) continue;
    std::string diff;
    std::visit(
        [&](auto* x) {
          const auto* y = std::get<std::decay_t<decltype(x)>>(kb[i].target);
          if (*x == *y) return;
          auto text = [](const auto& v, int precision) {
            using T = std::decay_t<decltype(v)>;
            std::ostringstream ss;
            ss << std::setprecision(precision);
            if constexpr (std::is_same_v<T, std::vector<double>>) {
              for (size_t j = 0; j < v.size(); ++j) ss << (j ? "," : "") << v[j];
            } else if constexpr (std::is_same_v<T, std::string>) {
              ss << "'" << v << "'";
            } else if constexpr (std::is_same_v<T, bool>) {
              ss << (v ? "on" : "off");
            } else {
              ss << v;
            }
            return ss.str();
          };
          // Six digits unless they would show two different numbers alike.
          const int precision = text(*x, 6) == text(*y, 6) ? 17 : 6;
          diff = "--" + ka[i].flag + " (" + text(*x, precision) + " in " + name_a + ", " + text(*y, precision) +
                 " in " + name_b + ")";
        },
        ka[i].target);
    if (!diff.empty()) return diff;
  }
  return "";
}

namespace {

// Scales a reference learning rate (given at batch `ref_batch`) linearly to this run's batch.
double scaled_lr(double lr_ref, int64_t ref_batch, int64_t batch) {
  return lr_ref * static_cast<double>(batch) / static_cast<double>(ref_batch);
}

}  // namespace

void resolve_defaults(Config& c, int64_t world_size) {
  const MethodInfo& info = method_info(c);
  const MethodDefaults& d = info.defaults;
  auto& o = c.optim;
  auto& a = c.augment;
  const int64_t bs = c.train.batch_size * std::max<int64_t>(1, world_size);  // global batch
  auto set_if = [](auto& field, auto placeholder, auto value) {
    if (field == placeholder) field = value;
  };
  // The method's reference recipe (docs/methods.md): its learning rate scaled linearly to the global batch.
  set_if(o.lr, -1.0, d.lr_batch > 0 ? scaled_lr(d.lr, d.lr_batch, bs) : d.lr);
  set_if(o.weight_decay, -1.0, d.weight_decay);
  set_if(o.optimizer, std::string(), d.optimizer);
  if (o.adam_betas.empty()) o.adam_betas = d.adam_betas;
  set_if(a.preset, std::string(), d.augment);
  set_if(a.views, int64_t{-1}, d.views);
  set_if(c.model.zero_init_residual, int64_t{-1}, int64_t{d.zero_init_residual ? 1 : 0});
  set_if(c.train.knn_every, int64_t{-1}, int64_t{info.classifier ? 0 : 1});
  if (info.full_batches) c.train.drop_last = true;
}

bool bf16_keeps_accuracy(const std::string& method) {
  // Each method says whether its bf16 accuracy was measured (MethodInfo::bf16_measured, docs/usage.md, "Speed by
  // default" has the figures).
  const auto* info = method_registry().find(method);
  return info && info->bf16_measured;
}

std::string resolve_speed_defaults(Config& c, const SpeedContext& ctx) {
  auto& t = c.train;
  if (t.bf16) {
    if (t.precision == "fp32") throw InputError("--bf16 contradicts --precision fp32 (give one of them)");
    t.precision = "bf16";
  }
  if (t.channels_last) {
    if (t.memory_format == "contiguous")
      throw InputError("--channels-last contradicts --memory-format contiguous (give one of them)");
    t.memory_format = "channels-last";
  }
  t.bf16 = t.channels_last = false;
  if (t.precision != "auto" && t.precision != "fp32" && t.precision != "bf16")
    throw InputError("invalid value for --precision: '" + t.precision + "' (expected auto, fp32 or bf16)");
  if (t.memory_format != "auto" && t.memory_format != "channels-last" && t.memory_format != "contiguous")
    throw InputError("invalid value for --memory-format: '" + t.memory_format +
                     "' (expected auto, channels-last or contiguous)");
  std::string why;
  if (t.precision == "auto") {
    if (ctx.cuda) {
      t.precision = "fp32";
      why = "fp32 (CUDA: bf16 autocast is CPU-only here)";
    } else if (!ctx.native_bf16) {
      t.precision = "fp32";
      why = "fp32 (auto: this CPU has no native bf16, AVX512-BF16 or AMX-BF16)";
    } else if (!bf16_keeps_accuracy(c.method.name)) {
      t.precision = "fp32";
      why = "fp32 (auto: bf16 accuracy not yet measured for " + c.method.name + "; --precision bf16 to try)";
    } else {
      t.precision = "bf16";
      why = "bf16 autocast (auto: native bf16 on this CPU, accuracy measured for " + c.method.name +
            "; --precision fp32 to turn off)";
    }
  } else {
    why = t.precision + " (asked for)";
  }
  if (t.precision == "bf16" && ctx.cuda)
    throw InputError("invalid value for --precision: bf16 (CPU autocast only; CUDA runs use fp32 here)");
  if (t.precision == "bf16" && !ctx.cuda && !ctx.native_bf16 && !t.allow_emulated_bf16)
    throw InputError(
        "--precision bf16: this CPU (" + ctx.cpu_model +
        ") has no native bfloat16 (it needs AVX512-BF16 or AMX-BF16), so bf16 would be emulated and "
        "many times slower than fp32; use --precision fp32, or --allow-emulated-bf16 to run it anyway");
  std::string layout;
  const bool narrow = c.model.width < kMinChannelsLastWidth;
  if (t.memory_format == "auto" && narrow) {
    t.memory_format = "contiguous";
    layout = "contiguous (auto: width " + std::to_string(c.model.width) + " < " +
             std::to_string(kMinChannelsLastWidth) + ", too narrow for oneDNN's AVX2 channels-last kernels)";
  } else if (t.memory_format == "auto") {
    t.memory_format = "channels-last";
    layout = "channels-last (auto: oneDNN's faster layout; --memory-format contiguous to turn off)";
  } else {
    layout = t.memory_format + " (asked for)";
  }
  if (t.memory_format == "channels-last" && narrow && !ctx.cuda && !ctx.avx512)
    throw InputError("--memory-format channels-last with --width " + std::to_string(c.model.width) +
                     ": on this CPU (" + ctx.cpu_model +
                     ", no AVX-512) oneDNN's channels-last backward of a strided 1x1 convolution "
                     "with fewer than " +
                     std::to_string(kMinChannelsLastWidth) +
                     " input channels corrupts memory (a crash or a hang); use --width >= " +
                     std::to_string(kMinChannelsLastWidth) + " or --memory-format contiguous");
  // The augmentation thread runs next to the model step's intra-op team: with a team of its own on every core
  // the two contend for the same cores (docs/architecture.md, "Threads").
  std::string loader;
  if (t.loader_threads == 0) {
    t.loader_threads = 1;
    loader = "1 (auto: the augmentation thread stays off the step's cores; --loader-threads N to change)";
  } else {
    loader = std::to_string(t.loader_threads) + " (asked for)";
  }
  std::string fused;
  if (t.fused_bn == "off")
    fused = "off (asked for)";
  else if (t.memory_format == "channels-last" && !ctx.cuda)
    fused = "on (BatchNorm + ReLU in one kernel; --fused-bn off to turn off)";
  else
    fused = "on, but unused here (it needs channels-last on the CPU)";
  return "precision " + why + "; memory format " + layout + "; loader threads " + loader + "; fused BN " + fused;
}

namespace {

void require(bool ok, const std::string& key, const std::string& what) {
  if (!ok) throw InputError("invalid value for " + key + ": " + what);
}

template <typename T>
std::string show(const T& v) {
  std::ostringstream ss;
  ss << v;
  return ss.str();
}

void require_one_of(const std::string& key, const std::string& value, const std::set<std::string>& allowed) {
  if (allowed.count(value)) return;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  throw InputError("invalid value for " + key + ": '" + value + "' (expected one of: " + list + ")");
}

}  // namespace

void validate(const Config& c, int64_t world_size) {
  // First: the default learning rate is derived from the batch size.
  require(c.train.batch_size >= 1, "--batch-size", show(c.train.batch_size) + " (must be >= 1)");
  require_one_of("--dataset", c.data.dataset, {"fashion-mnist", "mnist", "cifar10", "cifar100", "folder"});
  require_one_of("--labels", c.data.labels, {"fine", "coarse"});
  require(c.data.train_subset >= 0, "--train-subset", show(c.data.train_subset) + " (must be >= 0)");
  require(c.data.test_subset >= 0, "--test-subset", show(c.data.test_subset) + " (must be >= 0)");
  require(c.data.image_size >= 0, "--image-size", show(c.data.image_size) + " (must be >= 0)");
  require(c.data.decode_threads >= 1, "--decode-threads", show(c.data.decode_threads) + " (must be >= 1)");
  require_one_of("--layout", c.data.layout, {"auto", "unlabelled", "classes", "train-test"});
  require(c.data.channels == 0 || c.data.channels == 1 || c.data.channels == 3, "--channels",
          show(c.data.channels) + " (must be 1 or 3)");
  require(c.data.val_fraction == -1 || (c.data.val_fraction >= 0 && c.data.val_fraction < 1), "--val-fraction",
          show(c.data.val_fraction) + " (must be in [0, 1))");
  require(c.data.cache_mb >= 0, "--cache-mb", show(c.data.cache_mb) + " (must be >= 0)");
  require(c.data.mean.size() == c.data.std.size(), "--mean",
          "gives " + std::to_string(c.data.mean.size()) + " values but --std gives " +
              std::to_string(c.data.std.size()));
  for (double v : c.data.std) require(v > 0, "--std", show(v) + " (must be > 0)");
  const MethodInfo& info = method_info(c);  // unknown --method: the list of registered ones
  {
    // The CIFAR ResNets, and the backbones that a method brings (and only it trains).
    std::set<std::string> archs{"resnet18", "resnet34", "resnet50"};
    for (const auto& m : method_registry().all())
      if (!m.arch.empty()) archs.insert(m.arch);
    require_one_of("--arch", c.model.arch, archs);
    if (!info.arch.empty()) {
      require(c.model.arch == info.arch, "--arch",
              "'" + c.model.arch + "' (method " + info.name + " needs --arch " + info.arch + ")");
    } else {
      for (const auto& m : method_registry().all())
        require(m.arch.empty() || c.model.arch != m.arch, "--arch",
                "'" + m.arch + "' is only for --method " + m.name);
    }
  }
  require(c.model.width >= 1 && c.model.width <= 1024, "--width", show(c.model.width) + " (must be in 1..1024)");
  const auto& a = c.augment;
  {
    const auto& presets = augment_preset_names();
    require_one_of("--augment", a.preset, std::set<std::string>(presets.begin(), presets.end()));
  }
  require(a.views >= 1 && a.views <= 16, "--views", show(a.views) + " (must be in 1..16)");
  require(a.crop_scale_min > 0 && a.crop_scale_min <= 1, "--crop-scale-min", show(a.crop_scale_min));
  require_one_of("--crop", a.crop, {"rrc", "contrastive"});
  require(a.box_warmup >= 0, "--box-warmup", show(a.box_warmup));
  require(a.box_interval >= 1, "--box-interval", show(a.box_interval) + " (must be >= 1)");
  require(a.box_thresh >= 0 && a.box_thresh < 1, "--box-thresh", show(a.box_thresh) + " (must be in [0, 1))");
  require(a.box_alpha > 0, "--box-alpha", show(a.box_alpha) + " (must be > 0)");
  if (a.multi_crop.empty()) {
    const std::string range = info.min_views == info.max_views
                                  ? "exactly " + show(info.min_views)
                                  : show(info.min_views) + ".." + show(info.max_views);
    require(a.views >= info.min_views && a.views <= info.max_views, "--views",
            show(a.views) + " (method " + info.name + " takes " + range + " views)");
  }
  require(a.multi_crop.empty() || info.multi_crop, "--multi-crop",
          a.multi_crop + " (method " + info.name + " does not take multi-crop views)");
  if (!a.multi_crop.empty()) {
    int64_t n = 0;
    for (const auto& c : parse_multi_crop(a.multi_crop)) n += c.first;
    require(n >= 2, "--multi-crop", a.multi_crop + " (needs at least 2 views in all)");
  }

  const auto& o = c.optim;
  require_one_of("--optimizer", o.optimizer, {"sgd", "lars", "adam"});
  require(o.adam_betas.size() == 2, "--adam-betas", "needs 2 numbers (beta1,beta2)");
  for (double beta : o.adam_betas)
    require(beta >= 0 && beta < 1, "--adam-betas", show(beta) + " (must be in [0, 1))");
  require(o.lr > 0 && std::isfinite(o.lr), "--lr", show(o.lr) + " (must be > 0)");
  require(o.momentum >= 0 && o.momentum < 1, "--momentum", show(o.momentum) + " (must be in [0, 1))");
  require(o.weight_decay >= 0, "--weight-decay", show(o.weight_decay) + " (must be >= 0)");
  require_one_of("--schedule", o.schedule, {"cosine", "step", "constant"});
  require(o.gamma > 0, "--gamma", show(o.gamma) + " (must be > 0)");
  require(o.warmup_epochs >= 0, "--warmup-epochs", show(o.warmup_epochs));
  require(o.warmup_from >= 0, "--warmup-from", show(o.warmup_from));
  require(o.min_lr_ratio >= 0 && o.min_lr_ratio <= 1, "--min-lr-ratio", show(o.min_lr_ratio));
  require(o.lars_trust > 0, "--lars-trust", show(o.lars_trust));
  for (double ms : o.milestones) require(ms > 0, "--milestones", show(ms) + " (must be > 0)");

  const auto& t = c.train;
  require(t.epochs >= 1, "--epochs", show(t.epochs) + " (must be >= 1)");
  require(t.batch_size >= 1, "--batch-size", show(t.batch_size) + " (must be >= 1)");
  require(t.batch_size >= info.min_batch, "--batch-size",
          show(t.batch_size) + " (method " + info.name + " needs at least " + show(info.min_batch) +
              " images per batch)");
  require(t.threads >= 0, "--threads", show(t.threads) + " (must be >= 0)");
  require(t.loader_threads >= 0, "--loader-threads", show(t.loader_threads) + " (must be >= 0)");
  require_one_of("--device", t.device, {"auto", "cpu", "cuda"});
  require_one_of("--precision", t.precision, {"auto", "fp32", "bf16"});
  require_one_of("--memory-format", t.memory_format, {"auto", "channels-last", "contiguous"});
  require_one_of("--fused-bn", t.fused_bn, {"on", "off"});
  require(!((t.bf16 || t.precision == "bf16") && t.device == "cuda"), "--precision",
          "bf16 (CPU autocast only; CUDA runs use fp32 here)");
  require_one_of("--dist-backend", c.dist.backend, {"auto", "gloo", "nccl"});
  require(c.dist.timeout > 0, "--dist-timeout", show(c.dist.timeout) + " (must be > 0 seconds)");
  require(c.dist.bucket_mb > 0, "--bucket-mb", show(c.dist.bucket_mb) + " (must be > 0)");
  require(t.eval_every >= 1, "--eval-every", show(t.eval_every) + " (must be >= 1)");
  require(t.knn_every >= 0, "--knn-every", show(t.knn_every));
  require(t.knn_k >= 1, "--knn-k", show(t.knn_k) + " (must be >= 1)");
  require(t.knn_t > 0, "--knn-t", show(t.knn_t) + " (must be > 0)");
  require_one_of("--on-nan", t.on_nan, {"stop", "skip"});
  require(t.stop_after_steps >= 0, "--stop-after-steps", show(t.stop_after_steps));
  require(t.log_every >= 1, "--log-every", show(t.log_every));
  require_one_of("--tensorboard", t.tensorboard, {"on", "off"});
  require(t.tensorboard_every >= 1, "--tensorboard-every", show(t.tensorboard_every));
  require(t.checkpoint_every_steps >= 0, "--checkpoint-every-steps",
          show(t.checkpoint_every_steps) + " (must be >= 0)");
  require(t.checkpoint_every_minutes >= 0 && std::isfinite(t.checkpoint_every_minutes),
          "--checkpoint-every-minutes", show(t.checkpoint_every_minutes) + " (must be >= 0)");
  require(t.keep_checkpoints >= 0, "--keep-checkpoints", show(t.keep_checkpoints) + " (must be >= 0)");
  // Last: the method's own options, and the shared settings it depends on.
  if (info.validate) info.validate(c, world_size);
}

std::vector<std::pair<int64_t, int64_t>> parse_multi_crop(const std::string& spec) {
  std::vector<std::pair<int64_t, int64_t>> out;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto x = item.find('x');
    int64_t n = 0, size = 0;
    try {
      size_t used_n = 0, used_s = 0;
      if (x == std::string::npos) throw std::invalid_argument("no x");
      n = std::stoll(item.substr(0, x), &used_n);
      size = std::stoll(item.substr(x + 1), &used_s);
      if (used_n != x || used_s != item.size() - x - 1) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      throw InputError("multi-crop: bad entry '" + item + "' in '" + spec + "' (expected e.g. 2x32,4x16)");
    }
    if (n < 1 || size < 1) throw InputError("multi-crop: counts and sizes must be positive in '" + spec + "'");
    out.emplace_back(n, size);
  }
  if (out.empty()) throw InputError("multi-crop: empty spec");
  return out;
}

}  // namespace contrastive
