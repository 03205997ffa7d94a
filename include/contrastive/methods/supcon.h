// The typed options of the `supcon` and `simclr` methods (public: `SupConOptions()` and `SimCLROptions()` with
// chained setters, LibTorch style). One method implements both (src/methods/supcon.cpp); the two option types
// differ only in their default temperature, and labels make positives for SupCon only. Build either with
// make_method (method_factory.h) or name it in a Config.
#pragma once

#include <torch/arg.h>

#include <cstdint>
#include <string>

namespace contrastive {

// The defaults that tell the two apart: SupContrast's 0.1 for SupCon, SimCLR's 0.5.
struct SupConDefaults {
  static constexpr double kTemperature = 0.1;
};
struct SimCLRDefaults {
  static constexpr double kTemperature = 0.5;
};

// Options of `--method supcon` and `--method simclr` (YAML sections `supcon:` / `simclr:`).
template <typename Defaults>
struct ContrastiveHeadOptions {
  TORCH_ARG(double, temperature) = Defaults::kTemperature;
  TORCH_ARG(double, base_temperature) = 0.07;  // the loss is scaled by T / T_base (SupContrast)
  TORCH_ARG(int64_t, proj_hidden) = -1;        // -1: the backbone's feature size
  TORCH_ARG(int64_t, proj_dim) = 128;
  TORCH_ARG(bool, proj_bn) = false;                // BN after the hidden Linear (the SimCLR paper's head)
  TORCH_ARG(std::string, negatives) = "in-batch";  // in-batch | memory-bank
  TORCH_ARG(int64_t, bank_negatives) = 4096;
  TORCH_ARG(double, bank_momentum) = 0.5;
};

using SupConOptions = ContrastiveHeadOptions<SupConDefaults>;
using SimCLROptions = ContrastiveHeadOptions<SimCLRDefaults>;

}  // namespace contrastive
