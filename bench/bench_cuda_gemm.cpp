// bench_cuda_gemm.cpp - the GPU GEMM's three backends (Note [gemm backends] in
// ops/cuda/gemm.h) on the same float32 products, through the op that ships:
//
//   BM_cuda_matmul/<backend>/M/N/K : matmul(A [M, K], B [K, N]) on cuda:0 with
//                                    MILA_CUDA_GEMM = mila (FP32 SGEMM), tf32 or cublas.
//
// Timing: wall time of 20 calls queued back to back, then cudaDeviceSynchronize, divided
// by 20 (UseManualTime), after one untimed warm-up call. Queued calls overlap each launch
// with the previous kernel, so each call carries about 1/20 of one launch-and-synchronize
// latency (not measured here: this session had no GPU). (CUDA events on the context's stream
// would need ops/cuda/context.h, which a .cpp file of the nvcc build cannot include.)
// The output is allocated inside each call, as in training (the caching allocator hands
// back the same blocks).
// Counter: TFLOP/s = 2 * M * N * K / time (one multiply and one add per term). cuBLAS is
// the baseline; tf32 reads against cuBLAS's FP32 and the tensor cores' TF32 peak.
// Shapes: squares 1024..4096 and the two network shapes of bench_gemm.cpp (a short wide
// convolution GEMM, a deep-K one).
//
// Without a GPU (a CPU-only build, the emulation build, whose timings mean nothing, or a
// machine with no device) every benchmark skips with a message saying why.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "ops/cuda/gemm.h"
#include "ops/ops.h"

#if defined(MILA_WITH_CUDA) && !defined(MILA_CUDA_EMULATE)
#include <cuda_runtime.h>
#define MILA_BENCH_ON_GPU 1
#else
#define MILA_BENCH_ON_GPU 0
#endif

namespace {

using namespace mila;

const char* const kBackendNames[] = {"mila", "tf32", "cublas"};

// Why this run cannot time a GPU, or "" when it can.
std::string why_no_gpu() {
  if (!MILA_BENCH_ON_GPU) return cuda_compiled() ? "the emulation build has no GPU timings" : "CPU-only build";
  if (cuda_device_count() == 0) return "no GPU on this machine";
  return "";
}

void BM_cuda_matmul(benchmark::State& state) {
  const std::string why = why_no_gpu();
  if (!why.empty()) {
    state.SkipWithError(why.c_str());
    return;
  }
#if MILA_BENCH_ON_GPU
  const auto backend = cuda::GemmBackend(state.range(0));
  const int64_t m = state.range(1), n = state.range(2), k = state.range(3);
  state.SetLabel(kBackendNames[state.range(0)]);
  if (!cuda::gemm_backend_available(backend)) {
    state.SkipWithError("this GPU cannot run the backend");
    return;
  }
  const cuda::GemmBackend saved = cuda::gemm_backend();
  cuda::set_gemm_backend(backend);
  Generator gen(42);
  const Tensor a = rand({m, k}, {DType::Float32}, &gen).to(Device::cuda());
  const Tensor b = rand({k, n}, {DType::Float32}, &gen).to(Device::cuda());
  NoGradGuard no_grad;
  (void)matmul(a, b);  // warm-up: allocates the output block, loads the kernel
  auto synchronize = [] {
    const cudaError_t err = cudaDeviceSynchronize();
    if (err != cudaSuccess) throw std::runtime_error(std::string("matmul: ") + cudaGetErrorString(err));
  };
  synchronize();
  constexpr int kCalls = 20;
  double seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kCalls; ++i) (void)matmul(a, b);
    synchronize();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.SetIterationTime(elapsed / kCalls);
    seconds += elapsed / kCalls;
  }
  cuda::set_gemm_backend(saved);
  // From the measured times (a rate counter would divide by the CPU time).
  state.counters["TFLOP/s"] = 2.0 * double(m) * double(n) * double(k) * double(state.iterations()) * 1e-12 / seconds;
#endif
}

void shapes(benchmark::internal::Benchmark* b) {
  for (int64_t backend = 0; backend < 3; ++backend) {
    for (int64_t s : {1024, 2048, 4096}) b->Args({backend, s, s, s});
    b->Args({backend, 64, 6912, 576});
    b->Args({backend, 512, 1728, 4608});
  }
}

BENCHMARK(BM_cuda_matmul)->Apply(shapes)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
