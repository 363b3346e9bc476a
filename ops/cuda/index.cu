// index.cu - gather, scatter_add, index_select and index_add on the GPU, and the device-side
// check of the index values (ops/index.h, with ops/cpu/index.h's contracts).
//
// Two kernels do all four ops:
//   gather_kernel      one thread per output element: out[i] = x[i with its `dim` coordinate
//                      replaced by index[i]]. No two threads write the same element.
//   accumulate_kernel  one thread per *line* of the index along `dim` (Note [deterministic
//                      scatter]): out[.., index[.., j, ..], ..] += src[.., j, ..], j ascending.
// index_select is gather with its 1-d index broadcast over the other dims, and index_add is
// scatter_add with it broadcast over src's shape: a view with stride 0 in every dim but
// `dim` (no copy), which is exactly the definition, idx[i] for every position whose `dim`
// coordinate is i.
//
// Note [deterministic scatter]. Repeated indices make several src elements add into one
// output element. A thread per src element with a float atomicAdd would be fast, but the
// order of the additions would then depend on scheduling, and float addition is not
// associative: the result would change in its last bits from run to run. Instead one
// thread owns a whole line, all positions that differ only along `dim`. Every output
// element that line can write has the line's coordinates outside `dim`, so no other thread
// writes it (no conflicts, no atomics), and the thread adds in ascending j, the order the
// CPU kernel uses: results are bit-identical on every run, and equal to the CPU's.
// The cost is that the work along `dim` is serial: a thread does index.size(dim) additions,
// and there are only numel / size(dim) threads, so a long `dim` with few lines (an index_add
// over the rows of a [N, 8] matrix: 8 threads) leaves most of the GPU idle. The parallel
// deterministic alternative, PyTorch's for index_add and embedding backward, sorts the
// (index, position) pairs and reduces each run of equal indices in a fixed order; it pays
// a sort and more memory traffic. The scatter this project runs every step is max's backward
// (ops/reduce.cpp): one value per line, which the kernel here does fully in parallel.
//
// Note [index range check]. The index values live on the GPU, so the check that they are in
// [0, size) is a kernel too: every out-of-range value sets the context's error word
// (atomicCAS from 0, so the first writer wins), and the host reads the word back, which
// waits for the kernel. Only when it is set is the index copied to the host and scanned by
// cpu::check_index_range, which finds the first bad value in row-major order and throws the
// CPU path's std::out_of_range ("<op>: index v is out of range for dim d of size n"); the
// slow scan is on the error path only. The read-back synchronizes the stream once per op:
// the price of an exception at the call that caused it rather than a device-side assert
// that poisons the context, as PyTorch's does.
#include "ops/cuda/index.h"

#include <stdexcept>
#include <string>

#include "ops/cpu/index.h"
#include "ops/cuda/copy.h"
#include "ops/cuda/runtime.h"

namespace mila::cuda {
namespace {

constexpr int kThreads = 256;

// ---- kernels --------------------------------------------------------------------------------

// out[i] = x[xi.offset(i) + index[ii.offset(i)] * x_dim_stride] for i < n, where the
// indexers run over out's shape (= the index's) and xi has stride 0 along `dim`.
template <typename T>
__global__ void gather_kernel(T* out, StridedIndexer oi, const T* x, StridedIndexer xi, int64_t x_dim_stride,
                              const int64_t* index, StridedIndexer ii, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[oi.offset(i)] = x[xi.offset(i) + index[ii.offset(i)] * x_dim_stride];
}

// One thread per line (Note [deterministic scatter]). The indexers run over the lines (the
// index's shape with `dim` of size 1) and give each line's first element in out, src and
// the index; the *_dim_stride arguments step along `dim`, `len` = index.size(dim) times.
template <typename T>
__global__ void accumulate_kernel(T* out, StridedIndexer oi, int64_t out_dim_stride, const T* src, StridedIndexer si,
                                  int64_t src_dim_stride, const int64_t* index, StridedIndexer ii,
                                  int64_t index_dim_stride, int64_t len, int64_t lines) {
  for (int64_t l = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; l < lines; l += int64_t(gridDim.x) * blockDim.x) {
    T* out_line = out + oi.offset(l);
    const T* src_line = src + si.offset(l);
    const int64_t* index_line = index + ii.offset(l);
    for (int64_t j = 0; j < len; ++j)  // ascending j: the fixed order of the additions
      out_line[index_line[j * index_dim_stride] * out_dim_stride] += src_line[j * src_dim_stride];
  }
}

// Sets *error_word to `code` (if it is still 0) when some index value is outside [0, size).
__global__ void index_range_kernel(const int64_t* index, StridedIndexer ii, int64_t n, int64_t size, int* error_word,
                                   int code) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t v = index[ii.offset(i)];
    if (v < 0 || v >= size) atomicCAS(error_word, 0, code);
  }
}

