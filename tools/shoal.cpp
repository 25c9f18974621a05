// The `shoal` command line: check, dump, compile and run pipelines (see design.md's CLI contract).
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "codegen/cuda_codegen.h"
#include "frontend/onnx/onnx_import.h"
#include "frontend/pipeline_loader.h"
#include "ir/export.h"
#include "ir/printer.h"
#include "passes/program.h"
#include "runtime/backend.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/cpu/interpreter.h"
#include "runtime/differential.h"
#include "runtime/cuda/cuda_executable.h"
#include "runtime/cuda/device.h"
#include "runtime/cuda/nccl_communicator.h"
#include "runtime/distributed/join.h"
#include "runtime/distributed/launcher.h"
#include "runtime/model_programs.h"
#include "runtime/progress.h"
#include "runtime/trainer.h"
#include "support/file_util.h"
#include "support/phase_times.h"
#include "support/thread_pool.h"
#include "tools/onnx_commands.h"
#include "tools/tensor_text.h"

namespace shoal {
namespace {

// Exit statuses: 0 success, 1 bad input or usage (with a diagnostic); anything else is a bug.
constexpr int kOk = 0;
constexpr int kUserError = 1;

// Diagnostics of this run; it holds the pipeline's source so later errors (from passes, the
// trainer) are rendered with the source line and a caret too.
DiagnosticEngine& diagnostics() {
  static DiagnosticEngine diags;
  return diags;
}

int reportError(const Error& e) {
  std::cerr << diagnostics().render(Diagnostic{Severity::Error, e.location(), e.message()});
  return kUserError;
}

std::optional<Pipeline> load(const std::string& file) {
  PhaseTimer timer("pipeline file (parse, lower)");
  DiagnosticEngine& diags = diagnostics();
  auto p = loadPipelineFile(file, diags);
  std::cerr << diags.render();
  if (!p || diags.hasErrors()) {
    if (diags.errorCount() > 1) std::cerr << diags.errorCount() << " errors\n";
    return std::nullopt;
  }
  return p;
}

// Writes `text` to `path` (atomically) or stdout when path is "" or "-".
bool emit(const std::string& path, const std::string& text) {
  if (path.empty() || path == "-") {
    std::cout << text;
    return true;
  }
  auto ok = writeFileAtomic(path, text);
  if (!ok) {
    reportError(ok.error());
    return false;
  }
  return true;
}

struct CommonOptions {
  std::string file;
  bool train = false;
  std::vector<std::string> disabled;
  std::optional<int64_t> memoryLimit;  ///< --memory-limit BYTES (0: none; unset: defaultMemoryLimit())
};

CompileOptions compileOptions(const CommonOptions& c, const TrainConfig* train) {
  CompileOptions o;
  o.train = train;
  o.disabledPasses = {c.disabled.begin(), c.disabled.end()};
  if (c.memoryLimit) o.memoryLimit = *c.memoryLimit;
  return o;
}

Expected<const TrainConfig*> trainConfigFor(const Pipeline& p, bool train, TrainConfig& fallback) {
  if (!train) return nullptr;
  if (p.train) return &*p.train;
  if (!p.model->outputValue(p.logitsName))
    return fail(fmt::format("--train: '{}' has no train stage and no output named '{}'", p.file, p.logitsName));
  fallback = TrainConfig{};
  return &fallback;
}

// ---- check ------------------------------------------------------------------------------
int runCheck(const CommonOptions& c) {
  auto p = load(c.file);
  if (!p) return kUserError;
  TrainConfig fallback;
  auto train = trainConfigFor(*p, p->train.has_value(), fallback);
  if (!train) return reportError(train.error());
  auto program = compileProgram(p->model->clone(), compileOptions(c, *train));
  if (!program) return reportError(program.error());
  std::cout << fmt::format("{}: ok ({} ops{})\n", c.file, p->model->size(), p->train ? ", trains" : "");
  return kOk;
}

// ---- dump -------------------------------------------------------------------------------
struct DumpOptions {
  std::string format = "ir";
  std::string after;
  bool afterAll = false;
  bool memory = false;
  bool cuda = false;
  std::string precision = "fp32";  ///< --precision, for --cuda
  std::string arch;                ///< --arch, for --cuda ("": none in particular)
  std::string out;
};

// --precision's value as the codegen's TensorCoreMath (fp32: off).
TensorCoreMath precisionMath(const std::string& precision) {
  return precision == "fp32" ? TensorCoreMath::Off : parseTensorCoreMath(precision).value_or(TensorCoreMath::Off);
}

// The --precision option of run, dump and compile.
CLI::Option* addPrecision(CLI::App* cmd, std::string& precision, const std::string& what) {
  return cmd->add_option("--precision", precision, what)->check(CLI::IsMember({"fp32", "tf32", "bf16", "fp16"}));
}

std::string render(const Graph& g, const std::string& format) {
  if (format == "dot") return toDot(g);
  if (format == "mermaid") return toMermaid(g);
  return printGraph(g);
}

// One graph of the pipeline as IR text with the pipeline's settings block after it, so the
// dump runs as the pipeline did (`shoal run a.ir`); other formats draw the graph only.
std::string renderPipeline(const Graph& g, const Pipeline& p, const std::string& format) {
  std::string text = render(g, format);
  if (format == "ir") text += printPipelineSettings(p);
  return text;
}

int runDump(const CommonOptions& c, const DumpOptions& d) {
  auto p = load(c.file);
  if (!p) return kUserError;
  TrainConfig fallback;
  auto train = trainConfigFor(*p, c.train, fallback);
  if (!train) return reportError(train.error());
  CompileOptions opts = compileOptions(c, *train);
  std::string text;
  if (d.afterAll) {
    opts.observer = [&](std::string_view pass, bool changed, const Graph& g) {
      text += fmt::format("// ---- after {}{} ----\n", pass, changed ? "" : " (unchanged)") + render(g, d.format);
    };
  }
  if (!d.after.empty()) {
    if (d.after == "frontend") {
      return emit(d.out, renderPipeline(*p->model, *p, d.format)) ? kOk : kUserError;
    }
    opts.stopAfter = d.after;
  }
  auto program = compileProgram(p->model->clone(), opts);
  if (!program) return reportError(program.error());
  // As `run --precision` generates it on a device of that architecture (wgmma on sm_90),
  // under the same SHOAL_CUDA_* settings.
  const CudaCodegenOptions cg =
      CudaExecutableOptions::fromEnvironment().withPrecision(precisionMath(d.precision)).codegenOptions(d.arch);
  if (d.memory) {
    // The plan, then what the GPU executable allocates beside it: the module's scratch (split
    // reductions' slices, packed operands, Winograd's transforms), its prepared parameters (and
    // the values computed from them, listed), its converted copies (listed with the nodes that
    // read them) and its status words -- for the precision and architecture asked (they change
    // the kernels).
    // A model the GPU cannot run still gets its plan, with the reason under "gpu".
    auto j = nlohmann::ordered_json::parse(memoryPlanJson(*program->graph, program->plan));
    nlohmann::ordered_json gpu;
    gpu["precision"] = d.precision;
    gpu["arch"] = d.arch.empty() ? "any" : d.arch;
    if (auto src = generateCudaSource(*program, cg); !src) {
      gpu["unsupported"] = src.error().message();
    } else {
      gpu["scratch_bytes"] = src->scratchBytes;
      gpu["prepared_bytes"] = src->preparedBytes;
      gpu["converted_bytes"] = src->convertedBytes;
      gpu["status_bytes"] = src->statusBytes();
      gpu["device_bytes"] = src->deviceBytes(program->plan);
      // In program order (the map's order is not deterministic).
      const auto& nodes = program->graph->nodes();
      auto json = nlohmann::ordered_json::array();
      for (const Node* n : nodes)
        for (size_t r = 0; r < n->numResults(); ++r)
          if (auto it = src->hoisted.find(n->result(r)); it != src->hoisted.end())
            json.push_back({{"value", n->result(r)->name()},
                            {"offset", it->second},
                            {"bytes", int64_t(n->result(r)->type().byteSize())}});
      gpu["prepared_values"] = json;
      json = nlohmann::ordered_json::array();
      for (const auto& b : src->converted)
        json.push_back({{"value", b.value->name()},
                        {"offset", b.offset},
                        {"bytes", b.bytes},
                        {"first", nodes[size_t(b.first)]->describe()},
                        {"last", nodes[size_t(b.last)]->describe()}});
      gpu["converted"] = json;
    }
    j["gpu"] = gpu;
    text = j.dump(2) + "\n";
  } else if (d.cuda) {
    auto src = generateCudaSource(*program, cg);
    if (!src) return reportError(src.error());
    text = src->source;
  } else if (!d.afterAll)
    text = renderPipeline(*program->graph, *p, d.format);
  return emit(d.out, text) ? kOk : kUserError;
}

// ---- compile ----------------------------------------------------------------------------
int runCompile(const CommonOptions& c, const std::string& arch, bool verbose, const std::string& precision) {
  auto p = load(c.file);
  if (!p) return kUserError;
  TrainConfig fallback;
  auto train = trainConfigFor(*p, c.train, fallback);
  if (!train) return reportError(train.error());
  auto program = compileProgram(p->model->clone(), compileOptions(c, *train));
  if (!program) return reportError(program.error());
  // The module the runtime would make on a device of this architecture (wgmma for TF32 on
  // sm_90, compiled for sm_90a), under the same SHOAL_CUDA_* settings.
  const CudaCodegenOptions cg =
      CudaExecutableOptions::fromEnvironment().withPrecision(precisionMath(precision)).codegenOptions(arch);
  auto result = compileCudaProgram(*program, cudaTargetArch(cg, arch), verbose, cg);
  if (!result) return reportError(result.error());
  std::cout << *result;
  return kOk;
}

// ---- run ---------------------------------------------------------------------------------
struct RunOptions {
  std::string device = "auto";
  std::optional<int64_t> epochs;
  std::optional<uint64_t> seed;
  std::string report;
  std::string weights;
  bool evaluate = false;
  bool verbose = false;
  bool tf32 = false;
  std::string precision = "fp32";  ///< --precision fp32|tf32|bf16|fp16
  bool autotune = false;           ///< --autotune: the tensor-core tiles timed on the device
  bool profile = false;
  int threads = 0;          ///< --threads N (0: every core available)
  std::vector<std::string> inputs;  ///< --input NAME=FILE (.pb or .npy) for models with tensor inputs
  int64_t repeat = 0;               ///< --repeat N: time N more runs (ONNX models)
  bool check = false;       ///< --check: compare every node with the float64 interpreter
  int64_t checkSteps = 3;   ///< --check-steps N
  DifferentialTolerance checkTolerance;  ///< --check-rtol, --check-atol
  int gpus = 0;             ///< --gpus N: one process per GPU, data parallel
  int nproc = 0;            ///< --nproc N: N CPU processes, data parallel
  std::optional<int64_t> batch;  ///< --batch N: the (global) batch size
  std::optional<double> bucketMb;  ///< --bucket-mb X: data-parallel all-reduce bucket size
  std::vector<std::string> args;  ///< the command line after the program name (for the ranks)
};

// Training progress on stderr. On a terminal a live line (bar, running loss, images/s, ETA)
// redrawn at most 20 times a second; the per-epoch lines on stdout either way (scripts and
// tests read them).
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool tty) : tty_(tty) {}
  void step(const StepProgress& s) {
    if (!tty_) return;
    auto now = Clock::now();
    if (!runStart_) runStart_ = now, runStartDone_ = done_;
    ++done_;
    if (s.step == 1) epochStart_ = now, epochStartExamples_ = s.examples;
    bool last = s.steps > 0 && s.step >= s.steps;
    if (!last && lastDraw_ && seconds(*lastDraw_, now) < 0.05) return;
    lastDraw_ = now;
    ProgressFigures f;
    f.epoch = s.epoch, f.epochs = s.epochs, f.step = s.step, f.steps = s.steps;
    f.runningLoss = s.runningLoss;
    double epochSeconds = seconds(epochStart_, now);
    if (s.step > 1 && epochSeconds > 0) f.imagesPerSecond = double(s.examples - epochStartExamples_) / epochSeconds;
    // Steps of the whole run: the epochs' (when known) after the one running.
    int64_t total = s.steps > 0 ? (done_ - s.step) + s.steps * (s.epochs - s.epoch + 1) : 0;
    f.etaSeconds = etaSeconds(seconds(*runStart_, now), done_ - runStartDone_ - 1, total - runStartDone_ - 1);
    std::string line = formatProgressLine(f);
    size_t width = line.size();
    if (line.size() < drawn_) line += std::string(drawn_ - line.size(), ' ');
    drawn_ = width;
    fmt::print(stderr, "\r{}", line);
    std::fflush(stderr);
  }
  void epoch(const EpochStats& e, int64_t epochs) {
    if (tty_ && drawn_ > 0) fmt::print(stderr, "\r{}\r", std::string(drawn_, ' '));
    drawn_ = 0;
    lastDraw_.reset();
    std::string val = e.validationAccuracy ? fmt::format("  val_accuracy {:.4f}", *e.validationAccuracy) : "";
    if (e.validationLoss) val += fmt::format("  val_loss {:.4f}", *e.validationLoss);
    fmt::print("epoch {}/{}  loss {:.4f}  accuracy {:.4f}{}  ({:.2f} s)\n", e.epoch, epochs, e.loss, e.accuracy, val, e.seconds);
    std::fflush(stdout);
  }

