// The CUDA executor: codegen → NVRTC → module, planned device memory, steps on one stream,
// replayed as a CUDA graph after the first run.
#include "runtime/cuda/cuda_executable.h"
#include "runtime/cuda/autotune.h"

// Everything here goes through the CUDA-header-free layer (device.h, module.h, nvrtc.h), whose
// functions report "built without CUDA" in a CPU-only build; no #if is needed in this file.

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <future>
#include <mutex>
#include <set>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "codegen/kernel_cache.h"
#include "codegen/nvrtc.h"
#include "runtime/cuda/device.h"
#include "runtime/cuda/module.h"
#include "runtime/cuda/runtime_kernels.h"
#include "runtime/init.h"
#include "support/phase_times.h"

namespace shoal {

using cudaimpl::gatherConverts;
using cudaimpl::GatherArgs;
using cudaimpl::GatherScalarArg;
using cudaimpl::GatherTensorArg;
using cudaimpl::kAccumBadStep;
using cudaimpl::kAccumBadValue;
using cudaimpl::kAccumErrStep;
using cudaimpl::kAccumSlots;
using cudaimpl::kAccumWeight;
using cudaimpl::kAccumWords;
using cudaimpl::kGatherScalars;
using cudaimpl::kGatherTensors;
using cudaimpl::scalarCode;

namespace {

// One context (stream; cuBLAS handle and workspace once an executable needs them) per process
// and cuBLAS math setting (TF32, 16-bit operands), shared by the executables of a training run
// (step, remainder step, evaluation), so they run in order on one stream and share parameters
// safely.
Expected<std::shared_ptr<CudaContext>> sharedContext(bool tf32, TensorCoreMath gemm16) {
  static std::mutex mutex;
  static std::map<std::pair<bool, TensorCoreMath>, std::weak_ptr<CudaContext>> contexts;
  std::lock_guard lock(mutex);
  const auto key = std::make_pair(tf32, gemm16);
  if (auto ctx = contexts[key].lock()) return ctx;
  CudaContextOptions options;
  options.tf32 = tf32;
  options.gemmBf16 = gemm16 == TensorCoreMath::Bf16;
  options.gemmFp16 = gemm16 == TensorCoreMath::Fp16;
  // Made by the first executable with cuBLAS steps (CudaContext::enableBlas); SHOAL_EAGER_BLAS=1
  // makes them with the context, as before (for measuring start-up).
  options.blas = envFlag("SHOAL_EAGER_BLAS");
  auto created = CudaContext::create(options);
  if (!created) return Unexpected(created.error());
  std::shared_ptr<CudaContext> ctx(std::move(*created));
  contexts[key] = ctx;
  return ctx;
}

// The compute capability's major number of an NVRTC target ("sm_90", "sm_90a", "compute_80");
// 0 when it is none of those.
int archMajor(const std::string& arch) {
  size_t at = arch.find('_');
  if (at == std::string::npos) return 0;
  int value = 0;
  size_t i = at + 1;
  for (; i < arch.size() && std::isdigit(static_cast<unsigned char>(arch[i])); ++i) value = value * 10 + (arch[i] - '0');
  return value / 10;
}

// The runtime's own kernels (runtime_kernels.h): compiled, or read from the kernel cache, and
// loaded once per process and architecture while someone holds them. prewarmCudaContext takes
// them on the context thread at start-up, so a cold cache's NVRTC compile overlaps the
// program's own compile instead of sitting in the first training step.
struct RuntimeKernels {
  CudaModule module;
  CudaKernel accumulate, gather, copyIn;
};

Expected<std::shared_ptr<const RuntimeKernels>> runtimeKernels(const std::string& arch) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<const RuntimeKernels>> loaded;
  std::lock_guard lock(mutex);
  if (auto held = loaded[arch].lock()) return held;
  KernelCache cache(KernelCache::defaultDir());
  auto compiled = compileKernel({"shoal_runtime", cudaimpl::runtimeKernelsSource()}, arch, {}, &cache);
  if (!compiled) return Unexpected(compiled.error());
  auto module = CudaModule::load(compiled->cubin, "shoal_runtime");
  if (!module) return Unexpected(module.error());
  auto accumulate = module->kernel("shoal_accumulate");
  if (!accumulate) return Unexpected(accumulate.error());
  auto gather = module->kernel("shoal_gather_rows");
  if (!gather) return Unexpected(gather.error());
  auto copyIn = module->kernel("shoal_copy_in");
  if (!copyIn) return Unexpected(copyIn.error());
  auto k = std::make_shared<RuntimeKernels>();
  k->module = std::move(*module);
  k->copyIn = *copyIn;
  k->accumulate = *accumulate;
  k->gather = *gather;
  loaded[arch] = k;
  return std::shared_ptr<const RuntimeKernels>(std::move(k));
}

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
  std::vector<void*> argv;  ///< &ptrs[i], what cudaLaunchKernel takes
  bool perStepConstant = false;  ///< Constant: copied from the pool every step
  void* constantSource = nullptr;
  /// The main stream first waits for the side stream: this step touches the buffer of an
  /// all_reduce still running there (see markJoins).
  bool joinBefore = false;
};

// The buffers a step reads or writes, as plan slots (persistent?, offset, bytes).
struct Slot {
  bool persistent;
  int64_t offset, bytes;
  bool overlaps(const Slot& o) const {
    return persistent == o.persistent && offset < o.offset + o.bytes && o.offset < offset + bytes;
  }
};

std::vector<Slot> touchedSlots(const Program& p, const CudaStep& s) {
  std::vector<Slot> out;
  auto add = [&](const CudaArg& a) {
    if (a.kind != CudaArgKind::Value || !a.value) return;
    const BufferAssignment& b = p.plan.at(a.value);
    out.push_back({b.persistent, int64_t(b.offset), std::max<int64_t>(int64_t(b.bytes), 1)});
  };
  for (const CudaArg& a : s.args) add(a);
  if (s.kind == CudaStepKind::Gemm) {
    add(s.gemm.a);
    add(s.gemm.b);
    add(s.gemm.c);
    add(s.gemm.bias);
  }
  if (s.kind == CudaStepKind::Constant) add({CudaArgKind::Value, s.node->result()});
  return out;
}

// All-reduce steps run on the side stream, beside the backward kernels that follow them (the
// schedule pass puts each bucket right after its gradients). The main stream waits for the
// side stream before the first step that touches a buffer an all_reduce still owns (in a
// training step: the first optimizer update) and at the end of the step.
void markJoins(const Program& p, std::vector<Launch>& launches) {
  std::vector<Slot> pending;
  for (Launch& l : launches) {
    std::vector<Slot> touched = touchedSlots(p, *l.step);
    if (l.step->kind == CudaStepKind::AllReduce) {
      const BufferAssignment& b = p.plan.at(l.step->node->result());
      pending.push_back({b.persistent, int64_t(b.offset), std::max<int64_t>(int64_t(b.bytes), 1)});
      continue;
    }
    bool hit = false;
    for (const Slot& t : touched)
      for (const Slot& q : pending) hit = hit || t.overlaps(q);
    if (hit) {
      l.joinBefore = true;
      pending.clear();
    }
  }
}

struct Staged {
  const Node* node = nullptr;
  std::string name;
  size_t offset = 0;  ///< in the pinned buffer
  size_t bytes = 0;
};

}  // namespace

CudaExecutableOptions CudaExecutableOptions::fromEnvironment() {
  CudaExecutableOptions o;
  o.graphs = envFlagDefaultOn("SHOAL_CUDA_GRAPHS");
  o.syncEach = envFlag("SHOAL_CUDA_SYNC_EACH");
  o.hostOutputs = envFlagDefaultOn("SHOAL_CUDA_HOST_OUTPUTS");
  o.inputsInPlace = envFlagDefaultOn("SHOAL_CUDA_INPUTS_IN_PLACE");
  if (const char* b = std::getenv("SHOAL_CUDA_PINNED_COPY_IN_BYTES")) o.pinnedCopyInBytes = std::atoll(b);
  o.horizontalUpdates = envFlagDefaultOn("SHOAL_CUDA_HFUSE");
  o.smallGemms = envFlagDefaultOn("SHOAL_CUDA_SMALL_GEMM");
  o.gemmEpilogues = envFlagDefaultOn("SHOAL_CUDA_GEMM_EPILOGUE");
  o.programmaticLaunch = envFlagDefaultOn("SHOAL_CUDA_PDL");
  o.groupKernels = envFlagDefaultOn("SHOAL_CUDA_GROUP");
  o.prepareParameters = envFlagDefaultOn("SHOAL_CUDA_PREPARE");
  o.wgmma = envFlagDefaultOn("SHOAL_CUDA_WGMMA");
  o.wgmmaTf32Gathered16 = envFlagDefaultOn("SHOAL_CUDA_WGRAD_TF32");
  o.weightGradientColumns = envFlagDefaultOn("SHOAL_CUDA_WGRAD_COLUMNS");
  o.convPairedTaps = envFlagDefaultOn("SHOAL_CUDA_PAIRED_TAPS");
  if (envFlag("SHOAL_CUDA_NHWC")) o.convChannelsLastMinInput = int64_t(1) << 20;
  o.autotune = envFlag("SHOAL_CUDA_AUTOTUNE");
  if (const char* tc = std::getenv("SHOAL_CUDA_TC_CONV")) {
    if (auto m = parseTensorCoreMath(tc)) {
      o.tensorCores = *m;
    } else {
      static std::once_flag warned;  // once per process, not per executable
      std::call_once(warned, [&] {
        std::fprintf(stderr,
                     "shoal: warning: SHOAL_CUDA_TC_CONV=%s is not one of 0, 1, tf32, bf16, fp16; convolutions stay "
                     "on the direct fp32 kernels\n",
                     tc);
      });
    }
  }
  return o;
}

CudaCodegenOptions CudaExecutableOptions::codegenOptions(const std::string& arch) const {
  CudaCodegenOptions c;
  c.wgmma = wgmma && tensorCores != TensorCoreMath::Off && (arch == "sm_90" || arch == "sm_90a");
  c.horizontalUpdates = horizontalUpdates;
  c.tensorCores = tensorCores;
  c.smallGemms = smallGemms && !tf32 && gemm16 == TensorCoreMath::Off;
  c.gemmEpilogues = gemmEpilogues;
  c.groupKernels = groupKernels;
  c.prepareParameters = prepareParameters;
  c.wgmmaTf32Gathered16 = wgmmaTf32Gathered16;
  c.weightGradientColumns = weightGradientColumns;
  c.convPairedTaps = convPairedTaps;
  c.convChannelsLastMinInput = convChannelsLastMinInput;
  c.tuningVariant = tuningVariant;
  return c;
}

CudaExecutableOptions CudaExecutableOptions::withPrecision(TensorCoreMath precision) const {
  CudaExecutableOptions o = *this;
  if (precision == TensorCoreMath::Off) return o;
  o.tensorCores = precision;
  o.tf32 = o.tf32 || precision == TensorCoreMath::Tf32;
  o.gemm16 = precision == TensorCoreMath::Tf32 ? TensorCoreMath::Off : precision;
  return o;
}

