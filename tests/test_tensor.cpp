// test_tensor.cpp - the Tensor itself: factories, random draws, dtypes and conversions,
// contiguous/clone, item(), the CPU allocator and its statistics, printing, misuse errors,
// CUDA tensors in a CPU-only build, and Device::parse.
//
// Expected values come from plain loops in this file or are worked out by hand in the
// comments; nothing is copied from the implementation's output.
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cuda_compare.h"

using namespace mila;
using test::at;
using test::check_throws_with;
using test::values;

namespace {

const DType kAllDTypes[] = {DType::Float32, DType::Float64, DType::Int64, DType::UInt8};

// Row-major contiguous strides, computed here rather than with the library's helper.
Shape row_major(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

double var_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return s / double(v.size());
}

// What PyTorch (on x86) gives when converting `v`, stored as `src`, to `dst`: floating to
// integer truncates toward zero, and to uint8 then keeps the low 8 bits (-1.0 -> 255).
double reference_convert(double v, DType src, DType dst) {
  switch (dst) {
    case DType::Float64: return v;
    case DType::Float32: return double(float(v));
    case DType::Int64: return is_floating(src) ? std::trunc(v) : v;
    case DType::UInt8: {
      const double i = is_floating(src) ? std::trunc(v) : v;
      return std::fmod(std::fmod(i, 256.0) + 256.0, 256.0);
    }
  }
  return 0;
}

}  // namespace

// ---------------------------------------------------------------- factories
TEST_CASE("factories: empty, zeros, ones, full give the requested shape, dtype and values") {
  for (DType dt : kAllDTypes) {
    CAPTURE(dtype_name(dt));
    const Shape shape{2, 3, 4};
    const Tensor e = empty(shape, {dt});
    CHECK(e.shape() == shape);
    CHECK(e.strides() == row_major(shape));
    CHECK(e.dtype() == dt);
    CHECK(e.device() == Device::cpu());
    CHECK(e.offset() == 0);
    CHECK(e.is_contiguous());
    CHECK(e.numel() == 24);
    CHECK(e.nbytes() == 24 * dtype_size(dt));
    CHECK_FALSE(e.requires_grad());
    CHECK(e.is_leaf());

    CHECK(values(zeros(shape, {dt})) == std::vector<double>(24, 0.0));
    CHECK(values(ones(shape, {dt})) == std::vector<double>(24, 1.0));
    CHECK(values(full(shape, 7, {dt})) == std::vector<double>(24, 7.0));
    CHECK(zeros(shape, {dt}).dtype() == dt);
  }
  CHECK(values(full({3}, -2.5, {DType::Float32})) == std::vector<double>(3, -2.5));
  CHECK(values(full({2}, -2.75, {DType::Int64})) == std::vector<double>{-2, -2});  // truncation
  CHECK(values(full({2}, 300, {DType::UInt8})) == std::vector<double>{44, 44});   // 300 mod 256

  SUBCASE("0-d and empty tensors") {
    const Tensor s = scalar_tensor(3.5, {DType::Float64});
    CHECK(s.dim() == 0);
    CHECK(s.numel() == 1);
    CHECK(s.shape().empty());
    CHECK(s.item<double>() == 3.5);
    const Tensor z = zeros({});
    CHECK(z.dim() == 0);
    CHECK(at(z, 0) == 0.0);
    for (const Shape& shape : {Shape{0}, Shape{2, 0, 3}, Shape{0, 0}}) {
      const Tensor t = ones(shape);
      CHECK(t.numel() == 0);
      CHECK(t.shape() == shape);
      CHECK(t.nbytes() == 0);
      CHECK(t.is_contiguous());
    }
  }

  SUBCASE("requires_grad option") {
    const Tensor t = zeros({2}, {DType::Float64, Device::cpu(), true});
    CHECK(t.requires_grad());
    CHECK(t.is_leaf());
    CHECK(empty({1}, {DType::Float32, Device::cpu(), true}).requires_grad());
    check_throws_with([] { (void)zeros({2}, {DType::Int64, Device::cpu(), true}); }, {"requires_grad_", "int64"});
  }
}

TEST_CASE("arange: integer and float steps, negative steps, dtypes, errors") {
  // Reference: n = ceil((end - start) / step) values start + i * step, as torch.arange.
  struct Case {
    double start, end, step;
  };
  for (const Case c : {Case{0, 5, 1}, Case{2, 11, 3}, Case{0, 1, 0.1}, Case{-1, 1, 0.5}, Case{1, 0, -0.25},
                       Case{5, 0, -2}, Case{3, 3, 1}, Case{0.5, 2.6, 0.7}, Case{-3, -10, -1.5}}) {
    CAPTURE(c.start);
    CAPTURE(c.end);
    CAPTURE(c.step);
    std::vector<double> expected;
    for (int64_t i = 0; i < int64_t(std::ceil((c.end - c.start) / c.step)); ++i) expected.push_back(c.start + double(i) * c.step);
    const Tensor t = arange(c.start, c.end, c.step, {DType::Float64});
    CHECK(t.dim() == 1);
    CHECK(values(t) == expected);
    // float32: the same values rounded to float.
    std::vector<double> expected32;
    for (double v : expected) expected32.push_back(double(float(v)));
    CHECK(values(arange(c.start, c.end, c.step)) == expected32);
    CHECK(arange(c.start, c.end, c.step).dtype() == DType::Float32);
  }
  CHECK(values(arange(4)) == std::vector<double>{0, 1, 2, 3});
  CHECK(values(arange(1, 2, 0.25)) == std::vector<double>{1, 1.25, 1.5, 1.75});  // end excluded
  CHECK(arange(0, 1, 0.1).numel() == 10);
  CHECK(values(arange(3, 0, -1, {DType::Int64})) == std::vector<double>{3, 2, 1});
  CHECK(arange(3, 0, -1, {DType::Int64}).dtype() == DType::Int64);
  CHECK(values(arange(0, 3, 0.5, {DType::Int64})) == std::vector<double>{0, 0, 1, 1, 2, 2});  // truncated
  CHECK(arange(0).numel() == 0);

  check_throws_with([] { (void)arange(0, 1, 0); }, {"arange", "step"});
  check_throws_with([] { (void)arange(0, 5, -1); }, {"arange", "sign"});  // torch.arange refuses too
  check_throws_with([] { (void)arange(5, 0, 1); }, {"arange", "sign"});
  check_throws_with([] { (void)arange(0, std::numeric_limits<double>::infinity()); }, {"arange"});
  check_throws_with([] { (void)arange(0, 1, std::nan("")); }, {"arange"});
  check_throws_with([] { (void)arange(0, 1e300); }, {"arange", "too many"});
}

