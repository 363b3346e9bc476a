// stream_eval - accuracy against cost of keyframe policies, measured by streaming whole
// validation sequences (mila/stream.h) rather than SPEC 4.5's clips.
//
//   ./build/stream_eval --checkpoint runs/train_nyu/model.safetensors [--data DIR] [--thresholds 0.1,0.2,0.4]
//
// Each sequence of the validation split is run from its first frame to its last as one
// stream; the metrics (mila/metrics.h) are taken at its annotated frames, the MACs and
// latency over every frame. Rows: the fixed schedule (a keyframe every K frames, the paper),
// Slow on every frame (K = 1 with the same weights: the accuracy ceiling of the schedule),
// Fast after the first keyframe only (the floor), and the adaptive policy at each drift
// threshold (Slow when the Fast features drift past it; no fixed schedule).
// Without --data it uses the synthetic set train_nyu renders by default.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <vector>

#include "data/image_io.h"
#include "data/nyu.h"
#include "data/synthetic.h"
#include "examples/flag_checks.h"
#include "mila/checkpoint.h"
#include "mila/metrics.h"
#include "mila/stream.h"
#include "mila/trainer.h"
#include "ops/threads.h"

using namespace mila;

namespace {

struct Row {
  std::string name;
  MetricResults metrics;
  double keyframe_share = 0, gmacs = 0, ms = 0;
};

Row run(Model& model, const data::NyuVideoDataset& val, const std::string& name, StreamOptions options) {
  MetricAccumulator acc(std::max<int64_t>(model.config().task_channels(Task::seg), 1));
  int64_t frames = 0, keyframes = 0;
  double macs = 0, ms = 0;
  for (const data::NyuSequence& seq : val.sequences()) {
    Stream stream(model, options);
    size_t next_annotated = 0;
    for (int64_t pos = 0; pos < int64_t(seq.rgb.size()); ++pos) {
      // A clip of one frame: [1, 3, H, W], checked against the split's size, normalized.
      Tensor frame = data::load_clip_frames("stream_eval", seq.rgb, pos, 0, val.height(), val.width(), val.height(), val.width());
      data::normalize_frames_(frame);
      const FrameResult r = stream.step(frame);
      ++frames, keyframes += r.keyframe, macs += double(r.macs), ms += r.latency_ms;
      if (next_annotated < seq.annotated.size() && seq.annotated[next_annotated] == pos) {
        const size_t a = next_annotated++;
        acc.add(r.outputs, data::read_label(seq.label[a].string()).unsqueeze(0), data::read_depth(seq.depth[a].string()).unsqueeze(0),
                data::read_normal(seq.normal[a].string()).unsqueeze(0));
      }
    }
  }
  return {name, acc.results(), double(keyframes) / double(frames), macs / double(frames) * 1e-9, ms / double(frames)};
}

}  // namespace

int main(int argc, char** argv) {
  reexec_with_passive_omp_wait(argv);
  std::string checkpoint, data_dir, thresholds = "0.05,0.1,0.2,0.4";
  CLI::App app{"Accuracy and cost of keyframe policies on whole validation sequences"};
  app.add_option("--checkpoint", checkpoint, "MILA checkpoint")->required();
  app.add_option("--data", data_dir, "NYUv2-video root (default: train_nyu's synthetic set)");
  app.add_option("--thresholds", thresholds, "adaptive drift thresholds, comma-separated, each >= 0")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    // Checked before the model and the data are read.
    const std::vector<double> drift_thresholds = parse_number_list("--thresholds", thresholds, numbers(0));
    std::unique_ptr<Model> model = load_model(checkpoint);
    model->eval();
    if (data_dir.empty()) {
      const data::SyntheticConfig sc = default_synthetic_config();  // as examples/train_nyu renders it
      data_dir = synthetic_dataset_dir(default_cache_dir(), sc);
      data::ensure_synthetic_dataset(data_dir, sc);
    }
    const data::NyuVideoDataset val(data_dir, "val", std::max<int64_t>(model->config().task_channels(Task::seg), 1));
    const int64_t K = model->config().K;
    std::vector<Row> rows;
    rows.push_back(run(*model, val, "fixed, K = " + std::to_string(K), {}));
    {
      Config every = model->config();
      every.K = 1;
      Model slow_only(every);
      slow_only.load_state_dict(model->state_dict());
      slow_only.eval();
      rows.push_back(run(slow_only, val, "Slow on every frame (K = 1)", {}));
    }
    rows.push_back(run(*model, val, "Fast after frame 0", {true, 1e30, 0, false}));
    for (const double threshold : drift_thresholds) {
      char name[64];
      std::snprintf(name, sizeof name, "adaptive, drift > %g", threshold);
      rows.push_back(run(*model, val, name, {true, threshold, 0, false}));
    }

    std::printf("%zu validation sequences, %lld annotated frames, %s\n\n", val.sequences().size(), (long long)val.size(),
                data_dir.c_str());
    std::printf("| policy | keyframes | GMACs/frame | ms/frame | mIoU %% | depth abs | angle mean |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for (const Row& r : rows)
      std::printf("| %s | %.0f%% | %.3f | %.1f | %.2f | %.4f | %.2f |\n", r.name.c_str(), 100 * r.keyframe_share, r.gmacs, r.ms,
                  100 * r.metrics.miou, r.metrics.depth_abs, r.metrics.angle_mean);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stream_eval: %s\n", e.what());
    return 1;
  }
}
