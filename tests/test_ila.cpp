// test_ila.cpp - the fused inter-frame local attention (ops/ila.h) against a plain loop
// written from SPEC 4.2, against its composed twin ila_composed, and by finite differences.
//
// Shape legend: a, b [B, D, H, W] (queries, keys), v [B, C, H, W] (values), out like v;
// L the window side (odd), 0 for global attention.
//
// Sizes are odd on purpose and some cross the kernel's blocks (ops/cpu/ila.cpp): W = 37
// spans several vectors with a partial one at the end, D = 20 and C = 21 cross the
// 16-channel block and the 4-channel groups, H = 29 gives several row bands. L = 3, 5, 7
// run the kernels' v2 (compile-time window), other L their v1; both are tested on maps
// wide enough to have interior vectors as well as border ones.
//
// Tolerances. float64: the fused kernel, the composed ops and the reference sum the same
// terms in different orders, so they agree to a few ulp of the largest term (1e-12 is far
// above that). float32: logits are float sums of D products, the softmax's exp is a
// polynomial with ~1e-7 relative error, and out sums N terms; with inputs in [-1, 1) each
// result is within a few 1e-6 of the double reference, so atol 1e-5 + rtol 1e-4 leaves a
// margin without hiding a wrong offset (which moves results by O(0.1)).
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "ops/threads.h"
#include "ops/ila.h"
#include "test_util.h"

using namespace mila;
using namespace mila::test;

namespace {

// The oracle, straight from SPEC 4.2, in double. For each image n and pixel p = (y, x):
// the candidates q are p + o for o in [-r, r]^2 inside the map (every pixel when L = 0);
// logit(q) = sum_d a[n, d, p] * b[n, d, q]; out[n, c, p] = sum_q softmax(logit)(q) v[n, c, q].
Tensor ila_reference(const Tensor& a, const Tensor& b, const Tensor& v, int64_t L) {
  const int64_t B = a.size(0), D = a.size(1), H = a.size(2), W = a.size(3), C = v.size(1);
  const std::vector<double> A = values(a), Bv = values(b), Vv = values(v);  // row-major copies
  auto at4 = [](const std::vector<double>& t, int64_t K, int64_t H, int64_t W, int64_t n, int64_t k, int64_t y,
                int64_t x) { return t[size_t(((n * K + k) * H + y) * W + x)]; };
  std::vector<double> out(size_t(B * C * H * W), 0.0);
  for (int64_t n = 0; n < B; ++n)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        std::vector<int64_t> qy, qx;  // candidate source pixels
        std::vector<double> logit;
        const int64_t r = (L - 1) / 2;
        for (int64_t sy = 0; sy < H; ++sy)
          for (int64_t sx = 0; sx < W; ++sx) {
            if (L > 0 && (std::abs(sy - y) > r || std::abs(sx - x) > r)) continue;
            double l = 0;
            for (int64_t d = 0; d < D; ++d) l += at4(A, D, H, W, n, d, y, x) * at4(Bv, D, H, W, n, d, sy, sx);
            qy.push_back(sy), qx.push_back(sx), logit.push_back(l);
          }
        double m = -std::numeric_limits<double>::infinity(), total = 0;
        for (double l : logit) m = std::max(m, l);
        for (double& l : logit) total += (l = std::exp(l - m));
        for (int64_t c = 0; c < C; ++c) {
          double s = 0;
          for (size_t j = 0; j < logit.size(); ++j) s += logit[j] / total * at4(Vv, C, H, W, n, c, qy[j], qx[j]);
          out[size_t(((n * C + c) * H + y) * W + x)] = s;
        }
      }
  return from_vector(out, {B, C, H, W});
}

struct Inputs {
  Tensor a, b, v;
};
Inputs make_inputs(int64_t B, int64_t D, int64_t C, int64_t H, int64_t W, DType dtype) {
  return {uniform({B, D, H, W}, -1, 1, dtype), uniform({B, D, H, W}, -1, 1, dtype), uniform({B, C, H, W}, -1, 1, dtype)};
}

