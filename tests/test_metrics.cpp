// test_metrics.cpp - SPEC 4.5's metrics against values worked out by hand on tiny maps, and
// evaluate() against a loop written out here.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>

#include "autograd/grad_mode.h"
#include "data/nyu.h"
#include "data/synthetic.h"
#include "mila/evaluate.h"
#include "mila/metrics.h"
#include "ops/factory.h"

using namespace mila;
namespace fs = std::filesystem;

namespace {

Tensor f32(const std::vector<double>& v, const Shape& shape) { return from_vector(v, shape).to(DType::Float32); }
Tensor i64(const std::vector<double>& v, const Shape& shape) { return from_vector(v, shape).to(DType::Int64); }

// One-hot-ish logits [1, K, 1, n] whose argmax is pred[i] at position i.
Tensor logits_for(const std::vector<int>& pred, int K) {
  const int n = int(pred.size());
  std::vector<double> v(size_t(K * n), 0.0);
  for (int i = 0; i < n; ++i) v[size_t(pred[size_t(i)] * n + i)] = 1.0;
  return f32(v, {1, K, 1, n});
}

}  // namespace

TEST_CASE("metrics: segmentation by hand") {
  // 3 classes, 6 pixels; gt / pred:
  //   gt   0 0 1 1 2 255
  //   pred 0 1 1 1 0 2       (the 255 pixel is ignored)
  // confusion [gt][pred]: row 0 = (1, 1, 0), row 1 = (0, 2, 0), row 2 = (1, 0, 0)
  // IoU0 = 1 / (2 + 2 - 1) = 1/3; IoU1 = 2 / (2 + 3 - 2) = 2/3; IoU2 = 0 / (1 + 0 - 0) = 0
  // mIoU = (1/3 + 2/3 + 0) / 3 = 1/3; pixel acc = 3 / 5.
  MetricAccumulator m(3);
  m.add_seg(logits_for({0, 1, 1, 1, 0, 2}, 3), i64({0, 0, 1, 1, 2, 255}, {1, 1, 6}));
  const MetricResults r = m.results();
  CHECK(r.has_seg);
  CHECK(!r.has_depth);
  CHECK(r.miou == doctest::Approx(1.0 / 3.0));
  CHECK(r.pixel_acc == doctest::Approx(0.6));
  CHECK(r.class_iou[2] == 0.0);

  SUBCASE("a class absent from both prediction and ground truth is left out of the mean") {
    MetricAccumulator m4(4);  // class 3 never appears: the mean is over 3 classes, still 1/3
    m4.add_seg(logits_for({0, 1, 1, 1, 0, 2}, 4), i64({0, 0, 1, 1, 2, 255}, {1, 1, 6}));
    CHECK(m4.results().miou == doctest::Approx(1.0 / 3.0));
    CHECK(std::isnan(m4.results().class_iou[3]));
  }
  SUBCASE("ties go to the lowest class, as torch.argmax") {
    MetricAccumulator t(2);
    t.add_seg(f32({0.5, 0.5}, {1, 2, 1, 1}), i64({0}, {1, 1, 1}));
    CHECK(t.results().pixel_acc == 1.0);
  }
  SUBCASE("pooled over the set, not a mean of per-batch means") {
    // batch A: 1 pixel, wrong (class 0 predicted 1). batch B: 3 pixels of class 0, right.
    // Pooled: confusion row 0 = (3, 1), column 1 has 1 FP: IoU0 = 3/4, IoU1 = 0/1 = 0 -> 3/8;
    // pixel acc 3/4. The mean of the batches' accuracies would be (0 + 1) / 2.
    MetricAccumulator p(2);
    p.add_seg(logits_for({1}, 2), i64({0}, {1, 1, 1}));
    p.add_seg(logits_for({0, 0, 0}, 2), i64({0, 0, 0}, {1, 1, 3}));
    CHECK(p.results().pixel_acc == doctest::Approx(0.75));
    CHECK(p.results().miou == doctest::Approx(3.0 / 8.0));
  }
  SUBCASE("errors name the function, the shapes, the label") {
    CHECK_THROWS_WITH(m.add_seg(logits_for({0}, 3), i64({7}, {1, 1, 1})), doctest::Contains("label 7"));
    CHECK_THROWS_WITH(m.add_seg(logits_for({0, 1}, 3), i64({0}, {1, 1, 1})), doctest::Contains("add_seg"));
    CHECK_THROWS_WITH(m.add_seg(f32({0, 1}, {1, 2, 1, 1}), i64({0}, {1, 1, 1})), doctest::Contains("[1, 2, 1, 1]"));
  }
}

TEST_CASE("metrics: depth by hand") {
  // gt 2, 0 (invalid), 4, 1; pred 1, 9, 5, 1: |e| = 1, -, 1, 0 -> abs = 2/3; rel = (1/2 + 1/4 + 0) / 3 = 0.25.
  MetricAccumulator m(1);
  m.add_depth(f32({1, 9, 5, 1}, {1, 1, 2, 2}), f32({2, 0, 4, 1}, {1, 1, 2, 2}));
  CHECK(m.results().depth_abs == doctest::Approx(2.0 / 3.0));
  CHECK(m.results().depth_rel == doctest::Approx(0.25));
  CHECK_THROWS_WITH(m.add_depth(f32({1, 2}, {1, 2, 1, 1}), f32({1, 2}, {1, 2, 1, 1})), doctest::Contains("add_depth"));
}

