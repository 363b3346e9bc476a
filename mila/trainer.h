// trainer.h - the training program behind examples/train_nyu, as a library (Trainer, and
// train_nyu() that runs it) so that tests can run it (resume exactness, bad input) and other
// programs can reuse it.
//
// One run, in order (Trainer::run):
//   1. setup: --data DIR (NYUv2-video layout, SPEC 5), or the synthetic set rendered once into
//      a cache folder named after its configuration; both splits validated before training.
//      The model: the Config (JSON file or the built-in small one), seeded initialization,
//      then the --init files (a MILA checkpoint, or slow=/fast= ResNet classifiers); the
//      optimizer and learning-rate schedule.
//   2. step, until the last: a batch from the prefetching loader (SPEC 4.4 sampling),
//      training_losses(), backward, optional gradient clipping, optimizer step, schedule.
//      Note [divergence] (mila/divergence.h): a loss term or the gradient norm that is NaN
//      or infinite, or a total loss past --max-loss-factor times the run's first, stops the
//      run naming the step and the term, before the update and before anything is saved.
//   3. save every checkpoint_every steps and after the last; evaluate every eval_every steps
//      and at the end. A save first checks that every model and optimizer tensor is finite.
//   The output folder: log.csv (every term per step) and loss.svg (the curves; mila/run_log.h),
//   checkpoint-<step>/ (model, optimizer and loop state; mila/run_checkpoint.h's Note
//   [checkpoint rotation]), model.safetensors (the final model, for examples/predict),
//   eval.jsonl and metrics.txt (SPEC 4.5 on the validation split, next to a constant-prediction
//   baseline: mila/baseline.h), vis/ (pictures of a few validation clips: input, ground truth
//   and prediction per task; mila/pictures.h). Every write is checked: one that fails stops
//   the run with a WriteError naming the file and the cause (mila/durable_io.h).
//
// Resume (--resume DIR): the run's settings (mila/run_settings.h: fixed ones may not change,
// a few adjustable ones may), model, optimizer, DWA state and the step come back from DIR's
// newest complete checkpoint; log rows from that step on are dropped; the loader's batches
// are a pure function of (seed, batch index), so on the CPU, with the same thread count, the
// resumed run logs exactly the losses an uninterrupted run logs and ends with the same bytes.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/loader.h"
#include "data/synthetic.h"
#include "data/video_dataset.h"
#include "mila/config.h"
#include "mila/divergence.h"
#include "mila/metrics.h"
#include "mila/names.h"
#include "mila/progress.h"
#include "mila/run_log.h"
#include "mila/train.h"
#include "nn/optim.h"
#include "tensor/device.h"

namespace mila {

// The optimizers train_nyu offers (--optimizer; the names are also saved in the checkpoint).
enum class OptimizerKind { adam, sgd };
inline constexpr NameTable<OptimizerKind, 2> kOptimizerNames{"--optimizer",
                                                             {{{OptimizerKind::adam, "adam"}, {OptimizerKind::sgd, "sgd"}}}};

// The learning-rate schedules (--schedule): nn::LrSchedule's kinds under train_nyu's names.
using ScheduleKind = nn::LrSchedule::Kind;
inline constexpr NameTable<ScheduleKind, 4> kScheduleNames{"--schedule",
                                                           {{{ScheduleKind::constant, "constant"},
                                                             {ScheduleKind::step, "step"},
                                                             {ScheduleKind::cosine, "cosine"},
                                                             {ScheduleKind::polynomial, "poly"}}}};

struct TrainOptions {
  // data
  std::string data;          // the dataset's root; empty: the synthetic set (NYUv2-video layout)
  std::string dataset = "nyu";  // the layout of `data`: nyu (SPEC 5's NYUv2-video) | cityscapes
  int64_t frame_height = 0, frame_width = 0;  // cityscapes: resize on load (0: as stored)
  std::string cache;         // where the synthetic set is rendered; empty: default_cache_dir()
  data::SyntheticConfig synthetic;
  // model
  Config model;              // model and loss configuration
  std::vector<std::string> init;  // "FILE", "slow=FILE", "fast=FILE" (mila/checkpoint.h)
  // optimization
  int64_t steps = 0;         // total steps; 0: take epochs
  int64_t epochs = 0;        // total epochs when steps == 0 (an epoch: size / batch batches)
  int64_t batch = 4;
  OptimizerKind optimizer = OptimizerKind::adam;
  double lr = 1e-4;
  double momentum = 0.9;     // sgd
  double weight_decay = 0;
  double beta2 = 0.99;       // adam (the paper's betas (0.9, 0.99))
  ScheduleKind schedule = ScheduleKind::constant;  // step: decays by 10 every third of the run
  int64_t warmup = 0;        // linear warm-up steps
  double clip_grad = 0;      // max gradient norm; 0: off
  bool augment = true;
  uint64_t seed = 0;
  int threads = 0;           // OpenMP threads; 0: the runtime's default
  int workers = 2;           // loader threads
  Device device = Device::cpu();
  // output
  std::string out = "runs/train_nyu";
  std::string resume;        // a previous run's out folder: continue it (out becomes this)
  int64_t checkpoint_every = 100;
  int64_t eval_every = 0;    // 0: only at the end
  int64_t eval_samples = -1; // validation samples per evaluation (-1: all)
  int64_t visualize = 4;     // validation clips drawn per evaluation
  std::string dump_first_batch;  // safetensors file for the first training batch
  double max_loss_factor = 100;  // Note [divergence]; 0: no bound
  bool progress = true;      // the progress line (a line per ~2% when not a terminal)
  bool final_eval = true;
  int64_t stop_after = -1;   // tests: stop after this many steps as if killed (no save)
  // The flags the command line gave ("--lr"): a resumed run takes every other setting from
  // its checkpoint, and refuses a given one that would change the run (mila/run_settings.h).
  std::vector<std::string> flags_given;
};

struct TrainSummary {
  int64_t first_step = 0, steps = 0;  // this run did steps [first_step, steps)
  double seconds = 0;
  bool interrupted = false;           // stop_after ended the run
  bool evaluated = false;
  MetricResults metrics, baseline;    // at the end (when final_eval), and the constant baseline
};

// $XDG_CACHE_HOME/mila-cpp or ~/.cache/mila-cpp (./.cache/mila-cpp without a home).
std::string default_cache_dir();
// The synthetic set train_nyu renders without --data: 80 training sequences (320 annotated
// frames) and 12 validation ones, rather than data/synthetic.h's 24 training sequences,
// which the small model overfits.
data::SyntheticConfig default_synthetic_config();
// Where the synthetic set `config` is rendered under `cache`:
// <cache>/synthetic-<H>x<W>-<hash of the config's JSON>, one folder per configuration.
std::string synthetic_dataset_dir(const std::string& cache, const data::SyntheticConfig& config);
// The model configuration train_nyu uses without --config: fast to train on 2 cores
// (Slow ResNet-34 and Fast ResNet-18 at width 16, C 64, D 16, L 5, K 3).
Config small_config();

// One training run of TrainOptions, in the parts run() takes in order; a caller may drive the
// parts itself (setup() once, then step() while steps remain, save() and evaluate() between).
class Trainer {
 public:
  explicit Trainer(TrainOptions options);
  ~Trainer();

