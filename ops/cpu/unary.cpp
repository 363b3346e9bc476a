// unary.cpp - CPU kernels of the unary elementwise ops: one row per op, its forward next to
// its derivative. x: the input, y: the output, g: d(loss)/dy.
#include "ops/cpu/unary.h"

#include <cmath>
#include <stdexcept>

#include "ops/cpu/loops.h"

namespace mila::cpu {
namespace {

template <typename T, typename Fwd, typename Bwd>
void run(bool backward, const Tensor& a, const Tensor& b, const Tensor& c, const Tensor& d, Fwd fwd, Bwd bwd) {
  if (!backward) {
    unary_loop<T, T>(a, b, fwd);  // a = out, b = in
  } else {
    ternary_loop<T, T, T, T>(a, b, c, d, bwd);  // a = din, b = dout, c = in, d = out
  }
}

template <typename T>
void dispatch(Op op, bool backward, const Tensor& a, const Tensor& b, const Tensor& c, const Tensor& d, double lo_d,
              double hi_d) {
  const T lo = T(lo_d), hi = T(hi_d);
  switch (op) {
    case Op::neg:
      return run<T>(backward, a, b, c, d, [](T x) { return -x; }, [](T g, T, T) { return -g; });
    case Op::exp:
      return run<T>(backward, a, b, c, d, [](T x) { return std::exp(x); }, [](T g, T, T y) { return g * y; });
    case Op::log:
      return run<T>(backward, a, b, c, d, [](T x) { return std::log(x); }, [](T g, T x, T) { return g / x; });
    case Op::sqrt:
      return run<T>(backward, a, b, c, d, [](T x) { return std::sqrt(x); },
                    [](T g, T, T y) { return g / (T(2) * y); });
    case Op::abs:
      return run<T>(backward, a, b, c, d, [](T x) { return std::abs(x); },
                    [](T g, T x, T) { return x > T(0) ? g : (x < T(0) ? -g : T(0)); });
    case Op::relu:
      // Written (x < 0 ? 0 : x) and (y <= 0 ? 0 : g) so that NaN passes through both ways,
      // as PyTorch's threshold_backward does.
      return run<T>(backward, a, b, c, d, [](T x) { return x < T(0) ? T(0) : x; },
                    [](T g, T, T y) { return y <= T(0) ? T(0) : g; });
    case Op::sigmoid:
      return run<T>(backward, a, b, c, d, [](T x) { return T(1) / (T(1) + std::exp(-x)); },
                    [](T g, T, T y) { return g * y * (T(1) - y); });
    case Op::tanh:
      return run<T>(backward, a, b, c, d, [](T x) { return std::tanh(x); },
                    [](T g, T, T y) { return g * (T(1) - y * y); });
    case Op::clamp:
      return run<T>(backward, a, b, c, d, [=](T x) { return x < lo ? lo : (x > hi ? hi : x); },
                    [=](T g, T x, T) { return (x >= lo && x <= hi) ? g : T(0); });
    default:
      throw std::logic_error(std::string("cpu::unary: not a unary op: ") + op_name(op));
  }
}

}  // namespace

void unary_forward(Op op, const Tensor& out, const Tensor& in, double lo, double hi) {
  dispatch_floating(in.dtype(), op_name(op), [&]<typename T>() { dispatch<T>(op, false, out, in, in, in, lo, hi); });
}

void unary_backward(Op op, const Tensor& din, const Tensor& dout, const Tensor& in, const Tensor& out, double lo,
                    double hi) {
  dispatch_floating(in.dtype(), op_name(op), [&]<typename T>() { dispatch<T>(op, true, din, dout, in, out, lo, hi); });
}

}  // namespace mila::cpu
