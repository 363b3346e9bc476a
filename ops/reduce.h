// reduce.h - reductions over chosen dims or over all elements.
//
// Float sums accumulate in double and in a fixed order that depends only on the shape, so
// results do not depend on the thread count. sum of int64/uint8 gives int64. An empty dims
// list means every dim; a 0-d tensor accepts dim 0 or -1 (PyTorch).
#pragma once

#include <initializer_list>

#include "tensor/tensor.h"

namespace mila {

Tensor sum(const Tensor& x);  // 0-d
Tensor sum(const Tensor& x, const Shape& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const Shape& dims, bool keepdim = false);
// Variance; unbiased divides by N - 1 (PyTorch's default).
Tensor var(const Tensor& x, bool unbiased = true);
Tensor var(const Tensor& x, const Shape& dims, bool unbiased = true, bool keepdim = false);
// Makes var(x, {1}) mean "over dim 1": without it, {1} would convert to bool and pick the
// all-elements overload above (a braced list prefers std::initializer_list over bool).
inline Tensor var(const Tensor& x, std::initializer_list<int64_t> dims, bool unbiased = true, bool keepdim = false) {
  return var(x, Shape(dims), unbiased, keepdim);
}

struct ValuesIndices {
  Tensor values;
  Tensor indices;  // int64
};
// Largest value along `dim` and its index (the first on ties); the gradient goes to that index.
ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim = false);
// Largest element; the gradient is split evenly between tied maxima (PyTorch's max()).
Tensor max(const Tensor& x);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x);  // index into the flattened tensor

}  // namespace mila
