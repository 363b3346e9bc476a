// test_conv2d.cpp - conv2d (ops/conv2d.h): both kernel versions (im2col + GEMM, direct) and
// the launchers that pick between them, against the plain reference loops
// (ops/cpu/conv2d_reference.cpp) over strides, paddings, dilations, groups, kernel shapes, odd
// sizes and memory layouts; float64 gradient checks; bitwise thread-count invariance; misuse.
//
// Shape legend: x [N, Cin, H, W], weight [Cout, Cin / groups, kh, kw], bias [Cout],
// out [N, Cout, OH, OW]; K = (Cin / groups) kh kw terms per output element.
//
// Tolerances. Inputs are uniform in [-1, 1), so every term of a sum is at most 1 in size.
// float32: the kernels sum the terms in float (in blocks, in another order than the
// reference, which sums in double), so the error grows with the number of terms;
// atol = 1e-6 * terms is about 16 float ulps of 1 per term, well above rounding (about
// sqrt(terms) ulps in practice) and far below what a wrong index gives (an error of order 1).
// float64: the same in double, atol = 1e-13 * terms. The number of terms is K for the
// forward, Cout kh kw for dx and N OH OW for dweight.
// gradcheck (float64, central differences with step 1e-6): conv2d is linear in each
// argument, so the differences are exact up to rounding; atol 1e-6 is ample.
#include <cstring>
#include <string>
#include <vector>

#include "ops/conv2d.h"
#include "ops/cpu/conv2d.h"
#include "ops/cpu/parallel.h"
#include "ops/threads.h"
#include "test_util.h"

using namespace mila;
using namespace mila::test;