namespace {

// cuBLAS's first call for a product shape costs tens of milliseconds on the host (its
// heuristics and the lazy load of the chosen kernel: 110 ms for the seed CNN's first step on
// an H200, 76 ms of it in its first product). warmUpGemms makes those calls on another
// thread, through a context of its own (stream, cuBLAS handle and workspace made with the
// same options, so cuBLAS chooses the same kernels) over scratch memory, while the main
// thread initialises parameters and waits for the data. The products each process has
// warmed are remembered, so later executables warm only new shapes. Nothing the program
// owns is touched; a failure here is dropped (the step's own call reports it).
std::string gemmKey(const CudaGemmCall& g, const CudaContextOptions& o) {
  return fmt::format("{} {}{} {}x{}x{} {} {} {} {} {} {} {} {} {} {}{}{} {}{}", dtypeName(g.dtype), g.transA, g.transB,
                     g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.alpha, g.beta, g.batch, g.strideA, g.strideB, g.strideC,
                     o.tf32, o.gemmBf16, o.gemmFp16, g.bias.value != nullptr, g.activation);
}

// `g` as one call on `ctx`'s stream over these pointers: cuBLASLt for a product with an
// epilogue (bias: null for none), else cuBLAS's strided-batched or single product in its type.
// The one dispatch that the steps' launches and the warm-up share.
Expected<void> callGemm(CudaContext& ctx, const CudaGemmCall& g, void* a, void* b, void* c, const void* bias,
                        std::string_view what) {
  if (g.hasEpilogue())
    return ctx.gemmEpilogueF32(g.transA, g.transB, g.m, g.n, g.k, static_cast<const float*>(a), g.lda,
                               static_cast<const float*>(b), g.ldb, static_cast<float*>(c), g.ldc,
                               static_cast<const float*>(bias), g.activation == "relu", what);
  if (g.batch > 1 && g.dtype == DType::F64)
    return ctx.gemmStridedBatchedF64(g.transA, g.transB, g.m, g.n, g.k, g.alpha, static_cast<const double*>(a), g.lda,
                                     g.strideA, static_cast<const double*>(b), g.ldb, g.strideB, g.beta,
                                     static_cast<double*>(c), g.ldc, g.strideC, g.batch, what);
  if (g.batch > 1)
    return ctx.gemmStridedBatchedF32(g.transA, g.transB, g.m, g.n, g.k, float(g.alpha), static_cast<const float*>(a),
                                     g.lda, g.strideA, static_cast<const float*>(b), g.ldb, g.strideB, float(g.beta),
                                     static_cast<float*>(c), g.ldc, g.strideC, g.batch, what);
  if (g.dtype == DType::F64)
    return ctx.gemmF64(g.transA, g.transB, g.m, g.n, g.k, g.alpha, static_cast<const double*>(a), g.lda,
                       static_cast<const double*>(b), g.ldb, g.beta, static_cast<double*>(c), g.ldc, what);
  return ctx.gemmF32(g.transA, g.transB, g.m, g.n, g.k, float(g.alpha), static_cast<const float*>(a), g.lda,
                     static_cast<const float*>(b), g.ldb, float(g.beta), static_cast<float*>(c), g.ldc, what);
}

void warmUpGemms(const std::vector<CudaGemmCall>& calls, CudaContextOptions options) {
  PhaseTimer timer("cuBLAS first calls (warm-up)");
  options.blas = true;
  auto ctx = CudaContext::create(options);
  if (!ctx) return;
  for (const CudaGemmCall& g : calls) {
    const int64_t elem = int64_t(dtypeSize(g.dtype));
    const int64_t batchA = int64_t(g.batch - 1) * g.strideA, batchB = int64_t(g.batch - 1) * g.strideB;
    const int64_t a = batchA + int64_t(g.transA ? g.k : g.m) * g.lda, b = batchB + int64_t(g.transB ? g.n : g.k) * g.ldb,
                  c = int64_t(g.batch - 1) * g.strideC + int64_t(g.m) * g.ldc + (g.hasEpilogue() ? g.n : 0);
    auto buffer = (*ctx)->allocateBuffer(size_t(std::max<int64_t>(1, a + b + c) * elem), "cuBLAS warm-up");
    if (!buffer) return;
    char* base = static_cast<char*>(*buffer);
    (void)(*ctx)->memsetZero(base, size_t((a + b + c) * elem), "cuBLAS warm-up");
    void *pa = base, *pb = base + a * elem, *pc = base + (a + b) * elem;
    // The bias, if any, after C.
    (void)callGemm(**ctx, g, pa, pb, pc, g.bias.value ? static_cast<char*>(pc) + int64_t(g.m) * g.ldc * elem : nullptr,
                   "warm-up");
    (void)(*ctx)->synchronize("cuBLAS warm-up");
    (void)(*ctx)->freeBuffer(*buffer);
  }
}

// The inputs of an inference program that its kernels may read where the app's GPU memory
// holds them (Impl::bindInputs): read only by generated kernels (not cuBLAS, a copy or a
// collective), in no alias group (a view, or an in-place result written over it). Per input,
// in `inputs` order.
std::vector<char> findBindableInputs(const Program& p, const CudaModuleSource& src, const std::vector<Staged>& inputs) {
  std::vector<char> out(inputs.size(), 0);
  if (updatesParameters(p)) return out;
  std::unordered_set<const Value*> aliased, otherReaders;
  for (const auto& [member, root] : p.plan.aliasOf) aliased.insert(member), aliased.insert(root);
  for (const CudaStep& step : src.steps) {
    if (step.kind == CudaStepKind::Kernel) continue;
    for (const CudaArg& a : step.args) otherReaders.insert(a.value);
    for (const CudaArg* a : {&step.gemm.a, &step.gemm.b, &step.gemm.c, &step.gemm.bias}) otherReaders.insert(a->value);
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value* v = inputs[i].node->result();
    out[i] = inputs[i].bytes > 0 && !aliased.contains(v) && !otherReaders.contains(v);
  }
  return out;
}

// How the profile, the host timing and errors name a library GEMM step: cuBLASLt with its
// epilogue (bias, relu) where it has one, cuBLAS otherwise.
std::string gemmLabel(const CudaGemmCall& g) {
  if (!g.hasEpilogue()) return fmt::format("cuBLAS gemm {}x{}x{}", g.m, g.n, g.k);
  return fmt::format("cuBLASLt gemm {}x{}x{}{}{}", g.m, g.n, g.k, g.bias.value ? " +bias" : "",
                     g.activation.empty() ? "" : " +" + g.activation);
}

// A grouped launch's nodes, each as `name` gives it, joined by " + " (profiles).
template <typename F>
std::string eachPart(const CudaStep& s, F name) {
  std::string out;
  for (const CudaStep& part : s.parts) out += (out.empty() ? "" : " + ") + name(*part.node);
  return out;
}

// Outputs at most this large may be written by their kernels straight into pinned host memory.
constexpr size_t kHostWrittenBytes = size_t(64) << 10;

// The outputs of an inference program (no node updates state) that their kernels may write
// straight into the pinned output buffer, which the GPU addresses directly: a small result
// (kHostWrittenBytes) of kernels only, read by nothing but its output node, in no alias group.
// Its copy back after the step goes (a batch-1 call's last copy, ~2 us on an H200); the
// stores cross the bus as the kernel makes them. A training step keeps its outputs on the GPU:
// its accumulation kernel reads them there every step.
std::unordered_map<const Value*, void*> findHostWrittenOutputs(const Program& p, const CudaModuleSource& src,
                                                               const std::vector<Staged>& outputs, char* pinOut) {
  std::unordered_map<const Value*, void*> out;
  if (updatesParameters(p)) return out;
  std::unordered_set<const Value*> aliased;
  for (const auto& [member, root] : p.plan.aliasOf) aliased.insert(member), aliased.insert(root);
  for (const Staged& s : outputs) {
    const Value* v = s.node->input(0);
    const Node* producer = v->def();
    if (s.bytes == 0 || s.bytes > kHostWrittenBytes || !producer || aliased.contains(v) ||
        p.plan.at(v).persistent || isPersistentSource(producer->kind()) || producer->kind() == OpKind::Input)
      continue;
    bool onlyOutputs = true;
    for (const Node* user : p.graph->users(v)) onlyOutputs = onlyOutputs && user->kind() == OpKind::Output;
    bool kernelsOnly = true, written = false;
    for (const CudaStep& step : src.steps)
      if (step.node == producer) kernelsOnly = kernelsOnly && step.kind == CudaStepKind::Kernel, written = true;
    if (onlyOutputs && kernelsOnly && written) out[v] = pinOut + s.offset;
  }
  return out;
}

}  // namespace

struct CudaExecutable::Impl {
  CudaExecutableOptions opts;
  std::string arch;  ///< what the module was compiled for
  std::shared_ptr<CudaContext> ctx;
  CudaModuleSource src;
  CudaModule module;
  double compileMs = 0;

  std::unique_ptr<DeviceBlock> arena;  ///< transient values (one block) ...
  std::unordered_map<const Value*, std::unique_ptr<DeviceBlock>> transient;  ///< ... or one each
  std::shared_ptr<PersistentStorage> persistent;
  std::unique_ptr<DeviceBlock> status, scratch, constants;
  /// The prepared region (src.preparedBytes): parameters rearranged by the `prepare` steps,
  /// made for `preparedFor` at its generation `preparedGeneration` (stale when either moved).
  std::unique_ptr<DeviceBlock> prepared;
  const PersistentStorage* preparedFor = nullptr;
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
  std::vector<Staged> inputs, outputs;
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

