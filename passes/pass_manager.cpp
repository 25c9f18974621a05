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

namespace {
// A pass is selected by its name, or by a group name: "fuse" selects every "fuse-*" pass.
bool selects(std::string_view selector, std::string_view pass) {
  return pass == selector || (pass.size() > selector.size() && pass.substr(0, selector.size()) == selector &&
                              pass[selector.size()] == '-');
}
}  // namespace

Expected<void> PassManager::run(Graph& g, PassContext& ctx) {
  auto known = [&](const std::string& name) {
    for (auto& p : passes_)
      if (selects(name, p->name())) return true;
    return false;
  };
  for (const std::string& name : disabled_)
    if (!known(name)) return fail(fmt::format("unknown pass '{}' (passes: {})", name, fmt::join(passNames(), ", ")));
  if (!stopAfter_.empty() && !known(stopAfter_))
    return fail(fmt::format("unknown pass '{}' (passes: {})", stopAfter_, fmt::join(passNames(), ", ")));
  // Stop after the last pass the --after selector names.
  size_t last = passes_.size();
  for (size_t i = 0; i < passes_.size(); ++i)
    if (!stopAfter_.empty() && selects(stopAfter_, passes_[i]->name())) last = i;
  for (size_t i = 0; i < passes_.size(); ++i) {
    Pass& pass = *passes_[i];
    bool disabled = false;
    for (const std::string& name : disabled_) disabled |= selects(name, pass.name());
    if (!disabled) {
      std::string before = checkUnchanged_ ? printGraph(g) : std::string();
      auto changed = pass.run(g, ctx);
      if (!changed) return Unexpected(changed.error());
      if (checkUnchanged_ && !*changed && printGraph(g) != before)
        return fail(fmt::format("internal error: pass '{}' said it left the graph unchanged, but the IR differs", pass.name()));
      if (verifyEach_) {
        auto ok = verifyGraph(g);
        if (!ok)
          return fail(fmt::format("IR invalid after pass '{}': {}", pass.name(), ok.error().str()), ok.error().location());
      }
      if (observer_) observer_(pass.name(), *changed, g);
    }
    if (i == last) break;
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