namespace {

struct Case {
  std::string name;
  int64_t N, Cin, Cout, H, W, kh, kw;
  Conv2dParams p;
  bool bias = true;
};

// The configurations every comparison runs over.
std::vector<Case> cases() {
  return {
      {"3x3 pad 1", 2, 3, 4, 7, 9, 3, 3, Conv2dParams::square(1, 1)},
      {"3x3 stride 2 no pad", 2, 3, 5, 10, 11, 3, 3, Conv2dParams::square(2, 0), false},
      {"7x7 stride 3 pad 3", 1, 3, 6, 13, 17, 7, 7, Conv2dParams::square(3, 3)},
      {"7x7 stride 2 pad 3 (stem)", 2, 3, 8, 15, 20, 7, 7, Conv2dParams::square(2, 3), false},
      {"3x3 dilation 2 pad 2", 2, 4, 5, 9, 8, 3, 3, Conv2dParams::square(1, 2, 2)},
      {"3x3 dilation 4 pad 4, dilated kernel wider than the map", 1, 3, 4, 3, 5, 3, 3, Conv2dParams::square(1, 4, 4)},
      {"3x3 dilation 4 no pad", 2, 2, 3, 11, 12, 3, 3, Conv2dParams::square(1, 0, 4)},
      {"groups 2", 2, 4, 6, 6, 7, 3, 3, Conv2dParams::square(1, 1, 1, 2)},
      {"groups 4 stride 2", 1, 8, 4, 9, 9, 3, 3, Conv2dParams::square(2, 1, 1, 4), false},
      {"depthwise", 2, 6, 6, 8, 7, 3, 3, Conv2dParams::square(1, 1, 1, 6)},
      {"depthwise, 2 filters per channel, dilation 2", 1, 4, 8, 9, 10, 3, 3, Conv2dParams::square(1, 2, 2, 4)},
      {"1x1 (no im2col)", 2, 5, 7, 6, 9, 1, 1, Conv2dParams::square(1, 0)},
      {"1x1 stride 2", 2, 5, 7, 7, 9, 1, 1, Conv2dParams::square(2, 0), false},
      {"1x1 pad 1", 1, 3, 4, 4, 5, 1, 1, Conv2dParams::square(1, 1)},
      {"1x1 groups 2", 1, 6, 4, 5, 5, 1, 1, Conv2dParams::square(1, 0, 1, 2)},
      {"3x5 kernel, strides (1, 2), pads (2, 0), dilations (1, 3)", 2, 3, 4, 9, 17, 3, 5,
       {.stride_h = 1, .stride_w = 2, .pad_h = 2, .pad_w = 0, .dilation_h = 1, .dilation_w = 3}},
      {"5x2 kernel, strides (3, 1), pads (0, 1)", 1, 2, 3, 14, 6, 5, 2,
       {.stride_h = 3, .stride_w = 1, .pad_h = 0, .pad_w = 1}},
      {"kernel as large as the padded map", 1, 2, 3, 4, 3, 6, 5, Conv2dParams::square(1, 1)},
      {"odd sizes, Cout 33 (partial GEMM tiles)", 1, 5, 33, 13, 11, 3, 3, Conv2dParams::square(1, 1)},
      // Several column blocks per image (OH * OW > 512) and, with the batch, enough tasks
      // for the parallel schedule; batch 1 takes the in-order schedule.
      {"3x3 pad 1, 41x47, batch 3", 3, 8, 20, 41, 47, 3, 3, Conv2dParams::square(1, 1)},
      {"3x3 pad 1, 41x47, batch 1", 1, 8, 20, 41, 47, 3, 3, Conv2dParams::square(1, 1), false},
      {"1x1, 40x40, batch 3", 3, 16, 24, 40, 40, 1, 1, Conv2dParams::square(1, 0)},
  };
}

Tensor make(const Shape& shape, DType dtype) { return uniform(shape, -1, 1, dtype); }

Shape out_shape(const Case& c) {
  const Conv2dGeometry g = conv2d_geometry({c.N, c.Cin, c.H, c.W}, {c.Cout, c.Cin / c.p.groups, c.kh, c.kw}, c.p);
  return {g.N, g.Cout, g.OH, g.OW};
}

// The three reference results for one case, from contiguous copies of the inputs.
struct Expected {
  Tensor out, dx, dw, db;
};
Expected reference(const Case& c, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& dout) {
  const Conv2dGeometry g = conv2d_geometry(x.shape(), w.shape(), c.p);
  Expected e;
  e.out = Tensor::allocate(dout.shape(), x.dtype(), x.device());
  e.dx = Tensor::allocate(x.shape(), x.dtype(), x.device());
  e.dw = Tensor::allocate(w.shape(), x.dtype(), x.device());
  cpu::conv2d_reference(e.out, x.contiguous(), w.contiguous(), b.defined() ? b.contiguous() : Tensor(), g);
  cpu::conv2d_backward_input_reference(e.dx, dout.contiguous(), w.contiguous(), g);
  cpu::conv2d_backward_weight_reference(e.dw, dout.contiguous(), x.contiguous(), g);
  if (b.defined()) e.db = sum(dout, {0, 2, 3});
  return e;
}

// Runs conv2d forward and backward on (x, w, b) and compares all results with the loops.
void check_case(const Case& c, DType dtype, const Tensor& x_in, const Tensor& w_in, const Tensor& b_in) {
  INFO(c.name << ", " << dtype_name(dtype) << ", input " << shape_str(x_in.shape()) << ", weight "
               << shape_str(w_in.shape()));
  const Tensor x = x_in.detach().requires_grad_(), w = w_in.detach().requires_grad_();
  const Tensor b = b_in.defined() ? b_in.detach().requires_grad_() : Tensor();
  const Tensor out = conv2d(x, w, b, c.p);
  const Tensor dout = make(out.shape(), dtype);
  out.backward(dout);
  const Expected e = reference(c, x, w, b, dout);

  const double unit = dtype == DType::Float32 ? 1e-6 : 1e-13;
  const double k = double(c.Cin / c.p.groups * c.kh * c.kw);
  check_close(out, e.out, unit * k, 0, "forward");
  check_close(x.grad(), e.dx, unit * double(c.Cout * c.kh * c.kw), 0, "dx");
  check_close(w.grad(), e.dw, unit * double(out.size(0) * out.size(2) * out.size(3)), 0, "dweight");
  if (b.defined()) check_close(b.grad(), e.db, unit * double(out.size(0) * out.size(2) * out.size(3)), 0, "dbias");
}

Shape weight_shape(const Case& c) { return {c.Cout, c.Cin / c.p.groups, c.kh, c.kw}; }

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(ac.raw_data(), bc.raw_data(), a.nbytes()) == 0;
}

}  // namespace

