// Training-mode BatchNorm2d + optional residual add + ReLU in one operator, for float32 or bfloat16 (autocast)
// channels-last CPU tensors: docs/benchmarks.md "Fused BatchNorm + ReLU" explains why and what it saves.
//
// The tensor is seen as M = N*H*W rows of C channels. Forward: one read of x for the statistics (sums shifted
// by the first row, so E[x^2] - E[x]^2 does not cancel), one read of x (and of the residual) to write
// y = max(0, x*scale + shift (+ r)). Backward: one pass for the two per-channel sums of dz = dy * (y > 0), one to
// write dx (and, with a residual, dz itself). ATen's unfused chain reads and writes the intermediate z = BN(x)
// (+ r) as well, once forward (ReLU) and once backward (threshold_backward).
//
// Reductions are split into fixed blocks of rows whose partial sums are added in block order, so the result
// does not depend on the number of threads (bit-exact resume holds for any --threads); the block sums are
// float, their total double.
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "contrastive/models.h"

namespace contrastive {

namespace {

constexpr int64_t kRowsPerBlock = 256;

// One implementation per instruction set, chosen at load time (GCC's function multi-versioning), so that a
// portable binary still runs AVX-512 or AVX2 loops where the CPU has them.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CONTRASTIVE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define CONTRASTIVE_INLINE __attribute__((always_inline)) inline
#else
#define CONTRASTIVE_CLONES
#define CONTRASTIVE_INLINE inline
#endif

// Activations are float32 or bfloat16 (the autocast path: a bf16 convolution's output); bf16 is handled as its
// 16 bits, widened to float for all arithmetic and rounded to nearest-even on the way out, as c10::BFloat16 does.
// Weights, statistics and sums are always float.
CONTRASTIVE_INLINE float ld(const float* p, int64_t i) { return p[i]; }
CONTRASTIVE_INLINE float ld(const uint16_t* p, int64_t i) {
  const uint32_t u = static_cast<uint32_t>(p[i]) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
CONTRASTIVE_INLINE void st(float* p, int64_t i, float v) { p[i] = v; }
CONTRASTIVE_INLINE void st(uint16_t* p, int64_t i, float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  p[i] = v != v ? uint16_t{0x7FC0} : static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// s[c] = sum over rows of (x - k[c]), q[c] = sum of (x - k[c])^2.
template <class T>
CONTRASTIVE_INLINE void stats_loop(const T* __restrict x, int64_t rows, int64_t C, const float* __restrict k,
                                   float* __restrict s, float* __restrict q) {
  for (int64_t c = 0; c < C; ++c) s[c] = q[c] = 0.f;
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * C;
    for (int64_t c = 0; c < C; ++c) {
      const float v = ld(xr, c) - k[c];
      s[c] += v;
      q[c] += v * v;
    }
  }
}

// y = relu(x * a + b (+ res)); NaN passes through, as torch::relu's does.
template <class T>
CONTRASTIVE_INLINE void forward_loop(const T* __restrict x, const T* __restrict res, T* __restrict y, int64_t rows,
                                     int64_t C, const float* __restrict a, const float* __restrict b) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    if (res) {
      const T* rr = res + r * C;
      for (int64_t c = 0; c < C; ++c) {
        const float v = ld(xr, c) * a[c] + b[c] + ld(rr, c);
        st(yr, c, v < 0.f ? 0.f : v);
      }
    } else {
      for (int64_t c = 0; c < C; ++c) {
        const float v = ld(xr, c) * a[c] + b[c];
        st(yr, c, v < 0.f ? 0.f : v);
      }
    }
  }
}

// dz = y > 0 ? dy : 0 (as threshold_backward: y <= 0 gives 0); s1[c] = sum dz, s2[c] = sum dz * (x - mean[c]);
// dz is written to dz_out when it is not null.
template <class T>
CONTRASTIVE_INLINE void backward_sums_loop(const T* __restrict dy, const T* __restrict y, const T* __restrict x,
                                           int64_t rows, int64_t C, const float* __restrict mean,
                                           float* __restrict s1, float* __restrict s2, T* __restrict dz_out) {
  for (int64_t c = 0; c < C; ++c) s1[c] = s2[c] = 0.f;
  for (int64_t r = 0; r < rows; ++r) {
    const T* dyr = dy + r * C;
    const T* yr = y + r * C;
    const T* xr = x + r * C;
    for (int64_t c = 0; c < C; ++c) {
      const float yv = ld(yr, c), dv = ld(dyr, c);  // both loaded: a conditional load would not vectorise
      const float g = yv <= 0.f ? 0.f : dv;
      s1[c] += g;
      s2[c] += g * (ld(xr, c) - mean[c]);
    }
    if (dz_out) {
      T* dr = dz_out + r * C;
      for (int64_t c = 0; c < C; ++c) {
        const T dv = dyr[c];
        dr[c] = ld(yr, c) <= 0.f ? T{0} : dv;
      }
    }
  }
}

// dx = a[c] * dz + b[c] * (x - mean[c]) + d[c], with dz from (dy, y) or given.
template <class T>
CONTRASTIVE_INLINE void backward_dx_loop(const T* __restrict dy, const T* __restrict y, const T* __restrict dz,
                                         const T* __restrict x, T* __restrict dx, int64_t rows, int64_t C,
                                         const float* __restrict mean, const float* __restrict a,
                                         const float* __restrict b, const float* __restrict d) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * C;
    T* out = dx + r * C;
    if (dz) {
      const T* g = dz + r * C;
      for (int64_t c = 0; c < C; ++c) st(out, c, a[c] * ld(g, c) + b[c] * (ld(xr, c) - mean[c]) + d[c]);
    } else {
      const T* dyr = dy + r * C;
      const T* yr = y + r * C;
      for (int64_t c = 0; c < C; ++c) {
        const float yv = ld(yr, c), dv = ld(dyr, c);
        const float g = yv <= 0.f ? 0.f : dv;
        st(out, c, a[c] * g + b[c] * (ld(xr, c) - mean[c]) + d[c]);
      }
    }
  }
}

