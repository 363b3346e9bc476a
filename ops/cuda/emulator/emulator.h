// emulator.h - the CUDA execution model on the CPU, for the emulation build
// (-DMILA_CUDA=EMULATE): ops/cuda/*.cu compile as C++ against this header instead of
// <cuda_runtime.h>, so CI (which has no GPU) runs the project's own CUDA kernels.
//
// Note [emulator]. What it reproduces, and how:
//   - a launch runs the blocks of its grid one after another, on the calling thread;
//   - the threads of a block run as cooperative fibers (Boost.Context): a thread runs
//     until it reaches a barrier (__syncthreads, a warp collective) or returns, then the
//     next runs; a barrier opens when every thread of the block (or lane of the warp) that
//     has not returned waits at it. A block whose threads wait at different barriers
//     forever is reported (divergent __syncthreads) instead of hanging;
//   - __shared__ variables are one copy per block (static thread_local storage: the blocks
//     of one launch run in turn), dynamic shared memory is a per-launch buffer;
//   - warp shuffles, votes and mma exchange values through a per-warp buffer at a warp
//     barrier, so they see exactly the values each lane passed;
//   - device memory is host memory (cudaMalloc is an aligned allocation), behind the same
//     allocator, context and copy API as on a GPU;
//   - the race check: every shared-memory access goes through SharedArray / SharedSpan and
//     is recorded with the barrier interval it happened in; a thread touching a byte that
//     another thread wrote in the same interval (or writing one another thread read) throws,
//     naming the kernel, the block, the two threads and the interval, as compute-sanitizer's
//     racecheck reports a hazard on a GPU.
// What it does not: timing (it is orders of magnitude slower than a GPU and says nothing of
// performance), preemption (a thread spinning on a flag another thread sets never yields),
// memory-model subtleties (every access is immediately visible), cuBLAS and cuDNN.
#pragma once

#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

// ---- the language: keywords become plain C++ ----------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static thread_local
#define __constant__ static

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};

namespace mila::cuda::emulator {

// The running thread's coordinates (valid inside a kernel).
const uint3& thread_idx();
const uint3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();

void syncthreads();
void syncwarp();
// A warp collective: each lane passes `bytes` (at most 64); returns the 32 lanes' values
// (lane i's at result + i * 64), valid until this lane's next collective. Lanes beyond the
// block's last thread read as zero bytes.
const unsigned char* warp_exchange(const void* mine, size_t bytes);
int lane_id();
// The lanes of the running thread's warp that exist (all 32 but in a partial last warp).
unsigned existing_lanes();

// The race check's record of one shared-memory access by the running thread.
void record_shared(const void* address, size_t bytes, bool write);
// The launch's dynamic shared memory.
unsigned char* dynamic_shared_base();

// Runs `thread_body` for every thread of every block (Note [emulator]); throws, naming the
// kernel and file:line, on a race, a divergent barrier or an exception inside the kernel.
// A bad configuration is not thrown: it is left for cudaGetLastError, as CUDA does.
void launch(const char* kernel, const char* file, int line, dim3 grid, dim3 block, size_t shared_bytes,
            const std::function<void()>& thread_body);

// ---- shared memory seen by the race check ----------------------------------------------------
template <typename T>
class SharedRef {
 public:
  explicit SharedRef(T* p) : p_(p) {}
  operator T() const {
    record_shared(p_, sizeof(T), false);
    return *p_;
  }
  const SharedRef& operator=(const T& v) const {
    record_shared(p_, sizeof(T), true);
    *p_ = v;
    return *this;
  }
  const SharedRef& operator=(const SharedRef& o) const { return *this = T(o); }
  const SharedRef& operator+=(const T& v) const { return *this = T(*this) + v; }
  const SharedRef& operator-=(const T& v) const { return *this = T(*this) - v; }
  const SharedRef& operator*=(const T& v) const { return *this = T(*this) * v; }
  const SharedRef& operator/=(const T& v) const { return *this = T(*this) / v; }

 private:
  T* p_;
};

template <typename T>
struct SharedSpan {
  T* ptr;
  SharedRef<T> operator[](int64_t i) const { return SharedRef<T>(ptr + i); }
  SharedSpan operator+(int64_t i) const { return {ptr + i}; }
  T* raw() const { return ptr; }
};

template <typename T, int N>
struct SharedArray {
  alignas(16) T data[N];  // as on the GPU (ops/cuda/device.h)
  SharedRef<T> operator[](int64_t i) { return SharedRef<T>(data + i); }
  SharedSpan<T> span() { return {data}; }
};

template <typename T>
SharedSpan<T> dynamic_shared() {
  return {reinterpret_cast<T*>(dynamic_shared_base())};
}

// ---- tensor cores, lane by lane (Note [tensor-core fragments] in ops/cuda/device.h) ------------
inline uint32_t to_tf32(float x) {
  uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7f800000u) == 0x7f800000u)                     // inf stays inf, NaN stays (quiet) NaN
    return (u & 0x7fffffu) ? (u | 0x400000u) & 0xffffe000u : u;
  return (u + 0x1000u) & 0xffffe000u;  // add half of the last kept bit, drop 13: ties away from zero
}
void mma_m16n8k8_tf32(float c[4], const uint32_t a[4], const uint32_t b[2]);
void ldmatrix_x4(uint32_t r[4], SharedSpan<uint16_t> row);
void cp_async_16(SharedSpan<float> dst, const float* src);
inline void cp_async_commit() {}
template <int Pending>
void cp_async_wait() {}  // the copy happened at cp_async_16

}  // namespace mila::cuda::emulator

