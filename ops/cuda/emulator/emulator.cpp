// emulator.cpp - runs CUDA kernels on the CPU: blocks in turn, threads as fibers
// (Note [emulator] in emulator.h), and the part of the CUDA runtime API the project uses.
#include "ops/cuda/emulator/emulator.h"

#include <sys/mman.h>
#include <unistd.h>

#include <boost/context/fiber.hpp>
#include <cstdlib>
#include <exception>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace mila::cuda::emulator {
namespace {

namespace ctx = boost::context;

// ---- fiber stacks: allocated once, reused by every block --------------------------------------
// 128 KiB each plus a guard page below it, so a kernel that overflows its stack faults at
// once instead of corrupting its neighbour. A block of 1024 threads reserves 129 MiB of
// address space; pages are only touched as deep as the kernels go.
constexpr size_t kStackBytes = size_t(128) << 10;

class StackPool {
 public:
  ~StackPool() {
    for (const ctx::stack_context& s : free_) ::munmap(static_cast<char*>(s.sp) - s.size - page(), s.size + page());
  }
  ctx::stack_context take() {
    if (!free_.empty()) {
      ctx::stack_context s = free_.back();
      free_.pop_back();
      return s;
    }
    const size_t total = kStackBytes + page();
    void* base = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) throw std::bad_alloc();
    ::mprotect(base, page(), PROT_NONE);  // the guard page
    ctx::stack_context s;
    s.size = kStackBytes;
    s.sp = static_cast<char*>(base) + total;  // stacks grow down: sp is the top
    return s;
  }
  void give_back(ctx::stack_context& s) { free_.push_back(s); }

 private:
  static size_t page() {
    static const size_t p = size_t(::sysconf(_SC_PAGESIZE));
    return p;
  }
  std::vector<ctx::stack_context> free_;
};

struct PooledStack {  // Boost.Context's StackAllocator concept over the pool
  StackPool* pool;
  ctx::stack_context allocate() { return pool->take(); }
  void deallocate(ctx::stack_context& s) noexcept { pool->give_back(s); }
};

// ---- the state of a launch --------------------------------------------------------------------
enum class Wait : uint8_t { running, block_barrier, warp_barrier, done };

struct Thread {
  uint3 idx;
  int linear = 0, lane = 0, warp = 0;
  Wait wait = Wait::running;
  uint64_t warp_ops = 0;  // warp collectives and __syncwarp calls so far (all lanes must agree)
  bool started = false;
  ctx::fiber fiber;      // the thread, while it is suspended
  ctx::fiber scheduler;  // whom to return to, while it runs
};

constexpr size_t kSlotBytes = 64;
struct WarpSlots {
  unsigned char slot[2][32][kSlotBytes];  // double-buffered by collective parity
};

// The race check's record of one byte of shared memory in the current barrier interval.
struct Access {
  uint64_t interval = ~uint64_t(0);
  int writer = -1;        // the thread that wrote it, or -1
  int reader = -1;        // the first thread that read it, or -1
  bool many_readers = false;
};

struct LaunchState {
  const char* kernel;
  const char* file;
  int line;
  dim3 grid, block;
  uint3 block_idx;
  std::vector<Thread> threads;
  std::vector<WarpSlots> warps;
  std::vector<unsigned char> dynamic_shared;  // 16-byte aligned through the allocation below
  uint64_t interval = 0;                       // barrier intervals completed in this block
  std::unordered_map<uintptr_t, Access> shadow;
  std::exception_ptr error;
};

thread_local LaunchState* g_launch = nullptr;
thread_local Thread* g_thread = nullptr;
StackPool& stack_pool() {
  thread_local StackPool pool;
  return pool;
}

std::string where(const LaunchState& L) {
  std::ostringstream s;
  s << "kernel " << L.kernel << " (launched at " << L.file << ":" << L.line << "), block (" << L.block_idx.x << ","
    << L.block_idx.y << "," << L.block_idx.z << ")";
  return s.str();
}
std::string thread_name(const LaunchState& L, int linear) {
  const unsigned x = unsigned(linear) % L.block.x, y = unsigned(linear) / L.block.x % L.block.y,
                 z = unsigned(linear) / (L.block.x * L.block.y);
  return "thread (" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) + ")";
}

Thread& current() {
  if (!g_thread) throw std::logic_error("CUDA emulator: a device function was called outside a kernel");
  return *g_thread;
}

// Suspends the running thread until the scheduler releases it.
void suspend(Wait why) {
  Thread* t = &current();
  t->wait = why;
  t->scheduler = std::move(t->scheduler).resume();
  g_thread = t;
}

