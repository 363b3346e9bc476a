// fuzz_config.cpp - libFuzzer target for the JSON the training reads back: the model
// configuration (Config::from_json, mila/config.h; also what read_model_config parses out of
// a checkpoint's metadata) and the dynamic-weight-average state that a resumed run loads
// from checkpoint-<step>/state.json (DynamicWeightAverage::load_state_json, mila/train.h). The rest
// of state.json is read inside train_nyu and has no entry point of its own.
//
// Each input is one JSON text, given to both readers. An exception is the expected answer
// to a bad text (std::invalid_argument naming the field); a sanitizer report or a crash is a
// bug, and so is a Config that is accepted but does not come back unchanged through to_json
// (checkpoints store it that way). A state that loads is then used: weights, a step, an epoch.
//
//   build-fuzz/fuzz_config tests/fuzz/corpus/config
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "mila/config.h"
#include "mila/train.h"

namespace {

[[noreturn]] void bug(const std::string& what) {
  std::fprintf(stderr, "fuzz_config: %s\n", what.c_str());
  std::abort();
}

bool same(const mila::Config& a, const mila::Config& b) {
  if (a.tasks.size() != b.tasks.size()) return false;
  for (size_t i = 0; i < a.tasks.size(); ++i)
    if (a.tasks[i].task != b.tasks[i].task || a.tasks[i].channels != b.tasks[i].channels) return false;
  return a.slow_depth == b.slow_depth && a.fast_depth == b.fast_depth && a.width == b.width && a.C == b.C &&
         a.D == b.D && a.L == b.L && a.K == b.K && a.task_specific == b.task_specific &&
         a.multi_frame == b.multi_frame && a.attention == b.attention && a.weighting == b.weighting &&
         (a.alpha == b.alpha || (a.alpha != a.alpha && b.alpha != b.alpha)) &&
         (a.beta == b.beta || (a.beta != a.beta && b.beta != b.beta)) && a.mimic == b.mimic;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  mila::Config config;
  bool accepted = false;
  try {
    config = mila::Config::from_json(text);
    accepted = true;
  } catch (const std::exception&) {
    // a refusal with a message (std::invalid_argument naming the field)
  }
  if (accepted) {  // a checkpoint stores to_json(); reading it back must not fail
    const std::string again = config.to_json();
    try {
      if (!same(mila::Config::from_json(again), config)) bug("Config changed through to_json and back: " + again);
    } catch (const std::exception& e) {
      bug("an accepted Config does not read back from its own to_json " + again + ": " + e.what());
    }
  }

  try {
    mila::DynamicWeightAverage dwa({"seg", "depth", "normal"});
    dwa.load_state_json(text);
    for (const char* task : {"seg", "depth", "normal"}) (void)dwa.weight(task);
    dwa.record("seg", 1.0);
    dwa.end_epoch();
  } catch (const std::exception&) {
  }
  return 0;
}
