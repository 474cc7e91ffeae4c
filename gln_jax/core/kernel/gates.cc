// Context indices of a batch by the kernel's sparse gating (as
// gln_jax.core.gating.batch_context_indices), from the transposed hyperplanes of every layer
// (and every member of an ensemble), in one XLA FFI call (CPU):
//
//   projection[b, j] = fma-chain over the non-zero side_info[b, i], i ascending, of
//                      side_info[b, i] * hyperplanes_t[i, j],
//   bit[b, j] = projection[b, j] > hyperplane_bias[j],
//   context index of neuron n = sum_h bit[b, n * H + h] << h.
//
// A fused multiply-add of a zero entry returns the partial sum unchanged (the hyperplanes are
// finite), so the projections are the ascending fma-chains over every entry whatever the
// sparsity: the indices never depend on the batch, the blocks or the threads. XLA's matrix
// product sums in another, blocked order, so a projection within rounding of its hyperplane's
// bias can pick another row there. Examples go in blocks of kGateBlock: the block's union of
// non-zero entries is visited once per kGateWidth columns, each visit reading those columns of
// one hyperplane row into registers for the block's examples (an example's own zeros inside
// the union add nothing). Groups of kGateGroup examples keep their blocks' unions while the
// columns go in tiles of about kGateTileBytes of hyperplane rows, so a wide model's or an
// ensemble's hyperplanes (far more than L2 holds) are read from L2 for a whole group. On
// images this reads and multiplies a fraction of what a dense product does (a fifth of raw
// MNIST's pixels are non-zero, two fifths of a block's union of four; a deskewed image has
// about half its pixels non-zero, and there the two cost about the same).
//
// Arguments: side_info [B, N], hyperplanes_t [N, J], hyperplane_bias [J], all of one float
//   dtype; J a multiple of 64 (the columns after the hyperplanes' are zero padding, never read
//   out).
// Results: per layer the context indices [B, C, K] int32 (C the flattened class axis: the
//   classes, or an ensemble's E members times its classes, member-major); the layers'
//   C * K * H columns follow each other in hyperplanes_t, layer by layer, each in the order of
//   the hyperplanes [C, K, H, N].
// Attributes: context_map_size H (1 to 30), num_threads (int64, at least 1).
//
// Every argument and attribute is checked before anything is read (an FFI error names the
// mismatch). Memory: each thread holds the scratch of one group of examples (kGateGroup
// examples' unions and one tile of projections); a call runs on at most kMaxThreads threads.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "handler.h"
#include "simd.h"
#include "xla/ffi/api/ffi.h"

