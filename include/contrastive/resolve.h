// The front door of a run (docs/architecture.md): a Config as the user gave it is resolved (the method's
// defaults, the speed choices for this machine) and validated once, before any work. What runs downstream reads
// the resolved values and never resolves or validates again.
#pragma once

#include <cstdint>
#include <string>

#include "contrastive/config.h"

namespace contrastive {

// Fills the -1 / "" placeholders of the shared keys with the method's defaults (its MethodInfo::defaults, see
// registry.h); the method's own options carry their defaults themselves.
// --batch-size is per process: default learning rates scale with the global batch, batch_size * world_size.
void resolve_defaults(Config& config, int64_t world_size = 1);
// What the speed choices depend on: the CPU's native bf16 and the device (see platform.h for the detection).
struct SpeedContext {
  bool native_bf16 = false;
  bool cuda = false;
  std::string cpu_model;  // named in the refusal
  bool avx512 = false;    // AVX-512F: oneDNN's AVX-512 kernels rather than its AVX2 ones
};
// Narrowest model (--width) that channels-last runs at on a CPU without AVX-512: below it, oneDNN's AVX2
// backward of a strided 1x1 convolution in NHWC with fewer than 8 input channels never returns (oneDNN 2.6 of
// LibTorch 1.13; reproduced with Debian's PyTorch 1.13 alone, docs/benchmarks.md "Channels-last on AVX2").
constexpr int64_t kMinChannelsLastWidth = 8;
// Resolves train.precision and train.memory_format ("auto" -> a choice for this machine; the bf16 /
// channels_last aliases folded in and cleared), so that the trainer reads precision == "bf16" and
// memory_format == "channels-last". precision auto = bf16 only on a CPU with native bf16 and for a method
// whose accuracy was measured to hold in bf16 (bf16_keeps_accuracy); memory_format auto = channels-last, except
// contiguous for a model narrower than kMinChannelsLastWidth (channels-last asked for there on a CPU without
// AVX-512 -> InputError). bf16
// on a CPU without native bf16 -> InputError naming the missing feature, unless allow_emulated_bf16. Returns a
// one-line description of the choice and its reason, for the log.
std::string resolve_speed_defaults(Config& config, const SpeedContext& context);
// Methods whose accuracy in bf16 was measured against fp32 (docs/usage.md, "Speed by default").
bool bf16_keeps_accuracy(const std::string& method);

// Range and consistency checks; throws InputError naming the key and the value.
void validate(const Config& config, int64_t world_size = 1);

// Where a run goes, as the front door needs to know it.
struct RunEnvironment {
  int64_t world_size = 1;
  SpeedContext speed;         // this CPU and the device (speed_context, train.h)
  bool speed_choices = true;  // false: a stored run's config, which holds its speed choices already
};
struct ResolvedConfig {
  Config config;      // resolved and validated
  std::string speed;  // the speed choices and their reasons, for the log ("" without speed_choices)
};
// The front door of train, bench and load_model: resolve_defaults, then resolve_speed_defaults, then validate,
// once. Bad values -> InputError naming the flag.
ResolvedConfig resolve_config(Config config, const RunEnvironment& environment);

}  // namespace contrastive
