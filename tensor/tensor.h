// tensor.h - the Tensor: a strided view of shared, reference-counted storage, plus the
// autograd fields (requires_grad, grad, grad_fn).
//
// A Tensor is a handle: copying it copies a pointer, as in PyTorch, so `Tensor b = a;`
// names the same tensor. Views (reshape, permute, narrow, ...) make a new TensorImpl over
// the same Storage. Element (i0, i1, ...) lives at
//     storage + (offset + i0 * strides[0] + i1 * strides[1] + ...) * dtype_size
//
// Only metadata and raw access live here. Every method that computes (views with their
// gradients, copies, printing) is defined next to its op in ops/, so one op's code stays
// in one place.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/shape.h"
#include "tensor/storage.h"

namespace mila {

namespace autograd {
struct Node;
}

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;

  // Autograd. A leaf that requires grad accumulates into `grad`; a non-leaf result of a
  // differentiable op has `grad_fn`, the node that sends gradients to its inputs.
  bool requires_grad = false;
  std::shared_ptr<autograd::Node> grad_fn;
  std::shared_ptr<TensorImpl> grad;
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (no storage); defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // A new tensor over existing storage (no copy); the caller guarantees the view is in bounds.
  static Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset);
  // A new, uninitialized, contiguous tensor.
  static Tensor allocate(const Shape& shape, DType dtype, Device device);

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  // True when both handles name the same tensor (not the same values).
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }

  // ---- metadata ----
  const Shape& shape() const { return checked().shape; }
  const Shape& strides() const { return checked().strides; }
  int64_t dim() const { return int64_t(shape().size()); }
  int64_t size(int64_t d) const;    // d may be negative
  int64_t stride(int64_t d) const;  // d may be negative
  int64_t numel() const { return numel_of(shape()); }
  int64_t offset() const { return checked().offset; }
  DType dtype() const { return checked().dtype; }
  Device device() const { return checked().storage ? checked().storage->device() : Device::cpu(); }
  const std::shared_ptr<Storage>& storage() const { return checked().storage; }
  bool is_contiguous() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype()); }

  // ---- raw access ----
  // Pointer to element [0, 0, ...]; throws if T does not match the dtype.
  template <typename T>
  T* data() const {
    check_dtype(dtype_of<T>(), "Tensor::data");
    return static_cast<T*>(raw_data());
  }
  void* raw_data() const;
  // The value of a one-element tensor, copied to the host and converted to T.
  template <typename T = double>
  T item() const;

  // ---- autograd ----
  bool requires_grad() const { return checked().requires_grad; }
  // Marks a leaf as needing a gradient. Throws on a non-leaf or a non-floating tensor.
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const { return checked().grad_fn == nullptr; }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return checked().grad_fn; }
  // The accumulated gradient of a leaf (undefined before the first backward).
  Tensor grad() const { return Tensor(checked().grad); }
  void set_grad(const Tensor& g) { checked().grad = g.impl_; }
  void zero_grad() { checked().grad.reset(); }
  // The same values, cut off from the graph (shares storage).
  Tensor detach() const;
  // Reverse-mode differentiation from this tensor; see autograd/engine.h.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;

  // ---- views (no copy; differentiable; defined in ops/view.cpp) ----
  Tensor view(const Shape& shape) const;     // requires compatible strides
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a copy; one dim may be -1
  Tensor permute(const Shape& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;  // transpose of a 2-d tensor
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(const Shape& shape) const;  // -1 keeps a dim
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor squeeze() const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;

  // ---- copies (differentiable; defined in ops/copy.cpp) ----
  Tensor contiguous() const;  // this tensor itself when already contiguous
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;

  // PyTorch-like text: values (abbreviated when large), shape, dtype, device. ops/print.cpp.
  std::string str() const;

 private:
  TensorImpl& checked() const;
  void check_dtype(DType expected, const char* what) const;
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace mila