 private:
  using Clock = std::chrono::steady_clock;
  static double seconds(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }
  bool tty_;
  int64_t done_ = 0;  ///< steps seen in the run
  std::optional<Clock::time_point> runStart_, lastDraw_;
  int64_t runStartDone_ = 0;
  Clock::time_point epochStart_{};
  int64_t epochStartExamples_ = 0;
  size_t drawn_ = 0;  ///< characters of the line on screen
};

// `run --verbose`: where the wall time went, main-thread phases first (they add up to the
// total with "before main" and "other"), then the phases overlapped on other threads.
double beforeMainSeconds = -1;

void printPhaseBreakdown() {
  double total = secondsSinceProcessStart();
  std::vector<PhaseTime> phases = PhaseTimes::global().entries();
  fmt::print(stderr, "shoal: where the time went (wall seconds):\n");
  double accounted = 0;
  if (beforeMainSeconds >= 0) {
    fmt::print(stderr, "  {:<42} {:8.3f}\n", "start-up before main (exec, libraries)", beforeMainSeconds);
    accounted += beforeMainSeconds;
  }
  for (const PhaseTime& p : phases) {
    if (p.background) continue;
    fmt::print(stderr, "  {:<42} {:8.3f}{}\n", p.phase, p.seconds, p.count > 1 ? fmt::format("  ({}x)", p.count) : "");
    accounted += p.seconds;
  }
  if (total >= 0) {
    fmt::print(stderr, "  {:<42} {:8.3f}\n", "other (main thread)", std::max(0.0, total - accounted));
    fmt::print(stderr, "  {:<42} {:8.3f}\n", "total", total);
  }
  for (const PhaseTime& p : phases)
    if (p.background) fmt::print(stderr, "  {:<42} {:8.3f}  (on another thread, overlapped)\n", p.phase, p.seconds);
}

