// Private to runtime/cuda/cuda_executable*.cpp: the executor's state (CudaExecutable::Impl) and
// the helpers its three files share. cuda_executable.cpp: options, create(), start-up;
// cuda_executable_step.cpp: one step (binding, launching, graphs, run()); cuda_executable_state.cpp:
// the training loop's entry points (accumulation, resident data), timing and profiles, parameters.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/cuda/cuda_executable.h"
#include "runtime/cuda/device.h"
#include "runtime/cuda/module.h"
#include "runtime/cuda/tensor_map.h"

namespace shoal {
namespace cudaexec {

// The runtime's own kernels (runtime_kernels.h): compiled, or read from the kernel cache, and
// loaded once per process and architecture while someone holds them. prewarmCudaContext takes
// them on the context thread at start-up, so a cold cache's NVRTC compile overlaps the
// program's own compile instead of sitting in the first training step.
struct RuntimeKernels {
  CudaModule module;
  CudaKernel accumulate, gather, copyIn;
};

Expected<std::shared_ptr<const RuntimeKernels>> runtimeKernels(const std::string& arch);

/// The compute capability's major number of an NVRTC target ("sm_90", "sm_90a", "compute_80");
/// 0 when it is none of those.
int archMajor(const std::string& arch);

// Device memory from one allocation: an arena carve-out normally, its own cudaMalloc in the
// separate-allocs debug mode (exact size, so compute-sanitizer catches overruns).
class DeviceBlock {
 public:
  static Expected<std::unique_ptr<DeviceBlock>> allocate(const std::shared_ptr<CudaContext>& ctx, int64_t bytes,
                                                         const std::string& what) {
    auto block = std::unique_ptr<DeviceBlock>(new DeviceBlock());
    block->ctx_ = ctx;
    block->bytes_ = bytes;
    if (ctx->separateAllocs()) {
      auto p = ctx->allocateBuffer(size_t(bytes), what);
      if (!p) return Unexpected(p.error());
      block->separate_ = *p;
    } else {
      auto a = ctx->allocateArena(size_t(std::max<int64_t>(bytes, 1)), what);
      if (!a) return Unexpected(a.error());
      block->arena_ = std::move(*a);
    }
    if (bytes > 0)
      if (auto z = ctx->memsetZero(block->data(), size_t(bytes), what); !z) return Unexpected(z.error());
    return block;
  }
  ~DeviceBlock() {
    if (separate_) (void)ctx_->freeBuffer(separate_);
  }
  void* data() const { return separate_ ? separate_ : arena_.data(); }
  char* at(int64_t offset) const { return static_cast<char*>(data()) + offset; }
  int64_t bytes() const { return bytes_; }

 private:
  DeviceBlock() = default;
  std::shared_ptr<CudaContext> ctx_;
  DeviceArena arena_;
  void* separate_ = nullptr;
  int64_t bytes_ = 0;
};

// Params and state: one region at plan offsets, or one block per value (by name) in the
// separate-allocs mode. Shared between executables by shareParameters.
struct PersistentStorage {
  std::unique_ptr<DeviceBlock> region;
  std::map<std::string, std::unique_ptr<DeviceBlock>> byName;
  /// Moves on whenever the params may have changed: initialised or written through any
  /// executable sharing them, or a step of a program that updates them queued. An executable
  /// whose prepared blocks (CudaStep::prepare) were made at another generation makes them again.
  uint64_t generation = 1;
};

// One step ready to enqueue: its kernel and resolved arguments.
struct Launch {
  const CudaStep* step = nullptr;
  CudaKernel kernel;
  std::vector<void*> ptrs;  ///< resolved argument pointers
  std::vector<void*> argv;  ///< &ptrs[i], then &maps[j]: what cudaLaunchKernel takes
  /// The kernel's tensor maps (CudaStep::tensorMaps), encoded over ptrs when they were bound,
  /// and the address each was encoded over (encoded again only when it moved).
  std::vector<cudaimpl::EncodedTensorMap> maps;
  std::vector<void*> mapBases;
  bool perStepConstant = false;  ///< Constant: copied from the pool every step
  void* constantSource = nullptr;
  /// The main stream first waits for the side stream: this step touches the buffer of an
  /// all_reduce still running there (see markJoins).
  bool joinBefore = false;
};

// An input or output of the step: its node, name and place in the pinned staging buffer.
struct Staged {
  const Node* node = nullptr;
  std::string name;
  size_t offset = 0;  ///< in the pinned buffer
  size_t bytes = 0;
};

/// `g` as one call on `ctx`'s stream over these pointers: cuBLASLt for a product with an
/// epilogue (bias: null for none), else cuBLAS's strided-batched or single product in its type.
/// The one dispatch that the steps' launches and the warm-up share.
Expected<void> callGemm(CudaContext& ctx, const CudaGemmCall& g, void* a, void* b, void* c, const void* bias,
                        std::string_view what);

/// How the profile, the host timing and errors name a library GEMM step: cuBLASLt with its
/// epilogue (bias, relu) where it has one, cuBLAS otherwise.
std::string gemmLabel(const CudaGemmCall& g);

/// A grouped launch's nodes, each as `name` gives it, joined by " + " (profiles).
template <typename F>
std::string eachPart(const CudaStep& s, F name) {
  std::string out;
  for (const CudaStep& part : s.parts) out += (out.empty() ? "" : " + ") + name(*part.node);
  return out;
}

/// Writes `src` into `dst` (same shape), converting the element type like the interpreter.
void convertInto(const Tensor& src, Tensor dst);

/// A tensor in the app's GPU memory can stand for `want` on GPU `device` when it is on that GPU
/// and has `want`'s element type (nothing converts on the device).
Expected<void> checkDeviceTensor(const Tensor& t, const TensorType& want, const std::string& what, int device);

}  // namespace cudaexec

struct CudaExecutable::Impl {
  CudaExecutableOptions opts;
  /// The first tensor map bindArguments could not encode ("" when all were): create() and
  /// every step report it.
  std::string mapError;
  std::string arch;  ///< what the module was compiled for
  std::shared_ptr<CudaContext> ctx;
  CudaModuleSource src;
  std::vector<CudaModule> modules;  ///< one per unit of src (CudaModuleSource::units)
  double compileMs = 0;             ///< NVRTC's time, summed over the units it compiled

