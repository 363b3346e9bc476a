// config.cpp - JSON for Config (nlohmann::json), with SPEC 2's field names.
#include "mila/config.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>
#include <type_traits>

namespace mila {

using json = nlohmann::json;

namespace {

// The ranges of the integer fields. The upper ends lie far beyond the paper's values (width
// 64, C 256, D 64, L 5, K 5) and keep the shape arithmetic of mila/cost.h and mila/memory.h
// well inside int64; whether a model inside them fits a machine is the memory estimate's
// question (mila/memory.h), asked before a run starts.
struct IntegerRule {
  const char* field;
  int64_t min, max;
  const char* what;
};
constexpr IntegerRule kWidthRule{"width", 1, 1024, "the backbone width w, the paper's 64"};
constexpr IntegerRule kCRule{"C", 16, 16384, "the neck width, at least 16 for the SE reduction C / 16"};
constexpr IntegerRule kDRule{"D", 1, 16384, "the ILA key width"};
constexpr IntegerRule kKRule{"K", 1, 100, "the keyframe interval; a training clip holds up to K frames"};
constexpr int64_t kMaxL = 99;
constexpr int64_t kMaxSegClasses = 4096;

// A config error: "<source>: field 'K' is 3.7: must be an integer ...". The source is
// "mila.config" (a checkpoint's metadata or a text) or "config file <path>".
[[noreturn]] void fail(const std::string& source, const std::string& field, const std::string& value, const std::string& why) {
  throw std::invalid_argument(source + ": field '" + field + "' is " + value + ": " + why);
}

std::string rule_text(const IntegerRule& r) {
  return "must be an integer in [" + std::to_string(r.min) + ", " + std::to_string(r.max) + "] (" + r.what + ")";
}

void check_rule(const std::string& source, const IntegerRule& r, int64_t value) {
  if (value < r.min || value > r.max) fail(source, r.field, std::to_string(value), rule_text(r));
}

// nlohmann's message without its "[json.exception.parse_error.101] " tag: what went wrong and where.
std::string json_error_text(const json::exception& e) {
  const std::string what = e.what();
  const size_t tag_end = what.rfind("] ", what.find(' '));
  return tag_end == std::string::npos ? what : what.substr(tag_end + 2);
}

// A name from the JSON through its table, the error prefixed as every other config error.
template <typename Enum, size_t N>
Enum parse_name(const std::string& source, const NameTable<Enum, N>& table, const std::string& name) {
  try {
    return table.parse(name);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(source + ": " + e.what());
  }
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void check_config(const Config& c, const std::string& source) {
  for (const auto& [field, depth] : {std::pair{"slow_depth", c.slow_depth}, std::pair{"fast_depth", c.fast_depth}})
    if (depth != 18 && depth != 34 && depth != 50 && depth != 101)
      fail(source, field, std::to_string(depth), "must be 18, 34, 50 or 101 (a ResNet depth)");
  check_rule(source, kWidthRule, c.width);
  check_rule(source, kCRule, c.C);
  check_rule(source, kDRule, c.D);
  if (c.L < 0 || c.L > kMaxL || (c.L > 0 && c.L % 2 == 0))
    fail(source, "L", std::to_string(c.L),
         "L must be odd (a window centred on the pixel) and at most " + std::to_string(kMaxL) + ", or 0 for global attention");
  check_rule(source, kKRule, c.K);
  if (c.tasks.empty()) fail(source, "tasks", "[]", "no tasks: list at least one of seg, depth, normal");
  std::set<Task> seen;
  for (const TaskSpec& t : c.tasks) {
    const std::string field = "tasks." + t.name(), value = std::to_string(t.channels);
    // Depth is one value per pixel and a normal three (the losses and metrics expect them);
    // only the class count is free.
    if (t.task == Task::depth && t.channels != 1) fail(source, field, value, "depth has 1 channel");
    if (t.task == Task::normal && t.channels != 3) fail(source, field, value, "a surface normal has 3 channels");
    if (t.task == Task::seg && (t.channels < 1 || t.channels > kMaxSegClasses))
      fail(source, field, value, "the class count must be an integer in [1, " + std::to_string(kMaxSegClasses) + "]");
    if (!seen.insert(t.task).second) throw std::invalid_argument(source + ": task '" + t.name() + "' listed twice");
  }
  if (!std::isfinite(c.alpha) || c.alpha < 0)
    fail(source, "alpha", number_text(c.alpha), "must be a finite number >= 0 (the L1 mimic loss factor)");
  // beta may be negative: -1 turns the gradient reversal into the identity (tests use it).
  if (!std::isfinite(c.beta)) fail(source, "beta", number_text(c.beta), "must be a finite number (the gradient-reversal factor)");
}

Config parse_config(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw std::invalid_argument(source + ": not valid JSON: " + json_error_text(e));
  }
  if (!j.is_object()) throw std::invalid_argument(source + ": expected a JSON object, got " + j.dump());
  const std::set<std::string> known = {"slow_depth", "fast_depth", "width", "C", "D", "L", "K", "tasks",
                                       "task_specific", "multi_frame", "attention", "weighting", "alpha", "beta", "mimic"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key())) throw std::invalid_argument(source + ": unknown field '" + it.key() + "'");

