// test_stream.cpp - streaming inference (mila/stream.h): equal to the clip forward frame by
// frame in every variant, keyframe schedules, the adaptive policy, MACs, bad input.
#include <doctest/doctest.h>

#include "mila/cost.h"
#include "mila/stream.h"
#include "ops/ops.h"
#include "test_util.h"

using namespace mila;

namespace {

double max_diff(const Tensor& a, const Tensor& b) { return max(abs(sub(a, b))).item<double>(); }

// The stream's outputs of each frame against forward_clip(frames, 0) on the whole clip.
void check_equals_clip(const Config& cfg, int64_t T, int64_t B) {
  manual_seed(11);
  Model model(cfg);
  model.eval();
  Generator g(5);
  const Tensor frames = randn({T, B, 3, 40, 48}, {}, &g);
  NoGradGuard no_grad;
  const Model::ClipResult clip = model.forward_clip(frames, 0);
  Stream stream(model);
  for (int64_t t = 0; t < T; ++t) {
    const FrameResult r = stream.step(frames.select(0, t));
    CHECK(r.keyframe == (t % cfg.K == 0));
    for (const TaskSpec& task : cfg.tasks) {
      const Tensor& want = clip.outputs[size_t(t)].at(task.name());
      REQUIRE(r.outputs.at(task.name()).shape() == want.shape());
      CHECK_MESSAGE(max_diff(r.outputs.at(task.name()), want) <= 1e-6, "frame ", t, " task ", task.name());
    }
  }
  CHECK(stream.frames_seen() == T);
}

}  // namespace

TEST_CASE("stream: equals the clip forward, frame by frame") {
  Config cfg = test::tiny_config(16);
  SUBCASE("default (task-specific, multi-frame)") { check_equals_clip(cfg, 7, 2); }
  SUBCASE("batch 1") { check_equals_clip(cfg, 4, 1); }
  SUBCASE("without multi-frame") {
    cfg.multi_frame = false;
    check_equals_clip(cfg, 5, 1);
  }
  SUBCASE("shared attention") {
    cfg.task_specific = false;
    check_equals_clip(cfg, 5, 1);
  }
  SUBCASE("MultiNet++ baseline (no attention)") {
    cfg.attention = false;
    check_equals_clip(cfg, 5, 1);
  }
  SUBCASE("slow-only (K = 1)") {
    cfg.K = 1;
    check_equals_clip(cfg, 3, 1);
  }
  SUBCASE("global attention (L = 0)") {
    cfg.L = 0;
    check_equals_clip(cfg, 4, 1);
  }
}

TEST_CASE("stream: a shorter clip gives the same outputs for its frames; reset restarts") {
  manual_seed(3);
  Model model(test::tiny_config(16));
  model.eval();
  Generator g(9);
  const Tensor frames = randn({5, 1, 3, 32, 40}, {}, &g);
  Stream stream(model);
  std::vector<Tensor> seg;
  for (int64_t t = 0; t < 5; ++t) seg.push_back(stream.step(frames.select(0, t)).outputs.at("seg"));
  NoGradGuard no_grad;
  const Model::ClipResult shorter = model.forward_clip(frames.narrow(0, 0, 2), 0);
  CHECK(max_diff(shorter.outputs[1].at("seg"), seg[1]) <= 1e-6);
  stream.reset();
  CHECK(stream.frames_seen() == 0);
  const FrameResult again = stream.step(frames.select(0, 0));
  CHECK(again.keyframe);
  CHECK(max_diff(again.outputs.at("seg"), seg[0]) == 0);
}

