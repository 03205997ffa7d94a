// The configuration's defaults, resolved once at the front door (resolve.h): the method's recipe for the shared
// settings it left at their placeholders, and the speed choices for this machine.
#include "contrastive/resolve.h"

#include <algorithm>
#include <string>
#include <utility>

#include "contrastive/common.h"
#include "contrastive/registry.h"

namespace contrastive {

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
  set_if(o.lars_trust, -1.0, d.lars_trust);
  set_if(o.warmup_epochs, -1.0, d.warmup_epochs);
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

ResolvedConfig resolve_config(Config config, const RunEnvironment& environment) {
  ResolvedConfig out;
  resolve_defaults(config, environment.world_size);
  if (environment.speed_choices) out.speed = resolve_speed_defaults(config, environment.speed);
  validate(config, environment.world_size);
  out.config = std::move(config);
  return out;
}

}  // namespace contrastive
