// The CUDA device layer: probing, and the context (stream, cuBLAS, memory, copies, graphs).
#include "runtime/cuda/device.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "support/phase_times.h"

#ifndef SHOAL_HAVE_CUDA
#define SHOAL_HAVE_CUDA 0  // the build always says; a stray compile gets the CPU-only layer
#endif

#if SHOAL_HAVE_CUDA
#include "codegen/nvrtc.h"
#include "runtime/cuda/cublas_library.h"
#include "runtime/cuda/cuda_check.h"
#endif

namespace shoal {

bool cudaBuiltIn() { return SHOAL_HAVE_CUDA != 0; }

bool cudaDriverInstalled() {
  if (!cudaBuiltIn()) return false;
  // Loaded and kept: the CUDA runtime loads the same library when it initialises.
  static const bool installed = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL) != nullptr;
  return installed;
}

std::string CudaDeviceInfo::arch() const { return "sm_" + std::to_string(major) + std::to_string(minor); }

std::string CudaDeviceInfo::describe() const { return "cuda:" + std::to_string(index) + " " + name; }

void* DeviceArena::at(size_t offset) const {
  assert(offset <= size_ && "arena offset past the end of the arena");
  return static_cast<char*>(data_) + offset;
}

// Move operations are the same in both builds; only reset() touches CUDA.
DeviceArena::DeviceArena(DeviceArena&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
DeviceArena& DeviceArena::operator=(DeviceArena&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}
DeviceArena::~DeviceArena() { reset(); }

PinnedBuffer::PinnedBuffer(PinnedBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}
PinnedBuffer::~PinnedBuffer() { reset(); }

CudaEvent::CudaEvent(CudaEvent&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}
CudaEvent& CudaEvent::operator=(CudaEvent&& other) noexcept {
  if (this != &other) {
    reset();
    event_ = std::exchange(other.event_, nullptr);
  }
  return *this;
}
CudaEvent::~CudaEvent() { reset(); }

CudaGraphExec::CudaGraphExec(CudaGraphExec&& other) noexcept
    : exec_(std::exchange(other.exec_, nullptr)), nodeCount_(std::exchange(other.nodeCount_, 0)) {}
CudaGraphExec& CudaGraphExec::operator=(CudaGraphExec&& other) noexcept {
  if (this != &other) {
    reset();
    exec_ = std::exchange(other.exec_, nullptr);
    nodeCount_ = std::exchange(other.nodeCount_, 0);
  }
  return *this;
}
CudaGraphExec::~CudaGraphExec() { reset(); }

size_t CudaContext::allocatedBufferBytes() const {
  std::lock_guard lock(buffersMutex_);
  size_t total = 0;
  for (const auto& [ptr, bytes] : buffers_) total += bytes;
  return total;
}

#if SHOAL_HAVE_CUDA

using cudaimpl::cublasFail;
using cudaimpl::cudaFail;

namespace {

// The loaded cuBLAS; only called where a context exists, which needed it loaded.
const cudaimpl::CublasLibrary& cublasLib() { return *cudaimpl::cublasLibrary(); }
// The loaded cuBLASLt; only called once a context made its handle, which needed it loaded.
const cudaimpl::CublasLtLibrary& ltLib() { return *cudaimpl::cublasLtLibrary(); }

constexpr size_t kAllocAlign = 256;

size_t roundUp(size_t bytes) { return (bytes + kAllocAlign - 1) / kAllocAlign * kAllocAlign; }

std::string mib(size_t bytes) {
  return std::to_string(bytes >> 20) + " MiB";
}

// Adds how much memory the device has free to an out-of-memory error.
Error withMemInfo(Error e, cudaError_t err) {
  if (err != cudaErrorMemoryAllocation) return e;
  size_t freeBytes = 0, totalBytes = 0;
  if (cudaMemGetInfo(&freeBytes, &totalBytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return e;
  }
  return Error(e.message() + "; device has " + mib(freeBytes) + " free of " + mib(totalBytes));
}

std::string sizeWhat(std::string_view what, size_t bytes) {
  return std::string(what) + ", " + std::to_string(bytes) + " bytes";
}

// Errors for calls the runtime contract forbids inside a step.
Unexpected<Error> forbiddenInCapture(std::string_view call) {
  return fail(std::string(call) +
              " during CUDA graph capture: the runtime contract forbids allocation and host "
              "synchronization inside a step");
}

}  // namespace

Expected<std::shared_ptr<void>> newDeviceCopy(const void* host, size_t bytes, int device) {
  auto info = probeCudaDevice(device);
  if (!info) return Unexpected(info.error());
  int previous = 0;
  (void)cudaGetDevice(&previous);
  if (cudaError_t e = cudaSetDevice(device); e != cudaSuccess) return cudaFail(e, "cudaSetDevice", info->describe());
  void* ptr = nullptr;
  cudaError_t e = cudaMalloc(&ptr, std::max<size_t>(bytes, 1));
  if (e == cudaSuccess && bytes) e = cudaMemcpy(ptr, host, bytes, cudaMemcpyHostToDevice);
  if (e != cudaSuccess) {
    if (ptr) (void)cudaFree(ptr);
    (void)cudaSetDevice(previous);
    return cudaFail(e, "cudaMalloc/cudaMemcpy", std::to_string(bytes) + " bytes for a device tensor on " + info->describe());
  }
  (void)cudaSetDevice(previous);
  return std::shared_ptr<void>(ptr, [device](void* p) {
    int current = 0;
    (void)cudaGetDevice(&current);
    (void)cudaSetDevice(device);
    (void)cudaFree(p);
    (void)cudaSetDevice(current);
  });
}

Expected<CudaDeviceInfo> probeCudaDevice(int index) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    std::string text = cudaGetErrorString(err);
    if (err == cudaErrorInsufficientDriver) {
      int driver = 0;
      (void)cudaDriverGetVersion(&driver);
      (void)cudaGetLastError();
      if (driver == 0) return fail("no CUDA driver: " + text);
      return fail("CUDA driver too old (driver supports CUDA " + std::to_string(driver / 1000) + "." +
                  std::to_string(driver % 1000 / 10) + ", shoal was built with CUDA " +
                  std::to_string(CUDART_VERSION / 1000) + "." + std::to_string(CUDART_VERSION % 1000 / 10) +
                  "): " + text);
    }
    if (err == cudaErrorNoDevice) return fail("no CUDA device found: " + text);
    return fail(std::string("CUDA unavailable: cudaGetDeviceCount: ") + text + " (" + cudaGetErrorName(err) + ")");
  }
  if (count == 0) return fail("no CUDA device found");
  if (index < 0 || index >= count)
    return fail("CUDA device " + std::to_string(index) + " does not exist: " + std::to_string(count) +
                " device(s) found");

  cudaDeviceProp prop{};
  if (cudaError_t e = cudaGetDeviceProperties(&prop, index); e != cudaSuccess)
    return cudaFail(e, "cudaGetDeviceProperties", "device " + std::to_string(index));
  CudaDeviceInfo info;
  info.index = index;
  info.name = prop.name;
  info.major = prop.major;
  info.minor = prop.minor;
  info.smCount = prop.multiProcessorCount;
  info.totalMem = prop.totalGlobalMem;
  (void)cudaDriverGetVersion(&info.driverVersion);
  (void)cudaRuntimeGetVersion(&info.runtimeVersion);
  (void)cudaGetLastError();
  return info;
}