// ---- launchers ------------------------------------------------------------------------------

// t's strides with the one along `dim` set to 0: the kernels add the `dim` term themselves.
Shape strides_without(const Tensor& t, int64_t dim) {
  Shape s = t.strides();
  s[size_t(dim)] = 0;
  return s;
}

// The 1-d index idx seen as a tensor of `shape` whose element at position p is idx[p[dim]].
Tensor broadcast_index(const Tensor& idx, const Shape& shape, int64_t dim) {
  Shape strides(shape.size(), 0);
  strides[size_t(dim)] = idx.stride(0);
  return Tensor::make_view(idx, shape, std::move(strides), idx.offset());
}

void gather_cuda(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index, const char* op) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const Shape& shape = index.shape();  // = out's shape
  const StridedIndexer oi = make_indexer(shape, out.strides(), op);
  const StridedIndexer xi = make_indexer(shape, strides_without(x, dim), op);
  const StridedIndexer ii = make_indexer(shape, index.strides(), op);
  dispatch_all(x.dtype(), [&]<typename T>() {
    MILA_LAUNCH(gather_kernel<T>, blocks_for(n, kThreads), kThreads, 0, ptr<T>(out), oi, ptr<const T>(x), xi,
                x.stride(dim), ptr<const int64_t>(index), ii, n);
  });
}

void accumulate_cuda(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, const char* op) {
  Shape lines_shape = index.shape();
  const int64_t len = lines_shape[size_t(dim)];
  lines_shape[size_t(dim)] = 1;
  const int64_t lines = numel_of(lines_shape);
  if (len == 0 || lines == 0) return;
  const StridedIndexer oi = make_indexer(lines_shape, out.strides(), op);
  const StridedIndexer si = make_indexer(lines_shape, src.strides(), op);
  const StridedIndexer ii = make_indexer(lines_shape, index.strides(), op);
  dispatch_arithmetic(out.dtype(), op, [&]<typename T>() {
    MILA_LAUNCH(accumulate_kernel<T>, blocks_for(lines, kThreads), kThreads, 0, ptr<T>(out), oi, out.stride(dim),
                ptr<const T>(src), si, src.stride(dim), ptr<const int64_t>(index), ii, index.stride(dim), len, lines);
  });
}

}  // namespace

void gather(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) {
  gather_cuda(out, x, dim, index, "gather");
}

void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  accumulate_cuda(out, dim, index, src, "scatter_add");
}

void index_select(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& idx) {
  gather_cuda(out, x, dim, broadcast_index(idx, out.shape(), dim), "index_select");
}

void index_add(const Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src) {
  accumulate_cuda(out, dim, broadcast_index(idx, src.shape(), dim), src, "index_add");
}

void check_index_range(const Tensor& idx, int64_t size, int64_t dim, const char* op) {
  const int64_t n = idx.numel();
  if (n == 0) return;
  const StridedIndexer ii = make_indexer(idx.shape(), idx.strides(), op);
  Context& ctx = context();
  int* word = ctx.error_word();  // reset to 0
  MILA_LAUNCH(index_range_kernel, blocks_for(n, kThreads), kThreads, 0, ptr<const int64_t>(idx), ii, n, size, word,
              int(DeviceError::index_out_of_range));
  try {
    ctx.check_error_word(std::string(op) + ": an index is out of range for dim " + std::to_string(dim) + " of size " +
                         std::to_string(size));
  } catch (const std::out_of_range&) {
    // Note [index range check]: name the first bad value as the CPU path does (this throws
    // std::out_of_range too). The host always finds one; should it not, the word's own message
    // (the op, the dim and the size) goes on.
    const Tensor host = Tensor::allocate(idx.shape(), DType::Int64, Device::cpu());
    cuda::copy(host, idx);  // device -> host
    cpu::check_index_range(host, size, dim, op);
    throw;
  }
}

}  // namespace mila::cuda