void resume(LaunchState& L, Thread& t, const std::function<void()>& body) {
  g_thread = &t;
  if (!t.started) {
    t.started = true;
    t.fiber = ctx::fiber(std::allocator_arg, PooledStack{&stack_pool()}, [&L, &t, &body](ctx::fiber&& scheduler) {
      t.scheduler = std::move(scheduler);
      try {
        body();
      } catch (const ctx::detail::forced_unwind&) {
        throw;  // the fiber is being destroyed: let Boost.Context unwind it
      } catch (...) {
        if (!L.error) L.error = std::current_exception();
      }
      t.wait = Wait::done;
      return std::move(t.scheduler);
    });
  }
  t.fiber = std::move(t.fiber).resume();
  g_thread = nullptr;
}

// Opens the barriers that every live participant has reached; false when none could open.
bool release_barriers(LaunchState& L) {
  bool released = false;
  const int nthreads = int(L.threads.size());
  // Warp barriers first: a warp whose live lanes all wait in the same collective.
  for (int w = 0; w * 32 < nthreads; ++w) {
    const int lo = w * 32, hi = std::min(nthreads, lo + 32);
    bool all = true, any = false;
    uint64_t op = 0;
    for (int i = lo; i < hi; ++i) {
      const Thread& t = L.threads[size_t(i)];
      if (t.wait == Wait::done) continue;
      if (t.wait != Wait::warp_barrier) {
        all = false;
        break;
      }
      if (any && t.warp_ops != op) {
        L.error = std::make_exception_ptr(std::runtime_error(
            "CUDA emulator: " + where(L) + ": the lanes of warp " + std::to_string(w) +
            " wait in different warp collectives (a shuffle or __syncwarp reached by some lanes only)"));
        return false;
      }
      op = t.warp_ops;
      any = true;
    }
    if (all && any) {
      for (int i = lo; i < hi; ++i)
        if (L.threads[size_t(i)].wait == Wait::warp_barrier) L.threads[size_t(i)].wait = Wait::running;
      released = true;
    }
  }
  if (released) return true;
  // The block barrier: every live thread waits at __syncthreads (returned threads count as
  // arrived, as on sm_70 and newer).
  int waiting = 0, live = 0;
  for (const Thread& t : L.threads) {
    if (t.wait == Wait::done) continue;
    ++live;
    if (t.wait == Wait::block_barrier) ++waiting;
  }
  if (live > 0 && waiting == live) {
    for (Thread& t : L.threads)
      if (t.wait == Wait::block_barrier) t.wait = Wait::running;
    ++L.interval;  // a new barrier interval for the race check
    return true;
  }
  return false;
}

void run_block(LaunchState& L, const std::function<void()>& body) {
  const int n = int(L.threads.size());
  for (int i = 0; i < n; ++i) {
    Thread& t = L.threads[size_t(i)];
    t = Thread{};
    t.linear = i;
    t.idx = {unsigned(i) % L.block.x, unsigned(i) / L.block.x % L.block.y, unsigned(i) / (L.block.x * L.block.y)};
    t.lane = i % 32;
    t.warp = i / 32;
  }
  L.interval = 0;
  L.shadow.clear();
  // Fresh shared memory is garbage on a GPU: all-ones bytes here (a NaN as float), so a
  // kernel that reads dynamic shared memory before writing it sees NaNs, not zeros.
  std::fill(L.dynamic_shared.begin(), L.dynamic_shared.end(), 0xff);
  for (;;) {
    bool live = false;
    for (Thread& t : L.threads) {
      if (t.wait == Wait::running) resume(L, t, body);
      if (L.error) return;
      live |= t.wait != Wait::done;
    }
    if (!live) return;
    if (!release_barriers(L)) {
      if (L.error) return;
      int at_block = 0, at_warp = 0;
      for (const Thread& t : L.threads) {
        at_block += t.wait == Wait::block_barrier;
        at_warp += t.wait == Wait::warp_barrier;
      }
      // Reported, not thrown: the suspended fibers must be unwound first (launch() does).
      L.error = std::make_exception_ptr(std::runtime_error(
          "CUDA emulator: " + where(L) + " cannot go on: " + std::to_string(at_block) +
          " threads wait at __syncthreads while " + std::to_string(at_warp) +
          " wait in warp collectives whose other lanes never arrive (a barrier inside divergent code)"));
      return;
    }
  }
}

cudaError_t& last_error() {
  thread_local cudaError_t e = cudaSuccess;
  return e;
}

}  // namespace

