// Exact online learning of a Bernoulli GLN over a chunk of a stream, all layers and classes in
// one XLA FFI call (CPU). It transliterates gln_jax.core.bernoulli.update, one example at a
// time, for every one-vs-all class:
//
//   a layer's inputs x (first layer: the given input logits; then logit of the previous
//   layer's clipped outputs, with 1.0 appended when bias; when only predicting, z itself
//   where the clip did not fire, see Clips), for each neuron k:
//     z = w[k, ctx_k] . x,  p = clip(1 / (1 + exp(-z)), eps, 1 - eps),
//     w[k, ctx_k] <- clip(w[k, ctx_k] - (lr * (p - y)) * x, -wc, wc).
//
// The forward pass of a layer reads only that layer's rows and the update of a layer moves
// only that layer's rows, so each layer is updated right after its own forward pass (the same
// result as forwarding every layer first). The classes never interact: they are split into
// contiguous groups, one thread per group, and each class is computed by one thread in stream
// order, so the result does not depend on the number of threads.
//
// Arguments (shapes use the letters of gln_jax/core/types.py; C is the flattened class axis:
// the classes, or an ensemble's E members times its classes, member-major):
//   x0 [T, I0] first-layer input logits (shared by the classes), targets [T, C] 0/1 targets,
//   rates [T] shared by the classes or [T, C] one per class (0 for padding), then per layer
//   contexts [T, C, K] int32, then per layer the weights [C, K, R, I].
// Results: predictions [T, C] made before each update, then per layer the updated weights
//   (aliased to the weight arguments by the caller, so they are updated in place).
// Attributes: num_layers, num_threads (int64), pred_clipping, weight_clipping (float64), bias,
//   learn, batch_size (int64). With learn false the call only predicts (batched inference):
//   targets and rates are not read, the weights are read in place and no weights are returned.
//   With batch_size B > 1 (dividing T) the steps learn in batches of B with batch semantics
//   (gln_jax.core.bernoulli.batch_update): each example of a batch is predicted with the weights
//   from before the batch, then each row the batch hit moves by the sum of its examples' g * x
//   and is clipped; B = 1 is exact online learning.
//
// Every argument and attribute is checked before anything is read (an FFI error names the
// mismatch). Memory: each thread holds working copies of at most kCopyBytes, its classes'
// predictions [T, its classes] and rows of scratch; a call runs on at most kMaxThreads threads.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "handler.h"
#include "simd.h"
#include "xla/ffi/api/ffi.h"

namespace gln_jax {
namespace {

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

// Most bytes of working copies of the tables (see Tables) per thread and call: a larger model
// runs on the caller's tables, so a call's memory grows by at most this per thread (the first
// layer of 10 classes of [64, 64, 1] on MNIST fits; [128, 128, 1] runs in place).
constexpr int64_t kCopyBytes = int64_t(16) << 20;
// Bytes of first-layer inputs per block of steps (about a quarter of a 1 MiB L2 cache).
constexpr int64_t kBlockBytes = 256 * 1024;
// Bytes of weight tables per tile of classes (about half of a 1-2 MiB L2 cache).
constexpr int64_t kTileBytes = 1024 * 1024;

// One layer of the call, as checked by DecodeLayers.
struct Layer {
  const int32_t* contexts;  // [T, C, K]
  void* weights;            // [C, K, R, I], updated in place
  int64_t neurons, rows, inputs;
};

// The clipping constants of a call, in T.
template <typename T>
struct Clips {
  T eps_lo, eps_hi, w_lo, w_hi;
  // Predicting only, logit(clip(sigmoid(z))) is taken as z itself unless the clip fired (the
  // clipped values are two constants, logit_lo and logit_hi): two of the three transcendental
  // calls per neuron saved, and the result differs from the reference's rounding of
  // logit(sigmoid(z)) by a few ulps of p over p (1 - p). Learning keeps the reference's
  // log(p) - log1p(-p): over a stream, rounding differences compound, and the ports are
  // checked step by step against it.
  T logit_lo, logit_hi;
  // A hidden neuron whose z lies in (z_inner_lo, z_inner_hi), well inside (logit_lo,
  // logit_hi), cannot have its p clipped, so predicting only, its next input is z without
  // computing p at all (the same value as the clip's branches give). The margin exceeds what
  // p's rounding can move: near 1 - eps a few ulps of 1 in p are ulps / eps in z. Near either
  // bound, and for the output neuron, p is computed and compared as the reference does.
  T z_inner_lo, z_inner_hi;

