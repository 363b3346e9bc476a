// test_mila.cpp - the MILA model on a small configuration: module names, keyframe phases,
// clip forward shapes and consistency, gradients of the training losses, checkpoints.
#include <filesystem>

#include "mila/train.h"
#include "nn/checkpoint.h"
#include "nn/safetensors.h"
#include "tests/test_util.h"

using namespace mila;

namespace {
Batch make_batch(int64_t T, int64_t B, int64_t H, int64_t W, uint64_t seed) {
  Generator g(seed);
  Batch b;
  b.frames = randn({T, B, 3, H, W}, {}, &g);
  b.seg = randint(0, 13, {B, H, W}, {DType::Int64}, &g);
  b.depth = add(rand({B, 1, H, W}, {}, &g), 0.5);
  b.normal = sub(rand({B, 3, H, W}, {}, &g), 0.5);
  return b;
}

bool has(const nn::NamedTensors& s, const std::string& name) {
  for (const auto& [n, t] : s)
    if (n == name) return true;
  return false;
}
}  // namespace

TEST_CASE("MILA: module names follow SPEC 4.1, task-specific and shared") {
  Model m(test::tiny_config(32));
  const nn::NamedTensors s = m.state_dict();
  for (const char* name : {"slow.conv1.weight", "fast.layer4.1.bn2.running_var", "slow_neck.0.weight", "slow_neck.1.bias",
                           "fast_neck.0.weight", "decoders.seg.se.fc1.weight", "decoders.seg.se.fc2.bias",
                           "decoders.depth.ila.h.weight", "decoders.normal.ila.h.bias", "decoders.seg.head.0.weight",
                           "decoders.seg.head.1.running_mean", "decoders.seg.head.3.weight", "decoders.seg.head.4.weight",
                           "decoders.seg.head.6.bias", "disc.0.weight", "disc.2.bias", "disc.4.weight"})
    CHECK_MESSAGE(has(s, name), name);
  CHECK_FALSE(has(s, "slow.fc.weight"));
  CHECK(m.task_decoders.at("seg")->head->named_parameters()[0].second.shape() == Shape{512, 3 * 32, 3, 3});
  Config shared = test::tiny_config(32);
  shared.task_specific = false;
  shared.multi_frame = false;
  Model ms(shared);
  const nn::NamedTensors ss = ms.state_dict();
  CHECK(has(ss, "shared.se.fc1.weight"));
  CHECK(has(ss, "shared.ila.h.weight"));
  CHECK_FALSE(has(ss, "decoders.seg.se.fc1.weight"));
  CHECK(ms.task_decoders.at("seg")->head->named_parameters()[0].second.shape() == Shape{512, 2 * 32, 3, 3});
}

TEST_CASE("MILA: keyframes follow (t - t0) mod K with a non-negative remainder") {
  Model m(test::tiny_config(32));  // K = 3
  CHECK(m.is_keyframe(0, 0));
  CHECK_FALSE(m.is_keyframe(1, 0));
  CHECK(m.is_keyframe(3, 0));
  CHECK(m.is_keyframe(1, 4));   // (1 - 4) mod 3 = 0
  CHECK_FALSE(m.is_keyframe(0, 1));  // (0 - 1) mod 3 = 2: a frame before the first keyframe
}

TEST_CASE("MILA: clip forward shapes, normals normalized, a shorter clip gives the same outputs for its frames") {
  Model m(test::tiny_config(32));
  m.eval();
  NoGradGuard no_grad;
  const Batch b = make_batch(4, 1, 64, 80, 1);
  const Model::ClipResult full = m.forward_clip(b.frames, 0);
  REQUIRE(full.outputs.size() == 4);
  CHECK(full.outputs[3].at("seg").shape() == Shape{1, 13, 64, 80});
  CHECK(full.outputs[3].at("depth").shape() == Shape{1, 1, 64, 80});
  const Tensor n = full.outputs[2].at("normal");
  const Tensor norms = sqrt(sum(mul(n, n), {1}));
  test::check_close(norms, ones({1, 64, 80}), 1e-4, 1e-4, "unit normals");
  const Model::ClipResult part = m.forward_clip(b.frames.narrow(0, 0, 2), 0);
  test::check_close(part.outputs[1].at("seg"), full.outputs[1].at("seg"), 1e-5, 1e-5, "prefix clip");
}

