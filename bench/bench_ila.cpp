// bench_ila.cpp - the fused inter-frame local attention (mila::ila, ops/cpu/ila.cpp) next
// to its baseline, the same function composed from generic ops (mila::ila_composed).
//
//   BM_ila_fused_fwd / BM_ila_composed_fwd        out = ila(a, b, v, L): the op as a model
//                                                 calls it (allocation of out and of the
//                                                 saved weights included), no graph
//   BM_ila_fused_fwdbwd / BM_ila_composed_fwdbwd  the same with a, b, v requiring grad,
//                                                 then out.backward(dout)
//   BM_ila_kernel_fwd / BM_ila_kernel_fwdbwd      the fused op's CPU kernels alone
//                                                 (cpu::ila_forward, cpu::ila_backward)
//                                                 into outputs allocated once: the kernel
//                                                 against the memory floor, without the
//                                                 allocator's page faults
// Shapes are MILA's (SPEC 4): D = 64, L = 5, maps 36x48 (a 288x384 input at output stride
// 8) and 72x96, C = 256 and 512, batch 1 and 4. Arguments {H, W, C, B}. float32, two
// OpenMP threads (the machine's cores).
//
// Counters, from the memory floor: the bytes a perfect kernel must move at least once.
//   forward:      a, b, v read + out written              = 4 (2 B D HW + 2 B C HW)
//   fwd + bwd:    forward + dout read + da, db, dv written
//                 + the saved weights written and read    = 4 (4 B D HW + 4 B C HW + 2 B N HW)
//   GB/s        = floor bytes / time
//   floor_ratio = time / (floor bytes / bandwidth): 1 is the floor, 2 twice the floor.
// `bandwidth` is bench_peak's BM_stream_copy with 2 threads on the reference machine (the
// "Machine peak" section of bench/RESULTS.md); set MILA_BANDWIDTH_GBS to read the counters
// against another machine. STREAM counts bytes as the program sees them, and so do we.
//
// The fused benchmarks repeat 5 times and also report the minimum (other jobs share this
// machine; the minimum is the least disturbed run). The composed baseline is slow (seconds
// at the large shapes): a fixed 3 (forward) or 2 (fwd + bwd) iterations, one repetition.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <utility>
#include <vector>

#include "ops/cpu/ila.h"
#include "ops/cpu/parallel.h"
#include "ops/threads.h"
#include "ops/ila.h"
#include "ops/ops.h"

