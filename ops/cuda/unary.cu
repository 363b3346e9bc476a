// unary.cu - the unary elementwise ops on the GPU, forward and backward: one functor per op
// and direction, each the CUDA twin of its row in ops/cpu/unary.cpp (same formula, same
// order of operations, so the same treatment of 0, the clamp bounds and NaN), run by
// launch_elementwise (ops/cuda/elementwise.cuh). x: the input, y: the output, g: d(loss)/dy.
//
// Exactness against the CPU: neg, sqrt, abs, relu and clamp are exact (IEEE +, *, / and
// sqrt round the same on both; nvcc keeps -prec-div and -prec-sqrt on), and so are their
// derivatives and log's (g / x). exp, log, tanh, sigmoid (through exp) differ from glibc
// by the CUDA math library's few ulps (CUDA C++ Programming Guide, "Mathematical
// Functions": expf and tanhf 2 ulp, logf 1 ulp; 1 ulp in double).
#include "ops/cuda/unary.h"

#include <stdexcept>
#include <string>

#include "ops/cuda/elementwise.cuh"

namespace mila::cuda {
namespace {

// The C math functions by element type (the f-suffixed names are the float ones, as the
// CPU's std::exp(float) calls expf).
__device__ __forceinline__ float exp_of(float x) { return ::expf(x); }
__device__ __forceinline__ double exp_of(double x) { return ::exp(x); }
__device__ __forceinline__ float log_of(float x) { return ::logf(x); }
__device__ __forceinline__ double log_of(double x) { return ::log(x); }
__device__ __forceinline__ float sqrt_of(float x) { return ::sqrtf(x); }
__device__ __forceinline__ double sqrt_of(double x) { return ::sqrt(x); }
__device__ __forceinline__ float abs_of(float x) { return ::fabsf(x); }
__device__ __forceinline__ double abs_of(double x) { return ::fabs(x); }
__device__ __forceinline__ float tanh_of(float x) { return ::tanhf(x); }
__device__ __forceinline__ double tanh_of(double x) { return ::tanh(x); }

// ---- forward: y = f(x) ----
struct Neg {
  template <typename T> __device__ T operator()(T x) const { return -x; }
};
struct Exp {
  template <typename T> __device__ T operator()(T x) const { return exp_of(x); }
};
struct Log {
  template <typename T> __device__ T operator()(T x) const { return log_of(x); }
};
struct Sqrt {
  template <typename T> __device__ T operator()(T x) const { return sqrt_of(x); }
};
struct Abs {
  template <typename T> __device__ T operator()(T x) const { return abs_of(x); }
};
struct Relu {  // x < 0 ? 0 : x lets NaN through (the CPU's row says why)
  template <typename T> __device__ T operator()(T x) const { return x < T(0) ? T(0) : x; }
};
struct Sigmoid {
  template <typename T> __device__ T operator()(T x) const { return T(1) / (T(1) + exp_of(-x)); }
};
struct Tanh {
  template <typename T> __device__ T operator()(T x) const { return tanh_of(x); }
};
template <typename T>
struct Clamp {  // the bounds already converted to T on the host, as the CPU's T(lo)
  T lo, hi;
  __device__ T operator()(T x) const { return x < lo ? lo : (x > hi ? hi : x); }
};

// ---- backward: dx = g * f'(x), from g, x and y (whichever the rule reads) ----
struct NegBackward {
  template <typename T> __device__ T operator()(T g, T, T) const { return -g; }
};
struct ExpBackward {
  template <typename T> __device__ T operator()(T g, T, T y) const { return g * y; }
};
struct LogBackward {
  template <typename T> __device__ T operator()(T g, T x, T) const { return g / x; }
};
struct SqrtBackward {
  template <typename T> __device__ T operator()(T g, T, T y) const { return g / (T(2) * y); }
};
struct AbsBackward {  // sign(x), 0 at 0 and for NaN
  template <typename T> __device__ T operator()(T g, T x, T) const { return x > T(0) ? g : (x < T(0) ? -g : T(0)); }
};
struct ReluBackward {  // y <= 0 ? 0 : g lets a NaN gradient through where y is NaN
  template <typename T> __device__ T operator()(T g, T, T y) const { return y <= T(0) ? T(0) : g; }
};
struct SigmoidBackward {
  template <typename T> __device__ T operator()(T g, T, T y) const { return g * y * (T(1) - y); }
};
struct TanhBackward {
  template <typename T> __device__ T operator()(T g, T, T y) const { return g * (T(1) - y * y); }
};
template <typename T>
struct ClampBackward {  // passes where lo <= x <= hi, bounds included (PyTorch's rule)
  T lo, hi;
  __device__ T operator()(T g, T x, T) const { return (x >= lo && x <= hi) ? g : T(0); }
};

template <typename T, typename F>
void forward(Op op, F f, const Tensor& out, const Tensor& in) {
  launch_elementwise<T, T>(op_name(op), f, out, in);
}

template <typename T, typename F>
void backward(Op op, F f, const Tensor& din, const Tensor& dout, const Tensor& in, const Tensor& out) {
  launch_elementwise<T, T, T, T>(op_name(op), f, din, dout, in, out);
}

[[noreturn]] void no_case(Op op) {  // a CUDA column flipped without its case here
  throw std::logic_error(std::string(op_name(op)) +
                         ": ops/op_list.h says it has a CUDA kernel, but ops/cuda/unary.cu has no case for it");
}

}  // namespace

void unary_forward(Op op, const Tensor& out, const Tensor& in, double lo, double hi) {
  if (!supports(op, out.device())) throw_unsupported(op, out.device());
  dispatch_floating(in.dtype(), op_name(op), [&]<typename T>() {
    switch (op) {
      case Op::neg: return forward<T>(op, Neg{}, out, in);
      case Op::exp: return forward<T>(op, Exp{}, out, in);
      case Op::log: return forward<T>(op, Log{}, out, in);
      case Op::sqrt: return forward<T>(op, Sqrt{}, out, in);
      case Op::abs: return forward<T>(op, Abs{}, out, in);
      case Op::relu: return forward<T>(op, Relu{}, out, in);
      case Op::sigmoid: return forward<T>(op, Sigmoid{}, out, in);
      case Op::tanh: return forward<T>(op, Tanh{}, out, in);
      case Op::clamp: return forward<T>(op, Clamp<T>{T(lo), T(hi)}, out, in);
      default: no_case(op);
    }
  });
}

void unary_backward(Op op, const Tensor& din, const Tensor& dout, const Tensor& in, const Tensor& out, double lo,
                    double hi) {
  if (!supports(op, din.device())) throw_unsupported(op, din.device());
  dispatch_floating(in.dtype(), op_name(op), [&]<typename T>() {
    switch (op) {
      case Op::neg: return backward<T>(op, NegBackward{}, din, dout, in, out);
      case Op::exp: return backward<T>(op, ExpBackward{}, din, dout, in, out);
      case Op::log: return backward<T>(op, LogBackward{}, din, dout, in, out);
      case Op::sqrt: return backward<T>(op, SqrtBackward{}, din, dout, in, out);
      case Op::abs: return backward<T>(op, AbsBackward{}, din, dout, in, out);
      case Op::relu: return backward<T>(op, ReluBackward{}, din, dout, in, out);
      case Op::sigmoid: return backward<T>(op, SigmoidBackward{}, din, dout, in, out);
      case Op::tanh: return backward<T>(op, TanhBackward{}, din, dout, in, out);
      case Op::clamp: return backward<T>(op, ClampBackward<T>{T(lo), T(hi)}, din, dout, in, out);
      default: no_case(op);
    }
  });
}

}  // namespace mila::cuda