namespace {
std::atomic<bool> contextMade{false};
}  // namespace

bool cudaContextMade() { return contextMade.load(); }

void preloadBlasLibraries() {
  (void)cudaimpl::cublasLibrary();
  (void)cudaimpl::cublasLtLibrary();
}

Expected<void> cudaLibrariesAvailable() {
  if (auto nvrtc = nvrtcAvailable(); !nvrtc) return nvrtc;
  if (const auto& lib = cudaimpl::cublasLibrary(); !lib) return Unexpected(lib.error());
  return {};
}

void DeviceArena::reset() {
  if (data_) (void)cudaFree(data_);  // errors at teardown (e.g. the runtime unloading) are moot
  data_ = nullptr;
  size_ = 0;
}

void PinnedBuffer::reset() {
  if (data_) (void)cudaFreeHost(data_);
  data_ = nullptr;
  size_ = 0;
}

void CudaEvent::reset() {
  if (event_) (void)cudaEventDestroy(event_);
  event_ = nullptr;
}

void CudaGraphExec::reset() {
  if (exec_) (void)cudaGraphExecDestroy(exec_);
  exec_ = nullptr;
  nodeCount_ = 0;
}

// The cuBLASLt handle and each epilogue product's plan (gemmEpilogueF32); complete here, before
// the destructor that frees it.
struct CudaContext::LtPlans {
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  cublasLtHandle_t handle = nullptr;
  std::map<std::string, Plan> plans;
  ~LtPlans() {
    for (auto& [key, p] : plans) {
      if (p.desc) (void)ltLib().cublasLtMatmulDescDestroy(p.desc);
      for (cublasLtMatrixLayout_t l : {p.a, p.b, p.c})
        if (l) (void)ltLib().cublasLtMatrixLayoutDestroy(l);
    }
    if (handle) (void)ltLib().cublasLtDestroy(handle);
  }
};

Expected<std::unique_ptr<CudaContext>> CudaContext::create(const CudaContextOptions& options) {
  std::optional<PhaseTimer> timer(std::in_place, "CUDA context + stream");
  auto info = probeCudaDevice(options.device);
  if (!info) return Unexpected(info.error());

  // Built piecewise; if a step fails, the destructor releases what was made so far.
  std::unique_ptr<CudaContext> ctx(new CudaContext());
  ctx->info_ = *info;
  ctx->options_ = options;
  const std::string dev = info->describe();

  contextMade = true;
  if (cudaError_t e = cudaSetDevice(options.device); e != cudaSuccess) return cudaFail(e, "cudaSetDevice", dev);
  if (cudaError_t e = cudaStreamCreateWithFlags(&ctx->stream_, cudaStreamNonBlocking); e != cudaSuccess)
    return cudaFail(e, "cudaStreamCreateWithFlags", dev);

  timer.reset();
  if (options.blas)
    if (auto ok = ctx->enableBlas(); !ok) return Unexpected(ok.error());
  return ctx;
}

