// gradient_math.h - the little arithmetic the engine itself does on gradients, and the only
// thing autograd/ asks of the op layer.
//
// The engine sums the gradients that reach one tensor from several consumers, sums a
// broadcast gradient back to its input's shape, copies a leaf's first gradient, and seeds a
// scalar root with 1. Those are ops (they run kernels on the tensor's device), and ops sit
// above autograd (Note [layers] in CMakeLists.txt). So the engine owns this interface and
// the op layer fills it in (ops/gradient_math.cpp), once, at program start: dependency
// inversion, the same way PyTorch's autograd reaches its kernels through the dispatcher.
#pragma once

#include "tensor/tensor.h"

namespace mila::autograd {

struct GradientMath {
  Tensor (*add)(const Tensor& a, const Tensor& b);            // a + b, same shape, dtype and device
  Tensor (*sum_keepdim)(const Tensor& t, const Shape& dims);  // sum over `dims`, each kept as size 1
  Tensor (*clone)(const Tensor& t);                           // a new contiguous copy
  Tensor (*ones_like)(const Tensor& t);
};

void install_gradient_math(const GradientMath& math);
// The installed functions; throws naming the cause when no op layer was linked in.
const GradientMath& gradient_math();

}  // namespace mila::autograd
