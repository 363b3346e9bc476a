// options_check.h - every option of a training run, and every numeric flag of the programs,
// checked before any work: a value out of range is refused with the flag, the value and
// what is allowed ("--lr nan: must be a finite number > 0"), not discovered hours later as
// a NaN loss, a negative step count or std::bad_alloc.
//
// NumberRange says what a number may be. Floating-point ranges are finite by definition:
// NaN passes every comparison-based check (CLI11's Range and PositiveNumber among them)
// because every comparison with NaN is false, so contains() tests finiteness first.
// The programs use the same ranges for their command-line checks (examples/flag_checks.h),
// so the help text, the command line and the library cannot disagree.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "data/video_dataset.h"
#include "mila/memory.h"
#include "mila/trainer.h"

namespace mila {

struct NumberRange {
  double min = -std::numeric_limits<double>::infinity(), max = std::numeric_limits<double>::infinity();
  bool min_excluded = false, max_excluded = false;
  bool integer = false;
  bool contains(double value) const;
  // "a finite number > 0", "an integer in [0, 1024]", "a finite number in [0, 1)".
  std::string text() const;
};

constexpr NumberRange integers(int64_t min, int64_t max) { return {double(min), double(max), false, false, true}; }
constexpr NumberRange numbers(double min, double max = std::numeric_limits<double>::infinity(), bool max_excluded = false) {
  return {min, max, false, max_excluded, false};
}
constexpr NumberRange positive_numbers() { return {0, std::numeric_limits<double>::infinity(), true, false, false}; }

// Throws std::invalid_argument "<flag> <value>: must be <range>" (then "; <why>" when given).
void check_flag(const std::string& flag, double value, const NumberRange& range, const std::string& why = "");
void check_flag(const std::string& flag, int64_t value, const NumberRange& range, const std::string& why = "");
// The numbers of a comma-separated list ("0.05,0.1,0.2"), each in `range`; an item that is
// not a number, or is out of range, is refused naming the flag and the item.
std::vector<double> parse_number_list(const std::string& flag, const std::string& text, const NumberRange& range);

// The most steps a run may have: at a millisecond a step that is 30 years, so no real run
// is refused, while the step count and the schedule's double(step) / total stay exact.
inline constexpr int64_t kMaxSteps = 1'000'000'000'000;

// The ranges of train_nyu's numeric flags (TrainOptions' fields).
namespace train_ranges {
inline constexpr NumberRange steps = integers(0, kMaxSteps);   // 0: take epochs
inline constexpr NumberRange epochs = integers(0, kMaxSteps);
inline constexpr NumberRange batch = integers(1, 65536);
inline constexpr NumberRange lr = positive_numbers();
inline constexpr NumberRange momentum = numbers(0, 1, /*max_excluded=*/true);
inline constexpr NumberRange weight_decay = numbers(0);
inline constexpr NumberRange beta2 = numbers(0, 1, /*max_excluded=*/true);
inline constexpr NumberRange warmup = integers(0, kMaxSteps);
inline constexpr NumberRange clip_grad = numbers(0);          // 0: off
inline constexpr NumberRange max_loss_factor = numbers(0);    // 0: never stop on the loss's size
inline constexpr NumberRange threads = integers(0, 1024);     // 0: the runtime's default
inline constexpr NumberRange workers = integers(0, 64);       // 0: batches made on the training thread
inline constexpr NumberRange checkpoint_every = integers(1, kMaxSteps);
inline constexpr NumberRange eval_every = integers(0, kMaxSteps);  // 0: at the end only
inline constexpr NumberRange visualize = integers(0, 10000);
inline constexpr NumberRange frame_side = integers(16, 4096);  // synthetic --height/--width, --frame-size
inline constexpr NumberRange sequences = integers(1, 100000);  // synthetic --train-sequences/--val-sequences
// Any uint64 (a larger one fails to convert); the check keeps "-1" from wrapping to 2^64 - 1.
inline constexpr NumberRange seed = {0, std::numeric_limits<double>::infinity(), false, false, true};
// --eval-samples: -1 (every validation sample) or a count in [1, kMaxSteps].
}  // namespace train_ranges

// Everything in `o` that can be checked without its data: every number's range, the model's
// config, the dataset's name, the frame size; and, for a new run whose frame size the
// options fix (the synthetic set, --frame-size), the memory of a training step against
// `available_bytes` (0: not checked). Throws std::invalid_argument naming the flag.
void check_train_options(const TrainOptions& o, int64_t available_bytes = available_memory_bytes());

// What needs the training split: the run's length in steps (epochs x batches per epoch,
// computed without overflow, at most kMaxSteps), the warm-up within it, and the memory of a
// training step at the split's frame size.
void check_training_run(const TrainOptions& o, const data::VideoDataset& train,
                        int64_t available_bytes = available_memory_bytes());

// Refuses a training step whose estimate (mila/memory.h) exceeds `available_bytes`, naming
// the sizes that drive it and the bytes needed against the bytes available (0: no check).
// CPU runs only: the available bytes are the host's.
void check_training_memory(const TrainOptions& o, int64_t height, int64_t width, int64_t available_bytes);
TrainingShape training_shape(const TrainOptions& o, int64_t height, int64_t width);

// A streamed frame's cost grows with its pixels (an 8000x8000 frame takes minutes), so
// examples/predict refuses frames above --max-pixels, by default 2048 x 2048: twice the
// paper's largest input (Cityscapes, 1024x2048).
inline constexpr int64_t kDefaultMaxFramePixels = 2048 * 2048;
// Refuses frames of height x width with more than max_pixels pixels, or whose streaming
// memory (mila/memory.h) exceeds available_bytes (0: not checked), naming the size, its
// GMACs per frame and the limit.
void check_stream_frame(const Config& cfg, int64_t height, int64_t width, int64_t max_pixels,
                        int64_t available_bytes = available_memory_bytes());

}  // namespace mila