TEST_CASE("rand and randn: reproducible with manual_seed, per-generator streams, statistics") {
  SUBCASE("manual_seed reproduces the default generator's draws") {
    manual_seed(123);
    const std::vector<double> a = values(rand({257}, {DType::Float64}));
    const std::vector<double> an = values(randn({33}, {DType::Float64}));
    manual_seed(123);
    CHECK(values(rand({257}, {DType::Float64})) == a);
    CHECK(values(randn({33}, {DType::Float64})) == an);
    manual_seed(124);
    CHECK(values(rand({257}, {DType::Float64})) != a);
  }

  SUBCASE("successive draws continue the stream (counter-based: 6 then 4 equals 10)") {
    Generator g(42);
    const std::vector<double> first = values(rand({6}, {DType::Float64}, &g));
    const std::vector<double> second = values(rand({4}, {DType::Float64}, &g));
    CHECK(first != std::vector<double>(first.size(), first[0]));
    Generator h(42);
    const std::vector<double> all = values(rand({2, 5}, {DType::Float64}, &h));
    std::vector<double> joined = first;
    joined.insert(joined.end(), second.begin(), second.end());
    CHECK(all == joined);
    CHECK(g.counter() == 10);
    CHECK(h.counter() == 10);
  }

  SUBCASE("generators are independent of each other and of the default one") {
    manual_seed(7);
    const std::vector<double> from_default = values(rand({16}, {DType::Float64}));
    Generator g1(5), g2(5), g3(6);
    manual_seed(7);
    const std::vector<double> a = values(rand({16}, {DType::Float64}, &g1));
    (void)rand({1000}, {DType::Float64}, &g3);  // drawing elsewhere changes nothing here
    const std::vector<double> b = values(rand({16}, {DType::Float64}, &g2));
    CHECK(a == b);  // same seed, same stream
    CHECK(a != values(rand({16}, {DType::Float64}, &g3)));
    // None of that touched the default generator.
    CHECK(values(rand({16}, {DType::Float64})) == from_default);
  }

  SUBCASE("float32 draws are the float64 draws rounded") {
    Generator g(99), h(99);
    const std::vector<double> d = values(rand({100}, {DType::Float64}, &g));
    const std::vector<double> f = values(rand({100}, {DType::Float32}, &h));
    for (size_t i = 0; i < d.size(); ++i) CHECK(f[i] == double(float(d[i])));
    CHECK(rand({3}).dtype() == DType::Float32);
  }

  SUBCASE("uniform statistics: range, mean 1/2, variance 1/12, flat histogram") {
    Generator g(2024);
    const std::vector<double> u = values(rand({100000}, {DType::Float64}, &g));
    CHECK(*std::min_element(u.begin(), u.end()) >= 0.0);
    CHECK(*std::max_element(u.begin(), u.end()) < 1.0);
    // Standard error of the mean is 0.29 / sqrt(1e5) ~ 0.0009: these bounds are ~5 sigma.
    CHECK(std::abs(mean_of(u) - 0.5) < 0.005);
    CHECK(std::abs(var_of(u) - 1.0 / 12) < 0.002);
    std::vector<int> bins(10, 0);
    for (double v : u) ++bins[size_t(v * 10)];
    for (int b : bins) CHECK(std::abs(b - 10000) < 600);  // sd ~95 per bin
  }

  SUBCASE("normal statistics: mean 0, variance 1, 68% within one sigma, pairs uncorrelated") {
    Generator g(77);
    const std::vector<double> n = values(randn({100001}, {DType::Float64}, &g));  // odd count on purpose
    CHECK(std::abs(mean_of(n)) < 0.02);
    CHECK(std::abs(var_of(n) - 1.0) < 0.03);
    int64_t within = 0;
    for (double v : n) within += std::abs(v) < 1.0;
    CHECK(std::abs(double(within) / double(n.size()) - 0.6827) < 0.01);
    // Box-Muller makes elements 2j and 2j+1 from the same two uniforms: they must still be
    // uncorrelated.
    double c = 0;
    for (size_t j = 0; j + 1 < n.size(); j += 2) c += n[j] * n[j + 1];
    CHECK(std::abs(c / double(n.size() / 2)) < 0.02);
    for (double v : n) REQUIRE(std::isfinite(v));
  }

  SUBCASE("float32 rand never returns 1.0") {
    // A float64 draw within 2^-25 of 1 rounds to 1.0f. Find one (about 1 in 3e7) by
    // scanning the generator's pure draw function, then make rand() produce it.
    Generator g(0);
    uint64_t i = 0;
    while (float(g.uniform(i)) < 1.0f && i < (uint64_t(1) << 31)) ++i;
    REQUIRE(float(g.uniform(i)) == 1.0f);
    g.set_state(0, i - 1);
    const std::vector<double> r = values(rand({3}, {DType::Float32}, &g));
    for (double v : r) CHECK(v < 1.0);
    CHECK(r[1] > 0.9999999);  // still the top of the range
  }

  SUBCASE("errors") {
    check_throws_with([] { (void)rand({2}, {DType::Int64}); }, {"rand", "int64"});
    check_throws_with([] { (void)randn({2}, {DType::UInt8}); }, {"randn", "uint8"});
    Generator g(3);
    check_throws_with([&] { (void)rand({2, -1}, {}, &g); }, {"rand", "[2, -1]"});
    check_throws_with([&] { (void)randn({-4}, {}, &g); }, {"randn", "[-4]"});
    CHECK(g.counter() == 0);  // a refused call draws nothing
  }
}