  std::vector<Launch> launches;
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
  std::unique_ptr<DeviceBlock> accum;
  PinnedBuffer accumHost;
  std::shared_ptr<const RuntimeKernels> runtime;  ///< the runtime's kernels
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
  Expected<void> allReduce(const Launch& l, bool firstOfBucket, bool lastOfBucket);
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

Expected<void> CudaExecutable::Impl::prepareIfChanged() {
  if (!hasPrepareSteps || (preparedFor == persistent.get() && preparedGeneration == persistent->generation)) return {};
  for (const Launch& l : launches) {
    const CudaStep& s = *l.step;
    if (!s.prepare) continue;
    if (auto ok = l.kernel.launch({s.grid[0], s.grid[1], 1}, {s.block, 1, 1}, const_cast<void**>(l.argv.data()),
                                  s.sharedBytes, ctx->stream());
        !ok)
      return ok;
    if (opts.syncEach)
      if (auto ok = ctx->synchronize("kernel '" + s.kernel + "' of " + s.node->describe()); !ok) return ok;
  }
  preparedFor = persistent.get();
  preparedGeneration = persistent->generation;
  return {};
}

Expected<void> CudaExecutable::Impl::collectProfile() {
  if (!profileRecorded) return {};
  profileRecorded = false;
  if (auto ok = ctx->synchronize("profiled step"); !ok) return ok;
  profileByLaunch.resize(launches.size());
  for (size_t li = 0; li < launches.size(); ++li) {
    auto ms = ctx->elapsedMs(profileEvents[li], profileEvents[li + 1]);
    if (!ms) return Unexpected(ms.error());
    // A grouped launch (kernels of several nodes side by side) is timed as one: it is listed
    // under all of its ops, not the first one's.
    const CudaStep& step = *launches[li].step;
    if (step.prepare) continue;  // ran apart from the step, if at all
    const std::string op = step.parts.empty()
                               ? std::string(step.node->opName())
                               : "grouped: " + eachPart(step, [](const Node& n) { return std::string(n.opName()); });
    auto& [seconds, calls] = profileByOp[op];
    seconds += *ms * 1e-3;
    ++calls;
    profileByLaunch[li].first += *ms * 1e-3;
    ++profileByLaunch[li].second;
  }
  return {};
}

Expected<void> CudaExecutable::Impl::allReduce(const Launch& l, bool firstOfBucket, bool lastOfBucket) {
  const CudaStep& s = *l.step;
  if (l.ptrs[0] != l.ptrs[1])
    if (auto ok = ctx->copyDeviceToDevice(l.ptrs[1], l.ptrs[0], size_t(s.bytes), s.node->describe()); !ok) return ok;
  const int64_t ranks = s.node->attrs().getInt("ranks");
  if (!comm) {
    if (ranks == 1) return {};
    return fail(fmt::format("{}: the program combines gradients over {} ranks but runs without a communicator",
                            s.node->describe(), ranks));
  }
  if (comm->size() != ranks)
    return fail(fmt::format("{}: the program was compiled for {} ranks, the run has {}", s.node->describe(), ranks,
                            comm->size()));
  // A bucket runs on the side stream once the main stream has computed its gradients (and the
  // copies above); the main stream goes on with the backward pass (joins: markJoins).
  if (firstOfBucket) {
    if (auto ok = ctx->forkSide("the bucket of " + s.node->describe()); !ok) return ok;
    if (auto ok = comm->groupStart(); !ok) return ok;
  }
  auto side = ctx->sideStream();
  if (!side) return Unexpected(side.error());
  auto op = parseReduceKind(s.node->attrs().getString("op"));
  const TensorType& t = s.node->result()->type();
  if (auto ok = comm->allReduceDevice(l.ptrs[1], t.dtype, t.numElements(), op.value_or(ReduceKind::Sum), *side);
      !ok)
    return fail(s.node->describe() + ": " + ok.error().message());
  if (lastOfBucket)
    if (auto ok = comm->groupEnd(); !ok) return fail(s.node->describe() + ": " + ok.error().message());
  return {};
}

CudaExecutable::CudaExecutable(Program program) : program_(std::move(program)), impl_(std::make_unique<Impl>()) {}
CudaExecutable::~CudaExecutable() = default;

const CudaModuleSource& CudaExecutable::module() const { return impl_->src; }
bool CudaExecutable::replaysGraph() const { return impl_->graph.valid(); }
size_t CudaExecutable::graphNodes() const { return impl_->graph.nodeCount(); }
std::vector<std::string> CudaExecutable::hostWrittenOutputs() const {
  std::vector<std::string> names;
  for (const Staged& s : impl_->outputs)
    if (impl_->hostWritten.contains(s.node->input(0))) names.push_back(s.name);
  return names;
}
std::vector<std::string> CudaExecutable::inputsReadInPlace() const {
  std::vector<std::string> names;
  for (const Staged& s : impl_->inputs)
    if (impl_->bound.contains(s.node->result())) names.push_back(s.name);
  return names;
}
std::vector<std::string> CudaExecutable::inputsCopiedIn() const {
  std::vector<std::string> names;
  for (const Staged& s : impl_->inputs)
    for (const auto& c : impl_->copiedIn)
      if (c.first == s.node->result()) names.push_back(s.name);
  return names;
}
const std::string& CudaExecutable::graphCaptureError() const { return impl_->graphError; }
double CudaExecutable::compileMs() const { return impl_->compileMs; }
std::string CudaExecutable::deviceName() const { return impl_->ctx ? impl_->ctx->device().describe() : "cuda"; }

namespace {

// True when no other buffer of the plan ever overlaps `v`'s slot, so a value written once
// at load stays intact across runs.
bool slotIsExclusive(const Program& p, const Value* v) {
  const BufferAssignment& mine = p.plan.at(v);
  for (const auto& [other, a] : p.plan.buffers) {
    if (other == v || a.persistent != mine.persistent || a.bytes == 0) continue;
    if (a.offset < mine.offset + mine.bytes && mine.offset < a.offset + a.bytes) return false;
  }
  return true;
}

Tensor literalTensor(const Node& n) {
  const TensorLiteral& lit = n.attrs().getTensor("value");
  Tensor t(n.result()->type());
  for (int64_t i = 0; i < t.numElements(); ++i) t.set(i, lit.values[size_t(i)]);
  return t;
}

// Writes `src` into `dst` (same shape), converting the element type like the interpreter.
void convertInto(const Tensor& src, Tensor dst) {
  if (src.dtype() == dst.dtype()) {
    if (src.byteSize()) std::memcpy(dst.raw(), src.raw(), src.byteSize());
    return;
  }
  for (int64_t i = 0; i < src.numElements(); ++i) dst.set(i, src.at(i));
}

size_t alignUp(size_t n) { return (n + 63) / 64 * 64; }

// A tensor in the app's GPU memory can stand for `want` on GPU `device` when it is on that GPU
// and has `want`'s element type (nothing converts on the device).
Expected<void> checkDeviceTensor(const Tensor& t, const TensorType& want, const std::string& what, int device) {
  if (t.device() != device)
    return fail(fmt::format("{} is in the memory of GPU {}, the model runs on GPU {}", what, t.device(), device));
  if (t.dtype() != want.dtype)
    return fail(fmt::format("{} is in GPU memory as {}, the model takes {}: nothing converts on the device, so "
                            "convert it first (or pass a host tensor)",
                            what, t.type().str(), want.str()));
  return {};
}

}  // namespace

Expected<std::unique_ptr<CudaExecutable>> CudaExecutable::create(Program program, const CudaExecutableOptions& opts) {
  if (!cudaBuiltIn()) return fail("shoal was built without CUDA support (SHOAL_HAVE_CUDA=0); use --device cpu");
  std::string conflict = checkMemoryPlan(*program.graph, program.plan);
  if (!conflict.empty()) return fail("internal error: memory plan is unsound: " + conflict);
  std::unique_ptr<CudaExecutable> exe(new CudaExecutable(std::move(program)));
  const Program& p = exe->program_;
  Impl& im = *exe->impl_;
  im.opts = opts;
  const std::string graphName = p.graph->name();

  // Source → cubin (cached on disk) first: NVRTC needs only the device's architecture, so a
  // cold compile overlaps the CUDA context another thread may still be making (the trainer's
  // start-up); then the context, the module and its kernels.
  std::string arch = opts.arch;
  if (arch.empty()) {
    auto device = probeCudaDevice(0);
    if (!device) return Unexpected(device.error());
    arch = device->arch();
  }
  std::optional<PhaseTimer> timer(std::in_place, "CUDA codegen");
  CudaCodegenOptions codegen = opts.codegenOptions(arch);
  const std::string deviceArch = arch;
  arch = cudaTargetArch(codegen, arch);
  auto src = generateCudaSource(p, codegen);
  if (!src) return Unexpected(src.error());
  // The autotuner's tiles (read from the kernel cache, or timed now), then the module again
  // with them.
  if (opts.autotune && opts.tuningVariant < 0 && !src->products.empty()) {
    timer.emplace("autotune (or its choice from the kernel cache)");
    auto tiles = autotuneTiles(p, opts, deviceArch, *src);
    if (!tiles) return Unexpected(tiles.error());
    codegen.productTiles = std::move(*tiles);
    timer.emplace("CUDA codegen");
    src = generateCudaSource(p, codegen);
    if (!src) return Unexpected(src.error());
  }
  im.src = std::move(*src);
  im.arch = arch;
  timer.emplace("kernel cache read");
  KernelCache cache(KernelCache::defaultDir());
  auto compiled = compileKernel({im.src.name, im.src.source}, arch, {}, &cache);
  if (!compiled) return Unexpected(compiled.error());
  if (!compiled->cacheHit) timer->rename("NVRTC compile (+ cache write)");
  im.compileMs = compiled->compileMs;
  timer.reset();

  // cuBLAS (and cuBLASLt, for epilogues) only for a program with cuBLAS steps: loaded here
  // while another thread may still be making the context, the handle made once it is there.
  const bool blas = std::any_of(im.src.steps.begin(), im.src.steps.end(),
                                [](const CudaStep& s) { return s.kind == CudaStepKind::Gemm; });
  if (blas) {
    PhaseTimer load("cuBLAS libraries (dlopen)");
    preloadBlasLibraries();  // a failure is reported by enableBlas below
  }
  auto ctx = [&] {
    PhaseTimer wait("CUDA context (made or waited for)");
    return sharedContext(opts.tf32, opts.gemm16);
  }();
  if (!ctx) return Unexpected(ctx.error());
  im.ctx = *ctx;
  if (auto ok = im.ctx->makeCurrent(); !ok) return Unexpected(ok.error());
  if (blas)
    if (auto ok = im.ctx->enableBlas(); !ok) return Unexpected(ok.error());
  // The tensor-core kernels use mma.sync, ldmatrix and cp.async of sm_80 and up to 80 KiB of
  // shared memory per block (emulated below sm_80 only for CI's CPU emulator).
  if (opts.tensorCores != TensorCoreMath::Off && im.ctx->device().major < 8)
    return fail(fmt::format("precision {} runs on tensor cores of compute capability 8.0 or later; {} is {}.{}",
                            tensorCoreMathName(opts.tensorCores), im.ctx->device().describe(), im.ctx->device().major,
                            im.ctx->device().minor));

  timer.emplace("module load");
  auto module = CudaModule::load(compiled->cubin, im.src.name);
  if (!module) return Unexpected(module.error());
  im.module = std::move(*module);
  timer.emplace("device memory, constants, arguments");

  // Device memory: the transient arena and the persistent region (or a block per buffer).
  const bool separate = im.ctx->separateAllocs();
  if (separate) {
    for (const Node* n : p.graph->nodes())
      for (size_t r = 0; r < n->numResults(); ++r) {
        const Value* v = n->result(r);
        if (p.plan.at(v).persistent) continue;
        auto b = DeviceBlock::allocate(im.ctx, p.plan.at(v).bytes, "buffer for %" + v->name());
        if (!b) return Unexpected(b.error());
        im.transient[v] = std::move(*b);
      }
  } else {
    auto a = DeviceBlock::allocate(im.ctx, p.plan.arenaBytes, "arena for '" + graphName + "'");
    if (!a) return Unexpected(a.error());
    im.arena = std::move(*a);
  }
  im.persistent = std::make_shared<PersistentStorage>();
  if (separate) {
    for (const Node* n : p.graph->nodes()) {
      if (!isPersistentSource(n->kind())) continue;
      auto b = DeviceBlock::allocate(im.ctx, p.plan.at(n->result()).bytes, "buffer for %" + n->result()->name());
      if (!b) return Unexpected(b.error());
      im.persistent->byName[n->result()->name()] = std::move(*b);
    }
  } else {
    auto r = DeviceBlock::allocate(im.ctx, p.plan.persistentBytes, "parameters of '" + graphName + "'");
    if (!r) return Unexpected(r.error());
    im.persistent->region = std::move(*r);
  }
  const int64_t statusBytes = im.src.statusWords() * int64_t(sizeof(uint64_t));
  auto status = DeviceBlock::allocate(im.ctx, statusBytes, "status words");
  if (!status) return Unexpected(status.error());
  im.status = std::move(*status);
  // Zeroed once here; a module with error sites zeroes them again before every step (see
  // enqueueStep), one without never writes them.
  if (auto ok = im.ctx->memsetZero(im.status->data(), size_t(statusBytes), "status words"); !ok)
    return Unexpected(ok.error());
  if (im.src.scratchBytes > 0) {
    auto scratch = DeviceBlock::allocate(im.ctx, im.src.scratchBytes, "reduction scratch");
    if (!scratch) return Unexpected(scratch.error());
    im.scratch = std::move(*scratch);
  }
  if (im.src.preparedBytes > 0) {
    auto prepared = DeviceBlock::allocate(im.ctx, im.src.preparedBytes, "prepared parameters");
    if (!prepared) return Unexpected(prepared.error());
    im.prepared = std::move(*prepared);
  }
  im.hasPrepareSteps = std::any_of(im.src.steps.begin(), im.src.steps.end(), [](const CudaStep& s) { return s.prepare; });
  im.writesParameters = updatesParameters(p);

  // Pinned staging: inputs in one buffer, outputs plus the status words in another.
  size_t inBytes = 0, outBytes = 0;
  for (const Node* n : p.graph->inputNodes()) {
    size_t bytes = n->result()->type().byteSize();
    im.inputs.push_back({n, n->attrs().getString("name"), inBytes, bytes});
    inBytes += alignUp(bytes);
  }
  for (const Node* n : p.graph->outputNodes()) {
    size_t bytes = n->input(0)->type().byteSize();
    im.outputs.push_back({n, n->attrs().getString("name"), outBytes, bytes});
    outBytes += alignUp(bytes);
  }
  im.statusOffset = outBytes;
  outBytes += size_t(statusBytes);
  auto pinIn = im.ctx->allocatePinned(std::max<size_t>(inBytes, 64), "input staging");
  if (!pinIn) return Unexpected(pinIn.error());
  im.pinnedIn = std::move(*pinIn);
  auto pinOut = im.ctx->allocatePinned(outBytes, "output staging");
  if (!pinOut) return Unexpected(pinOut.error());
  im.pinnedOut = std::move(*pinOut);

  // Constants: written once now when their slot is theirs alone, else copied from a pool
  // at every step.
  int64_t poolBytes = 0;
  std::vector<std::pair<const CudaStep*, int64_t>> pooled;
  std::vector<Tensor> keepAlive;
  for (const CudaStep& s : im.src.steps) {
    if (s.kind != CudaStepKind::Constant || s.bytes == 0) continue;
    const Value* v = s.node->result();
    if (separate || slotIsExclusive(p, v)) continue;
    pooled.emplace_back(&s, poolBytes);
    poolBytes += int64_t(alignUp(size_t(s.bytes)));
  }
  if (poolBytes > 0) {
    auto pool = DeviceBlock::allocate(im.ctx, poolBytes, "constants");
    if (!pool) return Unexpected(pool.error());
    im.constants = std::move(*pool);
  }

  // Resolve every step's arguments.
  for (const CudaStep& s : im.src.steps) {
    Launch l;
    l.step = &s;
    if (s.kind == CudaStepKind::Kernel) {
      auto k = im.module.kernel(s.kernel);
      if (!k) return Unexpected(k.error());
      l.kernel = *k;
      // Above the 48 KiB every kernel may use, dynamic shared memory is opted into per kernel.
      if (s.sharedBytes > 48 * 1024)
        if (auto ok = l.kernel.setMaxDynamicSharedMemory(int(s.sharedBytes), im.ctx->options().device); !ok)
          return Unexpected(ok.error());
    }
    if (s.kind == CudaStepKind::Constant && s.bytes > 0) {
      Tensor t = literalTensor(*s.node);
      void* dst = im.address(p, s.node->result());
      auto it = std::find_if(pooled.begin(), pooled.end(), [&](const auto& e) { return e.first == &s; });
      if (it != pooled.end()) {
        l.perStepConstant = true;
        l.constantSource = im.constants->at(it->second);
        dst = l.constantSource;
      }
      if (auto ok = im.ctx->copyToDevice(dst, t.raw(), t.byteSize(), "constant %" + s.node->result()->name()); !ok)
        return Unexpected(ok.error());
      keepAlive.push_back(std::move(t));
    }
    im.launches.push_back(std::move(l));
  }
  markJoins(p, im.launches);
  if (im.opts.hostOutputs)
    im.hostWritten = findHostWrittenOutputs(p, im.src, im.outputs, static_cast<char*>(im.pinnedOut.data()));
  if (im.opts.inputsInPlace) im.bindable = findBindableInputs(p, im.src, im.inputs);
  if (std::any_of(im.src.steps.begin(), im.src.steps.end(),
                  [](const CudaStep& s) { return s.kind == CudaStepKind::AllReduce; }))
    if (auto side = im.ctx->sideStream(); !side) return Unexpected(side.error());  // not during a capture
  im.bindArguments(p);
  // cuBLASLt's handle and the epilogue products' plans, now rather than in a captured step.
  for (const Launch& l : im.launches)
    if (l.step->kind == CudaStepKind::Gemm && l.step->gemm.hasEpilogue()) {
      const CudaGemmCall& g = l.step->gemm;
      if (auto ok = im.ctx->planGemmEpilogueF32(g.transA, g.transB, g.m, g.n, g.k, static_cast<const float*>(l.ptrs[0]),
                                                g.lda, static_cast<const float*>(l.ptrs[1]), g.ldb,
                                                static_cast<float*>(l.ptrs[2]), g.ldc,
                                                static_cast<const float*>(l.ptrs[3]), g.activation == "relu",
                                                l.step->node->describe());
          !ok)
        return Unexpected(ok.error());
    }
  if (auto ok = im.ctx->synchronize("loading '" + graphName + "'"); !ok) return Unexpected(ok.error());
  timer.reset();

  {
    // cuBLAS's first calls for this program's products, on another thread (see warmUpGemms).
    static std::mutex warmedMutex;
    static std::set<std::string> warmed;
    std::vector<CudaGemmCall> fresh;
    if (envFlagDefaultOn("SHOAL_CUDA_GEMM_WARMUP") && !envFlag("SHOAL_SERIAL_STARTUP") && !opts.syncEach) {
      std::lock_guard<std::mutex> lock(warmedMutex);
      for (const CudaStep& s : im.src.steps)
        if (s.kind == CudaStepKind::Gemm && warmed.insert(gemmKey(s.gemm, im.ctx->options())).second)
          fresh.push_back(s.gemm);
    }
    if (!fresh.empty())
      im.gemmWarmUp = std::async(std::launch::async, [fresh = std::move(fresh), options = im.ctx->options()] {
        warmUpGemms(fresh, options);
      });
  }

  if (opts.verbose) {
    int64_t gemms = std::count_if(im.src.steps.begin(), im.src.steps.end(),
                                  [](const CudaStep& s) { return s.kind == CudaStepKind::Gemm; });
    std::cerr << fmt::format("shoal: cuda '{}': {} kernels + {} cuBLAS calls for {} ({}); arena {:.1f} MB, persistent "
                             "{:.1f} MB{}\n",
                             graphName, im.src.kernelNames.size(), gemms, arch,
                             compiled->cacheHit ? "kernel cache hit" : fmt::format("NVRTC {:.1f} ms", compiled->compileMs),
                             double(p.plan.arenaBytes) / 1e6, double(p.plan.persistentBytes) / 1e6,
                             separate ? " (separate allocations)" : "");
    std::cerr << "shoal: " << cache.summary() << "\n";
    for (const Staged& s : im.outputs)
      if (im.hostWritten.contains(s.node->input(0)))
        std::cerr << fmt::format("shoal: cuda '{}': output '{}' ({} bytes) written by its kernel into pinned host "
                                 "memory (no copy after the step)\n",
                                 graphName, s.name, s.bytes);
    if (!compiled->log.empty()) std::cerr << "shoal: NVRTC log:\n" << compiled->log << "\n";
  }
  return exe;
}

void CudaExecutable::Impl::bindArguments(const Program& p) {
  Impl& im = *this;
  for (Launch& l : im.launches) {
    const CudaStep& s = *l.step;
    l.ptrs.clear();
    auto resolve = [&](const CudaArg& a) -> void* {
      switch (a.kind) {
        case CudaArgKind::Value: return im.address(p, a.value);
        case CudaArgKind::Scratch: return im.scratch ? im.scratch->data() : nullptr;
        case CudaArgKind::Status: return im.status->data();
        case CudaArgKind::Prepared: return im.prepared ? im.prepared->at(a.offset) : nullptr;
      }
      return nullptr;
    };
    if (s.kind == CudaStepKind::Gemm) {
      // A batched product may start inside its buffers (one run of a broadcast batch).
      const size_t elem = dtypeSize(s.gemm.dtype);
      auto at = [&](const CudaArg& a, int64_t offset) -> void* {
        return static_cast<char*>(resolve(a)) + size_t(offset) * elem;
      };
      l.ptrs = {at(s.gemm.a, s.gemm.offsetA), at(s.gemm.b, s.gemm.offsetB), at(s.gemm.c, s.gemm.offsetC),
                s.gemm.bias.value ? resolve(s.gemm.bias) : nullptr};
    } else {
      for (const CudaArg& a : s.args) l.ptrs.push_back(resolve(a));
    }
    l.argv.clear();
    for (void*& ptr : l.ptrs) l.argv.push_back(&ptr);
  }
}

Expected<void> CudaExecutable::Impl::enqueueStep() {
  Impl& im = *this;
  if (im.gemmWarmUp.valid()) {  // the warm-up's calls first, so the step's find cuBLAS ready
    PhaseTimer wait("waiting for cuBLAS's first calls (warm-up)");
    im.gemmWarmUp.get();
  }
  CudaContext& ctx = *im.ctx;
  // A module without error sites has no kernel that writes the status words (zeroed when
  // allocated): no memset a step.
  if (!im.src.errorSites.empty())
    if (auto ok = ctx.memsetZero(im.status->data(), size_t(im.status->bytes()), "status words"); !ok) return ok;
  const bool profile = im.profiling && !ctx.capturing();
  if (profile)
    while (im.profileEvents.size() < im.launches.size() + 1) {
      auto ev = ctx.createEvent();
      if (!ev) return Unexpected(ev.error());
      im.profileEvents.push_back(std::move(*ev));
    }
  bool sideUsed = false;
  // The inputs copied in from mapped host memory, before every launch of the step.
  for (auto& [value, c] : im.copiedIn) {
    long long bytes = c.bytes;
    void* argv[] = {&c.from, &c.to, &bytes};
    if (auto ok = im.runtime->copyIn.launch({cudaimpl::copyInBlocks(c.bytes), 1, 1}, {256, 1, 1}, argv, 0, ctx.stream());
        !ok)
      return ok;
  }
  // A generated kernel right after another one on this stream may be launched before that one
  // ends (it waits for it in its first statement): not after a copy, a cuBLAS call, an
  // all-reduce or a join, and not while profiling (events between launches) or with syncEach.
  // The module's target decides, not the device: code built for sm_80 has no wait in it.
  const bool programmatic = im.opts.programmaticLaunch && !profile && !im.opts.syncEach && archMajor(im.arch) >= 9;
  bool afterKernel = !im.copiedIn.empty();  // shoal_copy_in waits for nothing, triggers nothing early
  // --verbose, first step: the host's time in each launch (where lazy module loading and
  // cuBLAS's first calls show).
  const bool timeHost = im.timeFirstLaunches;
  std::vector<std::pair<double, size_t>> hostSeconds;
  for (size_t li = 0; li < im.launches.size(); ++li) {
    Launch& l = im.launches[li];
    const CudaStep& s = *l.step;
    const auto hostStart = std::chrono::steady_clock::now();
    if (profile)
      if (auto ok = ctx.record(im.profileEvents[li]); !ok) return ok;
    if (s.prepare) continue;  // not part of the step: prepareIfChanged() runs it before one
    if (l.joinBefore && sideUsed) {
      if (auto ok = ctx.joinSide("the all_reduce steps before " + s.node->describe()); !ok) return ok;
      afterKernel = false;
    }
    const bool kernelFollows = afterKernel;
    afterKernel = s.kind == CudaStepKind::Kernel;
    switch (s.kind) {
      case CudaStepKind::Kernel: {
        LaunchDims grid{s.grid[0], s.grid[1], 1}, block{s.block, 1, 1};
        auto ok = programmatic && kernelFollows
                      ? l.kernel.launchAfterPrevious(grid, block, l.argv.data(), s.sharedBytes, ctx.stream())
                      : l.kernel.launch(grid, block, l.argv.data(), s.sharedBytes, ctx.stream());
        if (!ok) return ok;
        if (im.opts.syncEach && !ctx.capturing())
          if (auto ok = ctx.synchronize("kernel '" + s.kernel + "' of " + s.node->describe()); !ok) return ok;
        break;
      }
      case CudaStepKind::Gemm: {
        const CudaGemmCall& g = s.gemm;
        const std::string what = s.node->describe();
        auto ok = callGemm(ctx, g, l.ptrs[0], l.ptrs[1], l.ptrs[2], l.ptrs[3], what);
        if (!ok) return ok;
        if (im.opts.syncEach && !ctx.capturing())
          if (auto sync = ctx.synchronize(gemmLabel(g) + " of " + what); !sync) return sync;
        break;
      }
      case CudaStepKind::Copy:
        if (l.ptrs[0] != l.ptrs[1])
          if (auto ok = ctx.copyDeviceToDevice(l.ptrs[1], l.ptrs[0], size_t(s.bytes), s.node->describe()); !ok)
            return ok;
        break;
      case CudaStepKind::AllReduce: {
        // Adjacent all_reduce steps form one bucket: one NCCL group, one launch.
        const bool first = li == 0 || im.launches[li - 1].step->kind != CudaStepKind::AllReduce;
        const bool last = li + 1 == im.launches.size() || im.launches[li + 1].step->kind != CudaStepKind::AllReduce;
        if (auto ok = im.allReduce(l, first, last); !ok) return ok;
        sideUsed = sideUsed || im.comm;
        break;
      }
      case CudaStepKind::Constant:
        if (l.perStepConstant)
          if (auto ok = ctx.copyDeviceToDevice(l.ptrs[0], l.constantSource, size_t(s.bytes), s.node->describe()); !ok)
            return ok;
        break;
    }
    if (timeHost)
      hostSeconds.emplace_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - hostStart).count(), li);
  }
  if (timeHost) {
    double total = 0;
    for (auto& [sec, li] : hostSeconds) total += sec;
    std::sort(hostSeconds.begin(), hostSeconds.end(), std::greater<>());
    std::string top;
    for (size_t i = 0; i < std::min<size_t>(5, hostSeconds.size()); ++i) {
      const CudaStep& s = *im.launches[hostSeconds[i].second].step;
      std::string what = s.kind == CudaStepKind::Kernel ? s.kernel
                         : s.kind == CudaStepKind::Gemm ? gemmLabel(s.gemm)
                                                         : s.node->describe();
      top += fmt::format("{}{} {:.1f} ms", i ? ", " : "", what, hostSeconds[i].first * 1e3);
    }
    std::cerr << fmt::format("shoal: cuda '{}': first step queued in {:.1f} ms on the host (kernels load on first "
                             "launch); slowest: {}\n",
                             im.src.name, total * 1e3, top);
  }
  if (sideUsed)
    if (auto ok = ctx.joinSide("the all_reduce steps at the end of the step"); !ok) return ok;
  if (profile) {
    if (auto ok = ctx.record(im.profileEvents[im.launches.size()]); !ok) return ok;
    im.profileRecorded = true;
  }
  return {};
}

