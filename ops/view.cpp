// view.cpp - views: new shape/strides/offset over the same storage, no copy, on any device.
// Each records its derivative rule (the gradient of a view is the "un-view" of dout).
#include <algorithm>
#include <numeric>
#include <optional>
#include <stdexcept>

#include "autograd/function.h"
#include "ops/copy.h"
#include "ops/factory.h"

namespace mila {
namespace {

using autograd::GradList;

// Gradient rule shared by views that only reshape: dout reshaped to the input's shape.
Tensor record_reshape_like(const char* name, const Tensor& out, const Tensor& in) {
  const Shape in_shape = in.shape();
  return autograd::record(name, out, {in}, [in_shape](const Tensor& dout, const std::vector<bool>&) -> GradList {
    return {dout.reshape(in_shape)};
  });
}

// Strides that let a tensor of (shape, strides) be seen with `target` without copying, if
// any (PyTorch's computeStride): dims of the target must split or merge only runs of the
// old dims that are contiguous with each other.
std::optional<Shape> view_strides(const Shape& shape, const Shape& strides, const Shape& target) {
  if (numel_of(shape) == 0 || shape.empty() || target.empty()) return contiguous_strides(target);
  Shape out(target.size());
  int64_t view_d = int64_t(target.size()) - 1;
  int64_t chunk_base = strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    // End of a contiguous run: the dim before is not laid out right after this chunk.
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base)) {
      while (view_d >= 0 && (view_numel < tensor_numel || target[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base;
        view_numel *= target[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base = strides[d - 1];
        tensor_numel = view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

// Replaces one -1 in `shape` by what makes the element count `numel`.
Shape infer_shape(Shape shape, int64_t numel, const Shape& from, const char* op) {
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw std::invalid_argument(std::string(op) + ": only one dimension can be -1, got " + shape_str(shape));
      infer = int64_t(i);
    } else if (shape[i] < 0) {
      throw std::invalid_argument(std::string(op) + ": invalid shape " + shape_str(shape));
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel % known != 0)
      throw std::invalid_argument(std::string(op) + ": shape " + shape_str(shape) + " is invalid for input of shape " +
                                  shape_str(from));
    shape[infer] = numel / known;
  }
  if (numel_of(shape) != numel)
    throw std::invalid_argument(std::string(op) + ": shape " + shape_str(shape) + " is invalid for input of shape " +
                                shape_str(from) + " (" + std::to_string(numel) + " elements)");
  return shape;
}

}  // namespace

Tensor Tensor::view(const Shape& shape_in) const {
  const Shape target = infer_shape(shape_in, numel(), shape(), "view");
  auto st = view_strides(shape(), strides(), target);
  if (!st)
    throw std::invalid_argument("view: shape " + shape_str(target) + " is not compatible with the strides " +
                                shape_str(strides()) + " of input shape " + shape_str(shape()) + "; use reshape()");
  return record_reshape_like("view", make_view(*this, target, *st, offset()), *this);
}

Tensor Tensor::reshape(const Shape& shape_in) const {
  const Shape target = infer_shape(shape_in, numel(), shape(), "reshape");
  if (auto st = view_strides(shape(), strides(), target))
    return record_reshape_like("reshape", make_view(*this, target, *st, offset()), *this);
  return contiguous().view(target);
}

Tensor Tensor::permute(const Shape& dims) const {
  const size_t n = shape().size();
  if (dims.size() != n)
    throw std::invalid_argument("permute: got " + std::to_string(dims.size()) + " dims " + shape_str(dims) +
                                " for a tensor of shape " + shape_str(shape()));
  Shape perm(n), new_shape(n), new_strides(n), inverse(n);
  std::vector<bool> used(n, false);
  for (size_t i = 0; i < n; ++i) {
    const int64_t d = normalize_dim(dims[i], shape(), "permute");
    if (used[d]) throw std::invalid_argument("permute: repeated dim in " + shape_str(dims) + " for a tensor of shape " + shape_str(shape()));
    used[d] = true;
    perm[i] = d;
    new_shape[i] = shape()[d];
    new_strides[i] = strides()[d];
    inverse[d] = int64_t(i);
  }
  return autograd::record("permute", make_view(*this, new_shape, new_strides, offset()), {*this},
                          [inverse](const Tensor& dout, const std::vector<bool>&) -> GradList {
                            return {dout.permute(inverse)};
                          });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  d0 = normalize_dim(d0, shape(), "transpose");
  d1 = normalize_dim(d1, shape(), "transpose");
  Shape perm(shape().size());
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[d0], perm[d1]);
  return permute(perm);
}

Tensor Tensor::t() const {
  // As torch.t: 0-d and 1-d tensors come back as they are (a new view).
  if (dim() > 2) throw std::invalid_argument("t: expected a tensor with at most 2 dims, got shape " + shape_str(shape()));
  if (dim() < 2) return record_reshape_like("t", detach(), *this);
  return transpose(0, 1);
}

Tensor Tensor::narrow(int64_t dim_in, int64_t start, int64_t length) const {
  const int64_t d = normalize_dim(dim_in, shape(), "narrow");
  if (start < 0) start += shape()[d];
  if (start < 0 || length < 0 || start + length > shape()[d])
    throw std::out_of_range("narrow: start " + std::to_string(start) + " length " + std::to_string(length) +
                            " exceeds dim " + std::to_string(d) + " of shape " + shape_str(shape()));
  Shape new_shape = shape();
  new_shape[d] = length;
  Tensor out = make_view(*this, new_shape, strides(), offset() + start * strides()[d]);
  const Shape in_shape = shape();
  return autograd::record("narrow", out, {*this},
                          [in_shape, d, start, length](const Tensor& dout, const std::vector<bool>&) -> GradList {
                            Tensor g = zeros(in_shape, {dout.dtype(), dout.device()});
                            copy_(g.narrow(d, start, length), dout);
                            return {g};
                          });
}

Tensor Tensor::select(int64_t dim_in, int64_t index) const {
  const int64_t d = normalize_dim(dim_in, shape(), "select");
  const int64_t size = shape()[d];
  if (index < -size || index >= size)
    throw std::out_of_range("select: index " + std::to_string(index) + " is out of range for dim " +
                            std::to_string(d) + " of shape " + shape_str(shape()));
  if (index < 0) index += size;
  Shape new_shape = shape(), new_strides = strides();
  new_shape.erase(new_shape.begin() + d);
  new_strides.erase(new_strides.begin() + d);
  Tensor out = make_view(*this, new_shape, new_strides, offset() + index * strides()[d]);
  const Shape in_shape = shape();
  return autograd::record("select", out, {*this},
                          [in_shape, d, index](const Tensor& dout, const std::vector<bool>&) -> GradList {
                            Tensor g = zeros(in_shape, {dout.dtype(), dout.device()});
                            copy_(g.select(d, index), dout);
                            return {g};
                          });
}

Tensor Tensor::expand(const Shape& target_in) const {
  const Shape& s = shape();
  if (target_in.size() < s.size())
    throw std::invalid_argument("expand: target " + shape_str(target_in) + " has fewer dims than input shape " +
                                shape_str(s));
  const size_t lead = target_in.size() - s.size();
  Shape target = target_in, new_strides(target.size(), 0);
  for (size_t i = 0; i < target.size(); ++i) {
    if (i < lead) {
      if (target[i] < 0) throw std::invalid_argument("expand: -1 not allowed in new leading dims: " + shape_str(target_in));
      continue;
    }
    const int64_t have = s[i - lead];
    if (target[i] == -1) target[i] = have;
    if (target[i] < 0)
      throw std::invalid_argument("expand: invalid size " + std::to_string(target[i]) + " in target " +
                                  shape_str(target_in) + " for input shape " + shape_str(s));
    if (have == target[i]) {
      new_strides[i] = strides()[i - lead];
    } else if (have != 1) {
      throw std::invalid_argument("expand: input shape " + shape_str(s) + " cannot be expanded to " +
                                  shape_str(target_in) + " (dim " + std::to_string(i) + ")");
    }
  }
  // The engine sums dout back to the input's shape, which is exactly expand's derivative.
  return autograd::record("expand", make_view(*this, target, new_strides, offset()), {*this},
                          [](const Tensor& dout, const std::vector<bool>&) -> GradList { return {dout}; });
}

Tensor Tensor::unsqueeze(int64_t dim_in) const {
  const int64_t d = normalize_insert_dim(dim_in, shape(), "unsqueeze");
  Shape new_shape = shape(), new_strides = strides();
  const int64_t st = d < dim() ? strides()[d] * shape()[d] : 1;
  new_shape.insert(new_shape.begin() + d, 1);
  new_strides.insert(new_strides.begin() + d, st);
  return record_reshape_like("unsqueeze", make_view(*this, new_shape, new_strides, offset()), *this);
}

Tensor Tensor::squeeze(int64_t dim_in) const {
  const int64_t d = normalize_dim(dim_in, shape(), "squeeze");
  if (shape()[d] != 1) return record_reshape_like("squeeze", detach(), *this);  // PyTorch: no-op
  Shape new_shape = shape(), new_strides = strides();
  new_shape.erase(new_shape.begin() + d);
  new_strides.erase(new_strides.begin() + d);
  return record_reshape_like("squeeze", make_view(*this, new_shape, new_strides, offset()), *this);
}

Tensor Tensor::squeeze() const {
  Shape new_shape, new_strides;
  for (int64_t i = 0; i < dim(); ++i)
    if (shape()[i] != 1) {
      new_shape.push_back(shape()[i]);
      new_strides.push_back(strides()[i]);
    }
  return record_reshape_like("squeeze", make_view(*this, new_shape, new_strides, offset()), *this);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  const int64_t s = normalize_dim(start_dim, shape(), "flatten"), e = normalize_dim(end_dim, shape(), "flatten");
  if (s > e) throw std::invalid_argument("flatten: start_dim must not come after end_dim");
  Shape new_shape(shape().begin(), shape().begin() + s);
  int64_t merged = 1;
  for (int64_t i = s; i <= e; ++i) merged *= shape()[i];
  new_shape.push_back(merged);
  new_shape.insert(new_shape.end(), shape().begin() + e + 1, shape().end());
  return reshape(new_shape);
}

}  // namespace mila