  Clips(double pred_clipping, double weight_clipping) {
    eps_lo = static_cast<T>(pred_clipping);
    eps_hi = static_cast<T>(1.0 - pred_clipping);  // as jnp.clip(p, eps, 1.0 - eps)
    w_hi = static_cast<T>(weight_clipping);
    w_lo = -w_hi;
    logit_lo = std::log(eps_lo) - std::log1p(-eps_lo);
    logit_hi = std::log(eps_hi) - std::log1p(-eps_hi);
    const T margin = T(1e-3) * std::max(T(1), std::max(-logit_lo, logit_hi)) +
                     T(16) * std::numeric_limits<T>::epsilon() / eps_lo;
    z_inner_lo = logit_lo + margin;
    z_inner_hi = logit_hi - margin;
  }
};

// What every thread of a call reads: the call's checked arguments.
template <typename T>
struct Chunk {
  int64_t steps, classes;
  const T* x0;       // [T, I0]
  const T* targets;  // [T, C]
  const T* rates;    // [T] or [T, C]
  bool rate_per_class;
  const std::vector<Layer>& layers;
  bool bias, learn;
  int64_t batch_size;
  Clips<T> clips;
};

// Where a thread writes its classes' predictions: out[t * stride + c - first].
template <typename T>
struct Predictions {
  T* out;
  int64_t stride, first;
};

// The classes [first, last) of a call, computed by one thread: the tables and scratch of its
// classes, then Run() over the steps in blocks and the classes in tiles.
template <typename T>
class ClassRange {
 public:
  ClassRange(const Chunk<T>& chunk, int64_t first, int64_t last, Predictions<T> predictions)
      : chunk_(chunk),
        layers_(chunk.layers),
        first_(first),
        last_(last),
        predictions_(predictions),
        batched_(chunk.learn && chunk.batch_size > 1),
        unit_(batched_ ? chunk.batch_size : 1) {
    CopyTablesIn();
    TrackRowBounds();
    AllocateScratch();
  }

  // Every step of every class of the range, then the working copies back.
  void Run() {
    const int64_t inputs = layers_[0].inputs;
    // Steps in blocks, classes in tiles: a tile's weight tables fit in L2 and a block's input
    // rows too. Within a tile, each step runs every class of the tile before the next step, so
    // the step's input row is read into L1 once for all of them (and each row's dot and update
    // then read it from there); each class still sees its own steps in stream order, so the
    // result does not depend on the blocks, the tiles or the threads.
    const int64_t block =
        unit_ * std::max<int64_t>(1, kBlockBytes / int64_t(sizeof(T) * inputs) / unit_);
    int64_t model_bytes = 0;
    for (const Layer& layer : layers_) {
      model_bytes += layer.neurons * layer.rows * layer.inputs * int64_t(sizeof(T));
    }
    const int64_t tile = std::max<int64_t>(1, kTileBytes / std::max<int64_t>(1, model_bytes));
    for (int64_t start = 0; start < chunk_.steps; start += block) {
      const int64_t stop = std::min(chunk_.steps, start + block);
      for (int64_t c0 = first_; c0 < last_; c0 += tile) {
        const int64_t c1 = std::min(last_, c0 + tile);
        for (int64_t t = start; t < stop; t += unit_) {
          for (int64_t b = 0; b < unit_; ++b) {
            std::memcpy(x0_rows_.data() + b * x0_stride_, chunk_.x0 + (t + b) * inputs,
                        inputs * sizeof(T));
          }
          for (int64_t c = c0; c < c1; ++c) {
            if (batched_) {
              ForwardBatch(c, t);
              UpdateBatchRows(c, t);
            } else {
              Step(c, t);
            }
          }
        }
      }
    }
    if (chunk_.learn) CopyTablesOut();
  }

