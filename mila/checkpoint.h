// checkpoint.h - MILA models to and from safetensors files (SPEC 2): the model's state_dict
// with its Config as JSON under the metadata key "mila.config", so a checkpoint alone
// rebuilds its model; and the --init rules of examples/train_nyu (start from a MILA
// checkpoint, or from ImageNet ResNet classifiers for the Slow and Fast backbones).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "mila/model.h"
#include "nn/module.h"

namespace mila {

inline constexpr const char* kConfigKey = "mila.config";

// Writes model.state_dict() atomically with "mila.config" plus `metadata`.
void save_model(const std::string& path, const Model& model, std::map<std::string, std::string> metadata = {});
// The Config stored in a checkpoint; throws naming the file when there is none.
Config read_model_config(const std::string& path);
// A model built from the checkpoint's config with every tensor loaded strictly.
std::unique_ptr<Model> load_model(const std::string& path);

// Initializes part of a model from a file, non-strictly (what did not match is reported):
//   "FILE"        a MILA checkpoint (or any state dict with MILA's names)
//   "slow=FILE"   a ResNet checkpoint (torchvision names, e.g. an ImageNet classifier:
//   "fast=FILE"   its fc.* is skipped) loaded under the prefix "slow." or "fast."
// Throws when nothing at all matched (a wrong file is then not silently ignored).
nn::LoadReport init_from(Model& model, const std::string& spec);

}  // namespace mila
