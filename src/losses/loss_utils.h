// Small helpers shared by the loss implementations (validation messages, compute precision).
#pragma once

#include <torch/types.h>

#include <cmath>
#include <sstream>
#include <string>

#include "contrastive/common.h"

namespace contrastive {
namespace detail {

// "[2, 3, 4]" for error messages.
inline std::string shape_str(const torch::Tensor& t) {
  if (!t.defined()) return "(undefined)";
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

// Throws InputError("<where>: <what>") unless `ok`.
inline void require(bool ok, const std::string& where, const std::string& what) {
  if (!ok) throw InputError(where + ": " + what);
}

inline void require_defined(const torch::Tensor& t, const std::string& where, const std::string& name) {
  require(t.defined(), where, name + " is undefined");
}

inline void require_dim(const torch::Tensor& t, int64_t dim, const std::string& where, const std::string& name) {
  require_defined(t, where, name);
  require(t.dim() == dim, where, name + " must be " + std::to_string(dim) + "-D, got shape " + shape_str(t));
}

inline void require_positive(double value, const std::string& where, const std::string& name) {
  require(std::isfinite(value) && value > 0.0, where,
          name + " must be a finite value > 0, got " + std::to_string(value));
}

// bf16/half are computed in float32 (logsumexp over many terms and the T/T_b factor need the range and
// precision); float and double keep their precision.
inline torch::Tensor to_compute_dtype(const torch::Tensor& t) {
  if (t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kHalf) return t.to(torch::kFloat32);
  require(t.is_floating_point(), "loss",
          "expected a floating-point tensor, got " + std::string(c10::toString(t.scalar_type())));
  return t;
}

}  // namespace detail
}  // namespace contrastive