Expected<void> CudaExecutable::Impl::captureGraph() {
  Impl& im = *this;
  if (auto ok = im.ctx->beginCapture(CaptureModeKind::ThreadLocal); !ok) return ok;
  Expected<void> queued = enqueueStep();
  auto graph = im.ctx->endCapture();  // always end the capture, even after a failed enqueue
  if (!queued) return queued;
  if (!graph) return Unexpected(graph.error());
  im.graph = std::move(*graph);
  return {};
}


Expected<TensorMap> CudaExecutable::run(const TensorMap& inputs) {
  Impl& im = *impl_;
  im.comm = comm_.get();
  if (auto pending = im.takeDeferred(); !pending) return Unexpected(pending.error());
  CudaContext& ctx = *im.ctx;
  if (auto ok = ctx.makeCurrent(); !ok) return Unexpected(ok.error());
  char* pinOut = static_cast<char*>(im.pinnedOut.data());
  const std::vector<char> inPlace = im.bindInputs(program_, inputs);
  if (auto ok = im.uploadInputs(program_, inputs, static_cast<char*>(im.pinnedIn.data()), /*syncedCall=*/true, &inPlace);
      !ok)
    return Unexpected(ok.error());
  if (auto ok = im.prepareIfChanged(); !ok) return Unexpected(ok.error());
  im.noteStep();
  if (im.graph.valid() && !im.profiling) {
    if (auto ok = ctx.launch(im.graph); !ok) return Unexpected(ok.error());
  } else {
    if (auto ok = im.enqueueStep(); !ok) {
      (void)ctx.synchronize("after a failed launch");
      return Unexpected(ok.error());
    }
    im.launchedOnce = true;
  }
  for (const Staged& s : im.outputs)
    if (!im.hostWritten.contains(s.node->input(0)))
      if (auto ok = ctx.copyToHost(pinOut + s.offset, im.address(program_, s.node->input(0)), s.bytes,
                                   "output '" + s.name + "'");
          !ok)
        return Unexpected(ok.error());
  // Status words only where a kernel can report (labels, indices, integer division, Adam's
  // step): an inference module usually has none, and saves the copy and its API call.
  const bool statusWords = !im.src.errorSites.empty();
  if (statusWords)
    if (auto ok =
            ctx.copyToHost(pinOut + im.statusOffset, im.status->data(), size_t(im.status->bytes()), "status words");
        !ok)
      return Unexpected(ok.error());
  const std::string stepName = "step of '" + program_.graph->name() + "'";
  if (auto ok = ctx.synchronize(stepName); !ok) {
    std::string msg = ok.error().message();
    if (!im.opts.syncEach) msg += " (set SHOAL_CUDA_SYNC_EACH=1 to name the failing kernel)";
    return fail(msg);
  }
  if (statusWords)
    if (auto ok = checkCudaStatus(im.src, reinterpret_cast<const uint64_t*>(pinOut + im.statusOffset)); !ok)
      return Unexpected(ok.error());
  if (auto ok = im.collectProfile(); !ok) return Unexpected(ok.error());
  TensorMap out;
  for (const Staged& s : im.outputs) {
    Tensor t(s.node->input(0)->type());
    if (s.bytes) std::memcpy(t.raw(), pinOut + s.offset, s.bytes);
    out[s.name] = std::move(t);
  }
  if (!im.graph.valid() && im.opts.graphs && !im.graphFailed && !im.opts.syncEach && !im.profiling) {
    if (auto ok = im.captureGraph(); !ok) {
      im.graphFailed = true;  // keep launching step by step; correct, only slower
      im.graphError = ok.error().message();
      if (im.opts.verbose)
        std::cerr << "shoal: cuda '" << program_.graph->name() << "': no CUDA graph (" << ok.error().message()
                  << "); launching kernels one by one\n";
    } else if (im.opts.verbose) {
      std::cerr << fmt::format("shoal: cuda '{}': step captured as a CUDA graph of {} nodes\n", program_.graph->name(),
                               im.graph.nodeCount());
    }
  }
  return out;
}

