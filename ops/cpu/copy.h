// CPU kernels of copy_ and fill_ (ops/copy.h).
#pragma once

#include "tensor/tensor.h"

namespace mila::cpu {
// dst: any view; src: broadcast to dst.shape(); dtypes may differ (static_cast per element).
void copy(const Tensor& dst, const Tensor& src);
void fill(const Tensor& dst, double value);
}  // namespace mila::cpu
