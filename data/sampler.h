// sampler.h - which samples and which clip offset each batch gets: training (SPEC 4.4) and
// evaluation (SPEC 4.5). Works on sample counts only, so it serves any clip dataset.
//
// Training: samples are shuffled per epoch; batch b of the stream is batch b % n of epoch
// b / n (n = batches per epoch), and its offset o is uniform in [0, K-1], one per batch, so
// all its clips have o + 1 frames. Both are pure functions of (seed, b) through the
// counter-based Generator: a run resumed at batch b sees exactly the batches an
// uninterrupted run would, and the loader's worker count cannot change them.
//
// Evaluation: every sample once per offset o = 0..K-1 (the clip a-o..a with its keyframe at
// a-o), offset-major, in sample order, the last batch of each offset possibly smaller; so
// there are size * K clips in all.
#pragma once

#include <cstdint>
#include <vector>

namespace mila::data {

struct BatchPlan {
  int64_t index = 0;             // the batch's number in its stream
  int64_t offset = 0;            // o: the clips hold frames a-o..a, T = o + 1
  std::vector<int64_t> samples;  // dataset sample numbers, B of them
};

class TrainSampler {
 public:
  // drop_last: an epoch holds size / batch_size full batches (the rest of the shuffled samples
  // wait for the next epoch's shuffle); otherwise a smaller last batch ends the epoch.
  TrainSampler(int64_t dataset_size, int64_t batch_size, int64_t K, uint64_t seed, bool drop_last = true);
  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  BatchPlan plan(int64_t batch_index) const;
  // The sample order of epoch e (a permutation of 0..size-1).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  int64_t size_, batch_, K_;
  uint64_t seed_;
  bool drop_last_;
  int64_t batches_per_epoch_;
};

std::vector<BatchPlan> eval_plans(int64_t dataset_size, int64_t batch_size, int64_t K);

// An independent random stream for (seed, purpose, index): e.g. the augmentation of batch i.
// Streams with different (purpose, index) do not overlap.
uint64_t stream_seed(uint64_t seed, uint64_t purpose, uint64_t index);

// Purposes of the library's streams.
enum StreamPurpose : uint64_t { kStreamShuffle = 1, kStreamOffset = 2, kStreamAugment = 3 };

}  // namespace mila::data
