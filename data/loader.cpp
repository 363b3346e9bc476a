// loader.cpp - batch assembly and the prefetching loader (see loader.h).
#include "data/loader.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace mila::data {

Batch make_batch(const VideoDataset& ds, const BatchPlan& plan, const AugmentConfig* augment, uint64_t seed) {
  const int64_t B = int64_t(plan.samples.size()), T = plan.offset + 1, H = ds.height(), W = ds.width(), HW = H * W;
  if (B == 0) throw std::invalid_argument("make_batch: batch " + std::to_string(plan.index) + " has no samples");
  Batch batch;
  batch.index = plan.index;
  batch.offset = plan.offset;
  batch.t0 = 0;
  batch.samples = plan.samples;
  batch.frames = Tensor::allocate({T, B, 3, H, W}, DType::Float32, Device::cpu());
  batch.seg = Tensor::allocate({B, H, W}, DType::Int64, Device::cpu());
  batch.depth = Tensor::allocate({B, 1, H, W}, DType::Float32, Device::cpu());
  batch.normal = Tensor::allocate({B, 3, H, W}, DType::Float32, Device::cpu());
  Generator gen(stream_seed(seed, kStreamAugment, uint64_t(plan.index)));

  for (int64_t b = 0; b < B; ++b) {
    ClipData clip = ds.load_clip(plan.samples[size_t(b)], plan.offset);
    if (augment) clip = augment_clip(clip, draw_augment_params(*augment, H, W, gen));
    normalize_frames_(clip.frames);
    // Scatter the clip's frames [T, 3, H, W] into the batch's [T, B, 3, H, W].
    for (int64_t t = 0; t < T; ++t)
      std::memcpy(batch.frames.data<float>() + (t * B + b) * 3 * HW, clip.frames.data<float>() + t * 3 * HW, sizeof(float) * 3 * HW);
    std::memcpy(batch.seg.data<int64_t>() + b * HW, clip.seg.data<int64_t>(), sizeof(int64_t) * HW);
    std::memcpy(batch.depth.data<float>() + b * HW, clip.depth.data<float>(), sizeof(float) * HW);
    std::memcpy(batch.normal.data<float>() + b * 3 * HW, clip.normal.data<float>(), sizeof(float) * 3 * HW);
  }
  return batch;
}

PrefetchLoader::PrefetchLoader(Producer produce, int64_t first, int64_t count, int workers, int64_t capacity)
    : produce_(std::move(produce)),
      end_(count < 0 ? std::numeric_limits<int64_t>::max() : first + count),
      capacity_(std::max<int64_t>(capacity, 1)),
      next_claim_(first),
      next_out_(first) {
  if (workers < 0) throw std::invalid_argument("PrefetchLoader: negative worker count");
  for (int w = 0; w < workers; ++w) threads_.emplace_back([this] { work(); });
}

PrefetchLoader::~PrefetchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  can_claim_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void PrefetchLoader::work() {
  for (;;) {
    int64_t index;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // Claim the next index once it is within `capacity` batches of the consumer.
      can_claim_.wait(lock, [&] { return stop_ || next_claim_ >= end_ || next_claim_ < next_out_ + capacity_; });
      if (stop_ || next_claim_ >= end_) return;
      index = next_claim_++;
    }
    Slot slot;
    try {
      slot.batch = produce_(index);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.emplace(index, std::move(slot));
    }
    ready_.notify_all();
  }
}

bool PrefetchLoader::next(Batch& out) {
  if (next_out_ >= end_) return false;
  if (threads_.empty()) {  // no workers: make it here (a failed batch is passed, as with workers)
    const int64_t index = next_out_++;
    out = produce_(index);
    return true;
  }
  Slot slot;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return done_.count(next_out_) > 0; });
    auto it = done_.find(next_out_);
    slot = std::move(it->second);
    done_.erase(it);
    ++next_out_;
  }
  can_claim_.notify_all();  // a place in the queue is free
  if (slot.error) std::rethrow_exception(slot.error);
  out = std::move(slot.batch);
  return true;
}

std::unique_ptr<PrefetchLoader> make_train_loader(const VideoDataset& dataset, const TrainLoaderConfig& c) {
  auto sampler = std::make_shared<TrainSampler>(dataset.size(), c.batch_size, c.K, c.seed, true);
  const AugmentConfig aug = c.augment_config;
  const bool augment = c.augment;
  const uint64_t seed = c.seed;
  auto produce = [&dataset, sampler, aug, augment, seed](int64_t i) {
    return make_batch(dataset, sampler->plan(i), augment ? &aug : nullptr, seed);
  };
  return std::make_unique<PrefetchLoader>(produce, c.first_batch, c.num_batches, c.workers, c.capacity);
}

std::unique_ptr<PrefetchLoader> make_eval_loader(const VideoDataset& dataset, int64_t batch_size, int64_t K, int workers,
                                                 int64_t capacity) {
  auto plans = std::make_shared<std::vector<BatchPlan>>(eval_plans(dataset.size(), batch_size, K));
  auto produce = [&dataset, plans](int64_t i) { return make_batch(dataset, (*plans)[size_t(i)], nullptr, 0); };
  return std::make_unique<PrefetchLoader>(produce, 0, int64_t(plans->size()), workers, capacity);
}

}  // namespace mila::data
