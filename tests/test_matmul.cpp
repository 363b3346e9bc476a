// test_matmul.cpp - matmul with every rank rule of torch.matmul, and linear (ops/matmul.h).
//
// The oracle is a plain triple loop in float64 over operands promoted by hand (1-d a becomes
// [1, k], 1-d b becomes [k, 1], batch dims broadcast, the promoted dims removed afterwards).
// float64 results must match it to rounding; float32 results to a bound proportional to k
// (each of the k products and partial sums rounds once). Gradients are checked against
// dA = W B^T, dB = A^T W and by float64 finite differences, including broadcast batch dims
// whose gradient must be summed back. Shape legend: a [..., m, k], b [..., k, n],
// out [..., m, n], w (the upstream gradient) out's shape.
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "ops/threads.h"
#include "ops/op_list.h"
#include "ops/cuda/gemm.h"
#include "tests/cuda_compare.h"
#include "tests/test_util.h"

using namespace mila;
using test::check_close;
using test::gradcheck;
using test::unravel;
using test::draw;
using test::transposed_layout;

namespace {

// Element number (row-major) of t that the broadcast batch index `bidx` reads, for the
// matrix entry (i, j) of t's last two dims.
int64_t batch_element(const Shape& t_shape, const Shape& bidx, int64_t i, int64_t j) {
  const size_t tb = t_shape.size() - 2, lead = bidx.size() - tb;
  int64_t e = 0;
  for (size_t d = 0; d < tb; ++d) e = e * t_shape[d] + (t_shape[d] == 1 ? 0 : bidx[lead + d]);
  return (e * t_shape[tb] + i) * t_shape[tb + 1] + j;
}

// torch.matmul by hand, in float64, from the values of a and b (any dtype and layout).
Tensor reference_matmul(const Tensor& a, const Tensor& b) {
  const Shape sa = a.dim() == 1 ? Shape{1, a.size(0)} : a.shape();
  const Shape sb = b.dim() == 1 ? Shape{b.size(0), 1} : b.shape();
  const std::vector<double> av = test::values(a), bv = test::values(b);
  const int64_t m = sa[sa.size() - 2], k = sa.back(), n = sb.back();
  const Shape batch = broadcast_shapes(Shape(sa.begin(), sa.end() - 2), Shape(sb.begin(), sb.end() - 2), "reference");
  std::vector<double> out;
  for (int64_t bi = 0; bi < numel_of(batch); ++bi) {
    const Shape bidx = unravel(bi, batch);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p)
          s += av[size_t(batch_element(sa, bidx, i, p))] * bv[size_t(batch_element(sb, bidx, p, j))];
        out.push_back(s);
      }
  }
  Shape shape = batch;
  if (a.dim() > 1) shape.push_back(m);
  if (b.dim() > 1) shape.push_back(n);
  return from_vector(out, shape);
}

// Absolute tolerance of a float32 product with inner size k and inputs in [-1, 1]: each output
// is k rounded products summed with k roundings, so its error grows with k. 4 k eps is far
// above the typical error (~sqrt(k) eps) and far below any indexing mistake (~0.1).
double f32_atol(int64_t k) { return 4.0 * double(std::max<int64_t>(k, 1)) * double(FLT_EPSILON); }

struct RankCase {
  Shape a, b, out;
  const char* what;
};

// Every rank rule of torch.matmul, plus size-1 and size-0 dims.
const std::vector<RankCase> kRankCases = {
    {{5}, {5}, {}, "1-d x 1-d: dot product"},
    {{1}, {1}, {}, "1-d x 1-d of length 1"},
    {{3, 5}, {5, 4}, {3, 4}, "2-d x 2-d"},
    {{5}, {5, 4}, {4}, "1-d x 2-d: row vector"},
    {{3, 5}, {5}, {3}, "2-d x 1-d: column vector"},
    {{5}, {2, 5, 4}, {2, 4}, "1-d x 3-d"},
    {{2, 3, 5}, {5}, {2, 3}, "3-d x 1-d"},
    {{2, 3, 5}, {5, 4}, {2, 3, 4}, "3-d x 2-d"},
    {{3, 5}, {2, 5, 4}, {2, 3, 4}, "2-d x 3-d"},
    {{2, 3, 5}, {2, 5, 4}, {2, 3, 4}, "3-d x 3-d, same batch"},
    {{2, 1, 3, 5}, {4, 5, 2}, {2, 4, 3, 2}, "[B, 1, m, k] x [H, k, n]"},
    {{1, 3, 5}, {4, 5, 2}, {4, 3, 2}, "batch 1 broadcast"},
    {{3, 1, 2, 5}, {1, 4, 5, 3}, {3, 4, 2, 3}, "both batches broadcast"},
    {{1, 1}, {1, 1}, {1, 1}, "1 x 1"},
    {{7, 1}, {1, 6}, {7, 6}, "k = 1: outer product"},
    {{1, 5}, {5, 1}, {1, 1}, "m = n = 1"},
    {{3, 0}, {0, 4}, {3, 4}, "k = 0: zeros"},
    {{0, 5}, {5, 4}, {0, 4}, "m = 0: empty"},
    {{2, 0, 3, 5}, {5, 2}, {2, 0, 3, 2}, "empty batch"},
};

}  // namespace

