// trainer.cpp - see trainer.h. Sections: the output folder (log, plot, checkpoint), data,
// the evaluation pictures and baseline, the loop.
#include "mila/trainer.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "autograd/grad_mode.h"
#include "data/cityscapes.h"
#include "data/image_io.h"
#include "data/loader.h"
#include "data/nyu.h"
#include "data/visualize.h"
#include "mila/checkpoint.h"
#include "mila/evaluate.h"
#include "mila/train.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "ops/copy.h"
#include "ops/threads.h"
#include "ops/factory.h"

namespace fs = std::filesystem;

namespace mila {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Writes text to path through a temporary file and a rename (never half a file).
void write_text_atomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.flush();
    if (!f) throw std::runtime_error("train_nyu: cannot write " + tmp.string());
  }
  fs::rename(tmp, path);
}

std::string read_text(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("train_nyu: cannot read " + path.string());
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// Losses are float32: 9 significant digits print every float exactly, so two runs that
// computed the same bits log the same text (what the resume test compares).
std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// ---- the log: one CSV row per step ------------------------------------------------------------

struct LogRow {
  int64_t step = 0;
  std::vector<double> values;  // in the order of log_columns()
};

std::vector<std::string> loss_columns(const Config& cfg) {
  std::vector<std::string> cols = {"total"};
  for (const TaskSpec& t : cfg.tasks) cols.push_back(t.name);
  if (cfg.mimic) cols.insert(cols.end(), {"l1", "disc"});
  return cols;
}

std::string log_header(const Config& cfg) {
  std::string h = "step,epoch,lr";
  for (const std::string& c : loss_columns(cfg)) h += "," + c;
  return h + ",seconds,frames_per_s\n";
}

// Keeps the header and the rows of steps < keep_below (a resumed run rewrites what follows).
std::vector<LogRow> truncate_log(const fs::path& path, const Config& cfg, int64_t keep_below) {
  std::vector<LogRow> rows;
  if (!fs::exists(path)) {
    write_text_atomic(path, log_header(cfg));
    return rows;
  }
  std::istringstream in(read_text(path));
  std::string line, kept = log_header(cfg);
  std::getline(in, line);
  if (line + "\n" != log_header(cfg)) throw std::runtime_error("train_nyu: " + path.string() + " has another header: '" + line + "'");
  const size_t n_losses = loss_columns(cfg).size();
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string> cells;
    std::stringstream ls(line);
    for (std::string c; std::getline(ls, c, ',');) cells.push_back(c);
    if (cells.size() != 3 + n_losses + 2) continue;  // a row cut by an interruption
    const int64_t step = std::stoll(cells[0]);
    if (step >= keep_below) break;
    LogRow r{step, {}};
    for (size_t i = 0; i < n_losses; ++i) r.values.push_back(std::stod(cells[3 + i]));
    rows.push_back(r);
    kept += line + "\n";
  }
  write_text_atomic(path, kept);
  return rows;
}

