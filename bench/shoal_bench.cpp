// shoal_bench: the MNIST CNN's training step (batch 64) and inference (batch 1, 64, 8192) on
// one device, with fusion on and off (and the GPU's horizontal update fusion and the memory
// planner against planMemoryTrivial); prints a table and writes $OUT/shoal_bench.json.
//
//   shoal_bench [--device cuda|cpu|auto] [--pipeline examples/mnist_cnn.mmd]
//               [--steps 200] [--runs 50] [--batches 1,64,8192] [--json PATH]
//               [--skip-train] [--variants fused,unfused,...] [--precision fp32|tf32|bf16|fp16]
//
// Training step: after 30 warm-up steps, `steps` steps through runAccumulate with a
// takeAccumulated every 50 (the trainer's loop, no host sync inside a window); step_ms is the
// median over the windows of wall time / 50, the sync at the window's end included. Also
// run()'s synchronous wall time per step (median) and, on the GPU, device time per step
// (CUDA events around back-to-back replays). Inference: median wall time of `runs` run()
// calls (input upload, the step, output download, one sync) after 5 warm-ups, the input in
// ordinary (pageable) host memory; on the GPU also with the input in page-locked host memory
// (a view of a cudaMallocHost buffer: uploaded by DMA straight from it) and already in GPU
// memory (Tensor::onDevice) -- the figures to set beside a framework timed on pinned and on
// GPU-resident tensors.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "frontend/pipeline_loader.h"
#include "passes/program.h"
#include "runtime/backend.h"
#include "runtime/cuda/cuda_executable.h"
#include "runtime/cuda/device.h"

