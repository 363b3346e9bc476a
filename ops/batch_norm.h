// batch_norm.h - batch normalization over the channel dim, PyTorch's F.batch_norm.
//
// Shapes: x [N, C, *] (the model uses [N, C, H, W]; [N, C] and [N, C, L] work the same);
// running_mean, running_var, weight, bias [C], each of x's dtype, each may be undefined.
// M = N * H * W is the number of values per channel.
//
// Training (training = true), per channel c, sums over the M values of channel c:
//   mean   = (1/M) sum x
//   var    = (1/M) sum (x - mean)^2                            (biased: used to normalize)
//   invstd = 1 / sqrt(var + eps)
//   y      = (x - mean) * invstd * weight + bias               (weight 1, bias 0 when undefined)
//   running_mean <- (1 - momentum) running_mean + momentum mean                   } in place,
//   running_var  <- (1 - momentum) running_var  + momentum var * M / (M - 1)     } unbiased var
// M = 1 throws "Expected more than 1 value per channel when training", as PyTorch does
// (the unbiased variance would divide by 0 and the output would be all `bias`).
// Eval (training = false): the same y with mean = running_mean, var = running_var; both
// running stats must be defined and are not changed. num_batches_tracked belongs to the
// module (nn::BatchNorm2d), not to this op.
//
// Derivatives (g = dout, xhat = (x - mean) * invstd, sums over channel c's M values):
//   dbias   = sum g
//   dweight = sum g * xhat
//   eval:     dx = g * weight * invstd                   (mean, invstd are constants)
//   training: dx = weight * invstd * (g - (1/M) sum g - xhat * (1/M) sum g * xhat)
//
// Note [batch norm backward]. In training mean and invstd depend on every x of the channel.
// With y = weight * xhat + bias, dL/dxhat_i = weight * g_i, and
//   d mean / d x_i = 1/M,   d var / d x_i = (2/M)(x_i - mean),   d invstd / d var = -invstd^3 / 2.
// Collecting the three paths through xhat_j = (x_j - mean) * invstd:
//   dx_i = weight * invstd * (g_i - (1/M) sum_j g_j - xhat_i (1/M) sum_j g_j xhat_j).
// The first term is the direct path, the second comes through mean, the third through var
// (the var path's mean term vanishes because sum_j (x_j - mean) = 0).
//
// Statistics and the backward's sums accumulate in double in a fixed order (per channel,
// image by image), so the results do not depend on the thread count (ops/cpu/batch_norm.cpp).
// Running stats receive no gradient; gradients go to x, weight and bias.
#pragma once

#include "tensor/tensor.h"

namespace mila {

// The non-tensor arguments of batch_norm, as its kernels take them (ops/cpu/batch_norm.h,
// ops/cuda/batch_norm.h).
struct BatchNormParams {
  bool training;
  double momentum;
  double eps;
};

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum = 0.1, double eps = 1e-5);

}  // namespace mila
