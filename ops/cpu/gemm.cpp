// gemm.cpp — the project's own fp32 GEMM (plus a simple fp64 GEMM and the reference).
//
// DRAFT HEADER (rewritten after tuning)
#include "gemm.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#ifndef TUNE_MR
#define TUNE_MR 14
#endif
#ifndef TUNE_NV
#define TUNE_NV 2
#endif
#ifndef TUNE_KC
#define TUNE_KC 256
#endif
#ifndef TUNE_MC
#define TUNE_MC 1008
#endif
#ifndef TUNE_NC
#define TUNE_NC 512
#endif
#ifndef TUNE_PFC
#define TUNE_PFC 1
#endif

namespace mila::cpu {
namespace {

// ---------------------------------------------------------------------------------
// Register tile and cache blocks
// ---------------------------------------------------------------------------------
#if defined(__AVX512F__)
constexpr int kVec = 16;  // fp32 lanes in a 512-bit register
constexpr int kMR = TUNE_MR;
constexpr int kNV = TUNE_NV;
#else
constexpr int kVec = 8;
constexpr int kMR = 6;
constexpr int kNV = 2;
#endif
constexpr int kNR = kNV * kVec;

constexpr int64_t kKC = TUNE_KC;
constexpr int64_t kMC = (TUNE_MC / kMR) * kMR;
constexpr int64_t kNC = (TUNE_NC / kNR) * kNR;

constexpr double kSmallMacs = 32.0 * 32 * 32;
constexpr double kMacsPerThread = 64.0 * 64 * 64;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---------------------------------------------------------------------------------
// Workspace
// ---------------------------------------------------------------------------------
struct AlignedFree {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t(64)); }
};

struct Workspace {
    std::unique_ptr<float[], AlignedFree> buffer;
    std::size_t capacity = 0;
    float* get(std::size_t floats) {
        if (floats > capacity) {
            buffer.reset();
            buffer.reset(static_cast<float*>(::operator new[](floats * sizeof(float), std::align_val_t(64))));
            capacity = floats;
        }
        return buffer.get();
    }
};

// ---------------------------------------------------------------------------------
// Packing
// ---------------------------------------------------------------------------------
// A micro-panel: dst[p * kMR + i] = A(i, p) for i < rows; zero for rows <= i < kMR.
void pack_a_panel(const float* src, int64_t a_rs, int64_t a_cs, int64_t rows, int64_t kc, float* dst) {
    if (a_cs == 1) {
        for (int64_t i = 0; i < rows; ++i) {
            const float* s = src + i * a_rs;
            for (int64_t p = 0; p < kc; ++p) dst[p * kMR + i] = s[p];
        }
    } else {
        for (int64_t p = 0; p < kc; ++p)
            for (int64_t i = 0; i < rows; ++i) dst[p * kMR + i] = src[i * a_rs + p * a_cs];
    }
    if (rows < kMR)
        for (int64_t p = 0; p < kc; ++p)
            for (int64_t i = rows; i < kMR; ++i) dst[p * kMR + i] = 0.f;
}

// B micro-panel: dst[p * kNR + j] = B(p, j) for j < cols; zero for cols <= j < kNR.
void pack_b_panel(const float* src, int64_t b_rs, int64_t b_cs, int64_t cols, int64_t kc, float* dst) {
    if (b_cs == 1) {
        for (int64_t p = 0; p < kc; ++p) {
            std::memcpy(dst + p * kNR, src + p * b_rs, std::size_t(cols) * sizeof(float));
            for (int64_t j = cols; j < kNR; ++j) dst[p * kNR + j] = 0.f;
        }
    } else {
        for (int64_t j = 0; j < cols; ++j) {
            const float* s = src + j * b_cs;
            for (int64_t p = 0; p < kc; ++p) dst[p * kNR + j] = s[p * b_rs];
        }
        if (cols < kNR)
            for (int64_t p = 0; p < kc; ++p)
                for (int64_t j = cols; j < kNR; ++j) dst[p * kNR + j] = 0.f;
    }
}

// ---------------------------------------------------------------------------------
// Micro-kernel
// ---------------------------------------------------------------------------------
struct TileArgs {
    int64_t kc;
    const float* a;  // packed A micro-panel, kc x kMR
    const float* b;  // packed B micro-panel, kc x kNR
    float* c;        // C tile top-left
    int64_t c_rs;
    int cols;        // valid columns, 1..kNR
    float alpha;
    float beta;
    bool overwrite;  // beta == 0 on the first K block: write alpha*acc, never read C
};

