// elementwise.cuh - the one loop behind every elementwise kernel of ops/cuda/ (unary,
// binary, where, copy, fill): out[i] = f(in_0[i], ..., in_k[i]) over out's shape, each
// input broadcast to it. Included by .cu files only (it holds device code).
//
//   launch_elementwise<TO, TI...>(op_name, f, out, in...)
//     TO      out's element type; out may be any strided view without internal overlap
//     TI...   the inputs' element types, one per input tensor
//     f       a functor with a __device__ `TO operator()(TI...) const`, taken by value
//     in...   tensors whose shapes broadcast to out's
//
// Note [elementwise paths]. The host picks one of two kernels per call:
//
//   vectorized  out and every input contiguous with out's shape (no broadcast) and every
//               pointer aligned to its pack: a thread loads one pack per input (kPackBytes,
//               16 bytes, of the widest operand type: 4 floats, 2 doubles, 16 uint8, and
//               the same number of elements of the narrower types), applies f to each
//               element, and stores one pack, in a grid-stride loop over the packs; the
//               n % pack elements after the last whole pack (the tail) are then done one
//               per thread. 16-byte accesses are the widest a thread can make (LDG.128):
//               a quarter of the memory instructions of scalar float loads.
//   strided     anything else (broadcast, transposed, sliced, a misaligned offset): one
//               element per thread per iteration, every operand located through its
//               strides (StridedIndexer). The host first merges the dims that every operand
//               walks as one and drops size-1 dims (cpu::coalesce_dims, as the CPU loops
//               do), so a contiguous [N, C, H, W] + bias [1, C, 1, 1] unravels 3 dims per
//               element instead of 4, and a dense copy from a sliced row unravels 1.
//
// Both paths call f on the same element values, so they give the same bits (tested in
// tests/test_elementwise.cpp by running one op on a contiguous and on a strided copy of
// the same input). Each output element is written by exactly one thread: no races, and
// results do not depend on the grid. The grid holds at most 32 blocks per multiprocessor
// (elementwise_blocks): larger tensors make each thread's grid-stride loop turn.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "ops/cpu/coalesce.h"
#include "ops/cuda/runtime.h"

namespace mila::cuda {

inline constexpr int kElementwiseThreads = 256;
inline constexpr int kPackBytes = 16;

// kPackBytes of the widest of the types, counted in elements.
template <typename... T>
inline constexpr int kPackElements = kPackBytes / int(std::max({sizeof(T)...}));

// N elements of T that move as one aligned access.
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

// One operand of the strided kernel: its data and where element i of out's order lives.
template <typename T>
struct StridedOperand {
  const T* data;
  StridedIndexer index;
};

// ---- the kernels ----------------------------------------------------------------------------

template <int N, typename TO, typename F, typename... Packs>
__device__ __forceinline__ void apply_to_packs(TO* out, F f, Packs... in) {
  Pack<TO, N> result;
  for (int k = 0; k < N; ++k) result.v[k] = f(in.v[k]...);
  *reinterpret_cast<Pack<TO, N>*>(out) = result;
}

template <int N, typename TO, typename F, typename... TI>
__global__ void elementwise_vectorized_kernel(TO* out, int64_t n, F f, const TI*... in) {
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  const int64_t packs = n / N;
  for (int64_t p = first; p < packs; p += step)
    apply_to_packs<N>(out + p * N, f, *reinterpret_cast<const Pack<TI, N>*>(in + p * N)...);
  for (int64_t i = packs * N + first; i < n; i += step)  // the tail: fewer than N elements
    out[i] = f(in[i]...);
}

template <typename TO, typename F, typename... TI>
__global__ void elementwise_strided_kernel(TO* out, StridedIndexer out_index, int64_t n, F f,
                                           StridedOperand<TI>... in) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step)
    out[out_index.offset(i)] = f(in.data[in.index.offset(i)]...);
}

// ---- the launcher ---------------------------------------------------------------------------

// Blocks for `work` items, one per thread, but no more than 32 per multiprocessor: a
// grid-stride loop over a larger range lets each thread take several items rather than
// paying for blocks that only index (32 x SMs is the figure NVIDIA's grid-stride guide
// suggests; it keeps every SM busy on H100's 132 and on smaller parts alike).
inline int elementwise_blocks(int64_t work) {
  const int64_t cap = 32 * int64_t(std::max(1, context().properties().multiProcessorCount));
  return int(std::min<int64_t>(blocks_for(work, kElementwiseThreads), cap));
}

inline bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <typename TO, typename... TI, typename F, typename... Tensors>
void launch_elementwise(const char* op, F f, const Tensor& out, const Tensors&... in) {
  static_assert(sizeof...(TI) == sizeof...(Tensors), "one element type per input tensor");
  const int64_t n = out.numel();
  if (n == 0) return;

  constexpr int N = kPackElements<TO, TI...>;
  const bool dense = out.is_contiguous() && ((in.is_contiguous() && in.shape() == out.shape()) && ...);
  const bool aligned =
      aligned_to(out.raw_data(), sizeof(TO) * N) && (aligned_to(in.raw_data(), sizeof(TI) * N) && ...);
  if (dense && aligned) {
    MILA_LAUNCH((elementwise_vectorized_kernel<N, TO, F, TI...>), elementwise_blocks((n + N - 1) / N),
                kElementwiseThreads, 0, ptr<TO>(out), n, f, ptr<const TI>(in)...);
    return;
  }

  Shape shape = out.shape();
  std::array<Shape, 1 + sizeof...(TI)> strides{out.strides(),
                                               broadcast_strides(in.shape(), in.strides(), out.shape())...};
  cpu::coalesce_dims(shape, strides);
  [&]<size_t... k>(std::index_sequence<k...>) {
    MILA_LAUNCH((elementwise_strided_kernel<TO, F, TI...>), elementwise_blocks(n), kElementwiseThreads, 0,
                ptr<TO>(out), make_indexer(shape, strides[0], op), n, f,
                StridedOperand<TI>{ptr<const TI>(in), make_indexer(shape, strides[k + 1], op)}...);
  }(std::index_sequence_for<TI...>{});
}

}  // namespace mila::cuda
