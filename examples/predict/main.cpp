// predict - runs a trained MILA checkpoint as a stream over a folder of frames.
//
//   ./build/predict --checkpoint runs/train_nyu/model.safetensors --frames DIR --out DIR [--raw]
//
// Frames are the folder's .png / .jpg / .jpeg files in name order, all of one size; the
// first is a keyframe, then every K-th (or as --adaptive decides: mila/stream.h). Per frame
// and task it writes a colour-mapped PNG (<out>/<task>/NNNNNN.png: seg by class palette,
// depth on a ramp over that frame's range, normal as (n + 1) / 2) and prints the frame's
// latency and MACs. --raw also writes <out>/outputs.safetensors
// with "<task>.<t>" F32 [1, channels, H, W] for every frame t (0-based), at the input size.
//
// The cost of a frame grows with its pixels (an 8000x8000 frame takes minutes), so frames
// above --max-pixels (default 2048x2048, twice the paper's largest input, Cityscapes at
// 1024x2048) are refused before the first forward pass with their size and cost, and so
// are frames whose estimated memory exceeds what the machine has available
// (mila/options_check.h, mila/memory.h).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "data/image_io.h"
#include "data/nyu.h"
#include "data/visualize.h"
#include "examples/flag_checks.h"
#include "mila/checkpoint.h"
#include "mila/stream.h"
#include "nn/safetensors.h"
#include "ops/threads.h"

using namespace mila;
namespace fs = std::filesystem;

namespace {

std::vector<fs::path> list_frames(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw std::runtime_error("predict: --frames " + dir.string() + " is not a folder");
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    if (entry.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg")) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw std::runtime_error("predict: no .png or .jpg frames in " + dir.string());
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  reexec_with_passive_omp_wait(argv);  // Note [OpenMP wait policy] in ops/threads.h
  std::string checkpoint, frames_dir, out_dir;
  bool raw = false;
  int threads = 0;
  double adaptive = -1;
  int64_t max_pixels = kDefaultMaxFramePixels;
  CLI::App app{"Run a MILA checkpoint over a folder of video frames, frame by frame"};
  app.add_option("--checkpoint", checkpoint, "MILA checkpoint (safetensors with mila.config)")->required();
  app.add_option("--frames", frames_dir, "folder of frames (.png/.jpg, name order)")->required();
  app.add_option("--out", out_dir, "output folder")->required();
  app.add_flag("--raw", raw, "also write outputs.safetensors with every frame's outputs");
  app.add_option("--threads", threads, "OpenMP threads (0: the runtime's default)")->check(within(train_ranges::threads));
  app.add_option("--adaptive", adaptive, "adaptive keyframes with this drift threshold (mila/stream.h)")->check(within(numbers(0)));
  app.add_option("--max-pixels", max_pixels, "refuse frames with more pixels (height x width) than this")
      ->check(within(integers(1, int64_t(1) << 40)))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    if (threads > 0) set_num_threads(threads);
    std::unique_ptr<Model> model = load_model(checkpoint);
    model->eval();
    const std::vector<fs::path> files = list_frames(frames_dir);
    StreamOptions options;
    if (adaptive >= 0) options.adaptive = true, options.drift_threshold = adaptive;
    Stream stream(*model, options);
    fs::create_directories(out_dir);
    for (const TaskSpec& t : model->config().tasks) fs::create_directories(fs::path(out_dir) / t.name());

    std::vector<std::pair<std::string, Tensor>> raw_outputs;
    double latency_sum = 0, gmacs_sum = 0;
    int64_t height = -1, width = -1, keyframes = 0;
    std::printf("%zu frames from %s, K = %lld%s\n", files.size(), frames_dir.c_str(), (long long)model->config().K,
                options.adaptive ? ", adaptive keyframes" : "");
    for (size_t t = 0; t < files.size(); ++t) {
      const Tensor rgb = data::read_rgb(files[t].string());  // uint8 [3, H, W]; throws naming the file
      if (t == 0) {
        height = rgb.size(1), width = rgb.size(2);
        try {  // before the first forward pass
          check_stream_frame(model->config(), height, width, max_pixels);
        } catch (const std::exception& e) {
          throw std::runtime_error("predict: " + files[t].string() + ": " + e.what());
        }
      }
      if (rgb.size(1) != height || rgb.size(2) != width)
        throw std::runtime_error("predict: " + files[t].string() + " is " + std::to_string(rgb.size(2)) + "x" +
                                 std::to_string(rgb.size(1)) + ", the first frame " + std::to_string(width) + "x" +
                                 std::to_string(height));
      Tensor frame = rgb.to(DType::Float32).contiguous();
      {
        float* p = frame.data<float>();
        for (int64_t i = 0; i < frame.numel(); ++i) p[i] /= 255.0f;
      }
      data::normalize_frames_(frame);
      const FrameResult r = stream.step(frame.unsqueeze(0));
      latency_sum += r.latency_ms, gmacs_sum += double(r.macs) * 1e-9, keyframes += r.keyframe;
      std::printf("frame %4zu  %s  %8.1f ms  %7.2f GMACs%s\n", t, r.keyframe ? "key " : "fast", r.latency_ms, double(r.macs) * 1e-9,
                  options.adaptive && !r.keyframe ? ("  drift " + std::to_string(r.drift)).c_str() : "");
      char name[32];
      std::snprintf(name, sizeof name, "%06zu.png", t);
      for (const auto& [task, y] : r.outputs) {
        const Tensor one = y.select(0, 0);
        Tensor picture;
        switch (kTaskNames.parse(task)) {
          case Task::seg: picture = data::segmentation_rgb(data::argmax_channels(one)); break;
          case Task::normal: picture = data::normal_rgb(one); break;
          case Task::depth: {  // the ramp over this frame's range
            const Tensor c = one.select(0, 0).contiguous();
            const float* p = c.data<float>();
            const auto [lo, hi] = std::minmax_element(p, p + c.numel());
            picture = data::depth_rgb(c, std::max(0.0f, *lo), *hi);
            break;
          }
        }
        data::write_rgb_png((fs::path(out_dir) / task / name).string(), picture);
        if (raw) raw_outputs.emplace_back(task + "." + std::to_string(t), y);
      }
    }
    const double n = double(files.size());
    std::printf("%zu frames, %lld keyframes: mean %.1f ms and %.2f GMACs per frame; pictures in %s\n", files.size(),
                (long long)keyframes, latency_sum / n, gmacs_sum / n, out_dir.c_str());
    if (raw) {
      const std::string path = (fs::path(out_dir) / "outputs.safetensors").string();
      safetensors::write(path, raw_outputs, {{"checkpoint", checkpoint}});
      std::printf("raw outputs: %s\n", path.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    std::fprintf(stderr, "%s%s\n", what.rfind("predict:", 0) == 0 ? "" : "predict: ", what.c_str());
    return 1;
  }
}