#if defined(__AVX512F__)
template <int ROWS, int NV>
void micro_kernel(const TileArgs& t) {
    __m512 acc[ROWS][NV];
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();

#if TUNE_PFC
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(t.c + i * t.c_rs + v * kVec), _MM_HINT_T0);
#endif

    const float* a = t.a;
    const float* b = t.b;
    for (int64_t p = 0; p < t.kc; ++p) {
        __m512 bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + v * kVec);
#pragma GCC unroll 16
        for (int i = 0; i < ROWS; ++i) {
            const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
        a += kMR;
        b += kNR;
    }

    const int tail = t.cols - (NV - 1) * kVec;  // 1..16 valid lanes in the last vector
    const __mmask16 tail_mask = __mmask16((1u << tail) - 1u);
    const __m512 alpha = _mm512_set1_ps(t.alpha);
    const __m512 beta = _mm512_set1_ps(t.beta);
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
        float* crow = t.c + i * t.c_rs;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
            const __mmask16 mask = (v == NV - 1) ? tail_mask : __mmask16(0xFFFF);
            __m512 r;
            if (t.overwrite) {
                r = _mm512_mul_ps(alpha, acc[i][v]);
            } else {
                const __m512 cv = _mm512_maskz_loadu_ps(mask, crow + v * kVec);
                r = _mm512_fmadd_ps(alpha, acc[i][v], _mm512_mul_ps(beta, cv));
            }
            _mm512_mask_storeu_ps(crow + v * kVec, mask, r);
        }
    }
}
#else
template <int ROWS, int NV>
void micro_kernel(const TileArgs& t) {
    constexpr int W = NV * kVec;
    float acc[ROWS][W] = {};
    const float* a = t.a;
    const float* b = t.b;
    for (int64_t p = 0; p < t.kc; ++p) {
        for (int i = 0; i < ROWS; ++i)
            for (int j = 0; j < W; ++j) acc[i][j] += a[i] * b[j];
        a += kMR;
        b += kNR;
    }
    for (int i = 0; i < ROWS; ++i) {
        float* crow = t.c + i * t.c_rs;
        for (int j = 0; j < t.cols; ++j)
            crow[j] = t.overwrite ? t.alpha * acc[i][j] : t.alpha * acc[i][j] + t.beta * crow[j];
    }
}
#endif

using KernelFn = void (*)(const TileArgs&);

template <int NV, int... R>
constexpr std::array<KernelFn, sizeof...(R)> kernels_for_rows(std::integer_sequence<int, R...>) {
    return {&micro_kernel<R + 1, NV>...};
}
template <int... V>
constexpr std::array<std::array<KernelFn, kMR>, sizeof...(V)> kernel_table(std::integer_sequence<int, V...>) {
    return {kernels_for_rows<V + 1>(std::make_integer_sequence<int, kMR>{})...};
}
// kKernels[nv - 1][rows - 1]
constexpr auto kKernels = kernel_table(std::make_integer_sequence<int, kNV>{});

// ---------------------------------------------------------------------------------
// Small problems
// ---------------------------------------------------------------------------------
void gemm_small(const GemmParams& p) {
    constexpr int64_t kChunk = 256;
    float acc[kChunk];
    for (int64_t i = 0; i < p.m; ++i) {
        for (int64_t j0 = 0; j0 < p.n; j0 += kChunk) {
            const int64_t nj = std::min(kChunk, p.n - j0);
            for (int64_t j = 0; j < nj; ++j) acc[j] = 0.f;
            for (int64_t q = 0; q < p.k; ++q) {
                const float aiq = p.a[i * p.a_rs + q * p.a_cs];
                const float* brow = p.b + q * p.b_rs + j0 * p.b_cs;
                if (p.b_cs == 1)
                    for (int64_t j = 0; j < nj; ++j) acc[j] += aiq * brow[j];
                else
                    for (int64_t j = 0; j < nj; ++j) acc[j] += aiq * brow[j * p.b_cs];
            }
            float* crow = p.c + i * p.c_rs + j0;
            if (p.beta == 0.f)
                for (int64_t j = 0; j < nj; ++j) crow[j] = p.alpha * acc[j];
            else
                for (int64_t j = 0; j < nj; ++j) crow[j] = p.alpha * acc[j] + p.beta * crow[j];
        }
    }
}

// ---------------------------------------------------------------------------------
// Thread grid
// ---------------------------------------------------------------------------------
struct Grid {
    int gm, gn;
};