// The multi-versioned entry points, one per storage type (target_clones does not apply to templates).
#define CONTRASTIVE_BLOCKS(T)                                                                                    \
  CONTRASTIVE_CLONES void block_stats(const T* x, int64_t rows, int64_t C, const float* k, float* s, float* q) { \
    stats_loop(x, rows, C, k, s, q);                                                                             \
  }                                                                                                              \
  CONTRASTIVE_CLONES void block_forward(const T* x, const T* res, T* y, int64_t rows, int64_t C, const float* a, \
                                        const float* b) {                                                        \
    forward_loop(x, res, y, rows, C, a, b);                                                                      \
  }                                                                                                              \
  CONTRASTIVE_CLONES void block_backward_sums(const T* dy, const T* y, const T* x, int64_t rows, int64_t C,      \
                                              const float* mean, float* s1, float* s2, T* dz_out) {              \
    backward_sums_loop(dy, y, x, rows, C, mean, s1, s2, dz_out);                                                 \
  }                                                                                                              \
  CONTRASTIVE_CLONES void block_backward_dx(const T* dy, const T* y, const T* dz, const T* x, T* dx,             \
                                            int64_t rows, int64_t C, const float* mean, const float* a,          \
                                            const float* b, const float* d) {                                    \
    backward_dx_loop(dy, y, dz, x, dx, rows, C, mean, a, b, d);                                                  \
  }
CONTRASTIVE_BLOCKS(float)
CONTRASTIVE_BLOCKS(uint16_t)
#undef CONTRASTIVE_BLOCKS

// The storage of a float32 or bfloat16 tensor as the loops see it.
template <class T>
T* raw(const torch::Tensor& t) {
  if constexpr (std::is_same_v<T, float>) {
    return t.data_ptr<float>();
  } else {
    return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>());
  }
}

