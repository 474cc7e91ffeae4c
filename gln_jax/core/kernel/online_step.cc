// Exact online learning of a Bernoulli GLN over a chunk of a stream, all layers and classes in
// one XLA FFI call (CPU). It transliterates gln_jax.core.bernoulli.update, one example at a
// time, for every one-vs-all class:
//
//   a layer's inputs x (first layer: the given input logits; then logit of the previous
//   layer's clipped outputs, with 1.0 appended when bias; when only predicting, z itself
//   where the clip did not fire, see RunClasses), for each neuron k:
//     z = w[k, ctx_k] . x,  p = clip(1 / (1 + exp(-z)), eps, 1 - eps),
//     w[k, ctx_k] <- clip(w[k, ctx_k] - (lr * (p - y)) * x, -wc, wc).
//
// The forward pass of a layer reads only that layer's rows and the update of a layer moves
// only that layer's rows, so each layer is updated right after its own forward pass (the same
// result as forwarding every layer first). The classes never interact: they are split into
// contiguous groups, one thread per group, and each class is computed by one thread in stream
// order, so the result does not depend on the number of threads.
//
// Arguments (shapes use the letters of gln_jax/core/types.py):
//   x0 [T, I0] first-layer input logits (shared by the classes), targets [T, C] 0/1 targets,
//   rates [T] shared by the classes or [T, C] one per class (an ensemble's members flattened
//   into the class axis; 0 for padding), then per layer contexts [T, C, K] int32, then per
//   layer the weights [C, K, R, I].
// Results: predictions [T, C] made before each update, then per layer the updated weights
//   (aliased to the weight arguments by the caller, so they are updated in place).
// Attributes: num_layers, num_threads (int64), pred_clipping, weight_clipping (float64), bias,
//   learn, batch_size (int64). With learn false the call only predicts (batched inference):
//   targets and rates are not read, the weights are read in place and no weights are returned.
//   With batch_size B > 1 (dividing T) the steps learn in batches of B with batch semantics
//   (gln_jax.core.bernoulli.batch_update): each example of a batch is predicted with the weights
//   from before the batch, then each row the batch hit moves by the sum of its examples' g * x
//   and is clipped; B = 1 is exact online learning.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <sys/mman.h>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

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

// Upper bounds of |w| per row of the wide layers' tables within one call (Tables::bound), so
// that most online
// updates can skip the weight clip exactly. A row's bound starts unknown (+inf); an update
// that may clip (UpdateMax) sets it to the row's largest |entry|; an update g * x of a row with
// bound b moves no entry past b + |g| max|x|, and with the rounding of the products and
// differences (relative 2u each, u the unit roundoff), past est = (b + |g| max|x|)(1 + 8 eps)
// as computed: where est <= the clip, the clip cannot fire, the update runs unclipped and est
// becomes the bound. With GLN's small rates a row's bound grows slowly (1e-4 * 7 per update
// on MNIST against a clip of 5), so almost every update of a chunk skips the clip.
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

// 64-byte aligned scratch of n entries of T (a std::vector aligns for T only), uninitialised.
// Large buffers are mapped and unmapped directly: from malloc, a call's working copies (see
// Tables) freed by a thread of one call stayed in that thread's arena while the next call's
// threads took others, and a fit's peak memory grew by several copies instead of one.
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

// Where one thread reads and updates a layer's rows: the caller's tables, or a working copy
// whose rows are padded to whole 64-byte vectors and aligned (a row of 785 floats is never
// aligned, and an unaligned vector load or store spans two cache lines: aligned rows made the
// dot products and updates of a fit about 12% faster), copied in at the start of the call and
// out at its end. A call with too few steps to revisit its rows keeps the caller's tables.
template <typename T>
struct Tables {
  T* weights = nullptr;  // the caller's [C, K, R, I]
  Aligned<T> copy;       // [the thread's classes, K, R, stride] when copied
  std::vector<T> bound;  // [the thread's classes, K, R] row bounds when tracked, else empty
  int64_t first = 0, rows_per_class = 0, width = 0, stride = 0;

  T* of(int64_t c) const {  // class c's [K, R, stride] table
    return copy.data() != nullptr ? copy.data() + (c - first) * rows_per_class * stride
                                  : weights + c * rows_per_class * width;
  }
  T* bounds_of(int64_t c) {  // class c's [K, R] row bounds, or nullptr when not tracked
    return bound.empty() ? nullptr : &bound[(c - first) * rows_per_class];
  }
};

// n rounded up to whole vectors of T.
template <typename T>
constexpr int64_t Padded(int64_t n) {
  return (n + kVec<T> - 1) / kVec<T> * kVec<T>;
}

// Most bytes of working copies of the tables (see Tables) per thread and call: a larger model
// runs on the caller's tables, so a call's memory grows by at most this per thread (the first
// layer of 10 classes of [64, 64, 1] on MNIST fits; [128, 128, 1] runs in place).
constexpr int64_t kCopyBytes = int64_t(16) << 20;
// Bytes of first-layer inputs per block of steps (about a quarter of a 1 MiB L2 cache).
constexpr int64_t kBlockBytes = 256 * 1024;
// Bytes of weight tables per tile of classes (about half of a 1-2 MiB L2 cache).
constexpr int64_t kTileBytes = 1024 * 1024;

struct Layer {
  const int32_t* contexts;  // [T, C, K]
  void* weights;            // [C, K, R, I], updated in place
  int64_t neurons, rows, inputs;
};

