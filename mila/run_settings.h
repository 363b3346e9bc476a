// run_settings.h - a training run's settings as its checkpoint keeps them (state.json's
// "run" object, one key per setting, named as its flag without the dashes), and how a
// resumed run takes them back, so that a resume continues the run as it was started.
//
// Every setting of TrainOptions is one of:
//   fixed       what decides the run's batches, updates and length: the data (--data,
//               --dataset, --frame-size, the synthetic set's configuration), the model
//               (--config), --init, --steps / --epochs, --batch, the optimizer and schedule
//               (--optimizer, --lr, --momentum, --weight-decay, --schedule, --warmup,
//               --clip-grad), --no-augment and --seed. Restored on resume; a flag given on
//               resume that would change one is refused, naming the flag and both values.
//   adjustable  how the run is carried out and watched: --threads, --workers, --device,
//               --cache, --checkpoint-every, --eval-every, --eval-samples, --visualize,
//               --max-loss-factor. Restored on resume; a flag given on resume replaces the
//               run's value (a different --threads or --device changes the losses' last bits).
//   per call    not saved: --quiet, --dump-first-batch, --resume, and --out, which a resume
//               may only give as the folder it resumes.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "mila/trainer.h"

namespace mila {

// The fixed and adjustable settings of `options`.
nlohmann::json run_settings_json(const TrainOptions& options);

// A resumed run's options: every setting `saved` (run_settings_json of the run) holds
// replaces the one in `options`, except an adjustable one whose flag is in
// options.flags_given. Throws std::invalid_argument, naming `source`, for a given flag that
// would change a fixed setting (with both values) and for a flag a resume does not take.
void restore_run_settings(TrainOptions& options, const nlohmann::json& saved, const std::string& source);

// The flags whose values a resume may change (for messages and the documentation).
std::vector<std::string> adjustable_flags();

}  // namespace mila
