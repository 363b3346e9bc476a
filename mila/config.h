// config.h - the MILA configuration (SPEC section 4), read from and written to JSON and
// stored in every checkpoint under the metadata key "mila.config".
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mila/names.h"

namespace mila {

// The tasks MILA knows: each has its loss (mila/train.h) and its metrics (mila/metrics.h).
// The name is the task's key everywhere else: its modules ("decoders.seg."), its outputs, its
// log column, its entry in the config's JSON.
enum class Task { seg, depth, normal };
inline constexpr NameTable<Task, 3> kTaskNames{"task", {{{Task::seg, "seg"}, {Task::depth, "depth"}, {Task::normal, "normal"}}}};

// How the task losses are weighted into the total (SPEC 4.4; mila/train.h).
enum class Weighting { equal, uncertainty, dwa };
inline constexpr NameTable<Weighting, 3> kWeightingNames{
    "weighting", {{{Weighting::equal, "equal"}, {Weighting::uncertainty, "uncertainty"}, {Weighting::dwa, "dwa"}}}};

struct TaskSpec {
  Task task = Task::seg;
  int64_t channels = 1;  // head output channels
  std::string name() const { return kTaskNames.name(task); }
};

struct Config {
  // The model (SPEC 4; defaults are the paper's).
  int slow_depth = 101;
  int fast_depth = 18;
  int64_t width = 64;  // backbone width w
  int64_t C = 256;     // neck width
  int64_t D = 64;      // ILA key width
  int64_t L = 5;       // ILA window (odd), 0 = global attention
  int64_t K = 5;       // keyframe interval; 1 = slow-only
  std::vector<TaskSpec> tasks = {{Task::seg, 13}, {Task::depth, 1}, {Task::normal, 3}};
  bool task_specific = true;  // per-task SE and ILA; false: one block named "shared"
  bool multi_frame = true;    // the "prev" slot (ILA from the previous frame)
  bool attention = true;      // false: the MultiNet++-style baseline (slots copy features, no ILA)

  // Training (SPEC 4.4).
  Weighting weighting = Weighting::equal;
  double alpha = 1.0;  // L1 mimic loss factor
  double beta = 1.0;   // gradient-reversal factor
  bool mimic = true;   // false: no L1 and no adversarial term (Table 3 ablation)

  std::string to_json() const;
  // Unknown keys, wrong types (3.7 where an integer belongs: never rounded), values out of
  // range and unknown task or weighting names throw std::invalid_argument naming the field,
  // the value and the rule (or listing the valid names).
  static Config from_json(const std::string& text);
  // Config::from_json of a file's text; every error, the JSON parser's included, names the file.
  static Config from_file(const std::string& path);
  // Throws std::invalid_argument naming the field, its value and the allowed range. The
  // ranges (config.cpp) bound what can be built at all; whether a training step fits in
  // the machine's memory is mila/memory.h's estimate, checked before a run starts.
  void validate() const;
  int64_t task_channels(Task task) const;  // -1 when absent
};

}  // namespace mila