  // Everything the first step needs: a resumed run's own settings and state, the data, the
  // model, optimizer and schedule, the log, the loader.
  void setup();
  // One training step: the next batch, the loss terms, backward, the update, the log row and
  // the progress line; Diverged before the update when Note [divergence] says so.
  void step();
  // The checkpoint after the steps so far (Note [checkpoint rotation]) and the plot; Diverged,
  // with nothing written, when a model or optimizer tensor is not finite.
  void save();
  // SPEC 4.5's metrics on the validation split after the steps so far: printed, appended to
  // eval.jsonl, and pictures of the first clips under vis/step_N.
  MetricResults evaluate();
  // The whole run: setup(), the steps with their saves and evaluations, then finish().
  TrainSummary run();
  // The model being trained (after setup()).
  Model& model() { return *model_; }

 private:
  // The checkpoint a resumed run continues.
  struct Resumed {
    std::filesystem::path dir;
    int64_t step = 0, total = 0;
    double first_loss = 0;
    std::string dwa;
  };
  // setup()'s parts, in order.
  void resume_settings();     // a resumed run: its settings and state from its checkpoint, checked
  void open_data();           // the splits (the synthetic set rendered when needed), validated
  void build_model();         // model, optimizer, the run's length and schedule, DWA
  void restore_checkpoint();  // a resumed run: model, optimizer and DWA state, the first step
  void start_loop();          // the loader, the progress line, the loop's clock
  std::vector<double> loss_values(const LossTerms& terms) const;  // in log column order
  // Note [divergence]: throws Diverged naming the step, `what`, and the last good checkpoint.
  [[noreturn]] void diverged(int64_t step, const std::string& what, const std::string& consequence) const;
  // After the last step: the final model, and the final metrics next to the constant baseline.
  TrainSummary finish();

  using Clock = std::chrono::steady_clock;
  TrainOptions options_;
  std::filesystem::path out_;
  std::optional<Resumed> resumed_;      // none: a new run
  std::filesystem::path last_checkpoint_;  // the newest this run wrote or resumed; empty: none yet
  Clock::time_point start_, loop_start_;
  std::unique_ptr<data::VideoDataset> train_, val_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<nn::Optimizer> optimizer_;
  nn::LrSchedule schedule_;
  std::vector<std::string> task_names_;
  DynamicWeightAverage dwa_{std::vector<std::string>{}};  // built for the config's tasks in build_model()
  int64_t per_epoch_ = 1;
  int64_t first_ = 0, total_ = 0;  // this run does steps [first_, total_)
  int64_t step_ = 0;               // the next step to run: the steps done so far
  double frames_done_ = 0;
  double first_loss_ = 0;  // the run's first total loss: Note [divergence]'s reference
  std::unique_ptr<RunLog> log_;
  std::unique_ptr<data::PrefetchLoader> loader_;
  std::unique_ptr<ProgressLine> progress_;
  TrainSummary summary_;
};

// Trainer(options).run().
TrainSummary train_nyu(TrainOptions options);

}  // namespace mila