std::vector<char> CudaExecutable::Impl::bindInputs(const Program& p, const TensorMap& feed) {
  std::vector<char> inPlace(inputs.size(), 0);
  if (bindable.empty() || rebinds > kMaxRebinds) return inPlace;
  bool changed = false, copiesChanged = false;
  std::vector<std::pair<const Value*, const void*>> copyFrom;  // this call's copies in
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!bindable[i]) continue;
    const Value* v = inputs[i].node->result();
    auto it = feed.find(inputs[i].name);
    const bool fits = it != feed.end() && it->second.dtype() == v->type().dtype &&
                      it->second.shape() == v->type().shape && rebinds < kMaxRebinds;
    void* want = nullptr;
    // Aligned as the plan aligns every buffer (kernels may read an operand 16 bytes at a time);
    // a view at another offset is copied into the input's own buffer, as before.
    if (fits && it->second.isOnDevice() && it->second.device() == ctx->device().index &&
        reinterpret_cast<uintptr_t>(it->second.raw()) % uintptr_t(kBufferAlignment) == 0)
      want = const_cast<void*>(it->second.raw());  // only read: the input's kernels never write it
    // A small input in mapped page-locked host memory: the step's first launch copies it in
    // over the bus (shoal_copy_in), where the copy engine's DMA would put its latency first.
    const void* from = nullptr;
    if (fits && !it->second.isOnDevice() && !copyInFailed && int64_t(it->second.byteSize()) <= opts.pinnedCopyInBytes)
      if (auto mapped = ctx->mappedDeviceAddress(it->second.raw());
          mapped && *mapped && reinterpret_cast<uintptr_t>(*mapped) % uintptr_t(kBufferAlignment) == 0)
        from = *mapped;
    if (from && !runtime) {
      auto kernels = runtimeKernels(arch);
      if (kernels) {
        runtime = std::move(*kernels);
      } else {
        copyInFailed = true;  // copied by DMA as before; --verbose says why
        from = nullptr;
        if (opts.verbose)
          std::cerr << "shoal: cuda: the runtime's kernels did not load (" << kernels.error().message()
                    << "); pinned inputs are copied by DMA\n";
      }
    }
    if (from) copyFrom.emplace_back(v, from);
    auto was = std::find_if(copiedIn.begin(), copiedIn.end(), [&](const auto& c) { return c.first == v; });
    copiesChanged |= (was == copiedIn.end() ? nullptr : was->second.from) != from;
    auto cur = bound.find(v);
    void* now = cur == bound.end() ? nullptr : cur->second;
    if (want != now) {
      if (want)
        bound[v] = want;
      else
        bound.erase(v);
      changed = true;
    }
    inPlace[i] = want != nullptr || from != nullptr;
  }
  if (changed || copiesChanged) {
    ++rebinds;
    if (changed) bindArguments(p);
    if (copiesChanged) {  // after the bindings: the copies go into the inputs' own buffers
      copiedIn.clear();
      for (const auto& [v, from] : copyFrom) {
        const auto& staged = *std::find_if(inputs.begin(), inputs.end(), [&](const Staged& s) { return s.node->result() == v; });
        copiedIn.push_back({v, CopyIn{from, address(p, v), int64_t(staged.bytes)}});
      }
    }
    graph = CudaGraphExec();  // it reads or copies from the old addresses; captured again after the call
  }
  return inPlace;
}

