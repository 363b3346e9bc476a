// test_gemm.cpp — mila::cpu::gemm_f32 against the plain triple loop gemm_reference_f32,
// plus gemm_f64 against a double loop, and the BLAS-style edge semantics of gemm.h.
//
// Tolerance. Both gemm_f32 and the reference sum k products in float, in different
// orders (the fast kernel splits K into blocks and applies alpha per block). The classic
// bound for a float dot product of length k is |fl(s) - s| <= gamma_k * sum |a_i b_i|,
// gamma_k = k u / (1 - k u), u = 2^-24. Each of the two results is within that of the
// exact value, so their difference is within twice it. Adding two roundings for
// alpha * acc + beta * c gives, per element,
//     |C - C_ref| <= 2 (k + 2) u (|alpha| sum_p |A(i,p) B(p,j)| + |beta| |C0(i,j)|)
// with the sum computed in double. It scales with k (long sums drift more) and with the
// magnitudes involved, so it is tight without being flaky.
//
// Block boundaries. The shapes below cross every block of gemm.cpp by one on each side:
// the register tile (14 rows x 32 columns), KC = 256, NC = 512 and MC = 2048 (rows per
// packed A block), and the small-problem cutoff (1024 multiply-adds).
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/cpu/gemm.h"

using mila::cpu::GemmParams;
using mila::cpu::GemmParamsF64;

namespace {

constexpr double kUnitRoundoff = 1.0 / (1 << 24);

std::vector<float> random_floats(std::size_t count, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uniform(-1.f, 1.f);
    std::vector<float> v(count);
    for (float& x : v) x = uniform(rng);
    return v;
}

// Storage for A [m, k] and B [k, n] in one of several layouts, all described by strides.
enum class Layout { RowMajor, Transposed, Strided };

struct Operand {
    std::vector<float> data;
    int64_t rs, cs;
};

// A rows x cols operand. RowMajor: (r, c) at r * (cols + pad) + c. Transposed: stored as
// its transpose, (r, c) at c * (rows + pad) + r. Strided: every other column, every
// third row is used, (r, c) at r * 3 * (2 * cols) + 2 * c.
Operand make_operand(int64_t rows, int64_t cols, Layout layout, uint32_t seed, int64_t pad = 3) {
    Operand o;
    switch (layout) {
        case Layout::RowMajor: o.rs = cols + pad, o.cs = 1; break;
        case Layout::Transposed: o.rs = 1, o.cs = rows + pad; break;
        case Layout::Strided: o.rs = 6 * std::max<int64_t>(cols, 1), o.cs = 2; break;
    }
    const int64_t extent = (rows > 0 && cols > 0) ? (rows - 1) * o.rs + (cols - 1) * o.cs + 1 : 0;
    o.data = random_floats(std::size_t(extent), seed);
    return o;
}

// Runs gemm_f32 and gemm_reference_f32 on the same inputs and checks every element of C
// against the bound above, and that the padding columns of C (c_rs > n) are untouched.
void check_against_reference(int64_t m, int64_t n, int64_t k, float alpha, float beta, Layout la, Layout lb,
                             int64_t c_pad = 0, bool nan_c = false) {
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    CAPTURE(alpha);
    CAPTURE(beta);
    CAPTURE(int(la));
    CAPTURE(int(lb));
    const Operand a = make_operand(m, k, la, 1);
    const Operand b = make_operand(k, n, lb, 2);
    const int64_t c_rs = n + c_pad;
    std::vector<float> c0 = random_floats(std::size_t(m * c_rs), 3);
    if (nan_c)
        for (float& x : c0) x = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> c = c0, c_ref = c0;

    GemmParams p{m, n, k, alpha, a.data.data(), a.rs, a.cs, b.data.data(), b.rs, b.cs, beta, c.data(), c_rs};
    mila::cpu::gemm_f32(p);
    p.c = c_ref.data();
    mila::cpu::gemm_reference_f32(p);

    int64_t bad = 0;
    for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
            double magnitude = 0.0;
            for (int64_t q = 0; q < k; ++q)
                magnitude += std::fabs(double(a.data[i * a.rs + q * a.cs]) * double(b.data[q * b.rs + j * b.cs]));
            const double c_old = nan_c || beta == 0.f ? 0.0 : std::fabs(double(c0[i * c_rs + j]));
            const double tol = 2.0 * double(k + 2) * kUnitRoundoff * (std::fabs(alpha) * magnitude + std::fabs(beta) * c_old);
            const double got = c[i * c_rs + j], want = c_ref[i * c_rs + j];
            if (!(std::fabs(got - want) <= tol)) {  // also catches NaN
                if (bad < 5) MESSAGE("C(" << i << ", " << j << ") = " << got << ", reference " << want << ", tol " << tol);
                ++bad;
            }
        }
        for (int64_t j = n; j < c_rs; ++j)
            if (std::memcmp(&c[i * c_rs + j], &c0[i * c_rs + j], sizeof(float)) != 0) ++bad;
    }
    CHECK(bad == 0);
}

