// index.cpp - CPU gather / scatter_add / index_select / index_add.
//
// gather and scatter_add walk the index tensor as "lines" along `dim`: every line fixes the
// coordinates of the other dims, so two lines never touch the same output element and can
// run on different threads, while the accumulation inside a line stays in index order.
#include "ops/cpu/index.h"

#include <stdexcept>
#include <string>

#include "ops/cpu/binary.h"
#include "ops/cpu/copy.h"
#include "ops/cpu/loops.h"

namespace mila::cpu {

void check_index_range(const Tensor& idx, int64_t size, int64_t dim, const char* op) {
  const int64_t* p = idx.data<int64_t>();
  bool bad = false;
  int64_t bad_value = 0;
  std::array<Shape, 1> st{idx.strides()};
  // Serial scan: cheap next to the op, and keeps the throw outside parallel regions.
  Shape shape = idx.shape();
  coalesce_dims<1>(shape, st);
  const int64_t n = idx.numel();
  for (int64_t e = 0; e < n && !bad; ++e) {
    int64_t off = 0, rem = e;
    for (size_t d = shape.size(); d-- > 0;) {
      off += (rem % shape[d]) * st[0][d];
      rem /= shape[d];
    }
    const int64_t v = p[off];
    if (v < 0 || v >= size) bad = true, bad_value = v;
  }
  if (bad)
    throw std::out_of_range(std::string(op) + ": index " + std::to_string(bad_value) + " is out of range for dim " +
                            std::to_string(dim) + " of size " + std::to_string(size));
}

void gather(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) {
  dispatch_all(x.dtype(), [&]<typename T>() {
    const int64_t* ip = index.data<int64_t>();
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    const int64_t is = index.stride(dim), xs = x.stride(dim), os = out.stride(dim), len = index.size(dim);
    for_each_line<3>(index.shape(), dim, {&index.strides(), &x.strides(), &out.strides()}, [&](const auto& off) {
      for (int64_t j = 0; j < len; ++j) op[off[2] + j * os] = xp[off[1] + ip[off[0] + j * is] * xs];
    });
  });
}

void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  dispatch_arithmetic(out.dtype(), "scatter_add", [&]<typename T>() {
    const int64_t* ip = index.data<int64_t>();
    const T* sp = src.data<T>();
    T* op = out.data<T>();
    const int64_t is = index.stride(dim), ss = src.stride(dim), os = out.stride(dim), len = index.size(dim);
    for_each_line<3>(index.shape(), dim, {&index.strides(), &src.strides(), &out.strides()}, [&](const auto& off) {
      for (int64_t j = 0; j < len; ++j) op[off[2] + ip[off[0] + j * is] * os] += sp[off[1] + j * ss];
    });
  });
}

namespace {

// The slice t[..., i, ...] at `dim` (dim removed) as a plain view: a kernel's plumbing,
// made with the tensor layer's make_view so that it records no graph.
Tensor slice_at(const Tensor& t, int64_t dim, int64_t i) {
  Shape shape = t.shape(), strides = t.strides();
  shape.erase(shape.begin() + dim);
  strides.erase(strides.begin() + dim);
  return Tensor::make_view(t, std::move(shape), std::move(strides), t.offset() + i * t.stride(dim));
}

}  // namespace

void index_select(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& idx) {
  const int64_t* ip = idx.data<int64_t>();
  const int64_t n = idx.numel(), s = idx.stride(0);
  for (int64_t i = 0; i < n; ++i) copy(slice_at(out, dim, i), slice_at(x, dim, ip[i * s]));
}

void index_add(const Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src) {
  const int64_t* ip = idx.data<int64_t>();
  const int64_t n = idx.numel(), s = idx.stride(0);
  // In index order, so repeated indices accumulate the same way on any thread count.
  for (int64_t i = 0; i < n; ++i) {
    const Tensor slot = slice_at(out, dim, ip[i * s]);
    binary_forward(Op::add, slot, slot, slice_at(src, dim, i));
  }
}

}  // namespace mila::cpu
