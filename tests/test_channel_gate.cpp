// test_channel_gate.cpp - channel_gate (ops/channel_gate.h), the SE block's multiply,
// against loops and against the broadcast multiply it fuses; gradients; misuse.
//
// Shape legend: x [N, C, H, W], gate [N, C].
//
// Tolerances. The forward is one product per value: exact in float64, one rounding in
// float32 (the loops multiply in double). dgate sums H * W products: in double in the kernel and in the loops, a few ulp
// (float64 1e-12; float32 one rounding of the sum, rtol 1e-6). gradcheck: the op is
// bilinear, central differences are exact up to rounding.
#include <vector>

#include "ops/channel_gate.h"
#include "ops/threads.h"
#include "test_util.h"

using namespace mila;
using namespace mila::test;

namespace {

Tensor gate_reference(const Tensor& x, const Tensor& gate) {
  const int64_t P = x.size(0) * x.size(1), S = x.numel() / P;
  std::vector<double> out(size_t(x.numel()));
  for (int64_t p = 0; p < P; ++p)
    for (int64_t s = 0; s < S; ++s) out[size_t(p * S + s)] = at(x, p * S + s) * at(gate, p);
  return from_vector(out, x.shape());
}

// dgate[n, c] = sum over H, W of dout * x.
Tensor dgate_reference(const Tensor& dout, const Tensor& x) {
  const int64_t P = x.size(0) * x.size(1), S = x.numel() / P;
  std::vector<double> g(size_t(P), 0.0);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t s = 0; s < S; ++s) g[size_t(p)] += at(dout, p * S + s) * at(x, p * S + s);
  return from_vector(g, {x.size(0), x.size(1)});
}

}  // namespace

TEST_CASE("channel_gate forward and backward against loops") {
  for (DType dtype : {DType::Float32, DType::Float64})
    for (const Shape& shape : {Shape{2, 5, 7, 9}, Shape{1, 3, 1, 1}, Shape{3, 4, 13, 11}, Shape{2, 3}}) {
      INFO("dtype " << dtype_name(dtype));
      CAPTURE(shape_str(shape));
      const Tensor x = uniform(shape, -1, 1, dtype), gate = uniform({shape[0], shape[1]}, 0, 1, dtype);
      const Tensor dout = uniform(shape, -1, 1, dtype);
      Tensor xl = noncontiguous(x).detach().requires_grad_(), gl = noncontiguous(gate).detach().requires_grad_();
      const Tensor out = channel_gate(xl, gl);
      const double exact = dtype == DType::Float32 ? 1e-7 : 0;  // one float rounding of the product
      check_close(out, gate_reference(x, gate), exact, exact, "out");
      out.backward(dout);
      check_close(xl.grad(), gate_reference(dout, gate), exact, exact, "dx");
      check_close(gl.grad(), dgate_reference(dout, x), dtype == DType::Float32 ? 1e-6 : 1e-12, 1e-6, "dgate");
    }
}

TEST_CASE("channel_gate equals the broadcast multiply") {
  const Tensor x = uniform({2, 6, 5, 7}), gate = uniform({2, 6});
  check_close(channel_gate(x, gate), mul(x, gate.reshape({2, 6, 1, 1})), 0, 0);
}

TEST_CASE("channel_gate gradients") {
  gradcheck([](const std::vector<Tensor>& in) { return channel_gate(in[0], in[1]); },
            {noncontiguous(uniform({2, 3, 5, 7})), uniform({2, 3})});
  gradcheck([](const std::vector<Tensor>& in) { return channel_gate(in[0], in[1]); },
            {uniform({1, 4, 3, 3}), noncontiguous(uniform({1, 4}))});
  // Only the gate requires grad (x frozen), and only x.
  Tensor gate = uniform({1, 2}).requires_grad_();
  const Tensor x = uniform({1, 2, 3, 3});
  sum(channel_gate(x, gate)).backward();
  check_close(gate.grad(), sum(x, {2, 3}), 1e-14, 1e-14, "dgate alone");
  Tensor x2 = uniform({1, 2, 3, 3}).requires_grad_();
  sum(channel_gate(x2, uniform({1, 2}))).backward();
  CHECK(x2.grad().defined());
}

TEST_CASE("channel_gate dgate does not depend on the thread count") {
  const Tensor x = uniform({4, 16, 36, 48}, -1, 1, DType::Float32), dout = uniform({4, 16, 36, 48}, -1, 1, DType::Float32);
  const Tensor gate = uniform({4, 16}, 0, 1, DType::Float32);
  auto run = [&] {
    Tensor g = gate.detach().clone().requires_grad_();
    channel_gate(x, g).backward(dout);
    return values(g.grad());
  };
  const int threads = num_threads();
  set_num_threads(1);
  const auto one = run();
  set_num_threads(2);
  const auto two = run();
  set_num_threads(threads);
  CHECK(one == two);
}

TEST_CASE("channel_gate misuse names the op and the shapes") {
  check_throws_with([] { (void)channel_gate(uniform({2, 3, 4, 4}), uniform({2, 4})); },
                    {"channel_gate", "[2, 3, 4, 4]", "[2, 4]"});
  check_throws_with([] { (void)channel_gate(uniform({2, 3, 4, 4}), uniform({2, 3, 1, 1})); },
                    {"channel_gate", "[2, 3, 1, 1]"});
  check_throws_with([] { (void)channel_gate(uniform({2, 3, 4, 4}), uniform({2, 3}, 0, 1, DType::Float32)); },
                    {"channel_gate", "float32", "float64"});
}