Grid choose_grid(int team, int64_t m, int64_t n) {
    const int64_t mp = ceil_div(m, kMR);
    const int64_t np = ceil_div(n, kNR);
    Grid best{1, team};
    double best_cost = 1e300;
    for (int gm = 1; gm <= team; ++gm) {
        if (team % gm != 0) continue;
        const int gn = team / gm;
        const double rows = double(ceil_div(mp, gm) * kMR);
        const double cols = double(ceil_div(np, gn) * kNR);
        const double ic_blocks = double(ceil_div(int64_t(rows), kMC));
        const double cost = rows * cols / 16.0 + rows * 1.0 + cols * 0.25 * ic_blocks;
        if (cost < best_cost) {
            best_cost = cost;
            best = Grid{gm, gn};
        }
    }
    return best;
}

// One thread's share: rows [r0, r1) and columns [c0, c1) of C, as a serial packed GEMM.
void gemm_block(const GemmParams& p, int64_t r0, int64_t r1, int64_t c0, int64_t c1, int64_t kc_len) {
    thread_local Workspace ws_a, ws_b;
    if (r0 >= r1 || c0 >= c1) return;
    const int64_t k = p.k;
    float* const a_pack = ws_a.get(std::size_t(kMC * kc_len));
    float* const b_pack = ws_b.get(std::size_t(kNC * kc_len));

    for (int64_t ic = r0; ic < r1; ic += kMC) {
        const int64_t mc = std::min(kMC, r1 - ic);
        const int64_t m_panels = ceil_div(mc, kMR);
        for (int64_t pc = 0; pc < k; pc += kc_len) {
            const int64_t kc = std::min(kc_len, k - pc);
            const bool first_k = (pc == 0);
            for (int64_t ip = 0; ip < m_panels; ++ip) {
                const int64_t i = ip * kMR;
#ifdef TUNE_NOPACKA
                if (pc > 0 || ic > r0) break;
#endif
                pack_a_panel(p.a + (ic + i) * p.a_rs + pc * p.a_cs, p.a_rs, p.a_cs,
                             std::min<int64_t>(kMR, mc - i), kc, a_pack + ip * kc * kMR);
            }
            TileArgs t;
            t.kc = kc;
            t.c_rs = p.c_rs;
            t.alpha = p.alpha;
            t.beta = first_k ? p.beta : 1.f;
            t.overwrite = first_k && p.beta == 0.f;

            for (int64_t jc = c0; jc < c1; jc += kNC) {
                const int64_t nc = std::min(kNC, c1 - jc);
                const int64_t n_panels = ceil_div(nc, kNR);
                for (int64_t jp = 0; jp < n_panels; ++jp) {
                    const int64_t j = jp * kNR;
#ifdef TUNE_NOPACKB
                    if (jc > c0 || pc > 0) break;
#endif
                    pack_b_panel(p.b + pc * p.b_rs + (jc + j) * p.b_cs, p.b_rs, p.b_cs,
                                 std::min<int64_t>(kNR, nc - j), kc, b_pack + jp * kc * kNR);
                }
                for (int64_t ip = 0; ip < m_panels; ++ip) {
                    const int64_t i = ip * kMR;
                    const int rows = int(std::min<int64_t>(kMR, mc - i));
                    t.a = a_pack + ip * kc * kMR;
                    for (int64_t jp = 0; jp < n_panels; ++jp) {
                        const int64_t j = jp * kNR;
                        const int cols = int(std::min<int64_t>(kNR, nc - j));
                        t.cols = cols;
                        t.b = b_pack + jp * kc * kNR;
                        t.c = p.c + (ic + i) * p.c_rs + jc + j;
                        kKernels[ceil_div(cols, kVec) - 1][rows - 1](t);
                    }
                }
            }
        }
    }
}

void gemm_packed(const GemmParams& p) {
    const int64_t m = p.m, n = p.n, k = p.k;
    const int64_t kc_len = ceil_div(k, ceil_div(k, kKC));
    const double macs = double(m) * double(n) * double(k);
    const int nt = int(std::max(1.0, std::min(double(omp_get_max_threads()), macs / kMacsPerThread)));

#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int team = omp_get_num_threads();
        const int tid = omp_get_thread_num();
        const Grid grid = choose_grid(team, m, n);
        const int tm = tid / grid.gn, tn = tid % grid.gn;
        const int64_t mp = ceil_div(m, kMR), np = ceil_div(n, kNR);
        const int64_t r0 = std::min(m, mp * tm / grid.gm * kMR);
        const int64_t r1 = std::min(m, mp * (tm + 1) / grid.gm * kMR);
        const int64_t c0 = std::min(n, np * tn / grid.gn * kNR);
        const int64_t c1 = std::min(n, np * (tn + 1) / grid.gn * kNR);
        gemm_block(p, r0, r1, c0, c1, kc_len);
    }
}

