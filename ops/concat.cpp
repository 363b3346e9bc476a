// concat.cpp - concat (a kernel op: copies into slices of the output) and the view-based
// stack / split / chunk. On the CPU the copies are copy_ into each input's slice; on the GPU
// one kernel writes every slice (ops/cuda/concat.cu).
#include "ops/concat.h"

#include <stdexcept>

#include "autograd/function.h"
#include "ops/copy.h"
#include "ops/cuda/concat.h"
#include "ops/op_list.h"

namespace mila {

Tensor concat(const std::vector<Tensor>& tensors, int64_t dim_in) {
  if (tensors.empty()) throw std::invalid_argument("concat: expected at least one tensor");
  const Tensor& first = tensors[0];
  if (first.dim() == 0) throw std::invalid_argument("concat: zero-dimensional tensors cannot be concatenated");
  const int64_t dim = normalize_dim(dim_in, first.shape(), "concat");
  Shape shape = first.shape();
  shape[dim] = 0;
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    bool ok = t.dtype() == first.dtype() && t.device() == first.device() && t.dim() == first.dim();
    for (int64_t d = 0; ok && d < t.dim(); ++d) ok = d == dim || t.size(d) == first.size(d);
    if (!ok)
      throw std::invalid_argument("concat: tensor " + std::to_string(i) + " " + shape_str(t.shape()) + " " +
                                  dtype_name(t.dtype()) + " " + t.device().str() + " does not match tensor 0 " +
                                  shape_str(first.shape()) + " " + dtype_name(first.dtype()) + " " +
                                  first.device().str() + " outside dim " + std::to_string(dim));
    sizes.push_back(t.size(dim));
    shape[dim] += t.size(dim);
  }
  Tensor out = Tensor::allocate(shape, first.dtype(), first.device());
  if (first.device().is_cpu()) {
    autograd::NoGradGuard no_grad;  // narrow and copy_ as plumbing, not graph
    int64_t at = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      copy_(out.narrow(dim, at, sizes[i]), tensors[i]);
      at += sizes[i];
    }
  } else if constexpr (has_cuda_kernel(Op::concat)) {
    cuda::concat(out, tensors, dim);
  } else {
    throw_unsupported(Op::concat, first.device());
  }
  return autograd::record("concat", out, tensors,
                          [dim, sizes](const Tensor& dout, const std::vector<bool>& needs) -> autograd::GradList {
                            autograd::GradList g(sizes.size());
                            int64_t at = 0;
                            for (size_t i = 0; i < sizes.size(); ++i) {
                              if (needs[i]) g[i] = dout.narrow(dim, at, sizes[i]);
                              at += sizes[i];
                            }
                            return g;
                          });
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim_in) {
  if (tensors.empty()) throw std::invalid_argument("stack: expected at least one tensor");
  const int64_t dim = normalize_insert_dim(dim_in, tensors[0].shape(), "stack");
  std::vector<Tensor> parts;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].shape() != tensors[0].shape())
      throw std::invalid_argument("stack: tensor " + std::to_string(i) + " has shape " +
                                  shape_str(tensors[i].shape()) + ", tensor 0 has " + shape_str(tensors[0].shape()));
    parts.push_back(tensors[i].unsqueeze(dim));
  }
  return concat(parts, dim);
}

std::vector<Tensor> split(const Tensor& x, const Shape& sizes, int64_t dim_in) {
  const int64_t dim = normalize_dim(dim_in, x.shape(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) throw std::invalid_argument("split: negative size in " + shape_str(sizes));
    total += s;
  }
  if (total != x.size(dim))
    throw std::invalid_argument("split: sizes " + shape_str(sizes) + " sum to " + std::to_string(total) +
                                ", but dim " + std::to_string(dim) + " of " + shape_str(x.shape()) + " has " +
                                std::to_string(x.size(dim)));
  std::vector<Tensor> out;
  int64_t at = 0;
  for (int64_t s : sizes) {
    out.push_back(x.narrow(dim, at, s));
    at += s;
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim_in) {
  const int64_t dim = normalize_dim(dim_in, x.shape(), "split");
  if (size <= 0) throw std::invalid_argument("split: size must be positive, got " + std::to_string(size));
  Shape sizes;
  for (int64_t at = 0; at < x.size(dim); at += size) sizes.push_back(std::min(size, x.size(dim) - at));
  if (sizes.empty()) sizes.push_back(0);  // torch.split of an empty dim gives one empty piece
  return split(x, sizes, dim);
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim_in) {
  const int64_t dim = normalize_dim(dim_in, x.shape(), "chunk");
  if (chunks <= 0) throw std::invalid_argument("chunk: number of chunks must be positive, got " + std::to_string(chunks));
  const int64_t n = x.size(dim);
  return split(x, std::max<int64_t>(1, (n + chunks - 1) / chunks), dim);
}

}  // namespace mila