TEST_CASE("randint: values in [low, high), every value hit, dtypes, errors") {
  Generator g(5);
  const Tensor r = randint(-3, 4, {7000}, {DType::Int64}, &g);
  CHECK(r.dtype() == DType::Int64);
  std::vector<int> counts(7, 0);
  for (double v : values(r)) {
    REQUIRE(v >= -3);
    REQUIRE(v < 4);
    REQUIRE(v == std::floor(v));
    ++counts[size_t(v + 3)];
  }
  for (int c : counts) CHECK(std::abs(c - 1000) < 150);  // sd ~29
  CHECK(randint(0, 2, {3}).dtype() == DType::Int64);     // the default dtype

  const Tensor u = randint(250, 256, {500}, {DType::UInt8}, &g);
  CHECK(u.dtype() == DType::UInt8);
  for (double v : values(u)) CHECK((v >= 250 && v <= 255));
  const Tensor f = randint(-2, -1, {10}, {DType::Float32}, &g);
  CHECK(values(f) == std::vector<double>(10, -2.0));

  // A range wider than 2^53 keeps exact integers (no detour through double).
  const int64_t lo = (int64_t(1) << 60) + 1;
  const Tensor big = randint(lo, lo + 3, {50}, {DType::Int64}, &g);
  for (int64_t k = 0; k < 50; ++k) {
    const int64_t v = big.data<int64_t>()[k];
    CHECK((v >= lo && v < lo + 3));
  }

  Generator a(8), b(8);
  CHECK(values(randint(0, 100, {20}, {DType::Int64}, &a)) == values(randint(0, 100, {20}, {DType::Int64}, &b)));
  check_throws_with([] { (void)randint(5, 5, {2}); }, {"randint", "low 5", "high 5"});
  check_throws_with([] { (void)randint(0, 5, {-2}); }, {"randint", "[-2]"});
}

TEST_CASE("randn's log, sin and cos (tensor/portable_math.h) are within 1.5 ulp of long double") {
  // The normal draws compute log(u1) and sin/cos(2 pi u2) from exactly rounded operations
  // only, so that the GPU gets the same bits (Note [one random stream for every device]).
  // Their accuracy, against long double (64 mantissa bits on x86) with the same exact
  // reduction of 2 pi u to an angle within pi/4 of an axis: fdlibm's polynomials give about
  // 0.75 ulp for log and 1.5 for sin and cos (measured over 5 million draws).
  auto ulps = [](double got, long double ref) {
    const double r = double(ref);
    const double ulp = std::nextafter(std::abs(r), std::numeric_limits<double>::infinity()) - std::abs(r);
    return double(std::abs((long double)got - ref) / ulp);
  };
  double worst_log = 0, worst_sin = 0, worst_cos = 0;
  for (uint64_t i = 0; i < 200000; ++i) {
    const double u1 = 1.0 - random_uniform(3, 2 * i), u2 = random_uniform(3, 2 * i + 1);
    worst_log = std::max(worst_log, u1 == 1.0 ? 0.0 : ulps(portable::log(u1), std::log((long double)u1)));
    // 2 pi u2 = (pi/2)(q + f): sin and cos of (pi/2) f, or of (pi/2)(1 - f) swapped.
    const long double t = 4.0L * u2;
    const int q = int(t);
    long double f = t - q;
    const bool folded = f > 0.5L;
    if (folded) f = 1.0L - f;
    const long double b = 1.57079632679489661923132169163975144L * f;
    long double sb = std::sin(b), cb = std::cos(b);
    if (folded) std::swap(sb, cb);
    const long double s[4] = {sb, cb, -sb, -cb}, c[4] = {cb, -sb, -cb, sb};
    const portable::SinCos got = portable::sincos_2pi(u2);
    if (s[q] != 0) worst_sin = std::max(worst_sin, ulps(got.sin, s[q]));
    if (c[q] != 0) worst_cos = std::max(worst_cos, ulps(got.cos, c[q]));
  }
  CHECK(worst_log <= 1.0);
  CHECK(worst_sin <= 1.5);
  CHECK(worst_cos <= 1.5);
  // Exact points: log 1 = 0, and the axes.
  CHECK(portable::log(1.0) == 0.0);
  CHECK(portable::log(0.5) == -std::log(2.0));
  CHECK(portable::sincos_2pi(0.0).sin == 0.0);
  CHECK(portable::sincos_2pi(0.25).sin == 1.0);
  CHECK(portable::sincos_2pi(0.5).cos == -1.0);
  CHECK(portable::sincos_2pi(0.75).sin == -1.0);
}

