// matmul.cpp - torch.matmul's shape rules, dispatch and derivative of the batched product.
#include "ops/matmul.h"

#include <algorithm>
#include <stdexcept>

#include "autograd/function.h"
#include "ops/binary.h"
#include "ops/cpu/matmul.h"
#include "ops/cuda/matmul.h"
#include "ops/op_list.h"

namespace mila {
namespace {

using autograd::GradList;

[[noreturn]] void fail(const std::string& why, const Tensor& a, const Tensor& b) {
  throw std::invalid_argument("matmul: " + why + " (shapes " + shape_str(a.shape()) + " " + dtype_name(a.dtype()) +
                              " " + a.device().str() + " and " + shape_str(b.shape()) + " " + dtype_name(b.dtype()) +
                              " " + b.device().str() + ")");
}

// a [..., m, k] x b [..., k, n], both at least 2-d; the batch dims broadcast.
Tensor batched(const Tensor& a, const Tensor& b) {
  const int64_t k = a.size(-1);
  if (b.size(-2) != k) fail("inner dimensions differ, " + std::to_string(k) + " vs " + std::to_string(b.size(-2)), a, b);
  const Shape a_batch(a.shape().begin(), a.shape().end() - 2), b_batch(b.shape().begin(), b.shape().end() - 2);
  Shape shape = broadcast_shapes(a_batch, b_batch, "matmul");
  Shape a_full = shape, b_full = shape;
  a_full.insert(a_full.end(), {a.size(-2), k});
  b_full.insert(b_full.end(), {k, b.size(-1)});
  shape.insert(shape.end(), {a.size(-2), b.size(-1)});
  Tensor out = Tensor::allocate(shape, a.dtype(), a.device());
  {
    autograd::NoGradGuard no_grad;  // the expanded views are kernel arguments, not graph
    const Tensor ae = a.expand(a_full), be = b.expand(b_full);
    if (a.device().is_cpu()) cpu::batched_matmul(out, ae, be);
    else if constexpr (has_cuda_kernel(Op::matmul)) cuda::batched_matmul(out, ae, be);
    else throw_unsupported(Op::matmul, a.device());
  }
  const bool track = autograd::any_requires_grad({a, b});
  Tensor sa = track && b.requires_grad() ? autograd::save(a) : Tensor();
  Tensor sb = track && a.requires_grad() ? autograd::save(b) : Tensor();
  return autograd::record("matmul", out, {a, b},
                          [sa, sb](const Tensor& dout, const std::vector<bool>& needs) -> GradList {
                            // Batched results; the engine sums broadcast batch dims back.
                            return {needs[0] ? batched(dout, sb.transpose(-1, -2)) : Tensor(),
                                    needs[1] ? batched(sa.transpose(-1, -2), dout) : Tensor()};
                          });
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype()) fail("dtype mismatch", a, b);
  if (a.device() != b.device()) fail("device mismatch", a, b);
  if (!is_floating(a.dtype())) fail("expected floating tensors", a, b);
  if (a.dim() == 0 || b.dim() == 0) fail("both arguments need at least 1 dim", a, b);
  // Validate here, with the caller's shapes in the message (batched() sees promoted ones).
  const int64_t k = a.size(-1), kb = b.dim() == 1 ? b.size(0) : b.size(-2);
  if (k != kb) {
    if (a.dim() == 1 && b.dim() == 1) fail("vectors of different lengths", a, b);
    fail("inner dimensions differ, " + std::to_string(k) + " vs " + std::to_string(kb), a, b);
  }
  if (a.dim() > 2 || b.dim() > 2) {
    const Shape a_batch(a.shape().begin(), a.shape().end() - std::min<int64_t>(a.dim(), 2));
    const Shape b_batch(b.shape().begin(), b.shape().end() - std::min<int64_t>(b.dim(), 2));
    try {
      (void)broadcast_shapes(a_batch, b_batch, "matmul");
    } catch (const std::invalid_argument&) {
      fail("batch dims " + shape_str(a_batch) + " and " + shape_str(b_batch) + " cannot be broadcast", a, b);
    }
  }
  if (a.dim() == 1 && b.dim() == 1) return batched(a.unsqueeze(0), b.unsqueeze(1)).reshape({});
  if (a.dim() == 1) return batched(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return batched(a, b.unsqueeze(1)).squeeze(-1);
  return batched(a, b);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  if (weight.dim() != 2 || x.dim() == 0 || x.size(-1) != weight.size(1))
    throw std::invalid_argument("linear: input " + shape_str(x.shape()) + " does not match weight " +
                                shape_str(weight.shape()) + " (expected input [..., in] and weight [out, in])");
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0)))
    throw std::invalid_argument("linear: bias " + shape_str(bias.shape()) + " does not match weight " +
                                shape_str(weight.shape()) + " (expected bias [out])");
  Tensor y = matmul(x, weight.t());
  return bias.defined() ? add(y, bias) : y;
}

}  // namespace mila
