// The CUDA executor: codegen → NVRTC → module, planned device memory, steps on one stream,
// replayed as a CUDA graph after the first run.
#include "runtime/cuda/cuda_executable.h"
#include "runtime/cuda/autotune.h"
#include "runtime/cuda/cuda_executable_impl.h"

// Everything here goes through the CUDA-header-free layer (device.h, module.h, nvrtc.h), whose
// functions report "built without CUDA" in a CPU-only build; no #if is needed in this file.

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
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
#include "support/phase_times.h"

namespace shoal {


using namespace cudaexec;

namespace {

// A warning about the environment on stderr, once per process (not per executable) for each
// flag: one static flag per warning.
void warnOnce(std::once_flag& flag, const std::string& message) {
  std::call_once(flag, [&] { std::fprintf(stderr, "shoal: warning: %s\n", message.c_str()); });
}

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

}  // namespace

namespace cudaexec {

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

// How the profile, the host timing and errors name a library GEMM step: cuBLASLt with its
// epilogue (bias, relu) where it has one, cuBLAS otherwise.
std::string gemmLabel(const CudaGemmCall& g) {
  if (!g.hasEpilogue()) return fmt::format("cuBLAS gemm {}x{}x{}", g.m, g.n, g.k);
  return fmt::format("cuBLASLt gemm {}x{}x{}{}{}", g.m, g.n, g.k, g.bias.value ? " +bias" : "",
                     g.activation.empty() ? "" : " +" + g.activation);
}

// Writes `src` into `dst` (same shape), converting the element type like the interpreter.
void convertInto(const Tensor& src, Tensor dst) {
  if (src.dtype() == dst.dtype()) {
    if (src.byteSize()) std::memcpy(dst.raw(), src.raw(), src.byteSize());
    return;
  }
  for (int64_t i = 0; i < src.numElements(); ++i) dst.set(i, src.at(i));
}

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

}  // namespace cudaexec

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
  o.shareKernels = envFlagDefaultOn("SHOAL_CUDA_SHARE_KERNELS");
  if (const char* b = std::getenv("SHOAL_CUDA_UNIT_BYTES")) o.unitBytes = std::max<int64_t>(0, std::atoll(b));
  o.prepareParameters = envFlagDefaultOn("SHOAL_CUDA_PREPARE");
  o.wgmma = envFlagDefaultOn("SHOAL_CUDA_WGMMA");
  o.wgmmaTf32Gathered16 = envFlagDefaultOn("SHOAL_CUDA_WGRAD_TF32");
  o.conv16ChannelsLast = envFlagDefaultOn("SHOAL_CUDA_CL16");
  o.halfStageOverlap = envFlag("SHOAL_CUDA_CL16_OVERLAP");
  o.tf32ChannelsLast = envFlag("SHOAL_CUDA_CL32");
  o.halfWideTile = envFlag("SHOAL_CUDA_CL16_WIDE");
  o.halfProducerWarps = envFlag("SHOAL_CUDA_CL16_WS");
  o.halfSwappedTile = envFlag("SHOAL_CUDA_CL16_SWAP");
  o.halfTapReuse = envFlag("SHOAL_CUDA_CL16_L1");
  o.halfStem = envFlag("SHOAL_CUDA_CL16_STEM");
  o.halfTma = envFlagDefaultOn("SHOAL_CUDA_CL16_TMA");
  if (const char* b = std::getenv("SHOAL_CUDA_CL16_TMA_BLOCKS")) {
    const int n = std::atoi(b);
    o.halfTmaBlocks = n == 1 || n == 2 ? n : 0;
  }
  o.halfCopyInProducer = envFlag("SHOAL_CUDA_CL16_PRODUCER");
  o.shareConvertedCopies = envFlagDefaultOn("SHOAL_CUDA_CL16_SHARE");
  o.weightGradientColumns = envFlagDefaultOn("SHOAL_CUDA_WGRAD_COLUMNS");
  o.convPairedTaps = envFlagDefaultOn("SHOAL_CUDA_PAIRED_TAPS");
  if (envFlag("SHOAL_CUDA_NHWC")) o.convChannelsLastMinInput = int64_t(1) << 20;
  // An integer setting: `name`'s value where it is one (and `ok` says it may be), else a
  // warning (once a name) and the default stays.
  auto integer = [](const char* name, int64_t& field, auto ok, const char* what) {
    const char* text = std::getenv(name);
    if (!text) return;
    char* end = nullptr;
    const long long v = std::strtoll(text, &end, 10);
    if (end != text && *end == '\0' && ok(v)) {
      field = v;
      return;
    }
    static std::mutex mu;
    static std::set<std::string> warned;
    std::lock_guard<std::mutex> lock(mu);
    if (warned.insert(name).second)
      std::fprintf(stderr, "shoal: warning: %s=%s is not %s; the default (%lld) stays\n", name, text, what,
                   (long long)field);
  };
  auto any = [](long long) { return true; };
  integer("SHOAL_CUDA_FP32_GEMM_MIN_MACS", o.fp32ConvGemmMinMacs, any, "an integer");
  int64_t winograd = o.fp32Winograd;
  integer(
      "SHOAL_CUDA_WINOGRAD", winograd, [](long long v) { return v == 0 || v == 2 || v == 4; }, "one of 0, 2, 4");
  o.fp32Winograd = int(winograd);
  integer("SHOAL_CUDA_WINOGRAD_MIN_CHANNELS", o.fp32WinogradMinChannels, any, "an integer");
  integer("SHOAL_CUDA_WINOGRAD_MIN_MACS", o.fp32WinogradMinMacs, any, "an integer");
  integer(
      "SHOAL_PROFILE_LAUNCHES", o.profileLaunches, [](long long v) { return v > 0; }, "a positive integer");
  o.autotune = envFlag("SHOAL_CUDA_AUTOTUNE");
  if (const char* tc = std::getenv("SHOAL_CUDA_TC_CONV")) {
    if (auto m = parseTensorCoreMath(tc)) {
      o.tensorCores = *m;
    } else {
      static std::once_flag warned;
      warnOnce(warned, fmt::format("SHOAL_CUDA_TC_CONV={} is not one of 0, 1, tf32, bf16, fp16; convolutions stay in "
                                   "exact fp32",
                                   tc));
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
  c.shareKernels = shareKernels;
  c.unitBytes = unitBytes;
  c.prepareParameters = prepareParameters;
  c.wgmmaTf32Gathered16 = wgmmaTf32Gathered16;
  c.conv16ChannelsLast = conv16ChannelsLast;
  c.halfStageOverlap = halfStageOverlap;
  c.tf32ChannelsLast = tf32ChannelsLast;
  c.halfWideTile = halfWideTile;
  c.halfProducerWarps = halfProducerWarps;
  c.halfSwappedTile = halfSwappedTile;
  c.halfTapReuse = halfTapReuse;
  c.halfStem = halfStem;
  c.halfTma = halfTma;
  c.halfTmaBlocks = halfTmaBlocks;
  c.halfCopyInProducer = halfCopyInProducer;
  c.shareConvertedCopies = shareConvertedCopies;
  c.weightGradientColumns = weightGradientColumns;
  c.convPairedTaps = convPairedTaps;
  c.convChannelsLastMinInput = convChannelsLastMinInput;
  c.fp32ConvGemmMinMacs = fp32ConvGemmMinMacs;
  c.fp32ConvGemmMinWidth = fp32ConvGemmMinWidth;
  c.fp32Winograd = fp32Winograd;
  c.fp32WinogradMinChannels = fp32WinogradMinChannels;
  c.fp32WinogradMinMacs = fp32WinogradMinMacs;
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

size_t alignUp(size_t n) { return (n + 63) / 64 * 64; }

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
  auto compiled = compileCudaUnits(im.src, arch, &cache);
  if (!compiled) return Unexpected(compiled.error());
  const auto hits = std::count_if(compiled->begin(), compiled->end(), [](const CompiledKernel& c) { return c.cacheHit; });
  if (size_t(hits) < compiled->size()) timer->rename("NVRTC compile, units side by side (+ cache write)");
  for (const CompiledKernel& c : *compiled) im.compileMs += c.compileMs;
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
  std::unordered_map<std::string, size_t> unitOf;  // kernel -> its unit's module
  for (size_t u = 0; u < compiled->size(); ++u) {
    auto module = CudaModule::load((*compiled)[u].cubin, im.src.units[u].name);
    if (!module) return Unexpected(module.error());
    im.modules.push_back(std::move(*module));
    for (const std::string& k : im.src.units[u].kernelNames) unitOf.emplace(k, u);
  }
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
  const int64_t statusBytes = im.src.statusBytes();
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
  if (im.src.convertedBytes > 0) {
    auto converted = DeviceBlock::allocate(im.ctx, im.src.convertedBytes, "converted copies");
    if (!converted) return Unexpected(converted.error());
    im.converted = std::move(*converted);
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
    if (s.prepare || separate || slotIsExclusive(p, v)) continue;  // a prepared block is its own
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
      auto unit = unitOf.find(s.kernel);
      if (unit == unitOf.end()) return fail("internal error: kernel " + s.kernel + " is in none of the module's units");
      auto k = im.modules[unit->second].kernel(s.kernel);
      if (!k) return Unexpected(k.error());
      l.kernel = *k;
      // Above the 48 KiB every kernel may use, dynamic shared memory is opted into per kernel.
      if (s.sharedBytes > 48 * 1024)
        if (auto ok = l.kernel.setMaxDynamicSharedMemory(int(s.sharedBytes), im.ctx->options().device); !ok)
          return Unexpected(ok.error());
    }
    if (s.kind == CudaStepKind::Constant && s.bytes > 0) {
      Tensor t = literalTensor(*s.node);
      // (A literal that prepare steps read lives in the prepared region: CudaModuleSource::hoisted.)
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
  if (!im.mapError.empty()) return fail(im.mapError);
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
                             size_t(hits) == compiled->size()
                                 ? "kernel cache hit"
                                 : fmt::format("NVRTC {:.1f} ms in {} of {} unit{}", im.compileMs,
                                               compiled->size() - size_t(hits), compiled->size(),
                                               compiled->size() == 1 ? "" : "s"),
                             double(p.plan.arenaBytes) / 1e6, double(p.plan.persistentBytes) / 1e6,
                             separate ? " (separate allocations)" : "");
    std::cerr << "shoal: " << cache.summary() << "\n";
    for (const Staged& s : im.outputs)
      if (im.hostWritten.contains(s.node->input(0)))
        std::cerr << fmt::format("shoal: cuda '{}': output '{}' ({} bytes) written by its kernel into pinned host "
                                 "memory (no copy after the step)\n",
                                 graphName, s.name, s.bytes);
    for (const CompiledKernel& c : *compiled)
      if (!c.log.empty()) std::cerr << "shoal: NVRTC log of " << c.name << ":\n" << c.log << "\n";
  }
  return exe;
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
  auto compiled = compileCudaUnits(*src, target, &cache);
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
