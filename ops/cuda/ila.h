// CUDA kernels of the fused inter-frame local attention (ops/ila.h): declared with
// ops/cpu/ila.h's contract, not written yet (the CUDA column of ops/op_list.h says so).
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace mila::cuda {
void ila_forward(const Tensor& out, const Tensor& weights, const Tensor& a, const Tensor& b, const Tensor& v,
                 int64_t L);
void ila_backward(const Tensor& da, const Tensor& db, const Tensor& dv, const Tensor& dout, const Tensor& weights,
                  const Tensor& a, const Tensor& b, const Tensor& v, int64_t L);
}  // namespace mila::cuda
