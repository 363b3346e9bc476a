// gemm.h - batched matrix multiply on the GPU (namespace mila::cuda), and the switch that
// picks who computes it.
//
//   C[z][m, n] = sum_k A[z][m, k] * B[z][k, n]        for every batch item z
//
// Operands are described the way a BLAS reads them: one unit stride per matrix, the other
// stride the leading dimension, and a flag for which one is unit. A transposed view is
// therefore read in place; an operand with no unit stride must be copied by the caller
// (ops/cuda/matmul.cu does). The batch is any number of dims with any strides for A and B
// (0 where an operand is broadcast); C is dense, item z at c + z * c_batch_stride.
//
// Note [gemm backends]. Three implementations, chosen once per process by the environment
// variable MILA_CUDA_GEMM (read at the first GEMM), or in-process by set_gemm_backend():
//
//   MILA_CUDA_GEMM=mila    (default) the project's FP32 SGEMM (gemm.cu, Note [sgemm tiles]):
//                          shared-memory tiles, 8x8 register blocking, double buffering.
//   MILA_CUDA_GEMM=tf32    the project's tensor-core kernel (Note [tf32 gemm]): inputs rounded
//                          to TF32 (10-bit mantissa), products summed in FP32. About 1e-3
//                          relative error per product, as PyTorch's allow_tf32. Needs compute
//                          capability 8.0 or newer on a GPU; always available under emulation.
//   MILA_CUDA_GEMM=cublas  NVIDIA's cuBLAS (cublas<S|D>gemmStridedBatched), the baseline. Not
//                          emulated: under -DMILA_CUDA=EMULATE choosing it throws.
//
// The same switch will route convolutions to cuDNN (cublas -> vendor libraries) once the
// convolution has a CUDA kernel. float64 GEMMs run on the mila kernel (instantiated for
// double) under mila and tf32 (TF32 is a float32 format), and on cublasDgemm under cublas.
// Every backend is deterministic: the same call on the same device gives the same bits
// (each output element is summed by one thread in a fixed order; no atomics, no split-k).
#pragma once

#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace mila::cuda {

enum class GemmBackend { mila, tf32, cublas };

// The backend in use: MILA_CUDA_GEMM on first use (mila when unset), or the last
// set_gemm_backend(). An unknown value of MILA_CUDA_GEMM throws, naming the accepted ones.
GemmBackend gemm_backend();
void set_gemm_backend(GemmBackend backend);
const char* gemm_backend_name(GemmBackend backend);
// "mila" | "tf32" | "cublas" -> the backend; anything else throws std::invalid_argument.
GemmBackend parse_gemm_backend(const std::string& name);
// Whether `backend` can run here: mila always; tf32 under emulation or on compute
// capability 8.0+; cublas in the nvcc build. gemm() with a backend that cannot run throws.
bool gemm_backend_available(GemmBackend backend);

// One operand, as a BLAS reads it. Not transposed (row-major): element (r, c) of the
// rows x cols matrix at data[r * ld + c]; transposed (column-major): at data[c * ld + r].
template <typename T>
struct GemmOperand {
  const T* data;
  int64_t ld;
  bool transposed;
  Shape batch_strides;  // elements between batch items, one per batch dim (0: broadcast)
};

template <typename T>
struct GemmArgs {
  int64_t m, n, k;
  GemmOperand<T> a;      // [m, k]
  GemmOperand<T> b;      // [k, n]
  T* c;                  // C(i, j) of item z at c[z * c_batch_stride + i * ldc + j]
  int64_t ldc;
  int64_t c_batch_stride;
  Shape batch;           // the batch dims (empty: one product); z runs over them row-major
};

// Computes C with the current backend, on the context's stream. k == 0 writes zeros.
// float or double; the data pointers are device pointers.
void gemm(const GemmArgs<float>& args);
void gemm(const GemmArgs<double>& args);

}  // namespace mila::cuda
