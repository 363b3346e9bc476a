// test_cost.cpp - the analytic cost count (mila/cost.h) against the published reference
// points, against nn::trace::Recorder over real forwards of small models, and against sums worked
// out by hand in the comments.
#include <map>

#include "autograd/grad_mode.h"
#include "mila/cost.h"
#include "mila/model.h"
#include "nn/resnet.h"
#include "nn/trace.h"
#include "tests/test_util.h"

using namespace mila;

namespace {

// The TINY configuration: width 8, C 16, D 8, L 3, K 3, NYUv2's three tasks, ResNet-101 /
// ResNet-18, at frames 48x64 (feature map 6x8 = 48 pixels).
Config tiny() { return test::tiny_config(16, 101); }
constexpr int64_t kH = 48, kW = 64;

// Conv/linear MACs of a traced run, grouped by component from the module paths; rows of any
// other type with MACs (ILA, once nn::trace::Recorder records it) go to "other".
std::map<std::string, int64_t> by_component(const std::vector<nn::trace::Row>& rows) {
  std::map<std::string, int64_t> m;
  auto starts = [](const std::string& s, const char* p) { return s.rfind(p, 0) == 0; };
  auto has = [](const std::string& s, const char* p) { return s.find(p) != std::string::npos; };
  for (const nn::trace::Row& r : rows) {
    if (r.macs == 0) continue;
    if (r.type != "Conv2d" && r.type != "Linear") {
      m["other"] += r.macs;
      continue;
    }
    std::string key = "unknown:" + r.path;
    if (starts(r.path, "slow.") || starts(r.path, "fast.")) key = "encoder";
    else if (starts(r.path, "slow_neck.") || starts(r.path, "fast_neck.")) key = "neck";
    else if (has(r.path, ".se.")) key = "se";
    else if (has(r.path, ".ila.h")) key = "ila_keys";
    else if (has(r.path, ".head.")) key = "heads";
    m[key] += r.macs;
  }
  return m;
}

// Traces Model::forward_clip on T frames with keyframe phase t0 (batch 1, eval, no grad).
std::vector<nn::trace::Row> trace_clip(Model& model, int64_t T, int64_t t0) {
  NoGradGuard no_grad;
  model.eval();
  Generator g(7);
  const Tensor frames = randn({T, 1, 3, kH, kW}, {}, &g);
  nn::trace::Recorder trace(model);
  model.forward_clip(frames, t0);
  return trace.rows;
}

void check_frame_against_trace(Model& model, bool keyframe) {
  const Config& cfg = model.config();
  // A one-frame clip: phase 0 makes frame 0 a keyframe, phase 1 a non-keyframe. The conv and
  // linear work of a frame does not depend on its neighbours (only the ILA calls do).
  const std::map<std::string, int64_t> m = by_component(trace_clip(model, 1, keyframe ? 0 : 1));
  const FrameCost c = frame_cost(cfg, kH, kW, keyframe);
  auto get = [&](const char* k) { return m.count(k) ? m.at(k) : int64_t(0); };
  CHECK(get("encoder") == c.encoder);
  CHECK(get("neck") == c.neck);
  CHECK(get("se") == c.se);
  CHECK(get("ila_keys") == c.ila_keys);
  CHECK(get("heads") == c.heads);
  for (const auto& entry : m) CHECK_MESSAGE(entry.first.rfind("unknown:", 0) != 0, entry.first);  // clang 14: no structured binding in a lambda
}

}  // namespace

TEST_CASE("cost: feature map sizes at output stride 8") {
  CHECK(feature_size(288, 384).height == 36);
  CHECK(feature_size(288, 384).width == 48);
  CHECK(feature_size(256, 512).height == 32);
  CHECK(feature_size(256, 512).width == 64);
  CHECK(feature_size(48, 64).height == 6);
  CHECK(feature_size(48, 64).width == 8);
  // 258 (Table 7's Cityscapes size): 258 -> 129 (conv1) -> 65 (maxpool) -> 33 (layer2).
  CHECK(feature_size(258, 512).height == 33);
  CHECK(feature_size(224, 224, false).height == 7);  // undilated: stride 32
  CHECK_THROWS_AS(feature_size(0, 10), std::invalid_argument);
}

TEST_CASE("cost: dilated ResNet reference points at 288x384 (encoder only, no fc)") {
  // Reference points (docs/cost.md): dilated ResNet-101 74.78 GMACs, dilated ResNet-18 20.31.
  const double r101 = double(resnet_macs(101, 64, 288, 384)) / 1e9;
  const double r18 = double(resnet_macs(18, 64, 288, 384)) / 1e9;
  CHECK(std::abs(r101 - 74.78) / 74.78 < 0.005);
  CHECK(std::abs(r18 - 20.31) / 20.31 < 0.005);
  // torchvision's parameter counts minus fc: resnet18 11,689,512 - (512*1000 + 1000);
  // resnet101 44,549,160 - (2048*1000 + 1000).
  CHECK(resnet_parameters(18, 64) == 11689512 - 513000);
  CHECK(resnet_parameters(101, 64) == 44549160 - 2049000);
}

