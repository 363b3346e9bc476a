// CPU kernels of batch_norm (ops/batch_norm.h).
//
// x, y, dout, dx are contiguous and seen as [N, C, S] (S = product of the dims after C).
// weight, bias: contiguous [C] or undefined. running_mean, running_var: [C] views of any
// stride or undefined, updated in place. mean, invstd: contiguous float64 [C].
#pragma once

#include "ops/batch_norm.h"
#include "tensor/tensor.h"

namespace mila::cpu {

// Training (p.training): computes the batch mean and invstd of each channel into mean /
// invstd, updates the running stats when defined, and writes y. Eval: mean = running_mean,
// invstd = 1 / sqrt(running_var + eps), and y from those.
void batch_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& invstd, const Tensor& x,
                        const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                        const Tensor& running_var, const BatchNormParams& p);

// Writes each of dx [N, C, S], dweight [C], dbias [C] that is defined (undefined: not wanted),
// from dout, the forward's x, weight, and the mean / invstd the forward used (p.training
// says which; momentum and eps are not read).
void batch_norm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                         const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& invstd,
                         const BatchNormParams& p);

}  // namespace mila::cpu
