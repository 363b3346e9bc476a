// gemm.cu - the GPU GEMM behind matmul (ops/cuda/gemm.h), in three numbered versions; one
// launcher, gemm(), picks by the backend switch (Note [gemm backends] in gemm.h):
//
//   1. sgemm_kernel      FP32 (and FP64): shared-memory tiles of A and B, an 8x8 micro-tile
//                        of C in registers per thread, the next k-tile loaded while the
//                        current one is multiplied (Note [sgemm tiles]).
//   2. tf32_gemm_kernel  what 1 does, on the tensor cores: each warp issues mma.m16n8k8 on
//                        TF32 fragments, tiles arrive by cp.async where aligned (Note [tf32 gemm]).
//   3. cuBLAS            cublas<S|D>gemmStridedBatched, the vendor baseline (nvcc build only).
//
// Shape legend: C [m, n] = A [m, k] B [k, n] for each batch item z. "w" is an operand's
// outer index (a row i of A, a column j of B), "p" runs along k.
//
// Note [sgemm tiles]. One block of 256 threads computes a 128 x 128 tile of C, stepping
// through k in tiles of 8:
//   - Shared memory holds an 8 x 128 slice of A and one of B, stored k-major ([p][w]) so
//     that the inner loop reads a row of each; twice, for double buffering: while the
//     threads multiply the tiles in buffer t % 2, the tiles of step t + 1 are already on
//     their way from global memory (into registers first, stored to the other buffer
//     after the multiply), so the load latency hides behind 8 x 64 FMAs. One barrier per
//     step is enough: a step reads one buffer and writes the other.
//   - Register blocking: each thread owns an 8 x 8 micro-tile of C, so per k it reads 8
//     values of A and 8 of B from shared memory and does 64 FMAs. An SM reads 32 words of
//     shared memory per cycle and does 128 FMAs per cycle, so fewer than 4 FMAs per shared
//     load leaves the FMA units waiting; 8 x 8 gives 4 (a 4 x 4 tile would give 2), with
//     64 accumulators + 16 operands; ptxas (sm_90) reports 128-156 registers with the
//     64-bit addressing and no spills, so registers allow one or two blocks per SM.
//   - The block tile of 128 x 128 reuses every element it loads from global memory 128
//     times (32 flops per byte loaded); 256 threads x 64 outputs = 128 x 128 exactly.
//     BK = 8 keeps the two buffers of both operands at 17 KB: shared memory is not what
//     limits the blocks per SM.
//   - The micro-tile is strided, rows ty + 16 i and columns tx + 16 j (tx, ty in 0..15),
//     not 8 adjacent rows: in one warp the 16 tx read 16 consecutive words of the B row
//     (conflict-free banks) and the two ty read two words of the A row (broadcast); the
//     stores to C are 16 consecutive columns per row, coalesced.
//   - Tiles are padded to 132 words a row, so that the k-contiguous load pattern (8
//     threads along p, 4 along w) stores to 32 different banks.
//   - Bounds: an element outside A or B is loaded as 0 (it adds nothing), an element
//     outside C is not stored; so any m, n, k works, including 1 and k = 0.
//
// Note [tf32 gemm]. Block tile 128 x 128, k-tile 16, 8 warps in a 2 x 4 grid, each warp a
// 64 x 32 tile of C = 4 x 4 mma tiles of 16 x 8 (64 accumulators per lane, as above).
//   - A is stored [m][k] and B [k][n]; each lane reads its fragment elements from there
//     at the positions of Note [tensor-core fragments] (ops/cuda/device.h), rounding
//     them to TF32 on the way.
//   - Row strides 20 (A) and 136 (B) words put the 32 lanes of one fragment read on 32
//     different banks (group * 20 + quad and quad * 136 + group are distinct mod 32), and
//     keep every row start 16-byte aligned for cp.async (the tiles are in dynamic shared
//     memory, whose start is 16-byte aligned).
//   - Loads: a row-major A and a row-major B come in 16-byte cp.async copies (4 floats
//     along k for A, along n for B) when the operand is 16-byte aligned (data, ld and
//     batch strides multiples of 4 floats); a chunk that crosses the matrix edge, or an
//     unaligned or transposed operand, is loaded element by element (zero outside).
//   - Double buffering: step t waits for its own copies, a barrier makes everyone's
//     visible (and proves everyone finished step t - 1), then the copies of step t + 1 are
//     issued into the other buffer before the mma loop of step t runs.
#include "ops/cuda/gemm.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "ops/cuda/runtime.h"