namespace {

using namespace shoal;
using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

struct Variant {
  std::string name;
  bool fusion = true;      ///< the fuse-* passes
  bool hfuse = true;       ///< horizontal update fusion (GPU codegen)
  bool planner = true;     ///< planMemory (else planMemoryTrivial)
  bool convPool = true;    ///< fuse-conv-pool (with fusion on; off = the fusion before issue 5)
  bool prologue = true;    ///< fuse-conv-prologue (with fusion on): the input's decode in the conv's loads
  bool densePair = true;   ///< fuse-dense-pair (with fusion on): the two dense layers as one fused_mlp
};

struct Args {
  std::string device = "cuda";
  std::string pipeline;
  int steps = 200;
  int runs = 50;
  std::vector<int64_t> batches = {1, 64, 8192};
  std::string json;
  bool train = true;                  ///< --skip-train: inference only
  std::set<std::string> variants;     ///< --variants a,b: only these configs (empty: all)
  TensorCoreMath precision = TensorCoreMath::Off;  ///< --precision: the GPU's products' operand format
};

const std::set<std::string> kFusionPasses = {"fuse-conv-activation", "fuse-conv-pool", "fuse-dense-activation",
                                             "fuse-dense-pair",      "fuse-elementwise", "fuse-conv-prologue"};

Expected<std::unique_ptr<Executable>> build(const Pipeline& p, int64_t batch, const TrainConfig* train,
                                            const Variant& v, const DeviceSelection& dev, TensorCoreMath precision) {
  auto g = rebatchGraph(*p.model, batch);
  if (!g) return Unexpected(g.error());
  CompileOptions opts;
  opts.train = train;
  opts.verifyEach = false;
  if (!v.fusion) opts.disabledPasses = kFusionPasses;
  else if (!v.convPool) opts.disabledPasses = {"fuse-conv-pool"};
  else if (!v.prologue) opts.disabledPasses = {"fuse-conv-prologue"};
  else if (!v.densePair) opts.disabledPasses = {"fuse-dense-pair"};
  auto program = compileProgram(std::move(*g), opts);
  if (!program) return Unexpected(program.error());
  if (!v.planner) program->plan = planMemoryTrivial(*program->graph);
  // The CUDA executor reads SHOAL_CUDA_HFUSE when it is created.
  ::setenv("SHOAL_CUDA_HFUSE", v.hfuse ? "1" : "0", 1);
  ExecutableOptions eo;
  eo.precision = precision;
  auto exe = createExecutable(std::move(*program), dev, eo);
  ::unsetenv("SHOAL_CUDA_HFUSE");
  return exe;
}

// What the executable launches per step, for the table.
nlohmann::ordered_json describe(Executable& exe) {
  nlohmann::ordered_json j;
  j["arena_bytes"] = exe.program().plan.arenaBytes;
  j["persistent_bytes"] = exe.program().plan.persistentBytes;
  if (auto* gpu = dynamic_cast<CudaExecutable*>(&exe)) {
    int64_t gemms = 0, copies = 0;
    for (const CudaStep& s : gpu->module().steps) {
      gemms += s.kind == CudaStepKind::Gemm;
      copies += s.kind == CudaStepKind::Copy;
    }
    j["kernels"] = gpu->module().kernelNames.size();
    j["gemms"] = gemms;
    j["graph_nodes"] = gpu->graphNodes();
  }
  return j;
}

Tensor randomImages(int64_t batch, std::mt19937& rng) {
  Tensor t(DType::U8, {batch, 1, 28, 28});
  auto* d = t.data<uint8_t>();
  for (int64_t i = 0; i < t.numElements(); ++i) d[i] = uint8_t(rng() % 256);
  return t;
}

Expected<nlohmann::ordered_json> benchTrain(const Pipeline& p, const Variant& v, const DeviceSelection& dev,
                                             const Args& args) {
  auto exe = build(p, 64, &*p.train, v, dev, args.precision);
  if (!exe) return Unexpected(exe.error());
  Executable& e = **exe;
  e.initializeParameters(1);
  std::mt19937 rng(42);
  std::vector<TensorMap> batches;
  for (int b = 0; b < 8; ++b) {
    TensorMap feed;
    feed[p.inputName] = randomImages(64, rng);
    feed["labels"] = Tensor(DType::I64, {64});
    for (int64_t i = 0; i < 64; ++i) feed["labels"].data<int64_t>()[i] = int64_t(rng() % 10);
    feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{p.train->lr});  // fed every step
    batches.push_back(std::move(feed));
  }
  const bool adam = p.train->optimizer == "adam" || p.train->optimizer == "adamw";
  int64_t step = 0;
  auto feedFor = [&](int64_t s) {
    TensorMap feed = batches[size_t(s) % batches.size()];
    if (adam) feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(s)});
    return feed;
  };
  // Warm-up (the first run compiles nothing, but captures the graph), then run()'s sync time.
  std::vector<double> runMs;
  for (int i = 0; i < 30; ++i) {
    auto t0 = Clock::now();
    auto out = e.run(feedFor(++step));
    if (!out) return Unexpected(out.error());
    if (i >= 10) runMs.push_back(msSince(t0));
  }
  // The trainer's loop: windows of 50 accumulated steps, one takeAccumulated each.
  std::vector<double> windowMs;
  double lossSum = 0, seen = 0;
  for (int done = 0; done < args.steps;) {
    const int n = std::min(50, args.steps - done);
    std::vector<TensorMap> feeds;
    for (int i = 0; i < n; ++i) feeds.push_back(feedFor(step + 1 + i));
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
      auto ok = e.runAccumulate(feeds[size_t(i)], {"loss", "accuracy"}, 64, ++step);
      if (!ok) return Unexpected(ok.error());
    }
    auto acc = e.takeAccumulated();
    if (!acc) return Unexpected(acc.error());
    windowMs.push_back(msSince(t0) / n);
    lossSum += acc->sums["loss"];
    seen += acc->weight;
    done += n;
  }
  nlohmann::ordered_json j;
  j["config"] = v.name;
  j["fusion"] = v.fusion;
  j["horizontal_updates"] = v.hfuse;
  j["planner"] = v.planner ? "planMemory" : "planMemoryTrivial";
  j["step_ms_median"] = median(windowMs);
  j["step_ms_run_median"] = median(runMs);
  if (auto* gpu = dynamic_cast<CudaExecutable*>(&e)) {
    auto device = gpu->timeStepMs(200);
    if (!device) return Unexpected(device.error());
    j["device_step_ms"] = *device;
  }
  j["mean_loss"] = seen > 0 ? lossSum / seen : 0.0;
  j.update(describe(e));
  return j;
}