// Bitwise comparison of gemm_f32 run with 1 and with 2 OpenMP threads.
void check_thread_invariance(int64_t m, int64_t n, int64_t k, Layout la, Layout lb, float beta) {
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    const Operand a = make_operand(m, k, la, 4);
    const Operand b = make_operand(k, n, lb, 5);
    const std::vector<float> c0 = random_floats(std::size_t(m * n), 6);
    std::vector<float> c1 = c0, c2 = c0;
    GemmParams p{m, n, k, 0.75f, a.data.data(), a.rs, a.cs, b.data.data(), b.rs, b.cs, beta, c1.data(), n};
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    mila::cpu::gemm_f32(p);
    omp_set_num_threads(2);
    p.c = c2.data();
    mila::cpu::gemm_f32(p);
    omp_set_num_threads(saved);
    CHECK(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0);
}

// Sets the OpenMP thread count for the scope of a test case.
struct Threads {
    int saved;
    explicit Threads(int n) : saved(omp_get_max_threads()) { omp_set_num_threads(n); }
    ~Threads() { omp_set_num_threads(saved); }
};

}  // namespace

TEST_CASE("gemm_f32: small and odd shapes match the reference") {
    const int64_t shapes[][3] = {
        {1, 1, 1},    {1, 1, 7},    {2, 3, 1},    {17, 31, 13}, {31, 17, 29}, {7, 5, 3},
        {1, 300, 67}, {1, 1000, 1}, {300, 1, 67}, {1000, 1, 1}, {1, 1, 3000}, {8, 8, 15},  // small cutoff
        {8, 8, 16},   {8, 8, 17},   {3, 5, 4096}, {97, 89, 83}, {64, 64, 64}, {13, 45, 100},
        {32, 32, 32}, {2, 2, 300},  {300, 2, 2},
    };
    for (int threads : {1, 2}) {
        Threads scope(threads);
        for (const auto& s : shapes) check_against_reference(s[0], s[1], s[2], 1.f, 0.f, Layout::RowMajor, Layout::RowMajor);
    }
}

TEST_CASE("gemm_f32: sizes around every block boundary") {
    // Register tile (14 x 32), KC = 256, NC = 512.
    const int64_t shapes[][3] = {
        {13, 31, 255}, {14, 32, 256}, {15, 33, 257}, {27, 63, 511}, {28, 64, 512}, {29, 65, 513},
        {41, 511, 40}, {43, 512, 41}, {45, 513, 42}, {29, 1025, 17}, {100, 100, 769},
    };
    for (int threads : {1, 2}) {
        Threads scope(threads);
        for (const auto& s : shapes) {
            check_against_reference(s[0], s[1], s[2], 1.f, 0.f, Layout::RowMajor, Layout::RowMajor);
            check_against_reference(s[0], s[1], s[2], 1.5f, -0.5f, Layout::RowMajor, Layout::RowMajor);
        }
    }
    // MC = 2048 rows per packed A block: one thread owns all rows, two threads half each.
    for (int threads : {1, 2}) {
        Threads scope(threads);
        for (int64_t m : {2047, 2048, 2049, 4097}) check_against_reference(m, 33, 40, 1.f, 0.f, Layout::RowMajor, Layout::RowMajor);
    }
}

TEST_CASE("gemm_f32: transposed and strided operands, padded rows of C") {
    const Layout layouts[] = {Layout::RowMajor, Layout::Transposed, Layout::Strided};
    const int64_t shapes[][3] = {{1, 1, 1}, {17, 31, 13}, {45, 70, 300}, {130, 97, 41}, {3, 200, 517}};
    for (int threads : {1, 2}) {
        Threads scope(threads);
        for (Layout la : layouts)
            for (Layout lb : layouts)
                for (const auto& s : shapes) check_against_reference(s[0], s[1], s[2], 1.f, 0.5f, la, lb, /*c_pad=*/5);
    }
}

TEST_CASE("gemm_f32: alpha and beta") {
    const float cases[][2] = {{1.f, 0.f}, {2.5f, 0.f}, {1.f, 1.f}, {-0.5f, 2.f}, {0.25f, -1.f}, {3.f, 0.5f}};
    for (const auto& ab : cases)
        for (const auto& s : {std::array<int64_t, 3>{5, 7, 9}, std::array<int64_t, 3>{70, 90, 600}})
            check_against_reference(s[0], s[1], s[2], ab[0], ab[1], Layout::RowMajor, Layout::Transposed, 2);

    SUBCASE("beta == 0 overwrites a NaN-filled C without reading it") {
        for (const auto& s : {std::array<int64_t, 3>{5, 7, 9}, std::array<int64_t, 3>{70, 90, 600},
                              std::array<int64_t, 3>{15, 33, 257}})
            check_against_reference(s[0], s[1], s[2], 1.f, 0.f, Layout::RowMajor, Layout::RowMajor, 3, /*nan_c=*/true);
    }
    SUBCASE("k == 0 and alpha == 0 give beta * C and read neither A nor B") {
        for (int64_t k : {int64_t(0), int64_t(50)}) {
            const float alpha = (k == 0) ? 1.f : 0.f;
            std::vector<float> c = random_floats(6 * 40, 7);
            const std::vector<float> c0 = c;
            GemmParams p{6, 40, k, alpha, nullptr, 0, 0, nullptr, 0, 0, 2.f, c.data(), 40};
            mila::cpu::gemm_f32(p);
            bool ok = true;
            for (std::size_t i = 0; i < c.size(); ++i) ok = ok && c[i] == 2.f * c0[i];
            CHECK(ok);
            std::fill(c.begin(), c.end(), std::numeric_limits<float>::quiet_NaN());
            p.beta = 0.f;
            mila::cpu::gemm_f32(p);
            ok = true;
            for (float x : c) ok = ok && x == 0.f;
            CHECK(ok);
        }
    }
    SUBCASE("m == 0 or n == 0 touches nothing") {
        GemmParams p{0, 5, 5, 1.f, nullptr, 5, 1, nullptr, 5, 1, 0.f, nullptr, 5};
        CHECK_NOTHROW(mila::cpu::gemm_f32(p));
        p.m = 5;
        p.n = 0;
        CHECK_NOTHROW(mila::cpu::gemm_f32(p));
    }
}