Expected<void> CudaContext::enableBlas() {
  std::lock_guard lock(blasMutex_);
  if (cublas_) return {};
  PhaseTimer timer("cuBLAS handle");
  const std::string dev = info_.describe();
  if (const auto& lib = cudaimpl::cublasLibrary(); !lib) return Unexpected(lib.error());
  if (cublasStatus_t s = cublasLib().cublasCreate(&cublas_); s != CUBLAS_STATUS_SUCCESS) {
    cublas_ = nullptr;
    return cublasFail(s, "cublasCreate", dev);
  }
  if (cublasStatus_t s = cublasLib().cublasSetStream(cublas_, stream_); s != CUBLAS_STATUS_SUCCESS)
    return cublasFail(s, "cublasSetStream", dev);
  if (options_.cublasWorkspaceBytes > 0) {
    if (cudaError_t e = cudaMalloc(&cublasWorkspace_, options_.cublasWorkspaceBytes); e != cudaSuccess) {
      cublasWorkspace_ = nullptr;
      return Unexpected(withMemInfo(
          cudaFail(e, "cudaMalloc", sizeWhat("cuBLAS workspace", options_.cublasWorkspaceBytes)).error(), e));
    }
    if (cublasStatus_t s = cublasLib().cublasSetWorkspace(cublas_, cublasWorkspace_, options_.cublasWorkspaceBytes);
        s != CUBLAS_STATUS_SUCCESS)
      return cublasFail(s, "cublasSetWorkspace", sizeWhat("cuBLAS workspace", options_.cublasWorkspaceBytes));
  }
  return setTf32(options_.tf32);
}

Expected<void> CudaContext::requireBlas(std::string_view what) const {
  if (cublas_) return {};
  return fail(fmt::format("internal error: {} needs cuBLAS, but this context has no handle (CudaContext::enableBlas)",
                          what));
}

CudaContext::~CudaContext() {
  // Destructors cannot report; errors here (say, after a sticky kernel fault) are dropped.
  if (capturing_) {
    cudaGraph_t graph = nullptr;
    (void)cudaStreamEndCapture(stream_, &graph);
    if (graph) (void)cudaGraphDestroy(graph);
  }
  for (const auto& [ptr, bytes] : buffers_) (void)cudaFree(ptr);
  buffers_.clear();
  lt_.reset();
  if (cublas_) (void)cublasLib().cublasDestroy(cublas_);
  if (cublasWorkspace_) (void)cudaFree(cublasWorkspace_);
  if (side_) (void)cudaStreamDestroy(side_);
  if (forkEvent_) (void)cudaEventDestroy(forkEvent_);
  if (joinEvent_) (void)cudaEventDestroy(joinEvent_);
  if (stream_) (void)cudaStreamDestroy(stream_);
  (void)cudaGetLastError();
}

Expected<CudaStream> CudaContext::sideStream() {
  if (side_) return side_;
  if (capturing_) return forbiddenInCapture("creating the side stream");
  int least = 0, greatest = 0;
  if (options_.sideStreamHighPriority)
    if (cudaError_t e = cudaDeviceGetStreamPriorityRange(&least, &greatest); e != cudaSuccess)
      return cudaFail(e, "cudaDeviceGetStreamPriorityRange", "side stream");
  if (cudaError_t e = cudaStreamCreateWithPriority(&side_, cudaStreamNonBlocking, greatest); e != cudaSuccess)
    return cudaFail(e, "cudaStreamCreateWithPriority", "side stream");
  for (CudaEventHandle* ev : {&forkEvent_, &joinEvent_})
    if (cudaError_t e = cudaEventCreateWithFlags(ev, cudaEventDisableTiming); e != cudaSuccess)
      return cudaFail(e, "cudaEventCreateWithFlags", "side stream ordering");
  return side_;
}

Expected<void> CudaContext::forkSide(std::string_view what) {
  auto side = sideStream();
  if (!side) return Unexpected(side.error());
  if (cudaError_t e = cudaEventRecord(forkEvent_, stream_); e != cudaSuccess) return cudaFail(e, "cudaEventRecord", what);
  if (cudaError_t e = cudaStreamWaitEvent(side_, forkEvent_, 0); e != cudaSuccess)
    return cudaFail(e, "cudaStreamWaitEvent", what);
  return {};
}

Expected<void> CudaContext::joinSide(std::string_view what) {
  if (!side_) return {};  // nothing was ever queued there
  if (cudaError_t e = cudaEventRecord(joinEvent_, side_); e != cudaSuccess) return cudaFail(e, "cudaEventRecord", what);
  if (cudaError_t e = cudaStreamWaitEvent(stream_, joinEvent_, 0); e != cudaSuccess)
    return cudaFail(e, "cudaStreamWaitEvent", what);
  return {};
}

Expected<void> CudaContext::setTf32(bool on) {
  if (!cublas_) {  // applied when enableBlas makes the handle
    options_.tf32 = on;
    return {};
  }
  cublasMath_t mode = on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
  if (cublasStatus_t s = cublasLib().cublasSetMathMode(cublas_, mode); s != CUBLAS_STATUS_SUCCESS)
    return cublasFail(s, "cublasSetMathMode", on ? "TF32" : "exact fp32");
  options_.tf32 = on;
  return {};
}

Expected<bool> CudaContext::cublasUsesTf32() const {
  if (!cublas_) return options_.tf32;  // what enableBlas will set
  cublasMath_t mode = CUBLAS_DEFAULT_MATH;
  if (cublasStatus_t s = cublasLib().cublasGetMathMode(cublas_, &mode); s != CUBLAS_STATUS_SUCCESS)
    return cublasFail(s, "cublasGetMathMode", info_.describe());
  return (mode & 0xF) == CUBLAS_TF32_TENSOR_OP_MATH;  // low bits: the mode; high bits: flags
}