 private:
  // Working copies of the wide layers' tables (see Tables), when each row is visited often
  // enough on average to pay for its copy (learning: 16 visits, each saving an unaligned dot
  // and update, against a row read and written twice; predicting: 64, each saving a dot,
  // against one copy in), and the copies of the thread's classes stay within kCopyBytes.
  void CopyTablesIn() {
    tables_.resize(layers_.size());
    int64_t copied_bytes = 0;
    for (size_t l = 0; l < layers_.size(); ++l) {
      const Layer& layer = layers_[l];
      Tables<T>& own = tables_[l];
      own.weights = static_cast<T*>(layer.weights);
      own.first = first_;
      own.rows_per_class = layer.neurons * layer.rows;
      own.width = own.stride = layer.inputs;
      const int64_t padded = Padded<T>(layer.inputs);
      const int64_t bytes = (last_ - first_) * own.rows_per_class * padded * int64_t(sizeof(T));
      if (layer.inputs <= 32 || layer.inputs == padded ||
          chunk_.steps < (chunk_.learn ? 16 : 64) * layer.rows ||
          copied_bytes + bytes > kCopyBytes) {
        continue;
      }
      copied_bytes += bytes;
      own.stride = padded;
      own.copy = Aligned<T>((last_ - first_) * own.rows_per_class * own.stride);
      for (int64_t r = 0; r < (last_ - first_) * own.rows_per_class; ++r) {
        T* to = own.copy.data() + r * own.stride;
        std::memcpy(to, own.weights + (first_ * own.rows_per_class + r) * own.width,
                    own.width * sizeof(T));
        std::fill(to + own.width, to + own.stride, T(0));
      }
    }
  }

  // Online learning over enough steps to revisit rows tracks the wide layers' row bounds (see
  // BoundedUpdate): a row's updates after its first in this call then skip the clip. A call
  // with fewer steps than rows per neuron (the per-call step) keeps plain Update.
  void TrackRowBounds() {
    if (!chunk_.learn || batched_) return;
    for (size_t l = 0; l < layers_.size(); ++l) {
      if (layers_[l].inputs <= 32 || chunk_.steps < layers_[l].rows) continue;
      tables_[l].bound.assign((last_ - first_) * tables_[l].rows_per_class,
                              std::numeric_limits<T>::infinity());
    }
    if (tables_[0].bound.empty()) return;
    x0_largest_.resize(chunk_.steps);
    for (int64_t t = 0; t < chunk_.steps; ++t) {
      x0_largest_[t] = LargestAbs(chunk_.x0 + t * layers_[0].inputs, layers_[0].inputs);
    }
  }

  // The aligned rows of the current steps' first-layer inputs (shared by the classes of a
  // tile), the hidden inputs of a step, and a batch's hidden inputs and g of every neuron.
  void AllocateScratch() {
    int64_t widest = 0;
    for (const Layer& layer : layers_) widest = std::max(widest, layer.inputs);
    x0_stride_ = Padded<T>(layers_[0].inputs);
    x0_rows_ = Aligned<T>(unit_ * x0_stride_);
    x_buffer_ = Aligned<T>(widest);
    next_buffer_ = Aligned<T>(widest);
    x_ = x_buffer_.data();
    next_ = next_buffer_.data();
    if (!batched_) return;
    hidden_at_.assign(layers_.size() + 1, 0);
    g_at_.assign(layers_.size(), 0);
    for (size_t l = 0; l < layers_.size(); ++l) {
      g_at_[l] = all_neurons_;
      all_neurons_ += layers_[l].neurons;
      if (l > 0) {
        hidden_at_[l] = hidden_width_;
        hidden_width_ += layers_[l].inputs;
      }
    }
    hidden_.resize(unit_ * hidden_width_);  // [unit, layers 1.. inputs]
    gs_.resize(unit_ * all_neurons_);       // [unit, every neuron]
    delta_.resize(widest);                  // one row's summed deltas
  }

  // A row's update: w - g * in, clipped (BoundedUpdate skips a clip that cannot fire).
  void UpdateRow(T* row, const T* in, T g, T* bound, T in_largest, int64_t width) const {
    if (bound == nullptr) {
      Update(row, in, g, chunk_.clips.w_lo, chunk_.clips.w_hi, width);
    } else {
      BoundedUpdate(*bound, row, in, g, in_largest, chunk_.clips.w_hi, width);
    }
  }

  // One step of one class: every layer forward, each row updated after the next neuron's dot.
  void Step(int64_t c, int64_t t) {
    const int64_t classes = chunk_.classes;
    const bool learn = chunk_.learn;
    const T y = learn ? chunk_.targets[t * classes + c] : T(0);
    const T lr = !learn                 ? T(0)
                 : chunk_.rate_per_class ? chunk_.rates[t * classes + c]
                                         : chunk_.rates[t];
    const T* in = x0_rows_.data();  // step t's first-layer inputs
    T p = T(0);
    for (size_t l = 0; l < layers_.size(); ++l) {
      p = StepLayer(l, c, t, in, y, lr, p);
      std::swap(x_, next_);
      in = x_;
    }
    predictions_.out[t * predictions_.stride + c - predictions_.first] = p;
  }