TEST_CASE("stream: MACs per frame are what ran, and match the analytic count") {
  Config cfg = test::tiny_config(16);
  cfg.slow_depth = 34;  // a Slow encoder that costs more than the Fast one
  manual_seed(3);
  Model model(cfg);
  model.eval();
  const int64_t H = 40, W = 48;
  const Tensor frame = randn({1, 3, H, W});
  Stream stream(model);
  std::vector<FrameResult> r;
  for (int t = 0; t < 7; ++t) r.push_back(stream.step(frame));
  CHECK(r[0].macs > r[1].macs);            // Slow against Fast
  CHECK(r[3].macs == r[6].macs);           // steady state: keyframes alike
  CHECK(r[4].macs == r[5].macs);           // and the frames between
  // Steady-state frames against mila/cost.h's count (SPEC 4.5), which the tests of
  // test_cost.cpp tie to hand-written numbers.
  CHECK(r[3].macs == frame_cost(cfg, H, W, /*keyframe=*/true).total());
  CHECK(r[4].macs == frame_cost(cfg, H, W, /*keyframe=*/false).total());
  // The ILA part by formula: per task, two ILA calls (key and prev) on the 5 x 6 map, each
  // H' W' L^2 (D + C) = 30 * 9 * (8 + 16) = 6480 MACs; 3 tasks: 38880 more than without attention.
  Config no_attention = cfg;
  no_attention.attention = false;
  manual_seed(3);
  Model plain(no_attention);
  plain.eval();
  Stream s2(plain);
  std::vector<int64_t> plain_macs;
  for (int t = 0; t < 5; ++t) plain_macs.push_back(s2.step(frame).macs);
  // Without attention the h convs (16 -> 8, 3x3 on 5 x 6: 30 * 8 * 16 * 9 = 34560 per block)
  // are not run either.
  CHECK(r[4].macs - plain_macs[4] == 3 * (2 * 6480 + 34560));
}

TEST_CASE("stream: adaptive keyframes") {
  Config cfg = test::tiny_config(16);
  cfg.K = 100;  // the schedule alone would never call Slow after frame 0
  manual_seed(3);
  Model model(cfg);
  model.eval();
  Generator g(2);
  const Tensor frames = randn({4, 1, 3, 32, 40}, {}, &g);

  SUBCASE("threshold 0: the first Fast frame after a keyframe is the reference (drift 0), the next drifts") {
    Stream stream(model, StreamOptions{true, 0.0, 0, true});
    std::vector<FrameResult> r;
    for (int64_t t = 0; t < 4; ++t) r.push_back(stream.step(frames.select(0, t)));
    CHECK(r[0].keyframe);
    CHECK(!r[1].keyframe);
    CHECK(r[1].drift == 0);
    CHECK(r[2].keyframe);  // random frames: drift > 0
    CHECK(r[2].drift > 0);
    CHECK(!r[3].keyframe);
    // Frame 2 ran Fast (to measure the drift), then Slow: a scheduled keyframe's cost plus
    // the Fast encoder and its neck, exactly (mila/cost.h, SPEC 4.5).
    const FrameCost slow = frame_cost(cfg, 32, 40, /*keyframe=*/true);
    const FrameCost fast = frame_cost(cfg, 32, 40, /*keyframe=*/false);
    CHECK(r[1].macs == fast.total());
    CHECK(r[2].macs == slow.total() + fast.encoder + fast.neck);
    CHECK(r[3].macs == fast.total());
    // A keyframe chosen by the drift gives what a keyframe by schedule gives: the same
    // outputs as a K = 1 model on the same weights for a frame whose slots hold itself.
    Config k1 = cfg;
    k1.K = 1;
    Model slow_only(k1);
    slow_only.load_state_dict(model.state_dict());
    slow_only.eval();
    Stream reference(slow_only);
    const FrameResult first = reference.step(frames.select(0, 0));
    CHECK(max_diff(first.outputs.at("depth"), r[0].outputs.at("depth")) <= 1e-6);
  }
  SUBCASE("a huge threshold keeps the schedule; max_interval forces keyframes") {
    Stream never(model, StreamOptions{true, 1e30, 0, true});
    Stream capped(model, StreamOptions{true, 1e30, 2, false});
    std::vector<bool> a, b;
    for (int64_t t = 0; t < 4; ++t) a.push_back(never.step(frames.select(0, t)).keyframe), b.push_back(capped.step(frames.select(0, t)).keyframe);
    CHECK(a == std::vector<bool>{true, false, false, false});
    CHECK(b == std::vector<bool>{true, false, true, false});
  }
  CHECK_THROWS_WITH(Stream(model, StreamOptions{true, -1.0, 0, true}), doctest::Contains("drift_threshold"));
}

TEST_CASE("stream: bad frames name Stream::step and the shapes") {
  manual_seed(3);
  Model model(test::tiny_config(16));
  model.eval();
  Stream stream(model);
  CHECK_THROWS_WITH(stream.step(randn({1, 4, 32, 40})), doctest::Contains("[1, 4, 32, 40]"));
  stream.step(randn({1, 3, 32, 40}));
  CHECK_THROWS_WITH(stream.step(randn({1, 3, 32, 48})), doctest::Contains("Stream::step"));
}
