// run_settings.cpp - see run_settings.h. One table lists every saved setting once: how to
// read it from TrainOptions, how to restore it, and whether a resume may change it.
#include "mila/run_settings.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <stdexcept>

namespace fs = std::filesystem;

namespace mila {
namespace {

using json = nlohmann::json;

enum class Kind { fixed, adjustable };

struct Setting {
  const char* key;   // in state.json's "run"
  const char* flag;  // the flag that sets it; nullptr when none does (the value is still restored)
  Kind kind;
  std::function<json(const TrainOptions&)> get;
  std::function<void(TrainOptions&, const json&)> set;
};

template <auto Member>
Setting option(const char* key, const char* flag, Kind kind) {
  return {key, flag, kind, [](const TrainOptions& o) { return json(o.*Member); },
          [](TrainOptions& o, const json& v) { v.get_to(o.*Member); }};
}

template <auto Member>
Setting synthetic(const char* key, const char* flag) {
  return {key, flag, Kind::fixed, [](const TrainOptions& o) { return json(o.synthetic.*Member); },
          [](TrainOptions& o, const json& v) { v.get_to(o.synthetic.*Member); }};
}

template <typename Enum, size_t N>
Setting named(const char* key, const char* flag, Enum TrainOptions::*member, const NameTable<Enum, N>& table) {
  return {key, flag, Kind::fixed, [member, &table](const TrainOptions& o) { return json(table.name(o.*member)); },
          [member, &table](TrainOptions& o, const json& v) { o.*member = table.parse(v.get<std::string>()); }};
}

const std::vector<Setting>& settings() {
  using O = TrainOptions;
  using S = data::SyntheticConfig;
  constexpr Kind fixed = Kind::fixed, adjustable = Kind::adjustable;
  static const std::vector<Setting> table = {
      // the data
      option<&O::data>("data", "--data", fixed),
      option<&O::dataset>("dataset", "--dataset", fixed),
      {"frame-size", "--frame-size", fixed, [](const O& o) { return json::array({o.frame_height, o.frame_width}); },
       [](O& o, const json& v) { o.frame_height = v.at(0).get<int64_t>(), o.frame_width = v.at(1).get<int64_t>(); }},
      synthetic<&S::height>("height", "--height"),
      synthetic<&S::width>("width", "--width"),
      synthetic<&S::train_sequences>("train-sequences", "--train-sequences"),
      synthetic<&S::val_sequences>("val-sequences", "--val-sequences"),
      synthetic<&S::frames_per_sequence>("frames-per-sequence", nullptr),
      synthetic<&S::annotate_first>("annotate-first", nullptr),
      synthetic<&S::annotate_stride>("annotate-stride", nullptr),
      synthetic<&S::seed>("synthetic-seed", nullptr),
      synthetic<&S::rgb_noise>("rgb-noise", nullptr),
      synthetic<&S::travel_m>("travel-m", nullptr),
      synthetic<&S::turn_deg>("turn-deg", nullptr),
      // the model
      {"config", "--config", fixed, [](const O& o) { return json::parse(o.model.to_json()); },
       [](O& o, const json& v) { o.model = Config::from_json(v.dump()); }},
      option<&O::init>("init", "--init", fixed),
      // the optimization
      option<&O::steps>("steps", "--steps", fixed),
      option<&O::epochs>("epochs", "--epochs", fixed),
      option<&O::batch>("batch", "--batch", fixed),
      named("optimizer", "--optimizer", &O::optimizer, kOptimizerNames),
      option<&O::lr>("lr", "--lr", fixed),
      option<&O::momentum>("momentum", "--momentum", fixed),
      option<&O::weight_decay>("weight-decay", "--weight-decay", fixed),
      option<&O::beta2>("beta2", nullptr, fixed),
      named("schedule", "--schedule", &O::schedule, kScheduleNames),
      option<&O::warmup>("warmup", "--warmup", fixed),
      option<&O::clip_grad>("clip-grad", "--clip-grad", fixed),
      option<&O::augment>("augment", "--no-augment", fixed),
      option<&O::seed>("seed", "--seed", fixed),
      // how the run is carried out and watched
      option<&O::cache>("cache", "--cache", adjustable),
      {"device", "--device", adjustable, [](const O& o) { return json(o.device.str()); },
       [](O& o, const json& v) { o.device = Device::parse(v.get<std::string>()); }},
      option<&O::threads>("threads", "--threads", adjustable),
      option<&O::workers>("workers", "--workers", adjustable),
      option<&O::checkpoint_every>("checkpoint-every", "--checkpoint-every", adjustable),
      option<&O::eval_every>("eval-every", "--eval-every", adjustable),
      option<&O::eval_samples>("eval-samples", "--eval-samples", adjustable),
      option<&O::visualize>("visualize", "--visualize", adjustable),
      option<&O::max_loss_factor>("max-loss-factor", "--max-loss-factor", adjustable),
  };
  return table;
}

// Flags a resume takes that are no setting of the run.
bool per_call_flag(const std::string& flag) {
  return flag == "--quiet" || flag == "--dump-first-batch" || flag == "--resume" || flag == "--out";
}

std::string list_text(const std::vector<std::string>& items) {
  std::string text;
  for (size_t i = 0; i < items.size(); ++i) text += (i == 0 ? "" : i + 1 == items.size() ? " and " : ", ") + items[i];
  return text;
}

}  // namespace

json run_settings_json(const TrainOptions& options) {
  json run = json::object();
  for (const Setting& s : settings()) run[s.key] = s.get(options);
  // The whole synthetic configuration as data/synthetic.h writes it, to catch a field this
  // table does not restore (restore_run_settings compares it).
  run["synthetic"] = json::parse(data::synthetic_config_json(options.synthetic));
  return run;
}

std::vector<std::string> adjustable_flags() {
  std::vector<std::string> flags;
  for (const Setting& s : settings())
    if (s.kind == Kind::adjustable) flags.push_back(s.flag);
  return flags;
}

void restore_run_settings(TrainOptions& options, const json& saved, const std::string& source) {
  const std::string where = "train_nyu --resume " + options.resume + ": ";
  auto given = [&](const char* flag) {
    return flag && std::find(options.flags_given.begin(), options.flags_given.end(), flag) != options.flags_given.end();
  };
  for (const std::string& flag : options.flags_given) {
    const bool known = std::any_of(settings().begin(), settings().end(), [&](const Setting& s) { return s.flag && flag == s.flag; });
    if (!known && !per_call_flag(flag))
      throw std::invalid_argument(where + flag + " cannot be given to a resumed run (only " + list_text(adjustable_flags()) +
                                  " may change)");
  }
  if (given("--out") && fs::weakly_canonical(options.out) != fs::weakly_canonical(options.resume))
    throw std::invalid_argument(where + "--out " + options.out + " differs from the run's folder " + options.resume +
                                ": a resumed run continues in its own folder");
  options.out = options.resume;

  for (const Setting& s : settings()) {
    if (!saved.contains(s.key)) {
      if (s.kind == Kind::fixed) throw std::runtime_error(where + source + " does not record the run's " + s.key);
      continue;  // an adjustable setting the run did not record keeps its value
    }
    const json& was = saved.at(s.key);
    if (given(s.flag)) {
      const json now = s.get(options);
      if (s.kind == Kind::fixed && now != was)
        throw std::invalid_argument(where + s.flag + " would change the run's " + s.key + " from " + was.dump() + " to " +
                                    now.dump() + " (" + source + "); only " + list_text(adjustable_flags()) +
                                    " may change on resume");
      if (s.kind == Kind::adjustable) continue;
    }
    try {
      s.set(options, was);
    } catch (const std::exception& e) {
      throw std::runtime_error(where + source + ": the run's " + s.key + " " + was.dump() + " is unreadable: " + e.what());
    }
  }
  if (saved.contains("synthetic") && saved.at("synthetic") != json::parse(data::synthetic_config_json(options.synthetic)))
    throw std::logic_error(where + source + ": the synthetic set's configuration " + saved.at("synthetic").dump() +
                           " was not restored in full");
}

}  // namespace mila
