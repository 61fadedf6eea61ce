// clast's compiled CPU selective scan (forward and backward), loaded by clast.ssm with torch.utils.cpp_extension.
//
//   h_t = exp(delta_t * A) * h_{t-1} + delta_t * u_t * B_t,   y_t = <h_t, C_t>          (per batch and channel)
//
// Layout: token-major. u, delta, y, gy: (b, L, d) contiguous; At = A^T: (n, d) contiguous; B, C: (b, L, n) and the
// gate z: (b, L, d) with unit stride over their last dimension (any batch / token strides, e.g. views of a projection). The scan is sequential over L; the lanes of one SIMD vector are
// W consecutive channels (16 with AVX-512, 8 with AVX2 + FMA, otherwise a portable loop) (so the loads of u, delta, A and the stores of y are contiguous and y needs no horizontal
// sum); at::parallel_for runs (batch x channel blocks) in parallel. The backward is the reverse-time recurrence of
// the adjoint G_t = g_t C_t + exp(delta_{t+1} A) G_{t+1}; the states it needs are recomputed chunk by chunk (K
// tokens) from checkpoints the forward saved every K tokens, so nothing of size L x d x n is ever stored.
// The decays exp(delta*A) are computed as 2^(delta * A log2(e)); their logs are clamped below at -80 (float) / -700
// (double), as clast.ssm's torch backend does: the decays are still normal numbers (subnormals are ~10x slower on
// CPUs).
#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define CLAST_AVX2 1
#if defined(__AVX512F__)
#define CLAST_AVX512 1
#endif
#endif

