// losses.cpp - checks and derivative rules of the losses (see losses.h). cross_entropy runs
// a fused kernel; the others are short compositions whose gradients are written out where
// the composition would get them wrong (bce at x = 0, normalize at a zero vector).
#include "ops/losses.h"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "autograd/function.h"
#include "ops/binary.h"
#include "ops/cpu/losses.h"
#include "ops/op_list.h"
#include "ops/reduce.h"
#include "ops/unary.h"
#include "ops/where.h"
#include "tensor/factory.h"

namespace mila {
namespace {

using autograd::GradList;

void check_float(const char* op, const Tensor& t, const char* what) {
  if (!is_floating(t.dtype()))
    throw std::invalid_argument(std::string(op) + ": " + what + " must be floating, got " + dtype_name(t.dtype()) +
                                " " + shape_str(t.shape()));
}

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype() || a.device() != b.device())
    throw std::invalid_argument(std::string(op) + ": inputs differ, " + shape_str(a.shape()) + " " +
                                dtype_name(a.dtype()) + " vs " + shape_str(b.shape()) + " " + dtype_name(b.dtype()));
}

// A mask (uint8 or floating) as a 0/1 tensor of `like`'s dtype.
Tensor mask_as(const Tensor& mask, const Tensor& like) { return ne(mask, 0.0).to(like.dtype()); }

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index) {
  check_float("cross_entropy", logits, "logits");
  check_supported(Op::cross_entropy, logits.device());
  Shape expect = logits.shape();
  if (logits.dim() >= 2) expect.erase(expect.begin() + 1);
  if (logits.dim() < 2 || target.shape() != expect || target.dtype() != DType::Int64)
    throw std::invalid_argument("cross_entropy: expected logits [N, K, ...] and int64 target [N, ...], got logits " +
                                shape_str(logits.shape()) + " and target " + shape_str(target.shape()) + " " +
                                dtype_name(target.dtype()));
  const Tensor x = logits.detach().contiguous(), t = target.contiguous();
  int64_t count = 0;
  const double total = cpu::cross_entropy_forward(x, t, ignore_index, count);
  const double loss = count > 0 ? total / double(count) : std::numeric_limits<double>::quiet_NaN();
  return autograd::record("cross_entropy", scalar_tensor(loss, {logits.dtype()}), {logits},
                          [x, t, ignore_index, count](const Tensor& dout, const std::vector<bool>&) -> GradList {
                            Tensor d = Tensor::allocate(x.shape(), x.dtype(), x.device());
                            const double scale = count > 0 ? dout.item<double>() / double(count) : 0.0;
                            cpu::cross_entropy_backward(d, x, t, ignore_index, scale);
                            return {d};
                          });
}

Tensor l1_loss(const Tensor& a, const Tensor& b) {
  check_float("l1_loss", a, "input");
  check_same_shape("l1_loss", a, b);
  return mean(abs(sub(a, b)));
}

Tensor masked_l1_loss(const Tensor& pred, const Tensor& target, const Tensor& mask) {
  check_float("masked_l1_loss", pred, "pred");
  check_same_shape("masked_l1_loss", pred, target);
  broadcast_shapes(mask.shape(), pred.shape(), "masked_l1_loss");
  const Tensor m = mask_as(mask, pred);
  const double count = sum(m.expand(pred.shape())).item<double>();
  // An empty mask: the sum is 0 with zero gradients, divided by 1.
  return div(sum(mul(abs(sub(pred, target)), m)), std::max(count, 1.0));
}

Tensor normalize(const Tensor& x, int64_t dim_in, double eps) {
  check_float("normalize", x, "input");
  check_supported(Op::normalize, x.device());
  const int64_t dim = normalize_dim(dim_in, x.shape(), "normalize");
  Tensor y, norm;
  {
    NoGradGuard no_grad;
    norm = sqrt(sum(mul(x, x), {dim}, true));
    y = div(x, clamp(norm, eps));
  }
  return autograd::record("normalize", y, {x}, [dim, eps, y_saved = autograd::save(y), norm](const Tensor& g, const std::vector<bool>&) -> GradList {
    const Tensor big = gt(norm, eps);  // where ||x|| > eps: y = x / ||x||
    const Tensor projected = div(sub(g, mul(y_saved, sum(mul(g, y_saved), {dim}, true))), clamp(norm, eps));
    return {where(big, projected, div(g, eps))};
  });
}

Tensor normal_loss(const Tensor& pred, const Tensor& target, const Tensor& valid) {
  check_float("normal_loss", pred, "pred");
  check_same_shape("normal_loss", pred, target);
  if (pred.dim() != 4 || pred.size(1) != 3 || valid.shape() != Shape{pred.size(0), pred.size(2), pred.size(3)})
    throw std::invalid_argument("normal_loss: expected pred and target [N, 3, H, W] and valid [N, H, W], got " +
                                shape_str(pred.shape()) + " and " + shape_str(valid.shape()));
  const Tensor m = mask_as(valid, pred);
  const double count = sum(m).item<double>();
  const Tensor cosine = sum(mul(normalize(pred, 1), normalize(target, 1)), {1});  // [N, H, W]
  const Tensor mean_cos = div(sum(mul(cosine, m)), std::max(count, 1.0));
  return count > 0 ? sub(scalar_tensor(1, {pred.dtype(), pred.device()}), mean_cos) : mul(mean_cos, 0.0);
}

Tensor bce_with_logits(const Tensor& logits, const Tensor& targets) {
  check_float("bce_with_logits", logits, "logits");
  check_same_shape("bce_with_logits", logits, targets);
  Tensor loss;
  {
    NoGradGuard no_grad;
    loss = mean(add(sub(relu(logits), mul(logits, targets)), log(add(exp(neg(abs(logits))), 1.0))));
  }
  const double n = double(logits.numel());
  return autograd::record("bce_with_logits", loss, {logits, targets},
                          [x = autograd::save(logits), t = autograd::save(targets), n](const Tensor& dout, const std::vector<bool>& needs) -> GradList {
                            const Tensor scale = div(dout, n);  // 0-d
                            return {needs[0] ? mul(sub(sigmoid(x), t), scale) : Tensor(),
                                    needs[1] ? mul(neg(x), scale) : Tensor()};
                          });
}

}  // namespace mila
