// fuzz_safetensors.cpp - libFuzzer target for the safetensors reader (nn/safetensors.h).
//
// Each input is a whole file. It goes to safetensors::parse, the reader behind
// safetensors::read, straight from libFuzzer's buffer: that buffer is exactly the input's
// size, so AddressSanitizer reports a read even one byte past the end (read()'s page-rounded
// mapping would hide it). An exception is the expected answer to a bad file (the reader
// throws safetensors::Error naming the problem); a sanitizer report or a crash is a bug.
//
//   build-fuzz/fuzz_safetensors tests/fuzz/corpus/safetensors     (scripts/fuzz.sh does this
//                                                                    on a copy of the corpus)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "nn/safetensors.h"

namespace {

// A file that was accepted must give back what its header promised.
void check(const mila::safetensors::Contents& c) {
  for (const auto& [name, t] : c.tensors) {
    if (!t.defined() || t.device() != mila::Device::cpu() ||
        (t.dtype() != mila::DType::Float32 && t.dtype() != mila::DType::Int64) || t.numel() < 0) {
      std::fprintf(stderr, "fuzz_safetensors: tensor '%s' read back malformed\n", name.c_str());
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    check(mila::safetensors::parse(data, size, "fuzz input"));
  } catch (const std::exception&) {
    // a refusal with a message (the reader throws safetensors::Error naming the problem)
  }
  return 0;
}