TEST_CASE("rand, randn, randint: cuda draws are the cpu draws bit for bit, and advance the generator alike" *
          doctest::test_suite("cuda")) {
  const Device gpu = Device::cuda();
  // One generator per device from the same seed: the same calls give the same bits and
  // leave both generators at the same counter. Odd sizes (randn pairs its draws) and a
  // prime above 256 threads x 4.
  for (const Shape& shape : {Shape{1031}, Shape{3, 5, 7}, Shape{1}, Shape{}, Shape{0, 4}, Shape{2, 2}}) {
    INFO(shape_str(shape));
    Generator on_cpu(2024), on_gpu(2024);
    for (DType dtype : {DType::Float32, DType::Float64}) {
      INFO(dtype_name(dtype));
      test::check_close(rand(shape, {dtype, gpu}, &on_gpu).to(Device::cpu()), rand(shape, {dtype}, &on_cpu), 0, 0, "rand");
      test::check_close(randn(shape, {dtype, gpu}, &on_gpu).to(Device::cpu()), randn(shape, {dtype}, &on_cpu), 0, 0,
                        "randn");
      CHECK(on_gpu.counter() == on_cpu.counter());
    }
    for (DType dtype : kAllDTypes) {
      INFO(dtype_name(dtype));
      test::check_close(randint(-3, 250, shape, {dtype, gpu}, &on_gpu).to(Device::cpu()),
                        randint(-3, 250, shape, {dtype}, &on_cpu), 0, 0, "randint");
    }
    // A range wider than 2^63 stays exact in int64.
    const int64_t lo = std::numeric_limits<int64_t>::min() + 5, hi = std::numeric_limits<int64_t>::max() - 3;
    test::check_close(randint(lo, hi, shape, {DType::Int64, gpu}, &on_gpu).to(Device::cpu()),
                      randint(lo, hi, shape, {DType::Int64}, &on_cpu), 0, 0, "randint, the widest range");
    CHECK(on_gpu.counter() == on_cpu.counter());
  }
  SUBCASE("the default generator, requires_grad, and a stream that alternates between devices") {
    manual_seed(5);
    const Tensor a = randn({33}, {DType::Float32, gpu, true});
    CHECK(a.requires_grad());
    CHECK(a.device() == gpu);
    const Tensor b = rand({7}, {DType::Float64});
    const Tensor c = randn({9}, {DType::Float64, gpu});
    manual_seed(5);
    test::check_close(a.to(Device::cpu()), randn({33}), 0, 0, "first draw");
    test::check_close(b, rand({7}, {DType::Float64, gpu}), 0, 0, "second draw, devices swapped");
    test::check_close(c.to(Device::cpu()), randn({9}, {DType::Float64}), 0, 0, "third draw");
  }
  SUBCASE("the same seed gives the same device draw on every run") {
    Generator g1(77), g2(77);
    test::check_close(randn({4099}, {DType::Float32, gpu}, &g1).to(Device::cpu()),
                      randn({4099}, {DType::Float32, gpu}, &g2).to(Device::cpu()), 0, 0);
  }
  SUBCASE("float32 rand on the device never returns 1.0 either") {
    Generator g(0);
    uint64_t i = 0;
    while (float(g.uniform(i)) < 1.0f && i < (uint64_t(1) << 31)) ++i;
    REQUIRE(float(g.uniform(i)) == 1.0f);
    g.set_state(0, i - 1);
    const std::vector<double> r = values(rand({3}, {DType::Float32, gpu}, &g).to(Device::cpu()));
    CHECK(r[1] < 1.0);
    CHECK(r[1] > 0.9999999);
  }
  SUBCASE("refused calls draw nothing") {
    Generator g(3);
    check_throws_with([&] { (void)rand({2}, {DType::Int64, gpu}, &g); }, {"rand", "int64"});
    check_throws_with([&] { (void)randn({-1}, {DType::Float32, gpu}, &g); }, {"randn", "[-1]"});
    CHECK(g.counter() == 0);
  }
}

TEST_CASE("from_blob, from_vector, tensor and *_like") {
  SUBCASE("from_blob copies the data") {
    std::vector<float> buf{1, 2, 3, 4, 5, 6};
    const Tensor t = from_blob(buf.data(), {2, 3});
    CHECK(t.dtype() == DType::Float32);
    CHECK(t.shape() == Shape{2, 3});
    CHECK(values(t) == std::vector<double>{1, 2, 3, 4, 5, 6});
    buf[0] = 100;  // the tensor owns a copy
    CHECK(at(t, 0) == 1);
    CHECK(static_cast<const void*>(t.data<float>()) != static_cast<const void*>(buf.data()));
  }
  SUBCASE("from_vector for every element type, with and without conversion") {
    CHECK(values(from_vector(std::vector<double>{0.5, -1.5}, {2})) == std::vector<double>{0.5, -1.5});
    CHECK(from_vector(std::vector<double>{0.5}, {1}).dtype() == DType::Float64);
    const Tensor i = from_vector(std::vector<int64_t>{-7, 8, 9, 10}, {2, 2});
    CHECK(i.dtype() == DType::Int64);
    CHECK(values(i) == std::vector<double>{-7, 8, 9, 10});
    CHECK(values(from_vector(std::vector<uint8_t>{0, 255}, {2})) == std::vector<double>{0, 255});
    const Tensor c = from_vector(std::vector<float>{1.75f, -2.5f}, {2}, {DType::Int64});
    CHECK(c.dtype() == DType::Int64);
    CHECK(values(c) == std::vector<double>{1, -2});
    const Tensor g = from_vector(std::vector<double>{1, 2}, {2}, {DType::Float64, Device::cpu(), true});
    CHECK(g.requires_grad());
    CHECK(g.is_leaf());
    CHECK(from_vector(std::vector<float>{}, {0}).numel() == 0);
    check_throws_with([] { (void)from_vector(std::vector<float>{1}, {-1}); }, {"negative", "[-1]"});
  }
  SUBCASE("tensor({...})") {
    const Tensor t = tensor({1, 2.5, -3});
    CHECK(t.dtype() == DType::Float32);
    CHECK(t.shape() == Shape{3});
    CHECK(values(t) == std::vector<double>{1, 2.5, -3});
    CHECK(values(tensor({1, 2}, {DType::UInt8})) == std::vector<double>{1, 2});
    CHECK(tensor({1, 2}, {DType::Int64}).dtype() == DType::Int64);
  }
  SUBCASE("*_like keep shape, dtype and device, and are contiguous and fresh") {
    const Tensor base = arange(0, 12, 1, {DType::Int64}).reshape({3, 4}).t();  // non-contiguous
    for (const Tensor& t : {zeros_like(base), ones_like(base), empty_like(base), full_like(base, 5)}) {
      CHECK(t.shape() == Shape{4, 3});
      CHECK(t.dtype() == DType::Int64);
      CHECK(t.device() == base.device());
      CHECK(t.is_contiguous());
      CHECK(t.storage() != base.storage());
      CHECK_FALSE(t.requires_grad());
    }
    CHECK(values(zeros_like(base)) == std::vector<double>(12, 0));
    CHECK(values(ones_like(base)) == std::vector<double>(12, 1));
    CHECK(values(full_like(base, 5)) == std::vector<double>(12, 5));
    const Tensor g = ones({2}, {DType::Float64}).requires_grad_();
    CHECK_FALSE(zeros_like(g).requires_grad());  // as PyTorch: requires_grad is not copied
  }
}