void reportWarning(const Error& w) {
  std::cerr << diagnostics().render(Diagnostic{Severity::Warning, w.location(), w.message()});
}

TensorCoreMath precisionOf(const RunOptions& r) { return precisionMath(r.precision); }

// Inference over a pipeline whose inputs are all literals: run once, print every output.
int runLiterals(const CommonOptions& c, const RunOptions& r, const Pipeline& p, DeviceKind kind,
                nlohmann::ordered_json& report) {
  TensorMap feeds;
  if (!p.model->inputNodes().empty()) {
    if (r.inputs.empty()) {
      Node* in = p.model->inputNodes().front();
      // An IR file's nodes keep the locations of the pipeline they came from: the error is about
      // this file, so it names it.
      Location where = in->loc();
      if (where.file != p.file) where = Location{p.file, 0, 0, where.node};
      return reportError(
          Error(fmt::format("input '{}' ({}) has no data: give it with --input {}=FILE (.pb or .npy), "
                            "give the pipeline a data input, or use the C++ API to feed it",
                            in->attrs().getString("name"), in->result()->type().str(), in->attrs().getString("name")),
                where));
    }
    std::vector<std::string> names;
    for (Node* in : p.model->inputNodes()) names.push_back(in->attrs().getString("name"));
    auto read = readInputFiles(r.inputs, names);
    if (!read) return reportError(read.error());
    feeds = std::move(*read);
  } else if (!r.inputs.empty()) {
    return reportError(Error(fmt::format("--input: '{}' has no tensor inputs to feed", c.file)));
  }
  auto dev = pipelineDevice(p, kind);
  if (!dev) return reportError(dev.error());
  fmt::print(stderr, "device: {}{}\n", dev->description, dev->note.empty() ? "" : " (" + dev->note + ")");
  ModelProgramsOptions mo;
  mo.exec.tf32 = r.tf32;
  mo.exec.precision = precisionOf(r);
  mo.exec.autotune = r.autotune;
  mo.exec.verbose = r.verbose;
  mo.exec.threads = r.threads;
  mo.compile = compileOptions(c, nullptr);
  mo.profile = r.profile;
  auto programs = ModelPrograms::create(std::shared_ptr<const Graph>(p.model->clone()), *dev, mo);
  if (!programs) return reportError(programs.error());
  ModelPrograms& m = **programs;
  m.initialize(r.seed.value_or(0));
  if (!r.weights.empty()) {
    if (m.parameterTypes().empty())
      return reportError(Error(fmt::format("--weights: '{}' has no parameters to load (its inputs are literals)", c.file)));
    auto file = loadSafetensors(r.weights);
    if (!file) return reportError(file.error());
    TensorMap values;
    for (auto& [name, t] : file->tensors) values[name] = t;
    auto ok = m.setPersistent(values, r.weights);
    if (!ok) return reportError(ok.error());
  }
  auto out = m.run(feeds);
  if (!out) return reportError(out.error());
  report["device"] = dev->description;
  nlohmann::ordered_json outputs;
  for (Node* o : m.model().outputNodes()) {
    const std::string& name = o->attrs().getString("name");
    const Tensor& v = out->at(name);
    fmt::print("{} = {}\n", name, tensorText(v));
    outputs[name] = tensorJson(v);
  }
  report["outputs"] = outputs;
  if (r.profile) fmt::print(stderr, "time per op:\n{}", m.profileSummary());
  return kOk;
}

