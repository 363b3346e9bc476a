// reduce.cu - sum over any dims, and max (with its index) along one dim, on the GPU. The
// contract is ops/cpu/reduce.h's: `out`, `values`, `indices` are contiguous in the keepdim
// shape, the input has any strides; float32 and float64 sum in double, int64 in int64.
//
// Note [deterministic reductions]. The order in which a reduction combines its elements is
// fixed by the input's shape and the launch configuration only, and the launch
// configuration is itself a function of the shape (never of the device, the timing or the
// scheduling), so the same input gives bit-identical output on every run and every GPU:
//   - each thread accumulates a fixed, strided share of its slice, in index order;
//   - a block combines its threads' values in a fixed tree: warp shuffles, then the warps'
//     results through shared memory (ops/cuda/block_reduce.h);
//   - when one output has too many elements for one block, each block writes the partial
//     result of a fixed slice to the context's workspace and a second kernel combines each
//     output's partials in index order;
//   - never floating-point atomics, whose order of arrival changes from run to run.
// The emulator runs these kernels in the same order, so under -DMILA_CUDA=EMULATE a sum
// has the same bits as on a GPU. It differs from the CPU's (which adds in row-major order)
// by rounding only: the order is a tree, not a line.
//
// Shape legend. The input is seen as kept dims K (one output each, n_out in all) and
// reduced dims R (n_red elements per output), each group coalesced (size-1 dims dropped,
// neighbours that walk memory as one merged). Output o reduces the inputs at
// kept.offset(o) + red.offset(r) for r = 0 .. n_red - 1.
//
// Two kernels, chosen by where memory is contiguous:
//   rows:    a block per output (or per fixed slice of it), its threads side by side along
//            r: coalesced when the reduced dims are the contiguous ones (a sum over the last
//            dim, the full sum of a tensor).
//   columns: a thread per output, looping over r in order: coalesced when the kept dims are
//            the contiguous ones (a sum over the batch, over the rows of a matrix). With few
//            outputs, the r range is split into slices, one per block row (grid.y).
#include "ops/cuda/reduce.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/cuda/block_reduce.h"
#include "ops/cuda/runtime.h"

