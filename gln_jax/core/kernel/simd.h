// SIMD building blocks of the fused kernel, shared by its handlers (online_fit.cc, gates.cc):
// 64-byte vectors by GCC's vector extensions, dot products in a fixed summation order, the
// clipped row updates, aligned scratch memory.
//
// Every function sums and rounds in an order fixed by its arguments alone (never by the
// thread, the call or the data's alignment), so the kernel's results do not depend on how a
// call is split.

#ifndef GLN_JAX_CORE_KERNEL_SIMD_H_
#define GLN_JAX_CORE_KERNEL_SIMD_H_

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <utility>

namespace gln_jax {

// A 64-byte vector of T (one AVX-512 register; the compiler splits it where vectors are
// narrower), its unaligned twin for loads and stores, and its lanes.
template <typename T>
using Vec __attribute__((vector_size(64))) = T;
template <typename T>
using VecU __attribute__((vector_size(64), aligned(sizeof(T)))) = T;
template <typename T>
constexpr int kVec = 64 / sizeof(T);

// Independent partial sums of a dot product: a fixed summation order (so every run and every
// thread count gives the same bits) that the compiler keeps in four vector registers of 64
// bytes, enough to hide the latency of the additions. Lane j of the partial sums adds the
// products of entries i = j (mod kLanes), in ascending i, to a partial sum that starts at +0.
template <typename T>
constexpr int kLanes = 4 * kVec<T>;

// Pairwise sum of the partial sums: acc[j] += acc[j + width / 2] for width = Width,
// Width / 2, ..., 2. Each step has a constant trip count, so it compiles to a few vector
// additions (a loop over a variable width ran scalar, which cost more than the products of a
// narrow layer).
template <typename T, int Width>
inline T Fold(T* acc) {
  if constexpr (Width == 1) {
    return acc[0];
  } else {
    for (int j = 0; j < Width / 2; ++j) acc[j] += acc[j + Width / 2];
    return Fold<T, Width / 2>(acc);
  }
}

// The dot product of a row of n <= Width <= kLanes entries (Width a power of two). Lanes past
// n hold +0 and a partial sum is never -0 (it starts at +0), so adding them changes nothing:
// the pairwise sum of all kLanes lanes equals that of the first Width (a narrow layer's neuron
// skips the folds of empty lanes).
template <typename T, int Width>
inline T NarrowDot(const T* __restrict w, const T* __restrict x, int64_t n) {
  T acc[Width];
  for (int j = 0; j < Width; ++j) acc[j] = j < n ? T(0) + w[j] * x[j] : T(0);
  return Fold<T, Width>(acc);
}

template <typename T>
T Dot(const T* __restrict w, const T* __restrict x, int64_t n) {
  constexpr int V = kVec<T>, lanes = kLanes<T>;
  if (n <= 4) return NarrowDot<T, 4>(w, x, n);
  if (n <= 8) return NarrowDot<T, 8>(w, x, n);
  if (n <= 16) return NarrowDot<T, 16>(w, x, n);
  if (n <= 32) return NarrowDot<T, 32>(w, x, n);
  // lanes [r * V, (r + 1) * V) of the partial sums in acc[r], kept in registers
  Vec<T> acc[4] = {};
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const Vec<T> a = *reinterpret_cast<const VecU<T>*>(w + i + r * V);
      const Vec<T> b = *reinterpret_cast<const VecU<T>*>(x + i + r * V);
      acc[r] += a * b;
    }
  }
  if (i < n) {  // the tail's products, +0 in its empty lanes (they add nothing, see NarrowDot)
    alignas(64) T tail[lanes];
    const int64_t rest = n - i;
    for (int j = 0; j < lanes; ++j) tail[j] = j < rest ? w[i + j] * x[i + j] : T(0);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) acc[r] += *reinterpret_cast<const Vec<T>*>(tail + r * V);
  }
  // the first two folds (widths 4V and 2V) on whole vectors, the rest on one vector's lanes
  acc[0] += acc[2];
  acc[1] += acc[3];
  acc[0] += acc[1];
  alignas(64) T last[V];
  *reinterpret_cast<Vec<T>*>(last) = acc[0];
  return Fold<T, V>(last);
}

template <typename T>
void Update(T* __restrict w, const T* __restrict x, T g, T lo, T hi, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T v = w[i] - g * x[i];
    w[i] = std::min(std::max(v, lo), hi);
  }
}

// Update without the clip, for a row whose every updated entry is known to stay within
// [lo, hi] (see BoundedUpdate): the clip would return each entry unchanged, so the bits are
// Update's, for half its vector operations (a subtraction and a product instead of four).
template <typename T>
void UpdateUnclipped(T* __restrict w, const T* __restrict x, T g, int64_t n) {
  for (int64_t i = 0; i < n; ++i) w[i] = w[i] - g * x[i];
}

// top = max(top, |v|) lane by lane (a NaN lane leaves top as it was), and top's largest lane.
template <typename T>
inline Vec<T> KeepLargest(Vec<T> top, Vec<T> v) {
  const Vec<T> zero = {};
  const Vec<T> a = v < zero ? -v : v;
  return top < a ? a : top;
}

template <typename T>
inline T LargestLane(Vec<T> top) {
  T largest = T(0);
  for (int j = 0; j < kVec<T>; ++j) largest = std::max(largest, top[j]);
  return largest;
}

