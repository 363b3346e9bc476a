// optim_update.h - the fused optimizer updates: one pass over a parameter updates it and its
// state in place (PyTorch's fused=True SGD / Adam / AdamW), instead of a chain of a dozen
// elementwise ops with their temporaries. nn/optim.cpp calls them once per parameter.
//
// Shapes: param, grad and every state tensor have the same shape [*] (any, 0-d included),
// dtype (float32 or float64) and device. Any strides: a view is updated through a
// contiguous copy (ops/optim_update.cpp says why). Not differentiable: they run under
// no_grad whatever the caller's mode, as an optimizer step is outside the graph.
//
// Note [fused update order]. For float32 parameters the arithmetic is float32, with the
// same operations, in the same order, rounded at the same places as the op chain they
// replace (the one written in tests/test_optim.cpp, with each double scalar converted to
// the parameter's dtype as ops/binary.h does); float64 parameters compute in double. The
// order decides the last bits, so here it is, per element (s: each scalar, rounded once
// to the dtype; every arrow: one rounding):
//
//   sgd_update (torch.optim.SGD):
//     d   <- g + (p * weight_decay)                         when weight_decay != 0
//     buf <- d                                              first step (PyTorch: a clone)
//     buf <- (buf * momentum) + (d * s(1 - dampening))      later steps      } when
//     d   <- d + (buf * momentum)   (nesterov), else buf                      } momentum != 0
//     p   <- p - (d * lr)
//
//   adam_update (torch.optim.Adam; AdamW with decoupled_weight_decay), step t >= 1,
//   bc1 = 1 - beta1^t, bc2 = 1 - beta2^t (in double):
//     p   <- p * s(1 - lr * weight_decay)                   AdamW, weight_decay != 0
//     g   <- g + (p * weight_decay)                         Adam,  weight_decay != 0
//     m   <- (m * beta1) + (g * s(1 - beta1))
//     v   <- (v * beta2) + ((g * g) * s(1 - beta2))
//     den <- (sqrt(v) / s(sqrt(bc2))) + eps
//     p   <- p - ((m / den) * s(lr / bc1))
//
// The CPU kernel keeps each of those roundings (no fused multiply-add: Note [no
// contraction] in ops/cpu/optim_update.cpp), so it equals the op chain bit for bit. The
// CUDA kernel lets nvcc fuse a multiply and an add into one FMA (one rounding instead of
// two, as PyTorch's fused CUDA kernels do), so it may differ from the CPU by a few ulps.
#pragma once

#include <cmath>
#include <cstdint>

#include "tensor/tensor.h"

namespace mila {

// The scalars of one SGD update (torch.optim.SGD's, per parameter group).
struct SgdUpdateParams {
  double lr = 0.01;
  double momentum = 0;  // 0: no buffer (momentum_buffer undefined)
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  // The buffer is new: it becomes d as it is, without momentum or dampening (PyTorch's first
  // step); its contents on entry are not read.
  bool first_step = false;
};

// The scalars of one Adam / AdamW update.
struct AdamUpdateParams {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool decoupled_weight_decay = false;  // true: AdamW
  int64_t step = 1;                     // t, counted from 1: the bias corrections' exponent
};

// param [*] <- one SGD step; momentum_buffer [*] (defined iff p.momentum != 0) updated in place.
void sgd_update_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdUpdateParams& p);

// param [*] <- one Adam step; exp_avg (m) and exp_avg_sq (v), both [*], updated in place.
void adam_update_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const AdamUpdateParams& p);

// The scalars of Note [fused update order] in the parameter's dtype T, computed once on the
// host so that the CPU and CUDA kernels multiply by the very same numbers.
template <typename T>
struct SgdScalars {
  T lr, momentum, one_minus_dampening, weight_decay;
  bool has_weight_decay, has_momentum, nesterov, first_step;
};

template <typename T>
SgdScalars<T> sgd_scalars(const SgdUpdateParams& p) {
  return {T(p.lr),           T(p.momentum),     T(1 - p.dampening), T(p.weight_decay),
          p.weight_decay != 0, p.momentum != 0, p.nesterov,         p.first_step};
}

template <typename T>
struct AdamScalars {
  T beta1, one_minus_beta1, beta2, one_minus_beta2;
  T bias_correction2_sqrt;  // s(sqrt(1 - beta2^t))
  T eps;
  T step_size;     // s(lr / (1 - beta1^t))
  T weight_decay;  // Adam: added to the gradient as weight_decay * p
  T decay_factor;  // AdamW: p is multiplied by 1 - lr * weight_decay
  bool l2_weight_decay, decoupled_weight_decay;
};

template <typename T>
AdamScalars<T> adam_scalars(const AdamUpdateParams& p) {
  const double bc1 = 1 - std::pow(p.beta1, double(p.step)), bc2 = 1 - std::pow(p.beta2, double(p.step));
  return {T(p.beta1),
          T(1 - p.beta1),
          T(p.beta2),
          T(1 - p.beta2),
          T(std::sqrt(bc2)),
          T(p.eps),
          T(p.lr / bc1),
          T(p.weight_decay),
          T(1 - p.lr * p.weight_decay),
          p.weight_decay != 0 && !p.decoupled_weight_decay,
          p.weight_decay != 0 && p.decoupled_weight_decay};
}

}  // namespace mila