template <typename T>
void RunClasses(int64_t first, int64_t last, int64_t steps, int64_t classes, const T* x0,
                const T* targets, const T* rates, bool rate_per_class,
                const std::vector<Layer>& layers, bool bias, bool learn, int64_t batch,
                double pred_clipping, double weight_clipping, T* predictions) {
  const T eps_lo = static_cast<T>(pred_clipping);
  const T eps_hi = static_cast<T>(1.0 - pred_clipping);  // as jnp.clip(p, eps, 1.0 - eps)
  const T w_hi = static_cast<T>(weight_clipping);
  const T w_lo = -w_hi;
  // Predicting only, logit(clip(sigmoid(z))) is taken as z itself unless the clip fired (the
  // clipped values are two constants): two of the three transcendental calls per neuron
  // saved, and the result differs from the reference's rounding of logit(sigmoid(z)) by a few
  // ulps of p over p (1 - p). Learning keeps the reference's log(p) - log1p(-p): over a
  // stream, rounding differences compound, and the ports are checked step by step against it.
  const T logit_lo = std::log(eps_lo) - std::log1p(-eps_lo);
  const T logit_hi = std::log(eps_hi) - std::log1p(-eps_hi);
  // A hidden neuron whose z lies well inside (logit_lo, logit_hi) cannot have its p clipped,
  // so predicting only, its next input is z without computing p at all (the same value as the
  // branches below give). The margin exceeds what p's rounding can move: near 1 - eps a few
  // ulps of 1 in p are ulps / eps in z. Near either bound, and for the output neuron, p is
  // computed and compared as the reference does.
  const T margin = T(1e-3) * std::max(T(1), std::max(-logit_lo, logit_hi)) +
                   T(16) * std::numeric_limits<T>::epsilon() / eps_lo;
  const T z_inner_lo = logit_lo + margin, z_inner_hi = logit_hi - margin;
  int64_t widest = 0;
  for (const Layer& layer : layers) widest = std::max(widest, layer.inputs);
  // Steps in blocks, classes in tiles: a tile's weight tables fit in L2 and a block's input
  // rows too. Within a tile, each step runs every class of the tile before the next step, so
  // the step's input row is read into L1 once for all of them (and each row's dot and update
  // then read it from there); each class still sees its own steps in stream order, so the
  // result does not depend on the blocks, the tiles or the threads.
  const bool batched = learn && batch > 1;
  const int64_t unit = batched ? batch : 1;  // steps that share one update
  const int64_t block =
      unit * std::max<int64_t>(1, kBlockBytes / int64_t(sizeof(T) * layers[0].inputs) / unit);
  int64_t model_bytes = 0;
  for (const Layer& layer : layers) {
    model_bytes += layer.neurons * layer.rows * layer.inputs * int64_t(sizeof(T));
  }
  const int64_t tile = std::max<int64_t>(1, kTileBytes / std::max<int64_t>(1, model_bytes));
  // Working copies of the wide layers' tables (see Tables), when each row is visited often
  // enough on average to pay for its copy (learning: 16 visits, each saving an unaligned dot
  // and update, against a row read and written twice; predicting: 64, each saving a dot,
  // against one copy in), and the copies of the thread's classes stay within kCopyBytes.
  std::vector<Tables<T>> tables(layers.size());
  int64_t copied_bytes = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    const Layer& layer = layers[l];
    Tables<T>& own = tables[l];
    own.weights = static_cast<T*>(layer.weights);
    own.first = first;
    own.rows_per_class = layer.neurons * layer.rows;
    own.width = own.stride = layer.inputs;
    const int64_t padded = Padded<T>(layer.inputs);
    const int64_t bytes = (last - first) * own.rows_per_class * padded * int64_t(sizeof(T));
    if (layer.inputs <= 32 || layer.inputs == padded || steps < (learn ? 16 : 64) * layer.rows ||
        copied_bytes + bytes > kCopyBytes) {
      continue;
    }
    copied_bytes += bytes;
    own.stride = padded;
    own.copy = Aligned<T>((last - first) * own.rows_per_class * own.stride);
    for (int64_t r = 0; r < (last - first) * own.rows_per_class; ++r) {
      T* to = own.copy.data() + r * own.stride;
      std::memcpy(to, own.weights + (first * own.rows_per_class + r) * own.width,
                  own.width * sizeof(T));
      std::fill(to + own.width, to + own.stride, T(0));
    }
  }
  // Online learning over enough steps to revisit rows tracks the wide layers' row bounds (see
  // BoundedUpdate): a row's updates after its first in this call then skip the clip. A call
  // with fewer steps than rows per neuron (the per-call step) keeps plain Update.
  std::vector<T> x0_largest;  // max |x0[t]| per step, when the first layer is tracked
  if (learn && !batched) {
    for (size_t l = 0; l < layers.size(); ++l) {
      if (layers[l].inputs <= 32 || steps < layers[l].rows) continue;
      tables[l].bound.assign((last - first) * tables[l].rows_per_class,
                             std::numeric_limits<T>::infinity());
    }
    if (!tables[0].bound.empty()) {
      x0_largest.resize(steps);
      for (int64_t t = 0; t < steps; ++t) {
        x0_largest[t] = LargestAbs(x0 + t * layers[0].inputs, layers[0].inputs);
      }
    }
  }
  // the first layer's inputs of the current steps, copied to aligned rows (shared by the
  // classes of a tile)
  const int64_t x0_stride = Padded<T>(layers[0].inputs);
  Aligned<T> x0_rows(unit * x0_stride);
  // 64-byte aligned hidden inputs
  Aligned<T> x_buffer(widest), next_buffer(widest);
  T* x = x_buffer.data();
  T* next = next_buffer.data();
  // One step of one class: every layer forward, each row updated after the next neuron's dot.
  auto step = [&](int64_t c, int64_t t) {
    const T y = learn ? targets[t * classes + c] : T(0);
    const T lr = !learn ? T(0) : rate_per_class ? rates[t * classes + c] : rates[t];
    const T* in = x0_rows.data();  // step t's first-layer inputs
    T p = T(0);
    for (size_t l = 0; l < layers.size(); ++l) {
      const Layer& layer = layers[l];
      const int64_t k_count = layer.neurons, width = layer.inputs, stride = tables[l].stride;
      const int32_t* ctx = layer.contexts + (t * classes + c) * k_count;
      const bool output_layer = l + 1 == layers.size();
      T* table = tables[l].of(c);
      T* bound_base = tables[l].bounds_of(c);
      const T in_largest = bound_base == nullptr ? T(0)
                           : l == 0              ? x0_largest[t]
                                                 : LargestAbs(in, width);
      // a row's update: w - g * in, clipped (BoundedUpdate skips a clip that cannot fire)
      auto update = [&](T* row, T g, T* bound) {
        if (bound == nullptr) {
          Update(row, in, g, w_lo, w_hi, width);
        } else {
          BoundedUpdate(*bound, row, in, g, in_largest, w_hi, width);
        }
      };
      T* pending_row = nullptr;
      T pending_g = T(0);
      T* pending_bound = nullptr;
      for (int64_t k = 0; k < k_count; ++k) {
        T* row = table + (k * layer.rows + ctx[k]) * stride;
        if (k + 1 < k_count) {  // learning writes the row right after its dot
          PrefetchRow(table + ((k + 1) * layer.rows + ctx[k + 1]) * stride, width, learn);
        }
        const T z = Dot(row, in, width);
        if (!learn && !output_layer && z > z_inner_lo && z < z_inner_hi) {
          next[k] = z;  // a hidden neuron far from both clips: its p is never read
          continue;
        }
        p = T(1) / (T(1) + std::exp(-z));
        if (learn) {
          p = std::min(std::max(p, eps_lo), eps_hi);
          if (!output_layer) next[k] = std::log(p) - std::log1p(-p);  // else nothing reads it
        } else if (p <= eps_lo) {
          p = eps_lo;
          next[k] = logit_lo;
        } else if (p >= eps_hi) {
          p = eps_hi;
          next[k] = logit_hi;
        } else {
          next[k] = z;
        }
        if (!learn) continue;
        // the previous neuron's update runs now, while this neuron's sigmoid and logit resolve
        // (run before them, its operations would wait on them, which stalled the core)
        if (k > 0) update(pending_row, pending_g, pending_bound);
        pending_row = row;
        pending_g = lr * (p - y);
        pending_bound = bound_base == nullptr ? nullptr : &bound_base[k * layer.rows + ctx[k]];
      }
      if (learn && k_count > 0) update(pending_row, pending_g, pending_bound);
      if (bias) next[k_count] = T(1);
      std::swap(x, next);
      in = x;
    }
    predictions[t * classes + c] = p;  // the single output neuron of the last layer
  };
  // A batch of `unit` steps of one class (batch semantics, as gln_jax.core.bernoulli's
  // batch_update): every example forward with the weights from before the batch, then each
  // row the batch hit moved by the sum of its examples' g * x and clipped (every weight lies
  // inside the clip before the batch, so clipping the touched rows equals clipping the
  // table). The forward pass is the learning one (p clipped, next inputs
  // log(p) - log1p(-p)), so a batch of one equals `step`.
  int64_t hidden_width = 0, all_neurons = 0;
  std::vector<int64_t> hidden_at(layers.size() + 1, 0), g_at(layers.size(), 0);
  for (size_t l = 0; l < layers.size(); ++l) {
    g_at[l] = all_neurons;
    all_neurons += layers[l].neurons;
    if (l > 0) {
      hidden_at[l] = hidden_width;
      hidden_width += layers[l].inputs;
    }
  }
  std::vector<T> hidden(batched ? unit * hidden_width : 0);  // [unit, layers 1.. inputs]
  std::vector<T> gs(batched ? unit * all_neurons : 0);       // [unit, every neuron]
  std::vector<T> delta(batched ? widest : 0);                 // one row's summed deltas
  auto batch_step = [&](int64_t c, int64_t t0) {
    const size_t last_layer = layers.size() - 1;
    for (int64_t b = 0; b < unit; ++b) {
      const int64_t t = t0 + b;
      const T y = targets[t * classes + c];
      const T lr = rate_per_class ? rates[t * classes + c] : rates[t];
      T p = T(0);
      for (size_t l = 0; l < layers.size(); ++l) {
        const Layer& layer = layers[l];
        const int64_t k_count = layer.neurons, width = layer.inputs, stride = tables[l].stride;
        const T* in = l == 0 ? x0_rows.data() + b * x0_stride
                             : hidden.data() + b * hidden_width + hidden_at[l];
        T* out = l == last_layer ? nullptr : hidden.data() + b * hidden_width + hidden_at[l + 1];
        const int32_t* ctx = layer.contexts + (t * classes + c) * k_count;
        const T* table = tables[l].of(c);
        for (int64_t k = 0; k < k_count; ++k) {
          const T* row = table + (k * layer.rows + ctx[k]) * stride;
          if (k + 1 < k_count) {  // read now, written only after the whole batch
            PrefetchRow(table + ((k + 1) * layer.rows + ctx[k + 1]) * stride, width, false);
          }
          const T z = Dot(row, in, width);
          p = std::min(std::max(T(1) / (T(1) + std::exp(-z)), eps_lo), eps_hi);
          if (out != nullptr) out[k] = std::log(p) - std::log1p(-p);
          gs[b * all_neurons + g_at[l] + k] = lr * (p - y);
        }
        if (out != nullptr && bias) out[k_count] = T(1);
      }
      predictions[t * classes + c] = p;
    }
    // the updates as the reference's dense batch update: each row the batch hit gets the sum
    // of its examples' g * x (in example order) subtracted, then the clip; a row hit once is
    // the online update
    for (size_t l = 0; l < layers.size(); ++l) {
      const Layer& layer = layers[l];
      const int64_t k_count = layer.neurons, width = layer.inputs, stride = tables[l].stride;
      T* table = tables[l].of(c);
      auto input = [&](int64_t b) -> const T* {
        return l == 0 ? x0_rows.data() + b * x0_stride
                      : hidden.data() + b * hidden_width + hidden_at[l];
      };
      auto context = [&](int64_t b, int64_t k) {
        return layer.contexts[((t0 + b) * classes + c) * k_count + k];
      };
      for (int64_t k = 0; k < k_count; ++k) {
        for (int64_t b = 0; b < unit; ++b) {
          const int32_t r = context(b, k);
          bool first_hit = true;
          for (int64_t e = 0; e < b && first_hit; ++e) first_hit = context(e, k) != r;
          if (!first_hit) continue;  // summed with the row's first example
          T* row = table + (k * layer.rows + r) * stride;
          const T g = gs[b * all_neurons + g_at[l] + k];
          int64_t next = b + 1;
          while (next < unit && context(next, k) != r) ++next;
          if (next == unit) {  // the only example of the batch on this row
            Update(row, input(b), g, w_lo, w_hi, width);
            continue;
          }
          Scale(delta.data(), input(b), g, width);
          for (int64_t e = next; e < unit; ++e) {
            if (context(e, k) == r) {
              AddScaled(delta.data(), input(e), gs[e * all_neurons + g_at[l] + k], width);
            }
          }
          Update(row, delta.data(), T(1), w_lo, w_hi, width);
        }
      }
    }
  };
  for (int64_t start = 0; start < steps; start += block) {
    const int64_t stop = std::min(steps, start + block);
    for (int64_t c0 = first; c0 < last; c0 += tile) {
      const int64_t c1 = std::min(last, c0 + tile);
      for (int64_t t = start; t < stop; t += unit) {
        for (int64_t b = 0; b < unit; ++b) {
          std::memcpy(x0_rows.data() + b * x0_stride, x0 + (t + b) * layers[0].inputs,
                      layers[0].inputs * sizeof(T));
        }
        for (int64_t c = c0; c < c1; ++c) {
          if (batched) {
            batch_step(c, t);
          } else {
            step(c, t);
          }
        }
      }
    }
  }
  if (!learn) return;
  for (const Tables<T>& own : tables) {  // the working copies' rows back to the caller's tables
    if (own.copy.data() == nullptr) continue;
    for (int64_t r = 0; r < (last - first) * own.rows_per_class; ++r) {
      std::memcpy(own.weights + (first * own.rows_per_class + r) * own.width,
                  own.copy.data() + r * own.stride, own.width * sizeof(T));
    }
  }
}

