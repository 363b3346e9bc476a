// block_reduce.h - the threads of a block combine one value each into one, always in the
// same tree (Note [deterministic reductions] in ops/cuda/reduce.cu): first within each warp
// by shuffles, lane i taking lane i + 16, then i + 8, ..., i + 1; then warp 0 combines the
// warps' results, read from shared memory, the same way. The tree depends only on the block
// size, so a kernel that hands every thread a fixed share of the input gets the same bits
// on every run.
//
// A reducer R says what is combined:
//   R::Acc                       the value type (trivially copyable; a struct for argmax)
//   R::identity()                the value of no elements
//   R::combine(a, b)             a covers lower indices than b
//   R::shuffle_down(v, offset)   __shfl_down_sync of an Acc
//
// Blocks are whole warps (a multiple of 32 threads): every lane takes part in the shuffles.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/cuda/device.h"

namespace mila::cuda {

// Shared memory a block reduction needs: one slot per warp, and one for the broadcast.
template <typename Acc>
using ReduceSlots = SharedArray<Acc, kWarpSize + 1>;

// Threads for a block that reduces `n` elements: at least 8 elements per thread while that
// leaves a whole warp, up to 256 threads. A function of n only, so the tree is too.
inline int threads_for_line(int64_t n) {
  const int64_t warps = (n + kWarpSize * 8 - 1) / (kWarpSize * 8);
  return kWarpSize * int(std::clamp<int64_t>(warps, 1, 8));
}

// Lane 0 ends with the combination of the warp's 32 values (the other lanes hold partial
// trees that nobody reads).
template <typename R>
__device__ typename R::Acc warp_reduce(typename R::Acc v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v = R::combine(v, R::shuffle_down(v, offset));
  return v;
}

// Every thread of the block calls it with its value; every thread gets the block's result.
// The slots are free again when it returns.
template <typename R>
__device__ typename R::Acc block_reduce(typename R::Acc v, SharedSpan<typename R::Acc> slots) {
  using Acc = typename R::Acc;
  const int lane = int(threadIdx.x) % kWarpSize, warp = int(threadIdx.x) / kWarpSize;
  const int warps = int(blockDim.x) / kWarpSize;
  v = warp_reduce<R>(v);
  if (lane == 0) slots[warp] = v;
  __syncthreads();
  if (warp == 0) {
    Acc w = lane < warps ? Acc(slots[lane]) : R::identity();
    w = warp_reduce<R>(w);
    if (lane == 0) slots[kWarpSize] = w;  // the broadcast slot: no warp writes it above
  }
  __syncthreads();
  const Acc total = slots[kWarpSize];
  // The next call writes the per-warp slots and its broadcast slot only after its first
  // barrier, which every thread reaches after this read: no barrier is needed here.
  return total;
}

}  // namespace mila::cuda