namespace {
// The compute type of a 16-bit-operand fp32 GEMM (CudaContextOptions::gemmBf16 / gemmFp16).
cublasComputeType_t gemm16Compute(const CudaContextOptions& o) {
  return o.gemmBf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F_FAST_16F;
}
}  // namespace

Expected<void> CudaContext::gemmF32(bool transA, bool transB, int m, int n, int k, float alpha, const float* a,
                                    int lda, const float* b, int ldb, float beta, float* c, int ldc,
                                    std::string_view what) {
  if (auto ok = requireBlas(what); !ok) return ok;
  // cuBLAS is column-major; a row-major matrix is its transpose there, so row-major
  // C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands and m/n.
  const cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N, opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasStatus_t s;
  if (options_.gemmBf16 || options_.gemmFp16)
    s = cublasLib().cublasGemmEx(cublas_, opB, opA, n, m, k, &alpha, b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta, c,
                                 CUDA_R_32F, ldc, gemm16Compute(options_), CUBLAS_GEMM_DEFAULT);
  else
    s = cublasLib().cublasSgemm(cublas_, opB, opA, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc);
  if (s != CUBLAS_STATUS_SUCCESS)
    return cublasFail(s, options_.gemmBf16 || options_.gemmFp16 ? "cublasGemmEx" : "cublasSgemm",
                      std::string(what) + ", m=" + std::to_string(m) + " n=" + std::to_string(n) +
                          " k=" + std::to_string(k));
  return {};
}

// --- cuBLASLt: products with an epilogue ----------------------------------------------------

namespace {

Unexpected<Error> cublasLtFail(cublasStatus_t s, std::string_view call, std::string_view what) {
  std::string msg = fmt::format("{}({}): cuBLASLt status {}", call, what, int(s));
  if (const auto& lib = cudaimpl::cublasLibrary()) {  // cuBLAS's names for the shared status codes
    msg += fmt::format(" ({}: {})", lib->cublasGetStatusName(s), lib->cublasGetStatusString(s));
  }
  return fail(msg);
}

// The largest power of two up to 256 that divides the address: cuBLASLt's heuristic assumes
// 256-byte aligned buffers unless told less.
uint32_t alignmentOf(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && v % a) a /= 2;
  return a;
}

}  // namespace

Expected<void> CudaContext::gemmEpilogueF32(bool transA, bool transB, int m, int n, int k, const float* a, int lda,
                                            const float* b, int ldb, float* c, int ldc, const float* bias, bool relu,
                                            std::string_view what) {
  return ltGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, bias, relu, what, /*run=*/true);
}

Expected<void> CudaContext::planGemmEpilogueF32(bool transA, bool transB, int m, int n, int k, const float* a,
                                                int lda, const float* b, int ldb, float* c, int ldc,
                                                const float* bias, bool relu, std::string_view what) {
  return ltGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, bias, relu, what, /*run=*/false);
}

// Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ (as gemmF32): cuBLASLt's A is
// our B, its B our A, its result n x m; the bias, one per row of that result, is one per
// column j of ours.
Expected<void> CudaContext::ltGemm(bool transA, bool transB, int m, int n, int k, const float* a, int lda,
                                   const float* b, int ldb, float* c, int ldc, const float* bias, bool relu,
                                   std::string_view what, bool run) {
  if (auto ok = requireBlas(what); !ok) return ok;
  const std::string where = fmt::format("{}, m={} n={} k={}", what, m, n, k);
  const cublasLtEpilogue_t epilogue = bias ? (relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS)
                                           : (relu ? CUBLASLT_EPILOGUE_RELU : CUBLASLT_EPILOGUE_DEFAULT);
  const cublasComputeType_t compute = options_.gemmBf16 || options_.gemmFp16 ? gemm16Compute(options_)
                                      : options_.tf32                        ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                             : CUBLAS_COMPUTE_32F;
  const uint32_t alignA = alignmentOf(b), alignB = alignmentOf(a), alignC = alignmentOf(c),
                 alignBias = bias ? alignmentOf(bias) : 256;
  const std::string key = fmt::format("{}{} {} {} {} {} {} {} {} {} {} {} {} {}", transA, transB, m, n, k, lda, ldb,
                                      ldc, int(epilogue), int(compute), alignA, alignB, alignC, alignBias);
  if (!lt_) {
    if (capturing_) return forbiddenInCapture("creating the cuBLASLt handle");
    if (const auto& lib = cudaimpl::cublasLtLibrary(); !lib) return Unexpected(lib.error());
    auto plans = std::make_unique<LtPlans>();
    if (cublasStatus_t s = ltLib().cublasLtCreate(&plans->handle); s != CUBLAS_STATUS_SUCCESS)
      return cublasLtFail(s, "cublasLtCreate", info_.describe());
    lt_ = std::move(plans);
  }
  auto found = lt_->plans.find(key);
  if (found == lt_->plans.end()) {
    const auto& L = ltLib();
    LtPlans::Plan p;
    auto check = [&](cublasStatus_t s, const char* call) -> Expected<void> {
      if (s != CUBLAS_STATUS_SUCCESS) return cublasLtFail(s, call, where);
      return {};
    };
    auto made = [&]() -> Expected<void> {
      if (auto ok = check(L.cublasLtMatmulDescCreate(&p.desc, compute, CUDA_R_32F), "cublasLtMatmulDescCreate"); !ok)
        return ok;
      const cublasOperation_t opA = transB ? CUBLAS_OP_T : CUBLAS_OP_N, opB = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
      auto setDesc = [&](cublasLtMatmulDescAttributes_t attr, const void* v, size_t bytes) {
        return check(L.cublasLtMatmulDescSetAttribute(p.desc, attr, v, bytes), "cublasLtMatmulDescSetAttribute");
      };
      if (auto ok = setDesc(CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA); !ok) return ok;
      if (auto ok = setDesc(CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB); !ok) return ok;
      if (auto ok = setDesc(CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue); !ok) return ok;
      if (bias) {
        const cudaDataType_t biasType = CUDA_R_32F;
        if (auto ok = setDesc(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &biasType, sizeof biasType); !ok) return ok;
      }
      // Stored (before op): cuBLASLt's A is our B, n x k (k x n when transB), and so on.
      if (auto ok = check(L.cublasLtMatrixLayoutCreate(&p.a, CUDA_R_32F, transB ? k : n, transB ? n : k, ldb),
                          "cublasLtMatrixLayoutCreate");
          !ok)
        return ok;
      if (auto ok = check(L.cublasLtMatrixLayoutCreate(&p.b, CUDA_R_32F, transA ? m : k, transA ? k : m, lda),
                          "cublasLtMatrixLayoutCreate");
          !ok)
        return ok;
      if (auto ok = check(L.cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, n, m, ldc), "cublasLtMatrixLayoutCreate"); !ok)
        return ok;
      cublasLtMatmulPreference_t pref = nullptr;
      if (auto ok = check(L.cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate"); !ok) return ok;
      const uint64_t workspace = cublasWorkspace_ ? uint64_t(options_.cublasWorkspaceBytes) : 0;
      Expected<void> prefOk = check(L.cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                                           &workspace, sizeof workspace),
                                    "cublasLtMatmulPreferenceSetAttribute");
      const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignA},
          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignB},
          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignC},
          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignC}};
      for (const auto& [attr, value] : aligns)
        if (prefOk)
          prefOk = check(L.cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof value),
                         "cublasLtMatmulPreferenceSetAttribute");
      cublasLtMatmulHeuristicResult_t result{};
      int returned = 0;
      if (prefOk)
        prefOk = check(L.cublasLtMatmulAlgoGetHeuristic(lt_->handle, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result,
                                                        &returned),
                       "cublasLtMatmulAlgoGetHeuristic");
      (void)L.cublasLtMatmulPreferenceDestroy(pref);
      if (!prefOk) return prefOk;
      if (returned < 1)
        return fail("cublasLtMatmulAlgoGetHeuristic(" + where +
                    "): cuBLASLt has no algorithm for this product with its epilogue (SHOAL_CUDA_GEMM_EPILOGUE=0 keeps "
                    "the epilogue in a kernel of its own)");
      p.algo = result.algo;
      return {};
    }();
    if (!made) {
      if (p.desc) (void)L.cublasLtMatmulDescDestroy(p.desc);
      for (cublasLtMatrixLayout_t l : {p.a, p.b, p.c})
        if (l) (void)L.cublasLtMatrixLayoutDestroy(l);
      return made;
    }
    found = lt_->plans.emplace(key, p).first;
  }
  if (!run) return {};
  LtPlans::Plan& p = found->second;
  if (bias)
    if (cublasStatus_t s = ltLib().cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                                  sizeof bias);
        s != CUBLAS_STATUS_SUCCESS)
      return cublasLtFail(s, "cublasLtMatmulDescSetAttribute", where);
  const float one = 1.0f, zero = 0.0f;
  if (cublasStatus_t s = ltLib().cublasLtMatmul(lt_->handle, p.desc, &one, b, p.a, a, p.b, &zero, c, p.c, c, p.c,
                                                &p.algo, cublasWorkspace_,
                                                cublasWorkspace_ ? options_.cublasWorkspaceBytes : 0, stream_);
      s != CUBLAS_STATUS_SUCCESS)
    return cublasLtFail(s, "cublasLtMatmul", where);
  return {};
}

Expected<void> CudaContext::gemmF64(bool transA, bool transB, int m, int n, int k, double alpha, const double* a,
                                    int lda, const double* b, int ldb, double beta, double* c, int ldc,
                                    std::string_view what) {
  if (auto ok = requireBlas(what); !ok) return ok;
  // Row-major as column-major transposed, as in gemmF32.
  cublasStatus_t s = cublasLib().cublasDgemm(cublas_, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, n,
                                 m, k, &alpha, b, ldb, a, lda, &beta, c, ldc);
  if (s != CUBLAS_STATUS_SUCCESS)
    return cublasFail(s, "cublasDgemm",
                      std::string(what) + ", m=" + std::to_string(m) + " n=" + std::to_string(n) +
                          " k=" + std::to_string(k));
  return {};
}

