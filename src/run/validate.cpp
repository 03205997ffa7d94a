// Range and consistency checks of a resolved configuration (resolve.h): every bad value is one InputError naming
// its flag, before any work starts.
#include <cmath>
#include <set>
#include <sstream>
#include <string>

#include "contrastive/augment_names.h"
#include "contrastive/common.h"
#include "contrastive/registry.h"
#include "contrastive/resolve.h"

namespace contrastive {

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

}  // namespace contrastive