TEST_CASE("conv2d matches the reference loops, forward and backward") {
  manual_seed(1);
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    for (const Case& c : cases()) {
      const Tensor x = make({c.N, c.Cin, c.H, c.W}, dtype), w = make(weight_shape(c), dtype);
      const Tensor b = c.bias ? make({c.Cout}, dtype) : Tensor();
      check_case(c, dtype, x, w, b);
    }
  }
}

TEST_CASE("conv2d kernel versions: im2col + GEMM and direct, each against the loops") {
  // The launcher picks one version per shape; here every version runs on every case it
  // accepts (direct: float32 on AVX-512 builds; its input backward needs stride 1, its
  // weight backward groups = 1).
  manual_seed(8);
  std::vector<Case> all = cases();
  all.push_back({"3x3 dilation 4 pad 4, 70 columns (3 tiles, last partial)", 2, 6, 30, 13, 70, 3, 3,
                 Conv2dParams::square(1, 4, 4)});
  all.push_back({"7x7 stride 2 pad 3, 33 output columns", 1, 3, 16, 21, 66, 7, 7, Conv2dParams::square(2, 3)});
  all.push_back({"3x3 stride (2, 3) pad (0, 2), 29 output channels", 1, 5, 29, 17, 61, 3, 3,
                 {.stride_h = 2, .stride_w = 3, .pad_h = 0, .pad_w = 2}});
  all.push_back({"9x9 kernel (more taps than the offset table), pad 5", 1, 2, 15, 12, 20, 9, 9,
                 Conv2dParams::square(1, 5)});
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    for (const Case& c : all) {
      INFO(c.name << ", " << dtype_name(dtype));
      const Tensor x = make({c.N, c.Cin, c.H, c.W}, dtype), w = make(weight_shape(c), dtype);
      const Tensor b = c.bias ? make({c.Cout}, dtype) : Tensor();
      const Conv2dGeometry g = conv2d_geometry(x.shape(), w.shape(), c.p);
      const Tensor dout = make(out_shape(c), dtype);
      const Expected e = reference(c, x, w, b, dout);
      const double unit = dtype == DType::Float32 ? 1e-6 : 1e-13;
      const double k = double(c.Cin / c.p.groups * c.kh * c.kw);
      const bool direct = dtype == DType::Float32 && cpu::conv2d_direct_available();

      Tensor out = full(dout.shape(), 1e30, {dtype});  // every element must be written
      cpu::conv2d_forward_im2col(out, x, w, b, g);
      check_close(out, e.out, unit * k, 0, "forward, im2col");
      Tensor dx = full(x.shape(), 1e30, {dtype});
      cpu::conv2d_backward_input_im2col(dx, dout, w, g);
      check_close(dx, e.dx, unit * double(c.Cout * c.kh * c.kw), 0, "dx, im2col");
      Tensor dw = full(w.shape(), 1e30, {dtype});
      cpu::conv2d_backward_weight_im2col(dw, dout, x, g);
      const double dw_terms = double(dout.size(0) * dout.size(2) * dout.size(3));
      check_close(dw, e.dw, unit * dw_terms, 0, "dweight, im2col");
      if (direct) {
        if (g.groups == 1) {
          dw = full(w.shape(), 1e30, {dtype});
          cpu::conv2d_backward_weight_direct(dw, dout, x, g);
          check_close(dw, e.dw, unit * dw_terms, 0, "dweight, direct");
        }
        out = full(dout.shape(), 1e30, {dtype});
        cpu::conv2d_forward_direct(out, x, w, b, g);
        check_close(out, e.out, unit * k, 0, "forward, direct");
        if (g.sh == 1 && g.sw == 1) {
          dx = full(x.shape(), 1e30, {dtype});
          cpu::conv2d_backward_input_direct(dx, dout, w, g);
          check_close(dx, e.dx, unit * double(c.Cout * c.kh * c.kw), 0, "dx, direct");
        }
      }
    }
  }
}