void CudaExecutable::Impl::unbindInputs(const Program& p) {
  if (bound.empty() && copiedIn.empty()) return;
  const bool rebind = !bound.empty();
  bound.clear();
  copiedIn.clear();
  ++rebinds;
  if (rebind) bindArguments(p);
  graph = CudaGraphExec();
}

Expected<void> CudaExecutable::Impl::uploadInputs(const Program& p, const TensorMap& feed, char* pin, bool syncedCall,
                                                  const std::vector<char>* inPlace) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Staged& s = inputs[i];
    auto it = feed.find(s.name);
    const TensorType& want = s.node->result()->type();
    if (it == feed.end()) return fail(fmt::format("missing input '{}' ({})", s.name, want.str()), s.node->loc());
    if (it->second.shape() != want.shape)
      return fail(fmt::format("input '{}' expects {}, got {}", s.name, want.str(), it->second.type().str()),
                  s.node->loc());
    if (it->second.isOnDevice()) {  // the app's GPU memory: copied on the device, no host staging
      if (auto ok = checkDeviceTensor(it->second, want, "input '" + s.name + "'", ctx->device().index); !ok)
        return fail(ok.error().message(), s.node->loc());
      if (inPlace && (*inPlace)[i]) continue;  // its kernels read it where it is
      if (auto ok = ctx->copyDeviceToDevice(address(p, s.node->result()), it->second.raw(), s.bytes,
                                            "input '" + s.name + "'");
          !ok)
        return ok;
      continue;
    }
    if (inPlace && (*inPlace)[i]) continue;  // mapped host memory the step copies in (copiedIn)
    // In run(), page-locked host memory of the model's element type (cudaMallocHost,
    // cudaHostRegister, torch's pin_memory()) is copied by DMA straight from where it is;
    // anything else is converted into the pinned staging buffer first.
    if (syncedCall && it->second.dtype() == want.dtype && s.bytes > 0)
      if (auto locked = ctx->isPageLocked(it->second.raw()); locked && *locked) {
        if (auto ok = ctx->copyToDevice(address(p, s.node->result()), it->second.raw(), s.bytes,
                                        "input '" + s.name + "'");
            !ok)
          return ok;
        continue;
      }
    convertInto(it->second, Tensor::view(want, pin + s.offset));
    if (auto ok = ctx->copyToDevice(address(p, s.node->result()), pin + s.offset, s.bytes, "input '" + s.name + "'");
        !ok)
      return ok;
  }
  return {};
}

Expected<void> CudaExecutable::Impl::launchStep(const Program& p, bool captureAfter) {
  if (auto ok = prepareIfChanged(); !ok) return ok;
  noteStep();
  if (graph.valid() && !profiling) return ctx->launch(graph);
  {
    // The first launch of each kernel loads it (CUDA's lazy loading; cuBLAS's too).
    std::optional<PhaseTimer> timer;
    if (!launchedOnce && !profiling) timer.emplace("first step, kernel by kernel (modules load)");
    timeFirstLaunches = !launchedOnce && !profiling && opts.verbose;
    launchedOnce = true;
    auto ok = enqueueStep();
    timeFirstLaunches = false;
    if (!ok) return ok;
  }
  if (profiling) return collectProfile();
  if (captureAfter && opts.graphs && !graphFailed && !opts.syncEach) {
    PhaseTimer timer("CUDA graph capture + instantiate");
    if (auto ok = captureGraph(); !ok) {
      graphFailed = true;  // keep launching step by step; correct, only slower
      graphError = ok.error().message();
      if (opts.verbose)
        std::cerr << "shoal: cuda '" << p.graph->name() << "': no CUDA graph (" << graphError
                  << "); launching kernels one by one\n";
    }
  }
  return {};
}

Expected<void> CudaExecutable::Impl::prepareAccumulation() {
  PhaseTimer timer("runtime kernels, staging, accumulators");
  const int64_t bytes = (kAccumWords + src.statusWords()) * int64_t(sizeof(double));
  auto block = DeviceBlock::allocate(ctx, bytes, "metric accumulators");
  if (!block) return Unexpected(block.error());
  auto host = ctx->allocatePinned(size_t(bytes), "metric readback");
  if (!host) return Unexpected(host.error());
  auto kernels = runtimeKernels(arch);
  if (!kernels) return Unexpected(kernels.error());
  for (int k = 0; k < 2; ++k) {
    auto pin = ctx->allocatePinned(std::max<size_t>(pinnedIn.size(), 64), "input staging");
    if (!pin) return Unexpected(pin.error());
    stage[k] = std::move(*pin);
    auto ev = ctx->createEvent();
    if (!ev) return Unexpected(ev.error());
    stageUploaded[k] = std::move(*ev);
  }
  runtime = std::move(*kernels);
  accumKernel = runtime->accumulate;
  gatherKernel = runtime->gather;
  accumHost = std::move(*host);
  accum = std::move(*block);
  return {};
}

namespace {

// A data set in device memory (CudaExecutable::makeResident): one block per tensor and the
// epoch's order as i64.
class CudaResidentData final : public ResidentData {
 public:
  struct Held {
    std::string name;
    TensorType type;  ///< [rows, ...] as on the host
    std::unique_ptr<DeviceBlock> block;
  };
  std::shared_ptr<CudaContext> ctx;
  std::vector<Held> tensors;
  int64_t rowCount = 0;
  std::unique_ptr<DeviceBlock> order;
  int64_t orderLength = 0;

  int64_t rows() const override { return rowCount; }
  Expected<void> setOrder(std::span<const int64_t> rows) override {
    for (size_t i = 0; i < rows.size(); ++i)
      if (rows[i] < 0 || rows[i] >= rowCount)
        return fail(fmt::format("row {} (at {} of the epoch's order) is out of range: the data set has {} rows", rows[i],
                                i, rowCount));
    const int64_t need = std::max<int64_t>(1, int64_t(rows.size())) * int64_t(sizeof(int64_t));
    if (!order || order->bytes() < need) {
      order.reset();  // freeing waits for the steps still reading it
      auto block = DeviceBlock::allocate(ctx, need, "the data set's row order");
      if (!block) return Unexpected(block.error());
      order = std::move(*block);
    }
    // Queued after the steps that read the previous order, on the same stream.
    if (auto ok = ctx->copyToDevice(order->data(), rows.data(), rows.size() * sizeof(int64_t), "the epoch's row order");
        !ok)
      return ok;
    orderLength = int64_t(rows.size());
    return {};
  }
};

}  // namespace

Expected<void> CudaExecutable::Impl::queueAccumulate(const Program& p, const std::vector<std::string>& names,
                                                     double weight, int64_t step) {
  // Where each named scalar lives, and its slot.
  void* ptrs[kAccumSlots] = {};
  unsigned codes = 0;
  int lossSlot = -1;
  for (const std::string& name : names) {
    const Node* out = nullptr;
    for (const Staged& s : outputs)
      if (s.name == name) out = s.node;
    if (!out) return fail("the program has no output named '" + name + "'");
    auto it = std::find(accumNames.begin(), accumNames.end(), name);
    if (it == accumNames.end()) {
      if (accumNames.size() == size_t(kAccumSlots))
        return fail(fmt::format("runAccumulate: at most {} outputs can be accumulated", kAccumSlots));
      accumNames.push_back(name);
      it = accumNames.end() - 1;
    }
    const int slot = int(it - accumNames.begin());
    if (out->input(0)->type().numElements() < 1) return fail("runAccumulate: output '" + name + "' is empty");
    if (storageOnly(out->input(0)->type().dtype))
      return fail(fmt::format("runAccumulate: output '{}' is {}; metrics accumulate from f32, f64 or integer outputs",
                              name, out->input(0)->type().str()));
    ptrs[slot] = address(p, out->input(0));
    codes |= scalarCode(out->input(0)->type().dtype) << (4 * slot);
    if (name == "loss") lossSlot = slot;
  }
  if (auto ok = launchStep(p, /*captureAfter=*/true); !ok) return ok;
  void* acc = accum->data();
  const void* statusWords = status->data();
  int statusCount = int(src.statusWords());
  long long stepArg = step;
  void* argv[] = {&acc,     &ptrs[0], &ptrs[1], &ptrs[2],  &ptrs[3], &ptrs[4],      &ptrs[5],    &ptrs[6],
                  &ptrs[7], &codes,   &lossSlot, &weight, &stepArg, &statusWords, &statusCount};
  if (auto ok = accumKernel.launch({1, 1, 1}, {1, 1, 1}, argv, 0, ctx->stream()); !ok) return ok;
  ++accumSteps;
  return {};
}

Expected<void> CudaExecutable::runAccumulate(const TensorMap& inputs, const std::vector<std::string>& names,
                                             double weight, int64_t step) {
  Impl& im = *impl_;
  im.unbindInputs(program_);  // the step's own input buffers (run() reads some in place)
  im.comm = comm_.get();
  if (auto pending = im.takeDeferred(); !pending) return Unexpected(pending.error());
  CudaContext& ctx = *im.ctx;
  if (auto ok = ctx.makeCurrent(); !ok) return ok;
  if (!im.accum)
    if (auto ok = im.prepareAccumulation(); !ok) return ok;
  // The staging buffer's previous upload must be done before the host writes into it again
  // (two steps ago: normally long finished, so this rarely waits).
  const int k = im.nextStage;
  im.nextStage ^= 1;
  if (im.stagePending[k])
    if (auto ok = ctx.waitEvent(im.stageUploaded[k], "input staging buffer"); !ok) return ok;
  im.stagePending[k] = false;
  if (auto ok = im.uploadInputs(program_, inputs, static_cast<char*>(im.stage[k].data()), /*syncedCall=*/false); !ok)
    return ok;
  if (auto ok = ctx.record(im.stageUploaded[k]); !ok) return ok;
  im.stagePending[k] = true;
  return im.queueAccumulate(program_, names, weight, step);
}

