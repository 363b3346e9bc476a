// channel_gate.cpp - checks, dispatch and derivative rule of channel_gate
// (ops/channel_gate.h); kernels in ops/cpu/channel_gate.cpp and ops/cuda/channel_gate.h.
#include "ops/channel_gate.h"

#include <stdexcept>
#include <string>

#include "autograd/function.h"
#include "ops/cpu/channel_gate.h"
#include "ops/cuda/channel_gate.h"
#include "ops/op_list.h"

namespace mila {

Tensor channel_gate(const Tensor& x, const Tensor& gate) {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument("channel_gate: " + why + " (x " + shape_str(x.shape()) + ", gate " +
                                shape_str(gate.shape()) + ")");
  };
  if (!is_floating(x.dtype()) || x.dtype() != gate.dtype())
    fail(std::string("expected float32 or float64 tensors of one dtype, got x ") + dtype_name(x.dtype()) +
         ", gate " + dtype_name(gate.dtype()));
  if (x.dim() < 2) fail("expected x of at least 2 dims [N, C, ...]");
  if (gate.dim() != 2 || gate.size(0) != x.size(0) || gate.size(1) != x.size(1))
    fail("expected gate [N, C] with x's N and C");
  if (x.device() != gate.device()) fail("tensors on different devices");
  const int64_t P = x.size(0) * x.size(1), S = P == 0 ? 0 : x.numel() / P;
  // Contiguous copies only for strided inputs; detached: the node below is their only gradient path.
  const Tensor xc = x.detach().contiguous(), gc = gate.detach().contiguous();
  Tensor out = Tensor::allocate(x.shape(), x.dtype(), x.device());
  if (x.device().is_cpu()) cpu::channel_gate_forward(out.view({P, S}), xc.view({P, S}), gc.view({P}));
  else if constexpr (has_cuda_kernel(Op::channel_gate))
    cuda::channel_gate_forward(out.view({P, S}), xc.view({P, S}), gc.view({P}));
  else throw_unsupported(Op::channel_gate, x.device());
  return autograd::record(
      "channel_gate", out, {x, gate},
      [xc, gc, P, S](const Tensor& dout, const std::vector<bool>& needs) -> autograd::GradList {
        Tensor dx = needs[0] ? Tensor::allocate(xc.shape(), xc.dtype(), xc.device()) : Tensor();
        Tensor dgate = needs[1] ? Tensor::allocate(gc.shape(), gc.dtype(), gc.device()) : Tensor();
        const Tensor dx_ps = dx.defined() ? dx.view({P, S}) : Tensor();
        const Tensor dgate_p = dgate.defined() ? dgate.view({P}) : Tensor();
        const Tensor g = dout.contiguous().view({P, S});
        if (g.device().is_cpu()) cpu::channel_gate_backward(dx_ps, dgate_p, g, xc.view({P, S}), gc.view({P}));
        else if constexpr (has_cuda_kernel(Op::channel_gate))
          cuda::channel_gate_backward(dx_ps, dgate_p, g, xc.view({P, S}), gc.view({P}));
        else throw_unsupported(Op::channel_gate, g.device());
        return {dx, dgate};
      });
}

}  // namespace mila