TEST_CASE("matmul: every rank rule of torch.matmul") {
  SUBCASE("output shapes and float64 values against the loop") {
    for (const RankCase& c : kRankCases) {
      INFO("case " << std::string(c.what) << ": " << shape_str(c.a) << " x " << shape_str(c.b));
      const Tensor a = draw(c.a, -1, 1, 1), b = draw(c.b, -1, 1, 2);
      const Tensor y = matmul(a, b);
      CHECK(y.shape() == c.out);
      CHECK(y.dtype() == DType::Float64);
      check_close(y, reference_matmul(a, b), 1e-14, 1e-12);
    }
  }
  SUBCASE("float32 against the loop, within a bound proportional to k") {
    for (const RankCase& c : kRankCases) {
      INFO("case " << std::string(c.what) << ": " << shape_str(c.a) << " x " << shape_str(c.b));
      const Tensor a = draw(c.a, -1, 1, 3).to(DType::Float32), b = draw(c.b, -1, 1, 4).to(DType::Float32);
      const Tensor y = matmul(a, b);
      CHECK(y.dtype() == DType::Float32);
      check_close(y, reference_matmul(a, b), f32_atol(c.a.back()), 0);
    }
  }
  SUBCASE("non-contiguous and transposed operand layouts give the same values") {
    for (const RankCase& c : kRankCases) {
      INFO("case " << std::string(c.what) << ": " << shape_str(c.a) << " x " << shape_str(c.b));
      const Tensor a = draw(c.a, -1, 1, 5), b = draw(c.b, -1, 1, 6);
      const Tensor expect = reference_matmul(a, b);
      check_close(matmul(test::noncontiguous(a), test::noncontiguous(b)), expect, 1e-14, 1e-12, "non-contiguous");
      check_close(matmul(transposed_layout(a), transposed_layout(b)), expect, 1e-14, 1e-12, "transposed layouts");
      check_close(matmul(transposed_layout(a).to(DType::Float32), test::noncontiguous(b).to(DType::Float32)),
                  reference_matmul(a.to(DType::Float32), b.to(DType::Float32)), f32_atol(c.a.back()), 0, "float32");
    }
  }
  SUBCASE("gradcheck for every rank rule (broadcast batch dims summed back)") {
    for (const RankCase& c : kRankCases) {
      INFO("case " << std::string(c.what) << ": " << shape_str(c.a) << " x " << shape_str(c.b));
      // Default tolerances: matmul is bilinear, so central differences are exact up to rounding.
      gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                {test::noncontiguous(draw(c.a, -1, 1, 7)), transposed_layout(draw(c.b, -1, 1, 8))});
    }
  }
}

