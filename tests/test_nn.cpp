// test_nn.cpp - modules, ResNet names and values against torchvision, checkpoints, MACs.
#include <cmath>
#include <filesystem>

#include "nn/attention.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "nn/resnet.h"
#include "nn/safetensors.h"
#include "nn/trace.h"
#include "tests/data/resnet_reference.h"
#include "tests/test_util.h"

using namespace mila;
using namespace mila::nn;

namespace {

std::string temp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("mila_test_nn_" + name)).string();
}

// The closed-form weights of tools/gen_resnet_reference.py.
void fill_reference_weights(Module& m) {
  NoGradGuard no_grad;
  int j = 0;
  for (auto& [name, t] : m.state_dict()) {
    if (name.ends_with("num_batches_tracked")) continue;
    std::vector<double> v(size_t(t.numel()));
    for (size_t i = 0; i < v.size(); ++i) {
      const double s = std::sin(0.37 * double(i) + 1.3 * j);
      v[i] = name.ends_with("running_var") ? 1 + 0.5 * s * s : 0.1 * s;
    }
    copy_(t, from_vector(v, t.shape()));
    ++j;
  }
}

Tensor reference_input() {
  std::vector<double> v(2 * 3 * 64 * 80);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.05 * double(i));
  return from_vector(v, {2, 3, 64, 80}).to(DType::Float32);
}

}  // namespace

TEST_CASE("ResNet parameter and buffer names and shapes equal torchvision's") {
  const std::vector<std::pair<int, const std::vector<resnet_reference::NameShape>*>> cases = {
      {18, &resnet_reference::resnet18_state}, {34, &resnet_reference::resnet34_state},
      {50, &resnet_reference::resnet50_state}, {101, &resnet_reference::resnet101_state}};
  for (const auto& entry : cases) {  // not a structured binding: clang 14 cannot capture one in INFO's lambda
    const auto& depth = entry.first;
    const auto& expected = entry.second;
    INFO("resnet" << depth);
    ResNet net({.depth = depth, .width = 64, .dilated = false, .num_classes = 1000});
    const NamedTensors state = net.state_dict();
    REQUIRE(state.size() == expected->size());
    for (size_t i = 0; i < state.size(); ++i) {
      CHECK(state[i].first == (*expected)[i].name);
      CHECK(shape_str(state[i].second.shape()) == shape_str((*expected)[i].shape));
    }
  }
  // Dilation changes no names; the features-only variant drops fc.
  ResNet dilated({.depth = 50, .width = 64, .dilated = true, .num_classes = 0});
  CHECK(dilated.state_dict().size() == resnet_reference::resnet50_state.size() - 2);
}

TEST_CASE("resnet_depth_of tells the four depths apart from a state dict's names") {
  for (int depth : {18, 34, 50, 101}) {
    CAPTURE(depth);
    const NamedTensors state = ResNet({.depth = depth, .width = 8, .dilated = false, .num_classes = 10}).state_dict();
    CHECK(resnet_depth_of(state) == depth);
    // Features-only and dilated variants have the same blocks.
    CHECK(resnet_depth_of(ResNet({.depth = depth, .width = 8, .dilated = true, .num_classes = 0}).state_dict()) == depth);
    // A block missing from the last layer: not a torchvision ResNet any more.
    NamedTensors cut;
    for (const auto& [name, t] : state)
      if (name.rfind("layer4.1.", 0) != 0 && name.rfind("layer4.2.", 0) != 0) cut.emplace_back(name, t);
    CHECK(resnet_depth_of(cut) == 0);
  }
  // ResNet-34 and -50 have the same blocks per layer; only the conv3s tell them apart.
  NamedTensors r50 = ResNet({.depth = 50, .width = 8, .dilated = false, .num_classes = 10}).state_dict();
  std::erase_if(r50, [](const auto& p) { return p.first.find(".conv3.") != std::string::npos; });
  CHECK(resnet_depth_of(r50) == 34);
  CHECK(resnet_depth_of({}) == 0);
  CHECK(resnet_depth_of({{"layerX.1.conv1.weight", Tensor()}, {"layer1.a.conv1.weight", Tensor()}}) == 0);
}

