// CUDA kernels of channel_gate (ops/channel_gate.h): declared with ops/cpu/channel_gate.h's
// contract, not written yet (the CUDA column of ops/op_list.h says so).
#pragma once

#include "tensor/tensor.h"

namespace mila::cuda {
void channel_gate_forward(const Tensor& out, const Tensor& x, const Tensor& gate);
void channel_gate_backward(const Tensor& dx, const Tensor& dgate, const Tensor& dout, const Tensor& x,
                           const Tensor& gate);
}  // namespace mila::cuda
