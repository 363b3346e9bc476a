// fuzz_config.cpp - libFuzzer target for the JSON the training reads back: the model
// configuration (Config::from_json, mila/config.h; also what read_model_config parses out of
// a checkpoint's metadata) and the dynamic-weight-average state that a resumed run loads
// from checkpoint/state.json (DynamicWeightAverage::load_state_json, mila/train.h). The rest
// of state.json is read inside train_nyu and has no entry point of its own.
//
// Each input is one JSON text, given to both readers. An exception is the expected answer
// to a bad text (std::invalid_argument naming the field); a sanitizer report or a crash is a
// bug, and so is a Config that is accepted but does not come back unchanged through to_json
// (checkpoints store it that way). A state that loads is then used: weights, a step, an epoch.
//
//   build-fuzz/fuzz_config tests/fuzz/corpus/config
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <nlohmann/json.hpp>
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
    if (a.tasks[i].name != b.tasks[i].name || a.tasks[i].channels != b.tasks[i].channels) return false;
  return a.slow_depth == b.slow_depth && a.fast_depth == b.fast_depth && a.width == b.width && a.C == b.C &&
         a.D == b.D && a.L == b.L && a.K == b.K && a.task_specific == b.task_specific &&
         a.multi_frame == b.multi_frame && a.attention == b.attention && a.weighting == b.weighting &&
         (a.alpha == b.alpha || (a.alpha != a.alpha && b.alpha != b.alpha)) &&
         (a.beta == b.beta || (a.beta != a.beta && b.beta != b.beta)) && a.mimic == b.mimic;
}

// Config::from_json converts a JSON number with a fraction or exponent to an integer field
// with a plain cast, which is undefined when the value is out of the field's range
// ({"slow_depth": 1e100}). Until it refuses such numbers itself, inputs that hold one are
// not given to it here, so that the target goes on finding other bugs.
bool known_float_to_int_overflow(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return false;
  for (const char* key : {"slow_depth", "fast_depth", "width", "C", "D", "L", "K"})
    if (j.contains(key) && j[key].is_number_float() && !(std::fabs(j[key].get<double>()) < 2147483648.0)) return true;
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (known_float_to_int_overflow(text)) return 0;

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
