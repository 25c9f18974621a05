// The CUDA device layer: probing for a GPU, and a context owning a stream, cuBLAS and memory.
#pragma once

// This header needs no CUDA headers, so code that builds without the toolkit can include it:
// the CUDA handle types are forward-declared opaque structs (the same ones the CUDA headers
// declare), and every function has a stub that returns an error when SHOAL_HAVE_CUDA is 0.

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "support/diagnostics.h"
#include "support/strings.h"  // envFlag, envFlagDefaultOn

struct CUstream_st;
struct CUevent_st;
struct CUgraphExec_st;
struct cublasContext;

namespace shoal {

using CudaStream = CUstream_st*;        ///< == cudaStream_t
using CudaEventHandle = CUevent_st*;    ///< == cudaEvent_t
using CudaGraphExecHandle = CUgraphExec_st*;  ///< == cudaGraphExec_t
using CublasHandle = cublasContext*;    ///< == cublasHandle_t

/// True when this build of shoal has the CUDA backend compiled in (SHOAL_HAVE_CUDA=1).
bool cudaBuiltIn();

/// What a CUDA device is.
struct CudaDeviceInfo {
  int index = 0;
  std::string name;  ///< e.g. "NVIDIA H100 80GB HBM3"
  int major = 0;     ///< compute capability, e.g. 9
  int minor = 0;     ///< e.g. 0
  int smCount = 0;
  size_t totalMem = 0;  ///< bytes of device memory
  int driverVersion = 0;   ///< e.g. 13000 for CUDA 13.0
  int runtimeVersion = 0;  ///< the CUDA runtime shoal was linked with

  /// NVRTC target name for this device: "sm_90".
  std::string arch() const;
  /// "cuda:0 NVIDIA H100 80GB HBM3", the spelling run reports use.
  std::string describe() const;
};

/// Looks for a usable CUDA device `index`. Never aborts: with no driver, no device, or a
/// build without CUDA it returns an error naming the reason, e.g. "no CUDA driver: CUDA
/// driver version is insufficient for CUDA runtime version" or "no CUDA device found" —
/// the cue for `--device auto` to fall back to the CPU interpreter.
Expected<CudaDeviceInfo> probeCudaDevice(int index = 0);

/// `bytes` of host memory copied into a new cudaMalloc'd buffer on GPU `device` (synchronously);
/// the buffer is freed when the last copy of the returned pointer goes.
Expected<std::shared_ptr<void>> newDeviceCopy(const void* host, size_t bytes, int device);

/// True once this process has made a CUDA context (CudaContext::create).
bool cudaContextMade();

/// Ends the process with `status` after flushing stdout and stderr, without tearing down
/// what the process made (static destructors, the CUDA runtime's exit handlers): the driver
/// frees a process's device memory, contexts and modules when it ends anyway, and tearing
/// them down one by one took ~0.1 s of `shoal run` on an H200. Only when a CUDA context was
/// made and SHOAL_CUDA_TEARDOWN=1 is not set (tools that check for leaked device memory, such
/// as compute-sanitizer's leak check, need the teardown); otherwise it returns `status` for
/// main to return. Every file the process writes must be closed before.
int exitSkippingCudaTeardown(int status);

/// True when the CUDA driver library (libcuda.so.1) loads: a cheap test, false at once on a
/// machine without a driver, before work that only pays with a GPU. False in a build
/// without CUDA.
bool cudaDriverInstalled();

/// Whether the CUDA libraries shoal loads at run time (NVRTC, cuBLAS) can be loaded; the
/// error names the one that cannot, and why.
Expected<void> cudaLibrariesAvailable();
/// Loads cuBLAS and cuBLASLt (which cuBLAS needs) now, so that a later
/// CudaContext::enableBlas finds them loaded; failures are left for enableBlas to report.
void preloadBlasLibraries();

/// Options for a CudaContext.
struct CudaContextOptions {
  int device = 0;
  /// TF32 tensor-core math in cuBLAS (CUBLAS_TF32_TENSOR_OP_MATH); off = exact fp32.
  bool tf32 = false;
  /// 16-bit operands in cuBLAS's fp32 GEMMs: bfloat16 or float16 (cublasGemmEx with
  /// CUBLAS_COMPUTE_32F_FAST_16BF / _16F: fp32 in and out, fp32 accumulation); false for both:
  /// what `tf32` says.
  bool gemmBf16 = false, gemmFp16 = false;
  /// Debug mode: the runtime gives each buffer its own cudaMalloc (allocateBuffer) instead
  /// of carving one arena, so compute-sanitizer sees overruns. Default from the environment
  /// variable SHOAL_CUDA_SEPARATE_ALLOCS=1.
  bool separateAllocs = envFlag("SHOAL_CUDA_SEPARATE_ALLOCS");
  /// cuBLAS workspace, set explicitly so cuBLAS never allocates during graph capture
  /// (NVIDIA recommends 32 MiB on Hopper, 4 MiB before).
  size_t cublasWorkspaceBytes = size_t(32) << 20;
  /// Make the cuBLAS handle and its workspace with the context. False: at the first
  /// enableBlas() -- the executables' shared contexts, so a program without cuBLAS calls never
  /// loads cuBLAS and cuBLASLt (on an H200 loading them added ~0.1 s to a process's wall time,
  /// though on another thread: bench/cuda_floor.cpp --libraries).
  bool blas = true;
  /// The side stream (data-parallel collectives) at the device's highest stream priority, so
  /// the all-reduce's blocks get SMs as soon as any free up under the backward pass's kernels.
  /// Default on; SHOAL_COLLECTIVES_HIGH_PRIORITY=0 gives it normal priority (for measuring).
  bool sideStreamHighPriority = !std::getenv("SHOAL_COLLECTIVES_HIGH_PRIORITY") || envFlag("SHOAL_COLLECTIVES_HIGH_PRIORITY");
};

/// One cudaMalloc'ed block of device memory, freed on destruction. Move-only.
class DeviceArena {
 public:
  DeviceArena() = default;
  DeviceArena(DeviceArena&& other) noexcept;
  DeviceArena& operator=(DeviceArena&& other) noexcept;
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  ~DeviceArena();