// ---- run --check ------------------------------------------------------------------------
int runCheckAgainstReference(const CommonOptions& c, const RunOptions& r, const Pipeline& p, DeviceKind kind) {
  DifferentialOptions d;
  d.device = kind;
  d.steps = r.checkSteps;
  d.tolerance = r.checkTolerance;
  d.seed = r.seed;
  d.weights = r.weights;
  d.exec.tf32 = r.tf32;
  d.exec.verbose = r.verbose;
  d.exec.threads = r.threads;
  d.compile = compileOptions(c, nullptr);
  d.onNote = [](const std::string& s) { fmt::print(stderr, "{}\n", s); };
  if (!r.report.empty() && r.report != "-")
    if (auto ok = checkWritablePath(r.report); !ok) return reportError(ok.error());
  auto result = checkPipelineAgainstReference(p, d);
  if (!result) return reportError(result.error());
  std::string what = result->training ? fmt::format("{} training step{}", result->steps, result->steps == 1 ? "" : "s")
                                      : fmt::format("{} run{}", result->steps, result->steps == 1 ? "" : "s");
  nlohmann::ordered_json j;
  j["device"] = result->device;
  j["check"]["steps"] = result->steps;
  j["check"]["nodes_per_step"] = result->nodesPerStep;
  j["check"]["rtol"] = d.tolerance.rtol;
  j["check"]["atol"] = d.tolerance.atol;
  j["check"]["diverged"] = result->divergence.has_value();
  int status = kOk;
  if (const auto& div = result->divergence) {
    fmt::print("check: {} diverges from the float64 interpreter\n", result->device);
    std::string message = "diverges from float64: " + div->describe(/*withLocation=*/false);
    std::cerr << diagnostics().render(Diagnostic{Severity::Error, div->loc, message});
    nlohmann::ordered_json o;
    o["step"] = div->step;
    o["node"] = div->loc.node;
    o["op"] = div->op;
    o["value"] = div->value;
    o["location"] = div->loc.str();
    o["index"] = div->index;
    o["device"] = div->got;
    o["float64"] = div->want;
    o["error"] = div->error;
    o["tolerance"] = div->tolerance;
    o["elements_beyond_tolerance"] = div->badElements;
    j["check"]["divergence"] = o;
    status = kUserError;
  } else {
    fmt::print("check: {} matches the float64 interpreter ({}, {} nodes each; rtol {:g}, atol {:g}); closest: {:.2g} of "
               "the tolerance at {}\n",
               result->device, what, result->nodesPerStep, d.tolerance.rtol, d.tolerance.atol, result->worstRatio,
               result->worstNode.empty() ? "-" : result->worstNode);
  }
  if (!r.report.empty() && !emit(r.report, j.dump(2) + "\n")) return kUserError;
  return status;
}

// ---- data parallelism ----------------------------------------------------------------------