TEST_CASE("conv2d honours strides: non-contiguous and permuted inputs and weights") {
  manual_seed(2);
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    for (const Case& c : {cases()[0], cases()[5], cases()[7], cases()[11], cases()[15]}) {
      SUBCASE(("every other element: " + c.name).c_str()) {
        const Tensor x = noncontiguous(make({c.N, c.Cin, c.H, c.W}, dtype));
        const Tensor w = noncontiguous(make(weight_shape(c), dtype));
        const Tensor b = c.bias ? noncontiguous(make({c.Cout}, dtype)) : Tensor();
        REQUIRE_FALSE(x.is_contiguous());
        check_case(c, dtype, x, w, b);
      }
      SUBCASE(("channels-last views: " + c.name).c_str()) {
        // x stored as [N, H, W, Cin], weight as [kh, kw, Cin / groups, Cout], viewed as NCHW.
        const Tensor x = make({c.N, c.H, c.W, c.Cin}, dtype).permute({0, 3, 1, 2});
        const Tensor w = make({c.kh, c.kw, c.Cin / c.p.groups, c.Cout}, dtype).permute({3, 2, 0, 1});
        check_case(c, dtype, x, w, Tensor());
      }
    }
  }
}

TEST_CASE("conv2d: an unbatched [Cin, H, W] input and an empty batch") {
  manual_seed(3);
  const Case c = cases()[0];
  const Tensor x = make({c.Cin, c.H, c.W}, DType::Float64).requires_grad_();
  const Tensor w = make(weight_shape(c), DType::Float64);
  const Tensor out = conv2d(x, w, Tensor(), c.p);
  CHECK(out.dim() == 3);
  check_close(out, conv2d(x.unsqueeze(0), w, Tensor(), c.p).squeeze(0), 0, 0);
  sum(out).backward();
  CHECK(shape_str(x.grad().shape()) == shape_str(x.shape()));

  const Tensor empty = make({0, c.Cin, c.H, c.W}, DType::Float64);
  const Tensor w_leaf = w.detach().requires_grad_();
  const Tensor out0 = conv2d(empty, w_leaf, Tensor(), c.p);
  CHECK(out0.size(0) == 0);
  CHECK(out0.size(1) == c.Cout);
  sum(out0).backward();
  check_close(w_leaf.grad(), zeros(w.shape(), {DType::Float64}), 0, 0, "dweight of an empty batch");
}

TEST_CASE("conv2d gradcheck (float64)") {
  manual_seed(4);
  const std::vector<Case> all = cases();
  // Small members of the list: plain, strided, dilated past the map, grouped, depthwise,
  // 1x1, non-square everything.
  for (const size_t i : {0, 2, 5, 7, 9, 11, 12, 15, 16}) {
    const Case& c = all[i];
    SUBCASE(c.name.c_str()) {
      const Tensor x = make({c.N, c.Cin, c.H, c.W}, DType::Float64), w = make(weight_shape(c), DType::Float64);
      const Tensor b = make({c.Cout}, DType::Float64);
      gradcheck([&](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], c.p); }, {x, w, b});
    }
  }
  SUBCASE("non-contiguous input and weight") {
    const Case& c = all[4];
    gradcheck([&](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], Tensor(), c.p); },
              {noncontiguous(make({c.N, c.Cin, c.H, c.W}, DType::Float64)),
               noncontiguous(make(weight_shape(c), DType::Float64))});
  }
}