  // An integer field takes an integer literal only: 3.7 is refused, not rounded to 3, and a
  // value beyond the field's type is refused before it could wrap.
  auto integer = [&](const std::string& field, const json& v, int64_t min, int64_t max) -> int64_t {
    const std::string out_of_range = "is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    if (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()))  // 5.0, 1e30, or past uint64
      fail(source, field, v.dump(),
           std::abs(v.get<double>()) > double(max) ? out_of_range : "must be written as an integer (5, not 5.0)");
    if (!v.is_number_integer()) fail(source, field, v.dump(), "must be an integer");
    const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= uint64_t(max)
                                             : v.get<int64_t>() >= min && v.get<int64_t>() <= max;
    if (!fits) fail(source, field, v.dump(), out_of_range);
    return v.get<int64_t>();
  };
  constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
  Config c;
  auto get_integer = [&](const char* key, auto& field) {
    using T = std::remove_reference_t<decltype(field)>;
    if (j.contains(key)) field = T(integer(key, j.at(key), std::numeric_limits<T>::min(), std::numeric_limits<T>::max()));
  };
  auto get_bool = [&](const char* key, bool& field) {
    if (!j.contains(key)) return;
    if (!j.at(key).is_boolean()) fail(source, key, j.at(key).dump(), "must be true or false");
    field = j.at(key).get<bool>();
  };
  auto get_number = [&](const char* key, double& field) {
    if (!j.contains(key)) return;
    if (!j.at(key).is_number()) fail(source, key, j.at(key).dump(), "must be a number");
    field = j.at(key).get<double>();
  };
  get_integer("slow_depth", c.slow_depth);
  get_integer("fast_depth", c.fast_depth);
  get_integer("width", c.width);
  get_integer("C", c.C);
  get_integer("D", c.D);
  get_integer("L", c.L);
  get_integer("K", c.K);
  get_bool("task_specific", c.task_specific);
  get_bool("multi_frame", c.multi_frame);
  get_bool("attention", c.attention);
  if (j.contains("weighting")) {
    if (!j["weighting"].is_string()) fail(source, "weighting", j["weighting"].dump(), "must be a name in quotes");
    c.weighting = parse_name(source, kWeightingNames, j["weighting"].get<std::string>());
  }
  get_number("alpha", c.alpha);
  get_number("beta", c.beta);
  get_bool("mimic", c.mimic);
  if (j.contains("tasks")) {
    const json& t = j["tasks"];
    if (!t.is_array()) throw std::invalid_argument(source + ": 'tasks' must be a list of [name, channels], got " + t.dump());
    c.tasks.clear();
    for (const json& e : t) {
      if (!e.is_array() || e.size() != 2 || !e[0].is_string())
        throw std::invalid_argument(source + ": each task must be [name, channels], got " + e.dump());
      const Task task = parse_name(source, kTaskNames, e[0].get<std::string>());
      c.tasks.push_back({task, integer("tasks." + kTaskNames.name(task), e[1], 1 - kMaxInt, kMaxInt)});
    }
  }
  check_config(c, source);
  return c;
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

Config Config::from_json(const std::string& text) { return parse_config(text, "mila.config"); }

Config Config::from_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream text;
  if (f) text << f.rdbuf();
  if (!f) throw std::invalid_argument("config file " + path + ": cannot be read");
  return parse_config(text.str(), "config file " + path);
}

void Config::validate() const { check_config(*this, "mila.config"); }

int64_t Config::task_channels(Task task) const {
  for (const TaskSpec& t : tasks)
    if (t.task == task) return t.channels;
  return -1;
}

}  // namespace mila
