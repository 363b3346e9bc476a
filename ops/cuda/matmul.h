// CUDA kernel of the batched matrix product (ops/matmul.h), with ops/cpu/matmul.h's contract:
// out[..., m, n] (contiguous) = a[..., m, k] b[..., k, n], a and b already expanded to out's
// batch dims (stride 0 where broadcast); float32 or float64. ops/cuda/matmul.cu describes
// the operands to the GEMM of ops/cuda/gemm.h, whose backend MILA_CUDA_GEMM picks.
#pragma once

#include "tensor/tensor.h"

namespace mila::cuda {
void batched_matmul(const Tensor& out, const Tensor& a, const Tensor& b);
}  // namespace mila::cuda
