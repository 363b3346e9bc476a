// unary.cpp - validation, device dispatch and the autograd record of the unary ops.
// The derivative of each op is its row in ops/cpu/unary.cpp (one fused backward kernel).
#include "ops/unary.h"

#include "autograd/function.h"
#include "ops/cpu/unary.h"
#include "ops/cuda/unary.h"
#include "ops/op_list.h"

namespace mila {
namespace {

using autograd::GradList;

Tensor unary(Op op, const Tensor& x, double lo = 0, double hi = 0) {
  if (!is_floating(x.dtype()))
    throw std::invalid_argument(std::string(op_name(op)) + ": expected a floating tensor, got " +
                                dtype_name(x.dtype()) + " of shape " + shape_str(x.shape()));
  Tensor out = Tensor::allocate(x.shape(), x.dtype(), x.device());
  if (x.device().is_cpu()) cpu::unary_forward(op, out, x, lo, hi);
  else if constexpr (kCudaBuilt) cuda::unary_forward(op, out, x, lo, hi);
  else throw_unsupported(op, x.device());
  // Save only what the derivative reads (a relu in a ResNet keeps its output, not its input).
  const bool keep_in = op == Op::log || op == Op::abs || op == Op::clamp;
  const bool keep_out = op == Op::exp || op == Op::sqrt || op == Op::relu || op == Op::sigmoid || op == Op::tanh;
  return autograd::record(
      op_name(op), out, {x},
      [op, lo, hi, in = keep_in ? autograd::save(x) : Tensor(), y = keep_out ? autograd::save(out) : Tensor()](
          const Tensor& dout, const std::vector<bool>&) -> GradList {
        Tensor din = Tensor::allocate(dout.shape(), dout.dtype(), dout.device());
        // dout stands in for what the rule does not read.
        const Tensor& x_read = in.defined() ? in : dout;
        const Tensor& y_read = y.defined() ? y : dout;
        if (dout.device().is_cpu()) cpu::unary_backward(op, din, dout, x_read, y_read, lo, hi);
        else if constexpr (kCudaBuilt) cuda::unary_backward(op, din, dout, x_read, y_read, lo, hi);
        else throw_unsupported(op, dout.device());
        return {din};
      });
}

}  // namespace

Tensor neg(const Tensor& x) { return unary(Op::neg, x); }
Tensor exp(const Tensor& x) { return unary(Op::exp, x); }
Tensor log(const Tensor& x) { return unary(Op::log, x); }
Tensor sqrt(const Tensor& x) { return unary(Op::sqrt, x); }
Tensor abs(const Tensor& x) { return unary(Op::abs, x); }
Tensor relu(const Tensor& x) { return unary(Op::relu, x); }
Tensor sigmoid(const Tensor& x) { return unary(Op::sigmoid, x); }
Tensor tanh(const Tensor& x) { return unary(Op::tanh, x); }
Tensor clamp(const Tensor& x, double lo, double hi) {
  if (lo > hi) throw std::invalid_argument("clamp: lo " + std::to_string(lo) + " > hi " + std::to_string(hi));
  return unary(Op::clamp, x, lo, hi);
}

}  // namespace mila
