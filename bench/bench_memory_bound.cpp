// bench_memory_bound.cpp - the memory-bound vision kernels against their memory floor:
// batch_norm, bilinear upsampling, cross_entropy, normalize, channel_gate, bce_with_logits.
//
// Two views of each op, float32, two OpenMP threads (the machine's cores):
//   BM_<op>_{fwd,bwd}_kernel  the shipped CPU kernel (ops/cpu/<op>.cpp) into outputs
//                             allocated and touched once before timing: the kernel's own speed.
//   BM_<op>_op_{fwd,bwd}      the public op as the model calls it: fwd = op(...) with inputs
//                             requiring grad (the graph node recorded); bwd = that node's
//                             backward function, as the engine calls it. Both allocate their
//                             results, fresh pages from the OS each time (the CPU allocator does
//                             not cache), which is the difference from the kernel rows. The
//                             engine's copy of a leaf's first gradient into .grad is left out:
//                             inside the model these inputs are activations, not leaves.
//
// Memory floor: the bytes a perfect kernel must move, each input read once and each output
// written once (4 bytes per float32, 8 per int64 label; [C]-sized statistics and the 0-d
// losses are negligible and not counted). Per benchmark, with n = elements of x:
//   batch_norm      fwd: x read, y written = 8n          bwd: x, dy read, dx written = 12n
//   bilinear        fwd: in read, out written            bwd: dout read, dx written
//   cross_entropy   fwd (no grad): logits, labels read
//                   fwd+bwd: logits, labels read once, dlogits written once (the forward
//                   writes the gradient; the backward returns it for dout = 1, else scales it:
//                   dlogits read and written)
//   normalize       fwd: 8n                              bwd: x, dy read, dx written = 12n
//   channel_gate    fwd: 8n (+ gate)                     bwd: x, dy read, dx written = 12n
//   bce_with_logits fwd: x, t read = 8n                  bwd: x, t read, dx written = 12n
// Counters: GB/s = floor bytes / time; floor_ratio = time / (floor bytes / bandwidth), 1 is
// the floor and 2 is twice it. bandwidth = kReferenceBandwidthGBs below (override with the
// environment variable MILA_BANDWIDTH_GBS on another machine).
//
// Shapes (SPEC 4): BN on the neck / head maps [4, 256, 36, 48] (7 MB: fits the 32 MB L3) and
// on the ResNet stem's [4, 64, 144, 192] (28 MB: does not); the heads' x8 upsampling
// 36x48 -> 288x384 with C = 64, N = 4 (113 MB out); cross_entropy on NYUv2's 13 classes at
// [4, 13, 288, 384]; normalize on the normal head [4, 3, 288, 384] and on [4, 256, 36, 48];
// channel_gate at [4, 256, 36, 48]; bce on 4M logits (16 MB).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <vector>

#include "ops/batch_norm.h"
#include "ops/channel_gate.h"
#include "ops/cpu/batch_norm.h"
#include "ops/cpu/channel_gate.h"
#include "ops/cpu/interpolate.h"
#include "ops/cpu/losses.h"
#include "ops/cpu/parallel.h"
#include "ops/threads.h"
#include "ops/interpolate.h"
#include "ops/losses.h"
#include "ops/ops.h"

