// config.cpp - JSON for Config (nlohmann::json), with SPEC 2's field names.
#include "mila/config.h"

#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

namespace mila {

using json = nlohmann::json;

namespace {

// A name from the JSON through its table, the error prefixed as every other config error.
template <typename Enum, size_t N>
Enum parse_name(const NameTable<Enum, N>& table, const std::string& name) {
  try {
    return table.parse(name);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("mila.config: ") + e.what());
  }
}

}  // namespace

std::string Config::to_json() const {
  json tasks_json = json::array();
  for (const TaskSpec& t : tasks) tasks_json.push_back({t.name(), t.channels});
  const json j = {{"slow_depth", slow_depth}, {"fast_depth", fast_depth}, {"width", width}, {"C", C},
                  {"D", D}, {"L", L}, {"K", K}, {"tasks", tasks_json}, {"task_specific", task_specific},
                  {"multi_frame", multi_frame}, {"attention", attention}, {"weighting", kWeightingNames.name(weighting)},
                  {"alpha", alpha}, {"beta", beta}, {"mimic", mimic}};
  return j.dump();
}

Config Config::from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string("mila.config: not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw std::invalid_argument("mila.config: expected a JSON object");
  Config c;
  auto get = [&](const char* key, auto& field) {
    if (!j.contains(key)) return;
    try {
      j.at(key).get_to(field);
    } catch (const json::exception&) {
      throw std::invalid_argument(std::string("mila.config: field '") + key + "' has the wrong type: " + j.at(key).dump());
    }
  };
  const std::set<std::string> known = {"slow_depth", "fast_depth", "width", "C", "D", "L", "K", "tasks",
                                       "task_specific", "multi_frame", "attention", "weighting", "alpha", "beta", "mimic"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key())) throw std::invalid_argument("mila.config: unknown field '" + it.key() + "'");
  get("slow_depth", c.slow_depth);
  get("fast_depth", c.fast_depth);
  get("width", c.width);
  get("C", c.C);
  get("D", c.D);
  get("L", c.L);
  get("K", c.K);
  get("task_specific", c.task_specific);
  get("multi_frame", c.multi_frame);
  get("attention", c.attention);
  if (j.contains("weighting")) {
    std::string name;
    get("weighting", name);
    c.weighting = parse_name(kWeightingNames, name);
  }
  get("alpha", c.alpha);
  get("beta", c.beta);
  get("mimic", c.mimic);
  if (j.contains("tasks")) {
    const json& t = j["tasks"];
    if (!t.is_array()) throw std::invalid_argument("mila.config: 'tasks' must be a list of [name, channels]");
    c.tasks.clear();
    for (const json& e : t) {
      if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number_integer())
        throw std::invalid_argument("mila.config: each task must be [name, channels], got " + e.dump());
      c.tasks.push_back({parse_name(kTaskNames, e[0].get<std::string>()), e[1].get<int64_t>()});
    }
  }
  c.validate();
  return c;
}

void Config::validate() const {
  auto fail = [](const std::string& why) { throw std::invalid_argument("mila.config: " + why); };
  for (int d : {slow_depth, fast_depth})
    if (d != 18 && d != 34 && d != 50 && d != 101) fail("depth " + std::to_string(d) + " is not 18, 34, 50 or 101");
  if (width <= 0 || C < 16 || D <= 0) fail("width, C and D must be positive, C at least 16 (the SE reduction)");
  if (L < 0 || (L > 0 && L % 2 == 0)) fail("L must be odd, or 0 for global attention, got " + std::to_string(L));
  if (K < 1) fail("K must be at least 1, got " + std::to_string(K));
  if (tasks.empty()) fail("no tasks");
  std::set<Task> seen;
  for (const TaskSpec& t : tasks) {
    if (t.channels <= 0) fail("task '" + t.name() + "' needs positive channels");
    if (!seen.insert(t.task).second) fail("task '" + t.name() + "' listed twice");
  }
}

int64_t Config::task_channels(Task task) const {
  for (const TaskSpec& t : tasks)
    if (t.task == task) return t.channels;
  return -1;
}

}  // namespace mila