TEST_CASE("ResNet-18 width 8 forward equals PyTorch's (eval, classifier and dilated features)") {
  ResNet cls({.depth = 18, .width = 8, .dilated = false, .num_classes = 10});
  fill_reference_weights(cls);
  cls.eval();
  NoGradGuard no_grad;
  const Tensor logits = cls(reference_input());
  test::check_close(logits, from_vector(resnet_reference::width8_logits, {2, 10}).to(DType::Float32), 2e-5, 1e-4);
  ResNet feat({.depth = 18, .width = 8, .dilated = true, .num_classes = 0});
  fill_reference_weights(feat);
  feat.eval();
  const Tensor f = feat(reference_input());
  CHECK(f.shape() == resnet_reference::width8_dilated_shape);
  for (size_t i = 0; i < resnet_reference::width8_dilated_index.size(); ++i)
    CHECK(test::at(f, resnet_reference::width8_dilated_index[i]) ==
          doctest::Approx(resnet_reference::width8_dilated_values[i]).epsilon(1e-4).scale(1e-3));
  CHECK(sum(f.to(DType::Float64)).item<double>() == doctest::Approx(resnet_reference::width8_dilated_sum).epsilon(1e-4));
}

TEST_CASE("MACs match torchvision's published figures at 224x224 (thop convention)") {
  const std::vector<std::pair<int, double>> published = {{18, 1.814}, {34, 3.664}, {50, 4.089}, {101, 7.801}};
  for (const auto& entry : published) {  // not a structured binding: clang 14 cannot capture one in INFO's lambda
    const auto& depth = entry.first;
    const auto& gmacs = entry.second;
    ResNet net({.depth = depth, .width = 64, .dilated = false, .num_classes = 1000});
    const double got = double(nn::trace::count_macs(net, {1, 3, 224, 224})) / 1e9;
    INFO("resnet" << depth << ": " << got << " GMACs");
    CHECK(std::abs(got - gmacs) / gmacs < 0.005);
  }
}

TEST_CASE("MACs of a small dilated network counted by hand") {
  // conv 3->4 3x3 pad 1 at 8x8: 8*8*4 * 3*9 = 6912; conv 4->2 3x3 dilation 2 pad 2 at 8x8:
  // 8*8*2 * 4*9 = 4608; linear 2 -> 5: 2*5 = 10 (after a global pool). Total 11530.
  Sequential net;
  net.add(std::make_shared<Conv2d>(3, 4, 3, 1, 1));
  net.add(std::make_shared<ReLU>());
  net.add(std::make_shared<Conv2d>(4, 2, 3, 1, 2, 2));
  net.add(std::make_shared<AdaptiveAvgPool2d>(1, 1));
  CHECK(nn::trace::count_macs(net, {1, 3, 8, 8}) == 6912 + 4608);
  const std::string s = nn::trace::summary(net, {1, 3, 8, 8});
  CHECK(s.find("Conv2d") != std::string::npos);
  CHECK(s.find("[1, 2, 8, 8]") != std::string::npos);
  CHECK(s.find("6912") != std::string::npos);
  CHECK(s.find("4608") != std::string::npos);
  Linear fc(2, 5);
  CHECK(nn::trace::count_macs(fc, {1, 2}) == 10);
}

TEST_CASE("state dict round trip through safetensors; strict and non-strict loads") {
  const std::string path = temp_file("resnet.safetensors");
  manual_seed(1);
  ResNet a({.depth = 18, .width = 8, .num_classes = 10});
  save_checkpoint(path, a, {{"note", "test"}});
  manual_seed(2);
  ResNet b({.depth = 18, .width = 8, .num_classes = 10});
  load_checkpoint(path, b);
  const NamedTensors sa = a.state_dict(), sb = b.state_dict();
  for (size_t i = 0; i < sa.size(); ++i) test::check_close(sb[i].second, sa[i].second, 0, 0, sa[i].first);
  // A features-only net takes a classifier checkpoint non-strictly (fc.* unused) ...
  ResNet feat({.depth = 18, .width = 8, .num_classes = 0});
  const LoadReport r = load_checkpoint(path, feat, /*strict=*/false);
  CHECK(r.unexpected == std::vector<std::string>{"fc.weight", "fc.bias"});
  CHECK(r.missing.empty());
  // ... but not strictly; the message lists the names and the file.
  test::check_throws_with([&] { load_checkpoint(path, feat); }, {path, "unexpected (2): fc.weight fc.bias"});
  ResNet wide({.depth = 18, .width = 16, .num_classes = 10});
  test::check_throws_with([&] { load_checkpoint(path, wide); }, {"mis-shaped", "conv1.weight: checkpoint [8, 3, 7, 7]"});
}