TEST_CASE("cost: resnet_macs and resnet_parameters equal nn::trace::count_macs and the built module") {
  // Odd sizes exercise the floor in every strided layer.
  for (int depth : {18, 34, 50, 101})
    for (bool dilated : {true, false}) {
      CAPTURE(depth);
      CAPTURE(dilated);
      nn::ResNet net({.depth = depth, .width = 8, .dilated = dilated, .num_classes = 0});
      CHECK(resnet_macs(depth, 8, 37, 53, dilated) == nn::trace::count_macs(net, {1, 3, 37, 53}));
      CHECK(resnet_parameters(depth, 8) == net.num_parameters());
    }
}

TEST_CASE("cost: a head at 6x8 worked out by hand") {
  // TINY config, seg head (13 classes), S = 3 slots of C = 16, feature map 6x8 = 48 pixels:
  //   .0 3x3 conv 48 -> 512:  48 * 512 * 48 * 9 = 10,616,832
  //   .3 1x1 conv 512 -> 256: 48 * 256 * 512    =  6,291,456
  //   .6 1x1 conv 256 -> 13:  48 * 13 * 256     =    159,744
  //   total                                      = 17,068,032
  Config c = tiny();
  c.tasks = {{Task::seg, 13}};
  CHECK(frame_cost(c, kH, kW, false).heads == 17068032);
  // The traced head of the three-task model gives the same.
  Model model(tiny());
  int64_t seg_head = 0;
  for (const nn::trace::Row& r : trace_clip(model, 1, 0))
    if (r.path.rfind("decoders.seg.head.", 0) == 0) seg_head += r.macs;
  CHECK(seg_head == 17068032);
  // Without multi_frame the 3x3 conv reads 2 slots: 48 * 512 * 32 * 9 = 7,077,888.
  c.multi_frame = false;
  CHECK(frame_cost(c, kH, kW, false).heads == 7077888 + 6291456 + 159744);
}

TEST_CASE("cost: TINY frame costs equal nn::trace::Recorder over real forwards") {
  Model model(tiny());
  check_frame_against_trace(model, true);
  check_frame_against_trace(model, false);

  // Hand numbers for the other components of the TINY config (6x8 = 48 pixels):
  //   neck: slow 48 * 16 * 256 = 196,608 (ResNet-101 width 8 gives 256 channels); fast 48 * 16 * 64 = 49,152
  //   SE per block 16 * 1 + 1 * 16 = 32, three blocks 96
  //   h per block 48 * 8 * 16 * 9 = 55,296, three blocks 165,888
  //   ILA per call 48 * 9 * (8 + 16) = 10,368; per task 2 calls on a non-keyframe (key, prev),
  //   1 on a keyframe (prev): 62,208 and 31,104
  const FrameCost key = frame_cost(tiny(), kH, kW, true), other = frame_cost(tiny(), kH, kW, false);
  CHECK(key.neck == 196608);
  CHECK(other.neck == 49152);
  CHECK(key.se == 96);
  CHECK(other.ila_keys == 165888);
  CHECK(other.ila_attention == 62208);
  CHECK(key.ila_attention == 31104);
  CHECK(key.total() == key.encoder + 196608 + 96 + 165888 + 31104 + key.heads);

  // A whole clip of K + 1 = 4 frames from a keyframe: key (no previous frame: no ILA),
  // two non-keyframes, key (previous frame there). The conv/linear part is 2 keyframes and
  // 2 non-keyframes; the ILA calls are 0 + 6 + 6 + 3 = 15 per the three tasks.
  const std::map<std::string, int64_t> m = by_component(trace_clip(model, 4, 0));
  int64_t convs = 0;
  for (const auto& [k, v] : m)
    if (k != "other") convs += v;
  CHECK(convs == 2 * (key.total() - key.ila_attention) + 2 * (other.total() - other.ila_attention));
  if (m.count("other"))  // nn::trace::Recorder records ILA's MACs once the layer reports them
    CHECK(m.at("other") == 15 * 10368);
}

