// CPU kernel of the batched matrix product (ops/matmul.h).
#pragma once

#include "tensor/tensor.h"

namespace mila::cpu {
// out[..., m, n] (contiguous) = a[..., m, k] b[..., k, n], where a and b are views already
// expanded to out's batch dims (stride 0 where broadcast). float32 or float64.
void batched_matmul(const Tensor& out, const Tensor& a, const Tensor& b);
}  // namespace mila::cpu