// `--gpus N` / `--nproc N`: start the ranks (this program again, without the flag) and wait.
int launchDataParallel(const CommonOptions& c, const RunOptions& r, const Pipeline& p) {
  const bool gpus = r.gpus > 0;
  const int ranks = gpus ? r.gpus : r.nproc;
  const std::string flag = gpus ? "--gpus" : "--nproc";
  if (std::getenv("RANK") || std::getenv("WORLD_SIZE"))
    return reportError(Error(fmt::format("{} starts its own ranks, but RANK/WORLD_SIZE are set: with them, start shoal "
                                         "once per rank without {}",
                                         flag, flag)));
  if (!p.train || r.evaluate || r.check)
    return reportError(Error(fmt::format("{}: data parallelism trains a pipeline; '{}' {}", flag, c.file,
                                         !p.train ? "has no train stage" : r.evaluate ? "is only evaluated (--evaluate)"
                                                                                     : "is checked (--check)")));
  LaunchOptions lo;
  lo.ranks = ranks;
  if (gpus) {
    if (r.device != "auto" && r.device != "gpu" && r.device != "cuda")
      return reportError(Error(fmt::format("--gpus runs on GPUs; --device {} contradicts it (use --nproc for CPU ranks)", r.device)));
    for (int i = 0; i < ranks; ++i) {
      auto dev = probeCudaDevice(i);
      if (!dev)
        return reportError(Error(i == 0 ? fmt::format("--gpus {}: no usable GPU ({})", ranks, dev.error().message())
                                        : fmt::format("--gpus {}: this machine has only {} usable GPU{}", ranks, i,
                                                      i == 1 ? "" : "s")));
    }
    if (auto libs = cudaLibrariesAvailable(); !libs)
      return reportError(Error(fmt::format("--gpus {}: no usable GPU ({})", ranks, libs.error().message())));
    if (auto nccl = ncclVersion(); !nccl)
      return reportError(Error(fmt::format("--gpus {}: {}", ranks, nccl.error().message())));
    // Rank r sees one GPU: the r-th of those this process sees.
    std::vector<std::string> visible;
    if (const char* cvd = std::getenv("CUDA_VISIBLE_DEVICES"); cvd && *cvd) {
      std::string list = cvd;
      for (size_t start = 0, end; start <= list.size(); start = end + 1) {
        end = list.find(',', start);
        if (end == std::string::npos) end = list.size();
        visible.push_back(list.substr(start, end - start));
      }
    }
    for (int i = 0; i < ranks; ++i) lo.visibleDevices.push_back(size_t(i) < visible.size() ? visible[size_t(i)] : std::to_string(i));
  } else if (r.device != "cpu") {
    return reportError(Error("--nproc starts CPU ranks: give --device cpu too (for GPUs, --gpus N)"));
  }
  const int port = pickFreePort();
  if (port == 0) return reportError(Error("cannot find a free TCP port on 127.0.0.1 for the ranks' rendezvous"));
  lo.env = {{"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)}, {"NCCL_NVLS_ENABLE", "0"}};
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return reportError(Error("cannot find the shoal executable (/proc/self/exe) to start the ranks"));
  lo.program.assign(self, size_t(n));
  // The same command, minus the launcher's flag (and on the GPU, --device gpu).
  for (size_t i = 0; i < r.args.size(); ++i) {
    const std::string& a = r.args[i];
    if (a == "--gpus" || a == "--nproc") {
      ++i;
      continue;
    }
    if (a.rfind("--gpus=", 0) == 0 || a.rfind("--nproc=", 0) == 0) continue;
    lo.args.push_back(a);
  }
  if (gpus) lo.args.insert(lo.args.end(), {"--device", "gpu"});
  return launchRanks(lo);
}

int runRun(const CommonOptions& c, const RunOptions& r) {
  if (r.tf32 && (r.precision == "bf16" || r.precision == "fp16"))
    return reportError(Error(fmt::format("--tf32 and --precision {} disagree: choose one", r.precision)));
  if (r.check && r.precision != "fp32")
    return reportError(Error(fmt::format(
        "--check compares with the float64 interpreter within fp32's tolerances: run it at --precision fp32, not {}",
        r.precision)));
  if (isOnnxPath(c.file)) {
    // An ONNX model is imported for the shapes of the tensors fed (its symbolic dimensions
    // bound by them) and run once (or timed with --repeat).
    if (r.epochs || r.evaluate || !r.weights.empty() || r.seed || r.profile || r.check)
      return reportError(
          Error("--epochs, --evaluate, --weights, --seed, --profile and --check apply to pipelines, not to "
                "an ONNX model (its weights are its initializers; 'shoal conformance' checks its outputs)"));
    OnnxRunOptions o{c.file, r.inputs, r.device, r.repeat, r.tf32, r.verbose, r.threads, precisionOf(r), r.autotune};
    nlohmann::ordered_json report;
    int rc = runOnnxModel(o, report);
    if (rc != kOk) return rc;
    if (!r.report.empty() && !emit(r.report, report.dump(2) + "\n")) return kUserError;
    return kOk;
  }
  if (r.repeat) return reportError(Error("--repeat applies to ONNX models"));
  auto p = load(c.file);
  if (!p) return kUserError;
  auto kind = parseDeviceKind(r.device);
  if (!kind) return reportError(Error(fmt::format("--device must be auto, cpu or gpu (or cuda), got '{}'", r.device)));
  if (r.gpus > 1 || r.nproc > 1) return launchDataParallel(c, r, *p);
  if (r.gpus == 1) kind = DeviceKind::Cuda;  // one GPU: this process
  // A rank of a data-parallel run (RANK, WORLD_SIZE, ... set by the launcher or the user).
  std::optional<RendezvousOptions> rank;
  if (p->train && !r.evaluate && !r.check) {
    auto env = rendezvousFromEnvironment();
    if (!env) return reportError(env.error());
    if (*env && (*env)->size > 1) {
      rank = **env;
      // Before anything touches CUDA: one GPU per rank (LOCAL_RANK's, unless the launcher or
      // the user chose), and no NVLink multicast (NVLS) for NCCL.
      if (!std::getenv("CUDA_VISIBLE_DEVICES")) ::setenv("CUDA_VISIBLE_DEVICES", std::to_string(rank->localRank).c_str(), 1);
      ::setenv("NCCL_NVLS_ENABLE", "0", 1);
    }
  }
  if (r.bucketMb && !rank)
    return reportError(Error("--bucket-mb applies to data-parallel training (--gpus N, --nproc N, or ranks started with "
                             "RANK and WORLD_SIZE)"));
  if (*kind == DeviceKind::Cuda) {
    auto dev = selectDevice(*kind);
    if (!dev) return reportError(Error(fmt::format("--device {}: {}", r.device, dev.error().message())));
  }
  bool hasData = p->data && !p->model->inputNodes().empty();
  if (r.epochs && !p->train)
    return reportError(Error(fmt::format("--epochs: '{}' has no train stage (it runs inference)", c.file)));
  if (r.epochs && r.evaluate) return reportError(Error("--epochs and --evaluate exclude each other (--evaluate trains nothing)"));
  if (r.evaluate && !hasData)
    return reportError(Error(fmt::format("--evaluate: '{}' has no data input to evaluate on", c.file)));
  if (r.check) return runCheckAgainstReference(c, r, *p, *kind);
  TrainOptions t;
  t.device = *kind;
  t.epochs = r.epochs;
  t.seed = r.seed;
  t.weights = r.weights;
  t.exec.tf32 = r.tf32;
  t.exec.precision = precisionOf(r);
  t.exec.autotune = r.autotune;
  t.exec.verbose = r.verbose;
  t.exec.threads = r.threads;
  t.profile = r.profile;
  t.compile = compileOptions(c, nullptr);
  if (r.bucketMb) t.compile.collectiveBucketBytes = std::max<int64_t>(1, int64_t(*r.bucketMb * 1024 * 1024));
  t.onNote = [&](const std::string& s) {
    if (s.rfind("device:", 0) == 0 || s.rfind("note:", 0) == 0 || r.verbose) fmt::print(stderr, "{}\n", s);
  };
  t.onWarning = reportWarning;
  t.batch = r.batch;
  const bool tty = isatty(STDERR_FILENO);
  ProgressPrinter progress(tty);
  if (tty) t.lossReadSeconds = 0.5;  // a running loss on the bar: a read every half second
  int64_t epochs = r.epochs.value_or(p->train ? p->train->epochs : 0);
  t.onStep = [&](const StepProgress& s) { progress.step(s); };
  t.onEpoch = [&](const EpochStats& e) { progress.epoch(e, epochs); };
  // Rank 0 speaks for a data-parallel run (every rank computes the same figures); the others
  // report only errors. Rank 0 alone writes the report, the curve and the checkpoint.
  const bool quiet = rank && rank->rank != 0;
  std::string reportPath = quiet ? "" : r.report;
  Pipeline& pipeline = *p;
  if (quiet) {
    pipeline.output.plot.clear();
    t.onStep = nullptr;
    t.onEpoch = nullptr;
    auto onNote = t.onNote;
    t.onNote = [onNote, &r](const std::string& s) {
      if (r.verbose) onNote(s);
    };
  }
  if (rank) {
    auto device = pipelineDevice(*p, *kind);
    if (!device) return reportError(device.error());
    const int me = rank->rank;
    auto comm = joinDataParallelRun(*rank, device->kind, [me](const std::string& why) {
      // Another rank failed or vanished: stop now rather than wait in a collective forever.
      fmt::print(stderr, "shoal: error: {}; rank {} stops\n", why, me);
      std::fflush(stderr);
      std::_Exit(1);
    });
    if (!comm) return reportError(comm.error());
    t.comm = *comm;
    // Test hook (fault tests, bench/ddp_bench.sh): SHOAL_TEST_KILL_RANK=R:STEP makes rank R
    // kill itself (SIGKILL, no word to anyone) at its training step STEP.
    if (const char* kill = std::getenv("SHOAL_TEST_KILL_RANK")) {
      int victim = -1;
      int64_t atStep = 0;
      if (std::sscanf(kill, "%d:%ld", &victim, &atStep) == 2 && victim == me) {
        auto onStep = t.onStep;
        int64_t seen = 0;
        t.onStep = [onStep, atStep, seen](const StepProgress& s) mutable {
          if (++seen == atStep) ::raise(SIGKILL);
          if (onStep) onStep(s);
        };
      }
    }
    if (!quiet)
      fmt::print(stderr, "data parallel: {} ranks ({}), global batch {}\n", rank->size, (*comm)->kind(),
                 r.batch.value_or(p->train->batch));
  }

  // Every file the run will write, checked before any work: a missing or read-only folder is
  // reported now, not after the whole training.
  std::vector<std::pair<std::string, Location>> outputs = {{reportPath, Location{}}, {p->output.plot, p->output.loc}};
  if (p->train) outputs.push_back({p->output.checkpoint, p->output.loc});
  for (const auto& [path, loc] : outputs)
    if (!path.empty() && path != "-")
      if (auto ok = checkWritablePath(path); !ok) return reportError(Error(ok.error().message(), loc));

  nlohmann::ordered_json report;
  if (p->train || hasData) {
    bool train = p->train && !r.evaluate;
    auto result = train ? trainPipeline(*p, t) : evaluatePipeline(*p, t);
    if (!result) return reportError(result.error());
    if (t.comm) t.comm->finish();
    if (quiet) return kOk;
    if (result->testAccuracy) fmt::print("test accuracy {:.4f}\n", *result->testAccuracy);
    if (train) fmt::print("trained in {:.2f} s ({} steps, median step {:.2f} ms)\n", result->trainSeconds, result->steps, result->stepMsMedian);
    if (!result->checkpoint.empty()) fmt::print("checkpoint saved to {}\n", result->checkpoint);
    if (!result->profile.empty())
      fmt::print("time per op in the {}:\n{}", train ? "training step" : "evaluation", result->profile);
    if (train && !p->output.plot.empty()) {
      if (!emit(p->output.plot, trainCurveSvg(*result))) return kUserError;
      fmt::print("curve saved to {}\n", p->output.plot);
    }
    report = nlohmann::ordered_json::parse(trainReportJson(*result));
  } else {
    int rc = runLiterals(c, r, *p, *kind, report);
    if (rc != kOk) return rc;
  }
  if (!reportPath.empty() && !emit(reportPath, report.dump(2) + "\n")) return kUserError;
  if (r.verbose) {
    std::fflush(stdout);  // the run's lines first
    printPhaseBreakdown();
  }
  return kOk;
}

int main(int argc, char** argv) {
  markMainThread();
  beforeMainSeconds = secondsSinceProcessStart();
  CLI::App app{
      "shoal: a graph-compiling deep learning runtime. Pipelines are Mermaid flowcharts (.mmd) or IR text; "
      "ONNX models (.onnx) are imported."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "shoal 0.1.0");
  CommonOptions common;
  auto addCommon = [&](CLI::App* cmd, bool train) {
    cmd->add_option("FILE", common.file, "pipeline (.mmd), IR text file or ONNX model (.onnx)")->required();
    if (train) cmd->add_flag("--train", common.train, "compile the training step (forward, loss, backward, update)");
    cmd->add_option("--disable-pass", common.disabled, "skip the named pass (repeatable)");
    cmd->add_option("--memory-limit", common.memoryLimit,
                    fmt::format("fail before running when the memory plan needs more bytes (0: no limit; default: this "
                                "machine's memory or the process's limit, now {})",
                                defaultMemoryLimit()))
        ->check(CLI::NonNegativeNumber);
  };

  // --threads N on the commands that execute (run, conformance).
  auto addThreads = [](CLI::App* cmd, int& threads) {
    cmd->add_option("--threads", threads,
                    fmt::format("CPU threads of the CPU backend: its kernels and matrix products (default: the cores "
                                "available, here {}); the results do not depend on it",
                                defaultCpuThreads()))
        ->check(CLI::Validator(
            [](std::string& v) {
              int n = 0;
              auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
              if (ec != std::errc() || end != v.data() + v.size() || n < 1)
                return fmt::format("must be a whole number, 1 or more, got '{}'", v);
              return std::string();
            },
            "N>=1", "PositiveInteger"));
  };

  auto* check = app.add_subcommand("check", "parse, lower and verify a pipeline; print diagnostics");
  addCommon(check, false);

  DumpOptions dump;
  auto* dumpCmd = app.add_subcommand("dump", "print the IR (or DOT, Mermaid, the memory plan, the CUDA source)");
  addCommon(dumpCmd, true);
  dumpCmd->add_option("--format", dump.format, "ir | dot | mermaid")->check(CLI::IsMember({"ir", "dot", "mermaid"}));
  auto* afterOpt = dumpCmd->add_option("--after", dump.after, "print the IR after this pass ('frontend': before any pass)");
  auto* afterAllOpt = dumpCmd->add_flag("--after-all", dump.afterAll, "print the IR after every pass");
  afterOpt->excludes(afterAllOpt);
  auto* memOpt = dumpCmd->add_flag("--memory", dump.memory, "print the memory plan as JSON");
  auto* cudaOpt = dumpCmd->add_flag("--cuda", dump.cuda, "print the generated CUDA C++");
  memOpt->excludes(cudaOpt);
  memOpt->excludes(afterAllOpt);
  cudaOpt->excludes(afterAllOpt);
  // --precision and --arch pick the GPU module --cuda prints and --memory counts (its scratch
  // and prepared parameters); without either they mean nothing, and are refused.
  auto* dumpPrecision =
      addPrecision(dumpCmd, dump.precision,
                   "with --cuda or --memory: the source (the GPU's memory) for this precision (as run --precision)");
  auto* dumpArch = dumpCmd->add_option("--arch", dump.arch,
                                       "with --cuda or --memory: for a device of this architecture (sm_90: wgmma)");

  dumpCmd->add_option("-o,--output", dump.out, "write to this file instead of stdout");

  std::string arch = "sm_90";
  bool verbose = false;
  auto* compileCmd = app.add_subcommand("compile", "NVRTC-compile every generated kernel (needs no GPU)");
  addCommon(compileCmd, true);
  compileCmd->add_option("--arch", arch, "target architecture, e.g. sm_90 or sm_80");
  compileCmd->add_flag("--verbose", verbose, "report cache hits, misses and compile times");
  std::string compilePrecision = "fp32";
  addPrecision(compileCmd, compilePrecision, "compile the kernels run --precision uses (default fp32)");

  RunOptions run;
  auto* runCmd = app.add_subcommand("run", "run a pipeline: train it, evaluate it, or run inference");
  addCommon(runCmd, false);
  runCmd->add_option("--device", run.device, "auto | cpu | gpu (cuda is gpu too; default auto: the GPU when usable)");
  runCmd->add_option("--epochs", run.epochs, "override the train stage's epochs (0: train nothing, evaluate)")
      ->check(CLI::Validator(
          [](std::string& v) {
            int64_t n = 0;
            auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (ec != std::errc() || end != v.data() + v.size() || n < 0)
              return fmt::format("must be a whole number, 0 or more, got '{}'", v);
            return std::string();
          },
          "N>=0", "NonNegativeInteger"));
  runCmd->add_flag("--evaluate", run.evaluate,
                   "score the model on the test set without training (weights from --weights, the input's weights= "
                   "or the output's checkpoint=)");
  runCmd->add_option("--seed", run.seed, "seed for initialisation and shuffling");
  runCmd->add_option("--batch", run.batch, "override the train stage's batch size (with --gpus, the global batch)")
      ->check(CLI::PositiveNumber);
  auto* gpusOpt = runCmd->add_option("--gpus", run.gpus,
                                     "train data-parallel on N GPUs: one process per GPU, gradients averaged with NCCL "
                                     "(the batch is split between them)")
                      ->check(CLI::PositiveNumber);
  runCmd->add_option("--bucket-mb", run.bucketMb,
                     "data-parallel training: all-reduce the gradients in buckets of about this many MiB, each as "
                     "soon as its gradients are computed, overlapping the rest of the backward pass (default 1; a "
                     "size above the model's gradients makes one bucket after the backward pass)")
      ->check(CLI::PositiveNumber);
  runCmd->add_option("--nproc", run.nproc, "train data-parallel in N CPU processes (with --device cpu)")
      ->check(CLI::PositiveNumber)
      ->excludes(gpusOpt);
  runCmd->add_option("--report", run.report, "write a JSON report here");
  runCmd->add_option("--weights", run.weights, "load parameters (and optimizer state, to resume) from this safetensors file first");
  runCmd->add_flag("--verbose", run.verbose,
                   "report kernel-cache hits, misses and compile times, every checkpoint tensor the model ignores, "
                   "and where the wall time went (CUDA start-up, data loading, compiling, training, evaluation)");
  runCmd->add_flag("--tf32", run.tf32, "allow TF32 tensor-core GEMMs on the GPU (default: exact fp32)");
  addPrecision(
      runCmd, run.precision,
      "the GPU's matrix products (convolutions on tensor cores, GEMMs): fp32 (the default: fp32 arithmetic, no "
      "TF32; large 3x3 stride-1 convolutions in Winograd's form unless SHOAL_CUDA_WINOGRAD=0), tf32, "
      "bf16 or fp16 operands with fp32 accumulation; tensors and weights stay fp32");
  runCmd->add_flag("--autotune", run.autotune,
                   "on a GPU: time each implicit-GEMM convolution's tile and reduction "
                   "slices on the device (the first run for a model and device: a few variants compiled and timed), "
                   "keeping the choice in the kernel cache for later runs");
  addThreads(runCmd, run.threads);
  runCmd->add_flag("--profile", run.profile, "print the time spent in each op (of the training step when training)");
  auto* checkFlag = runCmd->add_flag("--check", run.check,
                                     "differential check: run on the device and compare every node's output with the "
                                     "float64 interpreter on the same operands; exit 1 at the first node that diverges");
  runCmd->add_option("--check-steps", run.checkSteps, "training steps (or batches) --check compares (default 3)")
      ->check(CLI::PositiveNumber)
      ->needs(checkFlag);
  runCmd->add_option("--check-rtol", run.checkTolerance.rtol, "relative tolerance of --check (default 1e-4)")
      ->check(CLI::NonNegativeNumber)
      ->needs(checkFlag);
  runCmd->add_option("--check-atol", run.checkTolerance.atol,
                     "absolute tolerance of --check (default 1e-5); see README for the rule")
      ->check(CLI::NonNegativeNumber)
      ->needs(checkFlag);
  runCmd->add_option("--input", run.inputs,
                     "NAME=FILE (or FILE, for the next input): a tensor input's value, an ONNX TensorProto (.pb) or "
                     "a NumPy array (.npy); repeatable");
  runCmd->add_option("--repeat", run.repeat, "ONNX models: time N more runs after the first (median in the report)")
      ->check(CLI::NonNegativeNumber);

  ConformanceOptions conf;
  auto* confCmd = app.add_subcommand(
      "conformance", "run ONNX backend test cases (model.onnx + test_data_set_*): PASS, FAIL or SKIP each");
  confCmd->add_option("DIR", conf.dirs, "test-case folders, or folders of them (e.g. .../onnx/backend/test/data/node)")
      ->required();
  confCmd->add_option("--device", conf.device, "cpu | cuda (default cpu)");
  confCmd->add_option("--report", conf.report, "write every case's result as JSON here");
  confCmd->add_option("--rtol", conf.rtol, "relative tolerance (default 1e-3, as ONNX's runner)");
  confCmd->add_option("--atol", conf.atol, "absolute tolerance (default 1e-7, as ONNX's runner)");
  confCmd->add_option("--timeout", conf.timeoutSeconds, "seconds per case (default 300)")->check(CLI::PositiveNumber);
  bool noIsolate = false;
  confCmd->add_flag("--no-isolate", noIsolate, "run the cases in this process (a crash then ends the run)");
  confCmd->add_option("--jobs,-j", conf.jobs, "cases at once, each in its own process (default 1; results in case order)")
      ->check(CLI::PositiveNumber);
  confCmd->add_flag("--verbose", conf.verbose, "print whole messages for failures and skips");
  addThreads(confCmd, conf.threads);
  confCmd->add_option("--expect", conf.expect,
                      "expectation file (PASS <case> / FAIL <case> <reason> lines; other cases must skip): exit 0 only "
                      "when every case does what it says");
  confCmd->add_option("--write-expect", conf.writeExpect, "write this run's results as an expectation file");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kOk : kUserError;
  }
  try {
    if (check->parsed()) return runCheck(common);
    if (dumpCmd->parsed()) {
      for (const CLI::Option* o : {dumpPrecision, dumpArch})
        if (o->count() > 0 && !dump.cuda && !dump.memory) {
          std::cerr << "error: dump " << o->get_name() << " goes with --cuda or --memory\n";
          return kUserError;
        }
      return runDump(common, dump);
    }
    if (compileCmd->parsed()) return runCompile(common, arch, verbose, compilePrecision);
    if (runCmd->parsed()) {
      run.args.assign(argv + 1, argv + argc);
      // Everything is written by now; a GPU run ends without the CUDA teardown.
      return exitSkippingCudaTeardown(runRun(common, run));
    }
    if (confCmd->parsed()) {
      if (conf.device == "gpu") conf.device = "cuda";
      conf.isolate = !noIsolate;
      if (!conf.isolate && conf.jobs > 1) {
        std::cerr << "error: --jobs runs cases in processes of their own; it cannot go with --no-isolate\n";
        return kUserError;
      }
      if (conf.jobs > 1 && conf.threads == 0) conf.threads = 1;  // the cases share the cores
      return runConformance(conf);
    }
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of memory\n";
    return kUserError;
  }
  return kUserError;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) { return shoal::main(argc, argv); }
