// sampler.cpp - training and evaluation batch plans (see sampler.h).
#include "data/sampler.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include "tensor/random.h"

namespace mila::data {

uint64_t stream_seed(uint64_t seed, uint64_t purpose, uint64_t index) {
  return Generator(Generator(seed).bits(purpose)).bits(index);
}

TrainSampler::TrainSampler(int64_t dataset_size, int64_t batch_size, int64_t K, uint64_t seed, bool drop_last)
    : size_(dataset_size), batch_(batch_size), K_(K), seed_(seed), drop_last_(drop_last) {
  if (batch_size < 1) throw std::invalid_argument("TrainSampler: batch size " + std::to_string(batch_size) + " must be >= 1");
  if (K < 1) throw std::invalid_argument("TrainSampler: keyframe interval K = " + std::to_string(K) + " must be >= 1");
  if (dataset_size < 1) throw std::invalid_argument("TrainSampler: the dataset is empty");
  batches_per_epoch_ = drop_last ? dataset_size / batch_size : (dataset_size + batch_size - 1) / batch_size;
  if (batches_per_epoch_ == 0)
    throw std::invalid_argument("TrainSampler: batch size " + std::to_string(batch_size) + " exceeds the dataset's " +
                                std::to_string(dataset_size) + " samples (with drop_last no batch fits)");
}

std::vector<int64_t> TrainSampler::epoch_order(int64_t epoch) const {
  // Fisher-Yates with draws from the epoch's own stream.
  std::vector<int64_t> order(size_t(size_), 0);
  std::iota(order.begin(), order.end(), int64_t(0));
  Generator gen(stream_seed(seed_, kStreamShuffle, uint64_t(epoch)));
  for (int64_t i = size_ - 1; i > 0; --i) {
    const int64_t j = int64_t(gen.next_bits() % uint64_t(i + 1));
    std::swap(order[size_t(i)], order[size_t(j)]);
  }
  return order;
}

BatchPlan TrainSampler::plan(int64_t batch_index) const {
  if (batch_index < 0) throw std::invalid_argument("TrainSampler::plan: negative batch index");
  const int64_t epoch = batch_index / batches_per_epoch_, b = batch_index % batches_per_epoch_;
  const std::vector<int64_t> order = epoch_order(epoch);
  BatchPlan plan;
  plan.index = batch_index;
  const int64_t begin = b * batch_, end = std::min(begin + batch_, size_);
  plan.samples.assign(order.begin() + begin, order.begin() + end);
  plan.offset = int64_t(Generator(stream_seed(seed_, kStreamOffset, uint64_t(batch_index))).bits(0) % uint64_t(K_));
  return plan;
}

std::vector<BatchPlan> eval_plans(int64_t dataset_size, int64_t batch_size, int64_t K) {
  if (batch_size < 1 || K < 1 || dataset_size < 0)
    throw std::invalid_argument("eval_plans: need batch_size >= 1, K >= 1, dataset_size >= 0 (got " + std::to_string(batch_size) +
                                ", " + std::to_string(K) + ", " + std::to_string(dataset_size) + ")");
  std::vector<BatchPlan> plans;
  for (int64_t o = 0; o < K; ++o)
    for (int64_t begin = 0; begin < dataset_size; begin += batch_size) {
      BatchPlan p;
      p.index = int64_t(plans.size());
      p.offset = o;
      for (int64_t s = begin; s < std::min(begin + batch_size, dataset_size); ++s) p.samples.push_back(s);
      plans.push_back(std::move(p));
    }
  return plans;
}

}  // namespace mila::data
