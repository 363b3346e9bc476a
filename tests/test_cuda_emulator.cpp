// test_cuda_emulator.cpp - the CPU emulator of the CUDA execution model (ops/cuda/emulator/):
// barriers, shared memory, warp collectives, the tensor-core fragment layout, the race check,
// launch errors; and the caching allocator it shares with the GPU build. Built only with
// -DMILA_CUDA=EMULATE, where its kernels (written here, in the dialect of ops/cuda/device.h)
// compile as C++.
#include <numeric>
#include <vector>

#include "ops/cuda/caching_allocator.h"
#include "ops/cuda/runtime.h"
#include "tests/test_util.h"

using namespace mila;
using namespace mila::cuda;

namespace {

// A device buffer of n values of T, copied back with host().
template <typename T>
struct DeviceBuffer {
  Tensor t;  // raw bytes on the device (the tensor library has no int32 dtype)
  int64_t n;
  explicit DeviceBuffer(int64_t count) : t(zeros({count * int64_t(sizeof(T))}, {DType::UInt8, Device::cuda()})), n(count) {}
  T* data() const { return static_cast<T*>(t.raw_data()); }
  std::vector<T> host() const {
    std::vector<T> v(static_cast<size_t>(n));
    CUDA_CHECK(cudaMemcpy(v.data(), data(), v.size() * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }
};

// Block sum through shared memory: each step halves the active threads, a barrier between.
__global__ void block_sum_kernel(float* out, const float* in, int n) {
  __shared__ SharedArray<float, 256> partial;
  const int tid = int(threadIdx.x), i = int(blockIdx.x * blockDim.x) + tid;
  partial[tid] = i < n ? in[i] : 0.0f;
  __syncthreads();
  for (int half = int(blockDim.x) / 2; half > 0; half /= 2) {
    if (tid < half) partial[tid] = float(partial[tid]) + float(partial[tid + half]);
    __syncthreads();
  }
  if (tid == 0) out[blockIdx.x] = partial[0];
}

// The same, with the barrier inside the loop missing: thread t reads partial[t + half],
// which thread t + half wrote in the same barrier interval.
__global__ void racy_sum_kernel(float* out, const float* in, int n) {
  __shared__ SharedArray<float, 256> partial;
  const int tid = int(threadIdx.x), i = int(blockIdx.x * blockDim.x) + tid;
  partial[tid] = i < n ? in[i] : 0.0f;
  __syncthreads();
  for (int half = int(blockDim.x) / 2; half > 0; half /= 2)
    if (tid < half) partial[tid] = float(partial[tid]) + float(partial[tid + half]);
  if (tid == 0) out[blockIdx.x] = partial[0];
}

__global__ void warp_ops_kernel(int* out) {
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  int v = lane + 100 * warp;
  int sum = v;
  for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(kFullMask, sum, off);
  const int down = __shfl_down_sync(kFullMask, v, 3);
  const int up = __shfl_up_sync(kFullMask, v, 5);
  const int bcast = __shfl_sync(kFullMask, v, 7);
  const unsigned ballot = __ballot_sync(kFullMask, lane % 3 == 0);
  const int all_small = __all_sync(kFullMask, lane < 32), any_big = __any_sync(kFullMask, lane > 30);
  int* o = out + threadIdx.x * 7;
  o[0] = sum, o[1] = down, o[2] = up, o[3] = bcast, o[4] = int(ballot), o[5] = all_small, o[6] = any_big;
}

__global__ void dynamic_shared_kernel(float* out) {
  SharedSpan<float> s = dynamic_shared<float>();
  const int tid = int(threadIdx.x), n = int(blockDim.x);
  s[tid] = float(tid);
  __syncthreads();
  out[blockIdx.x * blockDim.x + tid] = s[n - 1 - tid];  // reversed: another thread's write
}

__global__ void index_kernel(int* out) {
  const int linear_block = int(blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z));
  const int linear_thread = int(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
  const int per_block = int(blockDim.x * blockDim.y * blockDim.z);
  out[linear_block * per_block + linear_thread] = linear_block * 1000 + linear_thread;
}

// Half of a warp waits at __syncthreads, the other half in a shuffle: never completes.
__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    out[threadIdx.x] = __shfl_sync(kFullMask, int(threadIdx.x), 0);
  }
}

__global__ void throwing_kernel(int* out) {
  if (threadIdx.x == 5) throw std::runtime_error("bad thing");
  out[threadIdx.x] = 1;
}

// One warp computes D = A * B + C (16x8 = 16x8 * 8x8 + 16x8) with mma_m16n8k8_tf32, each lane
// loading its fragments by the layout of Note [tensor-core fragments].
__global__ void mma_kernel(float* d, const float* a, const float* b, const float* c) {
  const int lane = int(threadIdx.x), group = lane / 4, quad = lane % 4;
  const uint32_t af[4] = {to_tf32(a[group * 8 + quad]), to_tf32(a[(group + 8) * 8 + quad]),
                          to_tf32(a[group * 8 + quad + 4]), to_tf32(a[(group + 8) * 8 + quad + 4])};
  const uint32_t bf[2] = {to_tf32(b[quad * 8 + group]), to_tf32(b[(quad + 4) * 8 + group])};
  float acc[4] = {c[group * 8 + 2 * quad], c[group * 8 + 2 * quad + 1], c[(group + 8) * 8 + 2 * quad],
                  c[(group + 8) * 8 + 2 * quad + 1]};
  mma_m16n8k8_tf32(acc, af, bf);
  d[group * 8 + 2 * quad] = acc[0];
  d[group * 8 + 2 * quad + 1] = acc[1];
  d[(group + 8) * 8 + 2 * quad] = acc[2];
  d[(group + 8) * 8 + 2 * quad + 1] = acc[3];
}

__global__ void cp_async_kernel(float* out, const float* in) {
  __shared__ SharedArray<float, 64> tile;
  const int tid = int(threadIdx.x);  // 16 threads, 4 floats each
  cp_async_16(tile.span() + 4 * tid, in + 4 * tid);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  for (int k = 0; k < 4; ++k) out[4 * tid + k] = tile[63 - (4 * tid + k)];
}

// Four 8x8 matrices of 16-bit values m * 64 + row * 8 + col, loaded by ldmatrix_x4.
__global__ void ldmatrix_kernel(uint32_t* out) {
  __shared__ SharedArray<uint16_t, 4 * 64> tiles;  // 16-byte aligned, as ldmatrix needs
  const int lane = int(threadIdx.x);
  for (int i = lane; i < 4 * 64; i += 32) tiles[i] = uint16_t(i);
  __syncthreads();
  uint32_t r[4];
  ldmatrix_x4(r, tiles.span() + (lane / 8) * 64 + (lane % 8) * 8);  // row lane % 8 of matrix lane / 8
  for (int j = 0; j < 4; ++j) out[lane * 4 + j] = r[j];
}

template <typename T>
DeviceBuffer<T> upload(const std::vector<T>& v) {
  DeviceBuffer<T> b(int64_t(v.size()));
  CUDA_CHECK(cudaMemcpy(b.data(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return b;
}

}  // namespace

TEST_CASE("emulator: shared memory and __syncthreads give a block reduction") {
  const int n = 1000;  // not a multiple of the block: the last block's tail reads zeros
  std::vector<float> x(n);
  std::iota(x.begin(), x.end(), 1.0f);
  const DeviceBuffer<float> in = upload(x);
  DeviceBuffer<float> out(4);
  MILA_LAUNCH(block_sum_kernel, dim3(4), dim3(256), 0, out.data(), in.data(), n);
  const std::vector<float> got = out.host();
  for (int b = 0; b < 4; ++b) {
    double expect = 0;
    for (int i = b * 256; i < std::min(n, (b + 1) * 256); ++i) expect += x[size_t(i)];
    CHECK(got[size_t(b)] == doctest::Approx(expect).epsilon(1e-6));
  }
}

TEST_CASE("emulator: the race check finds a missing __syncthreads") {
  std::vector<float> x(256, 1.0f);
  const DeviceBuffer<float> in = upload(x);
  DeviceBuffer<float> out(1);
  test::check_throws_with([&] { MILA_LAUNCH(racy_sum_kernel, dim3(1), dim3(256), 0, out.data(), in.data(), 256); },
                          {"race on shared memory", "racy_sum_kernel", "test_cuda_emulator.cpp", "block (0,0,0)",
                           "no __syncthreads between them"});
  // The emulator is usable after the error: the correct kernel runs.
  MILA_LAUNCH(block_sum_kernel, dim3(1), dim3(256), 0, out.data(), in.data(), 256);
  CHECK(out.host()[0] == 256.0f);
}

TEST_CASE("emulator: warp shuffles and votes") {
  DeviceBuffer<int> out(64 * 7);
  MILA_LAUNCH(warp_ops_kernel, dim3(1), dim3(64), 0, out.data());
  const std::vector<int> o = out.host();
  for (int t = 0; t < 64; ++t) {
    CAPTURE(t);
    const int lane = t % 32, warp = t / 32, base = 100 * warp;
    const int* r = &o[size_t(t) * 7];
    CHECK(r[0] == 32 * base + 496);                               // sum of lane + base over the warp
    CHECK(r[1] == (lane + 3 < 32 ? lane + 3 + base : lane + base));  // out of range: own value
    CHECK(r[2] == (lane >= 5 ? lane - 5 + base : lane + base));
    CHECK(r[3] == 7 + base);
    CHECK(unsigned(r[4]) == 0x49249249u);  // lanes 0, 3, 6, ..., 30
    CHECK(r[5] == 1);
    CHECK(r[6] == 1);
  }
}

TEST_CASE("emulator: dynamic shared memory, and 3-d grids and blocks") {
  DeviceBuffer<float> out(2 * 96);
  MILA_LAUNCH(dynamic_shared_kernel, dim3(2), dim3(96), 96 * sizeof(float), out.data());
  const std::vector<float> got = out.host();
  for (int i = 0; i < 2 * 96; ++i) CHECK(got[size_t(i)] == float(95 - i % 96));

  DeviceBuffer<int> ids(2 * 3 * 2 * (4 * 2 * 3));
  MILA_LAUNCH(index_kernel, dim3(2, 3, 2), dim3(4, 2, 3), 0, ids.data());
  const std::vector<int> v = ids.host();
  for (size_t i = 0; i < v.size(); ++i) CHECK(v[i] == int(i / 24) * 1000 + int(i % 24));
}

TEST_CASE("emulator: mma.m16n8k8 fragments follow the PTX layout exactly") {
  // Small integers are exact in TF32, so D must equal the reference bit for bit.
  std::vector<float> a(16 * 8), b(8 * 8), c(16 * 8);
  for (int i = 0; i < 16 * 8; ++i) a[size_t(i)] = float((i * 7) % 11 - 5), c[size_t(i)] = float(i % 5);
  for (int i = 0; i < 8 * 8; ++i) b[size_t(i)] = float((i * 3) % 7 - 3);
  const DeviceBuffer<float> da = upload(a), db = upload(b), dc = upload(c);
  DeviceBuffer<float> dd(16 * 8);
  MILA_LAUNCH(mma_kernel, dim3(1), dim3(32), 0, dd.data(), da.data(), db.data(), dc.data());
  const std::vector<float> d = dd.host();
  for (int r = 0; r < 16; ++r)
    for (int col = 0; col < 8; ++col) {
      float expect = c[size_t(r * 8 + col)];
      for (int k = 0; k < 8; ++k) expect += a[size_t(r * 8 + k)] * b[size_t(k * 8 + col)];
      CHECK(d[size_t(r * 8 + col)] == expect);
    }
}

TEST_CASE("emulator: to_tf32 keeps 10 mantissa bits, rounding to nearest with ties away from zero") {
  CHECK(std::bit_cast<float>(to_tf32(1.0f)) == 1.0f);
  const float ulp = std::ldexp(1.0f, -10);  // TF32's spacing just above 1
  CHECK(std::bit_cast<float>(to_tf32(1.0f + ulp * 0.49f)) == 1.0f);
  CHECK(std::bit_cast<float>(to_tf32(1.0f + ulp * 0.5f)) == 1.0f + ulp);  // a tie: away from zero
  CHECK(std::bit_cast<float>(to_tf32(-1.0f - ulp * 0.5f)) == -1.0f - ulp);
  CHECK(std::isinf(std::bit_cast<float>(to_tf32(INFINITY))));
  CHECK(std::isnan(std::bit_cast<float>(to_tf32(NAN))));
}

TEST_CASE("emulator: cp.async copies 16 bytes into shared memory") {
  std::vector<float> x(64);
  std::iota(x.begin(), x.end(), 0.0f);
  const DeviceBuffer<float> in = upload(x);
  DeviceBuffer<float> out(64);
  MILA_LAUNCH(cp_async_kernel, dim3(1), dim3(16), 0, out.data(), in.data());
  const std::vector<float> got = out.host();
  for (int i = 0; i < 64; ++i) CHECK(got[size_t(i)] == float(63 - i));
  // One float off: a GPU faults (misaligned address), and so does the emulator.
  test::check_throws_with([&] { MILA_LAUNCH(cp_async_kernel, dim3(1), dim3(16), 0, out.data(), in.data() + 1); },
                          {"cp_async_kernel", "cp_async_16: misaligned address"});
}

TEST_CASE("emulator: ldmatrix.x4 hands each lane the elements of the PTX layout") {
  DeviceBuffer<uint32_t> out(32 * 4);
  MILA_LAUNCH(ldmatrix_kernel, dim3(1), dim3(32), 0, out.data());
  const std::vector<uint32_t> r = out.host();
  for (int lane = 0; lane < 32; ++lane)
    for (int j = 0; j < 4; ++j) {
      const uint32_t first = uint32_t(j * 64 + (lane / 4) * 8 + 2 * (lane % 4));  // row lane / 4, column 2 (lane % 4)
      CHECK(r[size_t(lane * 4 + j)] == (first | (first + 1) << 16));
    }
}

TEST_CASE("emulator: a barrier in divergent code, a throwing kernel and a bad launch are reported") {
  DeviceBuffer<int> out(32);
  test::check_throws_with([&] { MILA_LAUNCH(divergent_barrier_kernel, dim3(1), dim3(32), 0, out.data()); },
                          {"divergent_barrier_kernel", "16 threads wait at __syncthreads", "16 wait in warp collectives"});
  test::check_throws_with([&] { MILA_LAUNCH(throwing_kernel, dim3(1), dim3(32), 0, out.data()); },
                          {"throwing_kernel", "threw: bad thing"});
  test::check_throws_with([&] { MILA_LAUNCH(index_kernel, dim3(1), dim3(2048), 0, out.data()); },
                          {"kernel index_kernel", "test_cuda_emulator.cpp", "block (2048,1,1)",
                           "cudaErrorInvalidConfiguration"});
  // Nothing is left behind: the next launch works.
  MILA_LAUNCH(index_kernel, dim3(1), dim3(32), 0, out.data());
  CHECK(out.host()[31] == 31);
}

TEST_CASE("caching allocator: size classes, reuse across steps, statistics, empty_cache") {
  CHECK(size_class(1) == 512);
  CHECK(size_class(512) == 512);
  CHECK(size_class(513) == 640);
  CHECK(size_class(1 << 20) == size_t(1) << 20);
  CHECK(size_class((1 << 20) + 1) == (size_t(1) << 20) + (size_t(1) << 18));
  for (size_t n : {size_t(700), size_t(5000), size_t(123457), size_t(3) << 20})
    CHECK((size_class(n) >= n && size_class(n) - n < n / 4 + 512));

  const Device gpu = Device::cuda();
  const MemoryStats base = memory_stats(gpu);
  auto step = [&] {
    const Tensor a = ones({37, 41}, {DType::Float32, gpu}), b = full({1000}, 2.0, {DType::Float32, gpu});
    return add(a, a).numel() + b.numel();
  };
  step();
  const MemoryStats warm = memory_stats(gpu);
  CHECK(warm.bytes_in_use == base.bytes_in_use);  // everything returned
  CHECK(warm.peak_bytes >= base.bytes_in_use + int64_t(2 * 37 * 41 * 4));
  for (int i = 0; i < 3; ++i) step();
  const MemoryStats steady = memory_stats(gpu);
  CHECK(steady.backend_allocations == warm.backend_allocations);  // served from the cache
  CHECK(steady.allocations > warm.allocations);
  CHECK(steady.bytes_cached > 0);
  empty_cache(gpu);
  CHECK(memory_stats(gpu).bytes_cached == 0);
  CHECK(memory_stats(gpu).bytes_in_use == base.bytes_in_use);
}

TEST_CASE("pinned buffers are recycled once the stream has passed their copies") {
  void* first = nullptr;
  {
    PinnedBuffer a(1000);
    first = a.data();
    CHECK(a.size() == 1000);
  }
  context().synchronize();
  PinnedBuffer b(900);  // the same size class: the same block again
  CHECK(b.data() == first);
  PinnedBuffer c(900);  // b holds it: a new one
  CHECK(c.data() != first);
}

TEST_CASE("the context: properties, workspace, error word") {
  Context& ctx = context();
  CHECK(ctx.emulated());
  CHECK(ctx.compute_capability() >= 80);
  CHECK(std::string(ctx.properties().name).find("emulator") != std::string::npos);
  void* w1 = ctx.workspace(100);
  CHECK(w1 != nullptr);
  CHECK(ctx.workspace(50) == w1);  // big enough already
  int* word = ctx.error_word();
  ctx.check_error_word("nothing wrong");  // does not throw
  const int code = int(DeviceError::index_out_of_range);
  CUDA_CHECK(cudaMemcpy(word, &code, sizeof code, cudaMemcpyHostToDevice));
  test::check_throws_with([&] { ctx.check_error_word("gather: index out of range"); }, {"gather: index out of range"});
}