TEST_CASE("modules: train/eval, zero_grad, parameter counts, BN running stats and counter") {
  Conv2d conv(3, 4, 3, 1, 1, 1, 1, true);
  CHECK(conv.num_parameters() == 4 * 3 * 9 + 4);
  BatchNorm2d bn(4);
  CHECK(bn.named_buffers().size() == 3);
  const Tensor x = test::uniform({2, 3, 5, 5}, -1, 1, DType::Float32);
  bn(conv(x));
  CHECK(bn.num_batches_tracked.item<int64_t>() == 1);
  CHECK(test::at(bn.running_var, 0) != 1.0);
  bn.eval();
  CHECK_FALSE(bn.is_training());
  bn(conv(x));
  CHECK(bn.num_batches_tracked.item<int64_t>() == 1);
  sum(conv(x)).backward();
  CHECK(conv.weight.grad().defined());
  conv.zero_grad();
  CHECK_FALSE(conv.weight.grad().defined());
  SEBlock se(32);
  CHECK(se.named_parameters()[0].first == "fc1.weight");
  CHECK(se.named_parameters()[0].second.shape() == Shape{2, 32});
  const Tensor y = se(test::uniform({2, 32, 3, 4}, -1, 1, DType::Float32));
  CHECK(y.shape() == Shape{2, 32, 3, 4});
}

// ---- the same training on the GPU (or the CUDA emulator) ---------------------------------------
namespace {

// A two-layer perceptron trained with a softmax cross-entropy written from primitive ops
// (log_softmax, gather, mean), so every op of the step runs the device's kernels: returns
// the losses of `steps` steps and leaves the trained model in `model`.
std::vector<double> train_mlp(Sequential& model, Device device, bool adam, int steps) {
  Generator gen(21);
  const Tensor x = randn({17, 13}, {DType::Float32}, &gen).to(device);
  const Tensor labels = randint(0, 5, {17, 1}, {DType::Int64}, &gen).to(device);
  model.to(device);
  std::unique_ptr<Optimizer> opt;
  if (adam)
    opt = std::make_unique<Adam>(model.parameters(), AdamOptions{.lr = 1e-2, .weight_decay = 1e-3,
                                                                 .decoupled_weight_decay = true});
  else
    opt = std::make_unique<SGD>(model.parameters(), SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});
  std::vector<double> losses;
  int64_t baseline = -1;
  for (int s = 0; s < steps; ++s) {
    opt->zero_grad();
    if (device.is_cuda() && s >= 1) {
      // From the second step on, the optimizer state exists: a step must leave nothing behind.
      if (baseline >= 0) CHECK(memory_stats(device).bytes_in_use == baseline);
      baseline = memory_stats(device).bytes_in_use;
    }
    const Tensor logp = log_softmax(model.forward(x), 1);
    const Tensor loss = neg(mean(gather(logp, 1, labels)));
    loss.backward();
    opt->step();
    losses.push_back(loss.item<double>());
  }
  opt->zero_grad();
  return losses;
}

std::shared_ptr<Sequential> make_mlp() {
  manual_seed(5);
  auto m = std::make_shared<Sequential>();
  m->add(std::make_shared<Linear>(13, 32));
  m->add(std::make_shared<ReLU>());
  m->add(std::make_shared<Linear>(32, 5));
  return m;
}

}  // namespace

TEST_CASE("a small network trains on cuda as on the cpu, and its steps leave no memory behind" *
          doctest::test_suite("cuda")) {
  for (bool adam : {false, true}) {
    CAPTURE(adam);
    auto on_cpu = make_mlp(), on_gpu = make_mlp();
    const std::vector<double> cpu_losses = train_mlp(*on_cpu, Device::cpu(), adam, 6);
    const std::vector<double> gpu_losses = train_mlp(*on_gpu, Device::cuda(), adam, 6);
    CHECK(cpu_losses.back() < cpu_losses.front());  // it does train
    for (size_t s = 0; s < cpu_losses.size(); ++s) CHECK(gpu_losses[s] == doctest::Approx(cpu_losses[s]).epsilon(1e-4));
    // float32 on both devices; sums in a different order: agreement to ~1e-4 after six steps.
    const auto cpu_params = on_cpu->named_parameters(), gpu_params = on_gpu->named_parameters();
    REQUIRE(cpu_params.size() == gpu_params.size());
    for (size_t i = 0; i < cpu_params.size(); ++i) {
      CHECK(gpu_params[i].second.device().is_cuda());
      test::check_close(gpu_params[i].second.to(Device::cpu()), cpu_params[i].second, 1e-4, 1e-3, cpu_params[i].first);
    }
  }
}
