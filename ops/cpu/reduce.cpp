// reduce.cpp - CPU reductions.
//
// The input is seen as kept dims K and reduced dims R. Output element o is the reduction,
// in row-major order over R, of the inputs at base(o) + offset(r). Every output is reduced
// by one thread in that fixed order; a single large reduction (R big, few outputs) is split
// into chunks of a fixed size whose partial results combine in order. Neither depends on
// the thread count, so results are bitwise reproducible.
#include "ops/cpu/reduce.h"

#include <cmath>
#include <vector>

#include "ops/cpu/loops.h"

namespace mila::cpu {
namespace {

struct Split {
  Shape kept_shape, kept_strides;  // output iteration
  Shape red_shape, red_strides;    // reduction iteration, coalesced
};

Split split_dims(const Tensor& in, const Shape& dims) {
  Split s;
  std::vector<bool> reduced(in.dim(), false);
  for (int64_t d : dims) reduced[d] = true;
  for (int64_t d = 0; d < in.dim(); ++d) {
    (reduced[d] ? s.red_shape : s.kept_shape).push_back(in.shape()[d]);
    (reduced[d] ? s.red_strides : s.kept_strides).push_back(in.strides()[d]);
  }
  std::array<Shape, 1> st{s.red_strides};
  coalesce_dims<1>(s.red_shape, st);
  s.red_strides = st[0];
  return s;
}

int64_t offset_of(int64_t index, const Shape& shape, const Shape& strides) {
  int64_t off = 0;
  for (size_t d = shape.size(); d-- > 0;) {
    off += (index % shape[d]) * strides[d];
    index /= shape[d];
  }
  return off;
}

// Calls visit(offset_of_r) for r in [r0, r1) of the reduced iteration, in order.
template <typename F>
void for_reduced(const Split& s, int64_t r0, int64_t r1, F&& visit) {
  if (s.red_shape.size() <= 1) {
    const int64_t st = s.red_shape.empty() ? 0 : s.red_strides[0];
    for (int64_t r = r0; r < r1; ++r) visit(r * st);
    return;
  }
  for (int64_t r = r0; r < r1; ++r) visit(offset_of(r, s.red_shape, s.red_strides));
}

constexpr int64_t kSumChunk = 1 << 15;  // fixed split of one large reduction (see file comment)

template <typename T, typename Acc>
void sum_kernel(const Tensor& out, const Tensor& in, const Shape& dims) {
  const Split s = split_dims(in, dims);
  const T* x = in.data<T>();
  T* y = out.data<T>();
  const int64_t n_out = numel_of(s.kept_shape), n_red = numel_of(s.red_shape);
  if (n_red == 0) {
    for (int64_t o = 0; o < n_out; ++o) y[o] = T(0);
    return;
  }
  if (n_out == 1 && n_red > 2 * kSumChunk) {
    const int64_t chunks = (n_red + kSumChunk - 1) / kSumChunk;
    std::vector<Acc> partial(chunks, Acc(0));
    const int64_t base = offset_of(0, s.kept_shape, s.kept_strides);
    parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        Acc acc = 0;
        for_reduced(s, c * kSumChunk, std::min(n_red, (c + 1) * kSumChunk), [&](int64_t off) { acc += Acc(x[base + off]); });
        partial[c] = acc;
      }
    });
    Acc total = 0;
    for (Acc p : partial) total += p;
    y[0] = T(total);
    return;
  }
  // A reduction of outer dims over a contiguous inner block (bias gradients, sums over the
  // batch): accumulate whole rows so the inner loop runs over stride-1 memory. The per-output
  // order is still r = 0, 1, ..., so the bits equal the general path's.
  const bool rows = s.kept_shape.size() >= 1 && s.kept_strides.back() == 1 && s.red_shape.size() == 1 &&
                    s.red_strides[0] >= s.kept_shape.back() && s.kept_shape.size() == 1;
  if (rows) {
    const int64_t width = s.kept_shape[0], st = s.red_strides[0];
    parallel_for(width, 256, [&](int64_t o0, int64_t o1) {
      std::vector<Acc> acc(o1 - o0, Acc(0));
      for (int64_t r = 0; r < n_red; ++r) {
        const T* row = x + r * st;
        for (int64_t o = o0; o < o1; ++o) acc[o - o0] += Acc(row[o]);
      }
      for (int64_t o = o0; o < o1; ++o) y[o] = T(acc[o - o0]);
    });
    return;
  }
  parallel_for(n_out, std::max<int64_t>(1, kElementwiseGrain / n_red), [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      const int64_t base = offset_of(o, s.kept_shape, s.kept_strides);
      Acc acc = 0;
      for_reduced(s, 0, n_red, [&](int64_t off) { acc += Acc(x[base + off]); });
      y[o] = T(acc);
    }
  });
}

}  // namespace

void sum(const Tensor& out, const Tensor& in, const Shape& dims) {
  switch (in.dtype()) {
    case DType::Float32: return sum_kernel<float, double>(out, in, dims);
    case DType::Float64: return sum_kernel<double, double>(out, in, dims);
    case DType::Int64: return sum_kernel<int64_t, int64_t>(out, in, dims);
    default: throw std::invalid_argument(std::string("cpu::sum: unsupported dtype ") + dtype_name(in.dtype()));
  }
}

void max(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t dim) {
  const Split s = split_dims(in, {dim});
  const int64_t n_out = numel_of(s.kept_shape), n = in.shape()[dim], st = in.strides()[dim];
  int64_t* idx = indices.data<int64_t>();
  dispatch_arithmetic(in.dtype(), "max", [&]<typename T>() {
    const T* x = in.data<T>();
    T* v = values.data<T>();
    parallel_for(n_out, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(n, 1)), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        const T* p = x + offset_of(o, s.kept_shape, s.kept_strides);
        T best = p[0];
        int64_t best_i = 0;
        for (int64_t i = 1; i < n; ++i) {
          const T c = p[i * st];
          if (best != best) break;               // NaN found: it stays the maximum
          if (c > best || c != c) best = c, best_i = i;  // strict >: the first maximum wins ties
        }
        v[o] = best;
        idx[o] = best_i;
      }
    });
  });
}

}  // namespace mila::cpu
