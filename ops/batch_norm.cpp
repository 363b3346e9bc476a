// batch_norm.cpp - checks, dispatch and derivative rule of batch_norm (ops/batch_norm.h);
// kernels in ops/cpu/batch_norm.cpp and ops/cuda/batch_norm.h.
#include "ops/batch_norm.h"

#include <stdexcept>
#include <string>

#include "autograd/function.h"
#include "ops/cpu/batch_norm.h"
#include "ops/cuda/batch_norm.h"
#include "ops/op_list.h"

namespace mila {
namespace {

void check_args(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                const Tensor& bias, bool training) {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument("batch_norm: " + why + " (input " + shape_str(x.shape()) + ")");
  };
  if (!is_floating(x.dtype())) fail(std::string("expected a float32 or float64 input, got ") + dtype_name(x.dtype()));
  if (x.dim() < 2) fail("expected an input of at least 2 dims [N, C, ...]");
  const int64_t C = x.size(1);
  auto check_param = [&](const Tensor& t, const char* name) {
    if (!t.defined()) return;
    if (t.dim() != 1 || t.size(0) != C)
      fail(std::string(name) + " has shape " + shape_str(t.shape()) + ", expected [" + std::to_string(C) +
           "] (one value per channel)");
    if (t.dtype() != x.dtype())
      fail(std::string(name) + " is " + dtype_name(t.dtype()) + ", the input " + dtype_name(x.dtype()));
    if (t.device() != x.device()) fail(std::string(name) + " is on " + t.device().str() + ", the input on " + x.device().str());
  };
  check_param(running_mean, "running_mean");
  check_param(running_var, "running_var");
  check_param(weight, "weight");
  check_param(bias, "bias");
  if (running_mean.defined() != running_var.defined())
    fail("running_mean and running_var must be both defined or both undefined");
  if (!training && !running_mean.defined())
    fail("running_mean and running_var must be defined in eval mode (training = false)");
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  check_args(x, running_mean, running_var, weight, bias, training);
  const int64_t C = x.size(1), M = x.numel() / C;
  if (training && M <= 1)
    throw std::invalid_argument("batch_norm: Expected more than 1 value per channel when training, got input size " +
                                shape_str(x.shape()));
  // The kernels walk contiguous [N, C, S] runs: strided inputs are copied once here.
  // Detached: the node recorded below is their only gradient path.
  const Tensor xc = x.detach().contiguous();
  const Tensor wc = weight.defined() ? weight.detach().contiguous() : Tensor();
  const Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor y = Tensor::allocate(x.shape(), x.dtype(), x.device());
  // What backward needs besides x and weight: the per-channel mean and invstd used (float64).
  Tensor mean = Tensor::allocate({C}, DType::Float64, x.device());
  Tensor invstd = Tensor::allocate({C}, DType::Float64, x.device());
  const BatchNormParams p{training, momentum, eps};
  if (x.device().is_cpu()) cpu::batch_norm_forward(y, mean, invstd, xc, wc, bc, running_mean, running_var, p);
  else if constexpr (has_cuda_kernel(Op::batch_norm))
    cuda::batch_norm_forward(y, mean, invstd, xc, wc, bc, running_mean, running_var, p);
  else throw_unsupported(Op::batch_norm, x.device());
  return autograd::record(
      "batch_norm", y, {x, weight, bias},
      [xc, wc, mean, invstd, p](const Tensor& dout, const std::vector<bool>& needs) -> autograd::GradList {
        const Tensor dx = needs[0] ? Tensor::allocate(xc.shape(), xc.dtype(), xc.device()) : Tensor();
        const Tensor dweight = needs[1] ? Tensor::allocate(mean.shape(), xc.dtype(), xc.device()) : Tensor();
        const Tensor dbias = needs[2] ? Tensor::allocate(mean.shape(), xc.dtype(), xc.device()) : Tensor();
        const Tensor g = dout.contiguous();
        if (g.device().is_cpu()) cpu::batch_norm_backward(dx, dweight, dbias, g, xc, wc, mean, invstd, p);
        else if constexpr (has_cuda_kernel(Op::batch_norm))
          cuda::batch_norm_backward(dx, dweight, dbias, g, xc, wc, mean, invstd, p);
        else throw_unsupported(Op::batch_norm, g.device());
        return {dx, dweight, dbias};
      });
}

}  // namespace mila