namespace mila::cuda {
namespace {

// ---- reducers (the interface of ops/cuda/block_reduce.h, plus lift) --------------------------
// R::lift(x, r) turns input element r of a slice into an Acc.

template <typename T, typename A>
struct SumReducer {
  using Acc = A;
  __device__ static Acc identity() { return Acc(0); }
  __device__ static Acc lift(T x, int64_t) { return Acc(x); }
  __device__ static Acc combine(Acc a, Acc b) { return a + b; }
  __device__ static Acc shuffle_down(Acc a, int offset) { return __shfl_down_sync(kFullMask, a, offset); }
};

// The maximum and its index along the reduced dim; index -1 marks "no element yet".
template <typename T>
struct ArgMax {
  T value;
  int64_t index;
};

// The CPU kernel's answer, whatever the order of combination: the first NaN if there is one
// (NaN counts as the largest value, PyTorch), else the first of the largest values. `beats`
// is a strict total order on (value, index) pairs, so the winner of any tree is the same.
template <typename T>
struct MaxReducer {
  using Acc = ArgMax<T>;
  __device__ static Acc identity() { return {T(0), -1}; }
  __device__ static Acc lift(T x, int64_t r) { return {x, r}; }
  __device__ static bool beats(const Acc& a, const Acc& b) {
    if (a.index < 0 || b.index < 0) return b.index < 0 && a.index >= 0;  // an empty slot loses
    const bool a_nan = a.value != a.value, b_nan = b.value != b.value;  // false for integers
    if (a_nan != b_nan) return a_nan;
    if (!a_nan && a.value != b.value) return a.value > b.value;
    return a.index < b.index;  // equal values, or both NaN: the first wins
  }
  __device__ static Acc combine(Acc a, Acc b) { return beats(b, a) ? b : a; }
  __device__ static Acc shuffle_down(Acc a, int offset) {
    return {__shfl_down_sync(kFullMask, a.value, offset), __shfl_down_sync(kFullMask, a.index, offset)};
  }
};

// The second pass reads partial results, which are Accs already.
template <typename R>
struct Partials : R {
  using Acc = typename R::Acc;
  __device__ static Acc lift(Acc a, int64_t) { return a; }
};

// ---- where results go: store(i, acc) ------------------------------------------------------

template <typename Acc>
struct PartialSink {
  Acc* partials;
  __device__ void store(int64_t i, Acc a) const { partials[i] = a; }
};

template <typename T, typename Acc>
struct SumSink {
  T* out;
  __device__ void store(int64_t i, Acc a) const { out[i] = T(a); }
};

template <typename T>
struct MaxSink {
  T* values;
  int64_t* indices;
  __device__ void store(int64_t i, ArgMax<T> a) const {
    values[i] = a.value;
    indices[i] = a.index;
  }
};

// Offset of element i; one dim (the common case after coalescing) without a division.
__device__ __forceinline__ int64_t offset_of(const StridedIndexer& ix, int64_t i) {
  return ix.nd == 1 ? i * ix.strides[0] : ix.offset(i);
}

// ---- kernels ---------------------------------------------------------------------------

// Task t = (o, c) = (t / chunks, t % chunks) reduces r in [c * chunk, (c + 1) * chunk) of
// output o, one block per task; its result goes to sink index t (= o when chunks is 1).
template <typename R, typename In, typename Sink>
__global__ void reduce_rows_kernel(const In* x, StridedIndexer kept, StridedIndexer red, int64_t n_out, int64_t n_red,
                                   int64_t chunk, Sink sink) {
  using Acc = typename R::Acc;
  __shared__ ReduceSlots<Acc> slots;
  const int64_t chunks = (n_red + chunk - 1) / chunk;
  for (int64_t task = blockIdx.x; task < n_out * chunks; task += gridDim.x) {
    const int64_t o = task / chunks, begin = (task % chunks) * chunk;
    const int64_t end = std::min(n_red, begin + chunk);
    const In* line = x + kept.offset(o);
    Acc acc = R::identity();
    for (int64_t r = begin + threadIdx.x; r < end; r += blockDim.x) acc = R::combine(acc, R::lift(line[offset_of(red, r)], r));
    acc = block_reduce<R>(acc, slots.span());
    if (threadIdx.x == 0) sink.store(task, acc);
  }
}

// Thread o of block row c (blockIdx.y) reduces r in [c * chunk, (c + 1) * chunk) of output o,
// in order; its result goes to sink index c * n_out + o (= o when there is one block row).
template <typename R, typename In, typename Sink>
__global__ void reduce_columns_kernel(const In* x, StridedIndexer kept, StridedIndexer red, int64_t n_out,
                                      int64_t n_red, int64_t chunk, Sink sink) {
  using Acc = typename R::Acc;
  const int64_t c = blockIdx.y, begin = c * chunk, end = std::min(n_red, begin + chunk);
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n_out; o += int64_t(gridDim.x) * blockDim.x) {
    const In* line = x + kept.offset(o);
    Acc acc = R::identity();
    for (int64_t r = begin; r < end; ++r) acc = R::combine(acc, R::lift(line[offset_of(red, r)], r));
    sink.store(c * n_out + o, acc);
  }
}

// ---- planning (host) ---------------------------------------------------------------------

// Launch shapes, all constants so that the order of every sum depends on the shape only.
constexpr int64_t kRowSlice = 8192;           // elements per block when one output is split
constexpr int64_t kFewRows = 512;             // fewer outputs than this leave the GPU idle
constexpr int kColumnThreads = 256;
constexpr int64_t kColumnSlice = 256;         // r per thread when a column is split
constexpr int64_t kColumnTargetBlocks = 1024; // split columns until about this many blocks
constexpr int64_t kMaxBlocks = 65535 * 32;    // grid-stride loops above this (as blocks_for)

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Drops size-1 dims and merges neighbours that walk memory as one (stride[d] ==
// stride[d + 1] * size[d + 1]); the row-major order of the elements is unchanged.
void coalesce(Shape& shape, Shape& strides) {
  Shape s, st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!s.empty() && st.back() == strides[d] * shape[d]) {
      s.back() *= shape[d];
      st.back() = strides[d];
    } else {
      s.push_back(shape[d]);
      st.push_back(strides[d]);
    }
  }
  shape = std::move(s);
  strides = std::move(st);
}

struct Plan {
  StridedIndexer kept, red;
  int64_t n_out = 1, n_red = 1;
  bool rows = true;  // the rows kernel, else the columns kernel
};

Plan plan_reduction(const Tensor& in, const Shape& dims, const char* op) {
  Shape kept_shape, kept_strides, red_shape, red_strides;
  for (int64_t d = 0; d < in.dim(); ++d) {
    const bool reduced = std::find(dims.begin(), dims.end(), d) != dims.end();
    (reduced ? red_shape : kept_shape).push_back(in.size(d));
    (reduced ? red_strides : kept_strides).push_back(in.stride(d));
  }
  Plan p;
  p.n_out = numel_of(kept_shape);
  p.n_red = numel_of(red_shape);
  coalesce(kept_shape, kept_strides);
  coalesce(red_shape, red_strides);
  p.kept = make_indexer(kept_shape, kept_strides, op);
  p.red = make_indexer(red_shape, red_strides, op);
  // Threads side by side should read neighbouring memory: along r when the reduced dims are
  // at least as close in memory as the kept ones. Short reductions (fewer elements than a
  // warp) go a thread per output either way, rather than leave most of a warp idle.
  const int64_t kept_step = kept_strides.empty() ? 0 : std::llabs(kept_strides.back());
  const int64_t red_step = red_strides.empty() ? 0 : std::llabs(red_strides.back());
  p.rows = p.n_out == 1 || (p.n_red >= kWarpSize && red_step <= kept_step);
  return p;
}

// A one-dim walk over n elements `stride` apart (the partial results' layout).
StridedIndexer line_indexer(int64_t n, int64_t stride) { return make_indexer({n}, {stride}, "reduce"); }