  /// Base device address (nullptr when empty).
  void* data() const { return data_; }
  size_t size() const { return size_; }
  /// Device address at byte `offset` (a planned buffer's place); asserts offset <= size.
  void* at(size_t offset) const;

 private:
  friend class CudaContext;
  void reset();
  void* data_ = nullptr;
  size_t size_ = 0;
};

/// Page-locked host memory (cudaMallocHost), for async copies. Move-only.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  PinnedBuffer(PinnedBuffer&& other) noexcept;
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer();

  void* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  friend class CudaContext;
  void reset();
  void* data_ = nullptr;
  size_t size_ = 0;
};

/// A CUDA event for timing (cudaEventCreate). Move-only.
class CudaEvent {
 public:
  CudaEvent() = default;
  CudaEvent(CudaEvent&& other) noexcept;
  CudaEvent& operator=(CudaEvent&& other) noexcept;
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  ~CudaEvent();

  CudaEventHandle handle() const { return event_; }

 private:
  friend class CudaContext;
  void reset();
  CudaEventHandle event_ = nullptr;
};

/// An instantiated CUDA graph (cudaGraphExec_t), replayable with CudaContext::launch.
class CudaGraphExec {
 public:
  CudaGraphExec() = default;
  CudaGraphExec(CudaGraphExec&& other) noexcept;
  CudaGraphExec& operator=(CudaGraphExec&& other) noexcept;
  CudaGraphExec(const CudaGraphExec&) = delete;
  CudaGraphExec& operator=(const CudaGraphExec&) = delete;
  ~CudaGraphExec();

  bool valid() const { return exec_ != nullptr; }
  CudaGraphExecHandle handle() const { return exec_; }
  /// Number of nodes the captured graph had (kernels, copies, memsets).
  size_t nodeCount() const { return nodeCount_; }

 private:
  friend class CudaContext;
  void reset();
  CudaGraphExecHandle exec_ = nullptr;
  size_t nodeCount_ = 0;
};

/// How strictly a capture forbids unsafe CUDA calls (cudaMalloc, sync) while it runs.
enum class CaptureModeKind {
  Global,       ///< any thread's unsafe call fails the capture (PyTorch's default)
  ThreadLocal,  ///< only this thread's unsafe calls
  Relaxed,      ///< no check
};