  // Layer l of step t of class c on inputs `in`: its outputs' logits into next_, its active
  // rows updated when learning. Returns the last neuron's p (p_before when it computes none).
  T StepLayer(size_t l, int64_t c, int64_t t, const T* in, T y, T lr, T p_before) {
    const Clips<T>& clips = chunk_.clips;
    const bool learn = chunk_.learn;
    const Layer& layer = layers_[l];
    const int64_t k_count = layer.neurons, width = layer.inputs, stride = tables_[l].stride;
    const int32_t* ctx = layer.contexts + (t * chunk_.classes + c) * k_count;
    const bool output_layer = l + 1 == layers_.size();
    T* table = tables_[l].of(c);
    T* bound_base = tables_[l].bounds_of(c);
    const T in_largest = bound_base == nullptr ? T(0)
                         : l == 0              ? x0_largest_[t]
                                               : LargestAbs(in, width);
    T* next = next_;
    T p = p_before;
    T* pending_row = nullptr;
    T pending_g = T(0);
    T* pending_bound = nullptr;
    for (int64_t k = 0; k < k_count; ++k) {
      T* row = table + (k * layer.rows + ctx[k]) * stride;
      if (k + 1 < k_count) {  // learning writes the row right after its dot
        PrefetchRow(table + ((k + 1) * layer.rows + ctx[k + 1]) * stride, width, learn);
      }
      const T z = Dot(row, in, width);
      if (!learn && !output_layer && z > clips.z_inner_lo && z < clips.z_inner_hi) {
        next[k] = z;  // a hidden neuron far from both clips: its p is never read
        continue;
      }
      p = T(1) / (T(1) + std::exp(-z));
      if (learn) {
        p = std::min(std::max(p, clips.eps_lo), clips.eps_hi);
        if (!output_layer) next[k] = std::log(p) - std::log1p(-p);  // else nothing reads it
      } else if (p <= clips.eps_lo) {
        p = clips.eps_lo;
        next[k] = clips.logit_lo;
      } else if (p >= clips.eps_hi) {
        p = clips.eps_hi;
        next[k] = clips.logit_hi;
      } else {
        next[k] = z;
      }
      if (!learn) continue;
      // the previous neuron's update runs now, while this neuron's sigmoid and logit resolve
      // (run before them, its operations would wait on them, which stalled the core)
      if (k > 0) UpdateRow(pending_row, in, pending_g, pending_bound, in_largest, width);
      pending_row = row;
      pending_g = lr * (p - y);
      pending_bound = bound_base == nullptr ? nullptr : &bound_base[k * layer.rows + ctx[k]];
    }
    if (learn && k_count > 0) {
      UpdateRow(pending_row, in, pending_g, pending_bound, in_largest, width);
    }
    if (chunk_.bias) next[k_count] = T(1);
    return p;
  }

  // Layer l's inputs of example b of the current batch.
  const T* BatchInput(size_t l, int64_t b) const {
    return l == 0 ? x0_rows_.data() + b * x0_stride_
                  : hidden_.data() + b * hidden_width_ + hidden_at_[l];
  }

