// frontend_bench: how long the Mermaid frontend takes on hostile or large inputs (what the unit
// tests check for correctness only): a 10 MB garbage line, a 10 MB label, and `check` (parse,
// lower, the pass pipeline, the memory plan) on chains of 1k..16k nodes, with the time ratio per doubling (about 2 for
// linear work, 4 for quadratic).
//   frontend_bench [--json PATH]
#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "frontend/mermaid.h"
#include "frontend/pipeline_loader.h"
#include "passes/program.h"

namespace {

using Clock = std::chrono::steady_clock;

// Median of five runs, in milliseconds.
double medianMs(const std::function<void()>& f) {
  std::vector<double> ms;
  for (int i = 0; i < 5; ++i) {
    auto t0 = Clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[2];
}

std::string chain(int nodes) {
  std::string text = "flowchart TD\n  x[input: shape=4x8] --> n0[relu]\n";
  for (int i = 1; i < nodes; ++i) text += fmt::format("  n{} --> n{}[relu]\n", i - 1, i);
  text += fmt::format("  n{} --> out[output]\n", nodes - 1);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace shoal;
  std::string jsonPath = argc == 3 && std::string(argv[1]) == "--json" ? argv[2] : "";
  nlohmann::ordered_json out;
  std::string garbage = "flowchart TD\n";
  while (garbage.size() < (size_t(10) << 20)) garbage += "#&--> [(|\"x.-=~<{}%%";
  double g = medianMs([&] {
    DiagnosticEngine d;
    (void)mermaid::parse(garbage, "g.mmd", d);
  });
  std::string label = "flowchart TD\n  a[" + std::string(size_t(10) << 20, 'x') + "] --> b\n";
  double l = medianMs([&] {
    DiagnosticEngine d;
    (void)mermaid::parse(label, "l.mmd", d);
  });
  fmt::print("10 MB garbage line: {:.1f} ms; 10 MB label: {:.1f} ms\n", g, l);
  out["garbage_10mb_ms"] = g;
  out["label_10mb_ms"] = l;
  double previous = 0;
  for (int n : {1000, 2000, 4000, 8000, 16000}) {
    std::string text = chain(n);
    double ms = medianMs([&] {
      DiagnosticEngine d;
      auto p = loadPipelineText(text, "chain.mmd", d);
      if (!p) return (void)fmt::print(stderr, "{}", d.render());
      auto program = compileProgram(std::move(p->model));  // what `shoal check` runs after loading
      if (!program) fmt::print(stderr, "{}\n", program.error().str());
    });
    fmt::print("check, chain of {:5} nodes: {:8.1f} ms{}\n", n, ms,
               previous > 0 ? fmt::format("  (x{:.2f} for twice the nodes)", ms / previous) : "");
    out["chain_ms"][std::to_string(n)] = ms;
    previous = ms;
  }
  if (!jsonPath.empty()) std::ofstream(jsonPath) << out.dump(1) << "\n";
  return 0;
}