namespace {

struct Bf16 { uint16_t bits; };   // a bfloat16 as stored (at::BFloat16's layout)
inline float bf16_to_float(uint16_t b) { uint32_t u = uint32_t(b) << 16; float f; std::memcpy(&f, &u, sizeof f); return f; }

// Lower bounds of the decays' base-2 logs, delta * A * log2(e): -80 / -700 in natural log, as the torch backend clamps.
constexpr double kLog2e = 1.44269504088896341;
template <typename T> constexpr T min_log2_decay();
template <> constexpr float min_log2_decay<float>() { return -80.f * float(kLog2e); }
template <> constexpr double min_log2_decay<double>() { return -700. * kLog2e; }

// W lanes of T in plain arrays: the portable path (and the exact one for float64: std::exp per lane).
template <typename T, int W> struct VecN {
  using scalar = T;
  static constexpr int size = W;
  T v[W];
  static VecN zero() { VecN r; for (int i = 0; i < W; ++i) r.v[i] = T(0); return r; }
  static VecN set1(T x) { VecN r; for (int i = 0; i < W; ++i) r.v[i] = x; return r; }
  static VecN load(const T* p) { VecN r; for (int i = 0; i < W; ++i) r.v[i] = p[i]; return r; }
  static VecN load(const Bf16* p) { VecN r; for (int i = 0; i < W; ++i) r.v[i] = bf16_to_float(p[i].bits); return r; }   // float T only
  void store(T* p) const { for (int i = 0; i < W; ++i) p[i] = v[i]; }
  friend VecN operator+(VecN a, const VecN& b) { for (int i = 0; i < W; ++i) a.v[i] += b.v[i]; return a; }
  friend VecN operator*(VecN a, const VecN& b) { for (int i = 0; i < W; ++i) a.v[i] *= b.v[i]; return a; }
  static VecN fma(const VecN& a, const VecN& b, const VecN& c) { VecN r; for (int i = 0; i < W; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i]; return r; }
  friend VecN operator-(VecN a, const VecN& b) { for (int i = 0; i < W; ++i) a.v[i] -= b.v[i]; return a; }
  VecN exp2_decay() const { VecN r; for (int i = 0; i < W; ++i) r.v[i] = std::exp2(std::max(v[i], min_log2_decay<T>())); return r; }
  VecN softplus() const {   // torch's softplus (beta 1, threshold 20)
    VecN r; for (int i = 0; i < W; ++i) r.v[i] = v[i] > T(20) ? v[i] : std::max(v[i], T(0)) + std::log1p(std::exp(-std::abs(v[i]))); return r;
  }
  VecN sigmoid() const { VecN r; for (int i = 0; i < W; ++i) r.v[i] = T(1) / (T(1) + std::exp(-v[i])); return r; }
  T sum() const { T s = T(0); for (int i = 0; i < W; ++i) s += v[i]; return s; }
};

#ifdef CLAST_AVX2
// Cephes' expf / logf polynomials (about 1 ulp on the clamped range), written once for the SIMD types below; each
// type supplies the handful of primitives they need (min, max, round, 2^n, the exponent split, masked selects).
template <class V> V cephes_exp(const V& v, float lo) {
  V x = V::min(V::max(v, V::set1(lo)), V::set1(88.3762626647949f));
  const V fx = V::round(x * V::set1(float(kLog2e)));
  x = V::fnma(fx, V::set1(0.693359375f), x);
  x = V::fnma(fx, V::set1(-2.12194440e-4f), x);
  const V z = x * x;
  V y = V::set1(1.9875691500E-4f);
  for (float c : {1.3981999507E-3f, 8.3334519073E-3f, 4.1665795894E-2f, 1.6666665459E-1f, 5.0000001201E-1f}) y = V::fma(y, x, V::set1(c));
  y = V::fma(y, z, x + V::set1(1.f));
  return y * V::pow2i(fx);
}
// 2^x of a decay's base-2 log (x <= 0 in Mamba): Cephes' exp2f polynomial on the fraction (about 1 ulp), 2^n by V::scale.
// The scan calls it 16 times per token and channel: 11 vector operations, against the 17 of exp(x) above.
template <class V> V cephes_exp2_decay(const V& v) {
  const V x = V::max(v, V::set1(min_log2_decay<float>())), n = V::round(x), f = x - n;
  V y = V::set1(1.535336188319500E-4f);
  for (float c : {1.339887440266574E-3f, 9.618437357674640E-3f, 5.550332471162809E-2f, 2.402264791363012E-1f, 6.931472028550421E-1f})
    y = V::fma(y, f, V::set1(c));
  return V::scale(V::fma(y, f, V::set1(1.f)), n);
}
template <class V> V cephes_log(const V& v) {   // for positive normal inputs
  V e, x = V::split_exponent(V::max(v, V::set1(1.17549435e-38f)), e);   // x in [0.5, 1), v = x 2^e
  const V thr = V::set1(0.707106781186547524f), tmp = V::select_lt(x, thr, x), one = V::select_lt(x, thr, V::set1(1.f));
  x = x - V::set1(1.f);
  e = e - one;
  x = x + tmp;
  const V z = x * x;
  V y = V::set1(7.0376836292E-2f);
  for (float c : {-1.1514610310E-1f, 1.1676998740E-1f, -1.2420140846E-1f, 1.4249322787E-1f, -1.6668057665E-1f,
                  2.0000714765E-1f, -2.4999993993E-1f, 3.3333331174E-1f}) y = V::fma(y, x, V::set1(c));
  y = (y * x) * z;
  y = V::fma(e, V::set1(-2.12194440e-4f), y);
  y = V::fnma(z, V::set1(0.5f), y);
  return V::fma(e, V::set1(0.693359375f), x + y);
}
template <class V> V cephes_softplus(const V& v) {   // max(x, 0) + log1p(exp(-|x|)), log1p(e) = log(1 + e) - ((1 + e) - 1 - e) / (1 + e); x above 20: x
  const V e = cephes_exp(V::zero() - V::abs(v), -87.f), u = e + V::set1(1.f);
  const V corr = V::div((u - V::set1(1.f)) - e, u);
  return V::select_gt(v, V::set1(20.f), v, (cephes_log(u) - corr) + V::max(v, V::zero()));
}
template <class V> V cephes_sigmoid(const V& v) { return V::div(V::set1(1.f), V::set1(1.f) + cephes_exp(V::zero() - v, -87.f)); }

// The members the scan and the kernels call, for a SIMD type S (CRTP).
template <class S> struct CephesOps {
  S exp2_decay() const { return cephes_exp2_decay(self()); }
  S softplus() const { return cephes_softplus(self()); }
  S sigmoid() const { return cephes_sigmoid(self()); }
 private:
  const S& self() const { return static_cast<const S&>(*this); }
};

// 8 float lanes in one AVX2 register.
struct VecF8 : CephesOps<VecF8> {
  using scalar = float;
  static constexpr int size = 8;
  __m256 v;
  VecF8() = default;
  VecF8(__m256 x) : v(x) {}
  static VecF8 zero() { return _mm256_setzero_ps(); }
  static VecF8 set1(float x) { return _mm256_set1_ps(x); }
  static VecF8 load(const float* p) { return _mm256_loadu_ps(p); }
  static VecF8 load(const Bf16* p) {   // bf16 is the top half of a float
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
  }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  friend VecF8 operator+(const VecF8& a, const VecF8& b) { return _mm256_add_ps(a.v, b.v); }
  friend VecF8 operator*(const VecF8& a, const VecF8& b) { return _mm256_mul_ps(a.v, b.v); }
  friend VecF8 operator-(const VecF8& a, const VecF8& b) { return _mm256_sub_ps(a.v, b.v); }
  static VecF8 fma(const VecF8& a, const VecF8& b, const VecF8& c) { return _mm256_fmadd_ps(a.v, b.v, c.v); }
  static VecF8 fnma(const VecF8& a, const VecF8& b, const VecF8& c) { return _mm256_fnmadd_ps(a.v, b.v, c.v); }   // c - a b
  static VecF8 div(const VecF8& a, const VecF8& b) { return _mm256_div_ps(a.v, b.v); }
  static VecF8 min(const VecF8& a, const VecF8& b) { return _mm256_min_ps(a.v, b.v); }
  static VecF8 max(const VecF8& a, const VecF8& b) { return _mm256_max_ps(a.v, b.v); }
  static VecF8 abs(const VecF8& a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), a.v); }
  static VecF8 round(const VecF8& a) { return _mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static VecF8 pow2i(const VecF8& n) {   // 2^n for integral n in the normal range
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127)), 23));
  }
  static VecF8 scale(const VecF8& y, const VecF8& n) { return y * pow2i(min(n, set1(127.f))); }   // y 2^n, n integral >= -126
  static VecF8 split_exponent(const VecF8& x, VecF8& e) {
    const __m256i emm0 = _mm256_srli_epi32(_mm256_castps_si256(x.v), 23);
    e = _mm256_add_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(emm0, _mm256_set1_epi32(0x7f))), _mm256_set1_ps(1.f));
    return _mm256_or_ps(_mm256_and_ps(x.v, _mm256_castsi256_ps(_mm256_set1_epi32(~0x7f800000))), _mm256_set1_ps(0.5f));
  }
  static VecF8 select_lt(const VecF8& x, const VecF8& t, const VecF8& a) { return _mm256_and_ps(a.v, _mm256_cmp_ps(x.v, t.v, _CMP_LT_OS)); }   // x < t ? a : 0
  static VecF8 select_gt(const VecF8& x, const VecF8& t, const VecF8& a, const VecF8& b) {   // x > t ? a : b
    return _mm256_blendv_ps(b.v, a.v, _mm256_cmp_ps(x.v, t.v, _CMP_GT_OS));
  }
  float sum() const {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_hadd_ps(s, s); s = _mm_hadd_ps(s, s);
    return _mm_cvtss_f32(s);
  }
};
#endif