  std::unique_ptr<cudaexec::DeviceBlock> arena;  ///< transient values (one block) ...
  std::unordered_map<const Value*, std::unique_ptr<cudaexec::DeviceBlock>> transient;  ///< ... or one each
  std::shared_ptr<cudaexec::PersistentStorage> persistent;
  std::unique_ptr<cudaexec::DeviceBlock> status, scratch, constants;
  /// The prepared region (src.preparedBytes): parameters rearranged by the `prepare` steps,
  /// made for `preparedFor` at its generation `preparedGeneration` (stale when either moved).
  std::unique_ptr<cudaexec::DeviceBlock> prepared;
  /// The converted region (src.convertedBytes): values' copies in another layout, shared by
  /// the nodes that read them so (CudaModuleSource::converted), written within each step.
  std::unique_ptr<cudaexec::DeviceBlock> converted;
  const cudaexec::PersistentStorage* preparedFor = nullptr;
  uint64_t preparedGeneration = 0;
  bool hasPrepareSteps = false;
  /// The program updates parameters in place (a training step): every step it queues moves
  /// the shared generation on.
  bool writesParameters = false;
  /// Queues the `prepare` steps when the parameters changed since they last ran.
  Expected<void> prepareIfChanged();
  /// Called where a step is queued: a program that updates its parameters moves the generation.
  void noteStep() {
    if (writesParameters) ++persistent->generation;
  }
  PinnedBuffer pinnedIn, pinnedOut;
  std::vector<cudaexec::Staged> inputs, outputs;
  /// Outputs whose kernels write them straight into pinnedOut (hostWrittenOutputs): no copy
  /// after the step. Value -> its place in pinnedOut.
  std::unordered_map<const Value*, void*> hostWritten;
  // run() with an input in the app's GPU memory: its kernels read it there instead of a copy
  // (bindInputs). Which inputs may be read so (findBindableInputs), the app's pointer each is
  // read from now (value -> pointer), and how often that changed: each change re-resolves the
  // launches and drops the graph (captured again after the call), so past kMaxRebinds the
  // inputs are copied again, as ever.
  std::vector<char> bindable;
  std::unordered_map<const Value*, void*> bound;
  /// Inputs in mapped page-locked host memory that the step's first launch copies into their
  /// buffers (shoal_copy_in, part of the captured graph), from this call's device address;
  /// an address change counts as a rebind.
  struct CopyIn {
    const void* from;  ///< the device's address of the app's host memory
    void* to;          ///< the input's own buffer
    int64_t bytes;
  };
  std::vector<std::pair<const Value*, CopyIn>> copiedIn;
  bool copyInFailed = false;  ///< the runtime's kernels did not load: DMA, as before
  int rebinds = 0;
  static constexpr int kMaxRebinds = 8;
  /// Points the step at this call's device-resident inputs (`feed`) where they may be read in
  /// place, and back at its own buffers for the others; true for the inputs it binds.
  std::vector<char> bindInputs(const Program& p, const TensorMap& feed);
  /// Points the step back at its own input buffers (every entry point but run()).
  void unbindInputs(const Program& p);
  size_t statusOffset = 0;  ///< of the status words in pinnedOut

  std::vector<cudaexec::Launch> launches;
  CudaGraphExec graph;
  bool launchedOnce = false;  ///< a step was launched (kernel by kernel) before
  std::future<void> gemmWarmUp;  ///< warmUpGemms of this program's new product shapes
  bool timeFirstLaunches = false;  ///< enqueueStep reports the host's time per launch
  bool graphFailed = false;
  std::string graphError;
  std::optional<Error> deferred;  ///< an error from a void method, returned by the next run

