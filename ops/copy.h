// copy.h - raw in-place copies and fills (not differentiable), and the differentiable
// Tensor::contiguous / clone / to(dtype) / to(device) defined in copy.cpp.
#pragma once

#include "tensor/tensor.h"

namespace mila {

// dst[...] = src[...] converted to dst's dtype; src is broadcast to dst's shape; dst may be
// any strided view (this is how slices are written). Devices may differ.
void copy_(const Tensor& dst, const Tensor& src);
// Every element of dst (any view) = value.
void fill_(const Tensor& dst, double value);

}  // namespace mila