Expected<nlohmann::ordered_json> benchInfer(const Pipeline& p, int64_t batch, const Variant& v,
                                             const DeviceSelection& dev, const Args& args) {
  auto exe = build(p, batch, nullptr, v, dev, args.precision);
  if (!exe) return Unexpected(exe.error());
  Executable& e = **exe;
  e.initializeParameters(1);
  std::mt19937 rng(7);
  TensorMap feed = {{p.inputName, randomImages(batch, rng)}};
  // Median wall ms of `runs` run() calls after 5 warm-ups.
  auto timeRuns = [&](const TensorMap& in) -> Expected<double> {
    std::vector<double> ms;
    for (int i = 0; i < 5 + args.runs; ++i) {
      auto t0 = Clock::now();
      auto out = e.run(in);
      if (!out) return Unexpected(out.error());
      if (i >= 5) ms.push_back(msSince(t0));
    }
    return median(ms);
  };
  auto hostMs = timeRuns(feed);
  if (!hostMs) return Unexpected(hostMs.error());
  nlohmann::ordered_json j;
  j["config"] = v.name;
  j["batch"] = batch;
  j["fusion"] = v.fusion;
  j["conv_pool_fusion"] = v.fusion && v.convPool;
  j["planner"] = v.planner ? "planMemory" : "planMemoryTrivial";
  j["ms_median"] = *hostMs;
  j["images_per_s"] = double(batch) / (*hostMs / 1e3);
  if (auto* gpu = dynamic_cast<CudaExecutable*>(&e)) {
    // The same run() with the input already in GPU memory (Tensor::onDevice): no host copy,
    // no upload over PCIe; the like-for-like figure beside a framework timed on GPU tensors.
    auto ctx = CudaContext::create();
    if (!ctx) return Unexpected(ctx.error());
    const Tensor& host = feed.at(p.inputName);
    auto buffer = (*ctx)->allocateBuffer(host.byteSize(), "benchmark input");
    if (!buffer) return Unexpected(buffer.error());
    if (auto ok = (*ctx)->copyToDevice(*buffer, host.raw(), host.byteSize(), "benchmark input"); !ok)
      return Unexpected(ok.error());
    if (auto ok = (*ctx)->synchronize("benchmark input"); !ok) return Unexpected(ok.error());
    TensorMap onGpu = {{p.inputName, Tensor::onDevice(host.type(), *buffer, (*ctx)->device().index)}};
    auto gpuMs = timeRuns(onGpu);
    if (!gpuMs) return Unexpected(gpuMs.error());
    j["ms_median_input_on_gpu"] = *gpuMs;
    // The input in page-locked host memory (as a framework's pinned tensor): run() copies it
    // by DMA straight from there, with no staging copy.
    auto pinned = (*ctx)->allocatePinned(host.byteSize(), "benchmark pinned input");
    if (!pinned) return Unexpected(pinned.error());
    std::memcpy(pinned->data(), host.raw(), host.byteSize());
    TensorMap inPinned = {{p.inputName, Tensor::view(host.type(), pinned->data())}};
    auto pinnedMs = timeRuns(inPinned);
    if (!pinnedMs) return Unexpected(pinnedMs.error());
    j["ms_median_pinned"] = *pinnedMs;
    j["pinned_copied_in"] = !gpu->inputsCopiedIn().empty();  // by shoal_copy_in; else by DMA
    // timeStepMs drops run()'s copies in and in-place bindings and captures the graph again.
    auto device = gpu->timeStepMs(50);
    if (!device) return Unexpected(device.error());
    j["device_ms"] = *device;
  }
  j.update(describe(e));
  return j;
}

