// CUDA kernel of concat (ops/concat.h), in ops/cuda/concat.cu. There is no CPU kernel of its
// own: on the CPU, ops/concat.cpp copies each input into its slice with copy_.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace mila::cuda {
// out = the parts joined along dim. out: the parts' shape with size(dim) = the sum of theirs
// (any strides); parts: out's dtype, on out's device, any strides, empty ones allowed.
void concat(const Tensor& out, const std::vector<Tensor>& parts, int64_t dim);
}  // namespace mila::cuda
