// The CUDA executor's step: launches bound to their buffers, queued kernel by kernel or replayed
// as a CUDA graph, inputs bound or uploaded, outputs copied back (run()).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>

#include "runtime/cuda/cuda_executable_impl.h"
#include "runtime/cuda/runtime_kernels.h"
#include "support/phase_times.h"

namespace shoal {


using namespace cudaexec;

Expected<void> CudaExecutable::Impl::prepareIfChanged() {
  if (!hasPrepareSteps || (preparedFor == persistent.get() && preparedGeneration == persistent->generation)) return {};
  for (const Launch& l : launches) {
    const CudaStep& s = *l.step;
    if (!s.prepare) continue;
    // Kernels, and for values computed from the parameters (CudaModuleSource::hoisted) also
    // products, copies and the literals they read; nothing else is ever a prepare step.
    std::string what;
    switch (s.kind) {
      case CudaStepKind::Kernel:
        if (auto ok = l.kernel.launch({s.grid[0], s.grid[1], 1}, {s.block, 1, 1}, const_cast<void**>(l.argv.data()),
                                      s.sharedBytes, ctx->stream());
            !ok)
          return ok;
        what = "kernel '" + s.kernel + "' of " + s.node->describe();
        break;
      case CudaStepKind::Gemm:
        if (auto ok = callGemm(*ctx, s.gemm, l.ptrs[0], l.ptrs[1], l.ptrs[2], l.ptrs[3], s.node->describe()); !ok)
          return ok;
        what = gemmLabel(s.gemm) + " of " + s.node->describe();
        break;
      case CudaStepKind::Copy:
        if (l.ptrs[0] != l.ptrs[1])
          if (auto ok = ctx->copyDeviceToDevice(l.ptrs[1], l.ptrs[0], size_t(s.bytes), s.node->describe()); !ok)
            return ok;
        what = "copy of " + s.node->describe();
        break;
      case CudaStepKind::Constant:  // written into its prepared block once, when the executable loaded
        continue;
      default:
        return fail("internal error: " + s.node->describe() + " has a prepare step of a kind that cannot be one");
    }
    if (opts.syncEach)
      if (auto ok = ctx->synchronize(what); !ok) return ok;
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
        case CudaArgKind::Converted:
          return im.converted ? im.converted->at(a.offset) : nullptr;
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
    // The tensor maps after the pointers, encoded over the addresses just bound (again only
    // where a base moved: a rebinding of the app's inputs leaves the scratch and prepared
    // blocks they point into where they were).
    l.maps.resize(s.tensorMaps.size());
    l.mapBases.resize(s.tensorMaps.size(), nullptr);
    for (size_t i = 0; i < s.tensorMaps.size(); ++i) {
      const CudaTensorMap& d = s.tensorMaps[i];
      void* base = l.ptrs.at(size_t(d.baseArg));
      if (base != l.mapBases[i]) {
        if (auto ok = cudaimpl::encodeTensorMap(d, base, l.maps[i]); !ok) {
          if (im.mapError.empty()) im.mapError = s.node->describe() + ": " + ok.error().message();
        } else {
          l.mapBases[i] = base;
        }
      }
      l.argv.push_back(&l.maps[i]);
    }
  }
}

Expected<void> CudaExecutable::Impl::enqueueStep() {
  Impl& im = *this;
  if (!im.mapError.empty()) return fail(im.mapError);
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

void CudaExecutable::Impl::captureIfAllowed(const Program& p) {
  if (!mayCapture()) return;
  if (auto ok = captureGraph(); !ok) {
    graphFailed = true;
    graphError = ok.error().message();
    if (opts.verbose)
      std::cerr << "shoal: cuda '" << p.graph->name() << "': no CUDA graph (" << graphError
                << "); launching kernels one by one\n";
  } else if (opts.verbose) {
    std::cerr << fmt::format("shoal: cuda '{}': step captured as a CUDA graph of {} nodes\n", p.graph->name(),
                             graph.nodeCount());
  }
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
  if (!im.graph.valid()) im.captureIfAllowed(program_);
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
  if (captureAfter && mayCapture()) {
    PhaseTimer timer("CUDA graph capture + instantiate");
    captureIfAllowed(p);
  }
  return {};
}

}  // namespace shoal
