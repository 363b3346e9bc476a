// optim_update.cu - the fused optimizer updates on the GPU: one launch per parameter tensor,
// a grid-stride loop in which each thread updates whole elements on its own (no shared
// memory, no reduction), so the result does not depend on the launch configuration.
//
// float32 tensors whose pointers are all 16-byte aligned are read and written four elements
// at a time (float4: one 16-byte access per tensor instead of four 4-byte ones), and the
// last n % 4 elements one at a time by the first threads of the same launch. float64, or a
// float32 view that starts mid-vector (a contiguous narrow() of a larger tensor), takes the
// element-at-a-time kernel.
//
// The arithmetic of one element is Note [fused update order] (ops/optim_update.h), with the
// scalars rounded on the host by sgd_scalars / adam_scalars, as the CPU kernel does. One
// difference remains: nvcc fuses a product and a sum into an FMA (one rounding instead of
// two) where it sees fit, as PyTorch's fused CUDA kernels let it, while the CPU kernel rounds
// both (Note [no contraction] in ops/cpu/optim_update.cpp). The two agree within a few ulps
// (tests/test_optim.cpp, suite "cuda").
#include "ops/cuda/optim_update.h"

#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "ops/cuda/runtime.h"

namespace mila::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float square_root(float x) { return sqrtf(x); }
__device__ __forceinline__ double square_root(double x) { return sqrt(x); }

// ---- the arithmetic of one element ------------------------------------------------------

// p, buf: in and out (buf only with momentum; on the first step its value in is not used).
template <typename T>
__device__ __forceinline__ void sgd_element(T& p, T g, T& buf, const SgdScalars<T>& s) {
  T d = g;
  if (s.has_weight_decay) d = d + p * s.weight_decay;
  if (s.has_momentum) {
    buf = s.first_step ? d : buf * s.momentum + d * s.one_minus_dampening;
    d = s.nesterov ? d + buf * s.momentum : buf;
  }
  p = p - d * s.lr;
}

// p, m, v: in and out.
template <typename T>
__device__ __forceinline__ void adam_element(T& p, T g, T& m, T& v, const AdamScalars<T>& s) {
  if (s.decoupled_weight_decay) p = p * s.decay_factor;
  if (s.l2_weight_decay) g = g + p * s.weight_decay;
  m = m * s.beta1 + g * s.one_minus_beta1;
  v = v * s.beta2 + (g * g) * s.one_minus_beta2;
  const T denom = square_root(v) / s.bias_correction2_sqrt + s.eps;
  p = p - (m / denom) * s.step_size;
}

// ---- kernel arguments and the element at index i ------------------------------------------

template <typename T>
struct SgdKernelArgs {
  T* param;
  const T* grad;
  T* buf;  // null without momentum
  int64_t n;
  SgdScalars<T> s;
  // Whether buf's old value is read: with momentum, after the first step.
  __device__ bool reads_buf() const { return s.has_momentum && !s.first_step; }
};

template <typename T>
struct AdamKernelArgs {
  T* param;
  const T* grad;
  T* m;
  T* v;
  int64_t n;
  AdamScalars<T> s;
};

template <typename T>
__device__ __forceinline__ void sgd_at(const SgdKernelArgs<T>& a, int64_t i) {
  T p = a.param[i], buf = a.reads_buf() ? a.buf[i] : T(0);
  sgd_element(p, a.grad[i], buf, a.s);
  a.param[i] = p;
  if (a.s.has_momentum) a.buf[i] = buf;
}

template <typename T>
__device__ __forceinline__ void adam_at(const AdamKernelArgs<T>& a, int64_t i) {
  T p = a.param[i], m = a.m[i], v = a.v[i];
  adam_element(p, a.grad[i], m, v, a.s);
  a.param[i] = p;
  a.m[i] = m;
  a.v[i] = v;
}

__device__ __forceinline__ int64_t first_index() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

// ---- kernels ---------------------------------------------------------------------------

// One element per step of the grid-stride loop (any T, any alignment).
template <typename T>
__global__ void sgd_update_kernel(SgdKernelArgs<T> a) {
  for (int64_t i = first_index(); i < a.n; i += grid_stride()) sgd_at(a, i);
}

template <typename T>
__global__ void adam_update_kernel(AdamKernelArgs<T> a) {
  for (int64_t i = first_index(); i < a.n; i += grid_stride()) adam_at(a, i);
}