TEST_CASE("MILA: training losses reach every parameter that should get a gradient") {
  Model m(test::tiny_config(32));
  const Batch b = make_batch(2, 2, 64, 80, 2);  // frame 0 keyframe (Slow), frame 1 Fast
  const LossTerms loss = training_losses(m, b);
  CHECK(loss.task.size() == 3);
  REQUIRE(loss.l1.defined());
  loss.total.backward();
  for (const auto& entry : m.named_parameters()) {  // not a structured binding: clang 14 cannot capture one in INFO's lambda
    const auto& name = entry.first;
    const auto& p = entry.second;
    const bool slow = name.rfind("slow", 0) == 0;  // slow.* and slow_neck.*: from the task losses only
    INFO(name);
    CHECK(p.grad().defined());
    (void)slow;
  }
}

TEST_CASE("MILA: the Slow encoder gets no gradient from the mimic losses; GRL flips the Fast one") {
  Config c = test::tiny_config(32);
  Model m(c);
  Batch b = make_batch(2, 1, 64, 80, 3);
  const LossTerms terms = training_losses(m, b);
  // Only the mimic terms: with frame 1 encoded by Fast, Slow runs without gradient.
  add(mul(terms.l1, c.alpha), terms.disc).backward();
  for (const auto& entry : m.named_parameters())  // clang 14: no structured binding in a lambda
    if (entry.first.rfind("slow", 0) == 0) CHECK_MESSAGE(!entry.second.grad().defined(), entry.first);
  CHECK(m.disc->named_parameters()[0].second.grad().defined());
  // The discriminator loss alone: the gradient reaching Fast is -beta times the true one.
  m.zero_grad();
  Batch b2 = b;
  const LossTerms t2 = training_losses(m, b2);
  t2.disc.backward();
  const Tensor g_rev = m.fast->conv1->weight.grad().detach().clone();
  m.zero_grad();
  c.beta = -1;  // a "reversal" by -1 is the identity: the gradient flips sign
  Model m2(c);
  m2.load_state_dict(m.state_dict());
  const LossTerms t3 = training_losses(m2, b2);
  t3.disc.backward();
  test::check_close(m2.fast->conv1->weight.grad(), neg(g_rev), 1e-6, 1e-3, "GRL flips the sign");
}

TEST_CASE("MILA: without the mimic terms the discriminator gets no gradient") {
  Config c = test::tiny_config(32);
  c.mimic = false;
  Model m(c);
  const LossTerms terms = training_losses(m, make_batch(2, 1, 64, 80, 4));
  CHECK_FALSE(terms.l1.defined());
  terms.total.backward();
  for (const auto& [name, p] : m.disc->named_parameters()) CHECK_FALSE(p.grad().defined());
}

TEST_CASE("MILA: config JSON and a checkpoint alone rebuild the model") {
  Config c = test::tiny_config(32);
  c.tasks = {{Task::seg, 7}, {Task::depth, 1}};
  c.weighting = Weighting::uncertainty;
  const Config back = Config::from_json(c.to_json());
  CHECK(back.to_json() == c.to_json());
  test::check_throws_with([] { (void)Config::from_json(R"({"L": 4})"); }, {"mila.config", "L must be odd"});
  test::check_throws_with([] { (void)Config::from_json(R"({"window": 5})"); }, {"unknown field 'window'"});
  Model m(c);
  CHECK(m.uncertainty_for("seg").dim() == 0);
  const std::string path = (std::filesystem::temp_directory_path() / "mila_test_model.safetensors").string();
  nn::save_checkpoint(path, m, {{"mila.config", c.to_json()}});
  const safetensors::Contents file = safetensors::read(path);
  Model rebuilt(Config::from_json(file.metadata.at("mila.config")));
  rebuilt.load_state_dict(file.tensors);
  const nn::NamedTensors a = m.state_dict(), b = rebuilt.state_dict();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) test::check_close(b[i].second, a[i].second, 0, 0, a[i].first);
}

TEST_CASE("MILA: task and weighting names keep their JSON spellings; a bad name is refused listing the valid ones") {
  Config c;
  c.weighting = Weighting::dwa;
  const std::string json = c.to_json();
  CHECK(json.find(R"("tasks":[["seg",13],["depth",1],["normal",3]])") != std::string::npos);
  CHECK(json.find(R"("weighting":"dwa")") != std::string::npos);
  CHECK(Config::from_json(json).weighting == Weighting::dwa);
  for (Task t : {Task::seg, Task::depth, Task::normal}) CHECK(kTaskNames.parse(kTaskNames.name(t)) == t);
  test::check_throws_with([] { (void)Config::from_json(R"({"tasks": [["edges", 1]]})"); },
                          {"mila.config", "task must be seg, depth or normal", "'edges'"});
  test::check_throws_with([] { (void)Config::from_json(R"({"weighting": "mean"})"); },
                          {"mila.config", "weighting must be equal, uncertainty or dwa", "'mean'"});
  test::check_throws_with([] { (void)Config::from_json(R"({"tasks": [["seg", 13], ["seg", 7]]})"); }, {"'seg' listed twice"});
}