// ---------------------------------------------------------------- dtypes and conversions
TEST_CASE("dtype names and sizes") {
  CHECK(std::string(dtype_name(DType::Float32)) == "float32");
  CHECK(std::string(dtype_name(DType::Float64)) == "float64");
  CHECK(std::string(dtype_name(DType::Int64)) == "int64");
  CHECK(std::string(dtype_name(DType::UInt8)) == "uint8");
  CHECK(dtype_size(DType::Float32) == sizeof(float));
  CHECK(dtype_size(DType::Float64) == sizeof(double));
  CHECK(dtype_size(DType::Int64) == sizeof(int64_t));
  CHECK(dtype_size(DType::UInt8) == 1);
  CHECK(is_floating(DType::Float32));
  CHECK(is_floating(DType::Float64));
  CHECK_FALSE(is_floating(DType::Int64));
  CHECK_FALSE(is_floating(DType::UInt8));
}

TEST_CASE("to(dtype): every pair of dtypes converts like PyTorch") {
  const std::vector<double> floats{-300.5, -2.75, -1.0, -0.5, 0, 0.5, 1.25, 2.999, 100.5, 255.0, 255.9, 256.0, 300.0, 1e6 + 0.25};
  const std::vector<double> ints{-300, -256, -1, 0, 1, 127, 128, 255, 256, 1000, int64_t(1) << 40};
  const std::vector<double> bytes{0, 1, 127, 128, 255};
  for (DType src : kAllDTypes) {
    const std::vector<double>& vals = is_floating(src) ? floats : (src == DType::Int64 ? ints : bytes);
    // Build the source from float64 values that are exact in `src`.
    std::vector<double> exact;
    for (double v : vals) exact.push_back(reference_convert(v, DType::Float64, src));
    const Tensor s = from_vector(exact, {int64_t(exact.size())}).to(src);
    REQUIRE(s.dtype() == src);
    REQUIRE(values(s) == exact);
    for (DType dst : kAllDTypes) {
      CAPTURE(dtype_name(src));
      CAPTURE(dtype_name(dst));
      const Tensor d = s.to(dst);
      CHECK(d.dtype() == dst);
      CHECK(d.shape() == s.shape());
      const std::vector<double> got = values(d);
      for (size_t i = 0; i < exact.size(); ++i) {
        CAPTURE(exact[i]);
        CHECK(got[i] == reference_convert(exact[i], src, dst));
      }
    }
  }
  SUBCASE("the cases PyTorch users meet") {
    CHECK(values(tensor({-1.0, 300.0, 2.7}).to(DType::UInt8)) == std::vector<double>{255, 44, 2});
    CHECK(values(tensor({-1.7, 0.2, 2.9}).to(DType::Int64)) == std::vector<double>{-1, 0, 2});
    CHECK(values(tensor({-1, 256}, {DType::Int64}).to(DType::UInt8)) == std::vector<double>{255, 0});
  }
  SUBCASE("NaN, infinity and out-of-range values to integers are defined (INT64_MIN, as on x86)") {
    const double inf = std::numeric_limits<double>::infinity();
    const Tensor x = from_vector(std::vector<double>{std::nan(""), inf, -inf, 1e30, -1e30}, {5});
    const Tensor i = x.to(DType::Int64);
    for (int64_t k = 0; k < 5; ++k) CHECK(i.data<int64_t>()[k] == std::numeric_limits<int64_t>::min());
    const Tensor f = x.to(DType::Float32);
    CHECK(std::isnan(at(f, 0)));
    CHECK(at(f, 1) == inf);
    CHECK(at(f, 3) == double(float(1e30)));
    CHECK(at(from_vector(std::vector<double>{1e300}, {1}).to(DType::Float32), 0) == inf);
    CHECK(values(x.to(DType::UInt8)) == std::vector<double>(5, 0.0));
  }
  SUBCASE("to(same dtype) is the tensor itself; other conversions are fresh and contiguous") {
    const Tensor x = arange(0, 6, 1, {DType::Float64}).reshape({2, 3});
    CHECK(x.to(DType::Float64).is_same(x));
    const Tensor nc = x.t();
    const Tensor c = nc.to(DType::Int64);
    CHECK(c.is_contiguous());
    CHECK(c.shape() == Shape{3, 2});
    CHECK(values(c) == std::vector<double>{0, 3, 1, 4, 2, 5});
  }
  SUBCASE("a large strided conversion (parallel path) matches the loop") {
    Generator g(4);
    const Tensor x = mul(rand({300, 400}, {DType::Float64}, &g), 600.0).t();  // [400, 300], strided
    const Tensor y = x.to(DType::UInt8);
    const std::vector<double> xv = values(x), yv = values(y);
    int64_t bad = 0;
    for (size_t k = 0; k < xv.size(); ++k) bad += yv[k] != reference_convert(xv[k], DType::Float64, DType::UInt8);
    CHECK(bad == 0);
  }
}