namespace {

using namespace mila;

constexpr int kThreads = 2;  // MILA_BENCH_THREADS overrides (e.g. 1, against BM_stream_copy/threads:1)

int threads() {
  if (const char* env = std::getenv("MILA_BENCH_THREADS")) return std::atoi(env);
  return kThreads;
}
// GB/s of bench_peak's BM_stream_copy with 2 threads, measured on the reference machine
// (2-core AMD EPYC Zen 4) for this file's section of bench/RESULTS.md.
constexpr double kReferenceBandwidthGBs = 32.6;

double bandwidth_gbs() {
  if (const char* env = std::getenv("MILA_BANDWIDTH_GBS")) return std::atof(env);
  return kReferenceBandwidthGBs;
}

void set_counters(benchmark::State& state, double floor_bytes) {
  const double gigabytes = floor_bytes * 1e-9 * double(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(gigabytes, benchmark::Counter::kIsRate);
  // kIsRate | kInvert divides the time by the value: time / floor time.
  state.counters["floor_ratio"] =
      benchmark::Counter(gigabytes / bandwidth_gbs(), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// Times f (after one warm-up call) and sets the counters for `floor_bytes` per call.
template <typename F>
void run(benchmark::State& state, double floor_bytes, F&& f) {
  set_num_threads(threads());
  f();
  for (auto _ : state) {
    f();
    benchmark::ClobberMemory();
  }
  set_counters(state, floor_bytes);
}

// Times the backward function of out's graph node, all gradients wanted.
void run_node_backward(benchmark::State& state, double floor_bytes, const Tensor& out, const Tensor& dout) {
  autograd::Node& node = *out.grad_fn();
  const std::vector<bool> needs(node.inputs.size(), true);
  run(state, floor_bytes, [&] { benchmark::DoNotOptimize(node.backward(dout, needs)); });
}

Tensor random(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, {}, &gen);
}

double floats(int64_t n) { return 4.0 * double(n); }

// ---- batch_norm (training) -------------------------------------------------------------------

struct BatchNormProblem {
  Tensor x, dout, y, dx, w, b, dw, db, rm, rv, mean, invstd;
  explicit BatchNormProblem(const Shape& shape) {
    const int64_t C = shape[1];
    x = random(shape, 1), dout = random(shape, 2), w = random({C}, 3), b = random({C}, 4);
    y = zeros(shape), dx = zeros(shape), dw = zeros({C}), db = zeros({C});
    rm = zeros({C}), rv = ones({C});
    mean = zeros({C}, {DType::Float64}), invstd = ones({C}, {DType::Float64});
  }
};
Shape bn_shape(const benchmark::State& s) { return {s.range(0), s.range(1), s.range(2), s.range(3)}; }
constexpr BatchNormParams kTraining{.training = true, .momentum = 0.1, .eps = 1e-5};

void BM_batch_norm_fwd_kernel(benchmark::State& state) {
  BatchNormProblem p(bn_shape(state));
  run(state, 2 * floats(p.x.numel()),
      [&] { cpu::batch_norm_forward(p.y, p.mean, p.invstd, p.x, p.w, p.b, p.rm, p.rv, kTraining); });
}
void BM_batch_norm_bwd_kernel(benchmark::State& state) {
  BatchNormProblem p(bn_shape(state));
  cpu::batch_norm_forward(p.y, p.mean, p.invstd, p.x, p.w, p.b, p.rm, p.rv, kTraining);
  run(state, 3 * floats(p.x.numel()),
      [&] { cpu::batch_norm_backward(p.dx, p.dw, p.db, p.dout, p.x, p.w, p.mean, p.invstd, kTraining); });
}
void BM_batch_norm_op_fwd(benchmark::State& state) {
  BatchNormProblem p(bn_shape(state));
  p.x.requires_grad_(), p.w.requires_grad_(), p.b.requires_grad_();
  run(state, 2 * floats(p.x.numel()), [&] { benchmark::DoNotOptimize(batch_norm(p.x, p.rm, p.rv, p.w, p.b, true)); });
}
void BM_batch_norm_op_bwd(benchmark::State& state) {
  BatchNormProblem p(bn_shape(state));
  p.x.requires_grad_(), p.w.requires_grad_(), p.b.requires_grad_();
  run_node_backward(state, 3 * floats(p.x.numel()), batch_norm(p.x, p.rm, p.rv, p.w, p.b, true), p.dout);
}
void bn_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "H", "W"})->Args({4, 256, 36, 48})->Args({4, 64, 144, 192});
}

