// runtime.h - what every kernel file includes: the device dialect (ops/cuda/device.h), the
// context (stream, handles, workspace), the launch helper, and the strided-tensor
// descriptor that elementwise kernels take by value.
#pragma once

#include <string>

#include "ops/cuda/context.h"
#include "ops/cuda/device.h"
#include "ops/cuda/launch.h"
#include "ops/op_list.h"
#include "tensor/tensor.h"

namespace mila::cuda {

inline constexpr int kMaxDims = 8;

// A tensor's shape and strides (elements) for a kernel: element i of the row-major order
// lives at data[offset(i)].
struct StridedIndexer {
  int nd = 0;
  int64_t sizes[kMaxDims];
  int64_t strides[kMaxDims];

  __host__ __device__ int64_t offset(int64_t linear) const {
    int64_t off = 0;
    for (int d = nd - 1; d >= 0; --d) {
      off += (linear % sizes[d]) * strides[d];
      linear /= sizes[d];
    }
    return off;
  }
};

// Describes a tensor read as shape `shape` with `strides` (0 where broadcast). Throws above
// kMaxDims dims, naming `op`.
StridedIndexer make_indexer(const Shape& shape, const Shape& strides, const char* op);

// Launch configuration for a grid-stride loop over n elements.
inline int blocks_for(int64_t n, int threads = 256) {
  const int64_t b = (n + threads - 1) / threads;
  return int(b < 65535 * 32 ? (b > 0 ? b : 1) : 65535 * 32);
}

// Typed device pointers of a tensor (its element [0, 0, ...]).
template <typename T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

}  // namespace mila::cuda