TEST_CASE("conv2d: only the gradients asked for are computed") {
  manual_seed(5);
  const Case c = cases()[0];
  const Tensor x = make({c.N, c.Cin, c.H, c.W}, DType::Float64);  // constant input: no dx
  const Tensor w = make(weight_shape(c), DType::Float64).requires_grad_();
  const Tensor b = make({c.Cout}, DType::Float64);  // frozen bias
  sum(conv2d(x, w, b, c.p)).backward();
  CHECK(w.grad().defined());
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(b.grad().defined());
}

TEST_CASE("conv2d results do not depend on the thread count, bit for bit") {
  // Shapes that take each schedule: in order (batch 1), parallel tasks (batch 4, several
  // column blocks), the 1x1 path, groups, the stem's stride. Every kernel version runs.
  const std::vector<Case> shapes = {
      {"3x3, batch 1", 1, 16, 24, 37, 45, 3, 3, Conv2dParams::square(1, 1)},
      {"3x3 dilation 2, batch 4", 4, 16, 24, 37, 45, 3, 3, Conv2dParams::square(1, 2, 2)},
      {"1x1, batch 4", 4, 32, 16, 30, 33, 1, 1, Conv2dParams::square(1, 0)},
      {"groups 4, batch 2", 2, 16, 32, 25, 31, 3, 3, Conv2dParams::square(1, 1, 1, 4)},
      {"7x7 stride 2, batch 2", 2, 3, 16, 60, 70, 7, 7, Conv2dParams::square(2, 3)},
  };
  const int saved = num_threads();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    for (const Case& c : shapes) {
      INFO(c.name << ", " << dtype_name(dtype));
      manual_seed(6);
      const Tensor x0 = make({c.N, c.Cin, c.H, c.W}, dtype), w0 = make(weight_shape(c), dtype);
      const Tensor b0 = make({c.Cout}, dtype), dout = make(out_shape(c), dtype);
      const Conv2dGeometry g = conv2d_geometry(x0.shape(), w0.shape(), c.p);
      const bool direct = dtype == DType::Float32 && cpu::conv2d_direct_available();
      std::vector<std::string> what;
      std::vector<Tensor> results[2];
      for (const int threads : {1, 2}) {
        set_num_threads(threads);
        std::vector<Tensor>& r = results[threads - 1];
        what.clear();
        auto add = [&](const char* name, const Tensor& t) {
          what.push_back(name);
          r.push_back(t);
        };
        // The op as a model calls it (the launchers pick the versions).
        const Tensor x = x0.detach().requires_grad_(), w = w0.detach().requires_grad_();
        const Tensor b = b0.detach().requires_grad_();
        const Tensor out = conv2d(x, w, b, c.p);
        out.backward(dout);
        add("forward", out);
        add("dx", x.grad());
        add("dweight", w.grad());
        add("dbias", b.grad());
        // Each version on its own.
        Tensor t = empty_like(dout);
        cpu::conv2d_forward_im2col(t, x0, w0, b0, g);
        add("forward, im2col", t);
        t = empty_like(x0);
        cpu::conv2d_backward_input_im2col(t, dout, w0, g);
        add("dx, im2col", t);
        t = empty_like(w0);
        cpu::conv2d_backward_weight_im2col(t, dout, x0, g);
        add("dweight, im2col", t);
        if (direct) {
          t = empty_like(dout);
          cpu::conv2d_forward_direct(t, x0, w0, b0, g);
          add("forward, direct", t);
          if (g.sh == 1 && g.sw == 1) {
            t = empty_like(x0);
            cpu::conv2d_backward_input_direct(t, dout, w0, g);
            add("dx, direct", t);
          }
          if (g.groups == 1) {
            t = empty_like(w0);
            cpu::conv2d_backward_weight_direct(t, dout, x0, g);
            add("dweight, direct", t);
          }
        }
      }
      set_num_threads(saved);
      REQUIRE(results[0].size() == results[1].size());
      for (size_t i = 0; i < what.size(); ++i) CHECK_MESSAGE(bitwise_equal(results[0][i], results[1][i]), what[i]);
    }
  }
}

