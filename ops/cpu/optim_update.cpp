// optim_update.cpp - CPU kernels of the fused optimizer updates: one pass over each
// parameter, a plain loop over contiguous arrays that the compiler vectorizes, its range
// split over threads by parallel_for. Elements are independent, so the result does not
// depend on the thread count. The arithmetic, in order, is Note [fused update order] in
// ops/optim_update.h.
//
// Note [no contraction]. Given FMA instructions (-march=native), GCC fuses a product and a
// sum such as m * beta1 + g * (1 - beta1) into one fused multiply-add, which rounds once
// where the op chain (one op, one rounded tensor, after another) rounds twice; C++ allows
// it, and GCC does it by default outside ISO C. CMakeLists.txt compiles this file alone with
// -ffp-contract=off, so every product and sum is rounded as in the op chain and the fused
// update equals it bit for bit (tests/test_optim.cpp checks with tolerance 0), and with
// -fno-math-errno: std::sqrt may set errno (for a negative argument, which v >= 0 never is),
// and a call that may write memory keeps GCC from vectorizing the Adam loop (measured: 2.6x
// slower on one core); it changes no result. The loops stay memory-bound with both flags.
#include "ops/cpu/optim_update.h"

#include <cmath>
#include <cstdint>

#include "ops/cpu/parallel.h"

namespace mila::cpu {
namespace {

// param, grad, buf: n elements each (buf unused without momentum).
template <typename T>
void sgd_loop(T* param, const T* grad, T* buf, int64_t n, const SgdScalars<T> scalars) {
  parallel_for(n, kElementwiseGrain, [=](int64_t begin, int64_t end) {
    const SgdScalars<T> s = scalars;  // a local copy: the stores below cannot alias it
    for (int64_t i = begin; i < end; ++i) {
      T d = grad[i];
      if (s.has_weight_decay) d = d + param[i] * s.weight_decay;
      if (s.has_momentum) {
        const T b = s.first_step ? d : buf[i] * s.momentum + d * s.one_minus_dampening;
        buf[i] = b;
        d = s.nesterov ? d + b * s.momentum : b;
      }
      param[i] = param[i] - d * s.lr;
    }
  });
}

// param, grad, m, v: n elements each.
template <typename T>
void adam_loop(T* param, const T* grad, T* m, T* v, int64_t n, const AdamScalars<T> scalars) {
  parallel_for(n, kElementwiseGrain, [=](int64_t begin, int64_t end) {
    const AdamScalars<T> s = scalars;
    for (int64_t i = begin; i < end; ++i) {
      T p = param[i], g = grad[i];
      if (s.decoupled_weight_decay) p = p * s.decay_factor;
      if (s.l2_weight_decay) g = g + p * s.weight_decay;
      const T mi = m[i] * s.beta1 + g * s.one_minus_beta1;
      const T vi = v[i] * s.beta2 + (g * g) * s.one_minus_beta2;
      const T denom = std::sqrt(vi) / s.bias_correction2_sqrt + s.eps;
      m[i] = mi;
      v[i] = vi;
      param[i] = p - (mi / denom) * s.step_size;
    }
  });
}

}  // namespace

void sgd_update(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdUpdateParams& p) {
  dispatch_floating(param.dtype(), "sgd_update", [&]<typename T>() {
    T* buf = momentum_buffer.defined() ? static_cast<T*>(momentum_buffer.raw_data()) : nullptr;
    sgd_loop<T>(param.data<T>(), grad.data<T>(), buf, param.numel(), sgd_scalars<T>(p));
  });
}

void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                 const AdamUpdateParams& p) {
  dispatch_floating(param.dtype(), "adam_update", [&]<typename T>() {
    adam_loop<T>(param.data<T>(), grad.data<T>(), exp_avg.data<T>(), exp_avg_sq.data<T>(), param.numel(),
                 adam_scalars<T>(p));
  });
}

}  // namespace mila::cpu