  /// The deferred error, once (then cleared), or nothing.
  Expected<void> takeDeferred() {
    if (!deferred) return {};
    Error e = *deferred;
    deferred.reset();
    return Unexpected(e);
  }

  // runAccumulate: two pinned staging buffers, each free again once the event recorded after
  // its uploads has completed; device accumulators and their host copy; the kernel.
  PinnedBuffer stage[2];
  CudaEvent stageUploaded[2];
  bool stagePending[2] = {false, false};
  int nextStage = 0;
  std::unique_ptr<cudaexec::DeviceBlock> accum;
  PinnedBuffer accumHost;
  std::shared_ptr<const cudaexec::RuntimeKernels> runtime;  ///< the runtime's kernels
  CudaKernel accumKernel, gatherKernel;
  std::vector<std::string> accumNames;  ///< slot -> output name
  int64_t accumSteps = 0;               ///< runAccumulate calls since the last take

  /// Device address of a value's buffer (for a host-written output, its pinned host memory,
  /// which the GPU addresses directly).
  void* address(const Program& p, const Value* v) const {
    if (!hostWritten.empty())
      if (auto it = hostWritten.find(v); it != hostWritten.end()) return it->second;
    if (!bound.empty())
      if (auto it = bound.find(v); it != bound.end()) return it->second;
    // Computed by the prepare steps into the prepared region (CudaModuleSource::hoisted).
    if (!src.hoisted.empty())
      if (auto it = src.hoisted.find(v); it != src.hoisted.end()) return prepared->at(it->second);
    const BufferAssignment& a = p.plan.at(v);
    if (a.persistent) return persistent->region ? persistent->region->at(a.offset) : persistent->byName.at(v->name())->data();
    return arena ? arena->at(a.offset) : transient.at(v)->data();
  }
  /// Resolves every launch's pointer arguments (again after shareParameters).
  void bindArguments(const Program& p);
  /// Queues one step: status reset, then every launch, cuBLAS call and copy, in order.
  Expected<void> enqueueStep();
  /// Records enqueueStep() as a CUDA graph.
  Expected<void> captureGraph();
  /// Captures the step as a CUDA graph when graphs are on (not with syncEach or profiling)
  /// and no capture has failed before. A failed capture is remembered (graphError) and the step
  /// keeps launching kernel by kernel, which is correct, only slower; --verbose says which.
  void captureIfAllowed(const Program& p);
  bool mayCapture() const { return opts.graphs && !graphFailed && !opts.syncEach && !profiling; }
  /// Checks `inputs` against the graph's, converts each into the staging buffer `pin` and
  /// queues its upload (device tensors are copied on the device). `syncedCall`: the caller waits for the step before returning (run()), so page-locked host
  /// tensors may be read by DMA in place; runAccumulate returns before the copy runs and
  /// stages everything, so the app may reuse its buffers at once.
  /// `inPlace` (run()): per input, read where the app's GPU memory holds it (bindInputs), not copied.
  Expected<void> uploadInputs(const Program& p, const TensorMap& inputs, char* pin, bool syncedCall,
                              const std::vector<char>* inPlace = nullptr);
  /// Queues one step: the graph when captured, else launch by launch (capturing the graph
  /// afterwards when `captureAfter`, so later steps replay it).
  Expected<void> launchStep(const Program& p, bool captureAfter);
  /// Allocates the accumulators and loads the accumulate kernel (first runAccumulate).
  Expected<void> prepareAccumulation();
  /// After the inputs are in place: queues the step, then the accumulation of the outputs
  /// named in `names` (runAccumulate, runAccumulateRows).
  Expected<void> queueAccumulate(const Program& p, const std::vector<std::string>& names, double weight, int64_t step);
  /// Queues one all_reduce step: the copy into its result, then the collective, opening the
  /// NCCL group at the first step of a bucket and closing it at the last.
  Expected<void> allReduce(const cudaexec::Launch& l, bool firstOfBucket, bool lastOfBucket);
  Communicator* comm = nullptr;  ///< the executable's (set before each run)

  // Profiling (setProfiling): an event before every launch and one after the last; steps
  // launch one by one (no graph) and the host waits for each, so the gaps are the launches'
  // device times. Per op kind (seconds, calls) and per launch (seconds, calls).
  bool profiling = false;
  bool profileRecorded = false;  ///< the events of the last enqueued step await collection
  std::vector<CudaEvent> profileEvents;
  std::map<std::string, std::pair<double, int64_t>> profileByOp;
  std::vector<std::pair<double, int64_t>> profileByLaunch;
  /// Waits for the step and adds its launches' times (after a profiled enqueueStep).
  Expected<void> collectProfile();
};

}  // namespace shoal