Expected<void> CudaContext::gemmStridedBatchedF32(bool transA, bool transB, int m, int n, int k, float alpha,
                                                  const float* a, int lda, int64_t strideA, const float* b, int ldb,
                                                  int64_t strideB, float beta, float* c, int ldc, int64_t strideC,
                                                  int batch, std::string_view what) {
  if (auto ok = requireBlas(what); !ok) return ok;
  // Row-major as column-major transposed, as in gemmF32: the operands (and their strides) swap.
  const cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N, opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasStatus_t s;
  if (options_.gemmBf16 || options_.gemmFp16)
    s = cublasLib().cublasGemmStridedBatchedEx(cublas_, opB, opA, n, m, k, &alpha, b, CUDA_R_32F, ldb, strideB, a,
                                               CUDA_R_32F, lda, strideA, &beta, c, CUDA_R_32F, ldc, strideC, batch,
                                               gemm16Compute(options_), CUBLAS_GEMM_DEFAULT);
  else
    s = cublasLib().cublasSgemmStridedBatched(cublas_, opB, opA, n, m, k, &alpha, b, ldb, strideB, a, lda, strideA,
                                              &beta, c, ldc, strideC, batch);
  if (s != CUBLAS_STATUS_SUCCESS)
    return cublasFail(s, options_.gemmBf16 || options_.gemmFp16 ? "cublasGemmStridedBatchedEx" : "cublasSgemmStridedBatched",
                      std::string(what) + ", m=" + std::to_string(m) + " n=" + std::to_string(n) +
                          " k=" + std::to_string(k) + " batch=" + std::to_string(batch));
  return {};
}

Expected<void> CudaContext::gemmStridedBatchedF64(bool transA, bool transB, int m, int n, int k, double alpha,
                                                  const double* a, int lda, int64_t strideA, const double* b, int ldb,
                                                  int64_t strideB, double beta, double* c, int ldc, int64_t strideC,
                                                  int batch, std::string_view what) {
  if (auto ok = requireBlas(what); !ok) return ok;
  cublasStatus_t s = cublasLib().cublasDgemmStridedBatched(cublas_, transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                                               transA ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, ldb, strideB, a,
                                               lda, strideA, &beta, c, ldc, strideC, batch);
  if (s != CUBLAS_STATUS_SUCCESS)
    return cublasFail(s, "cublasDgemmStridedBatched",
                      std::string(what) + ", m=" + std::to_string(m) + " n=" + std::to_string(n) +
                          " k=" + std::to_string(k) + " batch=" + std::to_string(batch));
  return {};
}

Expected<void> CudaContext::makeCurrent() const {
  if (cudaError_t e = cudaSetDevice(info_.index); e != cudaSuccess)
    return cudaFail(e, "cudaSetDevice", info_.describe());
  return {};
}

Expected<DeviceArena> CudaContext::allocateArena(size_t bytes, std::string_view what) {
  if (capturing_) return forbiddenInCapture("allocateArena");
  DeviceArena arena;
  if (bytes == 0) return arena;
  size_t rounded = roundUp(bytes);
  if (cudaError_t e = cudaMalloc(&arena.data_, rounded); e != cudaSuccess)
    return Unexpected(withMemInfo(cudaFail(e, "cudaMalloc", sizeWhat(what, rounded)).error(), e));
  arena.size_ = rounded;
  return arena;
}

Expected<void*> CudaContext::allocateBuffer(size_t bytes, std::string_view what) {
  if (capturing_) return forbiddenInCapture("allocateBuffer");
  void* ptr = nullptr;
  // Exact size, not rounded: compute-sanitizer then flags an access one past the end.
  if (cudaError_t e = cudaMalloc(&ptr, bytes == 0 ? 1 : bytes); e != cudaSuccess)
    return Unexpected(withMemInfo(cudaFail(e, "cudaMalloc", sizeWhat(what, bytes)).error(), e));
  std::lock_guard lock(buffersMutex_);
  buffers_.emplace_back(ptr, bytes);
  return ptr;
}

Expected<void> CudaContext::freeBuffer(void* ptr) {
  if (capturing_) return forbiddenInCapture("freeBuffer");
  {
    std::lock_guard lock(buffersMutex_);
    auto it = std::find_if(buffers_.begin(), buffers_.end(), [&](const auto& b) { return b.first == ptr; });
    if (it == buffers_.end()) return fail("freeBuffer: pointer was not allocated by allocateBuffer");
    buffers_.erase(it);
  }
  if (cudaError_t e = cudaFree(ptr); e != cudaSuccess) return cudaFail(e, "cudaFree", "buffer");
  return {};
}

Expected<PinnedBuffer> CudaContext::allocatePinned(size_t bytes, std::string_view what) {
  if (capturing_) return forbiddenInCapture("allocatePinned");
  PinnedBuffer buf;
  if (bytes == 0) return buf;
  if (cudaError_t e = cudaMallocHost(&buf.data_, bytes); e != cudaSuccess)
    return cudaFail(e, "cudaMallocHost", sizeWhat(what, bytes));
  buf.size_ = bytes;
  return buf;
}

Expected<bool> CudaContext::isPageLocked(const void* p) const {
  cudaPointerAttributes attr{};
  if (cudaError_t e = cudaPointerGetAttributes(&attr, p); e != cudaSuccess) {
    (void)cudaGetLastError();  // not sticky; leave no error behind for the next call
    return cudaFail(e, "cudaPointerGetAttributes", "host input");
  }
  return attr.type == cudaMemoryTypeHost;
}

Expected<const void*> CudaContext::mappedDeviceAddress(const void* p) const {
  cudaPointerAttributes attr{};
  if (cudaError_t e = cudaPointerGetAttributes(&attr, p); e != cudaSuccess) {
    (void)cudaGetLastError();
    return cudaFail(e, "cudaPointerGetAttributes", "host input");
  }
  if (attr.type != cudaMemoryTypeHost || attr.device != info_.index) return static_cast<const void*>(nullptr);
  return static_cast<const void*>(attr.devicePointer);
}

