// Harness bodies: each feeds one input to one reader and checks a property of the result.
#include "fuzz_targets.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <unistd.h>

#include "codegen/kernel_cache.h"
#include "frontend/onnx/onnx_import.h"
#include "frontend/pipeline_loader.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "passes/program.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/data/idx.h"
#include "runtime/differential.h"

namespace shoal::fuzz {

namespace {

// Runs a small program on the CPU interpreter and, node by node, on its float64 twin (the
// differential check), with deterministic inputs: a kernel that crashes, overruns or hangs on
// a graph the verifier accepted is a bug. Errors (a label out of range) and divergences (an
// f32 overflow the f64 twin does not have) are fine. Programs over 16 MB or about 2·10^7
// multiply-adds are skipped, to keep the harness fast.
void runIfSmall(const Graph& g, const TrainConfig* train) {
  CompileOptions opts;
  opts.memoryLimit = int64_t(16) << 20;
  opts.planner = PlannerOptions{.inPlace = false, .reuse = false};
  opts.train = train;
  auto program = compileProgram(g.clone(), opts);
  if (!program) return;
  double work = 0;
  for (Node* n : program->graph->nodes())
    for (size_t r = 0; r < n->numResults(); ++r)
      work += double(n->result(r)->type().numElements()) * double(std::max<int64_t>(termsPerElement(*n), 1));
  if (work > 2e7) return;
  auto exe = CpuExecutable::create(std::move(*program));
  if (!exe) return;
  (*exe)->initializeParameters(0);
  TensorMap feed;
  for (Node* in : (*exe)->graph().inputNodes()) {
    Tensor t(in->result()->type());
    for (int64_t i = 0; i < t.numElements(); ++i) t.set(i, isFloat(t.dtype()) ? double(i % 7) - 3.0 : double(i % 2));
    if (in->attrs().getString("name") == "step") t.set(0, 1);
    feed[in->attrs().getString("name")] = t;
  }
  auto checker = DifferentialChecker::create(**exe);
  if (!checker) return;
  (void)(*checker)->runAndCheck(feed, 1);
}

}  // namespace

std::string mermaidPipeline(std::string_view input) {
  DiagnosticEngine diags;
  auto p = loadPipelineText(input, "fuzz.mmd", diags);
  diags.render();  // rendering quotes source lines with carets: exercise it too
  if (!p || diags.hasErrors()) return "";
  // What `shoal check` does after loading: compile, training step included.
  CompileOptions opts;
  opts.memoryLimit = int64_t(1) << 30;
  opts.verifyEach = true;
  if (p->train) opts.train = &*p->train;
  auto program = compileProgram(p->model->clone(), opts);
  if (!program) return "";
  std::string unsound = checkMemoryPlan(*program->graph, program->plan);
  if (!unsound.empty()) return "the memory plan of a checked pipeline is unsound: " + unsound;
  runIfSmall(*p->model, opts.train);
  return "";
}

std::string onnxModel(std::string_view input) {
  if (!onnxAvailable()) return "";
  // The importer reads files (external data sits beside the model): one file per process.
  static const std::string path = "/tmp/shoal-fuzz-onnx-" + std::to_string(::getpid()) + ".onnx";
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(input.data(), std::streamsize(input.size()));
    if (!f) return "";
  }
  (void)readOnnxModelInfo(path);
  (void)readOnnxTensorFile(path);  // the same bytes as a TensorProto
  OnnxImportOptions opts;
  opts.defaultDim = 2;
  auto p = importOnnxFile(path, opts);
  if (!p) {
    if (p.error().error.message().empty()) return "an import failed without saying why";
    return "";
  }
  // What `shoal check model.onnx` does next: compile; then run it if small.
  CompileOptions copts;
  copts.memoryLimit = int64_t(1) << 30;
  copts.verifyEach = true;
  auto program = compileProgram(p->model->clone(), copts);
  if (!program) return "";
  std::string unsound = checkMemoryPlan(*program->graph, program->plan);
  if (!unsound.empty()) return "the memory plan of an imported model is unsound: " + unsound;
  runIfSmall(*p->model, nullptr);
  return "";
}

std::string irText(std::string_view input) {
  DiagnosticEngine diags;
  auto g = parseGraph(input, "fuzz.ir", diags);
  diags.render();
  if (!g || diags.hasErrors()) return "";
  if (!verifyGraph(*g, diags)) return "";
  std::string printed = printGraph(*g);
  DiagnosticEngine again;
  auto reparsed = parseGraph(printed, "printed.ir", again);
  if (!reparsed || again.hasErrors()) return "a verified graph's printed IR does not parse back:\n" + again.render() + printed;
  std::string reprinted = printGraph(*reparsed);
  if (reprinted != printed) return "print(parse(print(g))) differs from print(g):\n" + printed + "----\n" + reprinted;
  runIfSmall(*g, nullptr);
  return "";
}

std::string safetensors(std::string_view input) {
  auto file = decodeSafetensors(input, "fuzz");
  if (!file) return "";
  auto bytes = encodeSafetensors(file->tensors, file->metadata);
  if (!bytes) return "";  // e.g. a name the writer refuses (empty); decoding accepted it
  auto again = decodeSafetensors(*bytes, "encoded");
  if (!again) return "a decoded file does not decode after encoding: " + again.error().message();
  if (again->metadata != file->metadata) return "metadata changed in a round trip";
  if (again->tensors.size() != file->tensors.size()) return "tensor count changed in a round trip";
  for (size_t i = 0; i < file->tensors.size(); ++i) {
    const auto& [name, t] = file->tensors[i];
    const auto& [name2, t2] = again->tensors[i];
    if (name != name2 || t.type() != t2.type() || std::memcmp(t.raw(), t2.raw(), t.byteSize()) != 0)
      return "tensor '" + name + "' changed in a round trip";
  }
  return "";
}

std::string idx(std::string_view input) {
  auto t = parseIdx(input, "fuzz");
  if (!t) return "";
  if (!t->defined()) return "a parsed IDX tensor holds no data";
  return "";
}

std::string kernelCacheEntry(std::string_view input) {
  auto payload = decodeCacheEntry(input);
  if (!payload) return "";
  if (encodeCacheEntry(*payload) != input) return "a decoded entry does not encode to the same bytes";
  return "";
}

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {
      {"mermaid", mermaidPipeline}, {"ir", irText}, {"safetensors", safetensors}, {"idx", idx},
      {"kernel_cache", kernelCacheEntry},
      {"onnx", onnxModel},
  };
  return all;
}

}  // namespace shoal::fuzz