TEST_CASE("metrics: normals by hand") {
  // 5 pixels, gt (channel-major [1, 3, 1, 5]) and pred chosen for known angles:
  //   p0: gt z, pred z        -> 0      p1: gt z, pred x          -> 90
  //   p2: gt z, pred (1,0,1)  -> 45     p3: gt z, pred -z         -> 180
  //   p4: gt 0 (invalid)      -> not counted
  // mean = 315 / 4 = 78.75; median of {0, 45, 90, 180} (even) = (45 + 90) / 2 = 67.5;
  // under 11.25: 1 of 4 = 25%; under 22.5: 25%; under 30: 25%.
  const Tensor gt = f32({0, 0, 0, 0, 0,  //  x
                         0, 0, 0, 0, 0,  //  y
                         1, 1, 1, 1, 0}, //  z
                        {1, 3, 1, 5});
  const Tensor pred = f32({0, 1, 1, 0, 1,  //
                           0, 0, 0, 0, 0,  //
                           1, 0, 1, -1, 0},
                          {1, 3, 1, 5});
  MetricAccumulator m(1);
  m.add_normal(pred, gt);
  MetricResults r = m.results();
  CHECK(r.angle_mean == doctest::Approx(78.75).epsilon(1e-9));
  CHECK(std::abs(r.angle_median - 67.5) <= 0.0005 + 1e-9);  // bin centres: within half a bin, 0.0005 degree
  CHECK(r.within_11 == doctest::Approx(25));
  CHECK(r.within_30 == doctest::Approx(25));

  SUBCASE("odd count: the middle value; a zero prediction counts as 90 degrees") {
    MetricAccumulator o(1);
    // gt z everywhere; pred z, 0 (-> 90), (0, 1, 1) (-> 45): median 45.
    o.add_normal(f32({0, 0, 0, 0, 0, 1, 1, 0, 1}, {1, 3, 1, 3}), f32({0, 0, 0, 0, 0, 0, 1, 1, 1}, {1, 3, 1, 3}));
    CHECK(std::abs(o.results().angle_median - 45) <= 0.0005 + 1e-9);
    CHECK(o.results().angle_mean == doctest::Approx(45));
  }
  SUBCASE("merge equals one accumulator over everything") {
    MetricAccumulator a(1), b(1), both(1);
    a.add_normal(pred, gt);
    b.add_depth(f32({1, 9, 5, 1}, {1, 1, 2, 2}), f32({2, 0, 4, 1}, {1, 1, 2, 2}));
    both.add_normal(pred, gt);
    both.add_depth(f32({1, 9, 5, 1}, {1, 1, 2, 2}), f32({2, 0, 4, 1}, {1, 1, 2, 2}));
    a.merge(b);
    CHECK(a.results().angle_median == both.results().angle_median);
    CHECK(a.results().depth_abs == both.results().depth_abs);
    CHECK(a.results().has_depth);
  }
}

TEST_CASE("metrics: the table and the JSON line carry the numbers") {
  MetricAccumulator m(3);
  std::map<std::string, Tensor> out = {{"seg", logits_for({0, 1, 1, 1, 0, 2}, 3)}};
  m.add(out, i64({0, 0, 1, 1, 2, 255}, {1, 1, 6}), Tensor(), Tensor());
  CHECK(m.results().frames == 1);
  CHECK(metrics_table(m.results(), "t").find("33.33") != std::string::npos);
  CHECK(metrics_json(m.results()).find("\"miou\"") != std::string::npos);
  CHECK_THROWS_WITH(m.add({{"flow", Tensor()}}, Tensor(), Tensor(), Tensor()), doctest::Contains("flow"));
}

TEST_CASE("evaluate: every sample once per offset, equal to the loop written out") {
  const fs::path dir = fs::temp_directory_path() / ("mila_test_metrics_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  data::SyntheticConfig sc;
  sc.height = 32, sc.width = 40;
  sc.train_sequences = 1, sc.val_sequences = 1;
  sc.frames_per_sequence = 6;
  sc.annotate_first = 1, sc.annotate_stride = 2;  // frames 1, 3, 5 annotated: 3 samples
  data::render_synthetic_dataset(dir.string(), sc);
  const data::NyuVideoDataset val(dir.string(), "val");

  Config cfg;
  cfg.slow_depth = 18, cfg.fast_depth = 18, cfg.width = 8, cfg.C = 16, cfg.D = 8, cfg.L = 3, cfg.K = 2;
  manual_seed(4);
  Model model(cfg);
  model.train();
  const MetricResults r = evaluate(model, val, EvalOptions{2, 1, -1, false});
  CHECK(model.is_training());
  CHECK(r.frames == val.size() * cfg.K);

  // The same by hand: each sample, each offset, its clip through forward_clip.
  model.eval();
  NoGradGuard no_grad;
  MetricAccumulator m(13);
  for (int64_t o = 0; o < cfg.K; ++o)
    for (int64_t i = 0; i < val.size(); ++i) {
      const data::ClipData c = val.clip(i, o);
      const Model::ClipResult out = model.forward_clip(c.frames.unsqueeze(1), 0, true);
      m.add(out.outputs.back(), c.seg.unsqueeze(0), c.depth.unsqueeze(0), c.normal.unsqueeze(0));
    }
  const MetricResults e = m.results();
  CHECK(r.miou == doctest::Approx(e.miou).epsilon(2e-3));  // batch 2 against 1: a pixel may flip on float rounding
  CHECK(r.depth_abs == doctest::Approx(e.depth_abs).epsilon(1e-6));
  CHECK(r.angle_mean == doctest::Approx(e.angle_mean).epsilon(1e-6));
  CHECK(evaluate(model, val, EvalOptions{4, 0, 1, false}).frames == cfg.K);  // max_samples = 1
  fs::remove_all(dir);
}
