// matmul.h - matrix products with torch.matmul's rules, and linear.
//
//   1-d x 1-d -> dot product (0-d)
//   2-d x 2-d -> matrix product
//   1-d x n-d -> a row vector (1 prepended, then removed); n-d x 1-d -> a column vector
//   otherwise -> batched: the dims before the last two broadcast, e.g.
//                [B, 1, m, k] x [H, k, n] -> [B, H, m, n]
// float32 runs on the project's GEMM (ops/cpu/gemm.h), float64 on the plain fp64 GEMM.
// Derivatives: dA = dout B^T, dB = A^T dout (summed back over broadcast batch dims).
#pragma once

#include "tensor/tensor.h"

namespace mila {
Tensor matmul(const Tensor& a, const Tensor& b);
// y = x W^T + b with x [..., in], weight [out, in], bias [out] or undefined (nn.Linear).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
}  // namespace mila
