// The pass manager and the pass pipelines.
#include <fmt/format.h>

#include <cstdlib>

#include "ir/printer.h"
#include "ir/verifier.h"
#include "passes/pass.h"
#include "passes/program.h"

namespace shoal {

bool verifyEachDefault() {
  const char* env = std::getenv("SHOAL_VERIFY_EACH");
  if (env) return std::string_view(env) != "0";
#ifdef NDEBUG
  return false;
#else
  return true;
#endif
}

std::vector<std::string> PassManager::passNames() const {
  std::vector<std::string> out;
  for (auto& p : passes_) out.emplace_back(p->name());
  return out;
}

Expected<void> PassManager::run(Graph& g, PassContext& ctx) {
  for (const std::string& name : disabled_) {
    bool known = false;
    for (auto& p : passes_) known |= p->name() == name;
    if (!known) return fail(fmt::format("unknown pass '{}' (passes: {})", name, fmt::join(passNames(), ", ")));
  }
  if (!stopAfter_.empty()) {
    bool known = false;
    for (auto& p : passes_) known |= p->name() == stopAfter_;
    if (!known) return fail(fmt::format("unknown pass '{}' (passes: {})", stopAfter_, fmt::join(passNames(), ", ")));
  }
  for (auto& pass : passes_) {
    if (disabled_.count(std::string(pass->name()))) continue;
    std::string before = checkUnchanged_ ? printGraph(g) : std::string();
    auto changed = pass->run(g, ctx);
    if (!changed) return std::unexpected(changed.error());
    if (checkUnchanged_ && !*changed && printGraph(g) != before)
      return fail(fmt::format("internal error: pass '{}' said it left the graph unchanged, but the IR differs", pass->name()));
    if (verifyEach_) {
      auto ok = verifyGraph(g);
      if (!ok)
        return fail(fmt::format("IR invalid after pass '{}': {}", pass->name(), ok.error().str()), ok.error().location());
    }
    if (observer_) observer_(pass->name(), *changed, g);
    if (pass->name() == stopAfter_) break;
  }
  return {};
}

std::vector<std::string> knownPassNames() {
  TrainConfig train;
  CompileOptions opts;
  opts.train = &train;
  PassManager pm;
  buildPipeline(pm, opts);
  return pm.passNames();
}

}  // namespace shoal
