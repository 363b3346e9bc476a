// where.cpp - checks, dispatch and derivative rule of where (ops/where.h).
#include "ops/where.h"

#include <stdexcept>

#include "autograd/function.h"
#include "ops/cpu/where.h"
#include "ops/cuda/where.h"
#include "ops/op_list.h"
#include "ops/factory.h"

namespace mila {

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  if (cond.dtype() != DType::UInt8)
    throw std::invalid_argument(std::string("where: condition must be uint8 (a comparison's result), got ") +
                                dtype_name(cond.dtype()) + " " + shape_str(cond.shape()));
  if (a.dtype() != b.dtype())
    throw std::invalid_argument(std::string("where: dtype mismatch, ") + dtype_name(a.dtype()) + " " +
                                shape_str(a.shape()) + " vs " + dtype_name(b.dtype()) + " " + shape_str(b.shape()));
  if (cond.device() != a.device() || a.device() != b.device())
    throw std::invalid_argument("where: tensors on different devices (" + cond.device().str() + ", " +
                                a.device().str() + ", " + b.device().str() + ")");
  const Shape shape = broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  Tensor out = Tensor::allocate(shape, a.dtype(), a.device());
  if (a.device().is_cpu()) cpu::where_forward(out, cond, a, b);
  else if constexpr (has_cuda_kernel(Op::where)) cuda::where_forward(out, cond, a, b);
  else throw_unsupported(Op::where, a.device());
  // d/da = cond, d/db = !cond: dout routed by the same select.
  return autograd::record("where", out, {a, b},
                          [c = cond](const Tensor& dout, const std::vector<bool>& needs) -> autograd::GradList {
                            Tensor zero = zeros({}, {dout.dtype(), dout.device()});
                            return {needs[0] ? where(c, dout, zero) : Tensor(), needs[1] ? where(c, zero, dout) : Tensor()};
                          });
}

}  // namespace mila
