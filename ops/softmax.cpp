// softmax.cpp - checks, dispatch and derivative rules of softmax and log_softmax.
#include "ops/softmax.h"

#include <stdexcept>

#include "autograd/function.h"
#include "ops/cpu/softmax.h"
#include "ops/cuda/softmax.h"
#include "ops/op_list.h"

namespace mila {
namespace {

Tensor softmax_impl(Op op, const Tensor& x, int64_t dim_in) {
  const bool log = op == Op::log_softmax;
  if (!is_floating(x.dtype()))
    throw std::invalid_argument(std::string(op_name(op)) + ": expected a floating tensor, got " +
                                dtype_name(x.dtype()) + " " + shape_str(x.shape()));
  if (x.dim() == 0) {  // PyTorch allows dim 0 or -1 on a scalar: one-element line
    if (dim_in != 0 && dim_in != -1) normalize_dim(dim_in, x.shape(), op_name(op));
    return softmax_impl(op, x.reshape({1}), 0).reshape({});
  }
  const int64_t dim = normalize_dim(dim_in, x.shape(), op_name(op));
  Tensor out = Tensor::allocate(x.shape(), x.dtype(), x.device());
  if (x.device().is_cpu()) cpu::softmax_forward(out, x, dim, log);
  else if constexpr (kCudaBuilt) cuda::softmax_forward(out, x, dim, log);
  else throw_unsupported(op, x.device());
  return autograd::record(op_name(op), out, {x},
                          [op, dim, log, y = autograd::save(out)](const Tensor& dout, const std::vector<bool>&) -> autograd::GradList {
                            Tensor dx = Tensor::allocate(y.shape(), y.dtype(), y.device());
                            if (y.device().is_cpu()) cpu::softmax_backward(dx, dout, y, dim, log);
                            else if constexpr (kCudaBuilt) cuda::softmax_backward(dx, dout, y, dim, log);
                            else throw_unsupported(op, y.device());
                            return {dx};
                          });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(Op::softmax, x, dim); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(Op::log_softmax, x, dim); }

}  // namespace mila
