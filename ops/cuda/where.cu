// where.cu - where(cond, a, b) on the GPU: out = cond ? a : b, the three broadcast to out's
// shape, run by launch_elementwise (ops/cuda/elementwise.cuh). A selection, so exact.
#include "ops/cuda/where.h"

#include "ops/cuda/elementwise.cuh"

namespace mila::cuda {
namespace {

struct Select {
  template <typename T> __device__ T operator()(uint8_t c, T x, T y) const { return c ? x : y; }
};

}  // namespace

void where_forward(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  dispatch_all(a.dtype(), [&]<typename T>() { launch_elementwise<T, uint8_t, T, T>("where", Select{}, out, cond, a, b); });
}

}  // namespace mila::cuda