namespace gln_jax {
namespace {

constexpr int kGateBlock = 4;    // examples sharing each load of a hyperplane row
constexpr int kGateVectors = 4;  // vectors of columns per pass (16 accumulators in registers)
constexpr int64_t kGateGroup = 256;              // examples whose unions are kept at once
constexpr int64_t kGateTileBytes = 1024 * 1024;  // hyperplane rows per tile of columns
template <typename T>
constexpr int64_t kGateWidth = kGateVectors * kVec<T>;

// Projections of one block of examples over kGateWidth columns starting at j0, into
// out[e * stride + j - j0]: the union entries idx[0, count) and their
// values[s * kGateBlock + e] (zero where example e has none).
template <typename T>
void GatePass(const T* values, const int32_t* idx, int64_t count, const T* hyperplanes_t,
              int64_t columns, int64_t j0, T* out, int64_t stride) {
  Vec<T> acc[kGateBlock][kGateVectors] = {};
  for (int64_t s = 0; s < count; ++s) {
    const T* row = hyperplanes_t + int64_t(idx[s]) * columns + j0;
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

// Where each neuron's index goes: the layer's output, its row length (C * K) and the column.
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
// bit t of neuron n is projection[n * m + t] > hyperplane_bias[n * m + t].
template <typename T>
void StoreIndices(const T* projection, const T* hyperplane_bias, int64_t c0, int64_t n0, int64_t n1,
                  int64_t m, int64_t b, const std::vector<GateOutput>& outputs) {
  for (int64_t n = n0; n < n1; ++n) {
    int32_t index = 0;
    for (int64_t t = 0; t < m; ++t) {
      const int64_t column = n * m + t;
      index |= int32_t(projection[column - c0] > hyperplane_bias[column]) << t;
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
void GatePassOne(const T* values, const int32_t* idx, int64_t count, const T* hyperplanes_t,
                 int64_t columns, int64_t j0, T* out) {
  Vec<T> acc[NV] = {};
  for (int64_t s = 0; s < count; ++s) {
    const T* row = hyperplanes_t + int64_t(idx[s]) * columns + j0;
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
void GateOne(int64_t b, const T* x, int64_t inputs, const T* hyperplanes_t,
             const T* hyperplane_bias, int64_t columns, int64_t m, int64_t neurons,
             const std::vector<GateOutput>& outputs) {
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
    GatePassOne<T, kGateOneVectors>(values.get(), idx.get(), count, hyperplanes_t, columns, j0,
                                    projection.get() + j0);
  }
  for (; j0 < columns; j0 += kGateWidth<T>) {  // columns are a multiple of kGateWidth
    GatePassOne<T, kGateVectors>(values.get(), idx.get(), count, hyperplanes_t, columns, j0,
                                 projection.get() + j0);
  }
  StoreIndices<T>(projection.get(), hyperplane_bias, 0, 0, neurons, m, b, outputs);
}

// Examples [first, last) in groups of kGateGroup: each group's block unions once, then the
// columns in tiles of `tile` (hyperplane rows of about kGateTileBytes, so a tile stays in L2
// while every block of the group reads it; a multiple of kGateWidth and of m, so a neuron's
// m columns never straddle two tiles), and for each block the passes over the tile, then the
// indices of the tile's neurons.
template <typename T>
void GateExamples(int64_t first, int64_t last, const T* side_info, int64_t inputs,
                  const T* hyperplanes_t, const T* hyperplane_bias, int64_t columns, int64_t m,
                  int64_t neurons, int64_t tile, const std::vector<GateOutput>& outputs) {
  static_assert(kGateBlock == 4, "BlockUnion's vector loop reads four examples");
  if (last - first == 1) {  // a lone example (the per-call online step): no padding examples
    GateOne<T>(first, side_info + first * inputs, inputs, hyperplanes_t, hyperplane_bias, columns,
               m, neurons, outputs);
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
                      counts[k], hyperplanes_t, columns, j0, projections.get() + (j0 - c0), tile);
        }
        for (int64_t e = 0; e < std::min<int64_t>(kGateBlock, g1 - b0); ++e) {
          StoreIndices<T>(projections.get() + e * tile, hyperplane_bias, c0, n0, n1, m, b0 + e,
                          outputs);
        }
      }
    }
  }
}

// The arguments' dtypes and shapes, the attributes and the results; fills `outputs` (one per
// neuron, layer by layer).
ffi::Error CheckGateArguments(const ffi::AnyBuffer& side_info, const ffi::AnyBuffer& hyperplanes_t,
                              const ffi::AnyBuffer& hyperplane_bias, ffi::RemainingRets indices,
                              int64_t m, int64_t num_threads, int64_t width,
                              std::vector<GateOutput>& outputs) {
  const auto x_dims = side_info.dimensions();
  const auto h_dims = hyperplanes_t.dimensions();
  if (x_dims.size() != 2) {
    return ffi::Error::InvalidArgument("side_info must be [B, N], got " + Describe(side_info));
  }
  if (h_dims.size() != 2 || h_dims[0] != x_dims[1] ||
      hyperplanes_t.element_type() != side_info.element_type()) {
    return ffi::Error::InvalidArgument(
        "hyperplanes_t must be [N, J] with N = " + std::to_string(x_dims[1]) + " of side_info's "
        "dtype " + TypeName(side_info.element_type()) + ", got " + Describe(hyperplanes_t));
  }
  const auto b_dims = hyperplane_bias.dimensions();
  if (hyperplane_bias.element_type() != side_info.element_type() || b_dims.size() != 1 ||
      b_dims[0] != h_dims[1]) {
    return ffi::Error::InvalidArgument(
        "hyperplane_bias must be [J] with J = " + std::to_string(h_dims[1]) +
        ", all of one dtype " + TypeName(side_info.element_type()) + ", got " +
        Describe(hyperplane_bias));
  }
  if (m < 1 || m > 30) {
    return ffi::Error::InvalidArgument("context_map_size is " + std::to_string(m) +
                                       ", must lie in [1, 30]");
  }
  if (num_threads < 1) {
    return ffi::Error::InvalidArgument("num_threads is " + std::to_string(num_threads) +
                                       ", must be at least 1");
  }
  const int64_t batch = x_dims[0], columns = h_dims[1];
  for (size_t l = 0; l < indices.size(); ++l) {
    auto out = indices.get<ffi::AnyBuffer>(l);
    if (!out.has_value() || (*out)->element_type() != ffi::DataType::S32 ||
        (*out)->dimensions().size() != 3 || (*out)->dimensions()[0] != batch) {
      return ffi::Error::InvalidArgument("context indices must be int32 [B, C, K] per layer "
                                         "with B = " + std::to_string(batch));
    }
    const auto dims = (*out)->dimensions();
    const int64_t row = dims[1] * dims[2];
    for (int64_t n = 0; n < row; ++n) outputs.push_back({(*out)->typed_data<int32_t>(), row, n});
  }
  const int64_t total = int64_t(outputs.size());
  if (total * m > columns || columns % width != 0) {
    return ffi::Error::InvalidArgument(
        "hyperplanes_t must have C * K * H columns per layer (" + std::to_string(total * m) +
        " in all), padded to a multiple of 64, got " + std::to_string(columns));
  }
  return ffi::Error::Success();
}

template <typename T>
ffi::Error RunGates(ffi::AnyBuffer side_info, ffi::AnyBuffer hyperplanes_t,
                    ffi::AnyBuffer hyperplane_bias, ffi::RemainingRets indices, int64_t m,
                    int64_t num_threads) {
  std::vector<GateOutput> outputs;  // one per neuron, layer by layer
  const ffi::Error error = CheckGateArguments(side_info, hyperplanes_t, hyperplane_bias, indices,
                                              m, num_threads, kGateWidth<T>, outputs);
  if (error.failure()) return error;
  const int64_t batch = side_info.dimensions()[0], inputs = side_info.dimensions()[1];
  const int64_t columns = hyperplanes_t.dimensions()[1];
  const int64_t total = int64_t(outputs.size());
  // columns per tile: a multiple of lcm(kGateWidth, H), as many as fit kGateTileBytes (one
  // at least); the last tile ends at the padded end
  int64_t unit = kGateWidth<T>;
  while (unit % m != 0) unit += kGateWidth<T>;
  const int64_t tile =
      unit * std::max<int64_t>(1, kGateTileBytes / (unit * inputs * int64_t(sizeof(T)) + 1));
  const T* x = side_info.typed_data<T>();
  const T* h = hyperplanes_t.typed_data<T>();
  const T* bias = hyperplane_bias.typed_data<T>();
  // a thread is worth its start only for a few blocks of work each; threads take whole blocks
  const int64_t blocks = (batch + kGateBlock - 1) / kGateBlock;
  const int64_t threads =
      std::max<int64_t>(1, std::min({num_threads, blocks / 4, kMaxThreads}));
  const std::string failure = RunParts(threads, [&](int64_t i) {
    const int64_t first = std::min(batch, blocks * i / threads * kGateBlock);
    const int64_t last = std::min(batch, blocks * (i + 1) / threads * kGateBlock);
    GateExamples<T>(first, last, x, inputs, h, bias, columns, m, total, tile, outputs);
  });
  if (!failure.empty()) return PartFailed("gln_gates", failure);
  return ffi::Error::Success();
}

ffi::Error Gates(ffi::AnyBuffer side_info, ffi::AnyBuffer hyperplanes_t,
                 ffi::AnyBuffer hyperplane_bias, ffi::RemainingRets indices,
                 int64_t context_map_size, int64_t num_threads) {
  return Guarded("gln_gates", [&]() {
    switch (side_info.element_type()) {
      case ffi::DataType::F32:
        return RunGates<float>(side_info, hyperplanes_t, hyperplane_bias, indices,
                               context_map_size, num_threads);
      case ffi::DataType::F64:
        return RunGates<double>(side_info, hyperplanes_t, hyperplane_bias, indices,
                                context_map_size, num_threads);
      default:
        return ffi::Error::InvalidArgument("gln_gates supports float32 and float64 only, got "
                                           "side_info " + Describe(side_info));
    }
  });
}

}  // namespace
}  // namespace gln_jax

XLA_FFI_DEFINE_HANDLER_SYMBOL(GlnGates, gln_jax::Gates,
                              xla::ffi::Ffi::Bind()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .RemainingRets()
                                  .Attr<int64_t>("context_map_size")
                                  .Attr<int64_t>("num_threads"));
