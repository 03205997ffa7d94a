// SupCon / NT-Xent as one autograd operator on float32 CPU tensors (docs/benchmarks.md, "Fused SupCon").
//
// ATen's chain for the loss (supcon_from_logits) makes about a dozen passes over the [R, N] logits forward and
// as many backward, each an allocation and a read or a write of the whole matrix: the masked fill, logsumexp (max,
// exp, sum, log), the positives' product and sums, the mean and their backward nodes. CDS runs four such losses a
// step. Here the logits come from one matrix product, and one pass per row computes everything else (its maximum,
// log-sum-exp over the non-self columns, the positives' sum and count); backward is one pass per row writing
// dL/dlogits = c * (softmax - positive / n_pos), then two matrix products.
//
// Positives are given by a key per sample (the label, or the sample's index for SimCLR): column j is a positive of
// anchor row r when their samples' keys are equal and j != r. Rows are view-major (row v * B + b is view v of
// sample b); anchors are the first R rows (R = B for contrast mode "one", all V * B rows for "all").
//
// Every row is computed by one thread, in column order, and the per-row losses are added in row order in double,
// so the result does not depend on the number of threads (bit-exact resume holds for any --threads).
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "losses/loss_utils.h"

namespace contrastive {
namespace detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CONTRASTIVE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CONTRASTIVE_CLONES
#endif

constexpr int64_t kRowGrain = 8;

// Sixteen floats in GCC's vector extension: each clone below compiles them to its own registers (one AVX-512
// register, two AVX2 or four SSE2 ones), and the reductions keep sixteen partial results, added in a fixed order
// at the end, so the result is the same for every vector width and needs no reassociation of float additions.
constexpr int64_t kLanes = 16;
// The helpers taking and returning these vectors are always inlined: no call passes one, so the ABI note GCC gives
// for a 64-byte vector in a function compiled without AVX-512 does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float vfloat __attribute__((vector_size(kLanes * sizeof(float))));
typedef uint32_t vuint __attribute__((vector_size(kLanes * sizeof(uint32_t))));

template <class V>
__attribute__((always_inline)) inline V splat(typename std::remove_reference<decltype(V{}[0])>::type x) {
  V v;
  for (int64_t l = 0; l < kLanes; ++l) v[l] = x;
  return v;
}
__attribute__((always_inline)) inline vfloat load(const float* p) {
  vfloat v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
__attribute__((always_inline)) inline void store(float* p, vfloat v) { std::memcpy(p, &v, sizeof v); }

// exp(x) as Cephes' expf: x = k ln2 + r with |r| <= ln2 / 2, exp(r) by a degree-6 polynomial (relative error
// about 1e-7), times 2^k through the exponent bits; no calls or branches, so it vectorises (glibc's expf does
// not). NaN stays NaN; below -87.3 (exp(-inf) included) it gives about 1e-38 instead of 0, which no sum here can
// tell from 0 (each row's sum is at least 1).
template <class F, class I>
__attribute__((always_inline)) inline F exp_poly(F x, F lo, F hi, F log2e, F magic, F ln2_hi, F ln2_lo,
                                                 const F* c) {
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  // k = round(x / ln2) without a call: adding 1.5 * 2^23 leaves the rounded integer in the low mantissa bits.
  const F t = x * log2e + magic;
  const F k = t - magic;
  I ti;
  std::memcpy(&ti, &t, sizeof ti);
  const F r = x - k * ln2_hi + k * ln2_lo;
  F p = c[0];
  for (int i = 1; i < 6; ++i) p = p * r + c[i];
  p = p * r * r + r + c[6];
  const I bits = (ti - 0x4B400000u + 127u) << 23;  // unsigned: defined for any input, NaN included
  F two_k;
  std::memcpy(&two_k, &bits, sizeof two_k);
  return p * two_k;
}

constexpr float kExpCoef[7] = {1.9875691500e-4f,
                               1.3981999507e-3f,
                               8.3334519073e-3f,
                               4.1665795894e-2f,
                               1.6666665459e-1f,
                               5.0000001201e-1f,
                               1.0f};

__attribute__((always_inline)) inline float exp1(float x) {
  return exp_poly<float, uint32_t>(x, -87.3f, 88.7f, 1.44269504088896341f, 12582912.0f, 0.693359375f,
                                   2.12194440e-4f, kExpCoef);
}
__attribute__((always_inline)) inline vfloat expv(vfloat x) {
  static const vfloat c[7] = {splat<vfloat>(kExpCoef[0]), splat<vfloat>(kExpCoef[1]), splat<vfloat>(kExpCoef[2]),
                              splat<vfloat>(kExpCoef[3]), splat<vfloat>(kExpCoef[4]), splat<vfloat>(kExpCoef[5]),
                              splat<vfloat>(kExpCoef[6])};
  return exp_poly<vfloat, vuint>(x, splat<vfloat>(-87.3f), splat<vfloat>(88.7f),
                                 splat<vfloat>(1.44269504088896341f), splat<vfloat>(12582912.0f),
                                 splat<vfloat>(0.693359375f), splat<vfloat>(2.12194440e-4f), c);
}

// One anchor row of the scaled logits s[0..n), n = views * batch: its log-sum-exp over the columns other than
// `self`, the sum of the logits of its positives and their count. The logits are scaled in place (s *= inv_t).
// `same` [batch] is 1 where a sample's key equals the anchor's, else 0.
struct RowStats {
  float lse = 0.f;
  float pos_sum = 0.f;
  int64_t npos = 0;
};

CONTRASTIVE_CLONES
RowStats row_forward(float* __restrict s, int64_t n, int64_t self, float inv_t, const float* __restrict same,
                     int64_t batch) {
  const int64_t whole = n - n % kLanes;
  for (int64_t j = 0; j < n; ++j) s[j] *= inv_t;
  const float self_value = s[self];
  s[self] = -std::numeric_limits<float>::infinity();  // left out of the maximum and the sum (restored below)
  vfloat mx = splat<vfloat>(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < whole; j += kLanes) {
    const vfloat v = load(s + j);
    mx = v > mx ? v : mx;
  }
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t l = 0; l < kLanes; ++l) m = mx[l] > m ? mx[l] : m;
  for (int64_t j = whole; j < n; ++j) m = s[j] > m ? s[j] : m;
  vfloat zs = splat<vfloat>(0.f);
  const vfloat mv = splat<vfloat>(m);
  for (int64_t j = 0; j < whole; j += kLanes) zs += expv(load(s + j) - mv);
  float z = 0.f;
  for (int64_t l = 0; l < kLanes; ++l) z += zs[l];
  for (int64_t j = whole; j < n; ++j) z += exp1(s[j] - m);
  s[self] = self_value;
  // A NaN anywhere in the row reaches the result through the sum, as through logsumexp.
  RowStats r;
  r.lse = m + std::log(z);
  // The positives: every view's columns of the samples with the anchor's key.
  float ps = 0.f, count = 0.f;
  const int64_t bwhole = batch - batch % kLanes;
  for (int64_t v = 0; v * batch < n; ++v) {
    const float* sv = s + v * batch;
    vfloat acc = splat<vfloat>(0.f);
    for (int64_t b = 0; b < bwhole; b += kLanes) acc += load(same + b) * load(sv + b);
    for (int64_t l = 0; l < kLanes; ++l) ps += acc[l];
    for (int64_t b = bwhole; b < batch; ++b) ps += same[b] * sv[b];
  }
  for (int64_t b = 0; b < batch; ++b) count += same[b];
  r.pos_sum = ps - self_value;  // the anchor itself matched its own key
  r.npos = static_cast<int64_t>(count) * (n / batch) - 1;
  return r;
}

// ds[j] = c * exp(s[j] - lse) - same[j % batch] * c_pos for j != self, 0 for j = self.
CONTRASTIVE_CLONES
void row_backward(const float* __restrict s, float* __restrict ds, int64_t n, int64_t self, float lse, float c,
                  float c_pos, const float* __restrict same, int64_t batch) {
  const int64_t bwhole = batch - batch % kLanes;
  const vfloat lv = splat<vfloat>(lse), cv = splat<vfloat>(c), pv = splat<vfloat>(c_pos);
  for (int64_t v = 0; v * batch < n; ++v) {
    const float* sv = s + v * batch;
    float* dv = ds + v * batch;
    for (int64_t b = 0; b < bwhole; b += kLanes) store(dv + b, cv * expv(load(sv + b) - lv) - load(same + b) * pv);
    for (int64_t b = bwhole; b < batch; ++b) dv[b] = c * exp1(sv[b] - lse) - same[b] * c_pos;
  }
  ds[self] = 0.f;
}

// same[b] = 1 where keys[b] equals the key of anchor row `self`, else 0.
void same_key(const int64_t* keys, int64_t batch, int64_t self, float* same) {
  const int64_t key = keys[self % batch];
  for (int64_t b = 0; b < batch; ++b) same[b] = keys[b] == key ? 1.f : 0.f;
}

struct FusedSupCon : public torch::autograd::Function<FusedSupCon> {
  // contrast [N, D] float32, keys [B] int64; returns the scalar loss (float32).
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& contrast_in,
                               const torch::Tensor& keys_in, int64_t anchor_rows, double inv_t, double scale) {
    RECORD_FUNCTION("contrastive::fused_supcon", std::vector<c10::IValue>());
    auto contrast = contrast_in.contiguous();
    auto keys = keys_in.contiguous();
    const int64_t n = contrast.size(0), rows = anchor_rows, batch = keys.size(0);
    auto logits = at::mm(contrast.narrow(0, 0, rows), contrast.t());  // [R, N], scaled in the row pass
    auto lse = torch::empty({rows}, contrast.options());
    auto pos_sum = torch::empty({rows}, contrast.options());
    auto npos = torch::empty({rows}, keys.options());
    float* S = logits.data_ptr<float>();
    float* L = lse.data_ptr<float>();
    float* P = pos_sum.data_ptr<float>();
    int64_t* C = npos.data_ptr<int64_t>();
    const int64_t* K = keys.data_ptr<int64_t>();
    const float it = static_cast<float>(inv_t);
    at::parallel_for(0, rows, kRowGrain, [&](int64_t begin, int64_t end) {
      std::vector<float> same(batch);
      for (int64_t r = begin; r < end; ++r) {
        same_key(K, batch, r, same.data());
        const RowStats st = row_forward(S + r * n, n, r, it, same.data(), batch);
        L[r] = st.lse, P[r] = st.pos_sum, C[r] = st.npos;
      }
    });
    double total = 0;
    int64_t kept = 0;
    for (int64_t r = 0; r < rows; ++r) {
      if (C[r] == 0) continue;  // an anchor without a positive is left out of the mean
      total += -scale * (static_cast<double>(P[r]) / static_cast<double>(C[r]) - static_cast<double>(L[r]));
      ++kept;
    }
    ctx->save_for_backward({contrast, keys, logits, lse, npos});
    ctx->saved_data["kept"] = kept;
    ctx->saved_data["inv_t"] = inv_t;
    ctx->saved_data["scale"] = scale;
    return torch::full({}, kept ? total / static_cast<double>(kept) : 0.0, contrast.options());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    RECORD_FUNCTION("contrastive::fused_supcon_backward", std::vector<c10::IValue>());
    const auto saved = ctx->get_saved_variables();
    const auto& contrast = saved[0];
    const auto& keys = saved[1];
    const auto& logits = saved[2];
    const auto& lse = saved[3];
    const auto& npos = saved[4];
    const int64_t kept = ctx->saved_data["kept"].toInt();
    const double inv_t = ctx->saved_data["inv_t"].toDouble();
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t rows = logits.size(0), n = logits.size(1), batch = keys.size(0);
    auto dlogits = torch::empty_like(logits);
    if (kept > 0) {
      // d loss / d raw logit (before the 1/T scaling) of a kept row: g * scale / kept / T * (softmax - pos /
      // npos).
      const double g = grads[0].item<double>();
      const float c = static_cast<float>(g * scale * inv_t / static_cast<double>(kept));
      const float* S = logits.data_ptr<float>();
      const float* L = lse.data_ptr<float>();
      const int64_t* C = npos.data_ptr<int64_t>();
      const int64_t* K = keys.data_ptr<int64_t>();
      float* D = dlogits.data_ptr<float>();
      at::parallel_for(0, rows, kRowGrain, [&](int64_t begin, int64_t end) {
        std::vector<float> same(batch);
        for (int64_t r = begin; r < end; ++r) {
          if (C[r] == 0) {
            std::fill(D + r * n, D + (r + 1) * n, 0.f);
            continue;
          }
          same_key(K, batch, r, same.data());
          row_backward(S + r * n, D + r * n, n, r, L[r], c, c / static_cast<float>(C[r]), same.data(), batch);
        }
      });
    } else {
      dlogits.zero_();
    }
    // logits = A C^T with A = C[0:R]: dC = dlogits^T A, plus dlogits C on the anchor rows. With every row an
    // anchor (A = C) that is one product, (dlogits + dlogits^T) C.
    if (rows == n)
      return {at::mm(dlogits + dlogits.t(), contrast), torch::Tensor(), torch::Tensor(), torch::Tensor(),
              torch::Tensor()};
    auto dcontrast = at::mm(dlogits.t(), contrast.narrow(0, 0, rows));
    dcontrast.narrow(0, 0, rows).add_(at::mm(dlogits, contrast));
    return {dcontrast, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool fused_supcon_applies(const torch::Tensor& contrast, const torch::Tensor& labels, const torch::Tensor& mask) {
  if (mask.defined() || !contrast.device().is_cpu() || contrast.scalar_type() != torch::kFloat) return false;
  if (labels.defined() && (!labels.device().is_cpu() || c10::isFloatingType(labels.scalar_type()) ||
                           c10::isComplexType(labels.scalar_type()) || labels.scalar_type() == torch::kBool))
    return false;
  return contrast.dim() == 2 && contrast.size(0) > 0;
}

torch::Tensor fused_supcon(const torch::Tensor& contrast, const torch::Tensor& labels, int64_t batch,
                           int64_t anchor_rows, double temperature, double scale) {
  auto keys = labels.defined() ? labels.reshape({-1}).to(torch::kLong) : torch::arange(batch, torch::kLong);
  return FusedSupCon::apply(contrast, keys, anchor_rows, 1.0 / temperature, scale);
}

}  // namespace detail
}  // namespace contrastive