Expected<size_t> CudaContext::freeMemory() const {
  size_t freeBytes = 0, totalBytes = 0;
  if (cudaError_t e = cudaMemGetInfo(&freeBytes, &totalBytes); e != cudaSuccess)
    return cudaFail(e, "cudaMemGetInfo", "free device memory");
  return freeBytes;
}

Expected<void> CudaContext::copyToDevice(void* dst, const void* src, size_t bytes, std::string_view what) {
  if (bytes == 0) return {};
  if (cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_); e != cudaSuccess)
    return cudaFail(e, "cudaMemcpyAsync", "H2D " + std::string(what));
  return {};
}

Expected<void> CudaContext::copyToHost(void* dst, const void* src, size_t bytes, std::string_view what) {
  if (bytes == 0) return {};
  if (cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_); e != cudaSuccess)
    return cudaFail(e, "cudaMemcpyAsync", "D2H " + std::string(what));
  return {};
}

Expected<void> CudaContext::copyDeviceToDevice(void* dst, const void* src, size_t bytes, std::string_view what) {
  if (bytes == 0) return {};
  if (cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_); e != cudaSuccess)
    return cudaFail(e, "cudaMemcpyAsync", "D2D " + std::string(what));
  return {};
}

Expected<void> CudaContext::memsetZero(void* dst, size_t bytes, std::string_view what) {
  if (bytes == 0) return {};
  if (cudaError_t e = cudaMemsetAsync(dst, 0, bytes, stream_); e != cudaSuccess)
    return cudaFail(e, "cudaMemsetAsync", what);
  return {};
}

Expected<void> CudaContext::synchronize(std::string_view what) {
  if (capturing_) return forbiddenInCapture("synchronize");
  if (cudaError_t e = cudaStreamSynchronize(stream_); e != cudaSuccess)
    return cudaFail(e, "cudaStreamSynchronize", what);
  return {};
}

Expected<CudaEvent> CudaContext::createEvent() {
  CudaEvent ev;
  if (cudaError_t e = cudaEventCreate(&ev.event_); e != cudaSuccess) return cudaFail(e, "cudaEventCreate", "timer");
  return ev;
}

Expected<void> CudaContext::record(const CudaEvent& event) {
  if (cudaError_t e = cudaEventRecord(event.event_, stream_); e != cudaSuccess)
    return cudaFail(e, "cudaEventRecord", "timer");
  return {};
}

Expected<void> CudaContext::waitEvent(const CudaEvent& event, std::string_view what) {
  if (cudaError_t e = cudaEventSynchronize(event.event_); e != cudaSuccess)
    return cudaFail(e, "cudaEventSynchronize", what);
  return {};
}

Expected<float> CudaContext::elapsedMs(const CudaEvent& start, const CudaEvent& end) {
  if (cudaError_t e = cudaEventSynchronize(end.event_); e != cudaSuccess)
    return cudaFail(e, "cudaEventSynchronize", "timer end");
  float ms = 0;
  if (cudaError_t e = cudaEventElapsedTime(&ms, start.event_, end.event_); e != cudaSuccess)
    return cudaFail(e, "cudaEventElapsedTime", "timer");
  return ms;
}

Expected<void> CudaContext::beginCapture(CaptureModeKind mode) {
  if (capturing_) return fail("beginCapture: the stream is already capturing");
  cudaStreamCaptureMode m = cudaStreamCaptureModeGlobal;
  switch (mode) {
    case CaptureModeKind::Global: m = cudaStreamCaptureModeGlobal; break;
    case CaptureModeKind::ThreadLocal: m = cudaStreamCaptureModeThreadLocal; break;
    case CaptureModeKind::Relaxed: m = cudaStreamCaptureModeRelaxed; break;
  }
  if (cudaError_t e = cudaStreamBeginCapture(stream_, m); e != cudaSuccess)
    return cudaFail(e, "cudaStreamBeginCapture", "step graph");
  capturing_ = true;
  return {};
}

Expected<CudaGraphExec> CudaContext::endCapture() {
  if (!capturing_) return fail("endCapture: the stream is not capturing (call beginCapture first)");
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(stream_, &graph);
  if (e != cudaSuccess) {
    if (graph) (void)cudaGraphDestroy(graph);
    return cudaFail(e, "cudaStreamEndCapture", "step graph");
  }
  CudaGraphExec exec;
  size_t nodes = 0;
  if (cudaError_t e2 = cudaGraphGetNodes(graph, nullptr, &nodes); e2 != cudaSuccess) {
    (void)cudaGraphDestroy(graph);
    return cudaFail(e2, "cudaGraphGetNodes", "step graph");
  }
  cudaError_t e3 = cudaGraphInstantiate(&exec.exec_, graph, 0);
  (void)cudaGraphDestroy(graph);  // the executable graph keeps its own copy
  if (e3 != cudaSuccess) return cudaFail(e3, "cudaGraphInstantiate", "step graph");
  exec.nodeCount_ = nodes;
  return exec;
}

Expected<void> CudaContext::launch(const CudaGraphExec& graph) {
  if (!graph.valid()) return fail("launch: empty CUDA graph");
  if (cudaError_t e = cudaGraphLaunch(graph.exec_, stream_); e != cudaSuccess)
    return cudaFail(e, "cudaGraphLaunch", "step graph (" + std::to_string(graph.nodeCount_) + " nodes)");
  return {};
}

