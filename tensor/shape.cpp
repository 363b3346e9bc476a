#include "tensor/shape.h"

#include <stdexcept>

namespace mila {

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r += ", ";
    r += std::to_string(s[i]);
  }
  return r + "]";
}

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i] > 0 ? s[i] : 1;
  }
  return st;
}

int64_t normalize_dim(int64_t dim, const Shape& shape, const char* op) {
  const int64_t n = int64_t(shape.size());
  if (dim < -n || dim >= n || n == 0)
    throw std::out_of_range(std::string(op) + ": dim " + std::to_string(dim) + " is out of range for a tensor of shape " +
                            shape_str(shape));
  return dim < 0 ? dim + n : dim;
}

int64_t normalize_insert_dim(int64_t dim, const Shape& shape, const char* op) {
  const int64_t n = int64_t(shape.size()) + 1;
  if (dim < -n || dim >= n)
    throw std::out_of_range(std::string(op) + ": dim " + std::to_string(dim) + " is out of range for a tensor of shape " +
                            shape_str(shape));
  return dim < 0 ? dim + n : dim;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape r(n);
  for (size_t i = 0; i < n; ++i) {
    // Align from the right: dim i of the result is dim (i - (n - size)) of each operand.
    int64_t da = i + a.size() >= n ? a[i + a.size() - n] : 1;
    int64_t db = i + b.size() >= n ? b[i + b.size() - n] : 1;
    if (da != db && da != 1 && db != 1)
      throw std::invalid_argument(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                                  " cannot be broadcast together (dim " + std::to_string(i) + ": " +
                                  std::to_string(da) + " vs " + std::to_string(db) + ")");
    r[i] = da == 1 ? db : da;
  }
  return r;
}

Shape broadcast_strides(const Shape& shape, const Shape& strides, const Shape& target) {
  Shape r(target.size(), 0);
  const size_t lead = target.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i) r[lead + i] = (shape[i] == 1 && target[lead + i] != 1) ? 0 : strides[i];
  return r;
}

}  // namespace mila
