// parallel.h - the CPU threading primitive: OpenMP over contiguous chunks of a range.
//
// The chunks depend on the thread count (one per thread, none smaller than `grain`), so a
// kernel must never combine per-chunk partial results: its bits would change with the
// threads. Kernels whose chunks only write disjoint outputs use parallel_for directly; a
// reduction first splits its work into pieces of a fixed size (ops/cpu/reduce.cpp:
// kSumChunk) and uses parallel_for to hand the pieces out, then combines their results in
// piece order, which keeps results the same for any thread count (tested).
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mila::cpu {

// The threads a parallel region gets (programs set it with mila::set_num_threads, ops/threads.h).
inline int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Calls f(begin, end) over [0, n) in chunks of at least `grain` items, in parallel when
// there is more than one chunk. Serial inside an already-parallel region.
template <typename F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
#ifdef _OPENMP
  if (omp_in_parallel()) {  // nested: this thread does it all (no oversubscription)
    f(int64_t(0), n);
    return;
  }
#endif
  grain = std::max<int64_t>(grain, 1);
  const int64_t threads = num_threads();
  const int64_t chunks = std::min<int64_t>(threads, (n + grain - 1) / grain);
  if (chunks <= 1) {
    f(int64_t(0), n);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(int(chunks))
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
    f(begin, end);
  }
}

// Elements of work below which an elementwise op stays on one thread.
inline constexpr int64_t kElementwiseGrain = 32768;

}  // namespace mila::cpu