TEST_CASE("cost: variants (shared attention, no multi-frame, no attention, global window)") {
  SUBCASE("shared SE and h: once per frame; ILA calls still per task") {
    Config c = tiny();
    c.task_specific = false;
    Model model(c);
    check_frame_against_trace(model, true);
    check_frame_against_trace(model, false);
    const FrameCost f = frame_cost(c, kH, kW, false);
    CHECK(f.se == 32);
    CHECK(f.ila_keys == 55296);
    CHECK(f.ila_attention == 62208);
  }
  SUBCASE("no multi-frame: only the key slot attends, heads read 2 slots") {
    Config c = tiny();
    c.multi_frame = false;
    Model model(c);
    check_frame_against_trace(model, false);
    CHECK(frame_cost(c, kH, kW, false).ila_attention == 3 * 10368);
    CHECK(frame_cost(c, kH, kW, true).ila_attention == 0);
  }
  SUBCASE("attention = false (MultiNet++-style): no h, no ILA") {
    Config c = tiny();
    c.attention = false;
    Model model(c);
    check_frame_against_trace(model, true);
    check_frame_against_trace(model, false);
    const FrameCost f = frame_cost(c, kH, kW, false);
    CHECK(f.ila_keys == 0);
    CHECK(f.ila_attention == 0);
  }
  SUBCASE("global attention: n = H*W = 48 candidates") {
    Config c = tiny();
    c.L = 0;
    // 48 pixels * 48 candidates * 24 = 55,296 per call, 6 calls on a non-keyframe.
    CHECK(frame_cost(c, kH, kW, false).ila_attention == 6 * 55296);
  }
}

TEST_CASE("cost: average over the keyframe cycle") {
  const Config c = tiny();  // K = 3
  const double key = double(frame_cost(c, kH, kW, true).total()), other = double(frame_cost(c, kH, kW, false).total());
  CHECK(average_macs(c, kH, kW) == doctest::Approx((key + 2 * other) / 3).epsilon(1e-12));
  CHECK(average_gmacs(c, kH, kW) == doctest::Approx((key + 2 * other) / 3e9).epsilon(1e-12));
  Config slow_only = c;
  slow_only.K = 1;
  CHECK(average_macs(slow_only, kH, kW) == doctest::Approx(key).epsilon(1e-12));
}

TEST_CASE("cost: NYUv2 default numbers by hand") {
  // Paper defaults at 288x384, feature map 36x48 = 1728 pixels, C 256, D 64, L 5:
  //   h per block: 1728 * 64 * 256 * 9 = 254,803,968
  //   ILA per call: 1728 * 25 * (64 + 256) = 13,824,000
  //   slow neck: 1728 * 256 * 2048 = 905,969,664
  //   seg head: 1728 * (512*768*9 + 256*512 + 13*256) = 1728 * 3,673,344 = 6,347,538,432
  const Config c;
  const FrameCost f = frame_cost(c, 288, 384, true);
  CHECK(f.ila_keys == 3 * 254803968LL);
  CHECK(f.ila_attention == 3 * 13824000LL);
  CHECK(f.neck == 905969664LL);
  Config seg = c;
  seg.tasks = {{Task::seg, 13}};
  CHECK(frame_cost(seg, 288, 384, false).heads == 6347538432LL);
}

TEST_CASE("cost: parameter_count equals the built model") {
  for (int variant = 0; variant < 5; ++variant) {
    CAPTURE(variant);
    Config c = tiny();
    if (variant == 1) c.task_specific = false;
    if (variant == 2) c.multi_frame = false;
    if (variant == 3) c.attention = false;
    if (variant == 4) c.weighting = Weighting::uncertainty;
    Model model(c);
    CHECK(parameter_count(c, true) == model.num_parameters());
    int64_t disc = 0;
    for (const auto& [n, t] : model.disc->named_parameters()) disc += t.numel();
    const int64_t extras = disc + (variant == 4 ? 3 : 0);
    CHECK(parameter_count(c, false) == model.num_parameters() - extras);
    int64_t unused_h = 0;
    if (variant == 3)
      for (const auto& [n, t] : model.named_parameters())
        if (n.find(".ila.h.") != std::string::npos) unused_h += t.numel();
    CHECK(used_parameter_count(c) == model.num_parameters() - extras - unused_h);
  }
  // Slow-only (K = 1): the Fast encoder and its neck are built but never run.
  Config c = tiny();
  c.K = 1;
  Model model(c);
  CHECK(used_parameter_count(c) ==
        parameter_count(c) - model.fast->num_parameters() - model.fast_neck->num_parameters());
}

TEST_CASE("cost: misuse is reported") {
  CHECK_THROWS_AS(frame_cost(tiny(), 0, 64, true), std::invalid_argument);
  Config bad = tiny();
  bad.L = 4;
  CHECK_THROWS_AS(frame_cost(bad, 48, 64, true), std::invalid_argument);
  CHECK_THROWS_AS(resnet_macs(20, 64, 224, 224), std::invalid_argument);
}
