// softmax.cu - softmax and log_softmax, forward and backward, on the GPU, with the contract
// and the arithmetic of ops/cpu/softmax.cpp: per line along `dim`, the maximum m of the
// line (NaNs skipped; 0 when every element is -inf), the exponentials exp(x - m) in the
// input's type, their total in double; then exp(x - m) * (1 / total) or
// (x - m) - log(total). Backward sums g * y (softmax) or g (log_softmax) in double.
//
// A "line" is the set of elements that differ only in their coordinate along dim; lines are
// numbered row-major over the other dims and found through a StridedIndexer per tensor
// (its offset of the line's first element) and the tensor's stride along dim. Inputs may
// have any strides (dout is often expanded); outputs are contiguous.
//
// Two kernels, as in ops/cuda/reduce.cu:
//   rows:    a block per line, its threads side by side along the line (dim contiguous in
//            memory, lines of at least a warp); the line's maximum and total are block
//            reductions in the fixed tree of ops/cuda/block_reduce.h;
//   columns: a thread per line, in order along it (dim strided, or short lines): neighbouring
//            threads read neighbouring lines, which are what is contiguous then.
// Either way the order of every sum is fixed by the shape (Note [deterministic reductions]
// in ops/cuda/reduce.cu), so a result has the same bits on every run.
#include "ops/cuda/softmax.h"

#include <algorithm>
#include <cstdlib>

#include "ops/cuda/block_reduce.h"
#include "ops/cuda/runtime.h"
#include "ops/op_list.h"

namespace mila::cuda {
namespace {

__device__ __forceinline__ float exp_of(float x) { return expf(x); }
__device__ __forceinline__ double exp_of(double x) { return exp(x); }

// The CPU kernel's running maximum, std::max(m, x): a NaN x leaves m as it is.
template <typename T>
__device__ __forceinline__ T larger(T m, T x) {
  return m < x ? x : m;
}

template <typename T>
struct MaxOf {
  using Acc = T;
  __device__ static Acc identity() { return -Acc(INFINITY); }
  __device__ static Acc combine(Acc a, Acc b) { return larger(a, b); }
  __device__ static Acc shuffle_down(Acc a, int offset) { return __shfl_down_sync(kFullMask, a, offset); }
};

struct SumOf {
  using Acc = double;
  __device__ static Acc identity() { return 0.0; }
  __device__ static Acc combine(Acc a, Acc b) { return a + b; }
  __device__ static Acc shuffle_down(Acc a, int offset) { return __shfl_down_sync(kFullMask, a, offset); }
};

// One tensor seen as lines along dim: the offset of line l's first element, and the step.
struct Lines {
  StridedIndexer start;
  int64_t step;
};

// The shift that keeps exp(x - m) finite: the line's maximum, or 0 when it is -inf (every
// element -inf), so that exp(-inf - 0) = 0 rather than exp(-inf + inf) = NaN.
template <typename T>
__device__ __forceinline__ T safe_shift(T m) {
  return m == -T(INFINITY) ? T(0) : m;
}

// ---- forward -------------------------------------------------------------------------------

template <typename T>
__global__ void softmax_forward_rows_kernel(const T* x, Lines xl, T* out, Lines ol, int64_t n_lines, int64_t len,
                                            bool log) {
  __shared__ ReduceSlots<T> max_slots;
  __shared__ ReduceSlots<double> sum_slots;
  for (int64_t line = blockIdx.x; line < n_lines; line += gridDim.x) {
    const T* xp = x + xl.start.offset(line);
    T* op = out + ol.start.offset(line);
    T m = MaxOf<T>::identity();
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) m = larger(m, xp[j * xl.step]);
    m = safe_shift(block_reduce<MaxOf<T>>(m, max_slots.span()));
    double total = 0;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) total += double(exp_of(xp[j * xl.step] - m));
    total = block_reduce<SumOf>(total, sum_slots.span());
    const T lse = T(::log(total)), inv = T(1.0 / total);
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
      const T shifted = xp[j * xl.step] - m;
      // (x - m) - log(total), not x - (m + log(total)): see ops/cpu/softmax.cpp.
      op[j * ol.step] = log ? shifted - lse : exp_of(shifted) * inv;
    }
  }
}

template <typename T>
__global__ void softmax_forward_columns_kernel(const T* x, Lines xl, T* out, Lines ol, int64_t n_lines, int64_t len,
                                               bool log) {
  for (int64_t line = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; line < n_lines;
       line += int64_t(gridDim.x) * blockDim.x) {
    const T* xp = x + xl.start.offset(line);
    T* op = out + ol.start.offset(line);
    T m = MaxOf<T>::identity();
    for (int64_t j = 0; j < len; ++j) m = larger(m, xp[j * xl.step]);
    m = safe_shift(m);
    double total = 0;
    for (int64_t j = 0; j < len; ++j) total += double(exp_of(xp[j * xl.step] - m));
    const T lse = T(::log(total)), inv = T(1.0 / total);
    for (int64_t j = 0; j < len; ++j) {
      const T shifted = xp[j * xl.step] - m;
      op[j * ol.step] = log ? shifted - lse : exp_of(shifted) * inv;
    }
  }
}

// ---- backward ------------------------------------------------------------------------------
//   softmax:     dx = y * (g - sum_j g_j y_j)
//   log_softmax: dx = g - exp(y) * sum_j g_j

template <typename T>
__device__ __forceinline__ double backward_term(T g, T y, bool log) {
  return log ? double(g) : double(g) * double(y);
}

