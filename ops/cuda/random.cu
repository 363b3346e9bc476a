// random.cu - rand, randn and randint drawn on the GPU: one thread per element computes
// tensor/random.h's per-element function, the very code the CPU runs, so a seeded draw
// is bit for bit the same on both devices (Note [one random stream for every device]).
#include "ops/cuda/random.h"

#include "ops/cuda/elementwise.cuh"
#include "tensor/random.h"

namespace mila::cuda {
namespace {

struct UniformDraw {
  uint64_t seed, first;
  double top;
  __device__ double operator()(uint64_t i) const { return rand_element(seed, first, i, top); }
};
struct NormalDraw {
  uint64_t seed, first;
  __device__ double operator()(uint64_t i) const { return randn_element(seed, first, i); }
};
struct IntegerDraw {
  uint64_t seed, first;
  int64_t low;
  uint64_t range;
  __device__ int64_t operator()(uint64_t i) const { return randint_element(seed, first, i, low, range); }
};

// out[i] = draw(i) in out's dtype (tensor/dtype.h convert, as the CPU's factories).
template <typename T, typename Draw>
__global__ void random_kernel(T* out, int64_t n, Draw draw) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step)
    out[i] = convert<T>(draw(uint64_t(i)));
}

template <typename T, typename Draw>
void launch_random(const Tensor& out, Draw draw) {
  MILA_LAUNCH((random_kernel<T, Draw>), elementwise_blocks(out.numel()), kElementwiseThreads, 0, ptr<T>(out),
              out.numel(), draw);
}

}  // namespace

void rand_fill(const Tensor& out, uint64_t seed, uint64_t first, double top) {
  dispatch_floating(out.dtype(), "rand", [&]<typename T>() { launch_random<T>(out, UniformDraw{seed, first, top}); });
}

void randn_fill(const Tensor& out, uint64_t seed, uint64_t first) {
  dispatch_floating(out.dtype(), "randn", [&]<typename T>() { launch_random<T>(out, NormalDraw{seed, first}); });
}

void randint_fill(const Tensor& out, uint64_t seed, uint64_t first, int64_t low, uint64_t range) {
  dispatch_all(out.dtype(), [&]<typename T>() { launch_random<T>(out, IntegerDraw{seed, first, low, range}); });
}

}  // namespace mila::cuda