template <typename T>
ffi::Error Run(ffi::AnyBuffer x0, ffi::AnyBuffer targets, ffi::AnyBuffer rates,
               ffi::RemainingArgs rest, ffi::Result<ffi::AnyBuffer> predictions,
               ffi::RemainingRets weights_out, int64_t num_layers, int64_t num_threads,
               double pred_clipping, double weight_clipping, bool bias, bool learn,
               int64_t batch_size) {
  const auto x_dims = x0.dimensions();
  const auto p_dims = predictions->dimensions();
  if (x_dims.size() != 2 || p_dims.size() != 2) {
    return ffi::Error::InvalidArgument("x0 must be [T, I] and predictions [T, C]");
  }
  const int64_t steps = x_dims[0], classes = p_dims[1];
  if (batch_size < 1 || (learn && steps % batch_size != 0)) {
    return ffi::Error::InvalidArgument("batch_size must be positive and divide the steps");
  }
  // [T] or [T, C] (the same values when C == 1)
  const bool rate_per_class = rates.element_count() != size_t(steps);
  if (learn) {
    if (targets.element_count() != size_t(steps * classes) ||
        targets.element_type() != x0.element_type() ||
        rates.element_type() != x0.element_type()) {
      return ffi::Error::InvalidArgument("targets must be [T, C] and rates [T] or [T, C]");
    }
    if (rate_per_class && rates.element_count() != size_t(steps * classes)) {
      return ffi::Error::InvalidArgument("rates must be [T] or [T, C]");
    }
  }
  if (rest.size() != size_t(2 * num_layers) ||
      weights_out.size() != size_t(learn ? num_layers : 0)) {
    return ffi::Error::InvalidArgument("expected contexts and weights of every layer");
  }
  std::vector<Layer> layers;
  int64_t expected_inputs = x_dims[1];
  for (int64_t l = 0; l < num_layers; ++l) {
    auto ctx = rest.get<ffi::AnyBuffer>(l);
    auto w_in = rest.get<ffi::AnyBuffer>(num_layers + l);
    if (!ctx.has_value() || !w_in.has_value()) {
      return ffi::Error::InvalidArgument("could not decode a layer's buffers");
    }
    const auto w_dims = w_in->dimensions();
    const auto c_dims = ctx->dimensions();
    if (w_dims.size() != 4 || c_dims.size() != 3 || w_dims[0] != classes ||
        c_dims[0] != steps || c_dims[1] != classes || c_dims[2] != w_dims[1] ||
        w_dims[3] != expected_inputs || ctx->element_type() != ffi::DataType::S32 ||
        w_in->element_type() != x0.element_type()) {
      return ffi::Error::InvalidArgument("layer " + std::to_string(l) + ": shapes disagree");
    }
    void* out = w_in->untyped_data();  // read in place when only predicting
    if (learn) {
      auto w_out = weights_out.get<ffi::AnyBuffer>(l);
      if (!w_out.has_value() || (*w_out)->size_bytes() != w_in->size_bytes()) {
        return ffi::Error::InvalidArgument("layer " + std::to_string(l) + ": bad weights out");
      }
      out = (*w_out)->untyped_data();
      if (out != w_in->untyped_data()) {  // not aliased: start from a copy of the weights
        std::memcpy(out, w_in->untyped_data(), w_in->size_bytes());
      }
    }
    layers.push_back({ctx->typed_data<int32_t>(), out, w_dims[1], w_dims[2], w_dims[3]});
    expected_inputs = w_dims[1] + (bias ? 1 : 0);
  }
  for (const Layer& layer : layers) {  // a bad index would write outside the tables
    const int64_t count = steps * classes * layer.neurons;
    for (int64_t i = 0; i < count; ++i) {
      if (layer.contexts[i] < 0 || layer.contexts[i] >= layer.rows) {
        return ffi::Error::InvalidArgument("a context index is out of range");
      }
    }
  }
  const T* x = x0.typed_data<T>();
  const T* y = targets.typed_data<T>();
  const T* lr = rates.typed_data<T>();
  T* p = predictions->typed_data<T>();
  const int64_t threads = std::max<int64_t>(1, std::min(num_threads, classes));
  auto work = [&](int64_t i) {
    const int64_t first = classes * i / threads, last = classes * (i + 1) / threads;
    if (threads == 1) {
      RunClasses<T>(first, last, steps, classes, x, y, lr, rate_per_class, layers, bias, learn,
                    batch_size, pred_clipping, weight_clipping, p);
      return;
    }
    // each thread writes its own buffer (no cache line shared between threads), copied at the end
    std::vector<T> own(steps * classes);
    RunClasses<T>(first, last, steps, classes, x, y, lr, rate_per_class, layers, bias, learn,
                  batch_size, pred_clipping, weight_clipping, own.data());
    for (int64_t t = 0; t < steps; ++t) {
      for (int64_t c = first; c < last; ++c) p[t * classes + c] = own[t * classes + c];
    }
  };
  std::vector<std::thread> pool;
  for (int64_t i = 1; i < threads; ++i) pool.emplace_back(work, i);
  work(0);
  for (std::thread& thread : pool) thread.join();
  return ffi::Error::Success();
}