const uint3& thread_idx() { return current().idx; }
const uint3& block_idx() {
  current();
  return g_launch->block_idx;
}
const dim3& block_dim() {
  current();
  return g_launch->block;
}
const dim3& grid_dim() {
  current();
  return g_launch->grid;
}
int lane_id() { return current().lane; }
unsigned existing_lanes() {
  const Thread& t = current();
  const int first = t.warp * 32, n = int(g_launch->threads.size()) - first;
  return n >= 32 ? 0xffffffffu : (1u << n) - 1;
}

void syncthreads() { suspend(Wait::block_barrier); }

void syncwarp() {
  ++current().warp_ops;
  suspend(Wait::warp_barrier);
}

const unsigned char* warp_exchange(const void* mine, size_t bytes) {
  Thread& t = current();
  if (bytes > kSlotBytes) throw std::logic_error("CUDA emulator: a warp collective of more than 64 bytes per lane");
  const int parity = int(t.warp_ops & 1);
  ++t.warp_ops;
  unsigned char* slots = &g_launch->warps[size_t(t.warp)].slot[parity][0][0];
  std::memcpy(slots + size_t(t.lane) * kSlotBytes, mine, bytes);
  suspend(Wait::warp_barrier);
  return slots;
}

void record_shared(const void* address, size_t bytes, bool write) {
  Thread& t = current();
  LaunchState& L = *g_launch;
  // Byte by byte: two threads writing the two halves of one 32-bit word do not race.
  const uintptr_t first = reinterpret_cast<uintptr_t>(address), last = first + bytes - 1;
  for (uintptr_t byte = first; byte <= last; ++byte) {
    Access& a = L.shadow[byte];
    if (a.interval != L.interval) a = Access{L.interval};
    const int me = t.linear;
    auto race = [&](int other, const char* other_did, const char* i_did) {
      std::ostringstream s;
      s << "CUDA emulator: race on shared memory in " << where(L) << ": "
        << (other >= 0 ? thread_name(L, other) : std::string("another thread")) << " " << other_did << " address "
        << reinterpret_cast<const void*>(byte) << " and " << thread_name(L, me) << " " << i_did
        << " it with no __syncthreads between them (barrier interval " << L.interval << ")";
      throw std::runtime_error(s.str());
    };
    if (a.writer >= 0 && a.writer != me) race(a.writer, "wrote", write ? "wrote" : "read");
    if (write) {
      if (a.reader >= 0 && a.reader != me) race(a.reader, "read", "wrote");
      if (a.many_readers) race(-1, "read", "wrote");
      a.writer = me;
    } else if (a.reader < 0) {
      a.reader = me;
    } else if (a.reader != me) {
      a.many_readers = true;
    }
  }
}

unsigned char* dynamic_shared_base() {
  current();
  return g_launch->dynamic_shared.data();
}

void launch(const char* kernel, const char* file, int line, dim3 grid, dim3 block, size_t shared_bytes,
            const std::function<void()>& thread_body) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.y > 65535 || grid.z > 65535 || grid.x > 0x7fffffffu || shared_bytes > (size_t(48) << 10)) {
    last_error() = cudaErrorInvalidConfiguration;  // as a GPU reports it: at the next cudaGetLastError
    return;
  }
  if (g_launch) throw std::logic_error("CUDA emulator: a kernel launched from inside a kernel");
  LaunchState L{kernel, file, line, grid, block, {}, {}, {}, {}, 0, {}, {}};
  L.threads.resize(threads);
  L.warps.resize((threads + 31) / 32);
  for (WarpSlots& w : L.warps) std::memset(&w, 0, sizeof w);  // missing lanes read as zero
  L.dynamic_shared.resize(shared_bytes);
  g_launch = &L;
  struct Reset {
    ~Reset() { g_launch = nullptr, g_thread = nullptr; }
  } reset;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        L.block_idx = {x, y, z};
        run_block(L, thread_body);
        if (L.error) {
          // Destroying the suspended fibers unwinds their stacks; then report.
          for (Thread& t : L.threads) t.fiber = ctx::fiber();
          try {
            std::rethrow_exception(L.error);
          } catch (const std::exception& e) {
            const std::string what = e.what();
            if (what.rfind("CUDA emulator:", 0) == 0) throw std::runtime_error(what);
            throw std::runtime_error("CUDA emulator: " + where(L) + " threw: " + what);
          }
        }
      }
}

