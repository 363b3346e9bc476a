// losses.cpp - fused cross-entropy over NCHW logits.
//
// Position p of image n reads its K logits at stride S (= H*W): one pass for the max, one
// for the sum of exponentials, one read of the target's logit. Positions are split into
// fixed chunks whose partial sums are added in order: thread-count independent.
#include "ops/cpu/losses.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/cpu/parallel.h"

namespace mila::cpu {
namespace {
constexpr int64_t kChunk = 4096;  // positions per partial sum

void check_targets(const int64_t* t, int64_t n, int64_t k, int64_t ignore_index) {
  for (int64_t i = 0; i < n; ++i)
    if (t[i] != ignore_index && (t[i] < 0 || t[i] >= k))
      throw std::out_of_range("cross_entropy: target " + std::to_string(t[i]) + " at position " + std::to_string(i) +
                              " is outside [0, " + std::to_string(k) + ") and is not ignore_index " +
                              std::to_string(ignore_index));
}
}  // namespace

double cross_entropy_forward(const Tensor& logits, const Tensor& target, int64_t ignore_index, int64_t& count) {
  const int64_t n = logits.size(0), k = logits.size(1), s = logits.numel() / (n * k);
  const int64_t* t = target.data<int64_t>();
  check_targets(t, n * s, k, ignore_index);
  const int64_t positions = n * s, chunks = (positions + kChunk - 1) / kChunk;
  std::vector<double> partial(size_t(chunks), 0.0);
  std::vector<int64_t> counted(size_t(chunks), 0);
  dispatch_floating(logits.dtype(), "cross_entropy", [&]<typename T>() {
    const T* x = logits.data<T>();
    parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        double acc = 0;
        int64_t valid = 0;
        for (int64_t p = c * kChunk; p < std::min(positions, (c + 1) * kChunk); ++p) {
          if (t[p] == ignore_index) continue;
          const T* row = x + (p / s) * k * s + p % s;  // logits of position p, stride s
          T m = row[0];
          for (int64_t j = 1; j < k; ++j) m = std::max(m, row[j * s]);
          double e = 0;
          for (int64_t j = 0; j < k; ++j) e += std::exp(double(row[j * s] - m));
          acc += double(m) + std::log(e) - double(row[t[p] * s]);
          ++valid;
        }
        partial[size_t(c)] = acc;
        counted[size_t(c)] = valid;
      }
    });
  });
  double total = 0;
  count = 0;
  for (int64_t c = 0; c < chunks; ++c) total += partial[size_t(c)], count += counted[size_t(c)];
  return total;
}

void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& target, int64_t ignore_index,
                            double scale) {
  const int64_t n = logits.size(0), k = logits.size(1), s = logits.numel() / (n * k);
  const int64_t* t = target.data<int64_t>();
  dispatch_floating(logits.dtype(), "cross_entropy_backward", [&]<typename T>() {
    const T* x = logits.data<T>();
    T* d = dlogits.data<T>();
    parallel_for(n * s, kChunk, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t base = (p / s) * k * s + p % s;
        if (t[p] == ignore_index) {
          for (int64_t j = 0; j < k; ++j) d[base + j * s] = T(0);
          continue;
        }
        T m = x[base];
        for (int64_t j = 1; j < k; ++j) m = std::max(m, x[base + j * s]);
        double e = 0;
        for (int64_t j = 0; j < k; ++j) e += std::exp(double(x[base + j * s] - m));
        for (int64_t j = 0; j < k; ++j) {
          const double prob = std::exp(double(x[base + j * s] - m)) / e;
          d[base + j * s] = T(scale * (prob - (j == t[p] ? 1.0 : 0.0)));
        }
      }
    });
  });
}

}  // namespace mila::cpu