  // A batch of unit_ steps of one class (batch semantics, as gln_jax.core.bernoulli's
  // batch_update), first half: every example forward with the weights from before the batch,
  // its prediction written and each neuron's g = lr * (p - y) kept. The forward pass is the
  // learning one (p clipped, next inputs log(p) - log1p(-p)), so a batch of one equals Step.
  void ForwardBatch(int64_t c, int64_t t0) {
    const Clips<T>& clips = chunk_.clips;
    const int64_t classes = chunk_.classes;
    const size_t last_layer = layers_.size() - 1;
    for (int64_t b = 0; b < unit_; ++b) {
      const int64_t t = t0 + b;
      const T y = chunk_.targets[t * classes + c];
      const T lr = chunk_.rate_per_class ? chunk_.rates[t * classes + c] : chunk_.rates[t];
      T p = T(0);
      for (size_t l = 0; l < layers_.size(); ++l) {
        const Layer& layer = layers_[l];
        const int64_t k_count = layer.neurons, width = layer.inputs, stride = tables_[l].stride;
        const T* in = BatchInput(l, b);
        T* out = l == last_layer ? nullptr : hidden_.data() + b * hidden_width_ + hidden_at_[l + 1];
        const int32_t* ctx = layer.contexts + (t * classes + c) * k_count;
        const T* table = tables_[l].of(c);
        for (int64_t k = 0; k < k_count; ++k) {
          const T* row = table + (k * layer.rows + ctx[k]) * stride;
          if (k + 1 < k_count) {  // read now, written only after the whole batch
            PrefetchRow(table + ((k + 1) * layer.rows + ctx[k + 1]) * stride, width, false);
          }
          const T z = Dot(row, in, width);
          p = std::min(std::max(T(1) / (T(1) + std::exp(-z)), clips.eps_lo), clips.eps_hi);
          if (out != nullptr) out[k] = std::log(p) - std::log1p(-p);
          gs_[b * all_neurons_ + g_at_[l] + k] = lr * (p - y);
        }
        if (out != nullptr && chunk_.bias) out[k_count] = T(1);
      }
      predictions_.out[t * predictions_.stride + c - predictions_.first] = p;
    }
  }

  // Second half of a batch, as the reference's dense batch update: each row the batch hit
  // gets the sum of its examples' g * x (in example order) subtracted, then the clip (every
  // weight lies inside the clip before the batch, so clipping the touched rows equals
  // clipping the table); a row hit once is the online update.
  void UpdateBatchRows(int64_t c, int64_t t0) {
    const Clips<T>& clips = chunk_.clips;
    const int64_t classes = chunk_.classes;
    for (size_t l = 0; l < layers_.size(); ++l) {
      const Layer& layer = layers_[l];
      const int64_t k_count = layer.neurons, width = layer.inputs, stride = tables_[l].stride;
      T* table = tables_[l].of(c);
      auto context = [&](int64_t b, int64_t k) {
        return layer.contexts[((t0 + b) * classes + c) * k_count + k];
      };
      for (int64_t k = 0; k < k_count; ++k) {
        for (int64_t b = 0; b < unit_; ++b) {
          const int32_t r = context(b, k);
          bool first_hit = true;
          for (int64_t e = 0; e < b && first_hit; ++e) first_hit = context(e, k) != r;
          if (!first_hit) continue;  // summed with the row's first example
          T* row = table + (k * layer.rows + r) * stride;
          const T g = gs_[b * all_neurons_ + g_at_[l] + k];
          int64_t next = b + 1;
          while (next < unit_ && context(next, k) != r) ++next;
          if (next == unit_) {  // the only example of the batch on this row
            Update(row, BatchInput(l, b), g, clips.w_lo, clips.w_hi, width);
            continue;
          }
          Scale(delta_.data(), BatchInput(l, b), g, width);
          for (int64_t e = next; e < unit_; ++e) {
            if (context(e, k) == r) {
              AddScaled(delta_.data(), BatchInput(l, e), gs_[e * all_neurons_ + g_at_[l] + k],
                        width);
            }
          }
          Update(row, delta_.data(), T(1), clips.w_lo, clips.w_hi, width);
        }
      }
    }
  }

  // The working copies' rows back to the caller's tables.
  void CopyTablesOut() {
    for (const Tables<T>& own : tables_) {
      if (own.copy.data() == nullptr) continue;
      for (int64_t r = 0; r < (last_ - first_) * own.rows_per_class; ++r) {
        std::memcpy(own.weights + (first_ * own.rows_per_class + r) * own.width,
                    own.copy.data() + r * own.stride, own.width * sizeof(T));
      }
    }
  }

