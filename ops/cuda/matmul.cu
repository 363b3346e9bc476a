// matmul.cu - the batched matrix product on the GPU (ops/cuda/matmul.h): describes the
// operands to the GEMM (ops/cuda/gemm.h) by their strides, as a BLAS would read them.
//
// The op layer has already expanded a's and b's batch dims to out's (stride 0 where
// broadcast). A matrix whose rows or columns are contiguous is read in place, transposed or
// not, with its row or column stride as the leading dimension; only a matrix with no unit
// stride (a view of every other column, say) is copied, and then only its distinct
// batch items: a broadcast batch dim stays broadcast.
#include "ops/cuda/matmul.h"

#include <algorithm>

#include "ops/cuda/copy.h"
#include "ops/cuda/gemm.h"
#include "ops/cuda/runtime.h"

namespace mila::cuda {
namespace {

// How a BLAS reads a rows x cols matrix with strides (rs, cs): row-major with ld = rs,
// column-major (transposed) with ld = cs, or not at all. BLAS also wants ld >= the
// contiguous extent, so that rows (columns) do not overlap. The stride of a dim of size 1
// is never used, so such a dim fits either layout.
struct BlasLayout {
  bool readable = false;
  bool transposed = false;
  int64_t ld = 0;
};

BlasLayout blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  if (cs == 1 || cols == 1) {
    const int64_t ld = rows == 1 ? std::max<int64_t>(cols, 1) : rs;
    if (ld >= std::max<int64_t>(cols, 1)) return {true, false, ld};
  }
  if (rs == 1 || rows == 1) {
    const int64_t ld = cols == 1 ? std::max<int64_t>(rows, 1) : cs;
    if (ld >= std::max<int64_t>(rows, 1)) return {true, true, ld};
  }
  return {};
}

BlasLayout blas_layout(const Tensor& x) {
  return blas_layout(x.size(-2), x.size(-1), x.stride(-2), x.stride(-1));
}

// x itself when a BLAS can read its matrices, else a row-major copy of them. Batch dims
// with stride 0 are copied once and stay broadcast in the result.
Tensor blas_readable(const Tensor& x) {
  if (blas_layout(x).readable) return x;
  Shape distinct = x.shape(), strides = x.strides();
  for (int64_t d = 0; d + 2 < x.dim(); ++d)
    if (strides[size_t(d)] == 0) distinct[size_t(d)] = 1;
  const Tensor source = Tensor::make_view(x, distinct, strides, x.offset());
  const Tensor dense = Tensor::allocate(distinct, x.dtype(), x.device());
  cuda::copy(dense, source);
  Shape dense_strides = dense.strides();
  for (int64_t d = 0; d + 2 < x.dim(); ++d)
    if (strides[size_t(d)] == 0) dense_strides[size_t(d)] = 0;
  return Tensor::make_view(dense, x.shape(), dense_strides, 0);
}

template <typename T>
GemmOperand<T> operand(const Tensor& x) {
  const BlasLayout layout = blas_layout(x);
  return {ptr<const T>(x), layout.ld, layout.transposed, Shape(x.strides().begin(), x.strides().end() - 2)};
}

}  // namespace

void batched_matmul(const Tensor& out, const Tensor& a, const Tensor& b) {
  const int64_t nd = out.dim();
  if (out.numel() == 0) return;
  // A copy made here is freed on return, after the GEMM is queued behind it on the stream.
  const Tensor ar = blas_readable(a), br = blas_readable(b);
  dispatch_floating(out.dtype(), "matmul", [&]<typename T>() {
    GemmArgs<T> args{};
    args.m = out.size(nd - 2), args.n = out.size(nd - 1), args.k = a.size(nd - 1);
    args.a = operand<T>(ar);
    args.b = operand<T>(br);
    args.c = ptr<T>(out);
    args.ldc = args.n;
    args.c_batch_stride = args.m * args.n;
    args.batch = Shape(out.shape().begin(), out.shape().end() - 2);
    gemm(args);
  });
}

}  // namespace mila::cuda