// ---------------------------------------------------------------- layout
TEST_CASE("is_contiguous, contiguous and clone") {
  const Tensor x = arange(0, 24, 1, {DType::Float64}).reshape({2, 3, 4});
  CHECK(x.is_contiguous());
  CHECK(x.contiguous().is_same(x));
  CHECK(x.narrow(0, 1, 1).is_contiguous());   // a leading slice stays contiguous
  CHECK_FALSE(x.narrow(2, 0, 2).is_contiguous());
  CHECK_FALSE(x.transpose(1, 2).is_contiguous());
  CHECK(x.select(2, 1).stride(0) == 12);
  CHECK_FALSE(x.select(2, 1).is_contiguous());
  CHECK(ones({1, 3}).t().is_contiguous());  // size-1 dims may have any stride
  CHECK_FALSE(ones({1, 3}).expand({2, 3}).is_contiguous());
  CHECK(ones({1, 3}).expand({1, 3}).is_contiguous());
  CHECK(zeros({3, 0}).t().is_contiguous());  // empty

  SUBCASE("contiguous of a strided view copies into row-major order") {
    const Tensor p = x.permute({2, 0, 1});
    const Tensor c = p.contiguous();
    CHECK(c.is_contiguous());
    CHECK(c.strides() == row_major({4, 2, 3}));
    CHECK(c.storage() != x.storage());
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 2; ++j)
        for (int64_t k = 0; k < 3; ++k) CHECK(c.data<double>()[(i * 2 + j) * 3 + k] == double(j * 12 + k * 4 + i));
  }
  SUBCASE("clone is a deep copy with the same values") {
    const Tensor n = x.narrow(1, 1, 2);
    const Tensor c = n.clone();
    CHECK(c.storage() != n.storage());
    CHECK(c.is_contiguous());
    CHECK(values(c) == values(n));
    fill_(c, -1);
    CHECK(at(x, 4) == 4);  // the source is untouched
    const Tensor xc = x.clone();
    CHECK(xc.storage() != x.storage());
    CHECK(values(xc) == values(x));
    CHECK(values(scalar_tensor(2).clone()) == std::vector<double>{2});
    CHECK(zeros({0, 2}).clone().numel() == 0);
  }
}

TEST_CASE("item() reads a one-element tensor of any dtype and shape") {
  CHECK(tensor({2.5}).item<double>() == 2.5);
  CHECK(tensor({2.5}).item<float>() == 2.5f);
  CHECK(tensor({2.7}).item<int64_t>() == 2);
  CHECK(tensor({-2.7}).item<int64_t>() == -2);
  CHECK(tensor({-1.0}).item<uint8_t>() == 255);
  CHECK(tensor({200}, {DType::UInt8}).item<double>() == 200);
  const int64_t big = (int64_t(1) << 60) + 3;  // not representable in double
  CHECK(from_vector(std::vector<int64_t>{big}, {1}).item<int64_t>() == big);
  CHECK(scalar_tensor(-4, {DType::Int64}).item<double>() == -4);
  CHECK(full({1, 1, 1}, 6).item() == 6);
  const Tensor x = arange(0, 12, 1, {DType::Float64}).reshape({3, 4});
  CHECK(x.select(0, 2).select(0, 1).item() == 9);  // a view with an offset
  CHECK(x.t().narrow(0, 3, 1).narrow(1, 1, 1).item() == 7);
  check_throws_with([&] { (void)x.item(); }, {"item", "[3, 4]"});
  check_throws_with([] { (void)zeros({0}).item(); }, {"item", "[0]"});
  check_throws_with([] { (void)zeros({2, 1}).item<float>(); }, {"item", "[2, 1]"});
}

// ---------------------------------------------------------------- allocator
TEST_CASE("allocator: 64-byte aligned blocks, 2 MiB aligned when large") {
  for (int64_t n : {1, 3, 63, 64, 65, 100, 1000, 4097, (2 << 20) + 1, 3 << 20}) {
    CAPTURE(n);
    const Tensor t = empty({n}, {DType::UInt8});
    CHECK(reinterpret_cast<uintptr_t>(t.raw_data()) % 64 == 0);
    if (n >= (2 << 20)) CHECK(reinterpret_cast<uintptr_t>(t.raw_data()) % (2 << 20) == 0);
  }
  for (DType dt : kAllDTypes) {
    const Tensor t = empty({7}, {dt});
    CHECK(reinterpret_cast<uintptr_t>(t.raw_data()) % 64 == 0);
  }
  CHECK(empty({0}).raw_data() == nullptr);
  CHECK(zeros({0, 3}).narrow(1, 1, 1).raw_data() == nullptr);  // no offset added to a null pointer
}

