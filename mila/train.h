// train.h - MILA's training losses (SPEC 4.4): per-task losses on the clip's last frame,
// the Fast-mimics-Slow L1 loss and the discriminator behind the gradient-reversal layer,
// and the task weightings (equal, uncertainty, dynamic weight average).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "mila/model.h"

namespace mila {

// A training batch: a clip per sample, all of the same length (SPEC 4.4).
struct Batch {
  Tensor frames;  // [T, B, 3, H, W], normalized (SPEC 1)
  int64_t t0 = 0; // keyframe phase inside the clip (the clip a-o..a has its keyframe first: 0)
  Tensor seg;     // int64 [B, H, W], 255 = ignore
  Tensor depth;   // float [B, 1, H, W], 0 = invalid
  Tensor normal;  // float [B, 3, H, W], (0, 0, 0) = invalid
};

struct LossTerms {
  std::map<std::string, Tensor> task;  // unweighted task losses (0-d); a term with no valid pixel is 0
  Tensor l1;                           // mean |S - F| (undefined when mimic is off)
  Tensor disc;                         // L_D (undefined when mimic is off)
  Tensor total;                        // what backward() runs on
};

// Dynamic weight average (Liu et al.): w_T = n exp(r_T / 2) / sum_T' exp(r_T' / 2), with
// r_T = mean loss of T in the previous epoch / in the epoch before; 1 for the first two.
class DynamicWeightAverage {
 public:
  explicit DynamicWeightAverage(std::vector<std::string> tasks, double temperature = 2.0);
  void record(const std::string& task, double loss);  // one step's value
  void end_epoch();
  double weight(const std::string& task) const;
  // The running sums and the epoch means as JSON, and back: a resumed run continues with
  // the same weights (examples/train_nyu saves it with every checkpoint).
  std::string state_json() const;
  void load_state_json(const std::string& text);

 private:
  std::vector<std::string> tasks_;
  double temperature_;
  std::map<std::string, double> sum_, count_;
  std::vector<std::map<std::string, double>> epoch_means_;
};

// The SPEC 4.4 task loss of one task's prediction at frame a.
Tensor task_loss(Task task, const Tensor& prediction, const Batch& batch);

// Forward of the clip (heads on the last frame only) and every loss term; `dwa` is used
// when the config's weighting is Weighting::dwa (may be null otherwise).
LossTerms training_losses(Model& model, const Batch& batch, const DynamicWeightAverage* dwa = nullptr);

}  // namespace mila