ffi::Error OnlineFit(ffi::AnyBuffer x0, ffi::AnyBuffer targets, ffi::AnyBuffer rates,
                     ffi::RemainingArgs rest, ffi::Result<ffi::AnyBuffer> predictions,
                     ffi::RemainingRets weights_out, int64_t num_layers, int64_t num_threads,
                     double pred_clipping, double weight_clipping, bool bias, bool learn,
                     int64_t batch_size) {
  switch (x0.element_type()) {
    case ffi::DataType::F32:
      return Run<float>(x0, targets, rates, rest, predictions, weights_out, num_layers,
                        num_threads, pred_clipping, weight_clipping, bias, learn, batch_size);
    case ffi::DataType::F64:
      return Run<double>(x0, targets, rates, rest, predictions, weights_out, num_layers,
                         num_threads, pred_clipping, weight_clipping, bias, learn, batch_size);
    default:
      return ffi::Error::InvalidArgument("gln_online_fit supports float32 and float64 only");
  }
}

// Context indices of a batch by halfspace gating (gln_jax.core.gating.batch_context_indices)
// from the transposed hyperplanes of every layer (and every member of an ensemble):
//
//   projection[b, j] = fma-chain over the non-zero side_info[b, i], i ascending, of
//                      side_info[b, i] * planes_t[i, j],
//   bit[b, j] = projection[b, j] > thresholds[j],
//   index of neuron n = sum_t bit[b, n * m + t] << t.
//
// A fused multiply-add of a zero entry returns the partial sum unchanged (the hyperplanes are
// finite), so the projections are the ascending fma-chains over every entry whatever the
// sparsity: the indices never depend on the batch, the blocks or the threads. XLA's matrix
// product sums in another, blocked order, so a projection within rounding of its threshold
// can pick another row there. Examples go in blocks of kGateBlock: the block's union of
// non-zero entries is visited once per kGateWidth columns, each visit reading those columns of
// one hyperplane row into registers for the block's examples (an example's own zeros inside
// the union add nothing). Groups of kGateGroup examples keep their blocks' unions while the
// columns go in tiles of about kGateTileBytes of hyperplane rows, so a wide model's or an
// ensemble's hyperplanes (far more than L2 holds) are read from L2 for a whole group. On images this reads and multiplies a fraction of what a dense product does
// (a fifth of raw MNIST's pixels are non-zero, two fifths of a block's union of four; a deskewed
// image has about half its pixels non-zero, and there the two cost about the same).
//
// Arguments: side_info [B, N], planes_t [N, J], thresholds [J], all of one float dtype; J a
//   multiple of 64 (the columns after the hyperplanes' are zero padding, never read out).
// Results: per layer the indices [B, M, K] int32; the layers' M * K * m columns follow each
//   other in planes_t, layer by layer, each model-major (as the hyperplanes [M, K, m, N]).
// Attributes: context_map_size m (1 to 30), num_threads (int64).