#define threadIdx (::mila::cuda::emulator::thread_idx())
#define blockIdx (::mila::cuda::emulator::block_idx())
#define blockDim (::mila::cuda::emulator::block_dim())
#define gridDim (::mila::cuda::emulator::grid_dim())
inline constexpr int warpSize = 32;

inline void __syncthreads() { mila::cuda::emulator::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { mila::cuda::emulator::syncwarp(); }

// ---- warp shuffles and votes: all 32 lanes take part ----------------------------------------
namespace mila::cuda::emulator {
// A shuffle: the value `v` that lane source(lane) of the running thread's warp passed.
template <typename T, typename Source>
T shuffle(T v, Source source) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 64);
  const int lane = lane_id();
  const unsigned char* all = warp_exchange(&v, sizeof(T));
  T r;
  std::memcpy(&r, all + source(lane) * 64, sizeof(T));
  return r;
}
}  // namespace mila::cuda::emulator

// With width < 32 the warp splits into segments of `width` lanes; a source outside the
// lane's own segment gives the lane its own value (CUDA's rule).
template <typename T>
T __shfl_sync(unsigned, T v, int src, int width = 32) {
  return mila::cuda::emulator::shuffle(v, [&](int lane) { return (lane & ~(width - 1)) + (src & (width - 1)); });
}
template <typename T>
T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = 32) {
  return mila::cuda::emulator::shuffle(v, [&](int lane) {
    const int from = lane ^ lane_mask;
    return from >= (lane & ~(width - 1)) + width ? lane : from;
  });
}
template <typename T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
  return mila::cuda::emulator::shuffle(v, [&](int lane) {
    const int from = lane + int(delta);
    return from >= (lane & ~(width - 1)) + width ? lane : from;
  });
}
template <typename T>
T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32) {
  return mila::cuda::emulator::shuffle(v, [&](int lane) {
    const int from = lane - int(delta);
    return from < (lane & ~(width - 1)) ? lane : from;
  });
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  const int p = predicate != 0;
  const unsigned char* all = mila::cuda::emulator::warp_exchange(&p, sizeof(int));
  unsigned bits = 0;
  for (int i = 0; i < 32; ++i) {
    int v;
    std::memcpy(&v, all + i * 64, sizeof(int));
    if (v && (mask >> i & 1u)) bits |= 1u << i;
  }
  return bits;
}
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) {
  // Lanes that do not exist (a partial last warp) do not veto.
  return (__ballot_sync(mask, !predicate) & mila::cuda::emulator::existing_lanes()) == 0;
}
inline unsigned __activemask() { return 0xffffffffu; }

// ---- atomics (blocks run in turn on one host thread; atomic_ref keeps them honest) -------------
template <typename T>
T atomicAdd(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_add(v);
}
template <typename T>
T atomicExch(T* p, T v) {
  return std::atomic_ref<T>(*p).exchange(v);
}
template <typename T>
T atomicCAS(T* p, T expected, T desired) {
  std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired);
  return expected;  // the old value either way
}
template <typename T>
T atomicMax(T* p, T v) {
  std::atomic_ref<T> r(*p);
  T old = r.load();
  while (old < v && !r.compare_exchange_weak(old, v)) {
  }
  return old;
}
template <typename T>
T atomicMin(T* p, T v) {
  std::atomic_ref<T> r(*p);
  T old = r.load();
  while (v < old && !r.compare_exchange_weak(old, v)) {
  }
  return old;
}

// ---- math intrinsics the C library lacks -----------------------------------------------------
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0 ? 0.0f : (x > 1 ? 1.0f : x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
template <typename T>
T __ldg(const T* p) {
  return *p;
}

// ---- the runtime API, as far as the project uses it --------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorNoDevice = 100,
  cudaErrorLaunchFailure = 719,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
struct CUstream_st;
typedef CUstream_st* cudaStream_t;
struct CUevent_st;
typedef CUevent_st* cudaEvent_t;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  size_t sharedMemPerBlockOptin;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int multiProcessorCount;
  int major;
  int minor;
};

const char* cudaGetErrorString(cudaError_t err);
const char* cudaGetErrorName(cudaError_t err);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, size_t bytes);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
inline constexpr unsigned cudaStreamNonBlocking = 1;
inline constexpr unsigned cudaEventDisableTiming = 2;