template <typename T>
__device__ __forceinline__ T backward_value(T g, T y, T dot, bool log) {
  return log ? g - exp_of(y) * dot : y * (g - dot);
}

template <typename T>
__global__ void softmax_backward_rows_kernel(const T* dout, Lines gl, const T* y, Lines yl, T* dx, Lines dl,
                                             int64_t n_lines, int64_t len, bool log) {
  __shared__ ReduceSlots<double> sum_slots;
  for (int64_t line = blockIdx.x; line < n_lines; line += gridDim.x) {
    const T* gp = dout + gl.start.offset(line);
    const T* yp = y + yl.start.offset(line);
    T* dp = dx + dl.start.offset(line);
    double dot = 0;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) dot += backward_term(gp[j * gl.step], yp[j * yl.step], log);
    const T dot_t = T(block_reduce<SumOf>(dot, sum_slots.span()));
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x)
      dp[j * dl.step] = backward_value(gp[j * gl.step], yp[j * yl.step], dot_t, log);
  }
}

template <typename T>
__global__ void softmax_backward_columns_kernel(const T* dout, Lines gl, const T* y, Lines yl, T* dx, Lines dl,
                                                int64_t n_lines, int64_t len, bool log) {
  for (int64_t line = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; line < n_lines;
       line += int64_t(gridDim.x) * blockDim.x) {
    const T* gp = dout + gl.start.offset(line);
    const T* yp = y + yl.start.offset(line);
    T* dp = dx + dl.start.offset(line);
    double dot = 0;
    for (int64_t j = 0; j < len; ++j) dot += backward_term(gp[j * gl.step], yp[j * yl.step], log);
    const T dot_t = T(dot);
    for (int64_t j = 0; j < len; ++j) dp[j * dl.step] = backward_value(gp[j * gl.step], yp[j * yl.step], dot_t, log);
  }
}

// ---- launch (host) -------------------------------------------------------------------------

constexpr int64_t kMaxBlocks = 65535 * 32;  // grid-stride loops above this (as blocks_for)

Op op_of(bool log) { return log ? Op::log_softmax : Op::softmax; }

Lines lines_of(const Tensor& t, int64_t dim, const char* op) {
  Shape shape = t.shape(), strides = t.strides();
  shape.erase(shape.begin() + dim);
  strides.erase(strides.begin() + dim);
  return {make_indexer(shape, strides, op), t.stride(dim)};
}

// Whether a block per line (rows) suits x: lines of at least a warp whose elements are at
// least as close in memory as the first elements of neighbouring lines.
bool use_rows(const Tensor& x, int64_t dim) {
  const int64_t len = x.size(dim), n_lines = x.numel() / len;
  if (n_lines == 1) return true;
  if (len < kWarpSize) return false;
  int64_t line_step = 0;  // stride of the fastest-varying other dim that varies
  for (int64_t d = x.dim() - 1; d >= 0; --d)
    if (d != dim && x.size(d) > 1) {
      line_step = std::llabs(x.stride(d));
      break;
    }
  return std::llabs(x.stride(dim)) <= line_step;
}

dim3 rows_grid(int64_t n_lines) { return dim3(unsigned(std::min(n_lines, kMaxBlocks))); }
dim3 columns_grid(int64_t n_lines) { return dim3(unsigned(blocks_for(n_lines))); }

}  // namespace

void softmax_forward(const Tensor& out, const Tensor& x, int64_t dim, bool log) {
  if (!supports(op_of(log), out.device())) throw_unsupported(op_of(log), out.device());
  if (x.numel() == 0) return;
  const char* name = op_name(op_of(log));
  const int64_t len = x.size(dim), n_lines = x.numel() / len;
  const Lines xl = lines_of(x, dim, name), ol = lines_of(out, dim, name);
  dispatch_floating(x.dtype(), name, [&]<typename T>() {
    if (use_rows(x, dim))
      MILA_LAUNCH(softmax_forward_rows_kernel<T>, rows_grid(n_lines), dim3(unsigned(threads_for_line(len))), 0,
                  ptr<const T>(x), xl, ptr<T>(out), ol, n_lines, len, log);
    else
      MILA_LAUNCH(softmax_forward_columns_kernel<T>, columns_grid(n_lines), dim3(256), 0, ptr<const T>(x), xl,
                  ptr<T>(out), ol, n_lines, len, log);
  });
}

void softmax_backward(const Tensor& dx, const Tensor& dout, const Tensor& y, int64_t dim, bool log) {
  if (!supports(op_of(log), dx.device())) throw_unsupported(op_of(log), dx.device());
  if (y.numel() == 0) return;
  const char* name = op_name(op_of(log));
  const int64_t len = y.size(dim), n_lines = y.numel() / len;
  const Lines gl = lines_of(dout, dim, name), yl = lines_of(y, dim, name), dl = lines_of(dx, dim, name);
  dispatch_floating(y.dtype(), name, [&]<typename T>() {
    // y and dx (contiguous) are two of the three tensors walked: their layout picks the kernel.
    if (use_rows(y, dim))
      MILA_LAUNCH(softmax_backward_rows_kernel<T>, rows_grid(n_lines), dim3(unsigned(threads_for_line(len))), 0,
                  ptr<const T>(dout), gl, ptr<const T>(y), yl, ptr<T>(dx), dl, n_lines, len, log);
    else
      MILA_LAUNCH(softmax_backward_columns_kernel<T>, columns_grid(n_lines), dim3(256), 0, ptr<const T>(dout), gl,
                  ptr<const T>(y), yl, ptr<T>(dx), dl, n_lines, len, log);
  });
}

}  // namespace mila::cuda
