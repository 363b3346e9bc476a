#include "ops/gradient_reversal.h"

#include "autograd/function.h"
#include "ops/binary.h"

namespace mila {

Tensor gradient_reversal(const Tensor& x, double beta) {
  using autograd::GradList;
  // A new tensor over x's storage (record() must not attach the node to x itself).
  return autograd::record("gradient_reversal", x.detach(), {x},
                          [beta](const Tensor& dout, const std::vector<bool>&) -> GradList { return {mul(dout, -beta)}; });
}

}  // namespace mila
