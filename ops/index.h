// index.h - gathering and scattering by integer indices (int64), as PyTorch defines them.
//
//   gather(x, dim, index)[i][j][k]           = x[index[i][j][k]][j][k]          (dim = 0)
//   scatter_add(self, dim, index, src)        : out = self; out[index[i][j][k]][j][k] += src[i][j][k]
//   index_select(x, dim, idx)                 : the slices x.select(dim, idx[i]), stacked along dim
//   index_add(self, dim, idx, src)            : out = self; out.select(dim, idx[i]) += src.select(dim, i)
//
// Each pair is the other's derivative: d gather = scatter_add of dout, d index_select =
// index_add of dout. Index values out of range throw std::out_of_range naming the op.
// Repeated indices accumulate; the order of accumulation is fixed (ascending position along
// `dim`), so results do not depend on the thread count.
#pragma once

#include "tensor/tensor.h"

namespace mila {

// index has x's number of dims and index.size(d) <= x.size(d) for d != dim; out has index's shape.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// index and src have self's number of dims, index.size(d) <= src.size(d) for all d and
// <= self.size(d) for d != dim. Out-of-place: returns a new tensor.
Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);
// idx is 1-d.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& idx);
// idx is 1-d of length src.size(dim); src has self's shape except along dim.
Tensor index_add(const Tensor& self, int64_t dim, const Tensor& idx, const Tensor& src);

}  // namespace mila
