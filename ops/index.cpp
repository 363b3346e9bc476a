// index.cpp - checks, dispatch and derivative rules of gather / scatter_add / index_select /
// index_add. Each op's gradient is its partner op applied to dout.
#include "ops/index.h"

#include <stdexcept>

#include "autograd/function.h"
#include "ops/copy.h"
#include "ops/cpu/index.h"
#include "ops/cuda/index.h"
#include "ops/op_list.h"
#include "ops/factory.h"

namespace mila {
namespace {

using autograd::GradList;

std::string describe(const char* what, const Tensor& t) {
  return std::string(what) + " " + shape_str(t.shape()) + " " + dtype_name(t.dtype()) + " " + t.device().str();
}

[[noreturn]] void fail(const char* op, const std::string& why) {
  throw std::invalid_argument(std::string(op) + ": " + why);
}

void check_index_tensor(Op kind, const Tensor& index, const Tensor& x) {
  const char* op = op_name(kind);
  if (index.dtype() != DType::Int64) fail(op, "index must be int64, got " + describe("index", index));
  if (index.device() != x.device())
    fail(op, "index and input on different devices, " + describe("index", index) + " vs " + describe("input", x));
}

// index.size(d) <= bound.size(d) for every d (except `skip`, when >= 0).
void check_fits(const char* op, const Tensor& index, const Tensor& bound, int64_t skip, const char* bound_name) {
  if (index.dim() != bound.dim())
    fail(op, "index and " + std::string(bound_name) + " must have the same number of dims, got " +
                 describe("index", index) + " and " + describe(bound_name, bound));
  for (int64_t d = 0; d < index.dim(); ++d)
    if (d != skip && index.size(d) > bound.size(d))
      fail(op, "index " + shape_str(index.shape()) + " is larger than " + bound_name + " " +
                   shape_str(bound.shape()) + " in dim " + std::to_string(d));
}

}  // namespace

Tensor gather(const Tensor& x, int64_t dim_in, const Tensor& index) {
  const int64_t dim = normalize_dim(dim_in, x.shape(), "gather");
  check_index_tensor(Op::gather, index, x);
  check_fits("gather", index, x, dim, "input");
  Tensor out = Tensor::allocate(index.shape(), x.dtype(), x.device());
  if (x.device().is_cpu()) {
    cpu::check_index_range(index, x.size(dim), dim, "gather");
    cpu::gather(out, x, dim, index);
  } else if constexpr (has_cuda_kernel(Op::gather)) {
    cuda::check_index_range(index, x.size(dim), dim, "gather");
    cuda::gather(out, x, dim, index);
  } else {
    throw_unsupported(Op::gather, x.device());
  }
  return autograd::record("gather", out, {x},
                          [dim, idx = index, shape = x.shape()](const Tensor& dout, const std::vector<bool>&) -> GradList {
                            return {scatter_add(zeros(shape, {dout.dtype(), dout.device()}), dim, idx, dout)};
                          });
}

Tensor scatter_add(const Tensor& self, int64_t dim_in, const Tensor& index, const Tensor& src) {
  const int64_t dim = normalize_dim(dim_in, self.shape(), "scatter_add");
  check_index_tensor(Op::scatter_add, index, self);
  if (src.dtype() != self.dtype() || src.device() != self.device())
    fail("scatter_add", "src and self differ, " + describe("self", self) + " vs " + describe("src", src));
  check_fits("scatter_add", index, src, -1, "src");
  check_fits("scatter_add", index, self, dim, "self");
  Tensor out = self.detach().clone();
  if (self.device().is_cpu()) {
    cpu::check_index_range(index, self.size(dim), dim, "scatter_add");
    cpu::scatter_add(out, dim, index, src);
  } else if constexpr (has_cuda_kernel(Op::scatter_add)) {
    cuda::check_index_range(index, self.size(dim), dim, "scatter_add");
    cuda::scatter_add(out, dim, index, src);
  } else {
    throw_unsupported(Op::scatter_add, self.device());
  }
  return autograd::record("scatter_add", out, {self, src},
                          [dim, idx = index, src_shape = src.shape()](const Tensor& dout,
                                                                       const std::vector<bool>& needs) -> GradList {
                            GradList g(2);
                            if (needs[0]) g[0] = dout;
                            if (needs[1]) {
                              // gather gives index's shape; src may be larger (unused entries get 0).
                              Tensor part = gather(dout, dim, idx);
                              if (part.shape() == src_shape) {
                                g[1] = part;
                              } else {
                                g[1] = zeros(src_shape, {dout.dtype(), dout.device()});
                                Tensor region = g[1];
                                for (int64_t d = 0; d < part.dim(); ++d) region = region.narrow(d, 0, part.size(d));
                                copy_(region, part);
                              }
                            }
                            return g;
                          });
}

Tensor index_select(const Tensor& x, int64_t dim_in, const Tensor& idx) {
  const int64_t dim = normalize_dim(dim_in, x.shape(), "index_select");
  check_index_tensor(Op::index_select, idx, x);
  if (idx.dim() != 1) fail("index_select", "index must be 1-d, got " + describe("index", idx));
  Shape shape = x.shape();
  shape[dim] = idx.numel();
  Tensor out = Tensor::allocate(shape, x.dtype(), x.device());
  if (x.device().is_cpu()) {
    cpu::check_index_range(idx, x.size(dim), dim, "index_select");
    cpu::index_select(out, x.detach(), dim, idx);
  } else if constexpr (has_cuda_kernel(Op::index_select)) {
    cuda::check_index_range(idx, x.size(dim), dim, "index_select");
    cuda::index_select(out, x.detach(), dim, idx);
  } else {
    throw_unsupported(Op::index_select, x.device());
  }
  return autograd::record("index_select", out, {x},
                          [dim, idx, shape = x.shape()](const Tensor& dout, const std::vector<bool>&) -> GradList {
                            return {index_add(zeros(shape, {dout.dtype(), dout.device()}), dim, idx, dout)};
                          });
}

Tensor index_add(const Tensor& self, int64_t dim_in, const Tensor& idx, const Tensor& src) {
  const int64_t dim = normalize_dim(dim_in, self.shape(), "index_add");
  check_index_tensor(Op::index_add, idx, self);
  if (idx.dim() != 1) fail("index_add", "index must be 1-d, got " + describe("index", idx));
  if (src.dtype() != self.dtype() || src.device() != self.device())
    fail("index_add", "src and self differ, " + describe("self", self) + " vs " + describe("src", src));
  Shape expect = self.shape();
  expect[dim] = idx.numel();
  if (src.shape() != expect)
    fail("index_add", "src must have shape " + shape_str(expect) + " (self " + shape_str(self.shape()) +
                          " with dim " + std::to_string(dim) + " of the index's length), got " + shape_str(src.shape()));
  Tensor out = self.detach().clone();
  if (self.device().is_cpu()) {
    cpu::check_index_range(idx, self.size(dim), dim, "index_add");
    cpu::index_add(out, dim, idx, src.detach());
  } else if constexpr (has_cuda_kernel(Op::index_add)) {
    cuda::check_index_range(idx, self.size(dim), dim, "index_add");
    cuda::index_add(out, dim, idx, src.detach());
  } else {
    throw_unsupported(Op::index_add, self.device());
  }
  return autograd::record("index_add", out, {self, src},
                          [dim, idx](const Tensor& dout, const std::vector<bool>& needs) -> GradList {
                            return {needs[0] ? dout : Tensor(), needs[1] ? index_select(dout, dim, idx) : Tensor()};
                          });
}

}  // namespace mila
