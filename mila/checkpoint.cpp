// checkpoint.cpp - see checkpoint.h.
#include "mila/checkpoint.h"

#include <stdexcept>

#include "nn/safetensors.h"

namespace mila {

void save_model(const std::string& path, const Model& model, std::map<std::string, std::string> metadata) {
  metadata[kConfigKey] = model.config().to_json();
  safetensors::write(path, model.state_dict(), metadata);
}

Config read_model_config(const std::string& path) {
  const safetensors::Contents file = safetensors::read(path);
  const auto it = file.metadata.find(kConfigKey);
  if (it == file.metadata.end())
    throw std::runtime_error("read_model_config: " + path + " has no \"" + kConfigKey +
                             "\" metadata: it is not a MILA checkpoint (a ResNet checkpoint goes to --init slow=FILE or fast=FILE)");
  try {
    Config cfg = Config::from_json(it->second);
    cfg.validate();
    return cfg;
  } catch (const std::exception& e) {
    throw std::runtime_error("read_model_config: " + path + ": " + e.what());
  }
}

std::unique_ptr<Model> load_model(const std::string& path) {
  auto model = std::make_unique<Model>(read_model_config(path));
  const safetensors::Contents file = safetensors::read(path);
  nn::NamedTensors state(file.tensors.begin(), file.tensors.end());
  try {
    model->load_state_dict(state, /*strict=*/true);
  } catch (const std::exception& e) {
    throw std::runtime_error("load_model: " + path + ": " + e.what());
  }
  return model;
}

nn::LoadReport init_from(Model& model, const std::string& spec) {
  std::string prefix, path = spec;
  const size_t eq = spec.find('=');
  if (eq != std::string::npos) {
    const std::string part = spec.substr(0, eq);
    if (part != "slow" && part != "fast")
      throw std::invalid_argument("init_from: expected FILE, slow=FILE or fast=FILE, got '" + spec + "'");
    prefix = part + ".";
    path = spec.substr(eq + 1);
  }
  const safetensors::Contents file = safetensors::read(path);
  nn::NamedTensors state;
  for (const auto& [name, t] : file.tensors) state.emplace_back(prefix + name, t);
  const size_t expected = model.state_dict().size();
  const nn::LoadReport report = model.load_state_dict(state, /*strict=*/false);
  // Everything the file offered that the model lacked, or got with another shape, is in
  // `unexpected` / `mismatched`; the rest was loaded.
  const size_t loaded = state.size() - report.unexpected.size() - report.mismatched.size();
  if (loaded == 0)
    throw std::runtime_error("init_from: nothing in " + path + " matches the model" +
                             (prefix.empty() ? "" : " under the prefix '" + prefix + "'") + " (" +
                             std::to_string(state.size()) + " tensors in the file, " + std::to_string(expected) +
                             " in the model): " + report.str());
  return report;
}

}  // namespace mila
