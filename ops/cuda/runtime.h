// runtime.h - the CUDA backend's plumbing: error checks, the device allocator, and the
// strided-tensor descriptor that the elementwise kernels take by value.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "tensor/tensor.h"

// Throws std::runtime_error naming the call, the file and line, and CUDA's message.
#define CUDA_CHECK(call)                                                                             \
  do {                                                                                               \
    cudaError_t err_ = (call);                                                                       \
    if (err_ != cudaSuccess)                                                                         \
      throw std::runtime_error(std::string(#call) + " failed at " + __FILE__ + ":" +                 \
                               std::to_string(__LINE__) + ": " + cudaGetErrorString(err_));          \
  } while (0)

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

// Describes `t` read as shape `shape` (broadcast: stride 0). Throws above kMaxDims dims.
StridedIndexer make_indexer(const Shape& shape, const Shape& strides, const char* op);

// Launch configuration for a grid-stride loop over n elements.
inline int blocks_for(int64_t n, int threads = 256) {
  const int64_t b = (n + threads - 1) / threads;
  return int(b < 65535 * 32 ? (b > 0 ? b : 1) : 65535 * 32);
}

}  // namespace mila::cuda