Expected<std::shared_ptr<ResidentData>> CudaExecutable::makeResident(const TensorMap& tensors) {
  Impl& im = *impl_;
  if (auto ok = im.ctx->makeCurrent(); !ok) return Unexpected(ok.error());
  auto data = std::make_shared<CudaResidentData>();
  data->ctx = im.ctx;
  size_t total = 0;
  data->rowCount = -1;
  std::vector<std::string> held;  // the tensors the program reads: the others stay on the host
  for (const auto& [name, t] : tensors) {
    if (!t.defined() || t.isOnDevice() || t.shape().empty()) return std::shared_ptr<ResidentData>();
    if (data->rowCount >= 0 && t.shape()[0] != data->rowCount)
      return fail(fmt::format("the data set's tensors disagree on the number of rows ({} and {} in '{}')",
                              data->rowCount, t.shape()[0], name));
    data->rowCount = t.shape()[0];
    auto in = std::find_if(im.inputs.begin(), im.inputs.end(), [&](const Staged& x) { return x.name == name; });
    if (in == im.inputs.end()) continue;
    if (!gatherConverts(t.dtype(), in->node->result()->type().dtype))
      return std::shared_ptr<ResidentData>();  // the host converts this one
    held.push_back(name);
    total += t.byteSize();
  }
  if (held.empty() || held.size() > size_t(kGatherTensors)) return std::shared_ptr<ResidentData>();
  auto freeBytes = im.ctx->freeMemory();
  if (!freeBytes) return Unexpected(freeBytes.error());
  if (total > *freeBytes / 4) return std::shared_ptr<ResidentData>();
  PhaseTimer timer("data set into device memory");
  for (const std::string& name : held) {
    const Tensor& t = tensors.at(name);
    auto block = DeviceBlock::allocate(im.ctx, std::max<int64_t>(1, int64_t(t.byteSize())), "data set '" + name + "'");
    if (!block) return Unexpected(block.error());
    if (auto ok = im.ctx->copyToDevice((*block)->data(), t.raw(), t.byteSize(), "data set '" + name + "'"); !ok)
      return Unexpected(ok.error());
    data->tensors.push_back({name, t.type(), std::move(*block)});
  }
  return std::shared_ptr<ResidentData>(std::move(data));
}

Expected<void> CudaExecutable::runAccumulateRows(ResidentData& data, int64_t first, int64_t rows,
                                                 const TensorMap& scalars, const std::vector<std::string>& names,
                                                 double weight, int64_t step) {
  Impl& im = *impl_;
  im.unbindInputs(program_);  // the step's own input buffers (run() reads some in place)
  im.comm = comm_.get();
  auto* held = dynamic_cast<CudaResidentData*>(&data);
  if (!held || held->ctx != im.ctx)
    return fail("internal error: the resident data set belongs to another device or context");
  if (first < 0 || rows <= 0 || first + rows > held->orderLength)
    return fail(fmt::format("internal error: rows {}..{} of an order of {}", first, first + rows, held->orderLength));
  if (auto pending = im.takeDeferred(); !pending) return Unexpected(pending.error());
  CudaContext& ctx = *im.ctx;
  if (auto ok = ctx.makeCurrent(); !ok) return ok;
  if (!im.accum)
    if (auto ok = im.prepareAccumulation(); !ok) return ok;
  GatherArgs g{};
  g.order = static_cast<const int64_t*>(held->order->data());
  g.first = first;
  for (const Staged& in : im.inputs) {
    const TensorType& want = in.node->result()->type();
    auto h = std::find_if(held->tensors.begin(), held->tensors.end(),
                          [&](const CudaResidentData::Held& x) { return x.name == in.name; });
    if (h != held->tensors.end()) {
      Shape shape = h->type.shape;
      shape[0] = rows;
      if (shape != want.shape)
        return fail(fmt::format("input '{}' expects {}, the data set's rows are {}", in.name, want.str(),
                                TensorType{h->type.dtype, shape}.str()),
                    in.node->loc());
      if (!gatherConverts(h->type.dtype, want.dtype))
        return fail(fmt::format("input '{}' is {}: the data set's {} do not convert into it on the device", in.name,
                                want.str(), dtypeName(h->type.dtype)),
                    in.node->loc());
      GatherTensorArg& a = g.tensor[g.tensors++];
      a.src = h->block->data();
      a.dst = im.address(program_, in.node->result());
      a.rowElems = want.numElements() / rows;
      a.srcCode = h->type.dtype == want.dtype ? -1 : int32_t(scalarCode(h->type.dtype));
      a.dstCode = h->type.dtype == want.dtype ? -1 : int32_t(scalarCode(want.dtype));
      a.elemBytes = int32_t(dtypeSize(want.dtype));
      continue;
    }
    auto sc = scalars.find(in.name);
    if (sc == scalars.end() || sc->second.numElements() != 1 || want.numElements() != 1 || dtypeSize(want.dtype) > 8)
      return fail(fmt::format("input '{}' ({}) is neither a tensor of the data set in device memory nor a scalar of "
                              "the step",
                              in.name, want.str()),
                  in.node->loc());
    if (g.scalars == kGatherScalars)
      return fail(fmt::format("internal error: more than {} scalar inputs to gather", kGatherScalars));
    Tensor bits(want);
    convertInto(sc->second, bits);
    GatherScalarArg& a = g.scalar[g.scalars++];
    a.dst = im.address(program_, in.node->result());
    std::memcpy(&a.bits, bits.raw(), bits.byteSize());
    a.bytes = int32_t(bits.byteSize());
  }
  void* argv[] = {&g};
  if (auto ok = im.gatherKernel.launch({unsigned(rows), unsigned(std::max(1, int(g.tensors))), 1}, {128, 1, 1}, argv, 0,
                                       ctx.stream());
      !ok)
    return ok;
  return im.queueAccumulate(program_, names, weight, step);
}

Expected<Executable::Accumulated> CudaExecutable::takeAccumulated() {
  Impl& im = *impl_;
  if (!im.accum || im.accumSteps == 0) return Executable::takeAccumulated();
  CudaContext& ctx = *im.ctx;
  const size_t bytes = size_t(im.accum->bytes());
  if (auto ok = ctx.copyToHost(im.accumHost.data(), im.accum->data(), bytes, "metric accumulators"); !ok)
    return Unexpected(ok.error());
  if (auto ok = ctx.synchronize("accumulated steps of '" + program_.graph->name() + "'"); !ok) {
    // A collective's failure says more than the stream's error.
    if (comm_)
      if (auto nccl = comm_->checkAsyncError(); !nccl) return fail(ok.error().message() + " (" + nccl.error().message() + ")");
    return Unexpected(ok.error());
  }
  if (auto ok = ctx.memsetZero(im.accum->data(), bytes, "metric accumulators"); !ok) return Unexpected(ok.error());
  im.accumSteps = 0;
  const auto* d = static_cast<const double*>(im.accumHost.data());
  const auto* words = static_cast<const uint64_t*>(im.accumHost.data());
  int64_t errStep = int64_t(words[kAccumErrStep]);
  if (errStep != 0) {
    auto status = checkCudaStatus(im.src, words + kAccumWords);
    std::string msg = status ? "internal error: a kernel reported an error that no site explains" : status.error().message();
    Error e(fmt::format("{} (training step {})", msg, errStep - 1), status ? Location{} : status.error().location());
    return Unexpected(e);
  }
  auto host = Executable::takeAccumulated();  // anything the host path gathered
  if (!host) return host;
  Accumulated out = std::move(*host);
  for (size_t s = 0; s < im.accumNames.size(); ++s) out.sums[im.accumNames[s]] += d[s];
  out.weight += d[kAccumWeight];
  if (int64_t bad = int64_t(words[kAccumBadStep]); bad != 0 && !out.firstNonFinite) {
    out.firstNonFinite = bad - 1;
    out.nonFiniteValue = d[kAccumBadValue];
  }
  return out;
}

Expected<double> CudaExecutable::timeStepMs(int iterations) {
  Impl& im = *impl_;
  im.unbindInputs(program_);  // the step's own input buffers (run() reads some in place)
  if (iterations <= 0) return fail("timeStepMs: iterations must be positive");
  im.comm = comm_.get();
  auto start = im.ctx->createEvent();
  auto end = im.ctx->createEvent();
  if (!start) return Unexpected(start.error());
  if (!end) return Unexpected(end.error());
  if (auto ok = im.prepareIfChanged(); !ok) return Unexpected(ok.error());  // not timed: not part of a step
  // The graph unbindInputs dropped (the last run read an input in place or copied it in) is
  // captured again, not run, so the step timed is the one run() replays. Only after a step has
  // run: its modules are loaded and cuBLAS has made its first calls, which a capture cannot.
  if (!im.graph.valid() && im.launchedOnce && im.opts.graphs && !im.graphFailed && !im.opts.syncEach &&
      !im.profiling)
    if (auto ok = im.captureGraph(); !ok) {
      im.graphFailed = true;  // as run() does: step by step from now on, correct, only slower
      im.graphError = ok.error().message();
    }
  if (auto ok = im.ctx->record(*start); !ok) return Unexpected(ok.error());
  for (int i = 0; i < iterations; ++i) {
    im.noteStep();
    Expected<void> ok = im.graph.valid() && !im.profiling ? im.ctx->launch(im.graph) : im.enqueueStep();
    if (!ok) return Unexpected(ok.error());
    im.profileRecorded = false;  // timing the whole step, not profiling it
  }
  if (auto ok = im.ctx->record(*end); !ok) return Unexpected(ok.error());
  auto ms = im.ctx->elapsedMs(*start, *end);
  if (!ms) return Unexpected(ms.error());
  return double(*ms) / iterations;
}

Expected<std::map<const Node*, double>> CudaExecutable::timeNodesMs(int steps) {
  Impl& im = *impl_;
  im.unbindInputs(program_);
  if (steps <= 0) return fail("timeNodesMs: steps must be positive");
  im.comm = comm_.get();
  if (auto ok = im.prepareIfChanged(); !ok) return Unexpected(ok.error());
  const bool wasProfiling = im.profiling;
  im.profiling = true;
  std::map<const Node*, double> best;
  Expected<void> ok;
  for (int i = 0; i < steps && ok; ++i) {
    im.noteStep();
    ok = im.enqueueStep();
    im.profileRecorded = false;  // read here, not added to the profile
    if (ok) ok = im.ctx->synchronize("timed step");
    std::map<const Node*, double> step;
    for (size_t li = 0; ok && li < im.launches.size(); ++li) {
      const CudaStep& s = *im.launches[li].step;
      auto ms = im.ctx->elapsedMs(im.profileEvents[li], im.profileEvents[li + 1]);
      if (!ms) ok = Unexpected(ms.error());
      else if (!s.prepare) step[s.node] += *ms;
    }
    for (const auto& [node, ms] : step) best[node] = i == 0 ? ms : std::min(best[node], ms);
  }
  im.profiling = wasProfiling;
  if (!ok) return Unexpected(ok.error());
  return best;
}

