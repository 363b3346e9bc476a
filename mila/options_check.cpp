// options_check.cpp - see options_check.h.
#include "mila/options_check.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "data/sampler.h"
#include "mila/cost.h"

namespace mila {
namespace {

// A bound as people write it: 1000000000000 rather than 1e+12, 0.5 as 0.5.
std::string number_text(double v) {
  char buf[64];
  if (std::isfinite(v) && v == std::floor(v) && std::abs(v) < 1e18)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

[[noreturn]] void refuse(const std::string& flag, const std::string& value, const NumberRange& range, const std::string& why) {
  throw std::invalid_argument(flag + " " + value + ": must be " + range.text() + (why.empty() ? "" : "; " + why));
}

std::string size_text(int64_t height, int64_t width) { return std::to_string(height) + "x" + std::to_string(width); }

}  // namespace

bool NumberRange::contains(double v) const {
  if (!std::isfinite(v)) return false;
  if (integer && v != std::floor(v)) return false;
  return (min_excluded ? v > min : v >= min) && (max_excluded ? v < max : v <= max);
}

std::string NumberRange::text() const {
  const std::string what = integer ? "an integer" : "a finite number";
  const bool low = std::isfinite(min), high = std::isfinite(max);
  if (!low && !high) return what;
  if (!high) return what + (min_excluded ? " > " : " >= ") + number_text(min);
  if (!low) return what + (max_excluded ? " < " : " <= ") + number_text(max);
  return what + " in " + (min_excluded ? "(" : "[") + number_text(min) + ", " + number_text(max) + (max_excluded ? ")" : "]");
}

void check_flag(const std::string& flag, double value, const NumberRange& range, const std::string& why) {
  if (!range.contains(value)) refuse(flag, number_text(value), range, why);
}

void check_flag(const std::string& flag, int64_t value, const NumberRange& range, const std::string& why) {
  // A double holds every int64 to within its range's bounds, so contains() decides rightly;
  // the message prints the integer exactly.
  if (!range.contains(double(value))) refuse(flag, std::to_string(value), range, why);
}

std::vector<double> parse_number_list(const std::string& flag, const std::string& text, const NumberRange& range) {
  std::vector<double> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    double value = 0;
    const auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || error != std::errc() || end != item.data() + item.size())
      throw std::invalid_argument(flag + " '" + text + "': '" + item + "' is not a number (expected numbers separated by commas)");
    if (!range.contains(value)) refuse(flag, "'" + item + "'", range, "");
    out.push_back(value);
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

TrainingShape training_shape(const TrainOptions& o, int64_t height, int64_t width) {
  TrainingShape s;
  s.batch = o.batch;
  s.clip_length = o.model.K;  // the loader's longest clip
  s.height = height, s.width = width;
  s.optimizer_states = o.optimizer == OptimizerKind::adam ? 2 : 1;
  s.workers = o.workers;
  s.batches_in_flight = data::TrainLoaderConfig{}.capacity + o.workers + 1;
  return s;
}

void check_training_memory(const TrainOptions& o, int64_t height, int64_t width, int64_t available_bytes) {
  // The estimate is weighed against host memory; the tensor layer has no query for a GPU's.
  if (available_bytes <= 0 || !o.device.is_cpu()) return;
  const MemoryEstimate need = estimate_training_memory(o.model, training_shape(o, height, width));
  if (need.total() <= double(available_bytes)) return;
  const Config& m = o.model;
  throw std::invalid_argument(
      "train_nyu: a training step needs about " + need.str() + " for --batch " + std::to_string(o.batch) +
      " clips of up to K = " + std::to_string(m.K) + " frames at " + size_text(height, width) + " with width " +
      std::to_string(m.width) + ", C " + std::to_string(m.C) + ", D " + std::to_string(m.D) + " (Slow ResNet-" +
      std::to_string(m.slow_depth) + ", Fast ResNet-" + std::to_string(m.fast_depth) + "), more than the " +
      bytes_text(double(available_bytes)) + " of memory available (MemAvailable, /proc/meminfo); lower --batch, the frame "
      "size or the config's width, C, D or K (mila/memory.h says how the estimate is made)");
}

void check_stream_frame(const Config& cfg, int64_t height, int64_t width, int64_t max_pixels, int64_t available_bytes) {
  if (height <= 0 || width <= 0) throw std::invalid_argument("the frame size " + size_text(height, width) + " is empty");
  char cost[64];
  std::snprintf(cost, sizeof cost, "%.1f GMACs per frame", average_gmacs(cfg, height, width));
  const std::string size = "the frames are " + size_text(height, width) + " (" + cost + ")";
  // As doubles: a frame of 2^32 x 2^32 pixels must not wrap to a small product.
  if (double(height) * double(width) > double(max_pixels))
    throw std::invalid_argument(size + ": " + number_text(double(height) * double(width)) + " pixels, more than --max-pixels " +
                                std::to_string(max_pixels) + "; the time grows with the pixels: resize the frames, or raise "
                                "--max-pixels");
  if (available_bytes <= 0) return;
  const MemoryEstimate need = estimate_streaming_memory(cfg, height, width);
  if (need.total() > double(available_bytes))
    throw std::invalid_argument(size + ": a frame needs about " + need.str() + ", more than the " +
                                bytes_text(double(available_bytes)) + " of memory available; resize the frames");
}

void check_train_options(const TrainOptions& o, int64_t available_bytes) {
  namespace r = train_ranges;
  check_flag("--steps", o.steps, r::steps);
  check_flag("--epochs", o.epochs, r::epochs);
  check_flag("--batch", o.batch, r::batch);
  check_flag("--lr", o.lr, r::lr);
  check_flag("--momentum", o.momentum, r::momentum);
  check_flag("--weight-decay", o.weight_decay, r::weight_decay);
  check_flag("TrainOptions.beta2", o.beta2, r::beta2);
  check_flag("--warmup", o.warmup, r::warmup);
  if (o.steps > 0)  // with --epochs the run's length needs the data: check_training_run
    check_flag("--warmup", o.warmup, integers(0, o.steps), "the warm-up must end within the run's " + std::to_string(o.steps) + " steps");
  check_flag("--clip-grad", o.clip_grad, r::clip_grad, "0 turns clipping off");
  check_flag("--max-loss-factor", o.max_loss_factor, r::max_loss_factor, "0 turns the bound off");
  check_flag("--threads", int64_t(o.threads), r::threads, "0 leaves the runtime's default");
  check_flag("--workers", int64_t(o.workers), r::workers);
  check_flag("--checkpoint-every", o.checkpoint_every, r::checkpoint_every);
  check_flag("--eval-every", o.eval_every, r::eval_every, "0 evaluates at the end only");
  if (o.eval_samples != -1) check_flag("--eval-samples", o.eval_samples, integers(1, kMaxSteps), "or -1 for every sample");
  check_flag("--visualize", o.visualize, r::visualize);
  check_flag("TrainOptions.stop_after", o.stop_after, integers(-1, kMaxSteps));
  if (o.dataset != "nyu" && o.dataset != "cityscapes")
    throw std::invalid_argument("train_nyu: --dataset must be nyu or cityscapes, got '" + o.dataset + "'");
  const bool resized = o.frame_height != 0 || o.frame_width != 0;
  if (resized) {
    if (o.dataset != "cityscapes") throw std::invalid_argument("train_nyu: --frame-size applies to --dataset cityscapes only");
    check_flag("--frame-size height", o.frame_height, r::frame_side);
    check_flag("--frame-size width", o.frame_width, r::frame_side);
  }
  if (o.data.empty()) {
    check_flag("--height", o.synthetic.height, r::frame_side);
    check_flag("--width", o.synthetic.width, r::frame_side);
    check_flag("--train-sequences", o.synthetic.train_sequences, r::sequences);
    check_flag("--val-sequences", o.synthetic.val_sequences, r::sequences);
  }
  try {
    o.model.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("train_nyu: the model configuration: ") + e.what());
  }
  // A resumed run's model comes from its checkpoint: check_training_run weighs that one.
  if (!o.resume.empty()) return;
  if (o.data.empty()) check_training_memory(o, o.synthetic.height, o.synthetic.width, available_bytes);
  else if (resized) check_training_memory(o, o.frame_height, o.frame_width, available_bytes);
}

void check_training_run(const TrainOptions& o, const data::VideoDataset& train, int64_t available_bytes) {
  // The sampler refuses a batch larger than the split, naming both.
  const int64_t per_epoch = data::TrainSampler(train.size(), o.batch, o.model.K, o.seed).batches_per_epoch();
  const int64_t epochs = std::max<int64_t>(o.epochs, 1);
  if (o.steps == 0 && epochs > kMaxSteps / per_epoch)
    throw std::invalid_argument("train_nyu: --epochs " + std::to_string(o.epochs) + " of " + std::to_string(per_epoch) +
                                " batches each (" + std::to_string(train.size()) + " training samples, --batch " +
                                std::to_string(o.batch) + ") is more than " + number_text(double(kMaxSteps)) + " steps");
  const int64_t total = o.steps > 0 ? o.steps : epochs * per_epoch;
  check_flag("--warmup", o.warmup, integers(0, total), "the warm-up must end within the run's " + std::to_string(total) + " steps");
  check_training_memory(o, train.height(), train.width(), available_bytes);
}

}  // namespace mila