TEST_CASE("matmul: backward against dA = W B^T and dB = A^T W") {
  SUBCASE("2-d") {
    const Tensor a = draw({4, 6}, -1, 1, 9), b = draw({6, 3}, -1, 1, 10), w = draw({4, 3}, -1, 1, 11);
    Tensor la = a.detach().requires_grad_(), lb = transposed_layout(b).detach().requires_grad_();
    matmul(la, lb).backward(test::noncontiguous(w));
    check_close(la.grad(), reference_matmul(w, b.t()), 1e-14, 1e-12, "dA");
    check_close(lb.grad(), reference_matmul(a.t(), w), 1e-14, 1e-12, "dB");
  }
  SUBCASE("[B, 1, m, k] x [H, k, n]: dA sums over H, dB sums over B") {
    const int64_t B = 2, H = 3, m = 2, k = 4, n = 3;
    const Tensor a = draw({B, 1, m, k}, -1, 1, 12), b = draw({H, k, n}, -1, 1, 13), w = draw({B, H, m, n}, -1, 1, 14);
    Tensor la = a.detach().requires_grad_(), lb = b.detach().requires_grad_();
    matmul(la, lb).backward(w);
    // dA[bb, 0] = sum_h W[bb, h] B[h]^T ; dB[h] = sum_bb A[bb, 0]^T W[bb, h]
    const Tensor da = sum(reference_matmul(w, b.transpose(-1, -2)), {1}, true);
    const Tensor db = sum(reference_matmul(a.transpose(-1, -2), w), {0});
    check_close(la.grad(), da, 1e-14, 1e-12, "dA");
    check_close(lb.grad(), db, 1e-14, 1e-12, "dB");
  }
  SUBCASE("only the operand that needs a gradient gets one") {
    Tensor la = draw({3, 4}).requires_grad_();
    const Tensor b = draw({4, 2});
    matmul(la, b).backward(ones({3, 2}, {DType::Float64}));
    CHECK(la.grad().defined());
    CHECK_FALSE(b.grad().defined());
  }
}

TEST_CASE("matmul: transposed, strided and broadcast operands are read in place") {
  // Sizes past the GEMM's register tiles and cache blocks, odd so every edge path runs.
  const int64_t m = 67, k = 130, n = 90;
  const Tensor a = draw({m, k}, -1, 1, 15), bt = draw({n, k}, -1, 1, 16);
  const Tensor expect = reference_matmul(a, bt.t());
  SUBCASE("float64") {
    check_close(matmul(a, bt.t()), expect, 1e-13, 1e-12, "b transposed");
    check_close(matmul(a.t().contiguous().t(), bt.t()), expect, 1e-13, 1e-12, "both transposed");
    check_close(matmul(test::noncontiguous(a), test::noncontiguous(bt).t()), expect, 1e-13, 1e-12, "strided");
  }
  SUBCASE("float32") {
    const Tensor a32 = a.to(DType::Float32), bt32 = bt.to(DType::Float32);
    const Tensor e32 = reference_matmul(a32, bt32.t());
    check_close(matmul(a32, bt32.t()), e32, f32_atol(k), 0, "b transposed");
    check_close(matmul(a32.t().contiguous().t(), bt32.t()), e32, f32_atol(k), 0, "both transposed");
    check_close(matmul(test::noncontiguous(a32), test::noncontiguous(bt32).t()), e32, f32_atol(k), 0, "strided");
    check_close(matmul(a32.narrow(1, 0, 100), bt32.t().narrow(0, 0, 100)),
                reference_matmul(a32.narrow(1, 0, 100), bt32.t().narrow(0, 0, 100)), f32_atol(100), 0, "narrowed k");
  }
  SUBCASE("an expanded (stride-0) batch and permuted batch dims") {
    const Tensor b = draw({5, 3}, -1, 1, 17);
    const Tensor a3 = draw({4, 2, 5}, -1, 1, 18);
    const Tensor expanded = b.unsqueeze(0).expand({4, 5, 3});  // stride 0 along the batch
    check_close(matmul(a3, expanded), reference_matmul(a3, b), 1e-14, 1e-12, "expanded");
    const Tensor ap = draw({2, 4, 5}, -1, 1, 19).permute({1, 0, 2});  // [4, 2, 5], batch stride 5
    check_close(matmul(ap, b), reference_matmul(ap, b), 1e-14, 1e-12, "permuted batch");
    gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], in[1].unsqueeze(0).expand({4, 5, 3})); },
              {ap, b});
  }
}