#else  // !SHOAL_HAVE_CUDA: every entry point reports that CUDA is not built in.

namespace {
Unexpected<Error> notBuilt() { return fail("shoal was built without CUDA support (SHOAL_HAVE_CUDA=0)"); }
}  // namespace

Expected<CudaDeviceInfo> probeCudaDevice(int) { return notBuilt(); }
Expected<std::shared_ptr<void>> newDeviceCopy(const void*, size_t, int) { return notBuilt(); }
Expected<void> cudaLibrariesAvailable() { return notBuilt(); }
void preloadBlasLibraries() {}
void DeviceArena::reset() { data_ = nullptr, size_ = 0; }
void PinnedBuffer::reset() { data_ = nullptr, size_ = 0; }
void CudaEvent::reset() { event_ = nullptr; }
void CudaGraphExec::reset() { exec_ = nullptr, nodeCount_ = 0; }
Expected<std::unique_ptr<CudaContext>> CudaContext::create(const CudaContextOptions&) { return notBuilt(); }
bool cudaContextMade() { return false; }
struct CudaContext::LtPlans {};
CudaContext::~CudaContext() = default;
Expected<void> CudaContext::setTf32(bool) { return notBuilt(); }
Expected<void> CudaContext::enableBlas() { return notBuilt(); }
Expected<void> CudaContext::requireBlas(std::string_view) const { return notBuilt(); }
Expected<void> CudaContext::makeCurrent() const { return notBuilt(); }
Expected<bool> CudaContext::cublasUsesTf32() const { return notBuilt(); }
Expected<void> CudaContext::gemmF32(bool, bool, int, int, int, float, const float*, int, const float*, int, float,
                                    float*, int, std::string_view) {
  return notBuilt();
}
Expected<void> CudaContext::gemmF64(bool, bool, int, int, int, double, const double*, int, const double*, int,
                                    double, double*, int, std::string_view) {
  return notBuilt();
}
Expected<void> CudaContext::gemmEpilogueF32(bool, bool, int, int, int, const float*, int, const float*, int, float*,
                                            int, const float*, bool, std::string_view) {
  return notBuilt();
}
Expected<void> CudaContext::planGemmEpilogueF32(bool, bool, int, int, int, const float*, int, const float*, int,
                                                float*, int, const float*, bool, std::string_view) {
  return notBuilt();
}
Expected<void> CudaContext::gemmStridedBatchedF32(bool, bool, int, int, int, float, const float*, int, int64_t,
                                                  const float*, int, int64_t, float, float*, int, int64_t, int,
                                                  std::string_view) {
  return notBuilt();
}
Expected<void> CudaContext::gemmStridedBatchedF64(bool, bool, int, int, int, double, const double*, int, int64_t,
                                                  const double*, int, int64_t, double, double*, int, int64_t, int,
                                                  std::string_view) {
  return notBuilt();
}
Expected<DeviceArena> CudaContext::allocateArena(size_t, std::string_view) { return notBuilt(); }
Expected<void*> CudaContext::allocateBuffer(size_t, std::string_view) { return notBuilt(); }
Expected<void> CudaContext::freeBuffer(void*) { return notBuilt(); }
Expected<PinnedBuffer> CudaContext::allocatePinned(size_t, std::string_view) { return notBuilt(); }
Expected<size_t> CudaContext::freeMemory() const { return notBuilt(); }
Expected<bool> CudaContext::isPageLocked(const void*) const { return notBuilt(); }
Expected<const void*> CudaContext::mappedDeviceAddress(const void*) const { return notBuilt(); }
Expected<void> CudaContext::copyToDevice(void*, const void*, size_t, std::string_view) { return notBuilt(); }
Expected<void> CudaContext::copyToHost(void*, const void*, size_t, std::string_view) { return notBuilt(); }
Expected<void> CudaContext::copyDeviceToDevice(void*, const void*, size_t, std::string_view) { return notBuilt(); }
Expected<void> CudaContext::memsetZero(void*, size_t, std::string_view) { return notBuilt(); }
Expected<void> CudaContext::synchronize(std::string_view) { return notBuilt(); }
Expected<CudaEvent> CudaContext::createEvent() { return notBuilt(); }
Expected<void> CudaContext::record(const CudaEvent&) { return notBuilt(); }
Expected<void> CudaContext::waitEvent(const CudaEvent&, std::string_view) { return notBuilt(); }
Expected<float> CudaContext::elapsedMs(const CudaEvent&, const CudaEvent&) { return notBuilt(); }
Expected<CudaStream> CudaContext::sideStream() { return notBuilt(); }
Expected<void> CudaContext::forkSide(std::string_view) { return notBuilt(); }
Expected<void> CudaContext::joinSide(std::string_view) { return notBuilt(); }
Expected<void> CudaContext::beginCapture(CaptureModeKind) { return notBuilt(); }
Expected<CudaGraphExec> CudaContext::endCapture() { return notBuilt(); }
Expected<void> CudaContext::launch(const CudaGraphExec&) { return notBuilt(); }

#endif  // SHOAL_HAVE_CUDA

int exitSkippingCudaTeardown(int status) {
  if (!cudaContextMade() || envFlag("SHOAL_CUDA_TEARDOWN")) return status;
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  ::_exit(status);
}

}  // namespace shoal
