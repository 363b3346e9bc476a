#include "autograd/gradient_math.h"

#include <stdexcept>

namespace mila::autograd {
namespace {
// Constant-initialized (all null) before any static initializer runs, so the op layer's
// installer may run in any order relative to other start-up code.
constinit GradientMath installed{};
}  // namespace

void install_gradient_math(const GradientMath& math) { installed = math; }

const GradientMath& gradient_math() {
  if (!installed.add || !installed.sum_keepdim || !installed.clone || !installed.ones_like)
    throw std::logic_error(
        "autograd: no gradient arithmetic installed (the program does not link the op layer, mila_ops, "
        "whose ops/gradient_math.cpp provides it)");
  return installed;
}

}  // namespace mila::autograd