TEST_CASE("matmul: a larger float32 product and the same bits on 1 and 2 threads") {
  const int saved = num_threads();
  const Tensor a = draw({150, 301}, -1, 1, 20).to(DType::Float32), b = draw({301, 170}, -1, 1, 21).to(DType::Float32);
  const Tensor small_a = draw({64, 6, 9}, -1, 1, 22).to(DType::Float32), small_b = draw({9, 7}, -1, 1, 23).to(DType::Float32);
  const Tensor mid_a = draw({3, 130, 140}, -1, 1, 24).to(DType::Float32);
  const Tensor mid_b = draw({140, 120}, -1, 1, 25).to(DType::Float32);
  auto run = [&] {
    return std::vector<std::vector<double>>{test::values(matmul(a, b)), test::values(matmul(b.t(), a.t())),
                                            test::values(matmul(small_a, small_b)), test::values(matmul(mid_a, mid_b)),
                                            test::values(matmul(a.to(DType::Float64), b.to(DType::Float64)))};
  };
  set_num_threads(1);
  const auto one = run();
  set_num_threads(2);
  const auto two = run();
  set_num_threads(saved);
  for (size_t i = 0; i < one.size(); ++i) {
    INFO("product " << i);
    CHECK(one[i] == two[i]);
  }
  check_close(from_vector(one[0], {150, 170}), reference_matmul(a, b), f32_atol(301), 0, "150 x 301 x 170");
  check_close(from_vector(one[1], {170, 150}), reference_matmul(b.t(), a.t()), f32_atol(301), 0, "transposed");
}

TEST_CASE("matmul misuse: the message names matmul and both shapes") {
  test::check_throws_with([] { (void)matmul(ones({3, 4}), ones({5, 2})); }, {"matmul", "inner", "[3, 4]", "[5, 2]"});
  test::check_throws_with([] { (void)matmul(ones({3}), ones({4})); }, {"matmul", "[3]", "[4]"});
  test::check_throws_with([] { (void)matmul(ones({3}), ones({2, 4, 5})); }, {"matmul", "[3]", "[2, 4, 5]"});
  test::check_throws_with([] { (void)matmul(ones({2, 3, 5}), ones({4})); }, {"matmul", "[2, 3, 5]", "[4]"});
  test::check_throws_with([] { (void)matmul(ones({2, 3, 4}), ones({3, 4, 5})); },
                          {"matmul", "batch", "[2, 3, 4]", "[3, 4, 5]"});
  test::check_throws_with([] { (void)matmul(ones({3, 4}), ones({4, 2}, {DType::Float64})); },
                          {"matmul", "dtype", "float32", "float64"});
  test::check_throws_with([] { (void)matmul(ones({2, 2}, {DType::Int64}), ones({2, 2}, {DType::Int64})); },
                          {"matmul", "floating", "int64"});
  test::check_throws_with([] { (void)matmul(scalar_tensor(2), ones({2})); }, {"matmul", "[]", "[2]"});
}

