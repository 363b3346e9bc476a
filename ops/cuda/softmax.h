// CUDA kernels of softmax / log_softmax (ops/softmax.h), in ops/cuda/softmax.cu. The same
// contract as ops/cpu/softmax.h; `log` picks log_softmax. They run the op whose CUDA column
// in ops/op_list.h is true and throw throw_unsupported's error otherwise.
#pragma once

#include "tensor/tensor.h"

namespace mila::cuda {
void softmax_forward(const Tensor& out, const Tensor& x, int64_t dim, bool log);
void softmax_backward(const Tensor& dx, const Tensor& dout, const Tensor& y, int64_t dim, bool log);
}  // namespace mila::cuda
