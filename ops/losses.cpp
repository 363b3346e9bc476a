// losses.cpp - checks, dispatch and derivative rules of the fused losses and normalize
// (ops/losses.h); kernels in ops/cpu/losses.cpp and ops/cuda/losses.h.
#include "ops/losses.h"

#include <limits>
#include <stdexcept>
#include <string>

#include "autograd/function.h"
#include "ops/binary.h"
#include "ops/cpu/losses.h"
#include "ops/cuda/losses.h"
#include "ops/op_list.h"

namespace mila {
namespace {

[[noreturn]] void fail(Op op, const std::string& why, const std::string& shapes) {
  throw std::invalid_argument(std::string(op_name(op)) + ": " + why + " (" + shapes + ")");
}

// "a [2, 3], b [2, 4]" for the error messages.
std::string describe(std::initializer_list<std::pair<const char*, const Tensor*>> args) {
  std::string s;
  for (const auto& [name, t] : args) {
    if (!s.empty()) s += ", ";
    s += std::string(name) + " " + (t->defined() ? shape_str(t->shape()) : "undefined");
  }
  return s;
}

// Two floating tensors of one shape, dtype and device (the operands of an elementwise loss).
void check_pair(Op op, const Tensor& a, const char* a_name, const Tensor& b, const char* b_name) {
  const std::string shapes = describe({{a_name, &a}, {b_name, &b}});
  if (!is_floating(a.dtype()) || a.dtype() != b.dtype())
    fail(op, std::string("expected float32 or float64 tensors of one dtype, got ") + dtype_name(a.dtype()) + " and " +
                 dtype_name(b.dtype()),
         shapes);
  if (a.shape() != b.shape()) fail(op, std::string(a_name) + " and " + b_name + " must have the same shape", shapes);
  if (a.device() != b.device()) fail(op, "tensors on different devices", shapes);
}

Tensor scalar_of(double value, DType dtype, Device device) {
  Tensor out = Tensor::allocate({}, dtype, device);
  dispatch_floating(dtype, "loss", [&]<typename T>() { *out.data<T>() = T(value); });
  return out;
}

// A contiguous copy for the kernels when t is strided (t itself otherwise), detached: the
// op's node is the only gradient path.
Tensor flat(const Tensor& t) { return t.detach().contiguous(); }

Tensor grad_if(bool need, const Tensor& like) {
  return need ? Tensor::allocate(like.shape(), like.dtype(), like.device()) : Tensor();
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index) {
  const std::string shapes = describe({{"logits", &logits}, {"target", &target}});
  if (!is_floating(logits.dtype()))
    fail(Op::cross_entropy, std::string("expected float32 or float64 logits, got ") + dtype_name(logits.dtype()), shapes);
  if (target.dtype() != DType::Int64)
    fail(Op::cross_entropy, std::string("expected an int64 target, got ") + dtype_name(target.dtype()), shapes);
  if (logits.dim() < 2) fail(Op::cross_entropy, "expected logits [N, K] or [N, K, d1, ...]", shapes);
  Shape expected = logits.shape();
  expected.erase(expected.begin() + 1);
  if (target.shape() != expected)
    fail(Op::cross_entropy, "expected target of shape " + shape_str(expected) + " (logits without the class dim)",
         shapes);
  if (logits.device() != target.device()) fail(Op::cross_entropy, "tensors on different devices", shapes);

  const int64_t N = logits.size(0), K = logits.size(1), S = N * K == 0 ? 0 : logits.numel() / (N * K);
  const Tensor t = flat(target).view({N, S});
  CrossEntropyTargets targets;
  if (t.device().is_cpu()) targets = cpu::cross_entropy_targets(t, K, ignore_index);
  else if constexpr (has_cuda_kernel(Op::cross_entropy)) targets = cuda::cross_entropy_targets(t, K, ignore_index);
  else throw_unsupported(Op::cross_entropy, t.device());
  if (targets.bad_index >= 0)
    throw std::out_of_range("cross_entropy: target " + std::to_string(targets.bad_value) + " at position " +
                            std::to_string(targets.bad_index) + " is outside [0, " + std::to_string(K) +
                            ") and is not ignore_index " + std::to_string(ignore_index) + " (" + shapes + ")");
  const int64_t count = targets.count;
  // Note [fused cross-entropy gradient]: when the logits need a gradient, the forward pass
  // writes it too, for dout = 1 (the logits are read once for both; llm.c's fused classifier
  // does the same). The backward returns it as is when dout = 1, the usual case (a loss
  // summed with weight 1), and scales it otherwise. Nothing else is saved, not even the logits.
  const bool want_grad = autograd::any_requires_grad({logits});
  Tensor dlogits = want_grad ? Tensor::allocate({N, K, S}, logits.dtype(), logits.device()) : Tensor();
  const Tensor lc = flat(logits).view({N, K, S});
  const double scale = count > 0 ? 1.0 / double(count) : 0.0;
  double sum = 0;
  if (lc.device().is_cpu()) sum = cpu::cross_entropy_forward(dlogits, lc, t, ignore_index, scale);
  else if constexpr (has_cuda_kernel(Op::cross_entropy))
    sum = cuda::cross_entropy_forward(dlogits, lc, t, ignore_index, scale);
  else throw_unsupported(Op::cross_entropy, lc.device());
  // No non-ignored position: 0 / 0 = NaN, as PyTorch (see losses.h); the gradient is then 0.
  const double loss = count > 0 ? sum / double(count) : std::numeric_limits<double>::quiet_NaN();
  return autograd::record("cross_entropy", scalar_of(loss, logits.dtype(), logits.device()), {logits, target},
                          [dlogits, shape = logits.shape()](const Tensor& dout, const std::vector<bool>&) -> autograd::GradList {
                            const double g = dout.item<double>();
                            const Tensor d = dlogits.view(shape);
                            return {g == 1.0 ? d : mul(d, g), Tensor()};
                          });
}

Tensor l1_loss(const Tensor& a, const Tensor& b) {
  check_pair(Op::l1_loss, a, "a", b, "b");
  const Tensor ac = flat(a), bc = flat(b);
  const int64_t n = a.numel();
  double sum = 0;
  if (ac.device().is_cpu()) sum = cpu::l1_forward(ac, bc);
  else if constexpr (has_cuda_kernel(Op::l1_loss)) sum = cuda::l1_forward(ac, bc);
  else throw_unsupported(Op::l1_loss, ac.device());
  // Mean of an empty tensor: NaN, as PyTorch.
  const double loss = n > 0 ? sum / double(n) : std::numeric_limits<double>::quiet_NaN();
  return autograd::record("l1_loss", scalar_of(loss, a.dtype(), a.device()), {a, b},
                          [ac, bc, n](const Tensor& dout, const std::vector<bool>& needs) -> autograd::GradList {
                            Tensor da = grad_if(needs[0], ac), db = grad_if(needs[1], bc);
                            const double scale = n > 0 ? dout.item<double>() / double(n) : 0.0;
                            if (ac.device().is_cpu()) cpu::l1_backward(da, db, ac, bc, scale);
                            else if constexpr (has_cuda_kernel(Op::l1_loss)) cuda::l1_backward(da, db, ac, bc, scale);
                            else throw_unsupported(Op::l1_loss, ac.device());
                            return {da, db};
                          });
}

Tensor masked_l1_loss(const Tensor& pred, const Tensor& target, const Tensor& mask) {
  check_pair(Op::masked_l1_loss, pred, "pred", target, "target");
  const std::string shapes = describe({{"pred", &pred}, {"target", &target}, {"mask", &mask}});
  if (mask.dtype() != DType::UInt8 && mask.dtype() != pred.dtype())
    fail(Op::masked_l1_loss, std::string("mask must be uint8 or ") + dtype_name(pred.dtype()) + ", got " +
                                 dtype_name(mask.dtype()),
         shapes);
  if (mask.device() != pred.device()) fail(Op::masked_l1_loss, "tensors on different devices", shapes);
  if (broadcast_shapes(mask.shape(), pred.shape(), "masked_l1_loss") != pred.shape())
    fail(Op::masked_l1_loss, "mask must have pred's shape or broadcast to it", shapes);
  // A broadcast mask is materialized (one byte per element when uint8) so the kernel reads
  // three flat arrays.
  const Tensor pc = flat(pred), tc = flat(target), mc = flat(mask.expand(pred.shape()));
  WeightedSums sums;
  if (pc.device().is_cpu()) sums = cpu::masked_l1_forward(pc, tc, mc);
  else if constexpr (has_cuda_kernel(Op::masked_l1_loss)) sums = cuda::masked_l1_forward(pc, tc, mc);
  else throw_unsupported(Op::masked_l1_loss, pc.device());
  const double count = sums.weight;
  const double loss = count > 0 ? sums.value / count : 0.0;  // empty mask: 0 (SPEC 4.4; losses.h)
  return autograd::record("masked_l1_loss", scalar_of(loss, pred.dtype(), pred.device()), {pred, target},
                          [pc, tc, mc, count](const Tensor& dout, const std::vector<bool>& needs) -> autograd::GradList {
                            Tensor dpred = grad_if(needs[0], pc), dtarget = grad_if(needs[1], tc);
                            const double scale = count > 0 ? dout.item<double>() / count : 0.0;
                            if (pc.device().is_cpu()) cpu::masked_l1_backward(dpred, dtarget, pc, tc, mc, scale);
                            else if constexpr (has_cuda_kernel(Op::masked_l1_loss))
                              cuda::masked_l1_backward(dpred, dtarget, pc, tc, mc, scale);
                            else throw_unsupported(Op::masked_l1_loss, pc.device());
                            return {dpred, dtarget};
                          });
}

Tensor normal_loss(const Tensor& pred, const Tensor& target, const Tensor& valid) {
  check_pair(Op::normal_loss, pred, "pred", target, "target");
  const std::string shapes = describe({{"pred", &pred}, {"target", &target}, {"valid", &valid}});
  if (pred.dim() != 4) fail(Op::normal_loss, "expected pred and target [N, C, H, W]", shapes);
  const int64_t N = pred.size(0), C = pred.size(1), H = pred.size(2), W = pred.size(3);
  if (valid.dtype() != DType::UInt8 && valid.dtype() != pred.dtype())
    fail(Op::normal_loss, std::string("valid must be uint8 or ") + dtype_name(pred.dtype()) + ", got " +
                              dtype_name(valid.dtype()),
         shapes);
  if (valid.shape() != Shape{N, H, W}) fail(Op::normal_loss, "valid must have shape " + shape_str({N, H, W}), shapes);
  if (valid.device() != pred.device()) fail(Op::normal_loss, "tensors on different devices", shapes);
  const Tensor pc = flat(pred).view({N, C, H * W}), tc = flat(target).view({N, C, H * W});
  const Tensor vc = flat(valid).view({N, H * W});
  WeightedSums sums;
  if (pc.device().is_cpu()) sums = cpu::normal_loss_forward(pc, tc, vc);
  else if constexpr (has_cuda_kernel(Op::normal_loss)) sums = cuda::normal_loss_forward(pc, tc, vc);
  else throw_unsupported(Op::normal_loss, pc.device());
  const double count = sums.weight;
  const double loss = count > 0 ? 1.0 - sums.value / count : 0.0;  // no valid pixel: 0 (SPEC 4.4; losses.h)
  return autograd::record(
      "normal_loss", scalar_of(loss, pred.dtype(), pred.device()), {pred, target},
      [pc, tc, vc, count, shape = pred.shape()](const Tensor& dout, const std::vector<bool>& needs) -> autograd::GradList {
        Tensor dpred = grad_if(needs[0], pc), dtarget = grad_if(needs[1], tc);
        const double scale = count > 0 ? -dout.item<double>() / count : 0.0;  // loss = 1 - mean cos
        if (pc.device().is_cpu()) cpu::normal_loss_backward(dpred, dtarget, pc, tc, vc, scale);
        else if constexpr (has_cuda_kernel(Op::normal_loss))
          cuda::normal_loss_backward(dpred, dtarget, pc, tc, vc, scale);
        else throw_unsupported(Op::normal_loss, pc.device());
        return {dpred.defined() ? dpred.view(shape) : dpred, dtarget.defined() ? dtarget.view(shape) : dtarget};
      });
}

Tensor bce_with_logits(const Tensor& logits, const Tensor& targets) {
  check_pair(Op::bce_with_logits, logits, "logits", targets, "targets");
  const Tensor xc = flat(logits), tc = flat(targets);
  const int64_t n = logits.numel();
  double sum = 0;
  if (xc.device().is_cpu()) sum = cpu::bce_with_logits_forward(xc, tc);
  else if constexpr (has_cuda_kernel(Op::bce_with_logits)) sum = cuda::bce_with_logits_forward(xc, tc);
  else throw_unsupported(Op::bce_with_logits, xc.device());
  const double loss = n > 0 ? sum / double(n) : std::numeric_limits<double>::quiet_NaN();
  return autograd::record("bce_with_logits", scalar_of(loss, logits.dtype(), logits.device()), {logits, targets},
                          [xc, tc, n](const Tensor& dout, const std::vector<bool>& needs) -> autograd::GradList {
                            Tensor dx = grad_if(needs[0], xc), dt = grad_if(needs[1], tc);
                            const double scale = n > 0 ? dout.item<double>() / double(n) : 0.0;
                            if (xc.device().is_cpu()) cpu::bce_with_logits_backward(dx, dt, xc, tc, scale);
                            else if constexpr (has_cuda_kernel(Op::bce_with_logits))
                              cuda::bce_with_logits_backward(dx, dt, xc, tc, scale);
                            else throw_unsupported(Op::bce_with_logits, xc.device());
                            return {dx, dt};
                          });
}

Tensor normalize(const Tensor& x, int64_t dim_in, double eps) {
  if (!is_floating(x.dtype()))
    fail(Op::normalize, std::string("expected a float32 or float64 input, got ") + dtype_name(x.dtype()),
         "x " + shape_str(x.shape()));
  if (x.dim() == 0) fail(Op::normalize, "expected at least one dim", "x " + shape_str(x.shape()));
  if (!(eps >= 0)) fail(Op::normalize, "eps must be non-negative, got " + std::to_string(eps), "x " + shape_str(x.shape()));
  const int64_t dim = normalize_dim(dim_in, x.shape(), "normalize");
  // [O, C, I]: the dims before `dim`, `dim` itself, the dims after it.
  int64_t O = 1, I = 1;
  for (int64_t d = 0; d < dim; ++d) O *= x.size(d);
  for (int64_t d = dim + 1; d < x.dim(); ++d) I *= x.size(d);
  const int64_t C = x.size(dim);
  const Tensor xc = flat(x).view({O, C, I});
  Tensor y = Tensor::allocate(x.shape(), x.dtype(), x.device());
  if (xc.device().is_cpu()) cpu::normalize_forward(y.view({O, C, I}), xc, eps);
  else if constexpr (has_cuda_kernel(Op::normalize)) cuda::normalize_forward(y.view({O, C, I}), xc, eps);
  else throw_unsupported(Op::normalize, xc.device());
  return autograd::record("normalize", y, {x},
                          [xc, eps, shape = x.shape()](const Tensor& dout, const std::vector<bool>&) -> autograd::GradList {
                            Tensor dx = Tensor::allocate(xc.shape(), xc.dtype(), xc.device());
                            const Tensor g = dout.contiguous().view(xc.shape());
                            if (xc.device().is_cpu()) cpu::normalize_backward(dx, g, xc, eps);
                            else if constexpr (has_cuda_kernel(Op::normalize)) cuda::normalize_backward(dx, g, xc, eps);
                            else throw_unsupported(Op::normalize, xc.device());
                            return {dx.view(shape)};
                          });
}

}  // namespace mila
