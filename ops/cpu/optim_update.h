// CPU kernels of the fused optimizer updates (ops/optim_update.h).
//
// param, grad and the state tensors: contiguous (any offset), one shape, one dtype (float32
// or float64), on the cpu; the op layer checks all of that. momentum_buffer is undefined
// when p.momentum == 0.
#pragma once

#include "ops/optim_update.h"
#include "tensor/tensor.h"

namespace mila::cpu {
void sgd_update(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdUpdateParams& p);
void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                 const AdamUpdateParams& p);
}  // namespace mila::cpu