#ifdef CLAST_AVX512
// 16 float lanes in one AVX-512 register (AVX512F only; bit operations on integers, which AVX512F has for floats
// only with AVX512DQ).
struct VecF16 : CephesOps<VecF16> {
  using scalar = float;
  static constexpr int size = 16;
  __m512 v;
  VecF16() = default;
  VecF16(__m512 x) : v(x) {}
  static VecF16 zero() { return _mm512_setzero_ps(); }
  static VecF16 set1(float x) { return _mm512_set1_ps(x); }
  static VecF16 load(const float* p) { return _mm512_loadu_ps(p); }
  static VecF16 load(const Bf16* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
  }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  friend VecF16 operator+(const VecF16& a, const VecF16& b) { return _mm512_add_ps(a.v, b.v); }
  friend VecF16 operator*(const VecF16& a, const VecF16& b) { return _mm512_mul_ps(a.v, b.v); }
  friend VecF16 operator-(const VecF16& a, const VecF16& b) { return _mm512_sub_ps(a.v, b.v); }
  static VecF16 fma(const VecF16& a, const VecF16& b, const VecF16& c) { return _mm512_fmadd_ps(a.v, b.v, c.v); }
  static VecF16 fnma(const VecF16& a, const VecF16& b, const VecF16& c) { return _mm512_fnmadd_ps(a.v, b.v, c.v); }
  static VecF16 div(const VecF16& a, const VecF16& b) { return _mm512_div_ps(a.v, b.v); }
  static VecF16 min(const VecF16& a, const VecF16& b) { return _mm512_min_ps(a.v, b.v); }
  static VecF16 max(const VecF16& a, const VecF16& b) { return _mm512_max_ps(a.v, b.v); }
  static VecF16 abs(const VecF16& a) { return _mm512_abs_ps(a.v); }
  static VecF16 round(const VecF16& a) { return _mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static VecF16 pow2i(const VecF16& n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n.v), _mm512_set1_epi32(127)), 23));
  }
  static VecF16 scale(const VecF16& y, const VecF16& n) { return _mm512_scalef_ps(y.v, n.v); }   // y 2^n in one instruction
  static VecF16 split_exponent(const VecF16& x, VecF16& e) {
    const __m512i xi = _mm512_castps_si512(x.v), emm0 = _mm512_srli_epi32(xi, 23);
    e = _mm512_add_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(emm0, _mm512_set1_epi32(0x7f))), _mm512_set1_ps(1.f));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(xi, _mm512_set1_epi32(~0x7f800000)), _mm512_castps_si512(_mm512_set1_ps(0.5f))));
  }
  static VecF16 select_lt(const VecF16& x, const VecF16& t, const VecF16& a) { return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x.v, t.v, _CMP_LT_OS), a.v); }
  static VecF16 select_gt(const VecF16& x, const VecF16& t, const VecF16& a, const VecF16& b) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x.v, t.v, _CMP_GT_OS), b.v, a.v);
  }
  VecF8 halves() const {   // lanes i and i + 8 added: 8 lanes with the same sum
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  }
  float sum() const { return halves().sum(); }
};
#endif

// out[i] += (lane sum of vs[i]) for i < count.
template <class V> inline void add_lane_sums(const V* vs, int64_t count, typename V::scalar* out) {
  for (int64_t i = 0; i < count; ++i) out[i] += vs[i].sum();
}
#ifdef CLAST_AVX2
template <> inline void add_lane_sums<VecF8>(const VecF8* vs, int64_t count, float* out) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {   // 8 horizontal sums at once (a transpose by hadd)
    __m256 a = _mm256_hadd_ps(vs[i].v, vs[i + 1].v), b = _mm256_hadd_ps(vs[i + 2].v, vs[i + 3].v);
    __m256 c = _mm256_hadd_ps(vs[i + 4].v, vs[i + 5].v), d = _mm256_hadd_ps(vs[i + 6].v, vs[i + 7].v);
    a = _mm256_hadd_ps(a, b); c = _mm256_hadd_ps(c, d);
    __m256 s = _mm256_add_ps(_mm256_permute2f128_ps(a, c, 0x20), _mm256_permute2f128_ps(a, c, 0x31));
    _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(out + i), s));
  }
  for (; i < count; ++i) out[i] += vs[i].sum();
}
#endif
#ifdef CLAST_AVX512
template <> inline void add_lane_sums<VecF16>(const VecF16* vs, int64_t count, float* out) {
  VecF8 h[8];
  for (int64_t i = 0; i < count; i += 8) {
    const int64_t m = std::min<int64_t>(8, count - i);
    for (int64_t j = 0; j < m; ++j) h[j] = vs[i + j].halves();
    add_lane_sums(h, m, out + i);
  }
}
#endif

