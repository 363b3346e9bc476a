// unary.cu - the unary elementwise ops on the GPU. No kernel yet: every unary op's CUDA
// column in ops/op_list.h is false, so each call throws that op's error. A kernel is a case
// of a switch here plus its column flipped (as ops/cuda/binary.cu does for add).
#include "ops/cuda/unary.h"

namespace mila::cuda {

void unary_forward(Op op, const Tensor& out, const Tensor&, double, double) { throw_unsupported(op, out.device()); }

void unary_backward(Op op, const Tensor& din, const Tensor&, const Tensor&, const Tensor&, double, double) {
  throw_unsupported(op, din.device());
}

}  // namespace mila::cuda