TEST_CASE("conv2d misuse throws, naming the op and the shapes") {
  const TensorOptions f32{DType::Float32};
  const Tensor x = zeros({1, 4, 8, 8}, f32), w = zeros({6, 4, 3, 3}, f32);
  check_throws_with([&] { conv2d(x, zeros({6, 3, 3, 3}, f32)); },
                    {"conv2d", "groups=1", "[6, 3, 3, 3]", "to have 3 channels, but got 4", "[1, 4, 8, 8]"});
  check_throws_with([&] { conv2d(x, zeros({6, 4, 3}, f32)); }, {"conv2d", "4-d weight", "[6, 4, 3]"});
  check_throws_with([&] { conv2d(zeros({4, 8}, f32), w); }, {"conv2d", "4-d input", "[4, 8]"});
  check_throws_with([&] { conv2d(x, zeros({6, 1, 3, 3}, f32), Tensor(), Conv2dParams::square(1, 0, 1, 4)); },
                    {"conv2d", "6 output channels are not divisible by groups=4"});
  check_throws_with([&] { conv2d(x, zeros({8, 2, 3, 3}, f32), Tensor(), Conv2dParams::square(1, 0, 1, 3)); },
                    {"conv2d", "groups=3", "[8, 2, 3, 3]"});
  check_throws_with([&] { conv2d(x, zeros({6, 4, 9, 3}, f32)); },
                    {"conv2d", "output size is too small", "0x6", "[1, 4, 8, 8]", "[6, 4, 9, 3]"});
  check_throws_with([&] { conv2d(x, w, Tensor(), Conv2dParams::square(1, 0, 5)); },
                    {"conv2d", "output size is too small", "dilated kernel 11x11"});
  check_throws_with([&] { conv2d(x, w, Tensor(), Conv2dParams::square(0)); }, {"conv2d", "stride must be positive"});
  check_throws_with([&] { conv2d(x, w, Tensor(), Conv2dParams::square(1, 0, 0)); },
                    {"conv2d", "dilation must be positive"});
  check_throws_with([&] { conv2d(x, w, Tensor(), Conv2dParams::square(1, -1)); },
                    {"conv2d", "padding must be non-negative"});
  check_throws_with([&] { conv2d(x, w, Tensor(), Conv2dParams::square(1, 0, 1, 0)); },
                    {"conv2d", "groups must be positive"});
  check_throws_with([&] { conv2d(x, w, zeros({5}, f32)); }, {"conv2d", "expected bias [6]", "[5]"});
  check_throws_with([&] { conv2d(x, zeros({6, 4, 3, 3}, {DType::Float64})); },
                    {"conv2d", "float32 or float64", "float64"});
  check_throws_with([&] { conv2d(zeros({1, 4, 8, 8}, {DType::Int64}), w); }, {"conv2d", "float32 or float64", "int64"});
  check_throws_with([&] { conv2d_backward_input(zeros({1, 6, 5, 5}, f32), w, x.shape()); },
                    {"conv2d_backward_input", "dout [1, 6, 5, 5]", "[1, 6, 6, 6]"});
  check_throws_with([&] { conv2d_backward_weight(zeros({1, 6, 6, 6}, f32), x, {6, 3, 3, 3}); },
                    {"conv2d_backward_weight", "to have 3 channels, but got 4"});
}

TEST_CASE("conv2d_backward_input / conv2d_backward_weight agree with the autograd rule") {
  manual_seed(7);
  const Case c = cases()[4];
  const Tensor x = make({c.N, c.Cin, c.H, c.W}, DType::Float64).requires_grad_();
  const Tensor w = make(weight_shape(c), DType::Float64).requires_grad_();
  const Tensor out = conv2d(x, w, Tensor(), c.p);
  const Tensor dout = make(out.shape(), DType::Float64);
  out.backward(dout);
  check_close(conv2d_backward_input(dout, w, x.shape(), c.p), x.grad(), 0, 0);
  check_close(conv2d_backward_weight(dout, x, w.shape(), c.p), w.grad(), 0, 0);
}
