// bench_gemm.cpp — mila::cpu::gemm_f32 next to its baselines, Eigen and oneDNN.
//
// All three compute the same row-major product C[M, N] = A[M, K] * B[K, N] (alpha = 1,
// beta = 0) on the same data, with the same number of OpenMP threads:
//   BM_gemm_mila   : mila::cpu::gemm_f32, the kernel that ships (ops/cpu/gemm.cpp).
//   BM_gemm_eigen  : Eigen::Map of row-major float matrices, c.noalias() = a * b,
//                    Eigen::setNbThreads(threads) (Eigen parallelizes with OpenMP).
//   BM_gemm_onednn : dnnl_sgemm('N', 'N', ...), oneDNN's JIT-generated sgemm (built
//                    with the OpenMP runtime, so omp_set_num_threads sets its threads).
//
// Counter: GFLOP/s = 2 * M * N * K / time (one multiply and one add per term).
// Read it against BM_fma_peak in bench_peak.cpp (the measured fp32 FMA peak).
//
// Shapes: square 256..2048, plus two shapes from the networks this library trains:
// (M=64, N=6912, K=576) is short and wide (a convolution lowered to GEMM with few
// output channels), (M=512, N=1728, K=4608) has a deep K.
// Arguments are {M, N, K, threads}. Each benchmark does one untimed warm-up call
// (which also sizes the library's packing buffers) and then runs for >= 0.5 s of
// wall time; UseRealTime because the work is spread over several threads.

// GCC 12 warns, wrongly, inside Eigen's AVX-512 code that intrinsics read an
// uninitialized register (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <Eigen/Core>
#include <benchmark/benchmark.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/cpu/gemm.h"

namespace {

struct Problem {
    int64_t m, n, k;
    std::vector<float> a, b, c;  // A [m, k], B [k, n], C [m, n], row-major
};

Problem make_problem(const benchmark::State& state) {
    Problem p;
    p.m = state.range(0);
    p.n = state.range(1);
    p.k = state.range(2);
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> uniform(-1.f, 1.f);
    p.a.resize(std::size_t(p.m * p.k));
    p.b.resize(std::size_t(p.k * p.n));
    p.c.assign(std::size_t(p.m * p.n), 0.f);
    for (float& x : p.a) x = uniform(rng);
    for (float& x : p.b) x = uniform(rng);
    return p;
}

void set_counters(benchmark::State& state, const Problem& p) {
    const double flop = 2.0 * double(p.m) * double(p.n) * double(p.k);
    state.counters["GFLOP/s"] =
        benchmark::Counter(flop * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

void BM_gemm_mila(benchmark::State& state) {
    Problem p = make_problem(state);
    omp_set_num_threads(int(state.range(3)));
    const mila::cpu::GemmParams params{p.m, p.n, p.k, 1.f,      p.a.data(), p.k,   1,
                                       p.b.data(), p.n, 1,      0.f,        p.c.data(), p.n};
    mila::cpu::gemm_f32(params);  // warm-up
    for (auto _ : state) {
        mila::cpu::gemm_f32(params);
        benchmark::ClobberMemory();
    }
    set_counters(state, p);
}

void BM_gemm_eigen(benchmark::State& state) {
    using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Problem p = make_problem(state);
    omp_set_num_threads(int(state.range(3)));
    Eigen::setNbThreads(int(state.range(3)));
    Eigen::Map<const RowMajor> a(p.a.data(), p.m, p.k);
    Eigen::Map<const RowMajor> b(p.b.data(), p.k, p.n);
    Eigen::Map<RowMajor> c(p.c.data(), p.m, p.n);
    c.noalias() = a * b;  // warm-up
    for (auto _ : state) {
        c.noalias() = a * b;
        benchmark::ClobberMemory();
    }
    set_counters(state, p);
}

void BM_gemm_onednn(benchmark::State& state) {
    Problem p = make_problem(state);
    omp_set_num_threads(int(state.range(3)));
    auto sgemm = [&] {
        const dnnl_status_t status = dnnl_sgemm('N', 'N', p.m, p.n, p.k, 1.f, p.a.data(), p.k,
                                                p.b.data(), p.n, 0.f, p.c.data(), p.n);
        if (status != dnnl_success)
            throw std::runtime_error("dnnl_sgemm failed with status " + std::to_string(int(status)));
    };
    sgemm();  // warm-up
    for (auto _ : state) {
        sgemm();
        benchmark::ClobberMemory();
    }
    set_counters(state, p);
}

void gemm_shapes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"M", "N", "K", "threads"});
    const int64_t shapes[][3] = {{256, 256, 256},   {512, 512, 512},  {1024, 1024, 1024},
                                 {2048, 2048, 2048}, {64, 6912, 576}, {512, 1728, 4608}};
    for (const auto& s : shapes)
        for (int64_t threads : {1, 2}) b->Args({s[0], s[1], s[2], threads});
    b->UseRealTime()->MinTime(0.5);
}

BENCHMARK(BM_gemm_mila)->Apply(gemm_shapes);
BENCHMARK(BM_gemm_eigen)->Apply(gemm_shapes);
BENCHMARK(BM_gemm_onednn)->Apply(gemm_shapes);

}  // namespace

BENCHMARK_MAIN();
