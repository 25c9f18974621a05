// The CUDA executor beyond one step: the training loop's entry points (runAccumulate, data sets
// resident in device memory, runAccumulateRows, takeAccumulated), timing and profiles, and the
// parameters and state (initialise, read, write, adopt).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>

#include "runtime/cuda/cuda_executable_impl.h"
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

using namespace cudaexec;

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
  if (!im.graph.valid() && im.launchedOnce) im.captureIfAllowed(program_);
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
  // CudaExecutableOptions::profileLaunches of them (SHOAL_PROFILE_LAUNCHES).
  if (order.size() > size_t(im.opts.profileLaunches)) order.resize(size_t(im.opts.profileLaunches));
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

}  // namespace shoal
