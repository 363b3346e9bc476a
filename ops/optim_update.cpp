// optim_update.cpp - the fused optimizer updates: argument checks, the one device branch
// (Note [device dispatch] in ops/op_list.h), and Note [updating views]. No derivative rule:
// an update is not differentiable.
#include "ops/optim_update.h"

#include <stdexcept>
#include <string>

#include "autograd/grad_mode.h"
#include "ops/copy.h"
#include "ops/cpu/optim_update.h"
#include "ops/cuda/optim_update.h"
#include "ops/op_list.h"

namespace mila {
namespace {

void check_param(Op op, const Tensor& param) {
  if (!param.defined()) throw std::invalid_argument(std::string(op_name(op)) + ": the parameter is undefined");
  if (!is_floating(param.dtype()))
    throw std::invalid_argument(std::string(op_name(op)) + ": expected a float32 or float64 parameter, got " +
                                dtype_name(param.dtype()) + " " + shape_str(param.shape()));
}

// `t` (the gradient or a state tensor, named `role`) must match the parameter.
void check_like_param(Op op, const Tensor& param, const Tensor& t, const char* role) {
  const std::string who = std::string(op_name(op)) + ": " + role;
  if (!t.defined()) throw std::invalid_argument(who + " is undefined (the parameter has shape " + shape_str(param.shape()) + ")");
  if (t.shape() != param.shape())
    throw std::invalid_argument(who + " has shape " + shape_str(t.shape()) + " but the parameter " +
                                shape_str(param.shape()));
  if (t.dtype() != param.dtype())
    throw std::invalid_argument(who + " is " + dtype_name(t.dtype()) + " but the parameter " + dtype_name(param.dtype()) +
                                " (shape " + shape_str(param.shape()) + ")");
  if (t.device() != param.device())
    throw std::invalid_argument(who + " is on " + t.device().str() + " but the parameter on " + param.device().str() +
                                " (shape " + shape_str(param.shape()) + ")");
}

// A tensor the update writes must not name one memory location through several elements
// (an expanded view): the update would apply several times to it (copy_ refuses the same).
void check_writable(Op op, const Tensor& t, const char* role) {
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.shape()[d] > 1 && t.strides()[d] == 0)
      throw std::invalid_argument(std::string(op_name(op)) + ": " + role + " of shape " + shape_str(t.shape()) +
                                  " and strides " + shape_str(t.strides()) +
                                  " has elements that share memory (an expanded view); clone() it first");
}

// Note [updating views]. The kernels walk flat arrays: one index for every tensor, which is
// what lets the CPU loop vectorize and the CUDA kernel load float4s. A tensor that is not
// contiguous is updated through a contiguous copy, written back after the kernel. Parameters
// made by the factories and modules are contiguous, and so are the optimizers' state tensors
// (nn/optim.cpp creates them), so training never pays for the copies; a parameter that is a
// view (a leaf made from .t(), say) still gets the right update.
class Dense {
 public:
  explicit Dense(const Tensor& t) : original_(t), dense_(t.defined() && !t.is_contiguous() ? t.clone() : t) {}
  const Tensor& get() const { return dense_; }
  void write_back() const {
    if (!dense_.is_same(original_)) copy_(original_, dense_);
  }

 private:
  Tensor original_, dense_;
};

}  // namespace

void sgd_update_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdUpdateParams& p) {
  const Op op = Op::sgd_update;
  check_param(op, param);
  check_like_param(op, param, grad, "grad");
  check_writable(op, param, "the parameter");
  if ((p.momentum != 0) != momentum_buffer.defined())
    throw std::invalid_argument(std::string("sgd_update: momentum ") + std::to_string(p.momentum) +
                                (p.momentum != 0 ? " needs a momentum_buffer" : " takes no momentum_buffer") +
                                " (the parameter has shape " + shape_str(param.shape()) + ")");
  if (momentum_buffer.defined()) {
    check_like_param(op, param, momentum_buffer, "momentum_buffer");
    check_writable(op, momentum_buffer, "momentum_buffer");
  }
  if (p.nesterov && (p.momentum <= 0 || p.dampening != 0))
    throw std::invalid_argument("sgd_update: nesterov needs momentum > 0 and dampening 0");

  NoGradGuard no_grad;  // the copies of Note [updating views] must not record graph
  const Dense dense_param(param), dense_buffer(momentum_buffer);
  const Tensor g = grad.contiguous();
  if (param.device().is_cpu()) cpu::sgd_update(dense_param.get(), g, dense_buffer.get(), p);
  else if constexpr (has_cuda_kernel(Op::sgd_update)) cuda::sgd_update(dense_param.get(), g, dense_buffer.get(), p);
  else throw_unsupported(Op::sgd_update, param.device());
  dense_param.write_back();
  dense_buffer.write_back();
}

void adam_update_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const AdamUpdateParams& p) {
  const Op op = Op::adam_update;
  check_param(op, param);
  check_like_param(op, param, grad, "grad");
  check_like_param(op, param, exp_avg, "exp_avg");
  check_like_param(op, param, exp_avg_sq, "exp_avg_sq");
  check_writable(op, param, "the parameter");
  check_writable(op, exp_avg, "exp_avg");
  check_writable(op, exp_avg_sq, "exp_avg_sq");
  if (p.step < 1)
    throw std::invalid_argument("adam_update: step must be 1 or more (the bias corrections divide by 1 - beta^step), got " +
                                std::to_string(p.step));

  NoGradGuard no_grad;
  const Dense dense_param(param), dense_m(exp_avg), dense_v(exp_avg_sq);
  const Tensor g = grad.contiguous();
  if (param.device().is_cpu()) cpu::adam_update(dense_param.get(), g, dense_m.get(), dense_v.get(), p);
  else if constexpr (has_cuda_kernel(Op::adam_update)) cuda::adam_update(dense_param.get(), g, dense_m.get(), dense_v.get(), p);
  else throw_unsupported(Op::adam_update, param.device());
  dense_param.write_back();
  dense_m.write_back();
  dense_v.write_back();
}

}  // namespace mila
