// bench_mila.cpp - the whole MILA model: one training step and the
// per-frame latency of streaming inference, on two configurations; tools/bench_mila_torch.py
// times the same with PyTorch (tools/mila_torch.py) for comparison.
//
//   BM_mila_train_step/<cfg>   one Adam step: zero_grad + training_losses (the clip's forward,
//                              heads on its last frame, the mimic pass, SPEC 4.4) + backward +
//                              step. Clips of 3 frames, keyframe first (t0 = 0).
//   BM_mila_stream/<cfg>       eval mode, no graph: Model::forward_clip on a clip of K frames
//                              (one keyframe cycle, t0 = 0: one Slow frame, K - 1 Fast frames,
//                              heads on every frame); ms_per_frame = time / K. A cycle through
//                              forward_clip is K steps of mila/stream.h's Stream (the same work
//                              and outputs, tested in test_stream.cpp), timed this way because
//                              the PyTorch mirror has a clip forward and no stream object.
//
//   small: slow and fast ResNet-18, width 16, C 64, D 16, L 5, K 3, 96x128, batch 4
//   paper: slow ResNet-101, fast ResNet-18, width 64, C 256, D 64, L 5, K 5, 288x384, batch 1
//          (training clips of 3 frames as well: the paper's offset o makes clips of 1..K frames)
// Tasks seg 13, depth 1, normal 3 (NYUv2), task-specific SE + ILA, multi-frame. float32, two
// OpenMP threads (the machine's cores). Adam: lr 1e-4, betas (0.9, 0.99) (SPEC 4.4).
//
// Timing: one untimed warm-up call, then single-call repetitions (small: 5, paper: 3); the
// median is the figure (other jobs share this machine; the minimum is also printed).
// Counters: peak_RSS_MiB = VmHWM of /proc/self/status after the case: the process's peak
// resident memory so far, so run one case per process to get that case's own peak:
//     ./bench_mila --benchmark_filter='BM_mila_train_step/paper/'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "mila/train.h"
#include "nn/optim.h"
#include "ops/threads.h"
#include "ops/ops.h"
#include "tensor/random.h"

namespace {

using namespace mila;

constexpr int kThreads = 2;
constexpr int64_t kTrainFrames = 3;

struct Case {
  Config cfg;
  int64_t height, width, batch;
};

Case make_case(bool paper) {
  Case c;
  if (paper) {  // Config's defaults are the paper's
    c.height = 288, c.width = 384, c.batch = 1;
  } else {
    c.cfg.slow_depth = 18, c.cfg.fast_depth = 18, c.cfg.width = 16, c.cfg.C = 64, c.cfg.D = 16;
    c.cfg.L = 5, c.cfg.K = 3;
    c.height = 96, c.width = 128, c.batch = 4;
  }
  c.cfg.tasks = {{Task::seg, 13}, {Task::depth, 1}, {Task::normal, 3}};
  return c;
}

Batch make_batch(const Case& c, int64_t frames) {
  Generator g(7);
  Batch b;
  b.frames = randn({frames, c.batch, 3, c.height, c.width}, {}, &g);
  b.t0 = 0;
  b.seg = randint(0, 13, {c.batch, c.height, c.width}, {DType::Int64}, &g);
  b.depth = add(rand({c.batch, 1, c.height, c.width}, {}, &g), 0.5);
  b.normal = sub(rand({c.batch, 3, c.height, c.width}, {}, &g), 0.5);
  return b;
}

double peak_rss_mib() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  return 0;
}

void BM_mila_train_step(benchmark::State& state, bool paper) {
  set_num_threads(kThreads);
  const Case c = make_case(paper);
  Model model(c.cfg);
  model.train();
  nn::AdamOptions opt;
  opt.lr = 1e-4, opt.beta1 = 0.9, opt.beta2 = 0.99;
  nn::Adam adam(model.parameters(), opt);
  const Batch batch = make_batch(c, kTrainFrames);
  auto step = [&] {
    adam.zero_grad();
    const LossTerms terms = training_losses(model, batch);
    terms.total.backward();
    adam.step();
    return terms.total.item<double>();
  };
  benchmark::DoNotOptimize(step());  // warm-up: the allocator's pools and Adam's moments
  for (auto _ : state) benchmark::DoNotOptimize(step());
  state.counters["peak_RSS_MiB"] = peak_rss_mib();
}

void BM_mila_stream(benchmark::State& state, bool paper) {
  set_num_threads(kThreads);
  const Case c = make_case(paper);
  Model model(c.cfg);
  model.eval();
  NoGradGuard no_grad;
  const Tensor clip = make_batch(c, c.cfg.K).frames;
  auto run = [&] { return model.forward_clip(clip, 0).outputs.back().at("seg").raw_data(); };
  benchmark::DoNotOptimize(run());  // warm-up
  double ms = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(run());
    ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  // The wall time of one clip divided by its K frames (kAvgIterations: per iteration).
  state.counters["ms_per_frame"] = benchmark::Counter(ms / double(c.cfg.K), benchmark::Counter::kAvgIterations);
  state.counters["peak_RSS_MiB"] = peak_rss_mib();
}

double min_of(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

void timing(benchmark::internal::Benchmark* b, int repetitions) {
  b->Iterations(1)->Repetitions(repetitions)->ComputeStatistics("min", min_of)->ReportAggregatesOnly(true);
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK_CAPTURE(BM_mila_train_step, small, false)->Apply([](auto* b) { timing(b, 5); });
BENCHMARK_CAPTURE(BM_mila_stream, small, false)->Apply([](auto* b) { timing(b, 5); });
BENCHMARK_CAPTURE(BM_mila_train_step, paper, true)->Apply([](auto* b) { timing(b, 3); });
BENCHMARK_CAPTURE(BM_mila_stream, paper, true)->Apply([](auto* b) { timing(b, 3); });

}  // namespace

BENCHMARK_MAIN();
