// CUDA kernels of the fused optimizer updates (ops/optim_update.h), in
// ops/cuda/optim_update.cu, with ops/cpu/optim_update.h's contract: contiguous tensors of
// one shape and dtype on the GPU; momentum_buffer undefined when p.momentum == 0.
#pragma once

#include "ops/optim_update.h"
#include "tensor/tensor.h"

namespace mila::cuda {
void sgd_update(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdUpdateParams& p);
void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                 const AdamUpdateParams& p);
}  // namespace mila::cuda
