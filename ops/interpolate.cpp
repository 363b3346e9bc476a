// interpolate.cpp - checks, dispatch and derivative rule of interpolate_bilinear
// (ops/interpolate.h); kernels in ops/cpu/interpolate.cpp and ops/cuda/interpolate.h.
#include "ops/interpolate.h"

#include <stdexcept>
#include <string>

#include "autograd/function.h"
#include "ops/cpu/interpolate.h"
#include "ops/cuda/interpolate.h"
#include "ops/op_list.h"

namespace mila {
namespace {
// The planes view [P, H, W] of a contiguous [N, C, H, W] tensor.
Tensor planes(const Tensor& t) { return t.reshape({t.size(0) * t.size(1), t.size(2), t.size(3)}); }
}  // namespace

Tensor interpolate_bilinear(const Tensor& x, int64_t out_h, int64_t out_w) {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument("interpolate_bilinear: " + why + " (input " + shape_str(x.shape()) + ", output size " +
                                std::to_string(out_h) + "x" + std::to_string(out_w) + ")");
  };
  if (!is_floating(x.dtype())) fail(std::string("expected a float32 or float64 input, got ") + dtype_name(x.dtype()));
  if (x.dim() != 4) fail("expected a 4-d input [N, C, H, W]");
  if (out_h < 1 || out_w < 1) fail("the output size must be positive");
  if (x.size(2) < 1 || x.size(3) < 1) fail("the input map must be non-empty");
  const int64_t N = x.size(0), C = x.size(1);
  const Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::allocate({N, C, out_h, out_w}, x.dtype(), x.device());
  if (x.device().is_cpu()) cpu::interpolate_bilinear_forward(planes(out), planes(xc));
  else if constexpr (has_cuda_kernel(Op::interpolate_bilinear))
    cuda::interpolate_bilinear_forward(planes(out), planes(xc));
  else throw_unsupported(Op::interpolate_bilinear, x.device());
  const Shape x_shape = x.shape();
  return autograd::record("interpolate_bilinear", out, {x},
                          [x_shape](const Tensor& dout, const std::vector<bool>&) -> autograd::GradList {
                            Tensor dx = Tensor::allocate(x_shape, dout.dtype(), dout.device());
                            const Tensor g = dout.contiguous();
                            if (g.device().is_cpu()) cpu::interpolate_bilinear_backward(planes(dx), planes(g));
                            else if constexpr (has_cuda_kernel(Op::interpolate_bilinear))
                              cuda::interpolate_bilinear_backward(planes(dx), planes(g));
                            else throw_unsupported(Op::interpolate_bilinear, g.device());
                            return {dx};
                          });
}

}  // namespace mila