constexpr int kGateBlock = 4;    // examples sharing each load of a hyperplane row
constexpr int kGateVectors = 4;  // vectors of columns per pass (16 accumulators in registers)
constexpr int64_t kGateGroup = 256;              // examples whose unions are kept at once
constexpr int64_t kGateTileBytes = 1024 * 1024;  // hyperplane rows per tile of columns
template <typename T>
constexpr int64_t kGateWidth = kGateVectors * kVec<T>;

template <typename T>
inline Vec<T> Fma(Vec<T> a, Vec<T> b, Vec<T> c) {
  Vec<T> out;
  for (int j = 0; j < kVec<T>; ++j) out[j] = std::fma(a[j], b[j], c[j]);  // one vfmadd
  return out;
}

// Projections of one block of examples over kGateWidth columns starting at j0, into
// out[e * stride + j - j0]: the union entries idx[0, count) and their
// values[s * kGateBlock + e] (zero where example e has none).
template <typename T>
void GatePass(const T* values, const int32_t* idx, int64_t count, const T* planes_t,
              int64_t columns, int64_t j0, T* out, int64_t stride) {
  Vec<T> acc[kGateBlock][kGateVectors] = {};
  for (int64_t s = 0; s < count; ++s) {
    const T* row = planes_t + int64_t(idx[s]) * columns + j0;
    Vec<T> h[kGateVectors];
#pragma GCC unroll 4
    for (int r = 0; r < kGateVectors; ++r) {
      h[r] = *reinterpret_cast<const VecU<T>*>(row + r * kVec<T>);
    }
#pragma GCC unroll 4
    for (int e = 0; e < kGateBlock; ++e) {
      Vec<T> v;
      for (int j = 0; j < kVec<T>; ++j) v[j] = values[s * kGateBlock + e];
#pragma GCC unroll 4
      for (int r = 0; r < kGateVectors; ++r) acc[e][r] = Fma<T>(v, h[r], acc[e][r]);
    }
  }
#pragma GCC unroll 4
  for (int e = 0; e < kGateBlock; ++e) {
#pragma GCC unroll 4
    for (int r = 0; r < kGateVectors; ++r) {
      *reinterpret_cast<VecU<T>*>(out + e * stride + r * kVec<T>) = acc[e][r];
    }
  }
}

