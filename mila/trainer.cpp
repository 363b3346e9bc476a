// trainer.cpp - see trainer.h. The defaults train_nyu runs with, the data helpers, then the
// Trainer in the order of a run: setup, step, save, evaluate, run, finish.
#include "mila/trainer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "data/cityscapes.h"
#include "data/nyu.h"
#include "mila/baseline.h"
#include "mila/checkpoint.h"
#include "mila/durable_io.h"
#include "mila/evaluate.h"
#include "mila/options_check.h"
#include "mila/pictures.h"
#include "mila/run_checkpoint.h"
#include "mila/run_settings.h"
#include "nn/safetensors.h"
#include "ops/factory.h"
#include "ops/threads.h"

namespace fs = std::filesystem;

namespace mila {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

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

// ---- setup ------------------------------------------------------------------------------------

Trainer::Trainer(TrainOptions options) : options_(std::move(options)), start_(Clock::now()) {}
Trainer::~Trainer() = default;

void Trainer::setup() {
  check_train_options(options_);  // every option before any work: mila/options_check.h
  if (!options_.resume.empty()) {
    resume_settings();
  } else if (const std::optional<fs::path> found = latest_checkpoint(options_.out)) {
    // Starting over would replace that run's checkpoints: never silently.
    throw std::invalid_argument("train_nyu: " + options_.out + " holds a run already (" + found->string() + "): --resume " +
                                options_.out + " continues it, another --out starts a new one");
  }
  if (options_.threads > 0) set_num_threads(options_.threads);
  out_ = options_.out;
  fs::create_directories(out_);
  open_data();
  check_training_run(options_, *train_);  // the run's length and memory, at the data's frame size
  build_model();
  if (resumed_) restore_checkpoint();
  summary_.first_step = first_;
  summary_.steps = total_;
  log_ = std::make_unique<RunLog>(out_ / "log.csv", options_.model, first_);
  start_loop();
}

// A resumed run's settings and loop state come back from its newest complete checkpoint,
// checked before anything of the run's folder is touched.
void Trainer::resume_settings() {
  std::vector<std::string> passed_over;
  const std::optional<fs::path> found = latest_checkpoint(options_.resume, &passed_over);
  for (const std::string& why : passed_over) std::printf("passed over %s\n", why.c_str());
  if (!found)
    throw std::runtime_error("train_nyu --resume: no checkpoint in " + options_.resume + " (expected a complete " +
                             (fs::path(options_.resume) / "checkpoint-<step>").string() + " folder)");
  const fs::path state_file = *found / "state.json";
  Resumed r;
  r.dir = *found;
  nlohmann::json run;
  try {
    const nlohmann::json state = nlohmann::json::parse(read_text(state_file));
    r.step = state.at("step").get<int64_t>();
    r.total = state.at("total_steps").get<int64_t>();
    r.first_loss = state.at("first_loss").get<double>();
    r.dwa = state.at("dwa").get<std::string>();
    run = state.at("run");
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("train_nyu --resume: " + state_file.string() + ": " + e.what());
  }
  if (r.step < 0 || r.total < 1 || r.step > r.total)
    throw std::runtime_error("train_nyu --resume: " + state_file.string() + " says step " + std::to_string(r.step) +
                             " of a " + std::to_string(r.total) + "-step run: a checkpoint's step lies in 0.." +
                             std::to_string(r.total) + "; refusing to resume from it");
  if (found->filename() != checkpoint_name(r.step))
    throw std::runtime_error("train_nyu --resume: " + state_file.string() + " says step " + std::to_string(r.step) +
                             " but lies in " + found->filename().string() + "; refusing to resume from it");
  restore_run_settings(options_, run, state_file.string());
  resumed_ = r;
  last_checkpoint_ = *found;
}

void Trainer::open_data() {
  std::string root = options_.data;
  if (root.empty()) {
    const std::string cache = options_.cache.empty() ? default_cache_dir() : options_.cache;
    root = synthetic_dataset_dir(cache, options_.synthetic);
    const auto t = Clock::now();
    if (data::ensure_synthetic_dataset(root, options_.synthetic))
      std::printf("rendered the synthetic set into %s in %.1f s\n", root.c_str(), seconds_since(t));
    else
      std::printf("synthetic set: %s (cached)\n", root.c_str());
  }
  const int64_t seg_classes = std::max<int64_t>(options_.model.task_channels(Task::seg), 1);
  if (options_.dataset == "nyu") {
    train_ = std::make_unique<data::NyuVideoDataset>(root, "train", seg_classes);
    val_ = std::make_unique<data::NyuVideoDataset>(root, "val", seg_classes);
  } else if (options_.dataset == "cityscapes") {
    if (options_.data.empty())
      throw std::invalid_argument("train_nyu: --dataset cityscapes needs --data (the Cityscapes root)");
    const data::CityscapesOptions co{seg_classes, options_.frame_height, options_.frame_width};
    train_ = std::make_unique<data::CityscapesDataset>(root, "train", co);
    val_ = std::make_unique<data::CityscapesDataset>(root, "val", co);
  } else {
    throw std::invalid_argument("train_nyu: --dataset must be nyu or cityscapes, got '" + options_.dataset + "'");
  }
  train_->validate();
  val_->validate();
  std::printf("data: %s (%s): train %lld annotated frames, val %lld, %lldx%lld\n", root.c_str(), options_.dataset.c_str(),
              (long long)train_->size(), (long long)val_->size(), (long long)train_->height(), (long long)train_->width());
}

// The model (seeded, then the --init files), the optimizer, the run's length and schedule.
void Trainer::build_model() {
  options_.model.validate();
  manual_seed(options_.seed);
  model_ = std::make_unique<Model>(options_.model);
  for (const std::string& spec : options_.init) {
    const nn::LoadReport r = init_from(*model_, spec);
    std::printf("init %s: %s\n", spec.c_str(), r.str().c_str());
  }
  model_->to(options_.device);
  model_->train();
  const double lr = options_.lr, decay = options_.weight_decay;
  std::vector<nn::ParamGroup> groups = {nn::ParamGroup{model_->parameters(), lr, decay}};
  switch (options_.optimizer) {
    case OptimizerKind::adam:
      optimizer_ = std::make_unique<nn::Adam>(groups, nn::AdamOptions{lr, 0.9, options_.beta2, 1e-8, decay});
      break;
    case OptimizerKind::sgd:
      optimizer_ = std::make_unique<nn::SGD>(groups, nn::SGDOptions{lr, options_.momentum, 0, decay, false});
      break;
  }

  const data::TrainSampler sampler(train_->size(), options_.batch, options_.model.K, options_.seed);
  per_epoch_ = sampler.batches_per_epoch();  // >= 1: the sampler refuses a batch larger than the split
  total_ = options_.steps > 0 ? options_.steps : std::max<int64_t>(options_.epochs, 1) * per_epoch_;
  schedule_.kind = options_.schedule;
  schedule_.total_steps = total_;
  schedule_.warmup_steps = options_.warmup;
  if (options_.schedule == ScheduleKind::step) schedule_.step_size = std::max<int64_t>(1, total_ / 3);

  for (const TaskSpec& t : options_.model.tasks) task_names_.push_back(t.name());
  dwa_ = DynamicWeightAverage(task_names_);
}

void Trainer::restore_checkpoint() {
  const fs::path& dir = resumed_->dir;
  if (total_ != resumed_->total)
    throw std::runtime_error("train_nyu --resume: the run has " + std::to_string(resumed_->total) + " steps, its settings now give " +
                             std::to_string(total_) + " (has the training split changed?)");
  const safetensors::Contents m = safetensors::read((dir / "model.safetensors").string());
  model_->load_state_dict(nn::NamedTensors(m.tensors.begin(), m.tensors.end()), /*strict=*/true);
  const safetensors::Contents s = safetensors::read((dir / "optimizer.safetensors").string());
  optimizer_->load_state_dict(nn::NamedTensors(s.tensors.begin(), s.tensors.end()));
  dwa_.load_state_json(resumed_->dwa);
  first_loss_ = resumed_->first_loss;
  first_ = step_ = resumed_->step;
  std::printf("resuming %s at step %lld of %lld\n", dir.string().c_str(), (long long)first_, (long long)total_);
}

// The loader from the first step on, the progress line and the loop's clock.
void Trainer::start_loop() {
  data::TrainLoaderConfig lc;
  lc.batch_size = options_.batch, lc.K = options_.model.K, lc.seed = options_.seed;
  lc.augment = options_.augment, lc.workers = options_.workers;
  lc.first_batch = first_, lc.num_batches = total_ - first_;
  loader_ = make_train_loader(*train_, lc);
  progress_ = std::make_unique<ProgressLine>(first_, total_, options_.progress);
  loop_start_ = Clock::now();
  std::printf("training %lld steps (%lld per epoch), batch %lld, %s lr %g, %s\n", (long long)total_, (long long)per_epoch_,
              (long long)options_.batch, kOptimizerNames.name(options_.optimizer).c_str(), options_.lr,
              options_.device.str().c_str());
}

// ---- the loop -----------------------------------------------------------------------------------

void Trainer::diverged(int64_t step, const std::string& what, const std::string& consequence) const {
  progress_->break_line();
  throw Diverged("train_nyu: step " + std::to_string(step) + ": " + what + "; " + consequence + ": the last good checkpoint is " +
                 (last_checkpoint_.empty() ? "none (none was written)" : last_checkpoint_.string()));
}

// The terms in the log's column order: total, each task, then l1 and disc with mimic.
std::vector<double> Trainer::loss_values(const LossTerms& terms) const {
  std::vector<double> values = {terms.total.item<double>()};
  for (const std::string& t : task_names_) values.push_back(terms.task.at(t).item<double>());
  if (options_.model.mimic) values.push_back(terms.l1.item<double>()), values.push_back(terms.disc.item<double>());
  return values;
}

void Trainer::step() {
  data::Batch b;
  if (!loader_->next(b)) throw std::logic_error("train_nyu: the loader ended before step " + std::to_string(step_));
  if (step_ == 0 && !options_.dump_first_batch.empty()) dump_batch(options_.dump_first_batch, b);
  const double lr_factor = schedule_.factor(step_);
  optimizer_->scale_lr(lr_factor);

  const DynamicWeightAverage* dwa = options_.model.weighting == Weighting::dwa ? &dwa_ : nullptr;
  const LossTerms terms = training_losses(*model_, to_model_batch(b, options_.device), dwa);
  const std::vector<double> values = loss_values(terms);
  if (step_ == 0) first_loss_ = values[0];
  if (const std::string why = loss_divergence(log_->columns(), values, first_loss_, options_.max_loss_factor); !why.empty())
    diverged(step_, why, "stopped without saving");
  optimizer_->zero_grad();
  terms.total.backward();
  const std::vector<Tensor> params = model_->parameters();
  const double grad_norm = options_.clip_grad > 0 ? nn::clip_grad_norm(params, options_.clip_grad) : nn::grad_norm(params);
  if (!std::isfinite(grad_norm))
    diverged(step_, "the gradient norm is " + exact_text(grad_norm) + " (the loss terms were finite)",
             "stopped before the update, nothing saved");
  optimizer_->step();
  for (size_t i = 0; i < task_names_.size(); ++i) dwa_.record(task_names_[i], values[1 + i]);
  if ((step_ + 1) % per_epoch_ == 0) dwa_.end_epoch();

  frames_done_ += double(b.frames.size(0) * b.frames.size(1));
  const double elapsed = seconds_since(loop_start_), fps = frames_done_ / std::max(elapsed, 1e-9);
  log_->append(step_, step_ / per_epoch_, options_.lr * lr_factor, values, elapsed, fps);
  progress_->update(step_, log_->columns(), values, fps, elapsed);
  ++step_;
}

void Trainer::save() {
  for (const auto& [what, tensors] : {std::pair{"model", model_->state_dict()}, std::pair{"optimizer", optimizer_->state_dict()}})
    if (const std::string bad = first_non_finite(tensors); !bad.empty())
      diverged(step_ - 1, std::string("after the update, the ") + what + "'s tensor " + bad + " is not finite",
               "the checkpoint was not written");
  log_->sync();  // the rows before the checkpoint are on disk no later than it is
  const nlohmann::json state = {{"step", step_},
                                {"total_steps", total_},
                                {"first_loss", first_loss_},
                                {"dwa", dwa_.state_json()},
                                {"run", run_settings_json(options_)}};
  last_checkpoint_ = commit_checkpoint(out_, step_, [&](const fs::path& dir) {
    // safetensors::write makes its file durably itself (a temporary file, fsync, rename); its
    // calls are not crash points, but a kill inside it leaves this unfinished folder just as
    // a kill at the crash point before it does.
    crash_point();
    save_model((dir / "model.safetensors").string(), *model_, {{"step", std::to_string(step_)}});
    crash_point();
    safetensors::write((dir / "optimizer.safetensors").string(), optimizer_->state_dict());
    write_file_durably(dir / "state.json", state.dump(2) + "\n");
  });
  log_->write_plot(out_ / "loss.svg");
}

MetricResults Trainer::evaluate() {
  const auto t = Clock::now();
  const EvalOptions eval_options{options_.batch, options_.workers, options_.eval_samples, /*verbose=*/false};
  const MetricResults r = mila::evaluate(*model_, *val_, eval_options);
  std::printf("%s", metrics_table(r, "validation, step " + std::to_string(step_)).c_str());
  const nlohmann::json line = {{"step", step_}, {"metrics", results_json(r)}};
  AppendFile(out_ / "eval.jsonl").append(line.dump() + "\n");
  if (options_.visualize > 0) {
    char name[32];
    std::snprintf(name, sizeof name, "step_%06lld", (long long)step_);
    write_validation_pictures(*model_, *val_, options_.visualize, (out_ / "vis" / name).string());
  }
  std::printf("evaluation took %.1f s\n", seconds_since(t));
  return r;
}

TrainSummary Trainer::run() {
  setup();
  auto due = [&](int64_t every) { return every > 0 && step_ % every == 0; };
  while (step_ < total_) {
    if (options_.stop_after >= 0 && step_ - first_ >= options_.stop_after) {  // as if killed: nothing saved
      summary_.interrupted = true;
      return summary_;
    }
    step();
    const bool last = step_ == total_;
    if (due(options_.checkpoint_every) || last) save();
    if (due(options_.eval_every) && !last) {
      progress_->break_line();
      evaluate();
    }
  }
  return finish();
}

// The final model, and with final_eval the metrics next to the constant baseline.
TrainSummary Trainer::finish() {
  loader_.reset();
  if (first_ == total_) save();  // nothing to do, but leave a consistent folder
  crash_point();  // as in save(): safetensors::write's own calls are not crash points
  save_model((out_ / "model.safetensors").string(), *model_, {{"step", std::to_string(total_)}});
  sync_directory(out_);
  std::printf("trained steps %lld..%lld in %s; model: %s\n", (long long)first_, (long long)total_,
              clock_text(seconds_since(loop_start_)).c_str(), (out_ / "model.safetensors").string().c_str());
  if (options_.final_eval) {
    summary_.metrics = evaluate();
    summary_.baseline = constant_baseline(*train_, *val_, options_.model);
    summary_.evaluated = true;
    const std::string table = metrics_table(summary_.metrics, "MILA, validation, step " + std::to_string(total_)) +
                              metrics_table(summary_.baseline, "constant prediction (majority class, mean depth, mean normal)");
    std::printf("%s", table.c_str());
    write_text_atomic(out_ / "metrics.txt", table);
    std::printf("pictures: %s\n", (out_ / "vis").string().c_str());
  }
  std::printf("log: %s, curves: %s\n", (out_ / "log.csv").string().c_str(), (out_ / "loss.svg").string().c_str());
  summary_.seconds = seconds_since(start_);
  return summary_;
}

TrainSummary train_nyu(TrainOptions options) { return Trainer(std::move(options)).run(); }

}  // namespace mila