double atol_of(DType t) { return t == DType::Float32 ? 1e-5 : 1e-12; }
double rtol_of(DType t) { return t == DType::Float32 ? 1e-4 : 1e-12; }

// out and the gradients of sum(out * w) for a, b, v, w a fixed random weight.
struct Run {
  Tensor out, da, db, dv;
};
template <typename F>
Run run_with_grad(F&& f, const Inputs& in, uint64_t seed = 7) {
  Tensor a = in.a.detach().clone().requires_grad_(), b = in.b.detach().clone().requires_grad_(),
         v = in.v.detach().clone().requires_grad_();
  Tensor out = f(a, b, v);
  Generator gen(seed);
  const Tensor w = rand(out.shape(), {out.dtype()}, &gen);
  sum(mul(out, w)).backward();
  return {out.detach(), a.grad(), b.grad(), v.grad()};
}

bool bitwise_equal(const Tensor& x, const Tensor& y) {
  if (x.shape() != y.shape()) return false;
  const std::vector<double> a = values(x), b = values(y);
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(double)) != 0) return false;
  return true;
}

}  // namespace

TEST_CASE("ila") {
  SUBCASE("forward matches the reference loop (float32, float64; batch 1, 2; L = 1, 3, 5, 0)") {
    for (DType dtype : {DType::Float32, DType::Float64})
      for (int64_t B : {1, 2})
        for (int64_t L : {1, 3, 5, 0}) {
          CAPTURE(dtype_name(dtype));
          CAPTURE(B);
          CAPTURE(L);
          const Inputs in = make_inputs(B, 3, 4, 5, 7, dtype);
          check_close(ila(in.a, in.b, in.v, L), ila_reference(in.a, in.b, in.v, L), atol_of(dtype), rtol_of(dtype));
        }
  }

  SUBCASE("sizes that cross the kernel's vectors, channel blocks and row bands") {
    for (DType dtype : {DType::Float32, DType::Float64})
      for (int64_t L : {3, 5, 7, 9}) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(L);
        const Inputs in = make_inputs(2, 20, 21, 13, 37, dtype);
        check_close(ila(in.a, in.b, in.v, L), ila_reference(in.a, in.b, in.v, L), atol_of(dtype), rtol_of(dtype));
      }
  }

  SUBCASE("L = 1 returns v exactly") {
    for (DType dtype : {DType::Float32, DType::Float64}) {
      const Inputs in = make_inputs(2, 3, 4, 5, 7, dtype);
      check_close(ila(in.a, in.b, in.v, 1), in.v, 0, 0);
    }
  }

  SUBCASE("a window larger than the map equals global attention") {
    for (DType dtype : {DType::Float32, DType::Float64}) {
      CAPTURE(dtype_name(dtype));
      const Inputs in = make_inputs(2, 3, 4, 3, 4, dtype);
      const Tensor global = ila(in.a, in.b, in.v, 0);
      check_close(global, ila_reference(in.a, in.b, in.v, 0), atol_of(dtype), rtol_of(dtype));
      check_close(ila(in.a, in.b, in.v, 9), global, atol_of(dtype), rtol_of(dtype));
      check_close(ila(in.a, in.b, in.v, 7), global, atol_of(dtype), rtol_of(dtype));  // 2r + 1 = 7 >= 2 * 4 - 1
    }
  }

  SUBCASE("large logits stay finite (the softmax subtracts its maximum)") {
    for (DType dtype : {DType::Float32, DType::Float64}) {
      Inputs in = make_inputs(1, 4, 3, 6, 9, dtype);
      in.a = mul(in.a, 30.0);  // logits up to ~ 3600: exp would overflow without the shift
      in.b = mul(in.b, 30.0);
      const Tensor ref = ila_reference(in.a, in.b, in.v, 5);
      check_close(ila(in.a, in.b, in.v, 5), ref, atol_of(dtype), rtol_of(dtype));
      check_close(ila_composed(in.a, in.b, in.v, 5), ref, atol_of(dtype), rtol_of(dtype));
    }
  }

  SUBCASE("non-contiguous inputs give the same bits as contiguous ones") {
    for (DType dtype : {DType::Float32, DType::Float64}) {
      const Inputs in = make_inputs(2, 3, 4, 5, 7, dtype);
      const Tensor expected = ila(in.a, in.b, in.v, 3);
      // Strided (every other element) and channels-last (a permuted NHWC buffer).
      const Tensor a_nhwc = in.a.permute({0, 2, 3, 1}).contiguous().permute({0, 3, 1, 2});
      check_close(ila(noncontiguous(in.a), noncontiguous(in.b), noncontiguous(in.v), 3), expected, 0, 0);
      check_close(ila(a_nhwc, in.b, noncontiguous(in.v), 3), expected, 0, 0);
      check_close(ila(noncontiguous(in.a), in.b, in.v, 0), ila(in.a, in.b, in.v, 0), atol_of(dtype), rtol_of(dtype));
    }
  }

  SUBCASE("fused equals composed, forward and backward") {
    struct Case {
      int64_t B, D, C, H, W, L;
    };
    for (DType dtype : {DType::Float32, DType::Float64})
      for (const Case& c : {Case{2, 3, 4, 5, 7, 3}, Case{1, 3, 4, 5, 7, 5}, Case{1, 3, 4, 6, 9, 7},
                            Case{2, 3, 4, 3, 4, 9}, Case{1, 20, 21, 13, 37, 5}, Case{1, 5, 6, 11, 37, 9},
                            Case{2, 3, 4, 5, 7, 0}}) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(c.L);
        CAPTURE(c.W);
        const Inputs in = make_inputs(c.B, c.D, c.C, c.H, c.W, dtype);
        const Run fused = run_with_grad([&](auto& a, auto& b, auto& v) { return ila(a, b, v, c.L); }, in);
        const Run composed = run_with_grad([&](auto& a, auto& b, auto& v) { return ila_composed(a, b, v, c.L); }, in);
        // float32 gradients sum up to C * N products of O(1) terms in float: a looser atol.
        const double atol = dtype == DType::Float32 ? 1e-4 : 1e-12;
        check_close(fused.out, composed.out, atol_of(dtype), rtol_of(dtype), "out");
        check_close(fused.da, composed.da, atol, rtol_of(dtype), "da");
        check_close(fused.db, composed.db, atol, rtol_of(dtype), "db");
        check_close(fused.dv, composed.dv, atol, rtol_of(dtype), "dv");
      }
  }

  SUBCASE("gradcheck (float64): L = 3, 5, 0 and a window larger than the map") {
    struct Case {
      int64_t B, H, W, L;
    };
    for (const Case& c : {Case{2, 5, 7, 3}, Case{1, 5, 7, 5}, Case{2, 4, 5, 0}, Case{1, 3, 4, 9}}) {
      CAPTURE(c.L);
      const Inputs in = make_inputs(c.B, 3, 4, c.H, c.W, DType::Float64);
      // Smooth in all inputs (no kinks): the default tolerances of gradcheck hold.
      gradcheck([&](const std::vector<Tensor>& x) { return ila(x[0], x[1], x[2], c.L); }, {in.a, in.b, in.v});
    }
  }

  SUBCASE("only the gradients asked for are computed, and they are right") {
    const Inputs in = make_inputs(2, 3, 4, 5, 7, DType::Float64);
    const Run full = run_with_grad([](auto& a, auto& b, auto& v) { return ila(a, b, v, 3); }, in);
    for (int which = 0; which < 3; ++which) {
      CAPTURE(which);
      Tensor a = in.a.detach().clone(), b = in.b.detach().clone(), v = in.v.detach().clone();
      Tensor& x = which == 0 ? a : which == 1 ? b : v;
      x.requires_grad_();
      Tensor out = ila(a, b, v, 3);
      Generator gen(7);
      sum(mul(out, rand(out.shape(), {out.dtype()}, &gen))).backward();
      check_close(x.grad(), which == 0 ? full.da : which == 1 ? full.db : full.dv, 0, 0);
      for (const Tensor* other : {&a, &b, &v})
        if (!other->is_same(x)) CHECK_FALSE(other->grad().defined());
    }
  }

  SUBCASE("the same bits with 1 and 2 threads, forward and backward") {
    // 29 rows give the kernel 3 row bands on 1 thread and 4 on 2 (B = 1): the cut moves.
    const int threads = num_threads();
    for (DType dtype : {DType::Float32, DType::Float64})
      for (int64_t B : {1, 3})
        for (int64_t L : {5, 9}) {
          CAPTURE(dtype_name(dtype));
          CAPTURE(B);
          CAPTURE(L);
          const Inputs in = make_inputs(B, 20, 21, 29, 37, dtype);
          auto f = [L](auto& a, auto& b, auto& v) { return ila(a, b, v, L); };
          set_num_threads(1);
          const Run one = run_with_grad(f, in);
          set_num_threads(2);
          const Run two = run_with_grad(f, in);
          set_num_threads(threads);
          CHECK(bitwise_equal(one.out, two.out));
          CHECK(bitwise_equal(one.da, two.da));
          CHECK(bitwise_equal(one.db, two.db));
          CHECK(bitwise_equal(one.dv, two.dv));
        }
  }

  SUBCASE("large outputs (streaming stores) give the same bits as small ones") {
    // out and dv of 512 x 64 x 64 floats (8 MiB) are written with streaming stores, those of
    // 256 channels are not. Channel c of out and dv depends on v[c] and dout[c] only, so the
    // first 256 channels must agree bit for bit.
    Inputs big = make_inputs(1, 2, 512, 64, 64, DType::Float32);
    const Tensor dout = uniform({1, 512, 64, 64}, -1, 1, DType::Float32);
    Tensor v_small = big.v.narrow(1, 0, 256).contiguous();
    big.v.requires_grad_();
    v_small.requires_grad_();
    const Tensor out_big = ila(big.a, big.b, big.v, 5), out_small = ila(big.a, big.b, v_small, 5);
    out_big.backward(dout);
    out_small.backward(dout.narrow(1, 0, 256).contiguous());
    CHECK(bitwise_equal(out_big.detach().narrow(1, 0, 256), out_small.detach()));
    CHECK(bitwise_equal(big.v.grad().narrow(1, 0, 256), v_small.grad()));
  }

  SUBCASE("misuse throws naming ila and the shapes") {
    const TensorOptions f32{DType::Float32};
    const Tensor a = zeros({2, 3, 5, 7}, f32), v = zeros({2, 4, 5, 7}, f32);
    check_throws_with([&] { ila(a, a, zeros({1, 4, 5, 7}, f32), 3); }, {"ila", "[2, 3, 5, 7]", "[1, 4, 5, 7]", "batch"});
    check_throws_with([&] { ila(a, a, zeros({2, 4, 5, 6}, f32), 3); }, {"ila", "[2, 3, 5, 7]", "[2, 4, 5, 6]"});
    check_throws_with([&] { ila(a, zeros({2, 3, 4, 7}, f32), v, 3); }, {"ila", "[2, 3, 5, 7]", "[2, 3, 4, 7]"});
    check_throws_with([&] { ila(a, a, v, 4); }, {"ila", "odd", "L = 4", "[2, 3, 5, 7]", "[2, 4, 5, 7]"});
    check_throws_with([&] { ila(a, a, v, -1); }, {"ila", "odd", "L = -1"});
    check_throws_with([&] { ila(a, a, v.to(DType::Float64), 3); }, {"ila", "float64", "[2, 4, 5, 7]"});
    check_throws_with([&] { ila(a.select(0, 0), a.select(0, 0), v.select(0, 0), 3); }, {"ila", "4-d", "[3, 5, 7]"});
    check_throws_with([&] { ila_composed(a, a, v, 2); }, {"ila_composed", "odd", "L = 2"});
  }
}