int64_t num_blocks(int64_t rows) { return (rows + kRowsPerBlock - 1) / kRowsPerBlock; }

// The per-block pairs of per-channel float sums (block b holds [2 * C] at b * 2 * C: the first sum, then the
// second), added in block order in double: the same totals for any number of threads.
void sum_blocks(const std::vector<float>& partial, int64_t C, std::vector<double>& first,
                std::vector<double>& second) {
  first.assign(static_cast<size_t>(C), 0.0);
  second.assign(static_cast<size_t>(C), 0.0);
  const int64_t nb = static_cast<int64_t>(partial.size()) / (2 * C);
  for (int64_t blk = 0; blk < nb; ++blk)
    for (int64_t c = 0; c < C; ++c) {
      first[c] += partial[blk * 2 * C + c];
      second[c] += partial[blk * 2 * C + C + c];
    }
}

// Runs f(block, first_row, rows) for every block, in parallel; the blocks do not depend on the thread count.
template <class F>
void for_blocks(int64_t M, const F& f) {
  at::parallel_for(0, num_blocks(M), 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * kRowsPerBlock;
      f(b, r0, std::min(kRowsPerBlock, M - r0));
    }
  });
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The operator's two halves; residual is undefined for none. mean and invstd are the batch statistics, constants
// to autograd: the backward formula accounts for their dependence on x.
template <class T>
torch::Tensor fused_forward_t(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& residual,
                              const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& mean,
                              const torch::Tensor& invstd) {
  const int64_t C = x.size(1), M = x.numel() / C;
  auto scale = (weight * invstd).contiguous();
  auto shift = (bias - mean * scale).contiguous();
  auto y = torch::empty_like(x, x.options(), torch::MemoryFormat::ChannelsLast);
  const T* xp = raw<T>(x);
  const T* rp = residual.defined() ? raw<T>(residual) : nullptr;
  T* yp = raw<T>(y);
  const float* ap = scale.data_ptr<float>();
  const float* bp = shift.data_ptr<float>();
  for_blocks(M, [&](int64_t, int64_t r0, int64_t rows) {
    block_forward(xp + r0 * C, rp ? rp + r0 * C : nullptr, yp + r0 * C, rows, C, ap, bp);
  });
  ctx->saved_data["residual"] = residual.defined();
  ctx->save_for_backward({x, weight, mean, invstd, y});
  return y;
}