// Where each neuron's index goes: the layer's output, its row length (M * K) and the column.
struct GateOutput {
  int32_t* base;
  int64_t stride, column;
};

// The union of non-zero entries of each block of kGateBlock examples: entries idx (ascending)
// and values[s * kGateBlock + e] (zero where example e has none, or past the batch's end).
template <typename T>
int64_t BlockUnion(const T* x, int64_t block, int64_t inputs, uint8_t* nonzero, int32_t* idx,
                   T* values) {
  if (block == kGateBlock) {  // a vector loop
    for (int64_t i = 0; i < inputs; ++i) {
      nonzero[i] = (x[i] != T(0)) | (x[inputs + i] != T(0)) | (x[2 * inputs + i] != T(0)) |
                   (x[3 * inputs + i] != T(0));
    }
  } else {
    for (int64_t i = 0; i < inputs; ++i) {
      bool any = false;
      for (int64_t e = 0; e < block; ++e) any |= x[e * inputs + i] != T(0);
      nonzero[i] = any;
    }
  }
  int64_t count = 0;
  for (int64_t i = 0; i < inputs; ++i) {
    if (!nonzero[i]) continue;
    idx[count] = int32_t(i);
    for (int64_t e = 0; e < kGateBlock; ++e) {
      values[count * kGateBlock + e] = e < block ? x[e * inputs + i] : T(0);
    }
    ++count;
  }
  return count;
}

// The context indices of neurons [n0, n1) of example b from its projections (columns from c0):
// bit t of neuron n is projection[n * m + t] > thresholds[n * m + t].
template <typename T>
void StoreIndices(const T* projection, const T* thresholds, int64_t c0, int64_t n0, int64_t n1,
                  int64_t m, int64_t b, const std::vector<GateOutput>& outputs) {
  for (int64_t n = n0; n < n1; ++n) {
    int32_t index = 0;
    for (int64_t t = 0; t < m; ++t) {
      const int64_t column = n * m + t;
      index |= int32_t(projection[column - c0] > thresholds[column]) << t;
    }
    const GateOutput& out = outputs[n];
    out.base[b * out.stride + out.column] = index;
  }
}

