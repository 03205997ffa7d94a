#include "contrastive/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
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

std::vector<ConfigKey> config_keys(Config& c) {
  auto& d = c.data;
  auto& m = c.model;
  auto& me = c.method;
  auto& a = c.augment;
  auto& o = c.optim;
  auto& t = c.train;
  return {
      {"data", "dataset", "dataset", &d.dataset, "fashion-mnist | mnist | cifar10 | cifar100 | folder"},
      {"data", "path", "data", &d.path, "dataset location (default: the dataset's standard path)"},
      {"data", "train_subset", "train-subset", &d.train_subset, "train on the first N training images (0 = all)"},
      {"data", "test_subset", "test-subset", &d.test_subset, "evaluate on the first N test images (0 = all)"},
      {"data", "image_size", "image-size", &d.image_size, "folder datasets: resize to this square size"},
      {"data", "decode_threads", "decode-threads", &d.decode_threads, "folder datasets: image decoder threads"},
      {"data", "labels", "labels", &d.labels, "cifar100 label set: fine | coarse"},

      {"model", "arch", "arch", &m.arch, "resnet18 | resnet34 | resnet50 | amdim"},
      {"model", "width", "width", &m.width, "base channels of the ResNet (64 in the papers)"},
      {"model", "zero_init_residual", "zero-init-residual", &m.zero_init_residual,
       "1: last BN of each block starts at 0 (-1: method default)"},
      {"model", "init_from", "init-from", &m.init_from, "initialise the network from a state dict (.pt)"},

      {"method", "name", "method", &me.name, "ce | supcon | simclr | moco | simsiam | byol | amdim | cds"},
      {"method", "temperature", "temperature", &me.temperature, "contrastive temperature (-1: method default)"},
      {"method", "base_temperature", "base-temperature", &me.base_temperature,
       "SupCon base temperature; the loss is scaled by T/T_base (-1: method default)"},
      {"method", "proj_hidden", "proj-hidden", &me.proj_hidden, "projection head hidden size (-1: default)"},
      {"method", "proj_dim", "proj-dim", &me.proj_dim, "projection head output size (-1: default)"},
      {"method", "proj_bn", "proj-bn", &me.proj_bn,
       "supcon/simclr/moco: BatchNorm after the projection head's hidden layer (the SimCLR paper's head)"},
      {"method", "pred_hidden", "pred-hidden", &me.pred_hidden, "predictor hidden size (-1: default)"},
      {"method", "label_smoothing", "label-smoothing", &me.label_smoothing, "cross-entropy label smoothing"},
      {"method", "queue_size", "queue-size", &me.queue_size, "MoCo queue length K (-1: default)"},
      {"method", "momentum_ema", "ema", &me.momentum_ema, "MoCo/BYOL target momentum (-1: default)"},
      {"method", "symmetric", "symmetric", &me.symmetric, "MoCo: symmetric loss"},
      {"method", "bn_splits", "bn-splits", &me.bn_splits, "MoCo: SplitBatchNorm splits (-1: default)"},
      {"method", "fix_pred_lr", "fix-pred-lr", &me.fix_pred_lr, "SimSiam/BYOL: keep the predictor at the base lr"},
      {"method", "no_stop_grad", "no-stop-grad", &me.no_stop_grad, "SimSiam ablation: no stop-gradient"},
      {"method", "negatives", "negatives", &me.negatives, "supcon/simclr negatives: in-batch | memory-bank"},
      {"method", "bank_negatives", "bank-negatives", &me.bank_negatives, "memory bank: negatives per step"},
      {"method", "bank_momentum", "bank-momentum", &me.bank_momentum, "memory bank: update momentum"},
      {"method", "cds_lambda", "cds-lambda", &me.cds_lambda, "CDS: weight of the contrastive terms"},
      {"method", "cds_weights", "cds-weights", &me.cds_weights,
       "CDS: per-stage multipliers of lambda, stages 1..4 (0 drops a stage)"},
      {"method", "cds_loss", "cds-loss", &me.cds_loss, "CDS contrastive loss: supcon | simclr"},
      {"method", "cds_head", "cds-head", &me.cds_head, "CDS auxiliary heads: sepconv | mlp"},
      {"method", "labeled_fraction", "labeled-fraction", &me.labeled_fraction,
       "semi-supervised: fraction of labelled training images"},
      {"method", "labeled_per_class", "labeled-per-class", &me.labeled_per_class,
       "semi-supervised: labelled images per class (overrides the fraction)"},
      {"method", "teacher", "teacher", &me.teacher, "distillation: teacher checkpoint"},
      {"method", "kd_temperature", "kd-temperature", &me.kd_temperature, "distillation: KD temperature"},
      {"method", "kd_weight", "kd-weight", &me.kd_weight, "distillation: weight of the KD term"},
      {"method", "feat_weight", "feat-weight", &me.feat_weight, "distillation: weight of the feature distance"},
      {"method", "teacher_train_bn", "teacher-train-bn", &me.teacher_train_bn,
       "distillation: teacher BN uses batch statistics (the reference)"},

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

      {"optim", "optimizer", "optimizer", &o.optimizer, "sgd | lars | adam"},
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

      {"train", "epochs", "epochs", &t.epochs, "training epochs"},
      {"train", "batch_size", "batch-size", &t.batch_size, "images per step (each gives several views)"},
      {"train", "seed", "seed", &t.seed, "random seed (a CPU run with the same seed and threads repeats)"},
      {"train", "threads", "threads", &t.threads, "intra-op threads (0 = all cores)"},
      {"train", "device", "device", &t.device, "auto | cpu | cuda"},
      {"train", "out", "out", &t.out, "run directory (default runs/<method>-<dataset>-<time>)"},
      {"train", "eval_every", "eval-every", &t.eval_every, "test accuracy every N epochs"},
      {"train", "knn_every", "knn-every", &t.knn_every, "kNN monitor every N epochs (0 = off; -1: method default)"},
      {"train", "knn_k", "knn-k", &t.knn_k, "kNN monitor neighbours"},
      {"train", "knn_t", "knn-t", &t.knn_t, "kNN monitor temperature"},
      {"train", "on_nan", "on-nan", &t.on_nan, "non-finite loss: stop | skip"},
      {"train", "inject_nan_at_step", "inject-nan-at-step", &t.inject_nan_at_step,
       "fault injection: make this global step's loss NaN"},
      {"train", "stop_after_steps", "stop-after-steps", &t.stop_after_steps,
       "stop cleanly after N global steps, as SIGTERM does (time-boxed jobs; resume later)"},
      {"train", "log_every", "log-every", &t.log_every, "steps between progress lines when not on a terminal"},
      {"train", "drop_last", "drop-last", &t.drop_last, "drop the last short batch of each epoch"},
      {"train", "precision", "precision", &t.precision,
       "auto | fp32 | bf16: bf16 autocast of the training forward (auto: bf16 only on CPUs with native bf16)"},
      {"train", "memory_format", "memory-format", &t.memory_format,
       "auto | channels-last | contiguous: layout of conv weights and views (auto: channels-last)"},
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
      {"dist", "sync_bn", "sync-bn", &c.dist.sync_bn, "several processes: BatchNorm statistics of the global batch"},
      {"dist", "no_gather", "no-gather", &c.dist.no_gather,
       "several processes: contrastive losses use only the local batch as negatives (ablation)"},
      {"dist", "backend", "dist-backend", &c.dist.backend, "several processes: auto | gloo | nccl"},
      {"dist", "timeout", "dist-timeout", &c.dist.timeout,
       "several processes: seconds before a missing or silent rank ends the run"},
      {"dist", "bucket_mb", "bucket-mb", &c.dist.bucket_mb, "several processes: gradient all-reduce bucket (MB)"},
  };
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
  for (const auto& section : root) {
    // A key that is itself a list or mapping ("[a]: 1", "? {a: 1}") is valid YAML but names nothing.
    if (!section.first.IsScalar()) throw InputError(origin + ": section names must be plain words");
    const auto sname = section.first.as<std::string>();
    auto sit = table.find(sname);
    if (sit == table.end()) throw InputError(origin + ": unknown section '" + sname + "'");
    if (!section.second.IsMap()) throw InputError(origin + ": section '" + sname + "' must be a mapping");
    for (const auto& entry : section.second) {
      if (!entry.first.IsScalar()) throw InputError(origin + ": keys in section '" + sname + "' must be plain words");
      const auto kname = entry.first.as<std::string>();
      auto kit = sit->second.find(kname);
      const std::string where = origin + ": " + sname + "." + kname;
      if (kit == sit->second.end()) throw InputError(origin + ": unknown key '" + sname + "." + kname + "'");
      const YAML::Node& v = entry.second;
      std::visit(
          [&](auto* target) {
            using T = std::decay_t<decltype(*target)>;
            if constexpr (std::is_same_v<T, std::vector<double>>) {
              if (!v.IsSequence()) throw InputError(where + ": expected a list of numbers");
              target->clear();
              for (const auto& x : v) target->push_back(yaml_as<double>(x, where));
            } else {
              if (!v.IsScalar()) throw InputError(where + ": expected a single value");
              *target = yaml_as<T>(v, where);
            }
          },
          kit->second->target);
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

std::string config_to_yaml(const Config& config) {
  Config copy = config;
  auto keys = config_keys(copy);
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::string current;
  for (const auto& k : keys) {
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
            for (double x : *target) out << x;
            out << YAML::EndSeq;
          } else if constexpr (std::is_same_v<T, std::string>) {
            out << YAML::DoubleQuoted << *target;
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
  auto& me = c.method;
  auto& o = c.optim;
  auto& a = c.augment;
  const std::string& m = me.name;
  const int64_t bs = c.train.batch_size * std::max<int64_t>(1, world_size);  // global batch
  auto set_if = [](auto& field, auto placeholder, auto value) {
    if (field == placeholder) field = value;
  };
  // Reference CIFAR recipes (docs/methods.md): learning rates are the reference's, scaled linearly to the batch.
  if (m == "ce") {
    set_if(o.lr, -1.0, scaled_lr(0.1, 128, bs));  // CDS baseline: 0.1 at 128
    set_if(o.weight_decay, -1.0, 5e-4);
    set_if(a.preset, std::string(), std::string("supervised"));
    set_if(a.views, int64_t{-1}, int64_t{1});
  } else if (m == "cds") {
    set_if(o.lr, -1.0, scaled_lr(0.1, 128, bs));  // §2: 0.1 at batch 128, wd 5e-4
    set_if(o.weight_decay, -1.0, 5e-4);
    set_if(me.temperature, -1.0, 0.07);
    set_if(me.base_temperature, -1.0, 0.07);
    set_if(a.preset, std::string(), std::string("cds"));
    set_if(a.views, int64_t{-1}, int64_t{2});
  } else if (m == "supcon" || m == "simclr") {
    set_if(o.lr, -1.0, scaled_lr(0.5, 1024, bs));  // §3 README recipes: 0.5 at 1024
    set_if(o.weight_decay, -1.0, 1e-4);
    set_if(me.temperature, -1.0, m == "supcon" ? 0.1 : 0.5);
    set_if(me.base_temperature, -1.0, 0.07);
    set_if(me.proj_dim, int64_t{-1}, int64_t{128});
    set_if(a.preset, std::string(), std::string("simclr-cifar"));
    set_if(a.views, int64_t{-1}, int64_t{2});
  } else if (m == "moco") {
    set_if(o.lr, -1.0, scaled_lr(0.06, 512, bs));  // §4 CIFAR colab: 0.06 at 512, wd 5e-4
    set_if(o.weight_decay, -1.0, 5e-4);
    set_if(me.temperature, -1.0, 0.1);
    set_if(me.queue_size, int64_t{-1}, int64_t{4096});
    set_if(me.momentum_ema, -1.0, 0.99);
    set_if(me.bn_splits, int64_t{-1}, int64_t{8});
    set_if(me.proj_dim, int64_t{-1}, int64_t{128});
    set_if(a.preset, std::string(), std::string("simclr-cifar"));
    set_if(a.views, int64_t{-1}, int64_t{2});
    c.train.drop_last = true;  // the queue and SplitBatchNorm need full batches
  } else if (m == "simsiam") {
    set_if(o.lr, -1.0, scaled_lr(0.03, 256, bs));  // §5 CIFAR appendix: 0.03*bs/256, wd 5e-4
    set_if(o.weight_decay, -1.0, 5e-4);
    set_if(me.proj_dim, int64_t{-1}, int64_t{512});  // §6 ContrastiveCrop CIFAR: 512 / 128
    set_if(me.pred_hidden, int64_t{-1}, int64_t{128});
    set_if(c.model.zero_init_residual, int64_t{-1}, int64_t{1});
    set_if(a.preset, std::string(), std::string("simclr-cifar"));
    set_if(a.views, int64_t{-1}, int64_t{2});
  } else if (m == "byol") {
    set_if(o.lr, -1.0, scaled_lr(0.5, 512, bs));  // §6 ContrastiveCrop CIFAR: lr 0.5 at 512, m 0.996
    set_if(o.weight_decay, -1.0, 1e-4);
    set_if(me.momentum_ema, -1.0, 0.996);
    set_if(me.proj_hidden, int64_t{-1}, int64_t{512});
    set_if(me.proj_dim, int64_t{-1}, int64_t{128});
    set_if(me.pred_hidden, int64_t{-1}, int64_t{512});
    set_if(a.preset, std::string(), std::string("simclr-cifar"));
    set_if(a.views, int64_t{-1}, int64_t{2});
  } else if (m == "amdim") {
    if (o.optimizer == "sgd") o.optimizer = "adam";  // §7: Adam 2e-4, wd 1e-5
    set_if(o.lr, -1.0, 2e-4);
    set_if(o.weight_decay, -1.0, 1e-5);
    set_if(a.preset, std::string(), std::string("amdim"));
    set_if(a.views, int64_t{-1}, int64_t{2});
  }
  set_if(c.model.zero_init_residual, int64_t{-1}, int64_t{0});
  set_if(c.train.knn_every, int64_t{-1}, int64_t{m == "ce" || m == "cds" ? 0 : 1});
  set_if(me.temperature, -1.0, 0.1);
  set_if(me.base_temperature, -1.0, me.temperature);
  set_if(me.proj_dim, int64_t{-1}, int64_t{128});
  set_if(me.pred_hidden, int64_t{-1}, int64_t{512});
  set_if(me.queue_size, int64_t{-1}, int64_t{4096});
  set_if(me.momentum_ema, -1.0, 0.99);
  set_if(me.bn_splits, int64_t{-1}, int64_t{1});
  set_if(o.lr, -1.0, 0.1);
  set_if(o.weight_decay, -1.0, 1e-4);
  set_if(a.preset, std::string(), std::string("simclr-cifar"));
  set_if(a.views, int64_t{-1}, int64_t{2});
}

bool bf16_keeps_accuracy(const std::string& method) {
  // ce: measured against fp32 at the same budget (90.21 vs 89.97%, README "Benchmark"). cds, supcon, simclr:
  // their losses stay fp32 under the autocast and their README runs (SimCLR 88.3% linear, CDS 90.97%) were
  // trained in bf16, but no same-budget fp32 A/B exists for them (README "Speed by default" says so).
  // moco, simsiam, byol, amdim: never run in bf16.
  return method == "ce" || method == "cds" || method == "simclr" || method == "supcon";
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
    throw InputError("--precision bf16: this CPU (" + ctx.cpu_model +
                     ") has no native bfloat16 (it needs AVX512-BF16 or AMX-BF16), so bf16 would be emulated and "
                     "many times slower than fp32; use --precision fp32, or --allow-emulated-bf16 to run it anyway");
  std::string layout;
  if (t.memory_format == "auto") {
    t.memory_format = "channels-last";
    layout = "channels-last (auto: oneDNN's faster layout; --memory-format contiguous to turn off)";
  } else {
    layout = t.memory_format + " (asked for)";
  }
  return "precision " + why + "; memory format " + layout;
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
  const auto& me = c.method;
  // First: the default learning rate is derived from the batch size.
  require(c.train.batch_size >= 1, "--batch-size", show(c.train.batch_size) + " (must be >= 1)");
  require_one_of("--dataset", c.data.dataset, {"fashion-mnist", "mnist", "cifar10", "cifar100", "folder"});
  require_one_of("--labels", c.data.labels, {"fine", "coarse"});
  require(c.data.train_subset >= 0, "--train-subset", show(c.data.train_subset) + " (must be >= 0)");
  require(c.data.test_subset >= 0, "--test-subset", show(c.data.test_subset) + " (must be >= 0)");
  require(c.data.image_size >= 0, "--image-size", show(c.data.image_size) + " (must be >= 0)");
  require(c.data.decode_threads >= 1, "--decode-threads", show(c.data.decode_threads) + " (must be >= 1)");
  require_one_of("--arch", c.model.arch, {"resnet18", "resnet34", "resnet50", "amdim"});
  require(c.model.width >= 1 && c.model.width <= 1024, "--width", show(c.model.width) + " (must be in 1..1024)");
  require_one_of("--method", me.name, {"ce", "supcon", "simclr", "moco", "simsiam", "byol", "amdim", "cds"});
  require(me.name != "amdim" || c.model.arch == "amdim", "--arch",
          "'" + c.model.arch + "' (method amdim needs --arch amdim)");
  require(me.name == "amdim" || c.model.arch != "amdim", "--arch", "'amdim' is only for --method amdim");
  require(me.temperature > 0 && std::isfinite(me.temperature), "--temperature",
          show(me.temperature) + " (must be > 0)");
  require(me.base_temperature > 0, "--base-temperature", show(me.base_temperature) + " (must be > 0)");
  require(me.proj_dim >= 1, "--proj-dim", show(me.proj_dim) + " (must be >= 1)");
  require(me.proj_hidden == -1 || me.proj_hidden >= 1, "--proj-hidden", show(me.proj_hidden));
  require(me.pred_hidden >= 1, "--pred-hidden", show(me.pred_hidden) + " (must be >= 1)");
  require(me.label_smoothing >= 0 && me.label_smoothing < 1, "--label-smoothing",
          show(me.label_smoothing) + " (must be in [0, 1))");
  require(me.momentum_ema >= 0 && me.momentum_ema <= 1, "--ema", show(me.momentum_ema) + " (must be in [0, 1])");
  require(me.bn_splits >= 1, "--bn-splits", show(me.bn_splits) + " (must be >= 1)");
  require_one_of("--negatives", me.negatives, {"in-batch", "memory-bank"});
  require(me.bank_negatives >= 1, "--bank-negatives", show(me.bank_negatives));
  require(me.bank_momentum >= 0 && me.bank_momentum < 1, "--bank-momentum", show(me.bank_momentum));
  require(me.cds_lambda >= 0, "--cds-lambda", show(me.cds_lambda) + " (must be >= 0)");
  require(me.cds_weights.size() == 4, "--cds-weights", "needs 4 numbers (stages 1..4)");
  for (double w : me.cds_weights) require(w >= 0, "--cds-weights", show(w) + " (must be >= 0)");
  require_one_of("--cds-loss", me.cds_loss, {"supcon", "simclr"});
  require_one_of("--cds-head", me.cds_head, {"sepconv", "mlp"});
  require(me.labeled_fraction > 0 && me.labeled_fraction <= 1, "--labeled-fraction",
          show(me.labeled_fraction) + " (must be in (0, 1])");
  require(me.labeled_per_class >= 0, "--labeled-per-class", show(me.labeled_per_class));
  require(me.kd_temperature > 0, "--kd-temperature", show(me.kd_temperature) + " (must be > 0)");
  require(me.kd_weight >= 0, "--kd-weight", show(me.kd_weight));
  require(me.feat_weight >= 0, "--feat-weight", show(me.feat_weight));

  const auto& a = c.augment;
  require_one_of("--augment", a.preset, {"simclr-cifar", "moco-v2", "cds", "supervised", "rrc-flip", "amdim", "test"});
  require(a.views >= 1 && a.views <= 16, "--views", show(a.views) + " (must be in 1..16)");
  require(a.crop_scale_min > 0 && a.crop_scale_min <= 1, "--crop-scale-min", show(a.crop_scale_min));
  require_one_of("--crop", a.crop, {"rrc", "contrastive"});
  require(a.box_warmup >= 0, "--box-warmup", show(a.box_warmup));
  require(a.box_interval >= 1, "--box-interval", show(a.box_interval) + " (must be >= 1)");
  require(a.box_thresh >= 0 && a.box_thresh < 1, "--box-thresh", show(a.box_thresh) + " (must be in [0, 1))");
  require(a.box_alpha > 0, "--box-alpha", show(a.box_alpha) + " (must be > 0)");
  const bool contrastive_method = me.name != "ce";
  const bool any_views = me.name == "supcon" || me.name == "simclr";
  if (contrastive_method && me.name != "amdim" && a.multi_crop.empty())
    require(a.views >= 2, "--views", show(a.views) + " (method " + me.name + " needs at least 2 views)");
  if (contrastive_method && !any_views)
    require(a.views == 2, "--views", show(a.views) + " (method " + me.name + " takes exactly 2 views)");
  require(a.multi_crop.empty() || any_views, "--multi-crop",
          a.multi_crop + " (multi-crop is for --method supcon or simclr, not " + me.name + ")");
  if (!a.multi_crop.empty()) {
    int64_t n = 0;
    for (const auto& c : parse_multi_crop(a.multi_crop)) n += c.first;
    require(n >= 2, "--multi-crop", a.multi_crop + " (needs at least 2 views in all)");
  }

  const auto& o = c.optim;
  require_one_of("--optimizer", o.optimizer, {"sgd", "lars", "adam"});
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
  if (contrastive_method)
    require(t.batch_size >= 2, "--batch-size",
            show(t.batch_size) + " (contrastive methods need at least 2 images per batch)");
  require(t.threads >= 0, "--threads", show(t.threads) + " (must be >= 0)");
  require_one_of("--device", t.device, {"auto", "cpu", "cuda"});
  require_one_of("--precision", t.precision, {"auto", "fp32", "bf16"});
  require_one_of("--memory-format", t.memory_format, {"auto", "channels-last", "contiguous"});
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
  require(t.checkpoint_every_steps >= 0, "--checkpoint-every-steps",
          show(t.checkpoint_every_steps) + " (must be >= 0)");
  require(t.checkpoint_every_minutes >= 0 && std::isfinite(t.checkpoint_every_minutes),
          "--checkpoint-every-minutes", show(t.checkpoint_every_minutes) + " (must be >= 0)");
  require(t.keep_checkpoints >= 0, "--keep-checkpoints", show(t.keep_checkpoints) + " (must be >= 0)");
  if (me.name == "moco") {
    const int64_t per_step = (me.symmetric ? 2 : 1) * std::max<int64_t>(1, world_size);
    // Before multiplying: a huge batch size would overflow int64 (undefined behaviour, seen by UBSan).
    require(t.batch_size <= std::numeric_limits<int64_t>::max() / per_step, "--batch-size",
            show(t.batch_size) + " (too large)");
    const int64_t keys_per_step = t.batch_size * per_step;
    require(me.queue_size >= keys_per_step && me.queue_size % keys_per_step == 0, "--queue-size",
            show(me.queue_size) + " (must be a multiple of the keys per step, " + show(keys_per_step) + ")");
    require(t.batch_size % me.bn_splits == 0, "--bn-splits",
            show(me.bn_splits) + " (must divide the batch size " + show(t.batch_size) + ")");
  }
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