// The loss curves as an SVG: one polyline per term on a log scale (the terms differ by
// orders of magnitude), steps on x. Hand-written: a plot library is not worth a dependency.
void write_loss_plot(const fs::path& path, const std::vector<std::string>& columns, const std::vector<LogRow>& rows) {
  const double W = 820, H = 440, left = 60, right = 120, top = 20, bottom = 40;
  double lo = 1e300, hi = -1e300;
  int64_t s_max = 1;
  for (const LogRow& r : rows) {
    s_max = std::max(s_max, r.step);
    for (double v : r.values)
      if (v > 0 && std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (!(lo < hi)) lo = 1e-3, hi = 10;
  const double l0 = std::floor(std::log10(lo)), l1 = std::ceil(std::log10(hi));
  auto X = [&](double s) { return left + (W - left - right) * s / double(s_max); };
  auto Y = [&](double v) { return top + (H - top - bottom) * (l1 - std::log10(std::max(v, lo))) / std::max(l1 - l0, 1.0); };
  static const char* colours[] = {"#000000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"};
  std::ostringstream svg;
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='12'>\n"
      << "<rect width='100%' height='100%' fill='white'/>\n";
  for (double e = l0; e <= l1; ++e)
    svg << "<line x1='" << left << "' x2='" << W - right << "' y1='" << Y(std::pow(10, e)) << "' y2='" << Y(std::pow(10, e))
        << "' stroke='#ddd'/><text x='5' y='" << Y(std::pow(10, e)) + 4 << "'>1e" << int(e) << "</text>\n";
  svg << "<text x='" << (W - right) / 2 << "' y='" << H - 8 << "'>step (0 .. " << s_max << ")</text>\n";
  // Long runs: at most ~800 points per curve (every k-th row) so the file stays small.
  const size_t stride = std::max<size_t>(1, rows.size() / 800);
  for (size_t c = 0; c < columns.size(); ++c) {
    svg << "<polyline fill='none' stroke-width='1.2' stroke='" << colours[c % 8] << "' points='";
    for (size_t i = 0; i < rows.size(); i += stride)
      if (std::isfinite(rows[i].values[c]) && rows[i].values[c] > 0) svg << X(double(rows[i].step)) << "," << Y(rows[i].values[c]) << " ";
    svg << "'/>\n<text x='" << W - right + 8 << "' y='" << top + 16 * (c + 1) << "' fill='" << colours[c % 8] << "'>" << columns[c]
        << "</text>\n";
  }
  svg << "</svg>\n";
  write_text_atomic(path, svg.str());
}

// ---- checkpoint: model, optimizer and loop state, replaced as a whole ---------------------------
// DIR/checkpoint/ is written as DIR/checkpoint.tmp/ and swapped in with renames; when a crash
// falls between the renames, DIR/checkpoint.old/ is the valid one and resume takes it.

fs::path find_checkpoint(const fs::path& dir) {
  if (fs::exists(dir / "checkpoint" / "state.json")) return dir / "checkpoint";
  if (fs::exists(dir / "checkpoint.old" / "state.json")) return dir / "checkpoint.old";
  throw std::runtime_error("train_nyu --resume: no checkpoint in " + dir.string() + " (expected " +
                           (dir / "checkpoint" / "state.json").string() + ")");
}

void save_training_checkpoint(const fs::path& dir, const Model& model, const nn::Optimizer& opt, const nlohmann::json& state) {
  const fs::path tmp = dir / "checkpoint.tmp", cur = dir / "checkpoint", old = dir / "checkpoint.old";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  save_model((tmp / "model.safetensors").string(), model, {{"step", std::to_string(state.at("step").get<int64_t>())}});
  safetensors::write((tmp / "optimizer.safetensors").string(), opt.state_dict());
  write_text_atomic(tmp / "state.json", state.dump(2));
  fs::remove_all(old);
  if (fs::exists(cur)) fs::rename(cur, old);
  fs::rename(tmp, cur);
  fs::remove_all(old);
}

// ---- data ---------------------------------------------------------------------------------------

Batch to_model_batch(const data::Batch& b, Device device) {
  Batch out;
  out.frames = b.frames.to(device);
  out.t0 = b.t0;
  out.seg = b.seg.to(device);
  out.depth = b.depth.to(device);
  out.normal = b.normal.to(device);
  return out;
}

void dump_batch(const std::string& path, const data::Batch& b) {
  safetensors::write(path, {{"frames", b.frames},
                           {"t0", scalar_tensor(double(b.t0), {DType::Int64, Device::cpu()})},
                           {"seg", b.seg},
                           {"depth", b.depth},
                           {"normal", b.normal}},
                    {{"offset", std::to_string(b.offset)}, {"batch_index", std::to_string(b.index)}});
}

// ---- pictures and the constant baseline ----------------------------------------------------------

// One PNG per validation clip: the annotated frame and, per task, ground truth over prediction.
void write_pictures(Model& model, const data::VideoDataset& val, int64_t count, const fs::path& dir) {
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
    for (const TaskSpec& spec : model.config().tasks) {  // in the config's order
      const std::string& task = spec.name;
      const Tensor y = out.at(task).to(Device::cpu()).select(0, 0);
      if (task == "seg") {
        gt_row.push_back(data::segmentation_rgb(clip.seg));
        pred_row.push_back(data::segmentation_rgb(data::argmax_channels(y)));
      } else if (task == "depth") {
        // One range for both, from the ground truth, so that colours compare.
        const Tensor d = clip.depth.contiguous();
        double hi = 0;
        for (int64_t k = 0; k < d.numel(); ++k) hi = std::max(hi, double(d.data<float>()[k]));
        gt_row.push_back(data::depth_rgb(clip.depth, 0, hi));
        pred_row.push_back(data::depth_rgb(y, 0, hi));
      } else if (task == "normal") {
        gt_row.push_back(data::normal_rgb(clip.normal));
        pred_row.push_back(data::normal_rgb(y));
      }
    }
    char name[64];
    std::snprintf(name, sizeof name, "clip_%03lld.png", (long long)i);
    data::write_rgb_png((dir / name).string(), data::vstack_images({data::hstack_images(gt_row), data::hstack_images(pred_row)}));
  }
  model.train(was_training);
}

// The constant predictor a model has to beat: the most frequent training class, the mean
// training depth, the mean training normal direction, scored on the validation split as
// the model is (every sample; the offsets would only repeat the same pixels).
MetricResults constant_baseline(const data::VideoDataset& train, const data::VideoDataset& val, const Config& cfg) {
  const int64_t classes = std::max<int64_t>(cfg.task_channels("seg"), 1);
  std::vector<int64_t> class_count(size_t(classes), 0);
  double depth_sum = 0, normal_sum[3] = {0, 0, 0};
  int64_t depth_n = 0;
  for (int64_t i = 0; i < train.size(); ++i) {
    const data::ClipData c = train.load_clip(i, 0);
    const int64_t n = c.seg.numel();
    const int64_t* s = c.seg.contiguous().data<int64_t>();
    const Tensor dep = c.depth.contiguous(), nor = c.normal.contiguous();
    const float* d = dep.data<float>();
    const float* v = nor.data<float>();
    for (int64_t p = 0; p < n; ++p) {
      if (s[p] >= 0 && s[p] < classes) ++class_count[size_t(s[p])];
      if (d[p] > 0) depth_sum += d[p], ++depth_n;
      for (int k = 0; k < 3; ++k) normal_sum[k] += v[k * n + p];
    }
  }
  const int64_t best = std::max_element(class_count.begin(), class_count.end()) - class_count.begin();
  const double depth_mean = depth_n > 0 ? depth_sum / double(depth_n) : 1.0;
  MetricAccumulator acc(classes);
  for (int64_t i = 0; i < val.size(); ++i) {
    const data::ClipData c = val.load_clip(i, 0);
    const int64_t H = c.seg.size(0), W = c.seg.size(1);
    TaskOutputs out;
    for (const TaskSpec& t : cfg.tasks) {
      Tensor y = zeros({1, t.channels, H, W});
      if (t.name == "seg") copy_(y.select(1, best), full({1, H, W}, 1.0));
      if (t.name == "depth") y = full({1, 1, H, W}, depth_mean);
      if (t.name == "normal")
        for (int k = 0; k < 3; ++k) copy_(y.select(1, k), full({1, H, W}, normal_sum[k]));
      out[t.name] = y;
    }
    acc.add(out, c.seg.unsqueeze(0), c.depth.unsqueeze(0), c.normal.unsqueeze(0));
  }
  return acc.results();
}

// ---- the progress line -----------------------------------------------------------------------

std::string clock_text(double s) {
  char buf[32];
  const int64_t t = int64_t(std::max(0.0, s) + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(t / 3600), (long long)(t / 60 % 60), (long long)(t % 60));
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

class Progress {
 public:
  Progress(int64_t first, int64_t total, bool on) : first_(first), total_(total), on_(on), tty_(isatty(STDOUT_FILENO) != 0) {}
  void update(int64_t step, const std::vector<std::string>& names, const std::vector<double>& values, double fps,
              double elapsed) {
    if (!on_) return;
    const int64_t done = step + 1;
    const int64_t every = std::max<int64_t>(1, total_ / 50);
    if (!tty_ && done % every != 0 && done != total_) return;
    const double left = elapsed / double(done - first_) * double(total_ - done);
    const int width = 24, filled = int(width * done / std::max<int64_t>(total_, 1));
    std::string line = "[" + std::string(size_t(filled), '=') + std::string(size_t(width - filled), ' ') + "] " +
                       std::to_string(done) + "/" + std::to_string(total_);
    for (size_t i = 0; i < names.size(); ++i) {
      char buf[48];
      std::snprintf(buf, sizeof buf, " %s %.3f", names[i].c_str(), values[i]);
      line += buf;
    }
    char tail[96];
    std::snprintf(tail, sizeof tail, " | %.1f frames/s | %s left", fps, clock_text(left).c_str());
    line += tail;
    if (tty_) std::printf("\r%s\033[K", line.c_str());
    else std::printf("%s\n", line.c_str());
    if (tty_ && done == total_) std::printf("\n");
    std::fflush(stdout);
  }
  // Before other output on a terminal: end the progress line.
  void break_line() {
    if (on_ && tty_) std::printf("\n");
  }

 private:
  int64_t first_, total_;
  bool on_, tty_;
};

nlohmann::json results_json(const MetricResults& r) { return nlohmann::json::parse(metrics_json(r)); }

}  // namespace

std::string default_cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return (fs::path(x) / "mila-cpp").string();
  if (const char* h = std::getenv("HOME"); h && *h) return (fs::path(h) / ".cache" / "mila-cpp").string();
  return (fs::path(".cache") / "mila-cpp").string();
}

