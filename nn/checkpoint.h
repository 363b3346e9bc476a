// checkpoint.h - modules to and from safetensors files (SPEC section 2).
#pragma once

#include <map>
#include <string>

#include "nn/module.h"

namespace mila::nn {

// Writes module.state_dict() (atomically) with optional string metadata.
void save_checkpoint(const std::string& path, const Module& module, const std::map<std::string, std::string>& metadata = {});

// Reads a checkpoint into `module`. strict: every name, shape (and dtype kind) must match,
// else one error listing the missing, unexpected and mis-shaped names, prefixed by the file.
// non-strict: loads what matches and returns the report of what it skipped.
LoadReport load_checkpoint(const std::string& path, Module& module, bool strict = true);

}  // namespace mila::nn