TEST_CASE("memory_stats: bytes in use count every storage exactly and return to baseline") {
  const MemoryStats s0 = memory_stats();
  const int64_t base = s0.bytes_in_use;
  {
    const Tensor a = zeros({10, 10});  // 400 bytes
    CHECK(memory_stats().bytes_in_use == base + 400);
    CHECK(memory_stats().allocations == s0.allocations + 1);
    const Tensor b = ones({3}, {DType::Float64});  // 24
    const Tensor c = full({5}, 1, {DType::UInt8});  // 5
    const Tensor d = empty({2, 2}, {DType::Int64});  // 32
    CHECK(memory_stats().bytes_in_use == base + 400 + 24 + 5 + 32);
    // Views and the handles share storage: nothing new.
    const Tensor v = a.t().narrow(0, 1, 5), r = a.reshape({4, 25});
    const Tensor alias = a;
    const Tensor dt = a.detach();
    CHECK(memory_stats().bytes_in_use == base + 461);
    {
      const Tensor e = a.clone();
      const Tensor f = a.t().contiguous();
      CHECK(memory_stats().bytes_in_use == base + 461 + 800);
    }
    CHECK(memory_stats().bytes_in_use == base + 461);
    // A converted from_blob: the intermediate copy is gone, the result stays.
    const std::vector<float> host(25, 1.0f);
    const Tensor g = from_blob(host.data(), {25}, {DType::Float64});
    CHECK(memory_stats().bytes_in_use == base + 461 + 200);
    CHECK(zeros({0, 5}).nbytes() == 0);
    CHECK(memory_stats().bytes_in_use == base + 461 + 200);
  }
  CHECK(memory_stats().bytes_in_use == base);

  SUBCASE("the storage lives as long as its last view") {
    Tensor view;
    {
      const Tensor big = zeros({1000});
      view = big.narrow(0, 10, 2);
    }
    CHECK(memory_stats().bytes_in_use == base + 4000);
    view = Tensor();
    CHECK(memory_stats().bytes_in_use == base);
  }

  SUBCASE("peak follows the maximum and reset_peak_memory restarts it") {
    const Tensor keep = zeros({100});
    reset_peak_memory();
    CHECK(memory_stats().peak_bytes == memory_stats().bytes_in_use);
    const int64_t now = memory_stats().bytes_in_use;
    { const Tensor t = empty({100000}); }
    { const Tensor t = empty({1000}); }
    CHECK(memory_stats().bytes_in_use == now);
    CHECK(memory_stats().peak_bytes == now + 400000);
    reset_peak_memory();
    CHECK(memory_stats().peak_bytes == now);
    empty_cpu_cache();
    CHECK(memory_stats().bytes_cached == 0);
  }

  SUBCASE("large blocks are cached on free and handed out again (Note [CPU block cache])") {
    empty_cpu_cache();
    const void* first = nullptr;
    {
      const Tensor t = empty({1 << 20});  // 4 MiB
      first = t.data<float>();
    }
#if MILA_ADDRESS_SANITIZER
    CHECK(memory_stats().bytes_cached == 0);  // sanitizer builds free every block
#else
    CHECK(memory_stats().bytes_cached == int64_t(4) << 20);
    {
      const Tensor again = empty({1 << 20});
      CHECK(static_cast<const void*>(again.data<float>()) == first);
      CHECK(memory_stats().bytes_cached == 0);
      const Tensor other = empty({(1 << 20) + (1 << 19)});  // 6 MiB: another size, a new block
      CHECK(static_cast<const void*>(other.data<float>()) != first);
    }
    CHECK(memory_stats().bytes_cached == (int64_t(4) << 20) + (int64_t(6) << 20));
#endif
    empty_cpu_cache();
    CHECK(memory_stats().bytes_cached == 0);
    (void)first;
  }
}

// ---------------------------------------------------------------- printing
TEST_CASE("printing: small tensors, laid out like PyTorch") {
  CHECK(tensor({1.5, -2}).str() == "tensor([ 1.5000, -2.0000], shape=[2], dtype=float32, device=cpu)");
  CHECK(from_vector(std::vector<double>{0.1, -2, 3.5, 4}, {2, 2}).str() ==
        "tensor([[ 0.1000, -2.0000],\n"
        "        [ 3.5000,  4.0000]], shape=[2, 2], dtype=float64, device=cpu)");
  CHECK(arange(0, 6, 1, {DType::Int64}).reshape({2, 3}).str() ==
        "tensor([[0, 1, 2],\n"
        "        [3, 4, 5]], shape=[2, 3], dtype=int64, device=cpu)");
  CHECK(arange(0, 4, 1, {DType::Int64}).reshape({2, 1, 2}).str() ==
        "tensor([[[0, 1]],\n"
        "\n"
        "        [[2, 3]]], shape=[2, 1, 2], dtype=int64, device=cpu)");
  CHECK(tensor({7, 200}, {DType::UInt8}).str() == "tensor([  7, 200], shape=[2], dtype=uint8, device=cpu)");
  // A transposed (strided) tensor prints in its logical order.
  CHECK(arange(0, 4, 1, {DType::Int64}).reshape({2, 2}).t().str() ==
        "tensor([[0, 2],\n"
        "        [1, 3]], shape=[2, 2], dtype=int64, device=cpu)");

  SUBCASE("0-d and empty") {
    CHECK(scalar_tensor(2.5).str() == "tensor(2.5000, shape=[], dtype=float32, device=cpu)");
    CHECK(scalar_tensor(-3, {DType::Int64}).str() == "tensor(-3, shape=[], dtype=int64, device=cpu)");
    CHECK(zeros({0}).str() == "tensor([], shape=[0], dtype=float32, device=cpu)");
    CHECK(zeros({2, 0}, {DType::Int64}).str() == "tensor([], shape=[2, 0], dtype=int64, device=cpu)");
    CHECK(Tensor().str() == "tensor(undefined)");
  }
  SUBCASE("scientific notation, nan and inf") {
    CHECK(from_vector(std::vector<double>{1e-5, 1}, {2}).str() ==
          "tensor([1.0000e-05, 1.0000e+00], shape=[2], dtype=float64, device=cpu)");
    CHECK(tensor({1e9}).str().find("1.0000e+09") != std::string::npos);
    CHECK(from_vector(std::vector<double>{std::nan(""), std::numeric_limits<double>::infinity(), -1}, {3}).str() ==
          "tensor([    nan,     inf, -1.0000], shape=[3], dtype=float64, device=cpu)");
  }
  SUBCASE("requires_grad is shown; operator<< prints str()") {
    const Tensor g = ones({1}, {DType::Float64}).requires_grad_();
    CHECK(g.str() == "tensor([1.0000], shape=[1], dtype=float64, device=cpu, requires_grad=true)");
    std::ostringstream os;
    os << g;
    CHECK(os.str() == g.str());
  }
}