data::SyntheticConfig default_synthetic_config() {
  data::SyntheticConfig c;
  c.train_sequences = 80, c.val_sequences = 12;
  return c;
}

std::string synthetic_dataset_dir(const std::string& cache, const data::SyntheticConfig& config) {
  const std::string json = data::synthetic_config_json(config);
  return (fs::path(cache) / ("synthetic-" + std::to_string(config.height) + "x" + std::to_string(config.width) + "-" +
                             std::to_string(std::hash<std::string>{}(json) % 1000000007ull)))
      .string();
}

Config small_config() {
  Config cfg;
  cfg.slow_depth = 34;
  cfg.fast_depth = 18;
  cfg.width = 16;
  cfg.C = 64;
  cfg.D = 16;
  cfg.L = 5;
  cfg.K = 3;
  return cfg;
}

TrainSummary train_nyu(TrainOptions o) {
  const auto start = Clock::now();
  TrainSummary summary;
  if (o.threads > 0) set_num_threads(o.threads);

  // ---- resume: the run's own settings come back from its checkpoint
  nlohmann::json resumed;
  if (!o.resume.empty()) {
    o.out = o.resume;
    const fs::path ck = find_checkpoint(o.out);
    resumed = nlohmann::json::parse(read_text(ck / "state.json"));
    o.model = read_model_config((ck / "model.safetensors").string());
    const auto& saved = resumed.at("options");
    // What fixes the sequence of batches and updates must match, or "resume" would be a
    // different run; say which one differs.
    // `before`: the value of an option that older runs did not record.
    auto same = [&](const char* key, const nlohmann::json& now, const nlohmann::json& before = nullptr) {
      const nlohmann::json was = saved.contains(key) || before.is_null() ? saved.at(key) : before;
      if (was != now)
        throw std::invalid_argument(std::string("train_nyu --resume: --") + key + " " + now.dump() + " differs from the run's " +
                                    was.dump() + " (" + (ck / "state.json").string() + ")");
    };
    same("seed", o.seed), same("batch", o.batch), same("optimizer", o.optimizer), same("lr", o.lr);
    same("augment", o.augment), same("data", o.data), same("schedule", o.schedule);
    same("dataset", o.dataset, "nyu");  // runs before --dataset were NYUv2
  }
  const fs::path out(o.out);
  fs::create_directories(out);

  // ---- data
  std::string root = o.data;
  if (root.empty()) {
    const std::string cache = o.cache.empty() ? default_cache_dir() : o.cache;
    root = synthetic_dataset_dir(cache, o.synthetic);
    const auto t = Clock::now();
    if (data::ensure_synthetic_dataset(root, o.synthetic))
      std::printf("rendered the synthetic set into %s in %.1f s\n", root.c_str(), seconds_since(t));
    else
      std::printf("synthetic set: %s (cached)\n", root.c_str());
  }
  const int64_t seg_classes = std::max<int64_t>(o.model.task_channels("seg"), 1);
  std::unique_ptr<data::VideoDataset> train_set, val_set;
  if (o.dataset == "nyu") {
    train_set = std::make_unique<data::NyuVideoDataset>(root, "train", seg_classes);
    val_set = std::make_unique<data::NyuVideoDataset>(root, "val", seg_classes);
  } else if (o.dataset == "cityscapes") {
    if (o.data.empty()) throw std::invalid_argument("train_nyu: --dataset cityscapes needs --data (the Cityscapes root)");
    const data::CityscapesOptions co{seg_classes, o.frame_height, o.frame_width};
    train_set = std::make_unique<data::CityscapesDataset>(root, "train", co);
    val_set = std::make_unique<data::CityscapesDataset>(root, "val", co);
  } else {
    throw std::invalid_argument("train_nyu: --dataset must be nyu or cityscapes, got '" + o.dataset + "'");
  }
  const data::VideoDataset &train = *train_set, &val = *val_set;
  train.validate();
  val.validate();
  std::printf("data: %s (%s): train %lld annotated frames, val %lld, %lldx%lld\n", root.c_str(), o.dataset.c_str(),
              (long long)train.size(), (long long)val.size(), (long long)train.height(), (long long)train.width());

  // ---- model and optimizer
  o.model.validate();
  manual_seed(o.seed);
  Model model(o.model);
  for (const std::string& spec : o.init) {
    const nn::LoadReport r = init_from(model, spec);
    std::printf("init %s: %s\n", spec.c_str(), r.str().c_str());
  }
  model.to(o.device);
  model.train();
  std::vector<nn::ParamGroup> groups = {nn::ParamGroup{model.parameters(), o.lr, o.weight_decay}};
  std::unique_ptr<nn::Optimizer> opt;
  if (o.optimizer == "adam") opt = std::make_unique<nn::Adam>(groups, nn::AdamOptions{o.lr, 0.9, o.beta2, 1e-8, o.weight_decay});
  else if (o.optimizer == "sgd") opt = std::make_unique<nn::SGD>(groups, nn::SGDOptions{o.lr, o.momentum, 0, o.weight_decay, false});
  else throw std::invalid_argument("train_nyu: --optimizer must be adam or sgd, got '" + o.optimizer + "'");

  const data::TrainSampler sampler(train.size(), o.batch, o.model.K, o.seed);
  const int64_t per_epoch = sampler.batches_per_epoch();  // >= 1: the sampler refuses a batch larger than the split
  const int64_t total = o.steps > 0 ? o.steps : std::max<int64_t>(o.epochs, 1) * per_epoch;
  nn::LrSchedule schedule;
  schedule.total_steps = total;
  schedule.warmup_steps = o.warmup;
  if (o.schedule == "constant") schedule.kind = nn::LrSchedule::Kind::constant;
  else if (o.schedule == "step") schedule.kind = nn::LrSchedule::Kind::step, schedule.step_size = std::max<int64_t>(1, total / 3);
  else if (o.schedule == "cosine") schedule.kind = nn::LrSchedule::Kind::cosine;
  else if (o.schedule == "poly") schedule.kind = nn::LrSchedule::Kind::polynomial;
  else throw std::invalid_argument("train_nyu: --schedule must be constant, step, cosine or poly, got '" + o.schedule + "'");

  std::vector<std::string> task_names;
  for (const TaskSpec& t : o.model.tasks) task_names.push_back(t.name);
  DynamicWeightAverage dwa(task_names);

  int64_t first = 0;
  if (!resumed.is_null()) {
    const fs::path ck = find_checkpoint(out);
    const safetensors::Contents m = safetensors::read((ck / "model.safetensors").string());
    model.load_state_dict(nn::NamedTensors(m.tensors.begin(), m.tensors.end()), /*strict=*/true);
    const safetensors::Contents s = safetensors::read((ck / "optimizer.safetensors").string());
    opt->load_state_dict(nn::NamedTensors(s.tensors.begin(), s.tensors.end()));
    dwa.load_state_json(resumed.at("dwa").get<std::string>());
    first = resumed.at("step").get<int64_t>();
    std::printf("resuming %s at step %lld of %lld\n", ck.string().c_str(), (long long)first, (long long)total);
  }
  summary.first_step = first;
  summary.steps = total;

  std::vector<LogRow> rows = truncate_log(out / "log.csv", o.model, first);
  const std::vector<std::string> columns = loss_columns(o.model);
  nlohmann::json options_json = {{"seed", o.seed},       {"batch", o.batch},       {"optimizer", o.optimizer}, {"lr", o.lr},
                                 {"augment", o.augment}, {"data", o.data},         {"schedule", o.schedule},
                                 {"steps", total},       {"threads", o.threads}, {"dataset", o.dataset}};
  auto checkpoint = [&](int64_t step) {
    save_training_checkpoint(out, model, *opt, {{"step", step}, {"dwa", dwa.state_json()}, {"options", options_json}});
  };
  auto evaluate_now = [&](int64_t step, bool pictures) {
    const auto t = Clock::now();
    const MetricResults r = evaluate(model, val, EvalOptions{o.batch, o.workers, o.eval_samples, false});
    std::printf("%s", metrics_table(r, "validation, step " + std::to_string(step)).c_str());
    std::ofstream(out / "eval.jsonl", std::ios::app) << nlohmann::json{{"step", step}, {"metrics", results_json(r)}}.dump() << "\n";
    if (pictures && o.visualize > 0) {
      char name[32];
      std::snprintf(name, sizeof name, "step_%06lld", (long long)step);
      write_pictures(model, val, o.visualize, out / "vis" / name);
    }
    std::printf("evaluation took %.1f s\n", seconds_since(t));
    return r;
  };

  // ---- the loop
  data::TrainLoaderConfig lc;
  lc.batch_size = o.batch, lc.K = o.model.K, lc.seed = o.seed, lc.augment = o.augment, lc.workers = o.workers;
  lc.first_batch = first, lc.num_batches = total - first;
  std::unique_ptr<data::PrefetchLoader> loader = make_train_loader(train, lc);
  std::ofstream log(out / "log.csv", std::ios::app);
  Progress progress(first, total, o.progress);
  const auto loop_start = Clock::now();
  double frames_done = 0;
  std::printf("training %lld steps (%lld per epoch), batch %lld, %s lr %g, %s\n", (long long)total, (long long)per_epoch,
              (long long)o.batch, o.optimizer.c_str(), o.lr, o.device.str().c_str());
  for (int64_t step = first; step < total; ++step) {
    if (o.stop_after >= 0 && step - first >= o.stop_after) {
      summary.interrupted = true;
      return summary;
    }
    data::Batch b;
    if (!loader->next(b)) throw std::logic_error("train_nyu: the loader ended before step " + std::to_string(step));
    if (step == 0 && !o.dump_first_batch.empty()) dump_batch(o.dump_first_batch, b);
    const double lr_factor = schedule.factor(step);
    opt->scale_lr(lr_factor);

    const LossTerms terms = training_losses(model, to_model_batch(b, o.device), o.model.weighting == "dwa" ? &dwa : nullptr);
    std::vector<double> values = {terms.total.item<double>()};
    for (const std::string& t : task_names) values.push_back(terms.task.at(t).item<double>());
    if (o.model.mimic) values.push_back(terms.l1.item<double>()), values.push_back(terms.disc.item<double>());
    for (size_t i = 0; i < values.size(); ++i)
      if (!std::isfinite(values[i])) {
        progress.break_line();
        throw NonFiniteLoss("train_nyu: step " + std::to_string(step) + ": loss term '" + columns[i] + "' is " + fmt(values[i]) +
                            "; stopped without saving: the last good checkpoint is " + (out / "checkpoint").string());
      }
    opt->zero_grad();
    terms.total.backward();
    if (o.clip_grad > 0) nn::clip_grad_norm(model.parameters(), o.clip_grad);
    opt->step();
    for (size_t i = 0; i < task_names.size(); ++i) dwa.record(task_names[i], values[1 + i]);
    if ((step + 1) % per_epoch == 0) dwa.end_epoch();

    frames_done += double(b.frames.size(0) * b.frames.size(1));
    const double elapsed = seconds_since(loop_start), fps = frames_done / std::max(elapsed, 1e-9);
    log << step << "," << step / per_epoch << "," << fmt(o.lr * lr_factor);
    for (double v : values) log << "," << fmt(v);
    log << "," << fmt(elapsed) << "," << fmt(fps) << "\n";
    log.flush();
    rows.push_back({step, values});
    progress.update(step, columns, values, fps, elapsed);

    const bool last = step + 1 == total;
    if ((o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0) || last) {
      checkpoint(step + 1);
      write_loss_plot(out / "loss.svg", columns, rows);
    }
    if (o.eval_every > 0 && (step + 1) % o.eval_every == 0 && !last) {
      progress.break_line();
      evaluate_now(step + 1, true);
    }
  }
  loader.reset();
  if (first == total) checkpoint(total);  // nothing to do, but leave a consistent folder
  save_model((out / "model.safetensors").string(), model, {{"step", std::to_string(total)}});
  write_loss_plot(out / "loss.svg", columns, rows);
  std::printf("trained steps %lld..%lld in %s; model: %s\n", (long long)first, (long long)total,
              clock_text(seconds_since(loop_start)).c_str(), (out / "model.safetensors").string().c_str());

  if (o.final_eval) {
    summary.metrics = evaluate_now(total, true);
    summary.baseline = constant_baseline(train, val, o.model);
    summary.evaluated = true;
    const std::string table = metrics_table(summary.metrics, "MILA, validation, step " + std::to_string(total)) +
                              metrics_table(summary.baseline, "constant prediction (majority class, mean depth, mean normal)");
    std::printf("%s", table.c_str());
    write_text_atomic(out / "metrics.txt", table);
    std::printf("pictures: %s\n", (out / "vis").string().c_str());
  }
  std::printf("log: %s, curves: %s\n", (out / "log.csv").string().c_str(), (out / "loss.svg").string().c_str());
  summary.seconds = seconds_since(start);
  return summary;
}

}  // namespace mila
