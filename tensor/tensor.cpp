#include "tensor/tensor.h"

#include <ostream>
#include <stdexcept>

namespace mila {

Tensor Tensor::make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

Tensor Tensor::allocate(const Shape& shape, DType dtype, Device device) {
  int64_t numel = 1;
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument("Tensor::allocate: negative dimension in shape " + shape_str(shape));
  // Overflow of the element or byte count would otherwise allocate a wrong (small) block.
  for (int64_t d : shape)
    if (__builtin_mul_overflow(numel, d, &numel) || numel > INT64_MAX / int64_t(dtype_size(dtype)))
      throw std::invalid_argument("Tensor::allocate: shape " + shape_str(shape) + " has too many elements for " +
                                  dtype_name(dtype));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(size_t(numel) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

TensorImpl& Tensor::checked() const {
  if (!impl_) throw std::logic_error("Tensor: use of an undefined tensor");
  return *impl_;
}

void Tensor::check_dtype(DType expected, const char* what) const {
  if (dtype() != expected)
    throw std::invalid_argument(std::string(what) + ": tensor has dtype " + dtype_name(dtype()) + ", accessed as " +
                                dtype_name(expected));
}

int64_t Tensor::size(int64_t d) const { return shape()[normalize_dim(d, shape(), "Tensor::size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[normalize_dim(d, shape(), "Tensor::stride")]; }

bool Tensor::is_contiguous() const {
  // Size-1 dims may have any stride; empty tensors are contiguous.
  if (numel() == 0) return true;
  int64_t expected = 1;
  for (size_t i = shape().size(); i-- > 0;) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  const auto& s = storage();
  if (!s || !s->data()) return nullptr;  // empty storage: no offset arithmetic on a null pointer
  return static_cast<char*>(s->data()) + offset() * int64_t(dtype_size(dtype()));
}

Tensor& Tensor::requires_grad_(bool on) {
  if (!is_leaf()) throw std::logic_error("requires_grad_: only leaf tensors can be marked (this one has a grad_fn)");
  if (on && !is_floating(dtype()))
    throw std::invalid_argument(std::string("requires_grad_: only floating tensors can require grad, got ") +
                                dtype_name(dtype()));
  checked().requires_grad = on;
  return *this;
}

Tensor Tensor::detach() const { return make_view(*this, shape(), strides(), offset()); }

}  // namespace mila