  const Chunk<T>& chunk_;
  const std::vector<Layer>& layers_;
  const int64_t first_, last_;
  const Predictions<T> predictions_;
  const bool batched_;
  const int64_t unit_;  // steps that share one update
  std::vector<Tables<T>> tables_;
  std::vector<T> x0_largest_;  // max |x0[t]| per step, when the first layer is tracked
  int64_t x0_stride_ = 0;
  Aligned<T> x0_rows_, x_buffer_, next_buffer_;
  T* x_ = nullptr;  // 64-byte aligned hidden inputs of the current layer
  T* next_ = nullptr;
  int64_t hidden_width_ = 0, all_neurons_ = 0;
  std::vector<int64_t> hidden_at_, g_at_;
  std::vector<T> hidden_, gs_, delta_;
};

// The call's attributes, checked before any buffer is read.
ffi::Error CheckAttributes(int64_t num_layers, int64_t num_threads, double pred_clipping,
                           double weight_clipping, int64_t batch_size) {
  if (num_layers < 1) {
    return ffi::Error::InvalidArgument("num_layers is " + std::to_string(num_layers) +
                                       ": a network needs at least one layer");
  }
  if (num_threads < 1) {
    return ffi::Error::InvalidArgument("num_threads is " + std::to_string(num_threads) +
                                       ", must be at least 1");
  }
  if (!(pred_clipping > 0.0 && pred_clipping < 0.5)) {
    return ffi::Error::InvalidArgument("pred_clipping is " + std::to_string(pred_clipping) +
                                       ", must lie in (0, 0.5)");
  }
  if (!(weight_clipping > 0.0 && std::isfinite(weight_clipping))) {
    return ffi::Error::InvalidArgument("weight_clipping is " + std::to_string(weight_clipping) +
                                       ", must be positive and finite");
  }
  if (batch_size < 1) {
    return ffi::Error::InvalidArgument("batch_size is " + std::to_string(batch_size) +
                                       ", must be at least 1");
  }
  return ffi::Error::Success();
}

// x0, predictions, targets and rates: shapes [T, I0], [T, C], [T, C] and [T] or [T, C], all
// of x0's dtype (targets and rates only when learning).
ffi::Error CheckStepBuffers(const ffi::AnyBuffer& x0, const ffi::AnyBuffer& targets,
                            const ffi::AnyBuffer& rates, const ffi::AnyBuffer& predictions,
                            bool learn, int64_t batch_size) {
  const auto x_dims = x0.dimensions();
  const auto p_dims = predictions.dimensions();
  if (x_dims.size() != 2) {
    return ffi::Error::InvalidArgument("x0 must be [T, I0], got " + Describe(x0));
  }
  if (p_dims.size() != 2 || p_dims[0] != x_dims[0] ||
      predictions.element_type() != x0.element_type()) {
    return ffi::Error::InvalidArgument("predictions must be [T, C] of x0's dtype (x0 " +
                                       Describe(x0) + "), got " + Describe(predictions));
  }
  const int64_t steps = x_dims[0], classes = p_dims[1];
  if (learn && steps % batch_size != 0) {
    return ffi::Error::InvalidArgument("batch_size " + std::to_string(batch_size) +
                                       " does not divide the " + std::to_string(steps) +
                                       " steps");
  }
  if (!learn) return ffi::Error::Success();
  const auto y_dims = targets.dimensions();
  if (targets.element_type() != x0.element_type() || y_dims.size() != 2 ||
      y_dims[0] != steps || y_dims[1] != classes) {
    return ffi::Error::InvalidArgument("targets must be [T, C] = [" + std::to_string(steps) +
                                       ", " + std::to_string(classes) + "] of x0's dtype " +
                                       TypeName(x0.element_type()) + ", got " +
                                       Describe(targets));
  }
  const auto r_dims = rates.dimensions();
  const bool shared = r_dims.size() == 1 && r_dims[0] == steps;
  const bool per_class = r_dims.size() == 2 && r_dims[0] == steps && r_dims[1] == classes;
  if (rates.element_type() != x0.element_type() || !(shared || per_class)) {
    return ffi::Error::InvalidArgument("rates must be [T] or [T, C] with T = " +
                                       std::to_string(steps) + ", C = " +
                                       std::to_string(classes) + " of x0's dtype " +
                                       TypeName(x0.element_type()) + ", got " + Describe(rates));
  }
  return ffi::Error::Success();
}

// Every layer's contexts [T, C, K] int32 and weights [C, K, R, I] of x0's dtype, with I the
// previous layer's K (+1 with bias; I0 for the first) and one neuron in the last layer; the
// results' weights alike. Fills `layers` (the weights to update: the results' buffers, a
// copy of the arguments' unless aliased).
ffi::Error DecodeLayers(const ffi::AnyBuffer& x0, int64_t classes, ffi::RemainingArgs rest,
                        ffi::RemainingRets weights_out, int64_t num_layers, bool bias,
                        bool learn, std::vector<Layer>& layers) {
  const int64_t steps = x0.dimensions()[0];
  if (rest.size() != size_t(2 * num_layers)) {
    return ffi::Error::InvalidArgument(
        "expected the contexts and weights of each of num_layers = " +
        std::to_string(num_layers) + " layers (" + std::to_string(2 * num_layers) +
        " buffers after rates), got " + std::to_string(rest.size()) + " buffers");
  }
  if (weights_out.size() != size_t(learn ? num_layers : 0)) {
    return ffi::Error::InvalidArgument(
        "expected " + std::to_string(learn ? num_layers : 0) + " weight results, got " +
        std::to_string(weights_out.size()));
  }
  int64_t expected_inputs = x0.dimensions()[1];
  for (int64_t l = 0; l < num_layers; ++l) {
    const std::string name = "layer " + std::to_string(l) + ": ";
    auto ctx = rest.get<ffi::AnyBuffer>(l);
    auto w_in = rest.get<ffi::AnyBuffer>(num_layers + l);
    if (!ctx.has_value() || !w_in.has_value()) {
      return ffi::Error::InvalidArgument(name + "could not decode its buffers");
    }
    const auto c_dims = ctx->dimensions();
    const auto w_dims = w_in->dimensions();
    if (ctx->element_type() != ffi::DataType::S32 || c_dims.size() != 3 || c_dims[0] != steps ||
        c_dims[1] != classes || c_dims[2] < 1) {
      return ffi::Error::InvalidArgument(
          name + "contexts must be int32 [T, C, K] with T = " + std::to_string(steps) +
          ", C = " + std::to_string(classes) + ", K >= 1, got " + Describe(*ctx));
    }
    if (w_in->element_type() != x0.element_type()) {
      return ffi::Error::InvalidArgument(
          name + "weights are " + TypeName(w_in->element_type()) + " but x0 is " +
          TypeName(x0.element_type()) + " (a state of another dtype than its config's?)");
    }
    if (w_dims.size() != 4 || w_dims[0] != classes || w_dims[1] != c_dims[2] || w_dims[2] < 1 ||
        w_dims[3] != expected_inputs) {
      return ffi::Error::InvalidArgument(
          name + "weights must be [C, K, R, I] with C = " + std::to_string(classes) +
          ", K = " + std::to_string(c_dims[2]) + " (from its contexts), R >= 1, I = " +
          std::to_string(expected_inputs) + ", got " + Describe(*w_in));
    }
    if (l + 1 == num_layers && w_dims[1] != 1) {
      return ffi::Error::InvalidArgument(name + "the last layer must have one neuron, got " +
                                         std::to_string(w_dims[1]));
    }
    void* out = w_in->untyped_data();  // read in place when only predicting
    if (learn) {
      auto w_out = weights_out.get<ffi::AnyBuffer>(l);
      if (!w_out.has_value() || (*w_out)->element_type() != w_in->element_type() ||
          ShapeText((*w_out)->dimensions()) != ShapeText(w_dims)) {
        return ffi::Error::InvalidArgument(name + "the weights result must be " +
                                           Describe(*w_in));
      }
      out = (*w_out)->untyped_data();
      if (out != w_in->untyped_data()) {  // not aliased: start from a copy of the weights
        std::memcpy(out, w_in->untyped_data(), w_in->size_bytes());
      }
    }
    layers.push_back({ctx->typed_data<int32_t>(), out, w_dims[1], w_dims[2], w_dims[3]});
    expected_inputs = w_dims[1] + (bias ? 1 : 0);
  }
  return ffi::Error::Success();
}

// Every context index in [0, R) (a bad index would read or write outside the tables).
ffi::Error CheckContexts(const std::vector<Layer>& layers, int64_t steps, int64_t classes) {
  for (size_t l = 0; l < layers.size(); ++l) {
    const Layer& layer = layers[l];
    const int64_t count = steps * classes * layer.neurons;
    for (int64_t i = 0; i < count; ++i) {
      if (layer.contexts[i] < 0 || layer.contexts[i] >= layer.rows) {
        return ffi::Error::InvalidArgument(
            "layer " + std::to_string(l) + ": a context index is out of range (" +
            std::to_string(layer.contexts[i]) + ", rows 0 to " + std::to_string(layer.rows - 1) +
            ")");
      }
    }
  }
  return ffi::Error::Success();
}

// The classes split over the threads; each thread writes its classes' predictions into its
// own buffer [T, its classes] (no cache line shared between threads), copied at the end.
template <typename T>
ffi::Error RunThreads(const Chunk<T>& chunk, int64_t num_threads, T* predictions) {
  const int64_t steps = chunk.steps, classes = chunk.classes;
  const int64_t threads = std::max<int64_t>(1, std::min({num_threads, classes, kMaxThreads}));
  if (threads == 1) {
    ClassRange<T>(chunk, 0, classes, {predictions, classes, 0}).Run();
    return ffi::Error::Success();
  }
  const std::string failure = RunParts(threads, [&](int64_t i) {
    const int64_t first = classes * i / threads, last = classes * (i + 1) / threads;
    const int64_t count = last - first;
    std::vector<T> own(steps * count);
    ClassRange<T>(chunk, first, last, {own.data(), count, first}).Run();
    for (int64_t t = 0; t < steps; ++t) {
      for (int64_t c = first; c < last; ++c) {
        predictions[t * classes + c] = own[t * count + c - first];
      }
    }
  });
  if (!failure.empty()) return PartFailed("gln_online_fit", failure);
  return ffi::Error::Success();
}

template <typename T>
ffi::Error Run(ffi::AnyBuffer x0, ffi::AnyBuffer targets, ffi::AnyBuffer rates,
               ffi::RemainingArgs rest, ffi::Result<ffi::AnyBuffer> predictions,
               ffi::RemainingRets weights_out, int64_t num_layers, int64_t num_threads,
               double pred_clipping, double weight_clipping, bool bias, bool learn,
               int64_t batch_size) {
  ffi::Error error =
      CheckAttributes(num_layers, num_threads, pred_clipping, weight_clipping, batch_size);
  if (error.failure()) return error;
  error = CheckStepBuffers(x0, targets, rates, *predictions, learn, batch_size);
  if (error.failure()) return error;
  const int64_t steps = x0.dimensions()[0], classes = predictions->dimensions()[1];
  std::vector<Layer> layers;
  error = DecodeLayers(x0, classes, rest, weights_out, num_layers, bias, learn, layers);
  if (error.failure()) return error;
  error = CheckContexts(layers, steps, classes);
  if (error.failure()) return error;
  const Chunk<T> chunk{steps,
                       classes,
                       x0.typed_data<T>(),
                       learn ? targets.typed_data<T>() : nullptr,
                       learn ? rates.typed_data<T>() : nullptr,
                       learn && rates.dimensions().size() == 2,
                       layers,
                       bias,
                       learn,
                       batch_size,
                       Clips<T>(pred_clipping, weight_clipping)};
  return RunThreads<T>(chunk, num_threads, predictions->typed_data<T>());
}

ffi::Error OnlineFit(ffi::AnyBuffer x0, ffi::AnyBuffer targets, ffi::AnyBuffer rates,
                     ffi::RemainingArgs rest, ffi::Result<ffi::AnyBuffer> predictions,
                     ffi::RemainingRets weights_out, int64_t num_layers, int64_t num_threads,
                     double pred_clipping, double weight_clipping, bool bias, bool learn,
                     int64_t batch_size) {
  return Guarded("gln_online_fit", [&]() {
    switch (x0.element_type()) {
      case ffi::DataType::F32:
        return Run<float>(x0, targets, rates, rest, predictions, weights_out, num_layers,
                          num_threads, pred_clipping, weight_clipping, bias, learn, batch_size);
      case ffi::DataType::F64:
        return Run<double>(x0, targets, rates, rest, predictions, weights_out, num_layers,
                           num_threads, pred_clipping, weight_clipping, bias, learn,
                           batch_size);
      default:
        return ffi::Error::InvalidArgument("gln_online_fit supports float32 and float64 only, "
                                           "got x0 " + Describe(x0));
    }
  });
}

}  // namespace
}  // namespace gln_jax

XLA_FFI_DEFINE_HANDLER_SYMBOL(GlnOnlineFit, gln_jax::OnlineFit,
                              xla::ffi::Ffi::Bind()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .RemainingArgs()
                                  .Ret<xla::ffi::AnyBuffer>()
                                  .RemainingRets()
                                  .Attr<int64_t>("num_layers")
                                  .Attr<int64_t>("num_threads")
                                  .Attr<double>("pred_clipping")
                                  .Attr<double>("weight_clipping")
                                  .Attr<bool>("bias")
                                  .Attr<bool>("learn")
                                  .Attr<int64_t>("batch_size"));
