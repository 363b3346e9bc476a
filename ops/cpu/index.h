// CPU kernels of the index ops (ops/index.h). Shapes and index ranges are checked by the caller.
#pragma once

#include "tensor/tensor.h"

namespace mila::cpu {
// out[.., j, ..] = x[.., index[.., j, ..], ..] along dim; out has index's shape.
void gather(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index);
// out[.., index[.., j, ..], ..] += src[.., j, ..] along dim, for j in index's extent (in place on out).
void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
// out.select(dim, i) = x.select(dim, idx[i]).
void index_select(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& idx);
// out.select(dim, idx[i]) += src.select(dim, i), for i in order (in place on out).
void index_add(const Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src);
// Throws std::out_of_range "<op>: index v is out of range for dim d of size n" when some value of
// idx (any view, int64) is outside [0, size).
void check_index_range(const Tensor& idx, int64_t size, int64_t dim, const char* op);
}  // namespace mila::cpu
