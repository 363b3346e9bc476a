// softmax.cu - softmax and log_softmax on the GPU. No kernel yet: both CUDA columns in
// ops/op_list.h are false, so each call throws the op's error.
#include "ops/cuda/softmax.h"

#include "ops/op_list.h"

namespace mila::cuda {
namespace {
Op op_of(bool log) { return log ? Op::log_softmax : Op::softmax; }
}  // namespace

void softmax_forward(const Tensor& out, const Tensor&, int64_t, bool log) { throw_unsupported(op_of(log), out.device()); }

void softmax_backward(const Tensor& dx, const Tensor&, const Tensor&, int64_t, bool log) {
  throw_unsupported(op_of(log), dx.device());
}

}  // namespace mila::cuda