template <typename R, typename In, typename Sink>
void launch_rows(const In* x, const StridedIndexer& kept, const StridedIndexer& red, int64_t n_out, int64_t n_red,
                 int64_t chunk, Sink sink) {
  const int64_t tasks = n_out * ceil_div(n_red, chunk);
  MILA_LAUNCH((reduce_rows_kernel<R, In, Sink>), dim3(unsigned(std::min(tasks, kMaxBlocks))),
              dim3(unsigned(threads_for_line(chunk))), 0, x, kept, red, n_out, n_red, chunk, sink);
}

template <typename R, typename In, typename Sink>
void launch_columns(const In* x, const StridedIndexer& kept, const StridedIndexer& red, int64_t n_out, int64_t n_red,
                    int64_t chunk, Sink sink) {
  const int64_t blocks = std::min(ceil_div(n_out, kColumnThreads), kMaxBlocks);
  MILA_LAUNCH((reduce_columns_kernel<R, In, Sink>), dim3(unsigned(blocks), unsigned(ceil_div(n_red, chunk))),
              dim3(kColumnThreads), 0, x, kept, red, n_out, n_red, chunk, sink);
}

// Runs the plan: one pass when each output fits its block (rows) or its thread (columns),
// else a pass of slices into partials and a pass that combines them (Note [deterministic
// reductions]). n_out and n_red are at least 1.
template <typename R, typename T, typename Sink>
void run(const T* x, const Plan& p, Sink sink) {
  using Acc = typename R::Acc;
  if (p.rows) {
    if (p.n_out >= kFewRows || p.n_red <= 2 * kRowSlice)
      return launch_rows<R>(x, p.kept, p.red, p.n_out, p.n_red, p.n_red, sink);
    const int64_t chunks = ceil_div(p.n_red, kRowSlice);
    Acc* partials = static_cast<Acc*>(context().workspace(size_t(p.n_out * chunks) * sizeof(Acc)));
    launch_rows<R>(x, p.kept, p.red, p.n_out, p.n_red, kRowSlice, PartialSink<Acc>{partials});  // [n_out, chunks]
    launch_rows<Partials<R>>(static_cast<const Acc*>(partials), line_indexer(p.n_out, chunks), line_indexer(chunks, 1),
                             p.n_out, chunks, chunks, sink);
    return;
  }
  const int64_t out_blocks = ceil_div(p.n_out, kColumnThreads);
  int64_t chunks = 1;
  if (out_blocks < kColumnTargetBlocks && p.n_red > 2 * kColumnSlice)
    chunks = std::min(ceil_div(p.n_red, kColumnSlice), kColumnTargetBlocks / out_blocks);
  const int64_t chunk = ceil_div(p.n_red, chunks);
  chunks = ceil_div(p.n_red, chunk);
  if (chunks == 1) return launch_columns<R>(x, p.kept, p.red, p.n_out, p.n_red, p.n_red, sink);
  Acc* partials = static_cast<Acc*>(context().workspace(size_t(p.n_out * chunks) * sizeof(Acc)));
  launch_columns<R>(x, p.kept, p.red, p.n_out, p.n_red, chunk, PartialSink<Acc>{partials});  // [chunks, n_out]
  launch_columns<Partials<R>>(static_cast<const Acc*>(partials), line_indexer(p.n_out, 1), line_indexer(chunks, p.n_out),
                              p.n_out, chunks, chunks, sink);
}

}  // namespace

void sum(const Tensor& out, const Tensor& in, const Shape& dims) {
  if (out.numel() == 0) return;
  const Plan p = plan_reduction(in, dims, "sum");
  if (p.n_red == 0) {  // a sum of nothing is 0; all-zero bytes are 0 in float, double and int64
    CUDA_CHECK(cudaMemsetAsync(out.raw_data(), 0, out.nbytes(), context().stream()));
    return;
  }
  switch (in.dtype()) {
    case DType::Float32: return run<SumReducer<float, double>>(ptr<const float>(in), p, SumSink<float, double>{ptr<float>(out)});
    case DType::Float64:
      return run<SumReducer<double, double>>(ptr<const double>(in), p, SumSink<double, double>{ptr<double>(out)});
    case DType::Int64:
      return run<SumReducer<int64_t, int64_t>>(ptr<const int64_t>(in), p, SumSink<int64_t, int64_t>{ptr<int64_t>(out)});
    default: throw std::invalid_argument(std::string("cuda::sum: unsupported dtype ") + dtype_name(in.dtype()));
  }
}

void max(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t dim) {
  if (values.numel() == 0) return;  // the op layer refuses an empty dim, so each output has an element
  const Plan p = plan_reduction(in, {dim}, "max");
  dispatch_arithmetic(in.dtype(), "max", [&]<typename T>() {
    run<MaxReducer<T>>(ptr<const T>(in), p, MaxSink<T>{ptr<T>(values), ptr<int64_t>(indices)});
  });
}

}  // namespace mila::cuda
