// loops.h - strided iteration shared by the CPU elementwise, copy and reduction kernels.
//
// An op's output is contiguous (it is freshly allocated) or an arbitrary strided view
// (copy_ into a slice); inputs are arbitrary views, already broadcast to the output's shape
// with stride 0 on broadcast dims. The iteration walks "rows" (the innermost dim) so that
// the inner loop is a plain strided loop the compiler vectorizes when strides are 1.
#pragma once

#include <array>
#include <cstdint>

#include "ops/cpu/coalesce.h"
#include "ops/cpu/parallel.h"
#include "tensor/tensor.h"

namespace mila::cpu {

// Calls row(offsets, len, inner_strides) for every innermost row of `shape`, where
// offsets[k] is operand k's element offset at the row's start. Rows run in parallel.
template <size_t N, typename F>
void for_each_row(Shape shape, std::array<Shape, N> strides, F&& row) {
  for (int64_t d : shape)
    if (d == 0) return;
  coalesce_dims(shape, strides);
  if (shape.empty()) {  // 0-d: one element
    std::array<int64_t, N> zero{};
    std::array<int64_t, N> unit{};
    row(zero, int64_t(1), unit);
    return;
  }
  const size_t nd = shape.size();
  const int64_t inner = shape[nd - 1];
  std::array<int64_t, N> inner_strides;
  for (size_t k = 0; k < N; ++k) inner_strides[k] = strides[k][nd - 1];
  const int64_t rows = numel_of(shape) / inner;
  parallel_for(rows, std::max<int64_t>(1, kElementwiseGrain / inner), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      std::array<int64_t, N> off{};
      int64_t rem = r;
      for (size_t d = nd - 1; d-- > 0;) {  // unravel r over the outer dims
        const int64_t i = rem % shape[d];
        rem /= shape[d];
        for (size_t k = 0; k < N; ++k) off[k] += i * strides[k][d];
      }
      row(off, inner, inner_strides);
    }
  });
}

// out[i] = f(a[i]) over out's shape; `a` is broadcast to it.
template <typename TO, typename TA, typename F>
void unary_loop(const Tensor& out, const Tensor& a, F&& f) {
  TO* po = out.data<TO>();
  const TA* pa = a.data<TA>();
  for_each_row<2>(out.shape(), {out.strides(), broadcast_strides(a.shape(), a.strides(), out.shape())},
                  [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                    TO* o = po + off[0];
                    const TA* x = pa + off[1];
                    if (st[0] == 1 && st[1] == 1) {
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i]);
                    } else {
                      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(x[i * st[1]]);
                    }
                  });
}

// out[i] = f(a[i], b[i]) over out's shape; `a` and `b` are broadcast to it.
template <typename TO, typename TA, typename TB, typename F>
void binary_loop(const Tensor& out, const Tensor& a, const Tensor& b, F&& f) {
  TO* po = out.data<TO>();
  const TA* pa = a.data<TA>();
  const TB* pb = b.data<TB>();
  for_each_row<3>(out.shape(),
                  {out.strides(), broadcast_strides(a.shape(), a.strides(), out.shape()),
                   broadcast_strides(b.shape(), b.strides(), out.shape())},
                  [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
                    TO* o = po + off[0];
                    const TA* x = pa + off[1];
                    const TB* y = pb + off[2];
                    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
                    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {  // tensor op scalar / bias
                      const TB y0 = y[0];
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y0);
                    } else {
                      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(x[i * st[1]], y[i * st[2]]);
                    }
                  });
}

// out[i] = f(a[i], b[i], c[i]) (where, clamp-like ops).
template <typename TO, typename TA, typename TB, typename TC, typename F>
void ternary_loop(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c, F&& f) {
  TO* po = out.data<TO>();
  const TA* pa = a.data<TA>();
  const TB* pb = b.data<TB>();
  const TC* pc = c.data<TC>();
  for_each_row<4>(out.shape(),
                  {out.strides(), broadcast_strides(a.shape(), a.strides(), out.shape()),
                   broadcast_strides(b.shape(), b.strides(), out.shape()),
                   broadcast_strides(c.shape(), c.strides(), out.shape())},
                  [&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& st) {
                    for (int64_t i = 0; i < n; ++i)
                      po[off[0] + i * st[0]] = f(pa[off[1] + i * st[1]], pb[off[2] + i * st[2]], pc[off[3] + i * st[3]]);
                  });
}

// Calls line(offsets) for every line of `shape` along `dim`, where offsets[k] is operand
// k's element offset at the start of the line (coordinate 0 along dim).
template <size_t N, typename F>
void for_each_line(const Shape& shape, int64_t dim, const std::array<const Shape*, N>& strides, F&& line) {
  Shape outer;
  std::array<Shape, N> outer_strides;
  for (int64_t d = 0; d < int64_t(shape.size()); ++d) {
    if (d == dim) continue;
    outer.push_back(shape[d]);
    for (size_t k = 0; k < N; ++k) outer_strides[k].push_back((*strides[k])[d]);
  }
  const int64_t lines = numel_of(outer), len = shape[dim];
  if (lines == 0 || len == 0) return;
  parallel_for(lines, std::max<int64_t>(1, kElementwiseGrain / len), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      std::array<int64_t, N> off{};
      int64_t rem = r;
      for (size_t d = outer.size(); d-- > 0;) {
        const int64_t i = rem % outer[d];
        rem /= outer[d];
        for (size_t k = 0; k < N; ++k) off[k] += i * outer_strides[k][d];
      }
      line(off);
    }
  });
}

}  // namespace mila::cpu