// C = beta * C (the k == 0 / alpha == 0 case). beta == 0 writes zeros without reading.
template <typename T>
void scale_c(int64_t m, int64_t n, T beta, T* c, int64_t c_rs) {
    for (int64_t i = 0; i < m; ++i) {
        T* crow = c + i * c_rs;
        if (beta == T(0))
            for (int64_t j = 0; j < n; ++j) crow[j] = T(0);
        else if (beta != T(1))
            for (int64_t j = 0; j < n; ++j) crow[j] *= beta;
    }
}

std::string shape_string(const char* fn, int64_t m, int64_t n, int64_t k, int64_t c_rs) {
    return std::string(fn) + ": got m=" + std::to_string(m) + ", n=" + std::to_string(n) +
           ", k=" + std::to_string(k) + ", c_rs=" + std::to_string(c_rs);
}

template <typename P>
void validate(const char* fn, const P& p) {
    if (p.m < 0 || p.n < 0 || p.k < 0)
        throw std::invalid_argument(shape_string(fn, p.m, p.n, p.k, p.c_rs) + " (sizes must be >= 0)");
    if (p.m == 0 || p.n == 0) return;
    if (p.c == nullptr)
        throw std::invalid_argument(shape_string(fn, p.m, p.n, p.k, p.c_rs) + " (C is null)");
    if (p.m > 1 && p.c_rs < p.n)
        throw std::invalid_argument(shape_string(fn, p.m, p.n, p.k, p.c_rs) +
                                    " (rows of C overlap: need c_rs >= n)");
    if (p.k > 0 && p.alpha != 0 && (p.a == nullptr || p.b == nullptr))
        throw std::invalid_argument(shape_string(fn, p.m, p.n, p.k, p.c_rs) + " (A or B is null)");
}

}  // namespace

void gemm_f32(const GemmParams& p) {
    validate("gemm_f32", p);
    if (p.m == 0 || p.n == 0) return;
    if (p.k == 0 || p.alpha == 0.f) {
        scale_c(p.m, p.n, p.beta, p.c, p.c_rs);
        return;
    }
    if (double(p.m) * double(p.n) * double(p.k) < kSmallMacs) {
        gemm_small(p);
        return;
    }
    gemm_packed(p);
}

void gemm_f64(const GemmParamsF64& p) {
    validate("gemm_f64", p);
    if (p.m == 0 || p.n == 0) return;
    if (p.k == 0 || p.alpha == 0.0) {
        scale_c(p.m, p.n, p.beta, p.c, p.c_rs);
        return;
    }
    const int64_t m = p.m, n = p.n, k = p.k;
    // i-k-j order: the innermost loop walks a row of B and a row of C with unit stride
    // when B is row-major. Rows of C are independent, so OpenMP splits them.
#pragma omp parallel for schedule(static) if (m * n * k > (int64_t(1) << 18))
    for (int64_t i = 0; i < m; ++i) {
        double* crow = p.c + i * p.c_rs;
        if (p.beta == 0.0)
            for (int64_t j = 0; j < n; ++j) crow[j] = 0.0;
        else
            for (int64_t j = 0; j < n; ++j) crow[j] *= p.beta;
        for (int64_t q = 0; q < k; ++q) {
            const double aiq = p.alpha * p.a[i * p.a_rs + q * p.a_cs];
            const double* brow = p.b + q * p.b_rs;
            for (int64_t j = 0; j < n; ++j) crow[j] += aiq * brow[j * p.b_cs];
        }
    }
}

void gemm_reference_f32(const GemmParams& p) {
    validate("gemm_reference_f32", p);
    for (int64_t i = 0; i < p.m; ++i) {
        for (int64_t j = 0; j < p.n; ++j) {
            float acc = 0.f;
            if (p.alpha != 0.f)
                for (int64_t q = 0; q < p.k; ++q) acc += p.a[i * p.a_rs + q * p.a_cs] * p.b[q * p.b_rs + j * p.b_cs];
            float& cij = p.c[i * p.c_rs + j];
            cij = (p.beta == 0.f) ? p.alpha * acc : p.alpha * acc + p.beta * cij;
        }
    }
}

}  // namespace mila::cpu
