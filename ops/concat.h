// concat.h - joining tensors along a dim and splitting them apart.
//
// concat copies; split and chunk return views (narrow), so their gradient is free.
// d concat / d input_i = dout.narrow(dim, offset_i, size_i).
#pragma once

#include <initializer_list>
#include <vector>

#include "tensor/tensor.h"

namespace mila {
// All tensors: same dtype, device, number of dims and sizes except along `dim`.
Tensor concat(const std::vector<Tensor>& tensors, int64_t dim);
// All tensors: the same shape; a new dim is inserted at `dim`.
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);
// Pieces of `size` along dim (the last may be smaller), as torch.split(x, size, dim).
std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim);
// Pieces of the given sizes, which must sum to x.size(dim).
std::vector<Tensor> split(const Tensor& x, const Shape& sizes, int64_t dim);
// Makes split(x, {2}, dim) the list of sizes {2}, not pieces of size 2 (a braced list prefers
// std::initializer_list over int64_t).
inline std::vector<Tensor> split(const Tensor& x, std::initializer_list<int64_t> sizes, int64_t dim) {
  return split(x, Shape(sizes), dim);
}
// `chunks` pieces of ceil(size / chunks) (fewer when they run out), as torch.chunk.
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);
}  // namespace mila
