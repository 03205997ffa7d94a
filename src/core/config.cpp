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

namespace contrastive {

namespace {

// The methods whose options a config holds (the registered ones, in registry order), joined.
std::string method_names(const Config& c, const std::string& separator) {
  std::string out;
  for (const auto& item : c.method.options.items()) out += (out.empty() ? "" : separator) + item.first;
  return out;
}

}  // namespace

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
       "share of the training images held out for validation; the test split is then evaluated once, at the "
       "end (-1: 0.1 for DIR/<class>/ folders, 0 for datasets with a test split)"},
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

      {"method", "name", "method", &me.name, "training method: " + method_names(c, " | ") + " (docs/methods.md)"},

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
      {"optim", "warmup_epochs", "warmup-epochs", &o.warmup_epochs,
       "linear warm-up length in epochs (per step; -1: method default)"},
      {"optim", "warmup_from", "warmup-from", &o.warmup_from, "learning rate at the start of warm-up"},
      {"optim", "min_lr_ratio", "min-lr-ratio", &o.min_lr_ratio, "cosine floor as a fraction of lr"},
      {"optim", "lars_trust", "lars-trust", &o.lars_trust, "LARS trust coefficient (-1: method default)"},
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
    throw InputError("unknown method '" + name + "' (expected one of: " + method_names(config, ", ") + ")");
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
                       "train, dist, and one per method: " + method_names(config, ", ") + ")");
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

}  // namespace contrastive