// ---- bilinear x8 upsampling ------------------------------------------------------------------

constexpr int64_t kUpN = 4, kUpC = 64, kUpH = 36, kUpW = 48, kUpOH = 288, kUpOW = 384;

void BM_bilinear_fwd_kernel(benchmark::State& state) {
  const Tensor x = random({kUpN * kUpC, kUpH, kUpW}, 1);
  const Tensor out = zeros({kUpN * kUpC, kUpOH, kUpOW});
  run(state, floats(x.numel() + out.numel()), [&] { cpu::interpolate_bilinear_forward(out, x); });
}
void BM_bilinear_bwd_kernel(benchmark::State& state) {
  const Tensor dout = random({kUpN * kUpC, kUpOH, kUpOW}, 2);
  const Tensor dx = zeros({kUpN * kUpC, kUpH, kUpW});
  run(state, floats(dx.numel() + dout.numel()), [&] { cpu::interpolate_bilinear_backward(dx, dout); });
}
void BM_bilinear_op_fwd(benchmark::State& state) {
  Tensor x = random({kUpN, kUpC, kUpH, kUpW}, 1).requires_grad_();
  run(state, floats(x.numel() + kUpN * kUpC * kUpOH * kUpOW),
      [&] { benchmark::DoNotOptimize(interpolate_bilinear(x, kUpOH, kUpOW)); });
}
void BM_bilinear_op_bwd(benchmark::State& state) {
  Tensor x = random({kUpN, kUpC, kUpH, kUpW}, 1).requires_grad_();
  const Tensor dout = random({kUpN, kUpC, kUpOH, kUpOW}, 2);
  run_node_backward(state, floats(x.numel() + dout.numel()), interpolate_bilinear(x, kUpOH, kUpOW), dout);
}

// ---- cross_entropy -----------------------------------------------------------------------------

constexpr int64_t kCeN = 4, kCeK = 13, kCeH = 288, kCeW = 384, kCeS = kCeH * kCeW;

struct CrossEntropyProblem {
  Tensor logits, target, dlogits;
  // S positions per image (default: the model's 288 x 384).
  explicit CrossEntropyProblem(int64_t S = kCeS) {
    logits = random({kCeN, kCeK, S}, 1), dlogits = zeros({kCeN, kCeK, S});
    Generator gen(3);
    target = randint(0, kCeK, {kCeN, S}, {DType::Int64}, &gen);
    // About 10% of the pixels ignored, as in NYUv2's label maps.
    target = where(lt(rand({kCeN, S}, {}, &gen), 0.1), full({}, 255, {DType::Int64}), target);
  }
  double logit_bytes() const { return floats(logits.numel()); }
  double label_bytes() const { return 8.0 * double(target.numel()); }
};

