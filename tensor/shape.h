// shape.h - shapes, strides and the small helpers every op uses to validate its arguments.
//
// Strides are in elements (not bytes), as in PyTorch. A broadcast (expanded) dimension has
// stride 0.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mila {

using Shape = std::vector<int64_t>;

// "[2, 3, 4]"
std::string shape_str(const Shape& s);
int64_t numel_of(const Shape& s);
// Row-major (C order) strides for a shape.
Shape contiguous_strides(const Shape& s);
// Maps a possibly negative dim into [0, ndim); throws "op: dim d is out of range for a
// tensor of shape [...]" otherwise.
int64_t normalize_dim(int64_t dim, const Shape& shape, const char* op);
// Same for a dim that may equal ndim (insertion points, e.g. unsqueeze).
int64_t normalize_insert_dim(int64_t dim, const Shape& shape, const char* op);
// NumPy/PyTorch broadcasting of two shapes; throws naming the op and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Strides that read a tensor of (shape, strides) as if it had shape `target` (which it must
// broadcast to): stride 0 on broadcast and new leading dims.
Shape broadcast_strides(const Shape& shape, const Shape& strides, const Shape& target);

}  // namespace mila
