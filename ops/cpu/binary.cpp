// binary.cpp - CPU kernel of the binary elementwise ops: one line per op.
#include "ops/cpu/binary.h"

#include <cmath>
#include <stdexcept>

#include "ops/cpu/loops.h"

namespace mila::cpu {
namespace {

template <typename T>
void arithmetic(Op op, const Tensor& out, const Tensor& a, const Tensor& b) {
  switch (op) {
    case Op::add: return binary_loop<T, T, T>(out, a, b, [](T x, T y) { return x + y; });
    case Op::sub: return binary_loop<T, T, T>(out, a, b, [](T x, T y) { return x - y; });
    case Op::mul: return binary_loop<T, T, T>(out, a, b, [](T x, T y) { return x * y; });
    case Op::div: return binary_loop<T, T, T>(out, a, b, [](T x, T y) { return x / y; });
    // NaN wins, as in PyTorch's maximum/minimum.
    case Op::maximum: return binary_loop<T, T, T>(out, a, b, [](T x, T y) { return (x != x || x > y) ? x : y; });
    case Op::minimum: return binary_loop<T, T, T>(out, a, b, [](T x, T y) { return (x != x || x < y) ? x : y; });
    case Op::pow:
      if constexpr (std::is_floating_point_v<T>)
        return binary_loop<T, T, T>(out, a, b, [](T x, T y) { return std::pow(x, y); });
      break;
    default: break;
  }
  throw std::logic_error(std::string("cpu::binary_forward: ") + op_name(op) + " is not an arithmetic op for " +
                         dtype_name(a.dtype()));
}

template <typename T>
void compare(Op op, const Tensor& out, const Tensor& a, const Tensor& b) {
  using U = uint8_t;
  switch (op) {
    case Op::eq: return binary_loop<U, T, T>(out, a, b, [](T x, T y) { return U(x == y); });
    case Op::ne: return binary_loop<U, T, T>(out, a, b, [](T x, T y) { return U(x != y); });
    case Op::lt: return binary_loop<U, T, T>(out, a, b, [](T x, T y) { return U(x < y); });
    case Op::le: return binary_loop<U, T, T>(out, a, b, [](T x, T y) { return U(x <= y); });
    case Op::gt: return binary_loop<U, T, T>(out, a, b, [](T x, T y) { return U(x > y); });
    case Op::ge: return binary_loop<U, T, T>(out, a, b, [](T x, T y) { return U(x >= y); });
    default: throw std::logic_error(std::string("cpu::binary_forward: not a comparison: ") + op_name(op));
  }
}

}  // namespace

void binary_forward(Op op, const Tensor& out, const Tensor& a, const Tensor& b) {
  const bool is_comparison = op == Op::eq || op == Op::ne || op == Op::lt || op == Op::le || op == Op::gt || op == Op::ge;
  if (is_comparison)
    dispatch_all(a.dtype(), [&]<typename T>() { compare<T>(op, out, a, b); });
  else
    dispatch_arithmetic(a.dtype(), op_name(op), [&]<typename T>() { arithmetic<T>(op, out, a, b); });
}

}  // namespace mila::cpu
