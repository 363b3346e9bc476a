// binary.cu - the binary elementwise ops and comparisons on the GPU, with broadcasting: one
// functor per op, each the CUDA twin of its line in ops/cpu/binary.cpp, run by
// launch_elementwise (ops/cuda/elementwise.cuh: a vectorized path for dense aligned
// operands, a strided path for everything else).
//
// Exactness against the CPU: everything but pow is exact (IEEE +, -, *, / round the same
// on both, integer division truncates toward zero on both, and the selections and
// comparisons only pick). pow differs from glibc by the CUDA math library's few ulps
// (powf 4 ulp, pow 2 ulp: CUDA C++ Programming Guide, "Mathematical Functions").
#include "ops/cuda/binary.h"

#include <stdexcept>
#include <string>

#include "ops/cuda/elementwise.cuh"

namespace mila::cuda {
namespace {

__device__ __forceinline__ float pow_of(float x, float y) { return ::powf(x, y); }
__device__ __forceinline__ double pow_of(double x, double y) { return ::pow(x, y); }

// ---- arithmetic: T (op) T -> T ----
struct Add {
  template <typename T> __device__ T operator()(T x, T y) const { return x + y; }
};
struct Sub {
  template <typename T> __device__ T operator()(T x, T y) const { return x - y; }
};
struct Mul {
  template <typename T> __device__ T operator()(T x, T y) const { return x * y; }
};
struct Div {  // integers truncate toward zero; ops/binary.cpp refuses an integer 0 divisor
  template <typename T> __device__ T operator()(T x, T y) const { return x / y; }
};
struct Maximum {  // NaN wins, as in PyTorch (x != x is x's NaN test; y's falls to `: y`)
  template <typename T> __device__ T operator()(T x, T y) const { return (x != x || x > y) ? x : y; }
};
struct Minimum {
  template <typename T> __device__ T operator()(T x, T y) const { return (x != x || x < y) ? x : y; }
};
struct Pow {
  template <typename T> __device__ T operator()(T x, T y) const { return pow_of(x, y); }
};

// ---- comparisons: T (op) T -> uint8 0 or 1 (false for NaN except ne, as IEEE says) ----
struct Eq {
  template <typename T> __device__ uint8_t operator()(T x, T y) const { return uint8_t(x == y); }
};
struct Ne {
  template <typename T> __device__ uint8_t operator()(T x, T y) const { return uint8_t(x != y); }
};
struct Lt {
  template <typename T> __device__ uint8_t operator()(T x, T y) const { return uint8_t(x < y); }
};
struct Le {
  template <typename T> __device__ uint8_t operator()(T x, T y) const { return uint8_t(x <= y); }
};
struct Gt {
  template <typename T> __device__ uint8_t operator()(T x, T y) const { return uint8_t(x > y); }
};
struct Ge {
  template <typename T> __device__ uint8_t operator()(T x, T y) const { return uint8_t(x >= y); }
};

template <typename T, typename F>
void arithmetic(Op op, F f, const Tensor& out, const Tensor& a, const Tensor& b) {
  launch_elementwise<T, T, T>(op_name(op), f, out, a, b);
}

template <typename T, typename F>
void compare(Op op, F f, const Tensor& out, const Tensor& a, const Tensor& b) {
  launch_elementwise<uint8_t, T, T>(op_name(op), f, out, a, b);
}

[[noreturn]] void no_case(Op op) {  // a CUDA column flipped without its case here
  throw std::logic_error(std::string(op_name(op)) +
                         ": ops/op_list.h says it has a CUDA kernel, but ops/cuda/binary.cu has no case for it");
}

}  // namespace

void binary_forward(Op op, const Tensor& out, const Tensor& a, const Tensor& b) {
  if (!supports(op, out.device())) throw_unsupported(op, out.device());
  switch (op) {
    case Op::eq: case Op::ne: case Op::lt: case Op::le: case Op::gt: case Op::ge:
      return dispatch_all(a.dtype(), [&]<typename T>() {
        switch (op) {
          case Op::eq: return compare<T>(op, Eq{}, out, a, b);
          case Op::ne: return compare<T>(op, Ne{}, out, a, b);
          case Op::lt: return compare<T>(op, Lt{}, out, a, b);
          case Op::le: return compare<T>(op, Le{}, out, a, b);
          case Op::gt: return compare<T>(op, Gt{}, out, a, b);
          default: return compare<T>(op, Ge{}, out, a, b);
        }
      });
    case Op::pow:
      // Floating only, as on the CPU (ops/binary.cpp checks it first).
      return dispatch_floating(a.dtype(), op_name(op), [&]<typename T>() { arithmetic<T>(op, Pow{}, out, a, b); });
    case Op::add: case Op::sub: case Op::mul: case Op::div: case Op::maximum: case Op::minimum:
      return dispatch_arithmetic(a.dtype(), op_name(op), [&]<typename T>() {
        switch (op) {
          case Op::add: return arithmetic<T>(op, Add{}, out, a, b);
          case Op::sub: return arithmetic<T>(op, Sub{}, out, a, b);
          case Op::mul: return arithmetic<T>(op, Mul{}, out, a, b);
          case Op::div: return arithmetic<T>(op, Div{}, out, a, b);
          case Op::maximum: return arithmetic<T>(op, Maximum{}, out, a, b);
          default: return arithmetic<T>(op, Minimum{}, out, a, b);
        }
      });
    default: no_case(op);
  }
}

}  // namespace mila::cuda
