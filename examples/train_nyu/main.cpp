// train_nyu - trains MILA on NYUv2-style video (SPEC 4.4, 5) and reports SPEC 4.5's metrics.
//
//   ./build/train_nyu                                   the synthetic set, the small model
//   ./build/train_nyu --data /data/nyuv2_video --config examples/train_nyu/configs/paper.json
//        --init slow=resnet101.safetensors --init fast=resnet18.safetensors --epochs 50   (one line)
//   ./build/train_nyu --resume runs/train_nyu           continue an interrupted run (its own settings)
//
// Everything the run does is in mila/trainer.h; this file only turns flags into options.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "examples/flag_checks.h"
#include "mila/trainer.h"
#include "ops/threads.h"

using namespace mila;

// An option that takes one of a name table's names and stores its value (the names, their
// prose for the help and the check come from the table).
template <typename Enum, size_t N>
CLI::Option* add_name_option(CLI::App& app, const std::string& flag, Enum& value, const NameTable<Enum, N>& table) {
  return app.add_option_function<std::string>(flag, [&value, &table](const std::string& name) { value = table.parse(name); },
                                              table.alternatives())
      ->check(CLI::IsMember(table.names()))
      ->default_str(table.name(value));
}

int main(int argc, char** argv) {
  reexec_with_passive_omp_wait(argv);  // Note [OpenMP wait policy] in ops/threads.h
  TrainOptions o;
  o.model = small_config();
  o.lr = 1e-3;  // from scratch, the small model learns far faster than at the paper's 1e-4
  std::string config_file, device = "cpu";
  bool no_augment = false, quiet = false;
  o.synthetic = default_synthetic_config();
  int64_t height = o.synthetic.height, width = o.synthetic.width;
  std::string frame_size;

  CLI::App app{"Train MILA (multi-task video model) on NYUv2-style video; without --data on a synthetic set"};
  app.add_option("--data", o.data, "dataset root (NYUv2-video: train/ and val/, SPEC 5); default: render the synthetic set");
  app.add_option("--dataset", o.dataset, "layout of --data: nyu or cityscapes (the official layout; seg 19 or 7, depth)")
      ->check(CLI::IsMember({"nyu", "cityscapes"}))
      ->capture_default_str();
  app.add_option("--frame-size", frame_size, "cityscapes: resize frames on load to HxW, e.g. 256x512 (default: as stored)");
  app.add_option("--cache", o.cache, "where the synthetic set is rendered (default " + default_cache_dir() + ")");
  app.add_option("--config", config_file, "model configuration (JSON, SPEC 4 fields); default: the small configuration");
  namespace r = train_ranges;  // the same ranges the library checks (mila/options_check.h)
  auto* steps = app.add_option("--steps", o.steps, "training steps (default 1800)")->check(within(integers(1, kMaxSteps)));
  app.add_option("--epochs", o.epochs, "training epochs (instead of --steps)")
      ->check(within(integers(1, kMaxSteps)))
      ->excludes(steps);
  app.add_option("--batch", o.batch, "clips per batch")->check(within(r::batch))->capture_default_str();
  app.add_option("--lr", o.lr, "learning rate")->check(within(r::lr))->capture_default_str();
  add_name_option(app, "--optimizer", o.optimizer, kOptimizerNames);
  app.add_option("--momentum", o.momentum, "SGD momentum")->check(within(r::momentum))->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay, "weight decay (L2, PyTorch's)")->check(within(r::weight_decay))->capture_default_str();
  add_name_option(app, "--schedule", o.schedule, kScheduleNames);
  app.add_option("--warmup", o.warmup, "linear warm-up steps")->check(within(r::warmup))->capture_default_str();
  app.add_option("--clip-grad", o.clip_grad, "clip the gradient norm to this value (0: off)")
      ->check(within(r::clip_grad))
      ->capture_default_str();
  app.add_flag("--no-augment", no_augment, "no scale/crop/flip/colour augmentation");
  app.add_option("--seed", o.seed, "random seed (initialization, sampling, augmentation)")
      ->check(within(r::seed))
      ->capture_default_str();
  app.add_option("--threads", o.threads, "OpenMP threads (0: the runtime's default)")->check(within(r::threads))->capture_default_str();
  app.add_option("--workers", o.workers, "data loader threads")->check(within(r::workers))->capture_default_str();
  app.add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  app.add_option("--init", o.init, "initial weights: FILE (MILA), slow=FILE or fast=FILE (ResNet); repeatable");
  app.add_option("--resume", o.resume,
                 "continue the run whose --out folder this is, with its own settings (docs/train_nyu.md: what may change)");
  app.add_option("--out", o.out, "output folder")->capture_default_str();
  app.add_option("--checkpoint-every", o.checkpoint_every, "steps between checkpoints")
      ->check(within(r::checkpoint_every))
      ->capture_default_str();
  app.add_option("--eval-every", o.eval_every, "steps between evaluations (0: at the end only)")
      ->check(within(r::eval_every))
      ->capture_default_str();
  // -1 or a positive count: the library's check (mila/options_check.h) says so by name.
  app.add_option("--eval-samples", o.eval_samples, "validation samples per evaluation (-1: all)")->capture_default_str();
  app.add_option("--visualize", o.visualize, "validation clips drawn per evaluation")->check(within(r::visualize))->capture_default_str();
  app.add_option("--dump-first-batch", o.dump_first_batch, "write the first training batch (safetensors)");
  app.add_option("--height", height, "synthetic frames' height")->check(within(r::frame_side))->capture_default_str();
  app.add_option("--width", width, "synthetic frames' width")->check(within(r::frame_side))->capture_default_str();
  app.add_option("--train-sequences", o.synthetic.train_sequences, "synthetic training sequences")
      ->check(within(r::sequences))
      ->capture_default_str();
  app.add_option("--val-sequences", o.synthetic.val_sequences, "synthetic validation sequences")
      ->check(within(r::sequences))
      ->capture_default_str();
  app.add_option("--max-loss-factor", o.max_loss_factor,
                 "stop when the total loss exceeds this times max(|first step's|, 1) (0: never)")
      ->check(within(r::max_loss_factor))
      ->capture_default_str();
  app.add_flag("--quiet", quiet, "no progress line");
  CLI11_PARSE(app, argc, argv);
  for (const CLI::Option* option : app.get_options())  // a resume keeps the run's own value of every other one
    if (option->count() > 0) o.flags_given.push_back(option->get_name());

  try {
    if (o.steps == 0 && o.epochs == 0) o.steps = 1800;
    o.augment = !no_augment;
    o.progress = !quiet;
    o.device = Device::parse(device);
    o.synthetic.height = height, o.synthetic.width = width;
    if (!frame_size.empty()) {
      const size_t x = frame_size.find('x');
      try {
        if (x == std::string::npos) throw std::invalid_argument("no x");
        size_t used = 0;
        o.frame_height = std::stoll(frame_size.substr(0, x), &used);
        if (used != x) throw std::invalid_argument("height");
        o.frame_width = std::stoll(frame_size.substr(x + 1), &used);
        if (used != frame_size.size() - x - 1 || o.frame_height < 1 || o.frame_width < 1) throw std::invalid_argument("width");
      } catch (const std::exception&) {
        throw std::invalid_argument("train_nyu: --frame-size must be HxW with positive H and W, e.g. 256x512, got '" + frame_size + "'");
      }
      if (o.dataset != "cityscapes") throw std::invalid_argument("train_nyu: --frame-size applies to --dataset cityscapes only");
    }
    if (!config_file.empty()) o.model = Config::from_file(config_file);  // errors name the file and the field
    train_nyu(o);  // checks every option before any work (mila/options_check.h)
    return 0;
  } catch (const Diverged& e) {
    std::fprintf(stderr, "\n%s\n", e.what());
    return 3;
  } catch (const std::exception& e) {
    const std::string what = e.what();  // most errors name the program already
    std::fprintf(stderr, "\n%s%s\n", what.rfind("train_nyu", 0) == 0 ? "" : "train_nyu: ", what.c_str());
    return 1;
  }
}