TEST_CASE("linear: y = x W^T + b, as nn.Linear") {
  // Reference: y[..., o] = sum_i x[..., i] W[o, i] + b[o].
  auto reference_linear = [](const Tensor& x, const Tensor& w, const Tensor& b) {
    const Tensor y = reference_matmul(x, w.t());
    return b.defined() ? add(y, b.to(DType::Float64)) : y;
  };
  const Tensor x = draw({2, 3, 4}, -1, 1, 30), w = draw({5, 4}, -1, 1, 31), b = draw({5}, -1, 1, 32);
  SUBCASE("with and without bias, any leading dims, float64 and float32") {
    CHECK(linear(x, w, b).shape() == Shape{2, 3, 5});
    check_close(linear(x, w, b), reference_linear(x, w, b), 1e-14, 1e-12, "bias");
    check_close(linear(x, w), reference_linear(x, w, Tensor()), 1e-14, 1e-12, "no bias");
    check_close(linear(test::noncontiguous(x), transposed_layout(w), test::noncontiguous(b)), reference_linear(x, w, b),
                1e-14, 1e-12, "layouts");
    const Tensor v = draw({4}, -1, 1, 33);
    CHECK(linear(v, w, b).shape() == Shape{5});  // 1-d input, as nn.Linear
    check_close(linear(v, w, b), reference_linear(v, w, b), 1e-14, 1e-12, "1-d input");
    check_close(linear(x.narrow(0, 0, 1).select(1, 0), w, b), reference_linear(x.narrow(0, 0, 1).select(1, 0), w, b),
                1e-14, 1e-12, "batch 1");
    const Tensor y32 = linear(x.to(DType::Float32), w.to(DType::Float32), b.to(DType::Float32));
    CHECK(y32.dtype() == DType::Float32);
    check_close(y32, reference_linear(x.to(DType::Float32), w.to(DType::Float32), b.to(DType::Float32)), f32_atol(5), 0,
                "float32");
  }
  SUBCASE("gradients with respect to input, weight and bias") {
    // Default tolerances: affine in each argument.
    gradcheck([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
              {test::noncontiguous(x), transposed_layout(w), b});
    gradcheck([](const std::vector<Tensor>& in) { return linear(in[0], in[1]); }, {x, w});
    gradcheck([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
              {draw({1, 4}, -1, 1, 34), w, b});
    // d/db = dout summed over every leading dim.
    Tensor lb = b.detach().requires_grad_();
    linear(x, w, lb).backward(ones({2, 3, 5}, {DType::Float64}));
    check_close(lb.grad(), full({5}, 6.0, {DType::Float64}), 0, 0);
  }
  SUBCASE("misuse names linear and the shapes") {
    test::check_throws_with([&] { (void)linear(x, draw({5, 3})); }, {"linear", "[2, 3, 4]", "[5, 3]"});
    test::check_throws_with([&] { (void)linear(x, draw({4})); }, {"linear", "[2, 3, 4]", "[4]"});
    test::check_throws_with([&] { (void)linear(x, w, draw({4})); }, {"linear", "bias", "[4]", "[5, 4]"});
    test::check_throws_with([&] { (void)linear(scalar_tensor(1), w); }, {"linear", "[]"});
  }
}

TEST_CASE("matmul has a CUDA slot that answers clearly") {
  CHECK(supports(Op::matmul, Device::cpu()));
  if (!supports(Op::matmul, Device::cuda()))
    test::check_throws_with([] { check_supported(Op::matmul, Device::cuda()); }, {"matmul", "CUDA"});
}

// ---- the CUDA kernel (ops/cuda/matmul.cu, ops/cuda/gemm.cu) against the CPU ----------------------
//
// Tolerances, for inputs and upstream gradients in [-1, 1] and inner size K (the largest of
// m, k, n, since the gradients are products with inner size m or n):
//   float32, FP32 kernels: f32_atol(K) = 4 K eps. GPU and CPU each sum in their own order,
//     each typically within sqrt(K) eps of the exact product, so they differ far less.
//   float32, TF32 kernel: tf32_atol(K) = 4 * 2^-10 * sqrt(K). TF32 keeps 10 mantissa bits,
//     so rounding an input costs a relative 2^-11 at most and a product of two rounded
//     inputs (|ab| <= 1) is off by at most 2^-10. Those K errors are independent and of
//     either sign, so their sum has a standard deviation of at most 2^-10 sqrt(K / 3);
//     4 * 2^-10 sqrt(K) is 7 of them, while a misplaced fragment changes a result by ~1.
//   float64: 4 K eps64, as float32.
//   Integer-valued inputs in [-8, 8]: exact for every backend (TF32 holds them exactly,
//     and every partial sum is an integer far below 2^24).
namespace {

double tf32_atol(int64_t k) { return 4.0 * std::ldexp(1.0, -10) * std::sqrt(double(std::max<int64_t>(k, 1))); }
double f64_atol(int64_t k) { return 4.0 * double(std::max<int64_t>(k, 1)) * DBL_EPSILON; }

// Selects a GEMM backend (Note [gemm backends]) for one scope, then restores the previous one.
struct UseGemmBackend {
  cuda::GemmBackend saved{};
  explicit UseGemmBackend(cuda::GemmBackend backend) {
    if constexpr (kCudaBuilt) {
      saved = cuda::gemm_backend();
      cuda::set_gemm_backend(backend);
    }
  }
  ~UseGemmBackend() {
    if constexpr (kCudaBuilt) cuda::set_gemm_backend(saved);
  }
};

// The backends that can run here: all three on a GPU of compute capability 8.0+, mila and
// tf32 under emulation (cuBLAS is not emulated).
std::vector<cuda::GemmBackend> runnable_backends() {
  std::vector<cuda::GemmBackend> all;
  if constexpr (kCudaBuilt)
    for (cuda::GemmBackend b : {cuda::GemmBackend::mila, cuda::GemmBackend::tf32, cuda::GemmBackend::cublas})
      if (cuda::gemm_backend_available(b)) all.push_back(b);
  return all;
}

std::string backend_name(cuda::GemmBackend backend) {
  if constexpr (kCudaBuilt) return cuda::gemm_backend_name(backend);
  return "?";
}

// The float32 tolerance of a backend for inner size k.
test::DeviceTolerance f32_tolerance(cuda::GemmBackend backend, int64_t k) {
  return {.atol = backend == cuda::GemmBackend::tf32 ? tf32_atol(k) : f32_atol(k), .rtol = 0};
}

Tensor product(const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }

// compare_devices' `constant` list: none (forward and gradients), or both inputs (forward
// only). The gradient of a broadcast operand is summed over the batch by the engine with the
// op `sum`, so those cases compare gradients once sum runs on the GPU (ops/op_list.h).
std::vector<size_t> gradients_if_sum_on_gpu() {
  if (supports(Op::sum, test::cuda_device())) return {};
  MESSAGE("sum has no CUDA kernel yet: broadcast-batch cases compare the forward only");
  return {0, 1};
}
const std::vector<size_t> kForwardOnly = {0, 1};

// Integers in [-8, 8] as float32 (truncating draws from (-9, 9)).
Tensor small_integers(const Shape& shape, uint64_t seed) {
  return draw(shape, -8.99, 8.99, seed).to(DType::Int64).to(DType::Float32);
}

struct Mkn {
  int64_t m, k, n;
};
// 1 x 1 x 1, below a tile, and tails in every dim of the 128 x 128 x 8 (16) tiles.
const std::vector<Mkn> kDeviceShapes = {{1, 1, 1}, {3, 5, 7}, {17, 33, 65}, {64, 64, 64}, {129, 67, 131}};

}  // namespace

TEST_CASE("matmul: cuda matches cpu, forward and backward, every GEMM backend" * doctest::test_suite("cuda")) {
  for (cuda::GemmBackend backend : runnable_backends()) {
    CAPTURE(backend_name(backend));
    const UseGemmBackend use(backend);
    for (const Mkn& s : kDeviceShapes) {
      CAPTURE(s.m);
      CAPTURE(s.k);
      CAPTURE(s.n);
      const int64_t inner = std::max({s.m, s.k, s.n});
      const Tensor a = draw({s.m, s.k}, -1, 1, 40).to(DType::Float32), b = draw({s.k, s.n}, -1, 1, 41).to(DType::Float32);
      test::compare_devices("float32", product, {a, b}, f32_tolerance(backend, inner));
      test::compare_devices("float32, a transposed, b every other column", product,
                            {transposed_layout(a), test::noncontiguous(b)}, f32_tolerance(backend, inner));
      test::compare_devices("float32, b a .t() view", product, {a, b.t().contiguous().t()},
                            f32_tolerance(backend, inner));
      if (s.m * s.k * s.n <= 64 * 64 * 64)  // float64 runs the FP32 kernel's double twin (or cublasDgemm)
        test::compare_devices("float64", product, {draw({s.m, s.k}, -1, 1, 42), transposed_layout(draw({s.k, s.n}, -1, 1, 43))},
                              {.atol = f64_atol(inner), .rtol = 0});
    }
  }
}

TEST_CASE("matmul: cuda batched, broadcast, strided and empty operands" * doctest::test_suite("cuda")) {
  for (cuda::GemmBackend backend : runnable_backends()) {
    CAPTURE(backend_name(backend));
    const UseGemmBackend use(backend);
    const auto tol = [&](int64_t k) { return f32_tolerance(backend, k); };
    auto f32 = [](const Shape& shape, uint64_t seed) { return draw(shape, -1, 1, seed).to(DType::Float32); };
    // Tolerances count every product in a gradient: dA of a [B, 1, m, k] sums H items of
    // inner size n, dB sums B items of inner size m.
    const std::vector<size_t> summed = gradients_if_sum_on_gpu();
    SUBCASE("[B, 1, m, k] x [H, k, n]: broadcast batch dims, summed back in the gradients") {
      test::compare_devices("small", product, {f32({2, 1, 5, 7}, 50), f32({3, 7, 3}, 51)}, tol(2 * 5), summed);
      test::compare_devices("past a tile", product, {f32({2, 1, 130, 9}, 52), f32({3, 9, 20}, 53)}, tol(2 * 130),
                            summed);
      test::compare_devices("both broadcast, reversed layouts", product,
                            {transposed_layout(f32({3, 1, 6, 5}, 54)), transposed_layout(f32({1, 4, 5, 9}, 55))},
                            tol(4 * 9), summed);
    }
    SUBCASE("an expanded (stride-0) batch operand and permuted batch dims") {
      test::compare_devices("b expanded", [](const std::vector<Tensor>& in) {
        return matmul(in[0], in[1].unsqueeze(0).expand({4, 5, 3}));
      }, {f32({4, 6, 5}, 56), f32({5, 3}, 57)}, tol(4 * 6), summed);
      test::compare_devices("a expanded, b transposed", [](const std::vector<Tensor>& in) {
        return matmul(in[0].unsqueeze(0).expand({4, 6, 5}), in[1].transpose(-1, -2));
      }, {f32({6, 5}, 58), f32({4, 3, 5}, 59)}, tol(4 * 3), summed);
      // [4, 2] batch with strides (m k, 4 m k): the two batch dims do not merge into one.
      test::compare_devices("permuted batch", product, {f32({2, 4, 6, 5}, 60).permute({1, 0, 2, 3}), f32({5, 3}, 61)},
                            tol(8 * 6), summed);
      test::compare_devices("every other element", product,
                            {test::noncontiguous(f32({3, 6, 5}, 62)), test::noncontiguous(f32({3, 5, 4}, 63))}, tol(6));
      test::compare_devices("narrowed (unaligned) operands", product,
                            {f32({40, 37}, 64).narrow(1, 1, 33), f32({36, 50}, 65).narrow(0, 3, 33).narrow(1, 1, 45)},
                            tol(45));
    }
    SUBCASE("vectors, size-1 dims, batch 1") {
      test::compare_devices("dot", product, {f32({37}, 66), f32({37}, 67)}, tol(37));
      test::compare_devices("row vector x matrix", product, {f32({9}, 68), f32({9, 5}, 69)}, tol(9));
      test::compare_devices("matrix x column vector", product, {f32({5, 9}, 70), f32({9}, 71)}, tol(9));
      test::compare_devices("outer product (k = 1)", product, {f32({7, 1}, 72), f32({1, 6}, 73)}, tol(7));
      test::compare_devices("batch 1", product, {f32({1, 3, 4}, 74), f32({1, 4, 2}, 75)}, tol(4));
    }
    SUBCASE("k = 0 gives zeros; empty m and batch give empty results") {
      test::compare_devices("k = 0", product, {f32({3, 0}, 76), f32({0, 4}, 77)}, {.atol = 0, .rtol = 0});
      test::compare_devices("k = 0, batched", product, {f32({2, 3, 0}, 78), f32({0, 5}, 79)}, {.atol = 0, .rtol = 0},
                            summed);
      // dB = A^T dout is a product with k = 0 here.
      test::compare_devices("m = 0", product, {f32({0, 5}, 80), f32({5, 4}, 81)}, {.atol = 0, .rtol = 0});
      test::compare_devices("empty batch", product, {f32({2, 0, 3, 5}, 82), f32({5, 2}, 83)}, {.atol = 0, .rtol = 0},
                            summed);
    }
  }
}

TEST_CASE("matmul: cuda exact on small integers, every backend and layout (the TF32 fragments)" *
          doctest::test_suite("cuda")) {
  // Integer-valued operands are exact in TF32 and every partial sum is exact in FP32, so each
  // backend must give the CPU's result to the bit: a fragment element read from the wrong row
  // or column of the mma layout (Note [tensor-core fragments]) cannot hide in a tolerance.
  // Forward only: the upstream gradient compare_devices draws is not integer-valued.
  const std::vector<Mkn> shapes = {{16, 8, 8},     // one mma tile
                                   {128, 16, 128}, // one block tile, one k-step, aligned cp.async
                                   {36, 32, 44},   // tails in m, aligned copies up to the n edge
                                   {35, 29, 47},   // unaligned: element-wise loads everywhere
                                   {130, 40, 260}};  // several blocks and k-steps
  for (cuda::GemmBackend backend : runnable_backends()) {
    CAPTURE(backend_name(backend));
    const UseGemmBackend use(backend);
    for (const Mkn& s : shapes) {
      CAPTURE(s.m);
      CAPTURE(s.k);
      CAPTURE(s.n);
      const Tensor a = small_integers({s.m, s.k}, 90), b = small_integers({s.k, s.n}, 91);
      const Tensor at = small_integers({s.k, s.m}, 92).t(), bt = small_integers({s.n, s.k}, 93).t();
      test::compare_devices("row-major x row-major", product, {a, b}, {.atol = 0, .rtol = 0}, kForwardOnly);
      test::compare_devices("row-major x column-major", product, {a, bt}, {.atol = 0, .rtol = 0}, kForwardOnly);
      test::compare_devices("column-major x row-major", product, {at, b}, {.atol = 0, .rtol = 0}, kForwardOnly);
      test::compare_devices("column-major x column-major", product, {at, bt}, {.atol = 0, .rtol = 0}, kForwardOnly);
    }
    test::compare_devices("batched, broadcast", product,
                          {small_integers({2, 1, 20, 24}, 94), small_integers({3, 24, 36}, 95)}, {.atol = 0, .rtol = 0}, kForwardOnly);
    test::compare_devices("n edge inside an aligned 16-byte chunk", product,
                          {small_integers({20, 24}, 96), small_integers({24, 44}, 97).narrow(1, 0, 42)},
                          {.atol = 0, .rtol = 0}, kForwardOnly);
    // A's rows are 24 floats apart (aligned) but k = 22: the last 16-byte chunk of each row
    // reaches two NaNs past k. A kernel that copied them would multiply them by B's zero
    // padding and return NaN; the edge chunk must be read element by element.
    const Tensor wide = small_integers({20, 24}, 98), b = small_integers({22, 36}, 99);
    fill_(wide.narrow(1, 22, 2), NAN);
    const Tensor a = wide.narrow(1, 0, 22);
    check_close(matmul(wide.to(test::cuda_device()).narrow(1, 0, 22), b.to(test::cuda_device())), matmul(a, b), 0, 0,
                "k edge inside an aligned 16-byte chunk, NaN beyond it");
  }
}

TEST_CASE("matmul: cuda gives the same bits twice, every backend" * doctest::test_suite("cuda")) {
  const Device gpu = test::cuda_device();
  const Tensor a = draw({3, 150, 301}, -1, 1, 100).to(DType::Float32).to(gpu);
  const Tensor b = draw({301, 170}, -1, 1, 101).to(DType::Float32).to(gpu);
  for (cuda::GemmBackend backend : runnable_backends()) {
    CAPTURE(backend_name(backend));
    const UseGemmBackend use(backend);
    const std::vector<double> first = test::values(matmul(a, b).to(Device::cpu()));
    const std::vector<double> second = test::values(matmul(a, b).to(Device::cpu()));
    CHECK(first == second);
  }
}

TEST_CASE("matmul: the GEMM backend switch" * doctest::test_suite("cuda")) {
  if constexpr (kCudaBuilt) {
    CHECK(cuda::parse_gemm_backend("mila") == cuda::GemmBackend::mila);
    CHECK(cuda::parse_gemm_backend("tf32") == cuda::GemmBackend::tf32);
    CHECK(cuda::parse_gemm_backend("cublas") == cuda::GemmBackend::cublas);
    test::check_throws_with([] { (void)cuda::parse_gemm_backend("cudnn"); },
                            {"MILA_CUDA_GEMM", "cudnn", "mila", "tf32", "cublas"});
    for (cuda::GemmBackend b : {cuda::GemmBackend::mila, cuda::GemmBackend::tf32, cuda::GemmBackend::cublas})
      CHECK(cuda::parse_gemm_backend(cuda::gemm_backend_name(b)) == b);
    {
      const UseGemmBackend use(cuda::GemmBackend::tf32);
      CHECK(cuda::gemm_backend() == cuda::GemmBackend::tf32);
    }
    CHECK(cuda::gemm_backend_available(cuda::GemmBackend::mila));
    if (!cuda::gemm_backend_available(cuda::GemmBackend::cublas)) {  // the emulation build
      const UseGemmBackend use(cuda::GemmBackend::cublas);
      const Tensor x = ones({2, 2}, {DType::Float32, test::cuda_device()});
      test::check_throws_with([&] { (void)matmul(x, x); }, {"cuBLAS is not emulated", "MILA_CUDA_GEMM=cublas"});
    }
  }
}
