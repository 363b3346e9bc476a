// memory.h - how much memory a training step or a streamed frame needs, estimated from the
// shapes alone before anything is rendered, built or allocated, so that a size no machine
// can hold is refused with the numbers at once instead of failing with std::bad_alloc after
// minutes of work.
//
// A training step of B clips of T frames (T <= K; the loader's longest clip is K frames) at
// H x W, in bytes (4 per float32 element):
//   parameters   4 P                 P = parameter_count(cfg, with training extras)
//   gradients    4 P
//   optimizer    4 P s               s = state tensors per parameter: Adam 2, SGD 1
//   activations  4 B A (1 + m)       what the forward keeps for backward, per clip (below),
//                                    and m = 1/4 for the gradients that backward holds at once
//   data         the loader's batches in flight: (capacity + workers + 1) batches of
//                B T 3 H W floats and B H W of labels (24 bytes a pixel), plus each worker's
//                augmentation at up to 1.5 x 1.5 the frame area
// with A, per clip, in elements (F = the feature map's pixels, H/8 x W/8; n = L*L or F when
// L = 0; S = 2 or 3 slots; N_b the SE/ILA blocks; c_t a task's channels):
//   3 R_slow + (T - 1) 3 R_fast      every frame's encoder, R = the sum of a ResNet's conv
//                                    outputs (mila/cost.h): each conv's output, its batch
//                                    norm's output and the ReLU or residual sum after it
//   + T (3 F C + N_b F (2 C + 2 D))  each frame's neck (conv, norm, ReLU), SE and keys
//   + sum_t [2 (2 F n + F C) + S F C + 2304 F + c_t F + 8 c_t H W]
//                                    the last frame's heads: two ILA calls (logits, softmax,
//                                    output), the concat, the head's 512- and 256-channel
//                                    convs with norms and ReLUs, the output, its upsampling,
//                                    normalization and loss terms at full resolution
//   + 3 R_fast + 3 F C + 3 F C       the mimic terms' extra encoder pass and discriminator
// The factors are counts of tensors each layer leaves alive, not fitted constants. Against
// the allocator's peak bytes in use over two Adam steps (tests/test_validation.cpp checks
// it), the estimate less its data term was 1.2 to 1.6 times the measurement: small model
// at 96x128, batch 4, 3 frames: 232 MiB for 144 MiB measured; the paper's model at 96x128,
// batch 2, 5 frames: 1.5 GiB for 1.3 GiB. The process's resident peak adds the CPU
// allocator's cache of freed blocks (at most 1 GiB, tensor/allocator.cpp): 1.7 GiB in the
// second case. So the estimate is an upper-ish bound meant to catch sizes that are out of
// reach by far (terabytes), not to fill a machine to the last gigabyte.
//
// A streamed frame (examples/predict, mila/stream.h; batch 1, no gradient): 4 P for the
// parameters, the largest conv output 4 times over (a layer's input, output, norm and
// activation), the stream's state of two frames (key, previous) per block, the heads of one
// task at a time and every task's outputs at full resolution, and the frame itself.
#pragma once

#include <cstdint>
#include <string>

#include "mila/config.h"

namespace mila {

struct MemoryEstimate {
  double parameters = 0, gradients = 0, optimizer = 0, activations = 0, data = 0;  // bytes
  double total() const { return parameters + gradients + optimizer + activations + data; }
  // "2.1 GiB (parameters 95 MiB, gradients 95 MiB, optimizer 190 MiB, activations 1.7 GiB, data 64 MiB)"
  std::string str() const;
};

struct TrainingShape {
  int64_t batch = 4;
  int64_t clip_length = 5;       // frames per clip, the config's K at most
  int64_t height = 0, width = 0; // the frames as the model sees them
  int optimizer_states = 2;      // per parameter: Adam 2, SGD 1
  int64_t batches_in_flight = 7; // the loader's capacity + workers + the one in use
  int64_t workers = 2;           // each augments one batch at a time
};

// The estimate above. Throws std::invalid_argument when the config or a size is invalid.
MemoryEstimate estimate_training_memory(const Config& cfg, const TrainingShape& shape);
MemoryEstimate estimate_streaming_memory(const Config& cfg, int64_t height, int64_t width);

// Bytes this process can still get: /proc/meminfo's MemAvailable, else sysconf's available
// physical pages; 0 when neither says.
int64_t available_memory_bytes();

// "512 B", "3.0 KiB", "1.5 GiB", "2.3 TiB".
std::string bytes_text(double bytes);

}  // namespace mila