void CudaExecutable::setProfiling(bool on) { impl_->profiling = on; }

std::string CudaExecutable::profileSummary() const {
  const Impl& im = *impl_;
  if (im.profileByOp.empty()) return "";
  std::string out =
      profileTable(im.profileByOp, 3, "(device time between launches; steps ran one by one, no CUDA graph)");
  // The slowest launches, each with its node and kernel (or library call).
  std::vector<size_t> order;
  for (size_t i = 0; i < im.profileByLaunch.size(); ++i)
    if (im.profileByLaunch[i].second > 0) order.push_back(i);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return im.profileByLaunch[a].first > im.profileByLaunch[b].first; });
  if (order.size() > 12) order.resize(12);
  // A launch's floating-point operations: a tensor-core product's as codegen counted them
  // (CudaStep::flops), a cuBLAS product's 2 m n k per matrix; 0 for the rest.
  auto flops = [](const CudaStep& s) {
    if (s.kind == CudaStepKind::Gemm) return 2.0 * double(s.gemm.m) * double(s.gemm.n) * double(s.gemm.k) * double(s.gemm.batch);
    return s.kind == CudaStepKind::Kernel ? s.flops : 0.0;
  };
  // Seconds per call of launch i.
  auto perCall = [&](size_t i) { return im.profileByLaunch[i].first / double(im.profileByLaunch[i].second); };
  // A tensor-core product's tile and slices (the cost model's or the autotuner's), by kernel.
  std::map<std::string, std::string> tiles;
  for (const CudaProduct& p : im.src.products) tiles[p.kernel] = p.chosen.describe();
  out += "slowest launches (ms per call; the achieved rate of the products, the tensor-core ones' tile/slices):\n";
  for (size_t i : order) {
    const CudaStep& s = *im.launches[i].step;
    std::string what = "copy";
    if (s.kind == CudaStepKind::Kernel) what = s.kernel;
    if (auto t = tiles.find(s.kernel); s.kind == CudaStepKind::Kernel && t != tiles.end()) what += " " + t->second;
    if (s.kind == CudaStepKind::Gemm) what = gemmLabel(s.gemm);
    if (s.kind == CudaStepKind::AllReduce) what = "all_reduce";
    // One launch for several nodes: all of them.
    const std::string nodes =
        s.parts.empty() ? s.node->describe() : eachPart(s, [](const Node& n) { return n.describe(); });
    const double f = flops(s);
    out += fmt::format("  {:9.3f}  {}  [{}]{}\n", perCall(i) * 1e3, nodes, what,
                       f > 0 ? fmt::format("  {:.1f} TFLOP/s", f / perCall(i) * 1e-12) : "");
  }
  // All the products together: their share of the time, and their rate.
  double productSeconds = 0, productFlops = 0, allSeconds = 0;
  for (size_t i = 0; i < im.profileByLaunch.size(); ++i) {
    if (im.profileByLaunch[i].second == 0) continue;
    allSeconds += perCall(i);
    if (const double f = flops(*im.launches[i].step); f > 0) productSeconds += perCall(i), productFlops += f;
  }
  if (productSeconds > 0)
    out += fmt::format("products (tensor-core and cuBLAS): {:.3f} of {:.3f} ms a step, {:.1f} TFLOP/s\n",
                       productSeconds * 1e3, allSeconds * 1e3, productFlops / productSeconds * 1e-12);
  return out;
}

void CudaExecutable::initializeParameters(uint64_t seed) {
  Impl& im = *impl_;
  ++im.persistent->generation;
  std::vector<Tensor> staged;
  for (const Node* n : graph().nodes()) {
    if (!isPersistentSource(n->kind())) continue;
    Tensor t(n->result()->type());
    initializeTensor(t, n->attrs().getString("init", "zeros"), n->result()->name(), seed, n->attrs().getInt("fan_in", 0),
                     n->attrs().getInt("fan_out", 0));
    if (auto ok = im.ctx->copyToDevice(im.address(program_, n->result()), t.raw(), t.byteSize(),
                                       "initial %" + n->result()->name());
        !ok) {
      im.deferred = ok.error();
      break;
    }
    staged.push_back(std::move(t));
  }
  if (auto ok = im.ctx->synchronize("parameter upload"); !ok && !im.deferred) im.deferred = ok.error();
}

TensorMap CudaExecutable::readPersistent() {
  Impl& im = *impl_;
  TensorMap out;
  for (const Node* n : graph().nodes()) {
    if (!isPersistentSource(n->kind())) continue;
    Tensor t(n->result()->type());
    if (auto ok = im.ctx->copyToHost(t.raw(), im.address(program_, n->result()), t.byteSize(),
                                     "%" + n->result()->name());
        !ok) {
      im.deferred = ok.error();
      break;
    }
    out[n->result()->name()] = t;
  }
  if (auto ok = im.ctx->synchronize("reading parameters"); !ok && !im.deferred) im.deferred = ok.error();
  return out;
}

Expected<Tensor> CudaExecutable::readValue(const Value* v) {
  Impl& im = *impl_;
  if (auto ok = im.takeDeferred(); !ok) return Unexpected(ok.error());
  Tensor t(v->type());
  if (t.byteSize() == 0) return t;
  const bool onHost = im.hostWritten.contains(v);  // written into pinned host memory by its kernel
  if (!onHost)
    if (auto ok = im.ctx->copyToHost(t.raw(), im.address(program_, v), t.byteSize(), "%" + v->name()); !ok)
      return Unexpected(ok.error());
  if (auto ok = im.ctx->synchronize("reading %" + v->name()); !ok) return Unexpected(ok.error());
  if (onHost) std::memcpy(t.raw(), im.address(program_, v), t.byteSize());
  return t;
}

Expected<void> CudaExecutable::writePersistent(const TensorMap& values) {
  Impl& im = *impl_;
  ++im.persistent->generation;  // before any copy: even a write that fails halfway changed some
  std::vector<Tensor> staged;
  for (const Node* n : graph().nodes()) {
    if (!isPersistentSource(n->kind())) continue;
    auto it = values.find(n->result()->name());
    if (it == values.end()) continue;
    const TensorType& want = n->result()->type();
    if (it->second.shape() != want.shape)
      return fail(fmt::format("tensor '{}' has shape {}, the model expects {}", it->first,
                              shapeString(it->second.shape()), shapeString(want.shape)));
    if (it->second.isOnDevice()) {
      if (auto ok = checkDeviceTensor(it->second, want, "tensor '" + it->first + "'", im.ctx->device().index); !ok)
        return ok;
      if (auto ok = im.ctx->copyDeviceToDevice(im.address(program_, n->result()), it->second.raw(), want.byteSize(),
                                               "%" + it->first);
          !ok)
        return ok;
      continue;
    }
    Tensor t(want);
    convertInto(it->second, t);
    if (auto ok = im.ctx->copyToDevice(im.address(program_, n->result()), t.raw(), t.byteSize(), "%" + it->first);
        !ok)
      return ok;
    staged.push_back(std::move(t));
  }
  return im.ctx->synchronize("writing parameters");
}

Expected<void> CudaExecutable::adoptPersistent(Executable& other) {
  auto* gpu = dynamic_cast<CudaExecutable*>(&other);
  if (!gpu) return fail("internal error: cannot share parameters between a GPU and a CPU program");
  if (impl_->persistent->region && !gpu->impl_->persistent->region)
    return fail("internal error: cannot share parameters between programs with different allocation modes");
  impl_->persistent = gpu->impl_->persistent;
  impl_->graph = CudaGraphExec();  // its kernels point at the old region
  impl_->bindArguments(program_);
  return {};
}

Expected<void> compileCudaIntoCache(const Program& program, const std::string& arch, TensorCoreMath precision,
                                    bool autotune) {
  PhaseTimer timer("NVRTC ahead, into the kernel cache");
  CudaExecutableOptions opts = CudaExecutableOptions::fromEnvironment().withPrecision(precision);
  opts.autotune = opts.autotune || autotune;
  std::string target = arch;
  if (target.empty()) {
    auto device = probeCudaDevice(0);
    if (!device) return Unexpected(device.error());
    target = device->arch();
  }
  CudaCodegenOptions codegen = opts.codegenOptions(target);
  const std::string deviceArch = target;
  target = cudaTargetArch(codegen, target);
  auto src = generateCudaSource(program, codegen);
  if (!src) return Unexpected(src.error());
  // A tuned choice already in the cache: the module that will run.
  if (opts.autotune && !src->products.empty())
    if (auto device = probeCudaDevice(0))
      if (auto tiles = cachedTiles(*src, deviceArch, *device)) {
        codegen.productTiles = std::move(*tiles);
        src = generateCudaSource(program, codegen);
        if (!src) return Unexpected(src.error());
      }
  KernelCache cache(KernelCache::defaultDir());
  auto compiled = compileKernel({src->name, src->source}, target, {}, &cache);
  if (!compiled) return Unexpected(compiled.error());
  return {};
}

Expected<std::shared_ptr<void>> prewarmCudaContext(bool tf32, TensorCoreMath precision) {
  CudaExecutableOptions opts;
  opts.tf32 = tf32;
  opts = opts.withPrecision(precision);
  auto ctx = sharedContext(opts.tf32, opts.gemm16);
  if (!ctx) return Unexpected(ctx.error());
  struct Held {
    std::shared_ptr<CudaContext> ctx;
    std::shared_ptr<const RuntimeKernels> runtime;
  };
  auto held = std::make_shared<Held>();
  held->ctx = *ctx;
  {
    PhaseTimer timer("runtime kernels (compile or cache, load)");
    // A failure here shows again, and is reported, where the kernels are first used.
    if (auto kernels = runtimeKernels((*ctx)->device().arch())) held->runtime = std::move(*kernels);
  }
  return std::shared_ptr<void>(std::move(held));
}

Expected<std::unique_ptr<Executable>> createCudaExecutable(Program program, bool tf32, bool verbose,
                                                           const std::string& arch, TensorCoreMath precision,
                                                           bool autotune) {
  CudaExecutableOptions opts = CudaExecutableOptions::fromEnvironment();
  opts.autotune = opts.autotune || autotune;
  opts.tf32 = tf32;
  opts.verbose = verbose;
  opts.arch = arch;
  opts = opts.withPrecision(precision);
  auto exe = CudaExecutable::create(std::move(program), opts);
  if (!exe) return Unexpected(exe.error());
  return std::unique_ptr<Executable>(std::move(*exe));
}

}  // namespace shoal