// ---- tensor-core instructions, lane by lane ------------------------------------------------------
void mma_m16n8k8_tf32(float c[4], const uint32_t a[4], const uint32_t b[2]) {
  struct Fragments {
    uint32_t a[4], b[2];
  } mine;
  std::memcpy(mine.a, a, sizeof mine.a);
  std::memcpy(mine.b, b, sizeof mine.b);
  const unsigned char* all = warp_exchange(&mine, sizeof mine);
  // The tensor core reads only the top 19 bits of each operand (sign, exponent, 10 bits).
  auto tf32 = [](uint32_t bits) { return std::bit_cast<float>(bits & 0xffffe000u); };
  float A[16][8], B[8][8];
  for (int l = 0; l < 32; ++l) {
    Fragments f;
    std::memcpy(&f, all + size_t(l) * kSlotBytes, sizeof f);
    const int group = l / 4, quad = l % 4;
    A[group][quad] = tf32(f.a[0]);
    A[group + 8][quad] = tf32(f.a[1]);
    A[group][quad + 4] = tf32(f.a[2]);
    A[group + 8][quad + 4] = tf32(f.a[3]);
    B[quad][group] = tf32(f.b[0]);
    B[quad + 4][group] = tf32(f.b[1]);
  }
  const int lane = lane_id(), group = lane / 4, quad = lane % 4;
  for (int i = 0; i < 4; ++i) {
    const int row = group + (i >= 2 ? 8 : 0), col = 2 * quad + (i & 1);
    float acc = c[i];
    for (int k = 0; k < 8; ++k) acc += A[row][k] * B[k][col];  // products are exact in fp32
    c[i] = acc;
  }
}

void ldmatrix_x4(uint32_t r[4], SharedSpan<uint16_t> row) {
  if (reinterpret_cast<uintptr_t>(row.raw()) % 16)
    throw std::runtime_error("ldmatrix_x4: a row address that is not 16-byte aligned (" +
                             std::to_string(reinterpret_cast<uintptr_t>(row.raw())) + ")");
  const uint16_t* mine = row.raw();
  const unsigned char* all = warp_exchange(&mine, sizeof mine);
  const int lane = lane_id();
  for (int j = 0; j < 4; ++j) {
    const uint16_t* src;
    std::memcpy(&src, all + size_t(8 * j + lane / 4) * kSlotBytes, sizeof src);
    const uint16_t* pair = src + 2 * (lane % 4);
    record_shared(pair, 4, false);
    r[j] = uint32_t(pair[0]) | uint32_t(pair[1]) << 16;
  }
}

void cp_async_16(SharedSpan<float> dst, const float* src) {
  // The GPU faults on a misaligned cp.async of 16 bytes: so does the emulator.
  if (reinterpret_cast<uintptr_t>(dst.raw()) % 16 || reinterpret_cast<uintptr_t>(src) % 16)
    throw std::runtime_error("cp_async_16: misaligned address (shared " + std::to_string(reinterpret_cast<uintptr_t>(dst.raw())) +
                             ", global " + std::to_string(reinterpret_cast<uintptr_t>(src)) +
                             "): both must be 16-byte aligned (cudaErrorMisalignedAddress on a GPU)");
  record_shared(dst.raw(), 16, true);
  std::memcpy(dst.raw(), src, 16);
}

}  // namespace mila::cuda::emulator

// ---- the runtime API ---------------------------------------------------------------------------------
using mila::cuda::emulator::last_error;

namespace {
cudaError_t fail(cudaError_t e) { return last_error() = e; }
struct Opaque {};
}  // namespace

const char* cudaGetErrorName(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = last_error();
  last_error() = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return last_error(); }
cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "%s", "MILA CUDA emulator (CPU)");
  prop->totalGlobalMem = size_t(16) << 30;
  prop->sharedMemPerBlock = size_t(48) << 10;
  prop->sharedMemPerBlockOptin = size_t(48) << 10;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
  prop->multiProcessorCount = 4;
  prop->major = 9;  // reports sm_90, so every kernel path (TF32 included) runs under emulation
  prop->minor = 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }  // every launch and copy finished already
cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);  // cudaMalloc's alignment
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaMalloc(p, bytes); }
cudaError_t cudaFreeHost(void* p) { return cudaFree(p); }
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (bytes) std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) { return cudaMemset(p, value, bytes); }
cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  *stream = reinterpret_cast<cudaStream_t>(new Opaque);
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) { return cudaStreamCreate(stream); }
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete reinterpret_cast<Opaque*>(stream);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  *event = reinterpret_cast<cudaEvent_t>(new Opaque);
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete reinterpret_cast<Opaque*>(event);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
