// CPU kernels of channel_gate (ops/channel_gate.h). x, out, dout, dx contiguous, seen as
// [N * C, S] planes; gate, dgate contiguous [N * C].
#pragma once

#include "tensor/tensor.h"

namespace mila::cpu {

void channel_gate_forward(const Tensor& out, const Tensor& x, const Tensor& gate);
// Writes dx and / or dgate (undefined: not wanted).
void channel_gate_backward(const Tensor& dx, const Tensor& dgate, const Tensor& dout, const Tensor& x,
                           const Tensor& gate);

}  // namespace mila::cpu
