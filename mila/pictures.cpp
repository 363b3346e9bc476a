// pictures.cpp - see pictures.h.
#include "mila/pictures.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "autograd/grad_mode.h"
#include "data/image_io.h"
#include "data/visualize.h"

namespace fs = std::filesystem;

namespace mila {

void write_validation_pictures(Model& model, const data::VideoDataset& val, int64_t count, const std::string& dir) {
  fs::create_directories(dir);
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  const int64_t K = model.config().K, device_offset = std::max<int64_t>(0, K - 1);
  for (int64_t i = 0; i < std::min(count, val.size()); ++i) {
    const data::ClipData clip = val.clip(i, device_offset);
    const Device device = model.parameters().front().device();
    Model::ClipResult r = model.forward_clip(clip.frames.unsqueeze(1).to(device), 0, /*heads_on_last_only=*/true);
    const TaskOutputs& out = r.outputs.back();
    const Tensor frame = clip.frames.select(0, clip.frames.size(0) - 1);
    std::vector<Tensor> gt_row = {data::image_rgb(frame)}, pred_row = {data::image_rgb(frame)};
    for (const TaskSpec& spec : model.config().tasks) {
      const Tensor y = out.at(spec.name()).to(Device::cpu()).select(0, 0);
      switch (spec.task) {
        case Task::seg:
          gt_row.push_back(data::segmentation_rgb(clip.seg));
          pred_row.push_back(data::segmentation_rgb(data::argmax_channels(y)));
          break;
        case Task::depth: {
          // One range for both, from the ground truth, so that colours compare.
          const Tensor d = clip.depth.contiguous();
          double hi = 0;
          for (int64_t k = 0; k < d.numel(); ++k) hi = std::max(hi, double(d.data<float>()[k]));
          gt_row.push_back(data::depth_rgb(clip.depth, 0, hi));
          pred_row.push_back(data::depth_rgb(y, 0, hi));
          break;
        }
        case Task::normal:
          gt_row.push_back(data::normal_rgb(clip.normal));
          pred_row.push_back(data::normal_rgb(y));
          break;
      }
    }
    char name[64];
    std::snprintf(name, sizeof name, "clip_%03lld.png", (long long)i);
    data::write_rgb_png((fs::path(dir) / name).string(), data::vstack_images({data::hstack_images(gt_row), data::hstack_images(pred_row)}));
  }
  model.train(was_training);
}

}  // namespace mila