template <typename T> struct Args {
  int64_t b, L, d, n, K, nck;          // sizes; K tokens per checkpoint chunk, nck chunks
  const T *u, *dt, *At, *B, *C;        // dt: delta as given (before the bias and softplus)
  const T *bias, *D, *z, *gy;          // optional (nullptr): delta_bias (d), D (d), gate z (b, L, d)
  bool softplus;
  int64_t sBb, sBl, sCb, sCl, szb, szl; // batch / token strides of B, C and z
  T *y, *ck, *gu, *gdt, *gA, *gD, *gz; // ck: (b, nck, n, d) states before each chunk; gA: (b, n, d); gD: (b, d)
};

// delta_t of channels [c0, c0 + W) at row offset o: delta (+ bias), then softplus if asked; dsig: d delta_t / d delta.
template <class V, typename T> inline V step_size(const Args<T>& p, int64_t o, int64_t c0, V* dsig = nullptr) {
  V x = V::load(p.dt + o);
  if (p.bias) x = x + V::load(p.bias + c0);
  if (!p.softplus) { if (dsig) *dsig = V::set1(T(1)); return x; }
  if (dsig) *dsig = x.sigmoid();
  return x.softplus();
}

// Forward of channels [c0, c0 + V::size) of batch element bi.
// NS > 0: the state size known at compile time (Mamba's 16), so the states stay in registers; 0: p.n at run time.
template <class V, typename T, int NS = 0> void fwd_block(const Args<T>& p, int64_t bi, int64_t c0) {
  const int64_t L = p.L, D = p.d, N = NS > 0 ? NS : p.n;
  constexpr int64_t NB = NS > 0 ? NS : 1;
  V hs[NB], A2s[NB];
  std::vector<V> hv(NS > 0 ? 0 : N), A2v(NS > 0 ? 0 : N);
  V* h = NS > 0 ? hs : hv.data();
  V* A2 = NS > 0 ? A2s : A2v.data();   // A log2(e): the decays are 2^(delta A2)
  for (int64_t k = 0; k < N; ++k) { h[k] = V::zero(); A2[k] = V::load(p.At + k * D + c0) * V::set1(T(kLog2e)); }
  const V Dv = p.D ? V::load(p.D + c0) : V::zero();
  V dt = L > 0 ? step_size<V>(p, bi * L * D + c0, c0) : V::zero();
  for (int64_t t = 0; t < L; ++t) {
    if (p.ck && t % p.K == 0) {
      T* ck = p.ck + ((bi * p.nck + t / p.K) * N) * D + c0;
      for (int64_t k = 0; k < N; ++k) h[k].store(ck + k * D);
    }
    const int64_t o = (bi * L + t) * D + c0;
    const V u = V::load(p.u + o), du = dt * u, dtt = dt;
    if (t + 1 < L) dt = step_size<V>(p, o + D, c0);   // the next token's step size, off this token's critical path
    const T* Bt = p.B + bi * p.sBb + t * p.sBl;
    const T* Ct = p.C + bi * p.sCb + t * p.sCl;
    V y0 = V::zero(), y1 = V::zero();                 // two partial sums: half the dependency chain of one
    for (int64_t k = 0; k < N; ++k) {
      h[k] = V::fma((dtt * A2[k]).exp2_decay(), h[k], du * V::set1(Bt[k]));
      if (k % 2 == 0) y0 = V::fma(h[k], V::set1(Ct[k]), y0); else y1 = V::fma(h[k], V::set1(Ct[k]), y1);
    }
    V y = y0 + y1;
    if (p.D) y = V::fma(Dv, u, y);
    if (p.z) { const V z = V::load(p.z + bi * p.szb + t * p.szl + c0); y = y * z * z.sigmoid(); }
    y.store(p.y + o);
  }
}