/// Everything shoal does on one GPU: one stream, one cuBLAS handle (with its workspace),
/// device memory, pinned host memory, async copies, events and graph capture. Every CUDA
/// and cuBLAS return code is checked; failures come back as Error values naming the call
/// and what it was for: "cudaMemcpyAsync(H2D batch 'x'): an illegal memory access was
/// encountered (cudaErrorIllegalAddress)". Not copyable or movable; one per device.
/// Calls are meant to come from one thread (the step's), like a CUDA stream.
class CudaContext {
 public:
  /// Probes device `options.device`, makes it current, creates the stream and (with
  /// options.blas) the cuBLAS handle and its workspace. Errors (no driver, no device) never abort.
  static Expected<std::unique_ptr<CudaContext>> create(const CudaContextOptions& options = {});
  /// Loads cuBLAS and makes the handle and its workspace if the context has none yet (thread
  /// safe; never during a capture). The products below need it; they fail without it.
  Expected<void> enableBlas();
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  const CudaDeviceInfo& device() const { return info_; }
  const CudaContextOptions& options() const { return options_; }
  CudaStream stream() const { return stream_; }
  bool separateAllocs() const { return options_.separateAllocs; }
  bool tf32() const { return options_.tf32; }
  /// Switches cuBLAS between exact fp32 (CUBLAS_DEFAULT_MATH) and TF32 tensor-core math.
  Expected<void> setTf32(bool on);
  /// What cuBLAS is set to now (cublasGetMathMode): true for TF32 tensor-core math.
  Expected<bool> cublasUsesTf32() const;
  /// Makes this context's device current on the calling thread (cudaSetDevice).
  Expected<void> makeCurrent() const;

  // --- memory ----------------------------------------------------------------------------
  /// One cudaMalloc of `bytes` (rounded up to 256): the arena a memory plan carves.
  /// `what` names it in errors ("arena for 'mnist_cnn'").
  Expected<DeviceArena> allocateArena(size_t bytes, std::string_view what = "arena");
  /// One cudaMalloc per buffer, for the separate-allocs debug mode; freed by freeBuffer or
  /// when the context is destroyed.
  Expected<void*> allocateBuffer(size_t bytes, std::string_view what = "buffer");
  /// Frees a pointer from allocateBuffer.
  Expected<void> freeBuffer(void* ptr);
  /// Bytes of device memory free now (cudaMemGetInfo).
  Expected<size_t> freeMemory() const;
  /// Pinned (page-locked) host memory for async copies.
  Expected<PinnedBuffer> allocatePinned(size_t bytes, std::string_view what = "pinned buffer");
  /// Whether host address `p` is in page-locked memory the GPU can copy from by DMA
  /// (cudaMallocHost, cudaHostRegister; cudaPointerGetAttributes says cudaMemoryTypeHost).
  Expected<bool> isPageLocked(const void* p) const;
  /// The address at which kernels on this context's device read host address `p` over the
  /// bus, where `p` is in page-locked memory mapped into the device's address space
  /// (cudaMallocHost; cudaHostRegister with cudaHostRegisterMapped); nullptr otherwise.
  Expected<const void*> mappedDeviceAddress(const void* p) const;

  // --- copies, all asynchronous on the context's stream ----------------------------------
  Expected<void> copyToDevice(void* dst, const void* src, size_t bytes, std::string_view what);
  Expected<void> copyToHost(void* dst, const void* src, size_t bytes, std::string_view what);
  Expected<void> copyDeviceToDevice(void* dst, const void* src, size_t bytes, std::string_view what);
  Expected<void> memsetZero(void* dst, size_t bytes, std::string_view what);
  /// Waits for everything queued on the stream; `what` names the step in errors, where
  /// asynchronous kernel faults surface.
  Expected<void> synchronize(std::string_view what = "stream");

  // --- cuBLAS --------------------------------------------------------------------------
  /// Row-major fp32 GEMM on the stream: C[m,n] = alpha * op(A)[m,k] · op(B)[k,n] + beta * C,
  /// where op(X) is X or its transpose; lda/ldb/ldc are row strides in elements (A is stored
  /// m×k, or k×m when transA). Exact fp32 unless TF32 is on. Capturable in a graph (the
  /// workspace is preset). `what` names the product in errors.
  Expected<void> gemmF32(bool transA, bool transB, int m, int n, int k, float alpha, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc, std::string_view what);
  /// The same in fp64 (cublasDgemm); TF32 never applies.
  Expected<void> gemmF64(bool transA, bool transB, int m, int n, int k, double alpha, const double* a, int lda,
                         const double* b, int ldb, double beta, double* c, int ldc, std::string_view what);
  /// `batch` row-major fp32 GEMMs in one call (cublasSgemmStridedBatched): product i reads
  /// a + i·strideA, b + i·strideB and writes c + i·strideC (elements; a stride of 0 reuses a
  /// matrix). Same conventions as gemmF32.
  Expected<void> gemmStridedBatchedF32(bool transA, bool transB, int m, int n, int k, float alpha, const float* a,
                                       int lda, int64_t strideA, const float* b, int ldb, int64_t strideB, float beta,
                                       float* c, int ldc, int64_t strideC, int batch, std::string_view what);
  /// The same in fp64 (cublasDgemmStridedBatched).
  Expected<void> gemmStridedBatchedF64(bool transA, bool transB, int m, int n, int k, double alpha, const double* a,
                                       int lda, int64_t strideA, const double* b, int ldb, int64_t strideB,
                                       double beta, double* c, int ldc, int64_t strideC, int batch,
                                       std::string_view what);

