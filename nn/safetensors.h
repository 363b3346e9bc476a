// safetensors.h - the checkpoint format (SPEC section 2): read and write safetensors files.
//
//   [8 bytes: little-endian u64 N][N bytes: JSON header][data]
//   header: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//            "__metadata__": {"key": "value", ...}}      offsets relative to the data start
//
// Writing emits F32 and I64 (float64 tensors are written as F32, uint8 as I64 is refused:
// see write), atomically: a temporary file in the same folder, flushed to disk,
// then renamed over the target, so a crash never leaves a half-written checkpoint.
// Reading maps the file into memory (no second copy of the file's bytes) and accepts F32,
// F16, BF16 (converted to float32) and I64. Every malformed file - truncated, header length
// past the end, bad JSON, unknown dtype, shape and size disagreeing, offsets out of range,
// overlapping or leaving bytes uncovered, a key listed twice in one JSON object, a path that
// is a directory - throws safetensors::Error naming the file and the tensor; nothing reads
// outside the mapped file. `parse` is the same reader over bytes already in memory (the
// fuzz target tests/fuzz/fuzz_safetensors.cpp hands it exactly the bytes it owns, so that
// AddressSanitizer sees any read past them, which a page-rounded mapping would hide).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace mila::safetensors {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Contents {
  std::vector<std::pair<std::string, Tensor>> tensors;  // in file (data offset) order
  std::map<std::string, std::string> metadata;
  // The tensor called `name`, or an undefined Tensor.
  Tensor find(const std::string& name) const;
};

// Tensors may live on any device and have any strides; they are written as C-order data.
void write(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// All tensors on the CPU, float32 or int64.
Contents read(const std::string& path);
// The same from `size` bytes at `bytes`; `source` names them in error messages.
Contents parse(const uint8_t* bytes, size_t size, const std::string& source);

}  // namespace mila::safetensors
