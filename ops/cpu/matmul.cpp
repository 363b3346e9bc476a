// matmul.cpp - CPU batched matrix product: one GEMM call per batch item, operands passed by
// their strides (a transposed or broadcast view is never copied).
#include "ops/cpu/matmul.h"

#include "ops/cpu/gemm.h"
#include "ops/cpu/parallel.h"

namespace mila::cpu {
namespace {

// Element offset of batch item `index` in a tensor whose leading dims are the batch dims.
int64_t batch_offset(int64_t index, const Shape& batch, const Shape& strides) {
  int64_t off = 0;
  for (size_t d = batch.size(); d-- > 0;) {
    off += (index % batch[d]) * strides[d];
    index /= batch[d];
  }
  return off;
}

}  // namespace

void batched_matmul(const Tensor& out, const Tensor& a, const Tensor& b) {
  const int64_t nd = out.dim();
  const int64_t m = out.size(nd - 2), n = out.size(nd - 1), k = a.size(nd - 1);
  const Shape batch(out.shape().begin(), out.shape().end() - 2);
  const int64_t count = numel_of(batch);
  const int64_t a_rs = a.stride(nd - 2), a_cs = a.stride(nd - 1), b_rs = b.stride(nd - 2), b_cs = b.stride(nd - 1);
  dispatch_floating(out.dtype(), "matmul", [&]<typename T>() {
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    T* cp = out.data<T>();
    auto one = [&](int64_t i) {
      const T* ai = ap + batch_offset(i, batch, a.strides());
      const T* bi = bp + batch_offset(i, batch, b.strides());
      T* ci = cp + i * m * n;
      if constexpr (std::is_same_v<T, float>)
        gemm_f32({m, n, k, 1.f, ai, a_rs, a_cs, bi, b_rs, b_cs, 0.f, ci, n});
      else
        gemm_f64({m, n, k, 1.0, ai, a_rs, a_cs, bi, b_rs, b_cs, 0.0, ci, n});
    };
    // Many small products: one thread per item. Few large ones: GEMM threads inside each.
    // Either way each item is one GEMM call, so results do not depend on the thread count.
    if (count > 1 && m * n * k < (int64_t(1) << 21)) {
      parallel_for(count, std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(1, m * n * k)),
                   [&](int64_t begin, int64_t end) {
                     for (int64_t i = begin; i < end; ++i) one(i);
                   });
    } else {
      for (int64_t i = 0; i < count; ++i) one(i);
    }
  });
}

}  // namespace mila::cpu
