// context.h - the CUDA context: everything the kernels share, in one object.
//
// One Context per process for the current device (cuda:0 unless the program selects another
// with cudaSetDevice before the first CUDA op), created on first use: its stream (every
// kernel and copy of the project runs on it, in order), the device's properties, a
// workspace that grows on demand, a device-side error word that kernels set on bad input
// (an index out of range), and, in the nvcc build, the cuBLAS handle (and the cuDNN one
// where cuDNN was found). The emulation build has the same object without the vendor
// handles: cuBLAS and cuDNN are never emulated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "ops/cuda/device.h"

#if !defined(MILA_CUDA_EMULATE)
#include <cublas_v2.h>
#endif

// Throws std::runtime_error naming the call, the file and line, and CUDA's message.
#define CUDA_CHECK(call)                                                                             \
  do {                                                                                               \
    cudaError_t err_ = (call);                                                                       \
    if (err_ != cudaSuccess)                                                                         \
      ::mila::cuda::throw_cuda_error(#call, __FILE__, __LINE__, err_);                               \
  } while (0)

namespace mila::cuda {

[[noreturn]] void throw_cuda_error(const char* call, const char* file, int line, cudaError_t err);

// Codes a kernel writes to the error word; the first one written wins (atomicCAS from 0).
enum class DeviceError : int { none = 0, index_out_of_range = 1 };

class Context {
 public:
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  cudaStream_t stream() const { return stream_; }
  const cudaDeviceProp& properties() const { return properties_; }
  int device() const { return device_; }
  // Compute capability as 10 * major + minor (90 for an H100).
  int compute_capability() const { return properties_.major * 10 + properties_.minor; }
  bool emulated() const;

  // A device buffer of at least `bytes`, reused by every caller: valid until the next call.
  // Kernels on the one stream use it in turn, so no two launches see it at once.
  void* workspace(size_t bytes);

  // The device error word for a kernel to report into (reset to 0 by this call), and the
  // check that reads it back after the kernel (synchronizes; throws `what` + the code).
  int* error_word();
  void check_error_word(const std::string& what);

  void synchronize();

#if !defined(MILA_CUDA_EMULATE)
  cublasHandle_t cublas();  // created on first use, bound to the stream
#endif

  static Context& get();

 private:
  Context();
  ~Context();
  int device_ = 0;
  cudaStream_t stream_{};
  cudaDeviceProp properties_{};
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  int* error_word_ = nullptr;
#if !defined(MILA_CUDA_EMULATE)
  cublasHandle_t cublas_ = nullptr;
#endif
};

inline Context& context() { return Context::get(); }

}  // namespace mila::cuda
