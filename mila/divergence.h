// divergence.h - how the training program (mila/trainer.h) tells that a run has diverged.
//
// Note [divergence]
// A run that diverges stops at the first sign, naming the step and what gave it away, with
// the last good checkpoint intact (exit code 3 in train_nyu):
//   - a loss term that is NaN or infinite (checked before backward);
//   - a gradient norm (the global L2 norm over every parameter's gradient, before clipping)
//     that is NaN or infinite, though the losses were finite (checked before the update);
//   - a total loss whose magnitude exceeds max_loss_factor * max(|the run's first total|, 1):
//     a healthy run's loss falls from its first value, and one that grows a hundredfold has
//     left the basin (Adam at lr 1e3 passes it within a few steps); max(..., 1) keeps a tiny
//     first loss from making the bound a hair trigger. 0 turns this check off;
//   - a model or optimizer tensor holding NaN or infinity when a checkpoint is due (an
//     update of a NaN learning rate, say): nothing is written.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "nn/module.h"

namespace mila {

// Thrown by the Trainer; what() names the step, the term or tensor, and the last good checkpoint.
struct Diverged : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What Note [divergence] finds wrong with one step's loss terms (`values`, named by `columns`,
// the total first), given the run's first total; empty when nothing is.
std::string loss_divergence(const std::vector<std::string>& columns, const std::vector<double>& values, double first_total,
                            double max_loss_factor);

// The first tensor holding NaN or infinity, as "'name' (nan at element 7)"; empty when all are
// finite. In float32, as a checkpoint stores them: a float64 past float32's range is infinite.
std::string first_non_finite(const nn::NamedTensors& tensors);

}  // namespace mila