// Vectors of columns per pass of a lone example: 16 accumulators, each non-zero entry's value
// broadcast once for all of them (a block of kGateBlock spends three quarters of its products
// on the padding examples when only one is real, and reads each hyperplane row in four times as
// many pieces).
constexpr int kGateOneVectors = 16;

// Projections of one example over NV vectors of columns starting at j0, into out[j - j0]: its
// non-zero entries idx[0, count) and their values, in ascending order, as GatePass.
template <typename T, int NV>
void GatePassOne(const T* values, const int32_t* idx, int64_t count, const T* planes_t,
                 int64_t columns, int64_t j0, T* out) {
  Vec<T> acc[NV] = {};
  for (int64_t s = 0; s < count; ++s) {
    const T* row = planes_t + int64_t(idx[s]) * columns + j0;
    Vec<T> v;
    for (int j = 0; j < kVec<T>; ++j) v[j] = values[s];
#pragma GCC unroll 16
    for (int r = 0; r < NV; ++r) {
      acc[r] = Fma<T>(v, *reinterpret_cast<const VecU<T>*>(row + r * kVec<T>), acc[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < NV; ++r) *reinterpret_cast<VecU<T>*>(out + r * kVec<T>) = acc[r];
}

// The indices of one example (row b of the batch, entries x): the same fma-chains over its
// non-zero entries as GateExamples, so the same indices, in passes of kGateOneVectors vectors.
template <typename T>
void GateOne(int64_t b, const T* x, int64_t inputs, const T* planes_t, const T* thresholds,
             int64_t columns, int64_t m, int64_t neurons, const std::vector<GateOutput>& outputs) {
  std::unique_ptr<int32_t[]> idx(new int32_t[inputs]);
  std::unique_ptr<T[]> values(new T[inputs]);
  std::unique_ptr<T[]> projection(new T[columns]);
  int64_t count = 0;
  for (int64_t i = 0; i < inputs; ++i) {
    if (x[i] == T(0)) continue;
    idx[count] = int32_t(i);
    values[count++] = x[i];
  }
  constexpr int64_t wide = kGateOneVectors * kVec<T>;
  int64_t j0 = 0;
  for (; j0 + wide <= columns; j0 += wide) {
    GatePassOne<T, kGateOneVectors>(values.get(), idx.get(), count, planes_t, columns, j0,
                                    projection.get() + j0);
  }
  for (; j0 < columns; j0 += kGateWidth<T>) {  // columns are a multiple of kGateWidth
    GatePassOne<T, kGateVectors>(values.get(), idx.get(), count, planes_t, columns, j0,
                                 projection.get() + j0);
  }
  StoreIndices<T>(projection.get(), thresholds, 0, 0, neurons, m, b, outputs);
}

// Examples [first, last) in groups of kGateGroup: each group's block unions once, then the
// columns in tiles of `tile` (hyperplane rows of about kGateTileBytes, so a tile stays in L2
// while every block of the group reads it; a multiple of kGateWidth and of m, so a neuron's
// m columns never straddle two tiles), and for each block the passes over the tile, then the
// indices of the tile's neurons.
template <typename T>
void GateExamples(int64_t first, int64_t last, const T* side_info, int64_t inputs,
                  const T* planes_t, const T* thresholds, int64_t columns, int64_t m,
                  int64_t neurons, int64_t tile, const std::vector<GateOutput>& outputs) {
  static_assert(kGateBlock == 4, "BlockUnion's vector loop reads four examples");
  if (last - first == 1) {  // a lone example (the per-call online step): no padding examples
    GateOne<T>(first, side_info + first * inputs, inputs, planes_t, thresholds, columns, m,
               neurons, outputs);
    return;
  }
  // buffers for the blocks of one group (fewer when the range is shorter), left uninitialised:
  // BlockUnion writes every entry that GatePass reads, and a one-example call then clears
  // no megabyte of scratch
  const int64_t group_blocks =
      std::min<int64_t>(kGateGroup, last - first + kGateBlock - 1) / kGateBlock;
  std::unique_ptr<uint8_t[]> nonzero(new uint8_t[inputs]);
  std::unique_ptr<int32_t[]> idx(new int32_t[group_blocks * inputs]);
  std::unique_ptr<T[]> values(new T[group_blocks * inputs * kGateBlock]);
  std::unique_ptr<int64_t[]> counts(new int64_t[group_blocks]);
  std::unique_ptr<T[]> projections(new T[kGateBlock * tile]);  // [kGateBlock, tile]
  for (int64_t g0 = first; g0 < last; g0 += kGateGroup) {
    const int64_t g1 = std::min(last, g0 + kGateGroup);
    const int64_t blocks = (g1 - g0 + kGateBlock - 1) / kGateBlock;
    for (int64_t k = 0; k < blocks; ++k) {
      const int64_t b0 = g0 + k * kGateBlock;
      counts[k] = BlockUnion<T>(side_info + b0 * inputs, std::min<int64_t>(kGateBlock, g1 - b0),
                                inputs, nonzero.get(), idx.get() + k * inputs,
                                values.get() + k * inputs * kGateBlock);
    }
    for (int64_t c0 = 0; c0 < columns; c0 += tile) {
      const int64_t c1 = std::min(columns, c0 + tile);
      const int64_t n0 = c0 / m, n1 = std::min(neurons, c1 / m);
      for (int64_t k = 0; k < blocks; ++k) {
        const int64_t b0 = g0 + k * kGateBlock;
        for (int64_t j0 = c0; j0 < c1; j0 += kGateWidth<T>) {
          GatePass<T>(values.get() + k * inputs * kGateBlock, idx.get() + k * inputs,
                      counts[k], planes_t, columns, j0, projections.get() + (j0 - c0), tile);
        }
        for (int64_t e = 0; e < std::min<int64_t>(kGateBlock, g1 - b0); ++e) {
          StoreIndices<T>(projections.get() + e * tile, thresholds, c0, n0, n1, m, b0 + e,
                          outputs);
        }
      }
    }
  }
}

template <typename T>
ffi::Error RunGates(ffi::AnyBuffer side_info, ffi::AnyBuffer planes_t, ffi::AnyBuffer thresholds,
                    ffi::RemainingRets indices, int64_t m, int64_t num_threads) {
  const auto x_dims = side_info.dimensions();
  const auto h_dims = planes_t.dimensions();
  if (x_dims.size() != 2 || h_dims.size() != 2 || x_dims[1] != h_dims[0]) {
    return ffi::Error::InvalidArgument("side_info must be [B, N] and planes_t [N, J]");
  }
  if (planes_t.element_type() != side_info.element_type() ||
      thresholds.element_type() != side_info.element_type() ||
      thresholds.element_count() != size_t(h_dims[1])) {
    return ffi::Error::InvalidArgument("thresholds must be [J], all of one dtype");
  }
  if (m < 1 || m > 30) return ffi::Error::InvalidArgument("context_map_size out of range");
  const int64_t batch = x_dims[0], inputs = x_dims[1], columns = h_dims[1];
  std::vector<GateOutput> outputs;  // one per neuron, layer by layer
  for (size_t l = 0; l < indices.size(); ++l) {
    auto out = indices.get<ffi::AnyBuffer>(l);
    if (!out.has_value() || (*out)->element_type() != ffi::DataType::S32 ||
        (*out)->dimensions().size() != 3 || (*out)->dimensions()[0] != batch) {
      return ffi::Error::InvalidArgument("indices must be int32 [B, M, K] per layer");
    }
    const auto dims = (*out)->dimensions();
    const int64_t row = dims[1] * dims[2];
    for (int64_t n = 0; n < row; ++n) outputs.push_back({(*out)->typed_data<int32_t>(), row, n});
  }
  const int64_t total = int64_t(outputs.size());
  if (total * m > columns || columns % kGateWidth<T> != 0) {
    return ffi::Error::InvalidArgument(
        "planes_t must have M * K * m columns per layer, padded to a multiple of 64");
  }
  // columns per tile: a multiple of lcm(kGateWidth, m), as many as fit kGateTileBytes (one
  // at least); the last tile ends at the padded end
  int64_t unit = kGateWidth<T>;
  while (unit % m != 0) unit += kGateWidth<T>;
  const int64_t tile =
      unit * std::max<int64_t>(1, kGateTileBytes / (unit * inputs * int64_t(sizeof(T)) + 1));
  const T* x = side_info.typed_data<T>();
  const T* h = planes_t.typed_data<T>();
  const T* thr = thresholds.typed_data<T>();
  // a thread is worth its start only for a few blocks of work each; threads take whole blocks
  const int64_t blocks = (batch + kGateBlock - 1) / kGateBlock;
  const int64_t threads = std::max<int64_t>(1, std::min(num_threads, blocks / 4));
  auto work = [&](int64_t i) {
    const int64_t first = std::min(batch, blocks * i / threads * kGateBlock);
    const int64_t last = std::min(batch, blocks * (i + 1) / threads * kGateBlock);
    GateExamples<T>(first, last, x, inputs, h, thr, columns, m, total, tile, outputs);
  };
  std::vector<std::thread> pool;
  for (int64_t i = 1; i < threads; ++i) pool.emplace_back(work, i);
  work(0);
  for (std::thread& thread : pool) thread.join();
  return ffi::Error::Success();
}

ffi::Error Gates(ffi::AnyBuffer side_info, ffi::AnyBuffer planes_t, ffi::AnyBuffer thresholds,
                 ffi::RemainingRets indices, int64_t context_map_size, int64_t num_threads) {
  switch (side_info.element_type()) {
    case ffi::DataType::F32:
      return RunGates<float>(side_info, planes_t, thresholds, indices, context_map_size,
                             num_threads);
    case ffi::DataType::F64:
      return RunGates<double>(side_info, planes_t, thresholds, indices, context_map_size,
                              num_threads);
    default:
      return ffi::Error::InvalidArgument("gln_gates supports float32 and float64 only");
  }
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(GlnOnlineFit, OnlineFit,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .RemainingArgs()
                                  .Ret<ffi::AnyBuffer>()
                                  .RemainingRets()
                                  .Attr<int64_t>("num_layers")
                                  .Attr<int64_t>("num_threads")
                                  .Attr<double>("pred_clipping")
                                  .Attr<double>("weight_clipping")
                                  .Attr<bool>("bias")
                                  .Attr<bool>("learn")
                                  .Attr<int64_t>("batch_size"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(GlnGates, Gates,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .RemainingRets()
                                  .Attr<int64_t>("context_map_size")
                                  .Attr<int64_t>("num_threads"));
