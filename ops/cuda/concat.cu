// concat.cu - concat on the GPU: one launch copies every input into its slice of the output.
//
// Why one launch and not one strided copy (ops/cuda/copy.cu) per input: concat is often
// called on many small tensors (a decoder's skip connections, stack() of per-sample
// results), where a launch per input costs more than its copy and each small grid leaves
// the GPU mostly idle. Here one thread writes one output element: it finds which input
// holds its coordinate along `dim` (a short linear search over the inputs' ranges, the same
// answer for neighbouring threads) and reads that input through its own strides, so a
// non-contiguous input needs no copy first and the writes of a warp are neighbours in the
// output. The inputs' pointers and strides travel in the kernel's parameter struct, whose
// size CUDA limits (4 KB of parameters); kMaxPartsPerLaunch inputs fit comfortably, and a
// longer list is done in batches of that many, each batch one launch writing its own
// range of the output along `dim`.
#include "ops/cuda/concat.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "ops/cuda/runtime.h"

namespace mila::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxPartsPerLaunch = 16;  // ~1.4 KB of parameters

// One launch's work: the region of the output it writes (out.narrow(dim, first, begin[parts]))
// and the inputs that fill it, input p covering [begin[p], begin[p + 1]) of the region along dim.
template <typename T>
struct ConcatParams {
  T* out;                         // the region's element [0, 0, ...]
  int nd = 0;                     // number of dims
  int dim = 0;                    // the dim the inputs are joined along
  int parts = 0;                  // inputs in this launch, all non-empty
  int64_t sizes[kMaxDims];        // the region's shape
  int64_t out_strides[kMaxDims];  // the output's strides
  int64_t begin[kMaxPartsPerLaunch + 1];
  const T* in[kMaxPartsPerLaunch];
  int64_t in_strides[kMaxPartsPerLaunch][kMaxDims];
};

template <typename T>
__global__ void concat_kernel(ConcatParams<T> p, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t coord[kMaxDims];
    int64_t out_offset = 0, rest = i;
    for (int d = p.nd - 1; d >= 0; --d) {  // row-major coordinates of element i of the region
      coord[d] = rest % p.sizes[d];
      rest /= p.sizes[d];
      out_offset += coord[d] * p.out_strides[d];
    }
    int part = 0;
    while (coord[p.dim] >= p.begin[part + 1]) ++part;
    coord[p.dim] -= p.begin[part];  // the coordinate inside that input
    int64_t in_offset = 0;
    for (int d = 0; d < p.nd; ++d) in_offset += coord[d] * p.in_strides[part][d];
    p.out[out_offset] = p.in[part][in_offset];
  }
}

template <typename T>
void concat_typed(const Tensor& out, const std::vector<const Tensor*>& parts, int64_t dim) {
  ConcatParams<T> p{};  // zeroed: the unused slots are copied to the device too
  p.nd = int(out.dim());
  p.dim = int(dim);
  for (int d = 0; d < p.nd; ++d) {
    p.sizes[d] = out.size(d);
    p.out_strides[d] = out.stride(d);
  }
  int64_t at = 0;  // where the next batch starts along dim
  for (size_t first = 0; first < parts.size(); first += kMaxPartsPerLaunch) {
    const size_t count = std::min(parts.size() - first, size_t(kMaxPartsPerLaunch));
    p.out = ptr<T>(out) + at * out.stride(dim);
    p.parts = int(count);
    p.begin[0] = 0;
    for (size_t k = 0; k < count; ++k) {
      const Tensor& t = *parts[first + k];
      p.in[k] = ptr<const T>(t);
      for (int d = 0; d < p.nd; ++d) p.in_strides[k][d] = t.stride(d);
      p.begin[k + 1] = p.begin[k] + t.size(dim);
    }
    p.sizes[dim] = p.begin[count];
    const int64_t n = numel_of(Shape(p.sizes, p.sizes + p.nd));
    MILA_LAUNCH(concat_kernel<T>, blocks_for(n, kThreads), kThreads, 0, p, n);
    at += p.begin[count];
  }
}

}  // namespace

void concat(const Tensor& out, const std::vector<Tensor>& parts, int64_t dim) {
  if (out.numel() == 0) return;
  if (out.dim() > kMaxDims)
    throw std::invalid_argument("concat: CUDA kernels take at most " + std::to_string(kMaxDims) + " dims, got shape " +
                                shape_str(out.shape()));
  // An input empty along dim has nothing to copy (and may point anywhere): leave it out.
  std::vector<const Tensor*> nonempty;
  for (const Tensor& t : parts)
    if (t.size(dim) > 0) nonempty.push_back(&t);
  dispatch_all(out.dtype(), [&]<typename T>() { concat_typed<T>(out, nonempty, dim); });
}

}  // namespace mila::cuda