std::optional<Args> parseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (k == "--device") a.device = value();
    else if (k == "--pipeline") a.pipeline = value();
    else if (k == "--steps") a.steps = std::max(1, std::atoi(value().c_str()));
    else if (k == "--runs") a.runs = std::max(1, std::atoi(value().c_str()));
    else if (k == "--json") a.json = value();
    else if (k == "--skip-train") a.train = false;
    else if (k == "--precision") {
      const std::string name = value();
      auto m = name == "fp32" ? std::optional<TensorCoreMath>(TensorCoreMath::Off) : parseTensorCoreMath(name);
      if (!m || name == "0" || name == "1" || name == "off") {
        std::fprintf(stderr, "shoal_bench: --precision wants fp32, tf32, bf16 or fp16, got '%s'\n", name.c_str());
        return std::nullopt;
      }
      a.precision = *m;
    }
    else if (k == "--batches" || k == "--variants") {
      const bool batches = k == "--batches";
      if (batches) a.batches.clear();
      std::string list = value();
      for (size_t pos = 0; pos < list.size();) {
        size_t comma = list.find(',', pos);
        std::string item = list.substr(pos, comma - pos);
        if (batches) {
          char* end = nullptr;
          long long b = std::strtoll(item.c_str(), &end, 10);
          if (item.empty() || *end || b < 1) {
            std::fprintf(stderr, "shoal_bench: --batches wants positive integers, got '%s'\n", item.c_str());
            return std::nullopt;
          }
          a.batches.push_back(b);
        } else {
          a.variants.insert(item);
        }
        pos = comma == std::string::npos ? list.size() : comma + 1;
      }
    } else {
      std::fprintf(stderr,
                   "usage: shoal_bench [--device cuda|cpu|auto] [--pipeline FILE] [--steps N] [--runs N] "
                   "[--batches 1,64,8192] [--json PATH] [--skip-train] [--variants fused,...] "
                   "[--precision fp32|tf32|bf16|fp16]\n");
      return std::nullopt;
    }
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = parseArgs(argc, argv);
  if (!parsed) return 2;
  Args args = *parsed;
#ifdef SHOAL_SOURCE_DIR
  if (args.pipeline.empty()) args.pipeline = std::string(SHOAL_SOURCE_DIR) + "/examples/mnist_cnn.mmd";
