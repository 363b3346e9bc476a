// CPU kernels of softmax / log_softmax (ops/softmax.h). `out`, `y`, `dx` are contiguous.
#pragma once

#include "tensor/tensor.h"

namespace mila::cpu {
void softmax_forward(const Tensor& out, const Tensor& x, int64_t dim, bool log);
// dx from the forward output y and dout (all of x's shape).
void softmax_backward(const Tensor& dx, const Tensor& dout, const Tensor& y, int64_t dim, bool log);
}  // namespace mila::cpu
