// device.h - the dialect every ops/cuda/*.cu kernel is written in, for both builds:
//
//   nvcc build      (-DMILA_CUDA=ON/AUTO): CUDA itself; this header adds thin wrappers.
//   emulation build (-DMILA_CUDA=EMULATE): the same sources compiled as C++ by g++ against
//                   ops/cuda/emulator/, which runs each block's threads as fibers on the CPU
//                   (docs/cuda.md, Note [emulator] in ops/cuda/emulator/emulator.h).
//
// What a kernel may use, beyond plain C++ and the CUDA keywords (__global__, __device__,
// __host__, __forceinline__, __restrict__, threadIdx, blockIdx, blockDim, gridDim):
//
//   shared memory    __shared__ SharedArray<float, 256> s;   s[i] = x; float y = s[j];
//                    dynamic_shared<float>()  -> SharedSpan<float> over the launch's bytes
//                    (never a raw `__shared__ float s[256]`: the wrappers are how the
//                    emulator's race check sees every shared-memory access)
//   barriers         __syncthreads(), __syncwarp()
//   warp             __shfl_sync, __shfl_xor_sync, __shfl_down_sync, __shfl_up_sync,
//                    __ballot_sync, __any_sync, __all_sync (full 32-lane warps)
//   atomics          atomicAdd, atomicMax, atomicMin, atomicCAS, atomicExch (integers; float
//                    atomicAdd exists but the project's reductions never use it: Note
//                    [deterministic reductions] in ops/cuda/reduce.cu)
//   math             the C names (expf, logf, tanhf, sqrtf, fmaxf, fminf, fabsf, powf,
//                    rsqrtf, ...), __float_as_uint, __uint_as_float, __ldg
//   tensor cores     to_tf32, mma_m16n8k8_tf32, ldmatrix_x4, cp_async_16, cp_async_commit, cp_async_wait
//                    (below; the emulator implements them lane by lane)
//
// and every launch goes through MILA_LAUNCH (ops/cuda/launch.h), never <<<...>>>.
#pragma once

#include <cstdint>

#if defined(MILA_CUDA_EMULATE)
#include "ops/cuda/emulator/emulator.h"
#else
#include <cuda_runtime.h>
#endif

namespace mila::cuda {

inline constexpr int kWarpSize = 32;
inline constexpr unsigned kFullMask = 0xffffffffu;

#if defined(MILA_CUDA_EMULATE)
using emulator::SharedArray;
using emulator::SharedSpan;
using emulator::dynamic_shared;
#else
// A view of shared memory: s[i] is a plain reference on the GPU.
template <typename T>
struct SharedSpan {
  T* ptr;
  __device__ __forceinline__ T& operator[](int64_t i) const { return ptr[i]; }
  __device__ __forceinline__ SharedSpan operator+(int64_t i) const { return {ptr + i}; }
  __device__ __forceinline__ T* raw() const { return ptr; }
};

// A statically sized shared array: declare it `__shared__ SharedArray<T, N> name;`.
template <typename T, int N>
struct SharedArray {
  alignas(16) T data[N];  // 16-byte aligned: vector loads, cp.async and ldmatrix need it
  __device__ __forceinline__ T& operator[](int64_t i) { return data[i]; }
  __device__ __forceinline__ SharedSpan<T> span() { return {data}; }
};

// The dynamic shared memory of the launch (its size is MILA_LAUNCH's shared_bytes).
template <typename T>
__device__ __forceinline__ SharedSpan<T> dynamic_shared() {
  extern __shared__ __align__(16) unsigned char mila_dynamic_shared_bytes[];
  return {reinterpret_cast<T*>(mila_dynamic_shared_bytes)};
}
#endif

// ---- tensor cores (sm_80+) ------------------------------------------------------------
// Note [tensor-core fragments]. mma.sync.m16n8k8 with TF32 inputs and FP32 accumulators,
// one warp per 16x8 tile of D = A (16x8, row-major) * B (8x8, column-major) + C. With
// group = lane / 4 and quad = lane % 4, each lane holds (PTX ISA, "Matrix fragments for
// mma.m16n8k8" with .tf32):
//   a[0] = A[group][quad]      a[1] = A[group + 8][quad]
//   a[2] = A[group][quad + 4]  a[3] = A[group + 8][quad + 4]
//   b[0] = B[quad][group]      b[1] = B[quad + 4][group]
//   c[0] = C[group][2 quad]    c[1] = C[group][2 quad + 1]
//   c[2] = C[group + 8][2 quad] c[3] = C[group + 8][2 quad + 1]
// The emulator gathers the fragments of the 32 lanes and multiplies exactly this layout,
// so a kernel that gets the layout wrong fails its test under emulation too.
//
// ldmatrix.sync.m8n8.x4.b16 loads four 8x8 matrices of 16-bit elements from shared memory for
// the 16-bit mma shapes: lane l names row l % 8 of matrix l / 8 (a 16-byte aligned address),
// and register j of lane l receives row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1 of matrix
// j (the lower column in the low half). The project's kernels are float32 (TF32 mma reads its
// fragments straight from shared memory); ldmatrix_x4 is here, and emulated, for 16-bit ones.
#if defined(MILA_CUDA_EMULATE)
using emulator::ldmatrix_x4;
using emulator::to_tf32;
using emulator::mma_m16n8k8_tf32;
using emulator::cp_async_16;
using emulator::cp_async_commit;
using emulator::cp_async_wait;
#elif defined(__CUDACC__)  // device code: a host-only .cpp may include this header for the types above
// fp32 -> tf32 (10-bit mantissa, round to nearest, ties away from zero), as the bits of a float.
__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}

__device__ __forceinline__ void mma_m16n8k8_tf32(float c[4], const uint32_t a[4], const uint32_t b[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();  // the TF32 path is only selected on sm_80 and newer (ops/cuda/matmul.cu)
#endif
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], SharedSpan<uint16_t> row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row.raw()));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#else
  __trap();
#endif
}

// Asynchronous 16-byte copy global -> shared (cp.async.cg; both addresses 16-byte aligned).
__device__ __forceinline__ void cp_async_16(SharedSpan<float> dst, const float* src) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(dst.raw()));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(addr), "l"(src));
#else
  *reinterpret_cast<float4*>(dst.raw()) = *reinterpret_cast<const float4*>(src);
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;");
#endif
}
// Waits until at most `Pending` committed groups of this thread are still in flight.
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;" ::"n"(Pending));
#endif
}
#endif

}  // namespace mila::cuda