#endif
  if (args.pipeline.empty()) args.pipeline = "examples/mnist_cnn.mmd";
  DiagnosticEngine diags;
  auto pipeline = loadPipelineFile(args.pipeline, diags);
  if (!pipeline) {
    std::fprintf(stderr, "%s", diags.render().c_str());
    return 1;
  }
  if (!pipeline->train) {
    std::fprintf(stderr, "%s has no train stage\n", args.pipeline.c_str());
    return 1;
  }
  auto kind = parseDeviceKind(args.device);
  if (!kind) {
    std::fprintf(stderr, "unknown device '%s'\n", args.device.c_str());
    return 2;
  }
  auto dev = selectDevice(*kind);
  if (!dev) {
    std::fprintf(stderr, "error: %s\n", dev.error().message().c_str());
    return 1;
  }
  const bool gpu = dev->kind == DeviceKind::Cuda;
  std::vector<Variant> trainVariants = {{"fused", true, true, true}, {"unfused", false, true, true}};
  if (gpu) trainVariants.push_back({"fused_per_param_updates", true, false, true});
  trainVariants.push_back({"fused_trivial_plan", true, true, false});
  std::vector<Variant> inferVariants = {
      {"fused", true, true, true},
      {"fused_noprologue", true, true, true, true, false},
      {"fused_nopair", true, true, true, true, true, false},
      {"fused_nopool", true, true, true, false},
      {"unfused", false, true, true}};
  std::set<std::string> known;
  for (const auto* list : {&trainVariants, &inferVariants})
    for (const Variant& v : *list) known.insert(v.name);
  if (!args.train) trainVariants.clear();
  if (!args.variants.empty()) {
    for (const std::string& name : args.variants)
      if (!known.count(name)) {
        std::fprintf(stderr, "shoal_bench: unknown variant '%s'\n", name.c_str());
        return 2;
      }
    auto keep = [&](std::vector<Variant>& list) {
      std::erase_if(list, [&](const Variant& v) { return !args.variants.count(v.name); });
    };
    keep(trainVariants);
    keep(inferVariants);
  }

  nlohmann::ordered_json out;
  out["device"] = dev->description;
  out["pipeline"] = args.pipeline;
  out["steps"] = args.steps;
  out["runs"] = args.runs;
  const std::string precision = args.precision == TensorCoreMath::Off ? "fp32" : std::string(tensorCoreMathName(args.precision));
  out["precision"] = precision;
  out["gemm_epilogues"] = CudaExecutableOptions::fromEnvironment().gemmEpilogues;
  std::printf("shoal_bench on %s (%s, %s)\n", dev->description.c_str(), args.pipeline.c_str(), precision.c_str());
  std::printf("\ntraining step, batch 64, %d steps (runAccumulate, takeAccumulated every 50)\n", args.steps);
  std::printf("  %-26s %10s %10s %10s %8s %6s %12s\n", "config", "step ms", "run() ms", "device ms", "kernels",
              "gemms", "arena MB");
  nlohmann::ordered_json train = nlohmann::ordered_json::array();
  for (const Variant& v : trainVariants) {
    auto r = benchTrain(*pipeline, v, *dev, args);
    if (!r) {
      std::fprintf(stderr, "error: training '%s': %s\n", v.name.c_str(), r.error().message().c_str());
      return 1;
    }
    std::printf("  %-26s %10.4f %10.4f %10s %8s %6s %12.2f\n", v.name.c_str(), (*r)["step_ms_median"].get<double>(),
                (*r)["step_ms_run_median"].get<double>(),
                r->contains("device_step_ms") ? fmt::format("{:.4f}", (*r)["device_step_ms"].get<double>()).c_str() : "-",
                r->contains("kernels") ? std::to_string((*r)["kernels"].get<int64_t>()).c_str() : "-",
                r->contains("gemms") ? std::to_string((*r)["gemms"].get<int64_t>()).c_str() : "-",
                double((*r)["arena_bytes"].get<int64_t>()) / 1e6);
    std::fflush(stdout);
    train.push_back(*r);
  }
  out["train"] = train;
  std::printf("\ninference, median of %d run() calls\n", args.runs);
  std::printf("  %6s %-12s %10s %12s %12s %10s %14s %8s\n", "batch", "config", "ms", "ms (pinned)", "ms (x on GPU)",
              "device ms", "images/s", "kernels");
  nlohmann::ordered_json infer = nlohmann::ordered_json::array();
  for (int64_t batch : args.batches) {
    for (const Variant& v : inferVariants) {
      auto r = benchInfer(*pipeline, batch, v, *dev, args);
      if (!r) {
        std::fprintf(stderr, "error: inference '%s' at batch %lld: %s\n", v.name.c_str(), (long long)batch,
                     r.error().message().c_str());
        return 1;
      }
      std::printf("  %6lld %-12s %10.4f %12s %12s %10s %14.0f %8s\n", (long long)batch, v.name.c_str(),
                  (*r)["ms_median"].get<double>(),
                  r->contains("ms_median_pinned") ? fmt::format("{:.4f}", (*r)["ms_median_pinned"].get<double>()).c_str()
                                                  : "-",
                  r->contains("ms_median_input_on_gpu")
                      ? fmt::format("{:.4f}", (*r)["ms_median_input_on_gpu"].get<double>()).c_str()
                      : "-",
                  r->contains("device_ms") ? fmt::format("{:.4f}", (*r)["device_ms"].get<double>()).c_str() : "-",
                  (*r)["images_per_s"].get<double>(),
                  r->contains("kernels") ? std::to_string((*r)["kernels"].get<int64_t>()).c_str() : "-");
      std::fflush(stdout);
      infer.push_back(*r);
    }
  }
  out["infer"] = infer;
  // Flat keys for scripts: train_step_ms_<config>, infer_bs<N>_ms_<config>.
  nlohmann::ordered_json flat;
  for (const auto& r : train) flat["train_step_ms_" + r["config"].get<std::string>()] = r["step_ms_median"];
  for (const auto& r : infer) {
    flat[fmt::format("infer_bs{}_ms_{}", r["batch"].get<int64_t>(), r["config"].get<std::string>())] = r["ms_median"];
    if (r.contains("ms_median_input_on_gpu"))
      flat[fmt::format("infer_bs{}_ms_{}_input_on_gpu", r["batch"].get<int64_t>(), r["config"].get<std::string>())] =
          r["ms_median_input_on_gpu"];
    if (r.contains("ms_median_pinned"))
      flat[fmt::format("infer_bs{}_ms_{}_pinned", r["batch"].get<int64_t>(), r["config"].get<std::string>())] =
          r["ms_median_pinned"];
  }
  out["summary"] = flat;

  std::string path = args.json;
  if (path.empty())
    if (const char* o = std::getenv("OUT"); o && *o) path = std::string(o) + "/shoal_bench.json";
  if (!path.empty()) {
    std::ofstream f(path);
    f << out.dump(2) << "\n";
    if (!f) {
      std::fprintf(stderr, "error: cannot write %s\n", path.c_str());
      return 1;
    }
    std::printf("\nwrote %s\n", path.c_str());
  }
  return 0;
}