// Backward of channels [c0, c0 + V::size) of batch element bi; gB, gC: this work item's (L, n) partial sums.
template <class V, typename T> void bwd_block(const Args<T>& p, int64_t bi, int64_t c0, T* gB, T* gC,
                                              std::vector<V>& bufA, std::vector<V>& bufH, std::vector<V>& bufT) {
  const int64_t L = p.L, D = p.d, N = p.n, K = p.K;
  std::vector<V> A(N), A2(N), Gn(N, V::zero()), gA(N, V::zero()), h0(N), lB(N), lC(N);
  for (int64_t k = 0; k < N; ++k) { A[k] = V::load(p.At + k * D + c0); A2[k] = A[k] * V::set1(T(kLog2e)); }
  const V Dv = p.D ? V::load(p.D + c0) : V::zero(), one = V::set1(T(1));
  V gD = V::zero();
  bufA.resize(K * N); bufH.resize(K * N); bufT.resize(2 * K);
  for (int64_t c = p.nck - 1; c >= 0; --c) {
    const int64_t s = c * K, e = std::min(s + K, L);
    const T* ck = p.ck + ((bi * p.nck + c) * N) * D + c0;
    for (int64_t k = 0; k < N; ++k) h0[k] = V::load(ck + k * D);
    for (int64_t t = s; t < e; ++t) {                          // recompute this chunk's step sizes, decays and states
      const int64_t o = (bi * L + t) * D + c0, i = (t - s) * N;
      const V dt = step_size<V>(p, o, c0, &bufT[2 * (t - s) + 1]), du = dt * V::load(p.u + o);
      bufT[2 * (t - s)] = dt;
      const T* Bt = p.B + bi * p.sBb + t * p.sBl;
      const V* hp = t == s ? h0.data() : &bufH[i - N];
      for (int64_t k = 0; k < N; ++k) {
        bufA[i + k] = (dt * A2[k]).exp2_decay();   // as the forward
        bufH[i + k] = V::fma(bufA[i + k], hp[k], du * V::set1(Bt[k]));
      }
    }
    for (int64_t t = e - 1; t >= s; --t) {                     // the adjoint, backwards in time
      const int64_t o = (bi * L + t) * D + c0, i = (t - s) * N;
      const V dt = bufT[2 * (t - s)], dsig = bufT[2 * (t - s) + 1], u = V::load(p.u + o), du = dt * u;
      const T* Bt = p.B + bi * p.sBb + t * p.sBl;
      const T* Ct = p.C + bi * p.sCb + t * p.sCl;
      V g = V::load(p.gy + o);
      if (p.z) {                                                 // out = y * silu(z): the gate's gradient needs y
        V y = V::zero();
        for (int64_t k = 0; k < N; ++k) y = V::fma(bufH[i + k], V::set1(Ct[k]), y);
        if (p.D) y = V::fma(Dv, u, y);
        const V z = V::load(p.z + bi * p.szb + t * p.szl + c0), sz = z.sigmoid();
        (g * y * sz * V::fma(z, one - sz, one)).store(p.gz + o);
        g = g * z * sz;
      }
      if (p.D) gD = V::fma(g, u, gD);
      const V* hp = t == s ? h0.data() : &bufH[i - N];
      V sGB = V::zero(), sPA = V::zero();
      for (int64_t k = 0; k < N; ++k) {
        const V G = V::fma(g, V::set1(Ct[k]), Gn[k]);         // dL/dh_t
        lC[k] = g * bufH[i + k];
        lB[k] = G * du;
        sGB = V::fma(G, V::set1(Bt[k]), sGB);
        const V P = G * bufA[i + k] * hp[k];                    // G_t exp(dt A) h_{t-1}
        sPA = V::fma(P, A[k], sPA);
        gA[k] = V::fma(P, dt, gA[k]);
        Gn[k] = bufA[i + k] * G;                                // carried to t - 1
      }
      (p.D ? V::fma(Dv, g, dt * sGB) : dt * sGB).store(p.gu + o);
      (V::fma(u, sGB, sPA) * dsig).store(p.gdt + o);
      add_lane_sums(lC.data(), N, gC + t * N);
      add_lane_sums(lB.data(), N, gB + t * N);
    }
  }
  for (int64_t k = 0; k < N; ++k) gA[k].store(p.gA + (bi * N + k) * D + c0);
  if (p.D) gD.store(p.gD + bi * D + c0);
}

template <typename T> struct Tail { using type = VecN<T, 1>; };   // the channels after the last full block
#ifdef CLAST_AVX512
template <> struct Tail<float> { using type = VecF8; };            // 8 at a time while they last, then one by one
#endif

// Runs f(V{}, c) over the channels [c, d) after the last full block: Tail<T> blocks, then single channels (V{}: a type tag).
template <typename T, class F> void each_tail_block(int64_t c, int64_t d, F f) {
  using H = typename Tail<T>::type;
  for (; c + H::size <= d; c += H::size) f(H{}, c);
  for (; c < d; ++c) f(VecN<T, 1>{}, c);
}
template <typename T> struct Lanes { using type = VecN<T, 4>; };
#if defined(CLAST_AVX512)
template <> struct Lanes<float> { using type = VecF16; };
#elif defined(CLAST_AVX2)
template <> struct Lanes<float> { using type = VecF8; };
#else
template <> struct Lanes<float> { using type = VecN<float, 8>; };
#endif

struct FlushDenormals {   // flush-to-zero / denormals-are-zero for float32 work (restored at the end of the scope)
#ifdef CLAST_AVX2
  unsigned csr; bool on;
  explicit FlushDenormals(bool enable) : csr(_mm_getcsr()), on(enable) { if (on) _mm_setcsr(csr | 0x8040); }
  ~FlushDenormals() { if (on) _mm_setcsr(csr); }
#else
  explicit FlushDenormals(bool) {}
#endif
};

void check_inputs(const at::Tensor& u, const at::Tensor& dt, const at::Tensor& At, const at::Tensor& B, const at::Tensor& C,
                  const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& D, const std::optional<at::Tensor>& z) {
  TORCH_CHECK(u.device().is_cpu(), "clast_scan: CPU tensors only");
  TORCH_CHECK(u.scalar_type() == at::kFloat || u.scalar_type() == at::kDouble, "clast_scan: float32 or float64 only");
  for (const at::Tensor* t : {&dt, &At, &B, &C}) TORCH_CHECK(t->scalar_type() == u.scalar_type(), "clast_scan: all inputs must have one dtype");
  TORCH_CHECK(u.dim() == 3 && u.is_contiguous() && dt.sizes() == u.sizes() && dt.is_contiguous(), "clast_scan: u, delta must be contiguous (b, L, d)");
  TORCH_CHECK(At.dim() == 2 && At.size(1) == u.size(2) && At.is_contiguous(), "clast_scan: At must be contiguous (n, d)");
  for (const at::Tensor* t : {&B, &C})
    TORCH_CHECK(t->dim() == 3 && t->size(0) == u.size(0) && t->size(1) == u.size(1) && t->size(2) == At.size(0) && t->stride(2) == 1,
                "clast_scan: B, C must be (b, L, n) with unit stride over n");
  for (const std::optional<at::Tensor>* t : {&bias, &D})
    if (t->has_value()) TORCH_CHECK((*t)->dim() == 1 && (*t)->size(0) == u.size(2) && (*t)->is_contiguous() && (*t)->scalar_type() == u.scalar_type(),
                                    "clast_scan: delta_bias, D must be contiguous (d,) of u's dtype");
  if (z.has_value()) TORCH_CHECK(z->sizes() == u.sizes() && z->stride(2) == 1 && z->scalar_type() == u.scalar_type(),
                                 "clast_scan: z must be (b, L, d) like u, with unit stride over d");
}

