// classify - ImageNet classification with torchvision's ResNets, converted to safetensors by
// tools/pth_to_safetensors.py (docs/classify.md has the whole recipe).
//
//   ./build/classify --arch resnet50 --weights resnet50.safetensors --image cat.jpg
//   ./build/classify --arch resnet18 --weights r18.safetensors --image x.png --top 10 --raw logits.safetensors
//
// The image goes through torchvision's evaluation transform (data/imagenet.h: Resize(256)
// with PIL's bilinear filter, CenterCrop(224), ToTensor, Normalize), the classifier is
// nn/resnet.h's ResNet in torchvision's layout with fc 1000, and the weights load strictly:
// every name and shape must match, so a checkpoint of another depth is refused with the
// list of what differs (and the depth the checkpoint looks like). Prints the top classes
// with their softmax probabilities; --raw writes the logits, `logits` F32 [1, 1000], as
// safetensors (written atomically).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "autograd/grad_mode.h"
#include "data/imagenet.h"
#include "examples/flag_checks.h"
#include "nn/resnet.h"
#include "nn/safetensors.h"
#include "ops/threads.h"
#include "ops/ops.h"

using namespace mila;

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Reads the checkpoint and loads it strictly into `model`; every failure names the file.
void load_weights(const std::string& path, const std::string& arch, nn::ResNet& model) {
  const safetensors::Contents contents = safetensors::read(path);  // safetensors::Error names the file
  try {
    model.load_state_dict(contents.tensors, /*strict=*/true);
  } catch (const std::runtime_error& e) {
    const int depth = nn::resnet_depth_of(contents.tensors);
    const std::string guess = depth > 0 ? "resnet" + std::to_string(depth) : "";
    std::string hint;
    if (!guess.empty() && guess != arch)
      hint = "it holds " + guess + " weights, not " + arch + " (try --arch " + guess + "). ";
    else if (guess.empty())
      hint = "it does not look like a torchvision resnet18/34/50/101 checkpoint. ";
    throw std::runtime_error("weights '" + path + "' do not fit " + arch + ": " + hint + e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string arch, weights, image_path, raw, device = "cpu";
  int64_t top = 5;
  int threads = 0;

  CLI::App app{"ImageNet classification with a torchvision ResNet (weights converted to safetensors)"};
  app.add_option("--arch", arch, "resnet18, resnet34, resnet50 or resnet101")
      ->required()
      ->check(CLI::IsMember({"resnet18", "resnet34", "resnet50", "resnet101"}));
  app.add_option("--weights", weights, "the classifier's state dict as safetensors (tools/pth_to_safetensors.py)")->required();
  app.add_option("--image", image_path, "an 8-bit RGB or grey PNG or JPEG")->required();
  app.add_option("--top", top, "how many classes to print")->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_option("--raw", raw, "write the logits (`logits`, F32 [1, 1000]) to this safetensors file");
  app.add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  app.add_option("--threads", threads, "OpenMP threads (0: the runtime's default)")
      ->check(within(mila::train_ranges::threads))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    if (threads > 0) set_num_threads(threads);
    const Device dev = Device::parse(device);

    // The image, and torchvision's evaluation transform of it.
    const auto t_pre = std::chrono::steady_clock::now();
    const Tensor rgb = data::read_image_rgb(image_path);
    const data::ImageSize resized = data::resized_size(rgb.size(1), rgb.size(2));
    const Tensor input = data::imagenet_preprocess(rgb);
    const double pre_ms = ms_since(t_pre);

    // The classifier: torchvision's resnetNN(num_classes=1000), non-dilated, width 64.
    nn::ResNetConfig config;
    config.depth = std::stoi(arch.substr(6));
    config.width = 64;
    config.dilated = false;
    config.num_classes = data::kImageNetClassCount;
    nn::ResNet model(config);
    load_weights(weights, arch, model);
    model.eval();
    model.to(dev);

    const auto t_fwd = std::chrono::steady_clock::now();
    Tensor logits;
    {
      NoGradGuard no_grad;
      logits = model(input.to(dev)).to(Device::cpu()).contiguous();  // [1, 1000]
    }
    const double fwd_ms = ms_since(t_fwd);

    std::printf("image   %s: %lldx%lld, resized to %lldx%lld, centre %lldx%lld (%.1f ms)\n", image_path.c_str(),
                (long long)rgb.size(1), (long long)rgb.size(2), (long long)resized.height, (long long)resized.width,
                (long long)data::kImageNetCrop, (long long)data::kImageNetCrop, pre_ms);
    std::printf("model   %s from %s, %.2f M parameters, forward on %s %.1f ms\n", arch.c_str(), weights.c_str(),
                double(model.num_parameters()) / 1e6, device.c_str(), fwd_ms);
    std::printf("\n  rank  probability  class  name\n");
    const auto best = data::top_k_classes(logits, top);
    for (size_t r = 0; r < best.size(); ++r)
      std::printf("  %4zu  %11.6f  %5lld  %s\n", r + 1, best[r].probability, (long long)best[r].index,
                  data::imagenet_class_name(best[r].index));

    if (!raw.empty()) {
      safetensors::write(raw, {{"logits", logits}}, {{"arch", arch}, {"weights", weights}, {"image", image_path}});
      std::printf("\nlogits [1, %lld] written to %s\n", (long long)logits.size(1), raw.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "classify: %s\n", e.what());
    return 1;
  }
  return 0;
}
