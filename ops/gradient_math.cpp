// gradient_math.cpp - the op layer's side of autograd/gradient_math.h: the engine adds,
// sums, copies and seeds gradients with these ops.
//
// Installed by a static initializer. A static library's object file is linked only when
// something refers to it, and nothing calls into this file, so CMakeLists.txt passes the
// linker `--undefined=mila_gradient_math_installed` for every program that links mila_ops.
#include "autograd/gradient_math.h"

#include "ops/binary.h"
#include "ops/factory.h"
#include "ops/reduce.h"

namespace mila {
namespace {

Tensor add_gradients(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor sum_keepdim(const Tensor& t, const Shape& dims) { return sum(t, dims, /*keepdim=*/true); }
Tensor clone_gradient(const Tensor& t) { return t.clone(); }
Tensor ones_like_gradient(const Tensor& t) { return ones_like(t); }

bool install() {
  autograd::install_gradient_math({&add_gradients, &sum_keepdim, &clone_gradient, &ones_like_gradient});
  return true;
}

}  // namespace
}  // namespace mila

extern "C" const bool mila_gradient_math_installed = mila::install();