// Update that also returns the largest |entry| of the updated row (NaN entries are skipped).
template <typename T>
T UpdateMax(T* __restrict w, const T* __restrict x, T g, T lo, T hi, int64_t n) {
  constexpr int V = kVec<T>;
  Vec<T> gv, lov, hiv, top = {};
  for (int j = 0; j < V; ++j) {
    gv[j] = g;
    lov[j] = lo;
    hiv[j] = hi;
  }
  int64_t i = 0;
  for (; i + V <= n; i += V) {
    VecU<T>* row = reinterpret_cast<VecU<T>*>(w + i);
    Vec<T> v = *row - gv * *reinterpret_cast<const VecU<T>*>(x + i);
    v = v < lov ? lov : v;  // std::max(v, lo)
    v = hiv < v ? hiv : v;  // std::min(v, hi)
    *row = v;
    top = KeepLargest<T>(top, v);
  }
  T largest = LargestLane<T>(top);
  for (; i < n; ++i) {
    const T v = std::min(std::max(w[i] - g * x[i], lo), hi);
    w[i] = v;
    largest = std::max(largest, std::abs(v));
  }
  return largest;
}

// The largest |x[i]| (NaN entries skipped).
template <typename T>
T LargestAbs(const T* x, int64_t n) {
  constexpr int V = kVec<T>;
  Vec<T> top = {};
  int64_t i = 0;
  for (; i + V <= n; i += V) {
    top = KeepLargest<T>(top, *reinterpret_cast<const VecU<T>*>(x + i));
  }
  T largest = LargestLane<T>(top);
  for (; i < n; ++i) largest = std::max(largest, std::abs(x[i]));
  return largest;
}

// Upper bounds of |w| per row of the wide layers' tables within one call (Tables::bound in
// online_fit.cc), so that most online updates can skip the weight clip exactly. A row's bound
// starts unknown (+inf); an update that may clip (UpdateMax) sets it to the row's largest
// |entry|; an update g * x of a row with bound b moves no entry past b + |g| max|x|, and with
// the rounding of the products and differences (relative 2u each, u the unit roundoff), past
// est = (b + |g| max|x|)(1 + 8 eps) as computed: where est <= the clip, the clip cannot fire,
// the update runs unclipped and est becomes the bound. With GLN's small rates a row's bound
// grows slowly (1e-4 * 7 per update on MNIST against a clip of 5), so almost every update of
// a chunk skips the clip.
// Update of row w (of bound b, see above) by g * x, clipped to [-hi, hi]: the same bits.
template <typename T>
void BoundedUpdate(T& b, T* w, const T* x, T g, T x_largest, T hi, int64_t n) {
  constexpr T grow = T(1) + T(8) * std::numeric_limits<T>::epsilon();
  const T est = (b + std::abs(g) * x_largest) * grow;
  if (est <= hi) {  // false for an unknown (+inf) or NaN bound
    UpdateUnclipped(w, x, g, n);
    b = est;
  } else {
    b = UpdateMax(w, x, g, -hi, hi, n);
  }
}

// A row's summed deltas in a batch: d = g * x for its first example, then d += g * x for
// each later one (in example order, as the reference's product sums them).
template <typename T>
void Scale(T* __restrict d, const T* __restrict x, T g, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] = g * x[i];
}

template <typename T>
void AddScaled(T* __restrict d, const T* __restrict x, T g, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] = d[i] + g * x[i];
}

// Prefetches a row the next neuron reads (and, when `write`, then updates), one cache line at a
// time, while the current neuron's dot runs.
template <typename T>
inline void PrefetchRow(const T* row, int64_t width, bool write) {
  const char* ahead = reinterpret_cast<const char*>(row);
  const int64_t bytes = width * int64_t(sizeof(T));
  if (write) {
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(ahead + b, 1);
  } else {
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(ahead + b, 0);
  }
}

// 64-byte aligned scratch of n entries of T (a std::vector aligns for T only), uninitialised;
// throws std::bad_alloc when memory runs out. Large buffers are mapped and unmapped directly:
// from malloc, a call's working copies (online_fit.cc's Tables) freed by a thread of one call
// stayed in that thread's arena while the next call's threads took others, and a fit's peak
// memory grew by several copies instead of one.
template <typename T>
class Aligned {
 public:
  explicit Aligned(int64_t n = 0) {
    if (n <= 0) return;
    bytes_ = (size_t(n) * sizeof(T) + 63) / 64 * 64;
    void* p = nullptr;
    if (bytes_ >= kMapBytes) {
      p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
    } else {
      p = std::aligned_alloc(64, bytes_);
      if (p == nullptr) throw std::bad_alloc();
    }
    data_ = static_cast<T*>(p);
  }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
  Aligned(Aligned&& other) noexcept { *this = std::move(other); }
  Aligned& operator=(Aligned&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  ~Aligned() {
    if (data_ == nullptr) return;
    if (bytes_ >= kMapBytes) {
      munmap(data_, bytes_);
    } else {
      std::free(data_);
    }
  }
  T* data() const { return data_; }

 private:
  static constexpr size_t kMapBytes = size_t(1) << 20;
  T* data_ = nullptr;
  size_t bytes_ = 0;
};

// n rounded up to whole vectors of T.
template <typename T>
constexpr int64_t Padded(int64_t n) {
  return (n + kVec<T> - 1) / kVec<T> * kVec<T>;
}

// Fused multiply-add lane by lane (one vfmadd where the target has it).
template <typename T>
inline Vec<T> Fma(Vec<T> a, Vec<T> b, Vec<T> c) {
  Vec<T> out;
  for (int j = 0; j < kVec<T>; ++j) out[j] = std::fma(a[j], b[j], c[j]);  // one vfmadd
  return out;
}

}  // namespace gln_jax

#endif  // GLN_JAX_CORE_KERNEL_SIMD_H_