// The loss alone (evaluation: no gradient wanted). Argument: positions per image; the
// in-cache size (4 x 13 x 2048 logits, 426 KB) shows the arithmetic's own speed, which
// bounds the large one from below whatever the memory does.
void BM_cross_entropy_fwd_kernel(benchmark::State& state) {
  CrossEntropyProblem p(state.range(0));
  run(state, p.logit_bytes() + p.label_bytes(), [&] {
    const CrossEntropyTargets t = cpu::cross_entropy_targets(p.target, kCeK, 255);
    benchmark::DoNotOptimize(cpu::cross_entropy_forward(Tensor(), p.logits, p.target, 255, 1.0 / double(t.count)));
  });
}
// The loss and its gradient (training: Note [fused cross-entropy gradient] in ops/losses.cpp),
// against the fused ideal: logits and labels read once, the gradient written once.
void BM_cross_entropy_fwdbwd_kernel(benchmark::State& state) {
  CrossEntropyProblem p;
  run(state, 2 * p.logit_bytes() + p.label_bytes(), [&] {
    const CrossEntropyTargets t = cpu::cross_entropy_targets(p.target, kCeK, 255);
    benchmark::DoNotOptimize(cpu::cross_entropy_forward(p.dlogits, p.logits, p.target, 255, 1.0 / double(t.count)));
  });
}
void BM_cross_entropy_op_fwd(benchmark::State& state) {  // logits requiring grad: the gradient is made here
  CrossEntropyProblem p;
  Tensor logits = p.logits.view({kCeN, kCeK, kCeH, kCeW}).detach().requires_grad_();
  const Tensor target = p.target.view({kCeN, kCeH, kCeW});
  run(state, 2 * p.logit_bytes() + p.label_bytes(), [&] { benchmark::DoNotOptimize(cross_entropy(logits, target)); });
}
// dout = 1 hands the forward's gradient back; another dout scales it (one read and write).
void BM_cross_entropy_op_bwd(benchmark::State& state) {
  CrossEntropyProblem p;
  Tensor logits = p.logits.view({kCeN, kCeK, kCeH, kCeW}).detach().requires_grad_();
  const Tensor loss = cross_entropy(logits, p.target.view({kCeN, kCeH, kCeW}));
  run_node_backward(state, 2 * p.logit_bytes(), loss, full({}, double(state.range(0)) / 2));
}

// ---- normalize ---------------------------------------------------------------------------------

Shape nchw(const benchmark::State& s) { return {s.range(0), s.range(1), s.range(2), s.range(3)}; }

void BM_normalize_fwd_kernel(benchmark::State& state) {
  const Shape s = nchw(state);
  const Tensor x = random({s[0], s[1], s[2] * s[3]}, 1), y = zeros(x.shape());
  run(state, 2 * floats(x.numel()), [&] { cpu::normalize_forward(y, x, 1e-12); });
}
void BM_normalize_bwd_kernel(benchmark::State& state) {
  const Shape s = nchw(state);
  const Tensor x = random({s[0], s[1], s[2] * s[3]}, 1), dout = random(x.shape(), 2), dx = zeros(x.shape());
  run(state, 3 * floats(x.numel()), [&] { cpu::normalize_backward(dx, dout, x, 1e-12); });
}
void BM_normalize_op_fwd(benchmark::State& state) {
  Tensor x = random(nchw(state), 1).requires_grad_();
  run(state, 2 * floats(x.numel()), [&] { benchmark::DoNotOptimize(normalize(x)); });
}
void BM_normalize_op_bwd(benchmark::State& state) {
  Tensor x = random(nchw(state), 1).requires_grad_();
  run_node_backward(state, 3 * floats(x.numel()), normalize(x), random(x.shape(), 2));
}
void normalize_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "H", "W"})->Args({4, 3, 288, 384})->Args({4, 256, 36, 48});
}

// ---- channel_gate ------------------------------------------------------------------------------

constexpr int64_t kGateN = 4, kGateC = 256, kGateS = 36 * 48;

void BM_channel_gate_fwd_kernel(benchmark::State& state) {
  const Tensor x = random({kGateN * kGateC, kGateS}, 1), gate = rand({kGateN * kGateC}), out = zeros(x.shape());
  run(state, 2 * floats(x.numel()), [&] { cpu::channel_gate_forward(out, x, gate); });
}
void BM_channel_gate_bwd_kernel(benchmark::State& state) {
  const Tensor x = random({kGateN * kGateC, kGateS}, 1), dout = random(x.shape(), 2), gate = rand({kGateN * kGateC});
  const Tensor dx = zeros(x.shape()), dgate = zeros(gate.shape());
  run(state, 3 * floats(x.numel()), [&] { cpu::channel_gate_backward(dx, dgate, dout, x, gate); });
}
void BM_channel_gate_op_fwd(benchmark::State& state) {
  Tensor x = random({kGateN, kGateC, 36, 48}, 1).requires_grad_();
  Tensor gate = rand({kGateN, kGateC}).requires_grad_();
  run(state, 2 * floats(x.numel()), [&] { benchmark::DoNotOptimize(channel_gate(x, gate)); });
}
void BM_channel_gate_op_bwd(benchmark::State& state) {
  Tensor x = random({kGateN, kGateC, 36, 48}, 1).requires_grad_();
  Tensor gate = rand({kGateN, kGateC}).requires_grad_();
  run_node_backward(state, 3 * floats(x.numel()), channel_gate(x, gate), random(x.shape(), 2));
}