// Four elements per step: vector v covers elements 4v .. 4v + 3. Every pointer is 16-byte
// aligned (checked by the launcher). The n % 4 elements after the last whole vector follow.
__global__ void sgd_update_float4_kernel(SgdKernelArgs<float> a) {
  const int64_t vectors = a.n / 4;
  float4* param = reinterpret_cast<float4*>(a.param);
  const float4* grad = reinterpret_cast<const float4*>(a.grad);
  float4* buf = reinterpret_cast<float4*>(a.buf);
  for (int64_t i = first_index(); i < vectors; i += grid_stride()) {
    float4 p = param[i], b = a.reads_buf() ? buf[i] : float4{};
    const float4 g = grad[i];
    sgd_element(p.x, g.x, b.x, a.s);
    sgd_element(p.y, g.y, b.y, a.s);
    sgd_element(p.z, g.z, b.z, a.s);
    sgd_element(p.w, g.w, b.w, a.s);
    param[i] = p;
    if (a.s.has_momentum) buf[i] = b;
  }
  for (int64_t i = 4 * vectors + first_index(); i < a.n; i += grid_stride()) sgd_at(a, i);
}

__global__ void adam_update_float4_kernel(AdamKernelArgs<float> a) {
  const int64_t vectors = a.n / 4;
  float4* param = reinterpret_cast<float4*>(a.param);
  const float4* grad = reinterpret_cast<const float4*>(a.grad);
  float4* m4 = reinterpret_cast<float4*>(a.m);
  float4* v4 = reinterpret_cast<float4*>(a.v);
  for (int64_t i = first_index(); i < vectors; i += grid_stride()) {
    float4 p = param[i], m = m4[i], v = v4[i];
    const float4 g = grad[i];
    adam_element(p.x, g.x, m.x, v.x, a.s);
    adam_element(p.y, g.y, m.y, v.y, a.s);
    adam_element(p.z, g.z, m.z, v.z, a.s);
    adam_element(p.w, g.w, m.w, v.w, a.s);
    param[i] = p;
    m4[i] = m;
    v4[i] = v;
  }
  for (int64_t i = 4 * vectors + first_index(); i < a.n; i += grid_stride()) adam_at(a, i);
}

// ---- launchers -------------------------------------------------------------------------

// Whether the float4 kernels may run: every pointer (null ones aside) 16-byte aligned.
bool all_aligned16(std::initializer_list<const void*> pointers) {
  for (const void* p : pointers)
    if (p && reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

}  // namespace

void sgd_update(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdUpdateParams& p) {
  const int64_t n = param.numel();
  if (n == 0) return;
  dispatch_floating(param.dtype(), "sgd_update", [&]<typename T>() {
    const SgdKernelArgs<T> a{ptr<T>(param), ptr<const T>(grad),
                             momentum_buffer.defined() ? ptr<T>(momentum_buffer) : nullptr, n, sgd_scalars<T>(p)};
    if constexpr (std::is_same_v<T, float>) {
      if (all_aligned16({a.param, a.grad, a.buf})) {
        MILA_LAUNCH(sgd_update_float4_kernel, blocks_for((n + 3) / 4, kThreads), kThreads, 0, a);
        return;
      }
    }
    MILA_LAUNCH(sgd_update_kernel<T>, blocks_for(n, kThreads), kThreads, 0, a);
  });
}

void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                 const AdamUpdateParams& p) {
  const int64_t n = param.numel();
  if (n == 0) return;
  dispatch_floating(param.dtype(), "adam_update", [&]<typename T>() {
    const AdamKernelArgs<T> a{ptr<T>(param), ptr<const T>(grad), ptr<T>(exp_avg), ptr<T>(exp_avg_sq), n,
                              adam_scalars<T>(p)};
    if constexpr (std::is_same_v<T, float>) {
      if (all_aligned16({a.param, a.grad, a.m, a.v})) {
        MILA_LAUNCH(adam_update_float4_kernel, blocks_for((n + 3) / 4, kThreads), kThreads, 0, a);
        return;
      }
    }
    MILA_LAUNCH(adam_update_kernel<T>, blocks_for(n, kThreads), kThreads, 0, a);
  });
}

}  // namespace mila::cuda
