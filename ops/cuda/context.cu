// context.cu - the CUDA context (ops/cuda/context.h), launch checks and CUDA errors.
#include "ops/cuda/context.h"

#include <cstdlib>
#include <string>

#include "ops/cuda/launch.h"

namespace mila::cuda {

[[noreturn]] void throw_cuda_error(const char* call, const char* file, int line, cudaError_t err) {
  throw std::runtime_error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                           cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

namespace {
std::string dims(dim3 d) {
  return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}
bool sync_after_launch() {
  static const bool on = [] {
    const char* v = std::getenv("MILA_CUDA_SYNC");
    return v && std::string(v) == "1";
  }();
  return on;
}

#if !defined(MILA_CUDA_EMULATE)
const char* cublas_status(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "cuBLAS error";
  }
}
#endif
}  // namespace

void check_launch(const LaunchSite& site, dim3 grid, dim3 block, size_t shared_bytes) {
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess && sync_after_launch()) err = cudaStreamSynchronize(context().stream());
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("kernel ") + site.kernel + " launched at " + site.file + ":" +
                             std::to_string(site.line) + " with grid " + dims(grid) + ", block " + dims(block) +
                             ", " + std::to_string(shared_bytes) + " bytes of dynamic shared memory failed: " +
                             cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

Context::Context() {
  CUDA_CHECK(cudaGetDevice(&device_));
  CUDA_CHECK(cudaGetDeviceProperties(&properties_, device_));
  // A blocking stream: it also orders against the legacy default stream, so a stray
  // cudaMemcpy elsewhere cannot overtake the project's kernels.
  CUDA_CHECK(cudaStreamCreate(&stream_));
  CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&error_word_), sizeof(int)));
}

// Never runs: the context lives until the process ends (Context::get), because tensors in
// static storage may still free device memory during exit.
Context::~Context() = default;

Context& Context::get() {
  static Context* instance = new Context();
  return *instance;
}

bool Context::emulated() const {
#if defined(MILA_CUDA_EMULATE)
  return true;
#else
  return false;
#endif
}

void* Context::workspace(size_t bytes) {
  if (bytes > workspace_bytes_) {
    if (workspace_) CUDA_CHECK(cudaFree(workspace_));  // cudaFree waits for the kernels using it
    workspace_ = nullptr;
    workspace_bytes_ = 0;
    CUDA_CHECK(cudaMalloc(&workspace_, bytes));
    workspace_bytes_ = bytes;
  }
  return workspace_;
}

int* Context::error_word() {
  CUDA_CHECK(cudaMemsetAsync(error_word_, 0, sizeof(int), stream_));
  return error_word_;
}

void Context::check_error_word(const std::string& what) {
  int code = 0;
  CUDA_CHECK(cudaMemcpyAsync(&code, error_word_, sizeof(int), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (code == int(DeviceError::none)) return;
  throw std::out_of_range(what + (code == int(DeviceError::index_out_of_range)
                                      ? ""
                                      : " (device error code " + std::to_string(code) + ")"));
}

void Context::synchronize() { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

#if !defined(MILA_CUDA_EMULATE)
cublasHandle_t Context::cublas() {
  if (!cublas_) {
    cublasStatus_t s = cublasCreate(&cublas_);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(cublas_, stream_);
    if (s != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string("cublasCreate: ") + cublas_status(s));
  }
  return cublas_;
}
#endif

}  // namespace mila::cuda