// ---- bce_with_logits ---------------------------------------------------------------------------

constexpr int64_t kBce = int64_t(1) << 22;

// Argument: elements (the in-cache size, 64 Ki: the arithmetic's own speed, as for cross_entropy).
void BM_bce_fwd_kernel(benchmark::State& state) {
  const int64_t n = state.range(0);
  const Tensor x = random({n}, 1), t = rand({n});
  run(state, 2 * floats(n), [&] { benchmark::DoNotOptimize(cpu::bce_with_logits_forward(x, t)); });
}
void BM_bce_bwd_kernel(benchmark::State& state) {
  const Tensor x = random({kBce}, 1), t = rand({kBce}), dx = zeros({kBce});
  run(state, 3 * floats(kBce), [&] { cpu::bce_with_logits_backward(dx, Tensor(), x, t, 1e-6); });
}

// ---- registration ------------------------------------------------------------------------------

double min_of(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

void timing(benchmark::internal::Benchmark* b) {
  b->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(0.3)->Repetitions(3);
  b->ComputeStatistics("min", min_of)->ReportAggregatesOnly(true);
}

BENCHMARK(BM_batch_norm_fwd_kernel)->Apply(bn_shapes)->Apply(timing);
BENCHMARK(BM_batch_norm_bwd_kernel)->Apply(bn_shapes)->Apply(timing);
BENCHMARK(BM_batch_norm_op_fwd)->Apply(bn_shapes)->Apply(timing);
BENCHMARK(BM_batch_norm_op_bwd)->Apply(bn_shapes)->Apply(timing);
BENCHMARK(BM_bilinear_fwd_kernel)->Apply(timing);
BENCHMARK(BM_bilinear_bwd_kernel)->Apply(timing);
BENCHMARK(BM_bilinear_op_fwd)->Apply(timing);
BENCHMARK(BM_bilinear_op_bwd)->Apply(timing);
BENCHMARK(BM_cross_entropy_fwd_kernel)->ArgName("S")->Arg(kCeS)->Arg(2048)->Apply(timing);
BENCHMARK(BM_cross_entropy_fwdbwd_kernel)->Apply(timing);
BENCHMARK(BM_cross_entropy_op_fwd)->Apply(timing);
BENCHMARK(BM_cross_entropy_op_bwd)->ArgName("twice_dout")->Arg(2)->Arg(1)->Apply(timing);
BENCHMARK(BM_normalize_fwd_kernel)->Apply(normalize_shapes)->Apply(timing);
BENCHMARK(BM_normalize_bwd_kernel)->Apply(normalize_shapes)->Apply(timing);
BENCHMARK(BM_normalize_op_fwd)->Apply(normalize_shapes)->Apply(timing);
BENCHMARK(BM_normalize_op_bwd)->Apply(normalize_shapes)->Apply(timing);
BENCHMARK(BM_channel_gate_fwd_kernel)->Apply(timing);
BENCHMARK(BM_channel_gate_bwd_kernel)->Apply(timing);
BENCHMARK(BM_channel_gate_op_fwd)->Apply(timing);
BENCHMARK(BM_channel_gate_op_bwd)->Apply(timing);
BENCHMARK(BM_bce_fwd_kernel)->ArgName("n")->Arg(kBce)->Arg(int64_t(1) << 16)->Apply(timing);
BENCHMARK(BM_bce_bwd_kernel)->Apply(timing);

}  // namespace

BENCHMARK_MAIN();
