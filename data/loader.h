// loader.h - batches as the model sees them, and a prefetching loader that decodes and
// augments them on worker threads while the model trains.
//
// Determinism: batch i is a pure function of (dataset, plan i, seed): the plan comes from
// the sampler (sampler.h), the augmentation of its samples from the Generator stream
// stream_seed(seed, kStreamAugment, i). Workers only decide *when* a batch is made, never
// what is in it, and the loader hands batches out strictly in index order; so 0, 1 or 8
// workers give identical batches, and a run resumed at batch i continues exactly.
//
// Threads: `workers` std::threads take the lowest unclaimed index; at most `capacity`
// batches are made ahead of the consumer (a bounded queue: memory stays bounded when the
// model is slower than the loader). An exception while making batch i (a corrupt file, say)
// is stored and rethrown by next() when the consumer reaches batch i. The destructor stops
// the workers and joins them; a worker finishing a batch nobody will take just drops it.
// workers = 0 makes each batch in next() on the calling thread (for debugging).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/video_dataset.h"
#include "data/sampler.h"

namespace mila::data {

// One batch (SPEC 4.4; the tensors train_nyu's --dump-first-batch writes).
struct Batch {
  int64_t index = 0;             // the batch's number in its stream
  int64_t offset = 0;            // o: T = o + 1 frames per clip
  int64_t t0 = 0;                // keyframe phase within the clip: the first frame (a - o) is the keyframe
  std::vector<int64_t> samples;  // dataset sample numbers, B of them
  Tensor frames;                 // float32 [T, B, 3, H, W], normalized (SPEC 1); frames[T-1] are the annotated frames
  Tensor seg;                    // int64   [B, H, W], 255 = ignore
  Tensor depth;                  // float32 [B, 1, H, W], metres, 0 = invalid
  Tensor normal;                 // float32 [B, 3, H, W], unit or zero (invalid)
};

// Loads, augments (when `augment` is given) and normalizes the plan's clips and stacks them.
// Sample b of the batch draws its AugmentParams b-th from Generator(stream_seed(seed,
// kStreamAugment, plan.index)).
Batch make_batch(const VideoDataset& dataset, const BatchPlan& plan, const AugmentConfig* augment, uint64_t seed);

class PrefetchLoader {
 public:
  using Producer = std::function<Batch(int64_t index)>;
  // Makes batches first, first + 1, ... (count of them; count < 0: without end).
  PrefetchLoader(Producer produce, int64_t first, int64_t count, int workers = 2, int64_t capacity = 4);
  ~PrefetchLoader();
  PrefetchLoader(const PrefetchLoader&) = delete;
  PrefetchLoader& operator=(const PrefetchLoader&) = delete;

  // The next batch in index order; false after the last. Rethrows a worker's exception.
  bool next(Batch& out);
  int64_t next_index() const { return next_out_; }

 private:
  void work();
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };
  Producer produce_;
  int64_t end_;
  int64_t capacity_;
  std::mutex mutex_;
  std::condition_variable can_claim_, ready_;
  int64_t next_claim_;  // the lowest index no worker has taken
  int64_t next_out_;    // the index next() returns next
  bool stop_ = false;
  std::map<int64_t, Slot> done_;
  std::vector<std::thread> threads_;
};

struct TrainLoaderConfig {
  int64_t batch_size = 4;
  int64_t K = 5;
  uint64_t seed = 0;
  bool augment = true;
  AugmentConfig augment_config;
  int workers = 2;
  int64_t capacity = 4;
  int64_t first_batch = 0;  // resume: the stream continues at this batch
  int64_t num_batches = -1; // -1: without end
};

// The training stream: TrainSampler plans (drop_last) made into batches. The dataset must
// outlive the loader.
std::unique_ptr<PrefetchLoader> make_train_loader(const VideoDataset& dataset, const TrainLoaderConfig& config);

// Evaluation: eval_plans (every sample once per offset 0..K-1), no augmentation.
std::unique_ptr<PrefetchLoader> make_eval_loader(const VideoDataset& dataset, int64_t batch_size, int64_t K, int workers = 2,
                                                 int64_t capacity = 4);

}  // namespace mila::data
