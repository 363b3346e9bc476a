// binary.cpp - validation, device dispatch and derivative rules of the binary ops.
// Rules return gradients of the broadcast shape; the engine sums them back (engine.h).
#include "ops/binary.h"

#include <stdexcept>

#include "autograd/function.h"
#include "ops/cpu/binary.h"
#include "ops/cuda/binary.h"
#include "ops/factory.h"
#include "ops/op_list.h"
#include "ops/reduce.h"
#include "ops/unary.h"
#include "ops/where.h"

namespace mila {
namespace {

using autograd::GradList;
using autograd::save;

void check_operands(Op op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    throw std::invalid_argument(std::string(op_name(op)) + ": dtype mismatch, " + dtype_name(a.dtype()) + " " +
                                shape_str(a.shape()) + " vs " + dtype_name(b.dtype()) + " " + shape_str(b.shape()) +
                                " (convert one with .to(dtype))");
  if (a.device() != b.device())
    throw std::invalid_argument(std::string(op_name(op)) + ": device mismatch, " + a.device().str() + " " +
                                shape_str(a.shape()) + " vs " + b.device().str() + " " + shape_str(b.shape()));
}

// Validates, allocates the broadcast output, runs the kernel for the device.
Tensor forward(Op op, const Tensor& a, const Tensor& b, DType out_dtype) {
  check_operands(op, a, b);
  Tensor out = Tensor::allocate(broadcast_shapes(a.shape(), b.shape(), op_name(op)), out_dtype, a.device());
  if (a.device().is_cpu()) cpu::binary_forward(op, out, a, b);
  else if constexpr (kCudaBuilt) cuda::binary_forward(op, out, a, b);
  else throw_unsupported(op, a.device());
  return out;
}

Tensor arithmetic(Op op, const Tensor& a, const Tensor& b) { return forward(op, a, b, a.dtype()); }
Tensor compare(Op op, const Tensor& a, const Tensor& b) { return forward(op, a, b, DType::UInt8); }

Tensor scalar_like(const Tensor& t, double v) { return scalar_tensor(v, {t.dtype(), t.device()}); }
Tensor as_float_mask(const Tensor& mask, const Tensor& like) { return mask.to(like.dtype()); }

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return autograd::record("add", arithmetic(Op::add, a, b), {a, b},
                          [](const Tensor& dout, const std::vector<bool>&) -> GradList { return {dout, dout}; });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  return autograd::record("sub", arithmetic(Op::sub, a, b), {a, b},
                          [](const Tensor& dout, const std::vector<bool>& needs) -> GradList {
                            return {dout, needs[1] ? neg(dout) : Tensor()};
                          });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  const bool track = autograd::any_requires_grad({a, b});
  // d(ab)/da = b and d(ab)/db = a: each saved only if the other side needs its gradient.
  Tensor sa = track && b.requires_grad() ? save(a) : Tensor();
  Tensor sb = track && a.requires_grad() ? save(b) : Tensor();
  return autograd::record("mul", arithmetic(Op::mul, a, b), {a, b},
                          [sa, sb](const Tensor& dout, const std::vector<bool>& needs) -> GradList {
                            return {needs[0] ? mul(dout, sb) : Tensor(), needs[1] ? mul(dout, sa) : Tensor()};
                          });
}

Tensor div(const Tensor& a, const Tensor& b) {
  // An integer division by zero is undefined behaviour in C++ (SIGFPE on x86) and gives an
  // unspecified value on a GPU: refuse it on every device, as PyTorch's integer division
  // raises ZeroDivisionError. The zeros are found on b's device and counted on the host
  // (integer division is rare: labels and indices).
  if (a.dtype() == b.dtype() && !is_floating(b.dtype())) {
    bool zero = false;
    {
      autograd::NoGradGuard no_grad;
      zero = sum(eq(b, 0.0).to(Device::cpu())).item<int64_t>() > 0;
    }
    if (zero)
      throw std::domain_error("div: integer division by zero (" + std::string(dtype_name(a.dtype())) + " " +
                              shape_str(a.shape()) + " / " + shape_str(b.shape()) + ")");
  }
  Tensor out = arithmetic(Op::div, a, b);
  // d(a/b)/da = 1/b; d(a/b)/db = -a/b^2 = -out/b.
  return autograd::record("div", out, {a, b},
                          [sb = save(b), so = save(out)](const Tensor& dout, const std::vector<bool>& needs) -> GradList {
                            return {needs[0] ? div(dout, sb) : Tensor(), needs[1] ? neg(mul(dout, div(so, sb))) : Tensor()};
                          });
}

Tensor pow(const Tensor& a, const Tensor& b) {
  if (!is_floating(a.dtype())) throw std::invalid_argument(std::string("pow: expected floating tensors, got ") + dtype_name(a.dtype()));
  Tensor out = arithmetic(Op::pow, a, b);
  return autograd::record(
      "pow", out, {a, b},
      [sa = save(a), sb = save(b), so = save(out)](const Tensor& dout, const std::vector<bool>& needs) -> GradList {
        Tensor da, db;
        // d(a^b)/da = b * a^(b-1); taken as 0 where b == 0, also at a == 0 where the formula
        // gives 0 * inf (PyTorch masks exponent == 0 the same way).
        if (needs[0]) {
          Tensor g = mul(dout, mul(sb, pow(sa, sub(sb, 1.0))));
          da = where(eq(sb, 0.0), zeros_like(g), g);
        }
        // d(a^b)/db = a^b * log(a); taken as 0 where a == 0 and b >= 0 (PyTorch's convention;
        // the limit of a^b log a as a -> 0+ is 0 there).
        if (needs[1]) {
          Tensor g = mul(dout, mul(so, log(sa)));
          Tensor zero_base = mul(eq(sa, 0.0).to(sa.dtype()), ge(sb, 0.0).to(sa.dtype()));
          db = where(gt(zero_base, 0.0), zeros_like(g), g);
        }
        return {da, db};
      });
}

namespace {
// maximum and minimum: the gradient goes to the operand that was picked; on ties each gets half.
Tensor extremum(Op op, const Tensor& a, const Tensor& b) {
  Tensor out = arithmetic(op, a, b);
  return autograd::record(op_name(op), out, {a, b},
                          [op, sa = save(a), sb = save(b)](const Tensor& dout, const std::vector<bool>& needs) -> GradList {
                            Tensor tie = mul(as_float_mask(eq(sa, sb), dout), 0.5);
                            Tensor a_wins = as_float_mask(op == Op::maximum ? gt(sa, sb) : lt(sa, sb), dout);
                            Tensor b_wins = as_float_mask(op == Op::maximum ? lt(sa, sb) : gt(sa, sb), dout);
                            return {needs[0] ? mul(dout, add(a_wins, tie)) : Tensor(),
                                    needs[1] ? mul(dout, add(b_wins, tie)) : Tensor()};
                          });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extremum(Op::maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum(Op::minimum, a, b); }

Tensor add(const Tensor& a, double b) { return add(a, scalar_like(a, b)); }
Tensor sub(const Tensor& a, double b) { return sub(a, scalar_like(a, b)); }
Tensor mul(const Tensor& a, double b) { return mul(a, scalar_like(a, b)); }
Tensor div(const Tensor& a, double b) { return div(a, scalar_like(a, b)); }
Tensor pow(const Tensor& a, double e) { return pow(a, scalar_like(a, e)); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(b, a), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(b, a), b); }

Tensor eq(const Tensor& a, const Tensor& b) { return compare(Op::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare(Op::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare(Op::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare(Op::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare(Op::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare(Op::ge, a, b); }
Tensor eq(const Tensor& a, double b) { return eq(a, scalar_like(a, b)); }
Tensor ne(const Tensor& a, double b) { return ne(a, scalar_like(a, b)); }
Tensor lt(const Tensor& a, double b) { return lt(a, scalar_like(a, b)); }
Tensor le(const Tensor& a, double b) { return le(a, scalar_like(a, b)); }
Tensor gt(const Tensor& a, double b) { return gt(a, scalar_like(a, b)); }
Tensor ge(const Tensor& a, double b) { return ge(a, scalar_like(a, b)); }

}  // namespace mila