// Gradients of x, residual (undefined for none), weight and bias.
template <class T>
variable_list fused_backward_t(AutogradContext* ctx, const variable_list& saved, const variable_list& grads) {
  const auto &x = saved[0], &weight = saved[1], &mean = saved[2], &invstd = saved[3], &y = saved[4];
  const bool has_residual = ctx->saved_data["residual"].toBool();
  auto dy = grads[0].to(y.scalar_type()).contiguous(torch::MemoryFormat::ChannelsLast);
  if (dy.strides() != y.strides()) dy = dy.clone(torch::MemoryFormat::ChannelsLast);
  const int64_t C = x.size(1), M = x.numel() / C, nb = num_blocks(M);
  torch::Tensor dz;
  if (has_residual) dz = torch::empty_like(y, y.options(), torch::MemoryFormat::ChannelsLast);
  std::vector<float> partial(static_cast<size_t>(nb * 2 * C));
  const T *dyp = raw<T>(dy), *yp = raw<T>(y), *xp = raw<T>(x);
  auto mean_c = mean.contiguous();
  const float* mp = mean_c.data_ptr<float>();
  T* dzp = dz.defined() ? raw<T>(dz) : nullptr;
  for_blocks(M, [&](int64_t blk, int64_t r0, int64_t rows) {
    float* s = partial.data() + blk * 2 * C;
    block_backward_sums(dyp + r0 * C, yp + r0 * C, xp + r0 * C, rows, C, mp, s, s + C,
                        dzp ? dzp + r0 * C : nullptr);
  });
  std::vector<double> s1, s2;
  sum_blocks(partial, C, s1, s2);
  auto w = weight.contiguous(), is = invstd.contiguous();
  const float *wp = w.data_ptr<float>(), *ip = is.data_ptr<float>();
  const auto f32 = x.options().dtype(torch::kFloat);
  auto coef = torch::empty({3, C}, f32);
  float *a = coef.data_ptr<float>(), *b = a + C, *d = a + 2 * C;
  auto grad_weight = torch::empty({C}, f32), grad_bias = torch::empty({C}, f32);
  float *gw = grad_weight.data_ptr<float>(), *gb = grad_bias.data_ptr<float>();
  for (int64_t c = 0; c < C; ++c) {
    const double inv = ip[c], g = wp[c];
    a[c] = static_cast<float>(g * inv);
    b[c] = static_cast<float>(-g * inv * inv * inv * s2[c] / M);
    d[c] = static_cast<float>(-g * inv * s1[c] / M);
    gw[c] = static_cast<float>(s2[c] * inv);
    gb[c] = static_cast<float>(s1[c]);
  }
  torch::Tensor dx;
  if (ctx->needs_input_grad(0)) {
    dx = torch::empty_like(x, x.options(), torch::MemoryFormat::ChannelsLast);
    T* dxp = raw<T>(dx);
    for_blocks(M, [&](int64_t, int64_t r0, int64_t rows) {
      block_backward_dx(dzp ? nullptr : dyp + r0 * C, dzp ? nullptr : yp + r0 * C, dzp ? dzp + r0 * C : nullptr,
                        xp + r0 * C, dxp + r0 * C, rows, C, mp, a, b, d);
    });
  }
  return {dx, dz, grad_weight, grad_bias};
}

torch::Tensor fused_forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& residual,
                            const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& mean,
                            const torch::Tensor& invstd) {
  return x.scalar_type() == torch::kBFloat16
             ? fused_forward_t<uint16_t>(ctx, x, residual, weight, bias, mean, invstd)
             : fused_forward_t<float>(ctx, x, residual, weight, bias, mean, invstd);
}

variable_list fused_backward(AutogradContext* ctx, const variable_list& grads) {
  const auto saved = ctx->get_saved_variables();  // unpacked once: each call checks and copies them all
  return saved[0].scalar_type() == torch::kBFloat16 ? fused_backward_t<uint16_t>(ctx, saved, grads)
                                                    : fused_backward_t<float>(ctx, saved, grads);
}

// Two autograd operators, with and without the residual: a custom Function cannot take an undefined input.
struct FusedBnRelu : public torch::autograd::Function<FusedBnRelu> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, const torch::Tensor& mean, const torch::Tensor& invstd) {
    return fused_forward(ctx, x, {}, weight, bias, mean, invstd);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto g = fused_backward(ctx, grads);
    return {g[0], g[2], g[3], torch::Tensor(), torch::Tensor()};
  }
};