namespace mila::cuda {

// ---- the backend switch ------------------------------------------------------------------------
namespace {

std::atomic<int> chosen_backend{-1};  // -1: not chosen yet (MILA_CUDA_GEMM decides)

GemmBackend backend_from_environment() {
  const char* value = std::getenv("MILA_CUDA_GEMM");
  return value && *value ? parse_gemm_backend(value) : GemmBackend::mila;
}

}  // namespace

GemmBackend parse_gemm_backend(const std::string& name) {
  if (name == "mila") return GemmBackend::mila;
  if (name == "tf32") return GemmBackend::tf32;
  if (name == "cublas") return GemmBackend::cublas;
  throw std::invalid_argument("MILA_CUDA_GEMM: unknown GEMM backend '" + name + "' (expected mila, tf32 or cublas)");
}

const char* gemm_backend_name(GemmBackend backend) {
  switch (backend) {
    case GemmBackend::mila: return "mila";
    case GemmBackend::tf32: return "tf32";
    case GemmBackend::cublas: return "cublas";
  }
  return "?";
}

GemmBackend gemm_backend() {
  int current = chosen_backend.load();
  if (current < 0) {
    static const GemmBackend from_environment = backend_from_environment();  // read once
    chosen_backend.compare_exchange_strong(current, int(from_environment));  // unless set meanwhile
    current = chosen_backend.load();
  }
  return GemmBackend(current);
}

void set_gemm_backend(GemmBackend backend) { chosen_backend.store(int(backend)); }

bool gemm_backend_available(GemmBackend backend) {
  switch (backend) {
    case GemmBackend::mila: return true;
    case GemmBackend::tf32: return context().emulated() || context().compute_capability() >= 80;
    case GemmBackend::cublas:
#if defined(MILA_CUDA_EMULATE)
      return false;
#else
      return true;
#endif
  }
  return false;
}

namespace {

// What every kernel version receives: the GemmArgs with the batch turned into indexers.
template <typename T>
struct GemmKernelParams {
  int64_t m, n, k;
  const T* a;
  int64_t lda;
  StridedIndexer a_batch;  // element offset of A's item z
  const T* b;
  int64_t ldb;
  StridedIndexer b_batch;
  T* c;
  int64_t ldc, c_batch_stride;
  int64_t batch_count;
  bool a_aligned, b_aligned;  // version 2: may A / B use 16-byte cp.async copies
};

__device__ __forceinline__ float multiply_add(float x, float y, float acc) { return fmaf(x, y, acc); }
__device__ __forceinline__ double multiply_add(double x, double y, double acc) { return fma(x, y, acc); }

// Element (w, p) of an operand: w its outer index (a row of A, a column of B), p along k.
// kKContiguous: stored at data[w * ld + p] (A row-major, B transposed); else at data[p * ld + w].
template <typename T, bool kKContiguous>
__device__ __forceinline__ T operand_element(const T* data, int64_t ld, int64_t w, int64_t p) {
  return kKContiguous ? data[w * ld + p] : data[p * ld + w];
}

// ---- 1. sgemm_kernel ---------------------------------------------------------------------------
constexpr int kBlockM = 128, kBlockN = 128, kBlockK = 8;  // C tile per block, k per step
constexpr int kMicro = 8;                                  // micro-tile: kMicro x kMicro per thread
constexpr int kThreadsPerSide = kBlockM / kMicro;          // 16 x 16 threads
constexpr int kSgemmThreads = kThreadsPerSide * kThreadsPerSide;
constexpr int kTileWidth = 128;                            // = kBlockM = kBlockN (both operands' tiles)
constexpr int kTileStride = kTileWidth + 4;                // padded row (Note [sgemm tiles])
constexpr int kTileSize = kBlockK * kTileStride;           // one operand tile [p][w], in elements
constexpr int kLoadsPerThread = kBlockK * kTileWidth / kSgemmThreads;  // 4 per operand per step
static_assert(kBlockM == kTileWidth && kBlockN == kTileWidth, "both operand tiles are kTileWidth wide");

// Tile coordinates (p, w) of the e-th element of a k-tile, laid out so that consecutive
// threads read consecutive addresses of the operand (coalesced): along p when k is
// contiguous, along w otherwise.
template <bool kKContiguous>
__device__ __forceinline__ void tile_coords(int e, int& p, int& w) {
  if (kKContiguous) {
    p = e % kBlockK;
    w = e / kBlockK;
  } else {
    p = e / kTileWidth;
    w = e % kTileWidth;
  }
}

// This thread's share of the k-tile at (w0, k0) of an operand with w_size x k_size
// elements, into registers; zeros outside the operand.
template <typename T, bool kKContiguous>
__device__ __forceinline__ void load_tile(T (&regs)[kLoadsPerThread], const T* data, int64_t ld, int64_t w0,
                                          int64_t w_size, int64_t k0, int64_t k_size) {
  for (int r = 0; r < kLoadsPerThread; ++r) {
    int p, w;
    tile_coords<kKContiguous>(int(threadIdx.x) + r * kSgemmThreads, p, w);
    const int64_t gw = w0 + w, gp = k0 + p;
    regs[r] = gw < w_size && gp < k_size ? operand_element<T, kKContiguous>(data, ld, gw, gp) : T(0);
  }
}

template <typename T, bool kKContiguous>
__device__ __forceinline__ void store_tile(SharedSpan<T> tile, const T (&regs)[kLoadsPerThread]) {
  for (int r = 0; r < kLoadsPerThread; ++r) {
    int p, w;
    tile_coords<kKContiguous>(int(threadIdx.x) + r * kSgemmThreads, p, w);
    tile[p * kTileStride + w] = regs[r];
  }
}

// grid (m tiles, n tiles, batch items), 256 threads. kATransposed / kBTransposed: the
// operands' layouts (GemmOperand::transposed), fixed at compile time so that each of the
// four variants loads its tiles coalesced.
template <typename T, bool kATransposed, bool kBTransposed>
__global__ void __launch_bounds__(kSgemmThreads) sgemm_kernel(GemmKernelParams<T> p) {
  constexpr bool kAKContiguous = !kATransposed, kBKContiguous = kBTransposed;
  __shared__ SharedArray<T, 2 * kTileSize> a_tiles;  // [buffer][p][w = row of A]
  __shared__ SharedArray<T, 2 * kTileSize> b_tiles;  // [buffer][p][w = column of B]
  const int tx = int(threadIdx.x) % kThreadsPerSide, ty = int(threadIdx.x) / kThreadsPerSide;
  const int64_t m0 = int64_t(blockIdx.x) * kBlockM, n0 = int64_t(blockIdx.y) * kBlockN;
  const int64_t steps = (p.k + kBlockK - 1) / kBlockK;

  for (int64_t z = blockIdx.z; z < p.batch_count; z += gridDim.z) {  // more items than grid.z
    const T* a = p.a + p.a_batch.offset(z);
    const T* b = p.b + p.b_batch.offset(z);
    T acc[kMicro][kMicro];
    for (int i = 0; i < kMicro; ++i)
      for (int j = 0; j < kMicro; ++j) acc[i][j] = T(0);

    T a_next[kLoadsPerThread], b_next[kLoadsPerThread];
    load_tile<T, kAKContiguous>(a_next, a, p.lda, m0, p.m, 0, p.k);
    load_tile<T, kBKContiguous>(b_next, b, p.ldb, n0, p.n, 0, p.k);
    store_tile<T, kAKContiguous>(a_tiles.span(), a_next);
    store_tile<T, kBKContiguous>(b_tiles.span(), b_next);
    __syncthreads();

    for (int64_t step = 0; step < steps; ++step) {
      const int current = int(step % 2);
      const bool has_next = step + 1 < steps;
      if (has_next) {  // issue the global loads of the next step; they land during the FMAs
        const int64_t k0 = (step + 1) * kBlockK;
        load_tile<T, kAKContiguous>(a_next, a, p.lda, m0, p.m, k0, p.k);
        load_tile<T, kBKContiguous>(b_next, b, p.ldb, n0, p.n, k0, p.k);
      }
      const SharedSpan<T> at = a_tiles.span() + current * kTileSize, bt = b_tiles.span() + current * kTileSize;
      for (int q = 0; q < kBlockK; ++q) {
        T a_frag[kMicro], b_frag[kMicro];
        for (int i = 0; i < kMicro; ++i) a_frag[i] = at[q * kTileStride + ty + kThreadsPerSide * i];
        for (int j = 0; j < kMicro; ++j) b_frag[j] = bt[q * kTileStride + tx + kThreadsPerSide * j];
        for (int i = 0; i < kMicro; ++i)
          for (int j = 0; j < kMicro; ++j) acc[i][j] = multiply_add(a_frag[i], b_frag[j], acc[i][j]);
      }
      if (has_next) {  // the other buffer: last read one step ago, before the barrier below it
        store_tile<T, kAKContiguous>(a_tiles.span() + (1 - current) * kTileSize, a_next);
        store_tile<T, kBKContiguous>(b_tiles.span() + (1 - current) * kTileSize, b_next);
      }
      __syncthreads();
    }

    T* c = p.c + z * p.c_batch_stride;
    for (int i = 0; i < kMicro; ++i) {
      const int64_t row = m0 + ty + kThreadsPerSide * i;
      if (row >= p.m) break;
      for (int j = 0; j < kMicro; ++j) {
        const int64_t col = n0 + tx + kThreadsPerSide * j;
        if (col < p.n) c[row * p.ldc + col] = acc[i][j];
      }
    }
  }
}

// ---- 2. tf32_gemm_kernel -----------------------------------------------------------------------
constexpr int kTcBlockM = 128, kTcBlockN = 128, kTcBlockK = 16;
constexpr int kTcWarpsN = 4;                                 // 2 x 4 warps
constexpr int kTcWarpM = 64, kTcWarpN = 32;                  // C tile per warp
constexpr int kTcMmaM = kTcWarpM / 16, kTcMmaN = kTcWarpN / 8;  // 4 x 4 mma tiles per warp
constexpr int kTcThreads = 256;
constexpr int kTcAStride = kTcBlockK + 4;                    // A tile [m][k], padded (Note [tf32 gemm])
constexpr int kTcBStride = kTcBlockN + 8;                    // B tile [k][n], padded
constexpr int kTcATile = kTcBlockM * kTcAStride, kTcBTile = kTcBlockK * kTcBStride;
constexpr size_t kTcSharedBytes = 2 * (kTcATile + kTcBTile) * sizeof(float);  // 37 KB: below the 48 KB default
static_assert((kTcBlockM / kTcWarpM) * (kTcBlockN / kTcWarpN) * kWarpSize == kTcThreads, "one warp per warp tile");

// One k-tile of an operand into shared memory as tile[r][c] (row stride kStride), for
// r < kRows, c < kCols, the operand's element (r0 + r, c0 + c), zeros outside its rows x cols:
// A's tile is [m][k] (r = m, c = k), B's is [k][n] (r = k, c = n).
//   stored row-major (element (r, c) at src[r * ld + c]): 16-byte cp.async copies of four
//     c-consecutive floats where aligned and inside, element by element elsewhere;
//   transposed (element (r, c) at src[c * ld + r]): one float per thread, consecutive
//     threads along r, so that the global reads coalesce.
template <bool kTransposed, int kRows, int kCols, int kStride>
__device__ __forceinline__ void load_tile_tf32(SharedSpan<float> tile, const float* src, int64_t ld, int64_t r0,
                                               int64_t rows, int64_t c0, int64_t cols, bool aligned) {
  if constexpr (!kTransposed) {
    constexpr int kChunksPerRow = kCols / 4;
    for (int i = 0; i < kRows * kChunksPerRow / kTcThreads; ++i) {
      const int chunk = int(threadIdx.x) + i * kTcThreads;
      const int r = chunk / kChunksPerRow, c = chunk % kChunksPerRow * 4;
      const int64_t gr = r0 + r, gc = c0 + c;
      const SharedSpan<float> dst = tile + r * kStride + c;
      if (aligned && gr < rows && gc + 4 <= cols) {
        cp_async_16(dst, src + gr * ld + gc);
      } else {
        for (int q = 0; q < 4; ++q) dst[q] = gr < rows && gc + q < cols ? src[gr * ld + gc + q] : 0.f;
      }
    }
  } else {
    for (int i = 0; i < kRows * kCols / kTcThreads; ++i) {
      const int e = int(threadIdx.x) + i * kTcThreads;
      const int r = e % kRows, c = e / kRows;
      const int64_t gr = r0 + r, gc = c0 + c;
      tile[r * kStride + c] = gr < rows && gc < cols ? src[gc * ld + gr] : 0.f;
    }
  }
}

template <bool kTransposed>
__device__ __forceinline__ void load_a_tile_tf32(SharedSpan<float> tile, const float* a, int64_t lda, int64_t m0,
                                                 int64_t m, int64_t k0, int64_t k, bool aligned) {
  load_tile_tf32<kTransposed, kTcBlockM, kTcBlockK, kTcAStride>(tile, a, lda, m0, m, k0, k, aligned);
}
template <bool kTransposed>
__device__ __forceinline__ void load_b_tile_tf32(SharedSpan<float> tile, const float* b, int64_t ldb, int64_t n0,
                                                 int64_t n, int64_t k0, int64_t k, bool aligned) {
  load_tile_tf32<kTransposed, kTcBlockK, kTcBlockN, kTcBStride>(tile, b, ldb, k0, k, n0, n, aligned);
}

// grid (m tiles, n tiles, batch items), 256 threads.
template <bool kATransposed, bool kBTransposed>
__global__ void __launch_bounds__(kTcThreads) tf32_gemm_kernel(GemmKernelParams<float> p) {
  // Dynamic shared memory, because it is 16-byte aligned (cp.async needs it; a static
  // SharedArray<float> is only 4-byte aligned): [buffer][m][k] of A, then [buffer][k][n] of B.
  const SharedSpan<float> a_tiles = dynamic_shared<float>(), b_tiles = a_tiles + 2 * kTcATile;
  const int warp = int(threadIdx.x) / kWarpSize, lane = int(threadIdx.x) % kWarpSize;
  const int group = lane / 4, quad = lane % 4;  // Note [tensor-core fragments]
  const int wm = warp / kTcWarpsN * kTcWarpM, wn = warp % kTcWarpsN * kTcWarpN;  // warp tile in the block tile
  const int64_t m0 = int64_t(blockIdx.x) * kTcBlockM, n0 = int64_t(blockIdx.y) * kTcBlockN;
  const int64_t steps = (p.k + kTcBlockK - 1) / kTcBlockK;

  for (int64_t z = blockIdx.z; z < p.batch_count; z += gridDim.z) {
    const float* a = p.a + p.a_batch.offset(z);
    const float* b = p.b + p.b_batch.offset(z);
    float acc[kTcMmaM][kTcMmaN][4];
    for (int mi = 0; mi < kTcMmaM; ++mi)
      for (int ni = 0; ni < kTcMmaN; ++ni)
        for (int r = 0; r < 4; ++r) acc[mi][ni][r] = 0.f;

    if (steps > 0) {
      load_a_tile_tf32<kATransposed>(a_tiles, a, p.lda, m0, p.m, 0, p.k, p.a_aligned);
      load_b_tile_tf32<kBTransposed>(b_tiles, b, p.ldb, n0, p.n, 0, p.k, p.b_aligned);
    }
    cp_async_commit();
    for (int64_t step = 0; step < steps; ++step) {
      const int current = int(step % 2);
      cp_async_wait<0>();  // this thread's copies of step `step` have landed
      __syncthreads();     // everyone's have; and everyone is done with step - 1's buffer
      if (step + 1 < steps) {
        const int64_t k0 = (step + 1) * kTcBlockK;
        load_a_tile_tf32<kATransposed>(a_tiles + (1 - current) * kTcATile, a, p.lda, m0, p.m, k0, p.k,
                                       p.a_aligned);
        load_b_tile_tf32<kBTransposed>(b_tiles + (1 - current) * kTcBTile, b, p.ldb, n0, p.n, k0, p.k,
                                       p.b_aligned);
      }
      cp_async_commit();
      const SharedSpan<float> at = a_tiles + current * kTcATile, bt = b_tiles + current * kTcBTile;
      for (int kk = 0; kk < kTcBlockK; kk += 8) {
        uint32_t a_frag[kTcMmaM][4], b_frag[kTcMmaN][2];
        for (int mi = 0; mi < kTcMmaM; ++mi) {
          const int row = wm + mi * 16 + group;
          a_frag[mi][0] = to_tf32(at[row * kTcAStride + kk + quad]);
          a_frag[mi][1] = to_tf32(at[(row + 8) * kTcAStride + kk + quad]);
          a_frag[mi][2] = to_tf32(at[row * kTcAStride + kk + quad + 4]);
          a_frag[mi][3] = to_tf32(at[(row + 8) * kTcAStride + kk + quad + 4]);
        }
        for (int ni = 0; ni < kTcMmaN; ++ni) {
          const int col = wn + ni * 8 + group;
          b_frag[ni][0] = to_tf32(bt[(kk + quad) * kTcBStride + col]);
          b_frag[ni][1] = to_tf32(bt[(kk + quad + 4) * kTcBStride + col]);
        }
        for (int mi = 0; mi < kTcMmaM; ++mi)
          for (int ni = 0; ni < kTcMmaN; ++ni) mma_m16n8k8_tf32(acc[mi][ni], a_frag[mi], b_frag[ni]);
      }
    }
    __syncthreads();  // the next batch item's first loads overwrite buffer 0

    float* c = p.c + z * p.c_batch_stride;
    for (int mi = 0; mi < kTcMmaM; ++mi)
      for (int ni = 0; ni < kTcMmaN; ++ni)
        for (int r = 0; r < 4; ++r) {  // c[0..3] = C[group][2 quad], [group][2 quad + 1], [group + 8][...]
          const int64_t row = m0 + wm + mi * 16 + group + (r >= 2 ? 8 : 0);
          const int64_t col = n0 + wn + ni * 8 + 2 * quad + (r % 2);
          if (row < p.m && col < p.n) c[row * p.ldc + col] = acc[mi][ni][r];
        }
  }
}

// ---- the launcher --------------------------------------------------------------------------------

// The batch dims without size-1 dims, neighbours merged where one stride steps over the
// next dim for both operands (C is dense, so it always does): fewer dims to decode per
// item, and usually one dim with one stride, which is what cuBLAS's strided batch needs.
struct MergedBatch {
  Shape sizes, a_strides, b_strides;
  int64_t count = 1;
};

template <typename T>
MergedBatch merge_batch(const GemmArgs<T>& g) {
  if (g.a.batch_strides.size() != g.batch.size() || g.b.batch_strides.size() != g.batch.size())
    throw std::invalid_argument("cuda::gemm: batch " + shape_str(g.batch) + " but batch strides " +
                                shape_str(g.a.batch_strides) + " and " + shape_str(g.b.batch_strides));
  MergedBatch r;
  for (size_t d = 0; d < g.batch.size(); ++d) {
    const int64_t size = g.batch[d], as = g.a.batch_strides[d], bs = g.b.batch_strides[d];
    r.count *= size;
    if (size == 1) continue;
    if (!r.sizes.empty() && r.a_strides.back() == as * size && r.b_strides.back() == bs * size) {
      r.sizes.back() *= size;
      r.a_strides.back() = as;
      r.b_strides.back() = bs;
    } else {
      r.sizes.push_back(size);
      r.a_strides.push_back(as);
      r.b_strides.push_back(bs);
    }
  }
  return r;
}

// Whether 16-byte copies of 4 consecutive floats of every batch item are aligned.
bool aligned_for_cp_async(const void* data, int64_t ld, const Shape& batch_strides) {
  if (reinterpret_cast<uintptr_t>(data) % 16 != 0 || ld % 4 != 0) return false;
  for (int64_t s : batch_strides)
    if (s % 4 != 0) return false;
  return true;
}

// Runs body.template operator()<kATransposed, kBTransposed>() for the operands' layouts.
template <typename F>
void with_layouts(bool a_transposed, bool b_transposed, F&& body) {
  if (!a_transposed && !b_transposed) body.template operator()<false, false>();
  else if (!a_transposed) body.template operator()<false, true>();
  else if (!b_transposed) body.template operator()<true, false>();
  else body.template operator()<true, true>();
}

template <typename T>
GemmKernelParams<T> kernel_params(const GemmArgs<T>& g, const MergedBatch& batch) {
  GemmKernelParams<T> p{};
  p.m = g.m, p.n = g.n, p.k = g.k;
  p.a = g.a.data, p.lda = g.a.ld, p.a_batch = make_indexer(batch.sizes, batch.a_strides, "matmul");
  p.b = g.b.data, p.ldb = g.b.ld, p.b_batch = make_indexer(batch.sizes, batch.b_strides, "matmul");
  p.c = g.c, p.ldc = g.ldc, p.c_batch_stride = g.c_batch_stride;
  p.batch_count = batch.count;
  p.a_aligned = std::is_same_v<T, float> && !g.a.transposed && aligned_for_cp_async(g.a.data, g.a.ld, batch.a_strides);
  p.b_aligned = std::is_same_v<T, float> && !g.b.transposed && aligned_for_cp_async(g.b.data, g.b.ld, batch.b_strides);
  return p;
}

// Grid for a block tile of block_m x block_n; grid.z covers the batch, the kernels loop
// over what is beyond CUDA's 65535.
dim3 gemm_grid(int64_t m, int64_t n, int64_t count, int block_m, int block_n) {
  const int64_t gx = (m + block_m - 1) / block_m, gy = (n + block_n - 1) / block_n;
  if (gx > 0x7fffffff || gy > 65535)
    throw std::invalid_argument("matmul: a " + std::to_string(m) + " x " + std::to_string(n) +
                                " product is beyond the CUDA GEMM's grid (at most 65535 column tiles of " +
                                std::to_string(block_n) + ")");
  return dim3(unsigned(gx), unsigned(gy), unsigned(std::min<int64_t>(count, 65535)));
}

template <typename T>
void gemm_mila(const GemmArgs<T>& g, const MergedBatch& batch) {
  const GemmKernelParams<T> p = kernel_params(g, batch);
  const dim3 grid = gemm_grid(g.m, g.n, batch.count, kBlockM, kBlockN);
  with_layouts(g.a.transposed, g.b.transposed, [&]<bool kAT, bool kBT>() {
    MILA_LAUNCH((sgemm_kernel<T, kAT, kBT>), grid, dim3(kSgemmThreads), 0, p);
  });
}

void gemm_tf32(const GemmArgs<float>& g, const MergedBatch& batch) {
  if (!gemm_backend_available(GemmBackend::tf32))
    throw std::runtime_error("MILA_CUDA_GEMM=tf32 needs tensor cores with TF32 (compute capability 8.0 or newer); "
                             "this GPU has " + std::to_string(context().compute_capability() / 10) + "." +
                             std::to_string(context().compute_capability() % 10));
  const GemmKernelParams<float> p = kernel_params(g, batch);
  const dim3 grid = gemm_grid(g.m, g.n, batch.count, kTcBlockM, kTcBlockN);
  with_layouts(g.a.transposed, g.b.transposed, [&]<bool kAT, bool kBT>() {
    MILA_LAUNCH((tf32_gemm_kernel<kAT, kBT>), grid, dim3(kTcThreads), kTcSharedBytes, p);
  });
}

// ---- 3. cuBLAS -----------------------------------------------------------------------------------
#if !defined(MILA_CUDA_EMULATE)
void check_cublas(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("matmul: ") + call + " failed: " + cublasGetStatusString(status));
}

int as_int(int64_t v, const char* what) {
  if (v > 0x7fffffff) throw std::invalid_argument(std::string("matmul: cuBLAS takes int sizes; ") + what + " = " +
                                                  std::to_string(v));
  return int(v);
}

// cuBLAS is column-major: the row-major C = A B is the column-major C^T = B^T A^T, so B goes
// first, and an operand that is row-major for us (not transposed) is "N" for cuBLAS.
template <typename T>
void gemm_cublas(const GemmArgs<T>& g, const MergedBatch& batch) {
  const cublasHandle_t handle = context().cublas();
  const cublasOperation_t op_a = g.a.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = g.b.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int m = as_int(g.m, "m"), n = as_int(g.n, "n"), k = as_int(g.k, "k");
  const int lda = as_int(g.a.ld, "lda"), ldb = as_int(g.b.ld, "ldb"), ldc = as_int(g.ldc, "ldc");
  const T one = 1, zero = 0;
  // One strided-batched call over the innermost merged batch dim; a host loop over the
  // others (rare: only batches whose strides do not merge into one).
  const size_t nd = batch.sizes.size();
  const int inner = nd ? as_int(batch.sizes.back(), "batch") : 1;
  const int64_t a_stride = nd ? batch.a_strides.back() : 0, b_stride = nd ? batch.b_strides.back() : 0;
  const Shape outer_sizes(batch.sizes.begin(), batch.sizes.end() - (nd ? 1 : 0));
  const StridedIndexer outer_a = make_indexer(outer_sizes, Shape(batch.a_strides.begin(), batch.a_strides.end() - (nd ? 1 : 0)), "matmul");
  const StridedIndexer outer_b = make_indexer(outer_sizes, Shape(batch.b_strides.begin(), batch.b_strides.end() - (nd ? 1 : 0)), "matmul");
  const int64_t outer = numel_of(outer_sizes);
  for (int64_t o = 0; o < outer; ++o) {
    const T* a = g.a.data + outer_a.offset(o);
    const T* b = g.b.data + outer_b.offset(o);
    T* c = g.c + o * inner * g.c_batch_stride;
    if constexpr (std::is_same_v<T, float>)
      check_cublas(cublasSgemmStridedBatched(handle, op_b, op_a, n, m, k, &one, b, ldb, b_stride, a, lda, a_stride,
                                             &zero, c, ldc, g.c_batch_stride, inner),
                   "cublasSgemmStridedBatched");
    else
      check_cublas(cublasDgemmStridedBatched(handle, op_b, op_a, n, m, k, &one, b, ldb, b_stride, a, lda, a_stride,
                                             &zero, c, ldc, g.c_batch_stride, inner),
                   "cublasDgemmStridedBatched");
  }
}
#endif

template <typename T>
void run_gemm(const GemmArgs<T>& g) {
  const GemmBackend backend = gemm_backend();
  if (backend == GemmBackend::cublas && !gemm_backend_available(backend))
    throw std::runtime_error("cuBLAS is not emulated; MILA_CUDA_GEMM=cublas needs a GPU build");
  const MergedBatch batch = merge_batch(g);
  if (g.m == 0 || g.n == 0 || batch.count == 0) return;
  if (g.k == 0) return gemm_mila(g, batch);  // every backend: zeros (version 1's loop runs no step)
  switch (backend) {
    case GemmBackend::mila: return gemm_mila(g, batch);
    case GemmBackend::tf32:
      if constexpr (std::is_same_v<T, float>) return gemm_tf32(g, batch);
      else return gemm_mila(g, batch);  // TF32 is a float32 format: float64 stays exact
    case GemmBackend::cublas:
#if !defined(MILA_CUDA_EMULATE)
      return gemm_cublas(g, batch);
#endif
      break;
  }
  throw std::logic_error("cuda::gemm: unknown backend");
}

}  // namespace

void gemm(const GemmArgs<float>& args) { run_gemm(args); }
void gemm(const GemmArgs<double>& args) { run_gemm(args); }

}  // namespace mila::cuda