TEST_CASE("printing: more than 1000 elements are abbreviated with ...") {
  // 1000 elements print in full, 1001 do not.
  const std::string full1000 = arange(0, 1000, 1, {DType::Int64}).str();
  CHECK(full1000.find("...") == std::string::npos);
  CHECK(full1000.find(" 500,") != std::string::npos);
  CHECK(arange(0, 1001, 1, {DType::Int64}).str().find("...") != std::string::npos);

  // First and last three entries of each dim.
  CHECK(arange(0, 2000, 1, {DType::Int64}).str() ==
        "tensor([   0,    1,    2, ..., 1997, 1998, 1999], shape=[2000], dtype=int64, device=cpu)");

  const std::string m = arange(0, 1200).reshape({40, 30}).str();
  CHECK(std::count(m.begin(), m.end(), '\n') == 6);  // rows 0, 1, 2, "...", 37, 38, 39
  CHECK(m.find("tensor([[   0.0000,    1.0000,    2.0000, ...,   27.0000,   28.0000,   29.0000],\n") == 0);
  CHECK(m.find("        ...,\n") != std::string::npos);
  CHECK(m.find("[1170.0000, 1171.0000, 1172.0000, ..., 1197.0000, 1198.0000, 1199.0000]]") != std::string::npos);
  CHECK(m.find("600.0000") == std::string::npos);  // the middle is left out
  CHECK(m.find("shape=[40, 30], dtype=float32, device=cpu)") != std::string::npos);
  CHECK(m.size() < 800);

  // A huge tensor prints quickly and briefly.
  const std::string big = zeros({100, 100, 100}, {DType::UInt8}).str();
  CHECK(big.size() < 12000);  // 6 x 6 x 6 entries shown, not 10^6
  CHECK(big.find("shape=[100, 100, 100], dtype=uint8") != std::string::npos);
}

// ---------------------------------------------------------------- misuse
TEST_CASE("misuse throws with the op's name and the shapes or dtypes") {
  const Tensor d = zeros({2, 3}, {DType::Float64});
  check_throws_with([&] { (void)d.data<float>(); }, {"Tensor::data", "float64", "float32"});
  check_throws_with([] { (void)zeros({2}, {DType::UInt8}).data<int64_t>(); }, {"Tensor::data", "uint8", "int64"});
  check_throws_with([] { (void)empty({2, -3}); }, {"negative", "[2, -3]"});
  check_throws_with([] { (void)zeros({-1}); }, {"negative", "[-1]"});
  check_throws_with([] { (void)ones({4, -2}, {DType::Int64}); }, {"negative", "[4, -2]"});
  check_throws_with([] { (void)full({-5}, 1.0); }, {"negative", "[-5]"});
  const int64_t huge = int64_t(1) << 40;
  check_throws_with([=] { (void)empty({huge, huge}); }, {"Tensor::allocate", "too many", "[1099511627776, 1099511627776]"});
  check_throws_with([] { (void)empty({int64_t(1) << 61}, {DType::Float64}); }, {"Tensor::allocate", "too many", "float64"});
  check_throws_with([&] { (void)d.size(2); }, {"Tensor::size", "dim 2", "[2, 3]"});
  check_throws_with([&] { (void)d.stride(-3); }, {"Tensor::stride", "dim -3", "[2, 3]"});
  CHECK(d.size(-1) == 3);
  CHECK(d.stride(-2) == 3);
  check_throws_with([] { (void)Tensor().shape(); }, {"undefined"});
  check_throws_with([] { (void)Tensor().dtype(); }, {"undefined"});
  CHECK_FALSE(Tensor().defined());
  check_throws_with([] { (void)zeros({2}, {DType::UInt8}).requires_grad_(); }, {"requires_grad_", "uint8"});
  check_throws_with([] { (void)ones({2}).requires_grad_().to(DType::Int64); }, {"to", "int64"});
}

// ---------------------------------------------------------------- devices
TEST_CASE("CUDA tensors in a CPU-only build throw an error that names CUDA") {
  if (cuda_compiled()) return;  // test_cuda.cpp covers CUDA builds
  CHECK(cuda_device_count() == 0);
  check_throws_with([] { (void)empty({2}, {DType::Float32, Device::cuda()}); }, {"cuda:0", "CUDA"});
  check_throws_with([] { (void)zeros({2}, {DType::Float32, Device::cuda(1)}); }, {"cuda:1", "CUDA"});
  check_throws_with([] { (void)rand({2}, {DType::Float32, Device::cuda()}); }, {"CUDA"});
  check_throws_with([] { (void)empty({0}, {DType::Float32, Device::cuda()}); }, {"CUDA"});
  check_throws_with([] { (void)ones({3}).to(Device::cuda()); }, {"CUDA"});
  check_throws_with([] { (void)memory_stats(Device::cuda()); }, {"CUDA"});
  check_throws_with([] { reset_peak_memory(Device::cuda()); }, {"CUDA"});
  check_throws_with([] { (void)allocator_for(Device::cuda()); }, {"CUDA"});
  CHECK(ones({3}).to(Device::cpu()).device() == Device::cpu());
}

TEST_CASE("Device: parse, str, equality") {
  CHECK(Device::parse("cpu") == Device::cpu());
  CHECK(Device::parse("cuda") == Device::cuda(0));
  CHECK(Device::parse("cuda:0") == Device::cuda(0));
  CHECK(Device::parse("cuda:3") == Device::cuda(3));
  CHECK(Device::parse("cuda:12").index == 12);
  CHECK(Device::parse("cuda:1").is_cuda());
  CHECK_FALSE(Device::parse("cuda:1").is_cpu());
  CHECK(Device::cpu().str() == "cpu");
  CHECK(Device::cuda(2).str() == "cuda:2");
  for (const Device& d : {Device::cpu(), Device::cuda(0), Device::cuda(7)}) CHECK(Device::parse(d.str()) == d);
  CHECK(Device::cuda(0) != Device::cuda(1));
  CHECK(Device::cpu() != Device::cuda(0));
  for (const char* bad : {"gpu", "CPU", "", "cuda:", "cuda:-1", "cuda:+1", "cuda: 1", "cuda:1x", "cuda:abc", "cuda0",
                          "cuda:99999999999"}) {
    CAPTURE(bad);
    check_throws_with([&] { (void)Device::parse(bad); }, {"Device::parse", std::string("'") + bad + "'"});
  }
}
