// bench_peak.cpp — the machine's floors: fp32 FMA peak and memory bandwidth.
//
// Every other CPU benchmark in this project is read against these two numbers:
// a compute-bound kernel (GEMM, convolution) is judged as a fraction of the measured
// FMA peak, a memory-bound kernel (elementwise ops, reductions) as a fraction of the
// measured bandwidth. Both are *measured* here rather than taken from a data sheet,
// because the clock a virtual machine actually sustains under AVX-512 load is not the
// one printed by lscpu.
//
// Peak (BM_fma_peak): each thread runs kChains independent FMA chains held in vector
// registers, x = x * mul + add, with no memory traffic in the loop. The chains must
// outnumber FMA latency x FMA throughput so the pipes never wait on a result; on Zen 4
// an FMA has 4 cycles of latency and one 512-bit FMA issues per cycle (it occupies
// both 256-bit FMA pipes: AVX-512 is "double-pumped"), so >= 4 chains suffice and we
// use 12 to be safe on any core of this class. mul < 1 keeps the values bounded and
// away from denormals (which could be slow).
//   FLOP per iteration = kChains * lanes * 2 (an FMA is a multiply and an add).
//
// Bandwidth (BM_stream_copy, BM_stream_triad): STREAM-style loops over arrays of
// 512 MiB each, far larger than the 32 MiB L3, so every access goes to DRAM.
//   copy : a[i] = b[i]            bytes counted = 2 * N * 4
//   triad: a[i] = b[i] + s * c[i] bytes counted = 3 * N * 4
// As in STREAM, bytes are counted as the program sees them: the extra read for the
// write-allocate of a[] is not counted.
//
// Threads: 1 and 2 (the machine's core count); the OpenMP team is set per benchmark.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

constexpr int kChains = 12;
constexpr int kLanes = 16;  // fp32 lanes per 512-bit vector

// Runs `iters` iterations of kChains independent vector FMA chains; returns a value
// that depends on every chain so the compiler cannot drop any of them.
float fma_chains(int64_t iters, float seed) {
#if defined(__AVX512F__)
    __m512 x[kChains];
    for (int c = 0; c < kChains; ++c) x[c] = _mm512_set1_ps(seed + 0.01f * float(c));
    const __m512 mul = _mm512_set1_ps(0.999f);
    const __m512 add = _mm512_set1_ps(0.001f);
    for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
        for (int c = 0; c < kChains; ++c) x[c] = _mm512_fmadd_ps(x[c], mul, add);
    }
    __m512 sum = x[0];
    for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, x[c]);
    alignas(64) float lanes[kLanes];
    _mm512_store_ps(lanes, sum);
    float total = 0.f;
    for (float v : lanes) total += v;
    return total;
#else
    // Portable fallback: the compiler vectorizes the chains for whatever ISA it targets.
    float x[kChains][kLanes];
    for (int c = 0; c < kChains; ++c)
        for (int l = 0; l < kLanes; ++l) x[c][l] = seed + 0.01f * float(c);
    for (int64_t it = 0; it < iters; ++it)
        for (int c = 0; c < kChains; ++c)
            for (int l = 0; l < kLanes; ++l) x[c][l] = x[c][l] * 0.999f + 0.001f;
    float sum = 0.f;
    for (int c = 0; c < kChains; ++c)
        for (int l = 0; l < kLanes; ++l) sum += x[c][l];
    return sum;
#endif
}

void BM_fma_peak(benchmark::State& state) {
    const int threads = int(state.range(0));
    constexpr int64_t kIters = int64_t(1) << 22;  // 4M iterations x 12 FMAs: ~14 ms at 3.6 GHz
    float sink = 0.f;
    for (auto _ : state) {
        float total = 0.f;
#pragma omp parallel num_threads(threads) reduction(+ : total)
        total += fma_chains(kIters, 1.0f + float(omp_get_thread_num()));
        sink += total;
    }
    benchmark::DoNotOptimize(sink);
    const double flop_per_iter = double(threads) * double(kIters) * kChains * kLanes * 2.0;
    state.counters["GFLOP/s"] = benchmark::Counter(
        flop_per_iter * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_fma_peak)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->MinTime(0.5);

// 512 MiB of floats per array.
constexpr std::size_t kStreamN = (std::size_t(512) << 20) / sizeof(float);

struct AlignedFree {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t(64)); }
};
using AlignedArray = std::unique_ptr<float[], AlignedFree>;

// Allocates and first-touches an array with the same static partition the
// benchmark loops use, so each page is faulted in before timing starts.
AlignedArray make_array(float value, int threads) {
    AlignedArray a(static_cast<float*>(::operator new[](kStreamN * sizeof(float), std::align_val_t(64))));
    float* p = a.get();
#pragma omp parallel for schedule(static) num_threads(threads)
    for (std::size_t i = 0; i < kStreamN; ++i) p[i] = value;
    return a;
}

void BM_stream_copy(benchmark::State& state) {
    const int threads = int(state.range(0));
    AlignedArray a = make_array(0.f, threads);
    AlignedArray b = make_array(1.f, threads);
    float* __restrict pa = a.get();
    const float* __restrict pb = b.get();
    for (auto _ : state) {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (std::size_t i = 0; i < kStreamN; ++i) pa[i] = pb[i];
        benchmark::ClobberMemory();
    }
    const double bytes_per_iter = 2.0 * double(kStreamN) * sizeof(float);
    state.counters["GB/s"] = benchmark::Counter(bytes_per_iter * double(state.iterations()) * 1e-9,
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_stream_copy)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->MinTime(1.0);

void BM_stream_triad(benchmark::State& state) {
    const int threads = int(state.range(0));
    AlignedArray a = make_array(0.f, threads);
    AlignedArray b = make_array(1.f, threads);
    AlignedArray c = make_array(2.f, threads);
    float* __restrict pa = a.get();
    const float* __restrict pb = b.get();
    const float* __restrict pc = c.get();
    const float s = 3.f;
    for (auto _ : state) {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (std::size_t i = 0; i < kStreamN; ++i) pa[i] = pb[i] + s * pc[i];
        benchmark::ClobberMemory();
    }
    const double bytes_per_iter = 3.0 * double(kStreamN) * sizeof(float);
    state.counters["GB/s"] = benchmark::Counter(bytes_per_iter * double(state.iterations()) * 1e-9,
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_stream_triad)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->MinTime(1.0);

}  // namespace

BENCHMARK_MAIN();