TEST_CASE("gemm_f32: result is bitwise independent of the thread count") {
    const int64_t shapes[][3] = {{33, 33, 33},  {64, 64, 64},    {100, 700, 300}, {700, 100, 300},
                                 {64, 1200, 576}, {301, 257, 1000}, {2, 4000, 70},  {4000, 2, 70}};
    for (const auto& s : shapes) {
        check_thread_invariance(s[0], s[1], s[2], Layout::RowMajor, Layout::RowMajor, 0.f);
        check_thread_invariance(s[0], s[1], s[2], Layout::Transposed, Layout::Transposed, 0.5f);
    }
}

TEST_CASE("gemm_f64 matches a double loop") {
    const int64_t shapes[][3] = {{1, 1, 1}, {17, 31, 13}, {64, 64, 64}, {70, 90, 300}};
    for (const auto& s : shapes) {
        const int64_t m = s[0], n = s[1], k = s[2];
        CAPTURE(m);
        CAPTURE(n);
        CAPTURE(k);
        std::mt19937 rng(9);
        std::uniform_real_distribution<double> uniform(-1.0, 1.0);
        std::vector<double> a(std::size_t(k * m)), b(std::size_t(k * n)), c(std::size_t(m * n)), c_ref;
        for (double& x : a) x = uniform(rng);
        for (double& x : b) x = uniform(rng);
        for (double& x : c) x = uniform(rng);
        c_ref = c;
        // A is given transposed (stored [k, m]), B row-major.
        const GemmParamsF64 p{m, n, k, 1.5, a.data(), 1, m, b.data(), n, 1, -0.5, c.data(), n};
        mila::cpu::gemm_f64(p);
        double worst = 0.0;
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
                double acc = 0.0;
                for (int64_t q = 0; q < k; ++q) acc += a[q * m + i] * b[q * n + j];
                const double want = 1.5 * acc - 0.5 * c_ref[i * n + j];
                worst = std::max(worst, std::fabs(c[i * n + j] - want));
            }
        CHECK(worst <= 1e-12 * double(k));
    }
}

TEST_CASE("gemm: misuse throws std::invalid_argument naming the function and shapes") {
    std::vector<float> buf(64, 1.f);
    const GemmParams good{4, 4, 4, 1.f, buf.data(), 4, 1, buf.data(), 4, 1, 0.f, buf.data() + 32, 4};

    auto expect_throw = [](const GemmParams& p, const char* fragment) {
        bool thrown = false;
        try {
            mila::cpu::gemm_f32(p);
        } catch (const std::invalid_argument& e) {
            thrown = true;
            const std::string what = e.what();
            CHECK(what.find("gemm_f32") != std::string::npos);
            CHECK(what.find("m=") != std::string::npos);
            CHECK(what.find(fragment) != std::string::npos);
        }
        CHECK(thrown);
    };
    GemmParams p = good;
    p.m = -1;
    expect_throw(p, "m=-1");
    p = good;
    p.k = -3;
    expect_throw(p, "k=-3");
    p = good;
    p.c = nullptr;
    expect_throw(p, "C is null");
    p = good;
    p.c_rs = 3;
    expect_throw(p, "c_rs=3");
    p = good;
    p.a = nullptr;
    expect_throw(p, "null");
    p = good;
    p.b = nullptr;
    expect_throw(p, "null");

    GemmParams ref = good;
    ref.n = -2;
    CHECK_THROWS_AS(mila::cpu::gemm_reference_f32(ref), std::invalid_argument);
    std::vector<double> dbuf(64, 1.0);
    GemmParamsF64 d{4, 4, 4, 1.0, dbuf.data(), 4, 1, dbuf.data(), 4, 1, 0.0, nullptr, 4};
    CHECK_THROWS_WITH_AS(mila::cpu::gemm_f64(d), doctest::Contains("gemm_f64"), std::invalid_argument);
}
