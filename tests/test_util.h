// test_util.h - what every test file uses: closeness checks against reference values, the
// finite-difference gradient checker, and makers of awkward inputs (non-contiguous views).
#pragma once

#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "mila/config.h"
#include "ops/ops.h"

namespace mila::test {

// Element e (row-major) of any CPU tensor, as double, read through its strides.
inline double at(const Tensor& t, int64_t e) {
  int64_t off = 0;
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    off += (e % t.size(d)) * t.stride(d);
    e /= t.size(d);
  }
  return dispatch_all(t.dtype(), [&]<typename T>() { return double(static_cast<const T*>(t.raw_data())[off]); });
}

inline void set_at(const Tensor& t, int64_t e, double v) {
  int64_t off = 0;
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    off += (e % t.size(d)) * t.stride(d);
    e /= t.size(d);
  }
  dispatch_all(t.dtype(), [&]<typename T>() { static_cast<T*>(t.raw_data())[off] = static_cast<T>(v); });
}

// All values of a CPU tensor in row-major order.
inline std::vector<double> values(const Tensor& t) {
  std::vector<double> v(size_t(t.numel()));
  for (int64_t e = 0; e < t.numel(); ++e) v[size_t(e)] = at(t, e);
  return v;
}

// Checks shape and every value: |a - e| <= atol + rtol * |e| (NaNs must match).
inline void check_close(const Tensor& actual, const Tensor& expected, double atol = 1e-6, double rtol = 1e-5,
                        const std::string& what = "") {
  INFO(what);
  REQUIRE(shape_str(actual.shape()) == shape_str(expected.shape()));
  const Tensor a = actual.to(Device::cpu()), e = expected.to(Device::cpu());
  int64_t bad = 0;
  double worst = 0;
  int64_t worst_at = -1;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = at(a, i), y = at(e, i);
    if (std::isnan(x) && std::isnan(y)) continue;
    if (x == y) continue;  // equal infinities too, whose difference is NaN
    const double err = std::abs(x - y);
    if (!(err <= atol + rtol * std::abs(y))) {
      ++bad;
      if (!(err <= worst)) worst = err, worst_at = i;
    }
  }
  INFO("first worst element " << worst_at << ": got " << (worst_at >= 0 ? at(a, worst_at) : 0.0) << ", expected "
                              << (worst_at >= 0 ? at(e, worst_at) : 0.0));
  CHECK_MESSAGE(bad == 0, bad << " of " << a.numel() << " elements differ beyond atol " << atol << " rtol " << rtol);
}

// The same values as x, in a non-contiguous layout (every other element of a larger
// buffer along a new last dim), so kernels must honour strides.
inline Tensor noncontiguous(const Tensor& x) {
  Shape big = x.shape();
  big.push_back(2);
  Tensor buf = full(big, 777.0, {x.dtype(), x.device()});
  Tensor view = buf.select(-1, 0);
  copy_(view, x);
  return view;
}

// Uniform values in [lo, hi) of the given dtype (float64 by default, for gradient checks).
inline Tensor uniform(const Shape& shape, double lo = -1, double hi = 1, DType dtype = DType::Float64) {
  return add(mul(rand(shape, {DType::Float64}), hi - lo), lo).to(dtype);
}

struct GradcheckOptions {
  double eps = 1e-6;   // central-difference step
  double atol = 1e-6;  // on |analytic - numeric|
  double rtol = 1e-4;
};

// Checks the gradient of f at `inputs` (float64 CPU tensors, any strides) against central
// differences: for a fixed random weight w, L = sum(f(x) * w), and for every element x_j
// of every input, dL/dx_j ~ (L(x_j + eps) - L(x_j - eps)) / (2 eps). Inputs listed in
// `constant` (by position) are not differentiated (e.g. integer indices).
inline void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
                      GradcheckOptions opt = {}, const std::vector<size_t>& constant = {}) {
  std::vector<Tensor> leaves;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const bool diff = std::find(constant.begin(), constant.end(), i) == constant.end();
    Tensor leaf = inputs[i].detach();  // keeps the input's strides
    if (diff) {
      REQUIRE_MESSAGE(leaf.dtype() == DType::Float64, "gradcheck wants float64 inputs");
      leaf.requires_grad_();
    }
    leaves.push_back(leaf);
  }
  Tensor out = f(leaves);
  Generator gen(1234);
  const Tensor w = rand(out.shape(), {DType::Float64}, &gen);
  sum(mul(out, w)).backward();

  auto loss = [&]() {
    NoGradGuard no_grad;
    return sum(mul(f(leaves), w)).item<double>();
  };
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (!leaves[i].requires_grad()) continue;
    const Tensor& x = leaves[i];
    const Tensor g = x.grad();
    for (int64_t e = 0; e < x.numel(); ++e) {
      const double orig = at(x, e);
      set_at(x, e, orig + opt.eps);
      const double up = loss();
      set_at(x, e, orig - opt.eps);
      const double down = loss();
      set_at(x, e, orig);
      const double numeric = (up - down) / (2 * opt.eps);
      const double analytic = g.defined() ? at(g, e) : 0.0;
      if (std::abs(analytic - numeric) > opt.atol + opt.rtol * std::abs(numeric)) {
        FAIL_CHECK("gradient of input " << i << " " << shape_str(x.shape()) << " element " << e << ": analytic "
                                        << analytic << ", numeric " << numeric);
        return;
      }
    }
  }
}

// Row-major multi-index of element e of `shape`, and back.
inline Shape unravel(int64_t e, const Shape& shape) {
  Shape idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = e % shape[d];
    e /= shape[d];
  }
  return idx;
}
inline int64_t ravel(const Shape& idx, const Shape& shape) {
  int64_t e = 0;
  for (size_t d = 0; d < shape.size(); ++d) e = e * shape[d] + idx[d];
  return e;
}

// float64 values from a fixed seed, uniform in [lo, hi).
inline Tensor draw(const Shape& shape, double lo = -1, double hi = 1, uint64_t seed = 7) {
  Generator gen(seed);
  return add(mul(rand(shape, {DType::Float64}, &gen), hi - lo), lo);
}

// The same values as x in the reversed (column-major) memory order: a non-contiguous view
// whose strides run backwards, the layout that catches kernels assuming contiguity.
inline Tensor transposed_layout(const Tensor& x) {
  Shape rev;
  for (int64_t d = x.dim() - 1; d >= 0; --d) rev.push_back(d);
  return x.permute(rev).contiguous().permute(rev);
}

// Runs `f` and checks that it throws an exception whose message contains every fragment.
template <typename F>
void check_throws_with(F&& f, const std::vector<std::string>& fragments) {
  try {
    f();
    FAIL_CHECK("expected an exception mentioning " << fragments[0]);
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    for (const std::string& frag : fragments) CHECK_MESSAGE(msg.find(frag) != std::string::npos, "message: " << msg << " lacks " << frag);
  }
}

// A fresh folder under the system's temporary directory (named after the process and `tag`,
// so parallel test processes do not collide), removed with everything in it at scope exit.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           ("mila_test_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// A MILA configuration small enough to build and run in a test: ResNet width 8, D 8, L 3,
// K 3, task features of width C. Slow is ResNet-18 unless a test needs the paper's
// ResNet-101 (the cost counts); Fast is always ResNet-18.
inline Config tiny_config(int64_t C, int slow_depth = 18) {
  Config c;
  c.slow_depth = slow_depth;
  c.fast_depth = 18;
  c.width = 8;
  c.C = C;
  c.D = 8;
  c.L = 3;
  c.K = 3;
  return c;
}

}  // namespace mila::test