struct FusedBnAddReluOp : public torch::autograd::Function<FusedBnAddReluOp> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& residual,
                               const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& mean,
                               const torch::Tensor& invstd) {
    return fused_forward(ctx, x, residual, weight, bias, mean, invstd);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto g = fused_backward(ctx, grads);
    return {g[0], g[1], g[2], g[3], torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool fused_bn_relu_applies(const torch::Tensor& x, const torch::Tensor& residual, const torch::Tensor& weight) {
  if (!x.defined() || x.dim() != 4 || !x.device().is_cpu()) return false;
  if (x.scalar_type() != torch::kFloat && x.scalar_type() != torch::kBFloat16) return false;
  if (!x.is_contiguous(torch::MemoryFormat::ChannelsLast) || x.numel() == 0) return false;
  if (x.numel() / x.size(1) < 2) return false;  // ATen's own error for one value per channel
  if (!weight.defined() || weight.scalar_type() != torch::kFloat || weight.numel() != x.size(1)) return false;
  if (residual.defined() && (residual.sizes() != x.sizes() || residual.scalar_type() != x.scalar_type() ||
                             !residual.device().is_cpu() || residual.strides() != x.strides()))
    return false;
  return true;
}

torch::Tensor fused_batch_norm_relu(const torch::Tensor& x, const torch::Tensor& residual,
                                    const torch::Tensor& weight, const torch::Tensor& bias,
                                    torch::Tensor& running_mean, torch::Tensor& running_var, double momentum,
                                    double eps) {
  TORCH_CHECK(
      fused_bn_relu_applies(x, residual, weight),
      "fused_batch_norm_relu: needs a float32 or bfloat16 channels-last CPU input with more than one value per "
      "channel, and float32 weights");
  // One profiler event for the whole forward (statistics and the normalising pass), so that `bench --profile`
  // accounts for it; autograd records the backward as the operator's node.
  RECORD_FUNCTION("contrastive::fused_batch_norm_relu", c10::ArrayRef<const c10::IValue>{});
  const int64_t C = x.size(1), M = x.numel() / C, nb = num_blocks(M);
  torch::Tensor mean, invstd;
  {
    torch::NoGradGuard no_grad;
    auto xd = x.detach();
    std::vector<float> shift_k(static_cast<size_t>(C));  // the first row: a value near each channel's mean
    std::vector<float> partial(static_cast<size_t>(nb * 2 * C));
    auto stats = [&](const auto* xp) {
      for (int64_t c = 0; c < C; ++c) shift_k[c] = ld(xp, c);
      for_blocks(M, [&](int64_t blk, int64_t r0, int64_t rows) {
        float* s = partial.data() + blk * 2 * C;
        block_stats(xp + r0 * C, rows, C, shift_k.data(), s, s + C);
      });
    };
    if (x.scalar_type() == torch::kBFloat16) {
      stats(raw<uint16_t>(xd));
    } else {
      stats(raw<float>(xd));
    }
    const auto f32 = x.options().dtype(torch::kFloat);
    mean = torch::empty({C}, f32);
    invstd = torch::empty({C}, f32);
    auto var_unbiased = torch::empty({C}, f32);
    float *mp = mean.data_ptr<float>(), *ip = invstd.data_ptr<float>(), *vp = var_unbiased.data_ptr<float>();
    std::vector<double> s, q;
    sum_blocks(partial, C, s, q);
    for (int64_t c = 0; c < C; ++c) {
      const double m = s[c] / M, var = std::max(0.0, q[c] / M - m * m);
      mp[c] = static_cast<float>(shift_k[c] + m);
      ip[c] = static_cast<float>(1.0 / std::sqrt(var + eps));
      vp[c] = static_cast<float>(var * M / (M - 1));
    }
    // Written through the data pointers, as ATen's kernel does, so that the version counters do not move: an
    // earlier forward of the same module through ATen's batch_norm (another crop size, a non-channels-last
    // input) saved the running statistics for its backward, and an in-place op here would invalidate it.
    for (auto* running : {&running_mean, &running_var}) {
      if (!running->defined()) continue;
      TORCH_CHECK(running->scalar_type() == torch::kFloat && running->is_contiguous() && running->numel() == C,
                  "fused_batch_norm_relu: the running statistics must be contiguous float32 of one value per "
                  "channel");
      float* rp = running->data_ptr<float>();
      const float* batch = running == &running_mean ? mp : vp;
      for (int64_t c = 0; c < C; ++c) rp[c] = static_cast<float>((1 - momentum) * rp[c] + momentum * batch[c]);
    }
  }
  if (residual.defined()) return FusedBnAddReluOp::apply(x, residual, weight, bias, mean, invstd);
  return FusedBnRelu::apply(x, weight, bias, mean, invstd);
}

}  // namespace contrastive
