// gemm.cpp - the project's own fp32 GEMM (gemm_f32), a plain fp64 GEMM for the gradient
// checks (gemm_f64) and the triple loop the tests compare with (gemm_reference_f32).
//
//   C = alpha * A * B + beta * C,   C [m, n], A [m, k], B [k, n]
//
// Layout (gemm.h). Row-major with element strides: A(i, p) at a[i * a_rs + p * a_cs],
// B(p, j) at b[p * b_rs + j * b_cs], C(i, j) at c[i * c_rs + j]. A transposed or strided
// operand is only other strides: it costs extra in packing (2. below), once, never in the
// inner loop. Names are BLIS's: the register tile is kMR x kNR, the cache blocks kKC, kNC,
// kMC, and the loops over them ic, pc, jc, ir, jr. A "micro-panel" is a packed strip of kMR
// rows of A or kNR columns of B, kc deep.
//
// gemm_f32 works the way high-performance BLAS libraries do (Goto & van de Geijn, "Anatomy
// of high-performance matrix multiplication", 2008; the BLIS framework). Three ideas, from
// the inside out:
//
// 1. Register blocking. The micro-kernel keeps a 14 x 32 tile of C in registers. Each step
//    p of the sum loads one row of the B micro-panel (32 floats = 2 vectors of 16 lanes),
//    broadcasts the 14 values of one column of the A micro-panel, and does 14 * 2 = 28
//    vector FMAs into 28 accumulators. Why 14 x 32: 28 accumulators + 2 B vectors + 1
//    broadcast = 31 of the 32 AVX-512 registers; 28 independent FMAs per step are far more
//    than the 4 (FMA latency 4 cycles x one 512-bit FMA per cycle on Zen 4, where this was
//    tuned) needed to keep the FMA unit busy; and each step's 16 loads for 28 FMAs are well
//    within the two loads per cycle the core can do. C is read and written once per tile
//    and K block, after the whole sum.
//
// 2. Packing. Before the kernels run, the pieces of A and B they need are copied into
//    micro-panels in exactly the order the kernel reads them: A as [kc][14], B as [kc][32].
//    Every kernel load is then unit-stride and aligned and touches few pages. Edge panels
//    are zero-padded.
//
// 3. Cache blocking. The packed data is sized for the cache level it must live in (on the
//    machine of bench/RESULTS.md, AMD Zen 4: L1d 32 KiB and L2 1 MiB per core, L3 32 MiB):
//      kKC = 256   an A micro-panel, 14 x 256 floats = 14 KiB, stays in L1 while the kernel
//                  sweeps along a row of C tiles.
//      kNC = 512   a packed B block, 256 x 512 floats = 512 KiB, half of L2: it is swept
//                  once per A micro-panel, so it must come from L2, not from memory.
//      kMC = 2048  a packed A block, at most 2048 x 256 floats = 2 MiB, from L3; it only
//                  bounds the buffer (A micro-panels are read once per B block).
//    The loops, outermost first:
//      for ic in rows of C, by kMC:               A block
//        for pc in k, by kKC:                     pack A[ic.., pc..]        -> L3
//          for jc in columns of C, by kNC:        pack B[pc.., jc..]        -> L2
//            for ir by 14:                        A micro-panel             -> L1
//              for jr by 32:                      B micro-panel streams from L2
//                micro-kernel: C tile (+)= alpha * A panel * B panel
//    K is cut into near-equal blocks of at most kKC. The first block writes
//    alpha * acc + beta * C (just alpha * acc when beta == 0, so C is never read and may
//    hold NaN); later blocks add alpha * acc to C.
//
// Edges. The last vector of a tile is stored under an AVX-512 lane mask, and there is a
// kernel for every row count 1..14. Rows are cut into near-equal panels (1024 rows: 62
// panels of 14 and 12 of 13, rather than 73 of 14 and one of 2), because a kernel with few
// rows does almost as many loads, and as many loop steps, as a full one.
//
// Threads. C is cut into a grid of rectangles, one per OpenMP thread, and each thread runs
// the serial algorithm above on its rectangle with its own packing buffers. K is never
// split, and the K blocks depend on k alone, so every element of C is computed by one
// thread with the same operations in the same order whatever the thread count: the result
// is bitwise identical for 1 or N threads. The grid shape (split rows or columns) is chosen
// to balance the work and to minimise the packing each thread repeats (both threads of a
// column split pack all of A, of a row split all of B).
//
// Problems under about 10^3 multiply-adds skip all this and run a direct loop. Without
// AVX-512 (e.g. -march=x86-64) the same blocking drives a plain C++ kernel (6 x 16 tile)
// that the compiler vectorizes for its target: correct, not tuned.
#include "ops/cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include "ops/cpu/scratch.h"
#include "ops/cpu/simd.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace mila::cpu {
namespace {

// ---------------------------------------------------------------------------------------
// Register tile and cache blocks (the header comment says why these values)
// ---------------------------------------------------------------------------------------
#if defined(__AVX512F__)
constexpr int kVec = 16;  // fp32 lanes in a 512-bit register
constexpr int kMR = 14;   // rows of the register tile
constexpr int kNV = 2;    // vectors per row of the register tile
#else
constexpr int kVec = 8;
constexpr int kMR = 6;
constexpr int kNV = 2;
#endif
constexpr int kNR = kNV * kVec;  // columns of the register tile: 32 with AVX-512
static_assert(kMR <= 16, "A packing transposes at most 16 rows at a time");

constexpr int64_t kKC = 256;   // depth of a packed block:     A micro-panel in L1
constexpr int64_t kNC = 512;   // columns of a packed B block: B block in L2
constexpr int64_t kMC = 2048;  // rows of a packed A block:    A block in L3
static_assert(kNC % kNR == 0, "B blocks hold whole micro-panels");

// Below this many multiply-adds the packing costs more than it saves (measured: the
// direct loop wins up to about 10^3).
constexpr double kSmallMacs = 1024;
// Each extra thread must get at least this many multiply-adds (~1 us of work) to pay for
// waking it.
constexpr double kMacsPerThread = 32.0 * 32 * 64;
// Prefetch distance, in rows of B, when packing row-major B (see pack_b_rows).
constexpr int64_t kPrefetchRows = 4;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Start of piece r when `len` items are cut into `parts` near-equal pieces.
int64_t part_begin(int64_t len, int64_t parts, int64_t r) { return len * r / parts; }

// The packed A block and B block of a thread (ops/cpu/scratch.h): kept between calls, as
// the GEMM runs many times per step on the same shapes.
enum GemmScratch { kPackedA, kPackedB };

// ---------------------------------------------------------------------------------------
// Packing
// ---------------------------------------------------------------------------------------
#if defined(__AVX512F__)
using simd::first_lanes;
using simd::transpose_block;
#endif

// An A micro-panel: dst[p * kMR + i] = A(i, p) for i < rows; zero for rows <= i < kMR.
void pack_a_panel(const float* src, int64_t a_rs, int64_t a_cs, int64_t rows, int64_t kc, float* dst) {
#if defined(__AVX512F__)
  const __mmask16 panel_mask = first_lanes(kMR);
  if (a_cs == 1) {  // rows of A are contiguous: transpose 16 columns at a time
    for (int64_t p = 0; p < kc; p += 16)
      transpose_block(src + p, a_rs, rows, std::min<int64_t>(16, kc - p), dst + p * kMR, kMR, panel_mask);
    return;
  }
  if (a_rs == 1) {  // A is transposed: each column of the panel is already contiguous
    const __mmask16 row_mask = first_lanes(rows);
    for (int64_t p = 0; p < kc; ++p)
      _mm512_mask_storeu_ps(dst + p * kMR, panel_mask, _mm512_maskz_loadu_ps(row_mask, src + p * a_cs));
    return;
  }
#endif
  for (int64_t p = 0; p < kc; ++p) {
    for (int64_t i = 0; i < rows; ++i) dst[p * kMR + i] = src[i * a_rs + p * a_cs];
    for (int64_t i = rows; i < kMR; ++i) dst[p * kMR + i] = 0.f;
  }
}

// A B block [kc x nc] is packed as consecutive micro-panels: panel jp holds
//   dst[jp * kc * kNR + p * kNR + j] = B(p, jp * kNR + j),   zero past column nc.
// One function per layout of B, picked by pack_b_block.
#if defined(__AVX512F__)
// Rows of B contiguous (b_cs == 1). The block is swept row by row so that the reads stream.
// Each row segment starts on a new page, where the hardware prefetcher stops, so row
// p + kPrefetchRows is asked for ahead of time.
void pack_b_rows(const float* src, int64_t b_rs, int64_t nc, int64_t kc, float* dst) {
  const int64_t panels = ceil_div(nc, kNR);
  for (int64_t p = 0; p < kc; ++p) {
    const float* s = src + p * b_rs;
    if (p + kPrefetchRows < kc)
      for (int64_t j = 0; j < nc; j += 16)
        _mm_prefetch(reinterpret_cast<const char*>(s + kPrefetchRows * b_rs + j), _MM_HINT_T0);
    for (int64_t jp = 0; jp < panels; ++jp) {
      float* d = dst + jp * kc * kNR + p * kNR;
      for (int v = 0; v < kNV; ++v) {
        const int64_t j = jp * kNR + v * kVec;
        _mm512_store_ps(d + v * kVec, _mm512_maskz_loadu_ps(first_lanes(std::max<int64_t>(0, nc - j)), s + j));
      }
    }
  }
}

// B transposed (b_rs == 1): each column is contiguous, so 16 x 16 blocks are transposed.
void pack_b_columns(const float* src, int64_t b_cs, int64_t nc, int64_t kc, float* dst) {
  const int64_t panels = ceil_div(nc, kNR);
  for (int64_t jp = 0; jp < panels; ++jp)
    for (int v = 0; v < kNV; ++v) {
      const int64_t j = jp * kNR + v * kVec;
      const int64_t cols = std::clamp<int64_t>(nc - j, 0, 16);
      float* d = dst + jp * kc * kNR + v * kVec;
      for (int64_t p = 0; p < kc; p += 16)
        transpose_block(src + j * b_cs + p, b_cs, cols, std::min<int64_t>(16, kc - p), d + p * kNR, kNR,
                        __mmask16(0xFFFF));
    }
}
#endif

// Any strides: element by element.
void pack_b_strided(const float* src, int64_t b_rs, int64_t b_cs, int64_t nc, int64_t kc, float* dst) {
  const int64_t panels = ceil_div(nc, kNR);
  for (int64_t jp = 0; jp < panels; ++jp) {
    const int64_t cols = std::min<int64_t>(kNR, nc - jp * kNR);
    for (int64_t p = 0; p < kc; ++p) {
      float* d = dst + jp * kc * kNR + p * kNR;
      const float* s = src + p * b_rs + jp * kNR * b_cs;
      for (int64_t j = 0; j < cols; ++j) d[j] = s[j * b_cs];
      for (int64_t j = cols; j < kNR; ++j) d[j] = 0.f;
    }
  }
}

void pack_b_block(const float* src, int64_t b_rs, int64_t b_cs, int64_t nc, int64_t kc, float* dst) {
#if defined(__AVX512F__)
  if (b_cs == 1) return pack_b_rows(src, b_rs, nc, kc, dst);
  if (b_rs == 1) return pack_b_columns(src, b_cs, nc, kc, dst);
#endif
  pack_b_strided(src, b_rs, b_cs, nc, kc, dst);
}

// ---------------------------------------------------------------------------------------
// Micro-kernel
// ---------------------------------------------------------------------------------------
struct TileArgs {
  int64_t kc;
  const float* a;  // packed A micro-panel, kc x kMR
  const float* b;  // packed B micro-panel, kc x kNR
  float* c;        // C tile top-left
  int64_t c_rs;
  int cols;        // valid columns, 1..kNR
  float alpha;
  float beta;
  bool overwrite;  // beta == 0 on the first K block: write alpha * acc, never read C
};

#if defined(__AVX512F__)
// C[0:ROWS, 0:cols] = alpha * acc + beta * C, or alpha * acc when t.overwrite. The last
// vector of a row is stored (and C read) under the mask of the valid columns.
template <int ROWS, int NV>
[[gnu::always_inline]] inline void store_tile(const TileArgs& t, const __m512 (&acc)[ROWS][NV]) {
  const int tail = t.cols - (NV - 1) * kVec;  // 1..16 valid lanes in the last vector
  const __mmask16 tail_mask = first_lanes(tail);
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

// The C tile of ROWS x cols from one A micro-panel and one B micro-panel (register blocking
// in the header comment). ROWS and NV are template parameters so that the ROWS x NV
// accumulators are named registers, never an array in memory.
template <int ROWS, int NV>
void micro_kernel(const TileArgs& t) {
  __m512 acc[ROWS][NV];
#pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();

  // The C tile is needed only at the end; start fetching it now so that the loads there
  // do not wait on L3 or memory.
#pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(t.c + i * t.c_rs + v * kVec), _MM_HINT_T0);

  // Step p: NV loads of B's row p, ROWS broadcasts of A's column p, ROWS x NV FMAs.
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
  store_tile<ROWS, NV>(t, acc);
}
#else
// The same without AVX-512: plain loops the compiler vectorizes for its target.
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

// kKernels[nv - 1][rows - 1]: the kernel for a tile of `rows` rows and `nv` vectors.
using KernelFn = void (*)(const TileArgs&);

template <int NV, int... R>
constexpr std::array<KernelFn, sizeof...(R)> kernels_for_rows(std::integer_sequence<int, R...>) {
  return {&micro_kernel<R + 1, NV>...};
}
template <int... V>
constexpr std::array<std::array<KernelFn, kMR>, sizeof...(V)> kernel_table(std::integer_sequence<int, V...>) {
  return {kernels_for_rows<V + 1>(std::make_integer_sequence<int, kMR>{})...};
}
constexpr auto kKernels = kernel_table(std::make_integer_sequence<int, kNV>{});

// ---------------------------------------------------------------------------------------
// Small problems: a direct loop, one row of C at a time (vectorized along j)
// ---------------------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------------------
// Packed, blocked GEMM
// ---------------------------------------------------------------------------------------
// The thread grid: gm x gn rectangles of C, gm * gn = team.
struct Grid {
  int gm, gn;
};

// Picks the grid with the least estimated time for the slowest thread, in cycles per step
// of k: its FMAs (rows x 16-lane vectors; the last vector of a row counts whole) plus the
// packing it does, measured at about 1 cycle per element of A (a transpose) and 0.5 per
// element of B (a copy). Splitting columns makes every thread pack all of A; splitting
// rows makes every thread pack all of B.
Grid choose_grid(int team, int64_t m, int64_t n) {
  const int64_t n_panels = ceil_div(n, kNR);
  Grid best{1, team};
  double best_cost = 0.0;
  for (int gm = 1; gm <= team; ++gm) {
    if (team % gm != 0) continue;
    const int gn = team / gm;
    const int64_t rows = ceil_div(m, gm);
    const int64_t cols = std::min(n, ceil_div(n_panels, gn) * kNR);
    const double fmas = double(rows) * double(ceil_div(cols, kVec));
    const double packing = 1.0 * double(rows) + 0.5 * double(cols) * double(ceil_div(rows, kMC));
    if (gm == 1 || fmas + packing < best_cost) {
      best_cost = fmas + packing;
      best = Grid{gm, gn};
    }
  }
  return best;
}

// The rows [ic, ic + mc) of C and the columns [c0, c1), for the K block [pc, pc + kc): the
// three inner loops of the header comment. Packs the block's A micro-panels into a_pack,
// then each B block of kNC columns into b_pack, and runs the micro-kernel on every tile.
void multiply_block(const GemmParams& p, int64_t ic, int64_t mc, int64_t pc, int64_t kc, int64_t c0, int64_t c1,
                    float* a_pack, float* b_pack) {
  const int64_t m_panels = ceil_div(mc, kMR);  // near-equal panels of <= kMR rows
  for (int64_t ip = 0; ip < m_panels; ++ip) {
    const int64_t i0 = part_begin(mc, m_panels, ip), i1 = part_begin(mc, m_panels, ip + 1);
    pack_a_panel(p.a + (ic + i0) * p.a_rs + pc * p.a_cs, p.a_rs, p.a_cs, i1 - i0, kc, a_pack + ip * kc * kMR);
  }
  TileArgs t;
  t.kc = kc;
  t.c_rs = p.c_rs;
  t.alpha = p.alpha;
  t.beta = (pc == 0) ? p.beta : 1.f;  // later K blocks accumulate into C
  t.overwrite = (pc == 0) && p.beta == 0.f;

  for (int64_t jc = c0; jc < c1; jc += kNC) {
    const int64_t nc = std::min(kNC, c1 - jc);
    const int64_t n_panels = ceil_div(nc, kNR);
    pack_b_block(p.b + pc * p.b_rs + jc * p.b_cs, p.b_rs, p.b_cs, nc, kc, b_pack);
    for (int64_t ip = 0; ip < m_panels; ++ip) {
      const int64_t i0 = part_begin(mc, m_panels, ip), i1 = part_begin(mc, m_panels, ip + 1);
      t.a = a_pack + ip * kc * kMR;
      for (int64_t jp = 0; jp < n_panels; ++jp) {
        const int64_t j = jp * kNR;
        t.cols = int(std::min<int64_t>(kNR, nc - j));
        t.b = b_pack + jp * kc * kNR;
        t.c = p.c + (ic + i0) * p.c_rs + jc + j;
        kKernels[ceil_div(t.cols, kVec) - 1][i1 - i0 - 1](t);
      }
    }
  }
}

// One thread's rectangle of C, rows [r0, r1) and columns [c0, c1), with K blocks of kc_len:
// the two outer loops of the header comment (A blocks of at most kMC rows, K blocks).
void gemm_block(const GemmParams& p, int64_t r0, int64_t r1, int64_t c0, int64_t c1, int64_t kc_len) {
  if (r0 >= r1 || c0 >= c1) return;
  const int64_t m_blocks = ceil_div(r1 - r0, kMC);
  const int64_t mc_max = ceil_div(r1 - r0, m_blocks);
  float* const a_pack = scratch<float>(kPackedA, size_t(ceil_div(mc_max, kMR) * kMR * kc_len));
  float* const b_pack = scratch<float>(kPackedB, size_t(std::min(kNC, ceil_div(c1 - c0, kNR) * kNR) * kc_len));
  for (int64_t ib = 0; ib < m_blocks; ++ib) {
    const int64_t ic = r0 + part_begin(r1 - r0, m_blocks, ib);
    const int64_t mc = r0 + part_begin(r1 - r0, m_blocks, ib + 1) - ic;
    for (int64_t pc = 0; pc < p.k; pc += kc_len)
      multiply_block(p, ic, mc, pc, std::min(kc_len, p.k - pc), c0, c1, a_pack, b_pack);
  }
}

void gemm_packed(const GemmParams& p) {
  const int64_t m = p.m, n = p.n, k = p.k;
  const int64_t kc_len = ceil_div(k, ceil_div(k, kKC));  // near-equal K blocks, from k alone
  const double macs = double(m) * double(n) * double(k);
  const int nt = int(std::max(1.0, std::min(double(omp_get_max_threads()), macs / kMacsPerThread)));

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    // The team may be smaller than nt (e.g. when called from a parallel region).
    const int team = omp_get_num_threads();
    const int tid = omp_get_thread_num();
    const Grid grid = choose_grid(team, m, n);
    const int tm = tid / grid.gn, tn = tid % grid.gn;
    // Rows split evenly; columns in whole micro-panels so that only the last is partial.
    const int64_t n_panels = ceil_div(n, kNR);
    const int64_t r0 = part_begin(m, grid.gm, tm);
    const int64_t r1 = part_begin(m, grid.gm, tm + 1);
    const int64_t c0 = std::min(n, part_begin(n_panels, grid.gn, tn) * kNR);
    const int64_t c1 = std::min(n, part_begin(n_panels, grid.gn, tn + 1) * kNR);
    gemm_block(p, r0, r1, c0, c1, kc_len);
  }
}

// ---------------------------------------------------------------------------------------
// Argument checks, the trivial cases, fp64 and the reference
// ---------------------------------------------------------------------------------------
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
  return std::string(fn) + ": got m=" + std::to_string(m) + ", n=" + std::to_string(n) + ", k=" + std::to_string(k) +
         ", c_rs=" + std::to_string(c_rs);
}

template <typename P>
void validate(const char* fn, const P& p) {
  if (p.m < 0 || p.n < 0 || p.k < 0)
    throw std::invalid_argument(shape_string(fn, p.m, p.n, p.k, p.c_rs) + " (sizes must be >= 0)");
  if (p.m == 0 || p.n == 0) return;
  if (p.c == nullptr) throw std::invalid_argument(shape_string(fn, p.m, p.n, p.k, p.c_rs) + " (C is null)");
  if (p.m > 1 && p.c_rs < p.n)
    throw std::invalid_argument(shape_string(fn, p.m, p.n, p.k, p.c_rs) + " (rows of C overlap: need c_rs >= n)");
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
  // i-k-j order: the innermost loop walks a row of B and a row of C with unit stride when
  // B is row-major. Rows of C are independent, so OpenMP splits them.
#pragma omp parallel for schedule(static) if (double(m) * double(n) * double(k) > double(1 << 18))
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