  /// Row-major fp32 GEMM through cuBLASLt with an epilogue: C[m,n] = act(op(A)·op(B) + bias),
  /// bias[j] a vector of n added to column j (null: none), act ReLU (`relu`) or none; beta 0.
  /// The math is the context's (exact fp32, TF32, or bf16/fp16 operands, as gemmF32). The
  /// cuBLASLt handle, the call's descriptors and its algorithm (cuBLASLt's heuristic, for the
  /// pointers' alignment, within the cuBLAS workspace, which it shares) are made once per shape
  /// and kept: planGemmEpilogueF32 makes them ahead (outside a graph capture); a call with none
  /// made makes them itself. Same conventions as gemmF32.
  Expected<void> gemmEpilogueF32(bool transA, bool transB, int m, int n, int k, const float* a, int lda,
                                 const float* b, int ldb, float* c, int ldc, const float* bias, bool relu,
                                 std::string_view what);
  Expected<void> planGemmEpilogueF32(bool transA, bool transB, int m, int n, int k, const float* a, int lda,
                                     const float* b, int ldb, float* c, int ldc, const float* bias, bool relu,
                                     std::string_view what);

  // --- events ----------------------------------------------------------------------------
  Expected<CudaEvent> createEvent();
  Expected<void> record(const CudaEvent& event);
  /// Blocks the host until `event` (recorded on the stream) has completed; `what` names it
  /// in errors. An event never recorded counts as completed.
  Expected<void> waitEvent(const CudaEvent& event, std::string_view what);
  /// Milliseconds between two recorded events; waits for `end`.
  Expected<float> elapsedMs(const CudaEvent& start, const CudaEvent& end);

  // --- the side stream (collectives overlapping the main stream's kernels) ----------------
  /// The second stream, created on first use; work queued on it runs beside the main stream's
  /// until joined. Ordering goes through forkSide/joinSide only, so it captures into graphs.
  Expected<CudaStream> sideStream();
  /// The side stream waits for everything queued on the main stream so far.
  Expected<void> forkSide(std::string_view what);
  /// The main stream waits for everything queued on the side stream so far.
  Expected<void> joinSide(std::string_view what);

  // --- CUDA graphs -----------------------------------------------------------------------
  /// Starts capturing the stream's work into a graph (cudaStreamBeginCapture).
  Expected<void> beginCapture(CaptureModeKind mode = CaptureModeKind::Global);
  /// Ends the capture and instantiates the graph. A capture broken by an unsafe call
  /// returns an error naming the reason.
  Expected<CudaGraphExec> endCapture();
  /// True while the stream is capturing.
  bool capturing() const { return capturing_; }
  /// Replays an instantiated graph on the stream.
  Expected<void> launch(const CudaGraphExec& graph);

  /// Bytes held by live allocateBuffer buffers (the separate-allocs mode), for reports.
  size_t allocatedBufferBytes() const;

 private:
  CudaContext() = default;

  CudaDeviceInfo info_;
  CudaContextOptions options_;
  CudaStream stream_ = nullptr;
  CudaStream side_ = nullptr;
  CudaEventHandle forkEvent_ = nullptr, joinEvent_ = nullptr;  ///< ordering only (no timing)
  CublasHandle cublas_ = nullptr;
  void* cublasWorkspace_ = nullptr;
  struct LtPlans;  ///< the cuBLASLt handle and each epilogue product's descriptors and algorithm
  std::unique_ptr<LtPlans> lt_;
  /// gemmEpilogueF32's plan made (or found), then the call made when `run`.
  Expected<void> ltGemm(bool transA, bool transB, int m, int n, int k, const float* a, int lda, const float* b,
                        int ldb, float* c, int ldc, const float* bias, bool relu, std::string_view what, bool run);
  bool capturing_ = false;
  mutable std::mutex buffersMutex_;
  std::mutex blasMutex_;  ///< enableBlas
  /// An error unless enableBlas has made the handle (the products' first check).
  Expected<void> requireBlas(std::string_view what) const;
  std::vector<std::pair<void*, size_t>> buffers_;  ///< from allocateBuffer, freed at the end
};

}  // namespace shoal