template <typename T> Args<T> make_args(const at::Tensor& u, const at::Tensor& dt, const at::Tensor& At, const at::Tensor& B,
                                        const at::Tensor& C, const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& D,
                                        const std::optional<at::Tensor>& z, bool softplus, int64_t K) {
  Args<T> p{};
  p.b = u.size(0); p.L = u.size(1); p.d = u.size(2); p.n = At.size(0);
  p.K = std::max<int64_t>(1, K); p.nck = (p.L + p.K - 1) / p.K;
  p.u = u.data_ptr<T>(); p.dt = dt.data_ptr<T>(); p.At = At.data_ptr<T>(); p.B = B.data_ptr<T>(); p.C = C.data_ptr<T>();
  p.bias = bias.has_value() ? bias->data_ptr<T>() : nullptr;
  p.D = D.has_value() ? D->data_ptr<T>() : nullptr;
  p.z = z.has_value() ? z->data_ptr<T>() : nullptr;
  p.softplus = softplus;
  p.sBb = B.stride(0); p.sBl = B.stride(1); p.sCb = C.stride(0); p.sCl = C.stride(1);
  if (z.has_value()) { p.szb = z->stride(0); p.szl = z->stride(1); }
  return p;
}

// Runs f(bi, c0) over the channel blocks [c0, c0 + W) of every batch element, in parallel.
template <class F> void for_blocks(int64_t b, int64_t d, int64_t W, F f) {
  const int64_t nb = (d + W - 1) / W;
  at::parallel_for(0, b * nb, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) f(i / nb, (i % nb) * W);
  });
}

template <typename T> void fwd_impl(Args<T>& p) {
  using V = typename Lanes<T>::type;
  constexpr int W = V::size;
  for_blocks(p.b, p.d, W, [&](int64_t bi, int64_t c0) {
    FlushDenormals ftz(std::is_same<T, float>::value);
    if (c0 + W <= p.d) { if (p.n == 16) fwd_block<V, T, 16>(p, bi, c0); else fwd_block<V>(p, bi, c0); return; }
    each_tail_block<T>(c0, p.d, [&](auto v, int64_t c) { fwd_block<decltype(v)>(p, bi, c); });
  });
}

template <typename T> void bwd_impl(Args<T>& p, T* gB, T* gC, int64_t groups) {
  using V = typename Lanes<T>::type;
  using V1 = VecN<T, 1>;
  constexpr int W = V::size;
  const int64_t nb = (p.d + W - 1) / W, G = std::max<int64_t>(1, std::min(groups, nb)), LN = p.L * p.n;
  at::parallel_for(0, p.b * G, 1, [&](int64_t lo, int64_t hi) {
    FlushDenormals ftz(std::is_same<T, float>::value);
    std::vector<V> bufA, bufH, bufT;
    using H = typename Tail<T>::type;
    std::vector<H> bufAh, bufHh, bufTh;
    std::vector<V1> bufA1, bufH1, bufT1;
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t bi = i / G, g = i % G;
      T* gBi = gB + (g * p.b + bi) * LN;
      T* gCi = gC + (g * p.b + bi) * LN;
      for (int64_t j = g * nb / G; j < (g + 1) * nb / G; ++j) {
        const int64_t c0 = j * W;
        if (c0 + W <= p.d) bwd_block<V>(p, bi, c0, gBi, gCi, bufA, bufH, bufT);
        else each_tail_block<T>(c0, p.d, [&](auto v, int64_t c) {
          using U = decltype(v);
          if constexpr (std::is_same<U, H>::value) bwd_block<U>(p, bi, c, gBi, gCi, bufAh, bufHh, bufTh);
          else bwd_block<U>(p, bi, c, gBi, gCi, bufA1, bufH1, bufT1);
        });
      }
    }
  });
}

// out (b, L, d) = (y + D u) * silu(z) and, if save, the checkpoints (b, nck, n, d) for the backward.
std::vector<at::Tensor> scan_fwd(const at::Tensor& u, const at::Tensor& dt, const at::Tensor& At, const at::Tensor& B, const at::Tensor& C,
                                 const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& D, const std::optional<at::Tensor>& z,
                                 bool softplus, bool save, int64_t chunk) {
  check_inputs(u, dt, At, B, C, bias, D, z);
  at::Tensor y = at::empty(u.sizes(), u.options()), ck;
  const int64_t K = std::max<int64_t>(1, chunk), nck = (u.size(1) + K - 1) / K;
  ck = save ? at::empty({u.size(0), nck, At.size(0), u.size(2)}, u.options()) : at::empty({0}, u.options());
  auto run = [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    auto p = make_args<T>(u, dt, At, B, C, bias, D, z, softplus, K);
    p.y = y.data_ptr<T>(); p.ck = save ? ck.data_ptr<T>() : nullptr;
    fwd_impl(p);
  };
  if (u.scalar_type() == at::kFloat) run((float*)nullptr); else run((double*)nullptr);
  return {y, ck};
}

