// config.h - the MILA configuration (SPEC section 4), read from and written to JSON and
// stored in every checkpoint under the metadata key "mila.config".
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace mila {

struct TaskSpec {
  std::string name;      // "seg", "depth", "normal" (the loss and metric follow the name)
  int64_t channels = 1;  // head output channels
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
  std::vector<TaskSpec> tasks = {{"seg", 13}, {"depth", 1}, {"normal", 3}};
  bool task_specific = true;  // per-task SE and ILA; false: one block named "shared"
  bool multi_frame = true;    // the "prev" slot (ILA from the previous frame)
  bool attention = true;      // false: the MultiNet++-style baseline (slots copy features, no ILA)

  // Training (SPEC 4.4).
  std::string weighting = "equal";  // equal | uncertainty | dwa
  double alpha = 1.0;               // L1 mimic loss factor
  double beta = 1.0;                // gradient-reversal factor
  bool mimic = true;                // false: no L1 and no adversarial term (Table 3 ablation)

  std::string to_json() const;
  // Unknown keys and wrong types throw std::invalid_argument naming the key.
  static Config from_json(const std::string& text);
  // Throws std::invalid_argument when fields are inconsistent (even L, C < 16, ...).
  void validate() const;
  int64_t task_channels(const std::string& task) const;  // -1 when absent
};

}  // namespace mila
