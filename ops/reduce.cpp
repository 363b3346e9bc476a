// reduce.cpp - checks, dispatch and derivative rules of the reductions.
//
//   sum:   d/dx = dout broadcast back over the reduced dims
//   mean:  sum / count
//   var:   composite, sum((x - mean)^2) / (N - unbiased)
//   max(dim): the gradient goes to the index that won (scatter along dim)
//   max(): split evenly between all elements equal to the maximum (PyTorch)
#include "ops/reduce.h"

#include <algorithm>
#include <stdexcept>

#include "autograd/function.h"
#include "ops/binary.h"
#include "ops/cpu/reduce.h"
#include "ops/cuda/reduce.h"
#include "ops/index.h"
#include "ops/op_list.h"
#include "ops/where.h"
#include "ops/factory.h"

namespace mila {
namespace {

using autograd::GradList;

// Sorted, unique, non-negative dims; an empty list means every dim (as torch.sum(dim=[])).
Shape normalize_dims(const Shape& dims, const Shape& shape, const char* op) {
  Shape out;
  if (shape.empty()) {  // PyTorch allows dim 0 or -1 on a 0-d tensor: it reduces nothing
    for (int64_t d : dims)
      if (d != 0 && d != -1) normalize_dim(d, shape, op);  // throws the usual out-of-range message
    return out;
  }
  if (dims.empty()) {
    for (int64_t d = 0; d < int64_t(shape.size()); ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(normalize_dim(d, shape, op));
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end())
    throw std::invalid_argument(std::string(op) + ": dim " + shape_str(dims) + " repeats a dim of a tensor of shape " +
                                shape_str(shape));
  return out;
}

Shape keepdim_shape(const Shape& shape, const Shape& dims) {
  Shape k = shape;
  for (int64_t d : dims) k[d] = 1;
  return k;
}

Shape dropped_shape(const Shape& shape, const Shape& dims) {
  Shape out;
  for (int64_t d = 0; d < int64_t(shape.size()); ++d)
    if (!std::binary_search(dims.begin(), dims.end(), d)) out.push_back(shape[d]);
  return out;
}

int64_t reduced_count(const Shape& shape, const Shape& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= shape[d];
  return n;
}

}  // namespace

Tensor sum(const Tensor& x, const Shape& dims_in, bool keepdim) {
  const Shape dims = normalize_dims(dims_in, x.shape(), "sum");
  const Shape keep = keepdim_shape(x.shape(), dims);
  const DType out_dtype = is_floating(x.dtype()) ? x.dtype() : DType::Int64;
  Tensor out = Tensor::allocate(keep, out_dtype, x.device());
  // uint8 (masks) sums in int64, like PyTorch; the kernel sees int64 input then.
  const Tensor in = x.dtype() == DType::UInt8 ? x.detach().to(DType::Int64) : x;
  if (x.device().is_cpu()) cpu::sum(out, in, dims);
  else if constexpr (has_cuda_kernel(Op::sum)) cuda::sum(out, in, dims);
  else throw_unsupported(Op::sum, x.device());
  if (!keepdim) out = Tensor::make_view(out, dropped_shape(x.shape(), dims), contiguous_strides(dropped_shape(x.shape(), dims)), 0);
  return autograd::record("sum", out, {x},
                          [keep, shape = x.shape()](const Tensor& dout, const std::vector<bool>&) -> GradList {
                            return {dout.reshape(keep).expand(shape)};
                          });
}
Tensor sum(const Tensor& x) { return sum(x, {}, false); }

Tensor mean(const Tensor& x, const Shape& dims_in, bool keepdim) {
  if (!is_floating(x.dtype()))
    throw std::invalid_argument(std::string("mean: expected a floating tensor, got ") + dtype_name(x.dtype()) + " " +
                                shape_str(x.shape()));
  const Shape dims = normalize_dims(dims_in, x.shape(), "mean");
  return div(sum(x, dims, keepdim), double(reduced_count(x.shape(), dims)));
}
Tensor mean(const Tensor& x) { return mean(x, {}, false); }

Tensor var(const Tensor& x, const Shape& dims_in, bool unbiased, bool keepdim) {
  if (!is_floating(x.dtype()))
    throw std::invalid_argument(std::string("var: expected a floating tensor, got ") + dtype_name(x.dtype()) + " " +
                                shape_str(x.shape()));
  const Shape dims = normalize_dims(dims_in, x.shape(), "var");
  const int64_t n = reduced_count(x.shape(), dims);
  Tensor centered = sub(x, mean(x, dims, true));
  // N - 1 = 0 gives inf/nan, as in PyTorch.
  return div(sum(mul(centered, centered), dims, keepdim), double(n - (unbiased ? 1 : 0)));
}
Tensor var(const Tensor& x, bool unbiased) { return var(x, {}, unbiased, false); }

ValuesIndices max(const Tensor& x, int64_t dim_in, bool keepdim) {
  if (x.dim() == 0) {  // PyTorch allows dim 0 or -1 on a 0-d tensor: a one-element line
    if (dim_in != 0 && dim_in != -1) normalize_dim(dim_in, x.shape(), "max");  // throws
    ValuesIndices r = max(x.reshape({1}), 0, false);
    return r;
  }
  const int64_t dim = normalize_dim(dim_in, x.shape(), "max");
  if (x.size(dim) == 0)
    throw std::invalid_argument("max: cannot reduce over dim " + std::to_string(dim) + " of size 0, shape " +
                                shape_str(x.shape()));
  const Shape keep = keepdim_shape(x.shape(), {dim});
  Tensor values = Tensor::allocate(keep, x.dtype(), x.device());
  Tensor indices = Tensor::allocate(keep, DType::Int64, x.device());
  if (x.device().is_cpu()) cpu::max(values, indices, x, dim);
  else if constexpr (has_cuda_kernel(Op::max)) cuda::max(values, indices, x, dim);
  else throw_unsupported(Op::max, x.device());
  Tensor idx_keep = indices;
  if (!keepdim) {
    const Shape shape = dropped_shape(x.shape(), {dim});
    values = Tensor::make_view(values, shape, contiguous_strides(shape), 0);
    indices = Tensor::make_view(indices, shape, contiguous_strides(shape), 0);
  }
  values = autograd::record("max", values, {x},
                            [dim, keep, idx_keep, shape = x.shape()](const Tensor& dout, const std::vector<bool>&) -> GradList {
                              Tensor z = zeros(shape, {dout.dtype(), dout.device()});
                              return {scatter_add(z, dim, idx_keep, dout.reshape(keep))};
                            });
  return {values, indices};
}

Tensor max(const Tensor& x) {
  if (x.numel() == 0) throw std::invalid_argument("max: cannot reduce an empty tensor of shape " + shape_str(x.shape()));
  Tensor flat;
  {
    autograd::NoGradGuard no_grad;
    flat = x.reshape({x.numel()});
  }
  Tensor value = max(flat, 0, false).values.detach();
  return autograd::record("max_all", value, {x}, [x_saved = autograd::save(x), v = autograd::save(value)](const Tensor& dout, const std::vector<bool>&) -> GradList {
    // The elements equal to the maximum share the gradient; when the maximum is NaN, the NaN
    // elements do (PyTorch's evenly_distribute_backward). Selected on the device: no sync.
    Tensor ties = where(ne(v, v), ne(x_saved, x_saved), eq(x_saved, v)).to(dout.dtype());
    return {mul(ties, div(dout, sum(ties)))};
  });
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  autograd::NoGradGuard no_grad;
  return max(x, dim, keepdim).indices;
}

Tensor argmax(const Tensor& x) {
  autograd::NoGradGuard no_grad;
  if (x.numel() == 0) throw std::invalid_argument("argmax: empty tensor of shape " + shape_str(x.shape()));
  return max(x.reshape({x.numel()}), 0, false).indices;
}

}  // namespace mila