namespace {

using namespace mila;

constexpr int64_t kD = 64;
constexpr int64_t kL = 5;
constexpr int64_t kN = kL * kL;
constexpr int kThreads = 2;
// BM_stream_copy with 2 threads (bench_peak), median, on the 2-core EPYC (Zen 4): the
// "Machine peak" section of bench/RESULTS.md.
constexpr double kReferenceBandwidthGBs = 32.6;

double bandwidth_gbs() {
  if (const char* env = std::getenv("MILA_BANDWIDTH_GBS")) return std::atof(env);
  return kReferenceBandwidthGBs;
}

struct Problem {
  int64_t H, W, C, B;
  Tensor a, b, v, dout;
};

Problem make_problem(const benchmark::State& state) {
  Problem p{state.range(0), state.range(1), state.range(2), state.range(3), {}, {}, {}, {}};
  Generator gen(42);
  p.a = randn({p.B, kD, p.H, p.W}, {}, &gen);
  p.b = randn({p.B, kD, p.H, p.W}, {}, &gen);
  p.v = randn({p.B, p.C, p.H, p.W}, {}, &gen);
  p.dout = randn({p.B, p.C, p.H, p.W}, {}, &gen);
  return p;
}

// The formula of the header, in bytes.
double floor_bytes(const Problem& p, bool backward) {
  const double hw = double(p.H * p.W), B = double(p.B), D = double(kD), C = double(p.C);
  const double forward = 4.0 * (2 * B * D * hw + 2 * B * C * hw);
  return backward ? 2 * forward + 4.0 * 2 * B * double(kN) * hw : forward;
}

void set_counters(benchmark::State& state, const Problem& p, bool backward) {
  const double gigabytes = floor_bytes(p, backward) * 1e-9 * double(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(gigabytes, benchmark::Counter::kIsRate);
  // kIsRate | kInvert divides the time by the value: time / floor time.
  state.counters["floor_ratio"] =
      benchmark::Counter(gigabytes / bandwidth_gbs(), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

template <bool kFused>
void BM_ila_fwd(benchmark::State& state) {
  set_num_threads(kThreads);
  const Problem p = make_problem(state);
  auto run = [&] { return kFused ? ila(p.a, p.b, p.v, kL) : ila_composed(p.a, p.b, p.v, kL); };
  benchmark::DoNotOptimize(run().raw_data());  // warm-up
  for (auto _ : state) {
    Tensor out = run();
    benchmark::DoNotOptimize(out.raw_data());
  }
  set_counters(state, p, false);
}

template <bool kFused>
void BM_ila_fwdbwd(benchmark::State& state) {
  set_num_threads(kThreads);
  Problem p = make_problem(state);
  p.a.requires_grad_(), p.b.requires_grad_(), p.v.requires_grad_();
  auto step = [&] {
    p.a.zero_grad(), p.b.zero_grad(), p.v.zero_grad();  // fresh gradients, no accumulation
    Tensor out = kFused ? ila(p.a, p.b, p.v, kL) : ila_composed(p.a, p.b, p.v, kL);
    out.backward(p.dout);
  };
  step();  // warm-up
  for (auto _ : state) {
    step();
    benchmark::DoNotOptimize(p.v.grad().raw_data());
  }
  set_counters(state, p, true);
}

template <bool kBackward>
void BM_ila_kernel(benchmark::State& state) {
  set_num_threads(kThreads);
  const Problem p = make_problem(state);
  const Tensor out = empty(p.v.shape()), weights = empty({p.B, kN, p.H, p.W});
  const Tensor da = empty(p.a.shape()), db = empty(p.b.shape()), dv = empty(p.v.shape());
  auto step = [&] {
    cpu::ila_forward(out, weights, p.a, p.b, p.v, kL);
    if (kBackward) cpu::ila_backward(da, db, dv, p.dout, weights, p.a, p.b, p.v, kL);
  };
  step();  // warm-up: touches every output page and sizes the kernels' scratch
  for (auto _ : state) {
    step();
    benchmark::ClobberMemory();
  }
  set_counters(state, p, kBackward);
}

double min_of(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"H", "W", "C", "B"});
  for (auto [H, W] : {std::pair{36, 48}, std::pair{72, 96}})
    for (int64_t C : {256, 512})
      for (int64_t B : {1, 4}) b->Args({H, W, C, B});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}
void repeated(benchmark::internal::Benchmark* b) {
  shapes(b);
  b->MinTime(0.2)->Repetitions(5)->ComputeStatistics("min", min_of)->ReportAggregatesOnly(true);
}

BENCHMARK(BM_ila_fwd<true>)->Name("BM_ila_fused_fwd")->Apply(repeated);
BENCHMARK(BM_ila_kernel<false>)->Name("BM_ila_kernel_fwd")->Apply(repeated);
BENCHMARK(BM_ila_fwd<false>)->Name("BM_ila_composed_fwd")->Apply(shapes)->Iterations(3);
BENCHMARK(BM_ila_fwdbwd<true>)->Name("BM_ila_fused_fwdbwd")->Apply(repeated);
BENCHMARK(BM_ila_kernel<true>)->Name("BM_ila_kernel_fwdbwd")->Apply(repeated);
BENCHMARK(BM_ila_fwdbwd<false>)->Name("BM_ila_composed_fwdbwd")->Apply(shapes)->Iterations(2);

}  // namespace

BENCHMARK_MAIN();