// Gradients: gu, gdelta (b, L, d; w.r.t. delta as given); gA per batch element (b, n, d); gB, gC as `groups` partial
// sums (groups, b, L, n); gD per batch element (b, d); gz (b, L, d). gD, gz are empty when D, z are not given.
std::vector<at::Tensor> scan_bwd(const at::Tensor& u, const at::Tensor& dt, const at::Tensor& At, const at::Tensor& B, const at::Tensor& C,
                                 const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& D, const std::optional<at::Tensor>& z,
                                 bool softplus, const at::Tensor& ck, const at::Tensor& gy, int64_t chunk, int64_t groups) {
  check_inputs(u, dt, At, B, C, bias, D, z);
  TORCH_CHECK(gy.sizes() == u.sizes() && gy.is_contiguous() && gy.scalar_type() == u.scalar_type(), "clast_scan: gy must be contiguous like u");
  const int64_t b = u.size(0), L = u.size(1), d = u.size(2), n = At.size(0);
  const int64_t K = std::max<int64_t>(1, chunk), nck = (L + K - 1) / K;
  TORCH_CHECK(ck.is_contiguous() && ck.dim() == 4 && ck.size(0) == b && ck.size(1) == nck && ck.size(2) == n && ck.size(3) == d,
              "clast_scan: checkpoints do not match the inputs");
  const int64_t W = u.scalar_type() == at::kFloat ? Lanes<float>::type::size : Lanes<double>::type::size;
  const int64_t G = std::max<int64_t>(1, std::min(groups, (d + W - 1) / W));
  at::Tensor gu = at::empty(u.sizes(), u.options()), gdt = at::empty(u.sizes(), u.options());
  at::Tensor gA = at::empty({b, n, d}, u.options());
  at::Tensor gB = at::zeros({G, b, L, n}, u.options()), gC = at::zeros({G, b, L, n}, u.options());
  at::Tensor gD = D.has_value() ? at::empty({b, d}, u.options()) : at::empty({0}, u.options());
  at::Tensor gz = z.has_value() ? at::empty(u.sizes(), u.options()) : at::empty({0}, u.options());
  auto run = [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    auto p = make_args<T>(u, dt, At, B, C, bias, D, z, softplus, K);
    p.gy = gy.data_ptr<T>(); p.ck = const_cast<T*>(ck.data_ptr<T>());
    p.gu = gu.data_ptr<T>(); p.gdt = gdt.data_ptr<T>(); p.gA = gA.data_ptr<T>();
    p.gD = D.has_value() ? gD.data_ptr<T>() : nullptr; p.gz = z.has_value() ? gz.data_ptr<T>() : nullptr;
    bwd_impl(p, gB.data_ptr<T>(), gC.data_ptr<T>(), G);
  };
  if (u.scalar_type() == at::kFloat) run((float*)nullptr); else run((double*)nullptr);
  return {gu, gdt, gA, gB, gC, gD, gz};
}

// ---- Inference kernels of the rest of the adaLN-SSM block (float32; no autograd: clast calls them under no_grad) ----

// Mamba's causal depthwise conv + SiLU on token-major x (b, L, d) (float32 or bfloat16; y is float32) (unit stride over d, any token / batch stride, e.g. a
// chunk of in_proj's output): y_t = silu(bias + sum_k w_k x_{t-K+1+k}), zeros before the first token. wt = weight^T (K, d).
// One pass instead of PyTorch's pad + K multiply-adds + SiLU (K + 2 passes over b x L x d).
template <class V, typename In> void conv_block(const In* x, int64_t sl, const float* wt, const float* bias, int64_t K, int64_t d,
                                   int64_t t0, int64_t t1, int64_t c0, float* y) {
  std::vector<V> w(K);
  for (int64_t k = 0; k < K; ++k) w[k] = V::load(wt + k * d + c0);
  const V b = bias ? V::load(bias + c0) : V::zero();
  for (int64_t t = t0; t < t1; ++t) {
    V acc = V::fma(V::load(x + t * sl + c0), w[K - 1], b);
    for (int64_t k = 0; k < K - 1; ++k) {
      const int64_t s = t - K + 1 + k;
      if (s >= 0) acc = V::fma(V::load(x + s * sl + c0), w[k], acc);
    }
    (acc * acc.sigmoid()).store(y + t * d + c0);
  }
}

template <typename In> void conv_silu_impl(const at::Tensor& x, const at::Tensor& wt, const float* bp, at::Tensor& y) {
  const int64_t b = x.size(0), L = x.size(1), d = x.size(2), K = wt.size(0);
  using V = Lanes<float>::type;
  const int64_t TB = 256, nt = (L + TB - 1) / TB;   // token blocks: the work items
  const In* xp = reinterpret_cast<const In*>(x.data_ptr());
  at::parallel_for(0, b * nt, 1, [&](int64_t lo, int64_t hi) {
    FlushDenormals ftz(true);
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t bi = i / nt, t0 = (i % nt) * TB, t1 = std::min(L, t0 + TB);
      const In* xb = xp + bi * x.stride(0);
      float* yb = y.data_ptr<float>() + bi * L * d;
      int64_t c = 0;
      for (; c + V::size <= d; c += V::size) conv_block<V>(xb, x.stride(1), wt.data_ptr<float>(), bp, K, d, t0, t1, c, yb);
      each_tail_block<float>(c, d, [&](auto v, int64_t c) { conv_block<decltype(v)>(xb, x.stride(1), wt.data_ptr<float>(), bp, K, d, t0, t1, c, yb); });
    }
  });
}

at::Tensor conv_silu(const at::Tensor& x, const at::Tensor& wt, const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.device().is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16) && x.dim() == 3 && x.stride(2) == 1,
              "clast_scan.conv_silu: x must be a float32 or bfloat16 CPU (b, L, d) tensor with unit stride over d");
  const int64_t d = x.size(2);
  TORCH_CHECK(wt.dim() == 2 && wt.size(1) == d && wt.is_contiguous() && wt.scalar_type() == at::kFloat, "clast_scan.conv_silu: wt must be contiguous (K, d) float32");
  if (bias.has_value()) TORCH_CHECK(bias->dim() == 1 && bias->size(0) == d && bias->is_contiguous() && bias->scalar_type() == at::kFloat,
                                    "clast_scan.conv_silu: bias must be contiguous (d,) float32");
  at::Tensor y = at::empty({x.size(0), x.size(1), d}, x.options().dtype(at::kFloat));
  const float* bp = bias.has_value() ? bias->data_ptr<float>() : nullptr;
  if (x.scalar_type() == at::kFloat) conv_silu_impl<float>(x, wt, bp, y); else conv_silu_impl<Bf16>(x, wt, bp, y);
  return y;
}

// The fusion's mvn on a channels-last map seen as x (b, P, c) contiguous (P pixels; float32 or bfloat16, y float32): per sample and channel
// (x - mean) / sqrt(var + eps), unbiased variance, two passes for the statistics. Sums run in float over blocks of
// kRows pixels and in double across blocks (PyTorch's var is as accurate; a plain float sum over 16k pixels is not).
constexpr int64_t kRows = 16;
template <class V, typename In> void mvn_block(const In* x, int64_t P, int64_t C, int64_t c0, double eps, float* y) {
  constexpr int W = V::size;
  double mean[W] = {}, m2[W] = {};
  float part[W];
  for (int64_t r0 = 0; r0 < P; r0 += kRows) {
    V s = V::zero();
    for (int64_t r = r0; r < std::min(P, r0 + kRows); ++r) s = s + V::load(x + r * C + c0);
    s.store(part);
    for (int j = 0; j < W; ++j) mean[j] += part[j];
  }
  float mf[W];
  for (int j = 0; j < W; ++j) { mean[j] /= double(P); mf[j] = float(mean[j]); }
  const V mv = V::load(mf);
  for (int64_t r0 = 0; r0 < P; r0 += kRows) {
    V s = V::zero();
    for (int64_t r = r0; r < std::min(P, r0 + kRows); ++r) { const V e = V::load(x + r * C + c0) - mv; s = V::fma(e, e, s); }
    s.store(part);
    for (int j = 0; j < W; ++j) m2[j] += part[j];
  }
  float rs[W];
  for (int j = 0; j < W; ++j) rs[j] = float(1.0 / std::sqrt(m2[j] / double(std::max<int64_t>(1, P - 1)) + eps));
  const V rv = V::load(rs);
  for (int64_t r = 0; r < P; ++r) ((V::load(x + r * C + c0) - mv) * rv).store(y + r * C + c0);
}

template <typename In> void mvn_cl_impl(const at::Tensor& x, double eps, at::Tensor& y) {
  const int64_t b = x.size(0), P = x.size(1), C = x.size(2);
  using V = Lanes<float>::type;
  const int64_t nb = (C + V::size - 1) / V::size;
  const In* xp = reinterpret_cast<const In*>(x.data_ptr());
  at::parallel_for(0, b * nb, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t bi = i / nb, c0 = (i % nb) * V::size;
      const In* xb = xp + bi * P * C;
      float* yb = y.data_ptr<float>() + bi * P * C;
      if (c0 + V::size <= C) mvn_block<V>(xb, P, C, c0, eps, yb);
      else each_tail_block<float>(c0, C, [&](auto v, int64_t c) { mvn_block<decltype(v)>(xb, P, C, c, eps, yb); });
    }
  });
}

at::Tensor mvn_cl(const at::Tensor& x, double eps) {
  TORCH_CHECK(x.device().is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16) && x.dim() == 3 && x.is_contiguous(),
              "clast_scan.mvn_cl: x must be a contiguous float32 or bfloat16 CPU (b, pixels, channels) tensor");
  at::Tensor y = at::empty(x.sizes(), x.options().dtype(at::kFloat));
  if (x.scalar_type() == at::kFloat) mvn_cl_impl<float>(x, eps, y); else mvn_cl_impl<Bf16>(x, eps, y);
  return y;
}

// The vector width this build runs float32 with (what -march=native found).
std::string simd() {
#if defined(CLAST_AVX512)
  return "avx512 (16 float lanes)";
#elif defined(CLAST_AVX2)
  return "avx2+fma (8 float lanes)";
#else
  return "portable (no SIMD intrinsics)";
#endif
}

}  // namespace

TORCH_LIBRARY(clast_scan, m) {
  m.def("simd() -> str", &simd);
  m.def("conv_silu(Tensor x, Tensor wt, Tensor? bias) -> Tensor", &conv_silu);
  m.def("mvn_cl(Tensor x, float eps) -> Tensor", &mvn_cl);
  m.def("fwd(Tensor u, Tensor delta, Tensor At, Tensor B, Tensor C, Tensor? delta_bias, Tensor? D, Tensor? z, bool softplus, "
        "bool save, int chunk) -> Tensor[]", &scan_fwd);
  m.def("bwd(Tensor u, Tensor delta, Tensor At, Tensor B, Tensor C, Tensor? delta_bias, Tensor? D, Tensor? z, bool softplus, "
        "Tensor ck, Tensor gy, int chunk, int groups) -> Tensor[]", &scan_bwd);
}
