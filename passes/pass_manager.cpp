// The pass manager and the pass pipelines.
#include <fmt/format.h>

#include <algorithm>
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
  // Names are checked against the registry, not this pipeline: `--disable-pass autodiff` is
  // valid for an inference pipeline too (it has nothing to disable there).
  auto known = [&](const std::string& name) {
    if (isKnownPassSelector(name)) return true;
    for (auto& p : passes_)  // a test's own pass
      if (selects(name, p->name())) return true;
    return false;
  };
  for (const std::string& name : disabled_)
    if (!known(name)) return fail(unknownPassMessage(name));
  if (!stopAfter_.empty() && !known(stopAfter_)) return fail(unknownPassMessage(stopAfter_));
  if (!stopAfter_.empty() && std::none_of(passes_.begin(), passes_.end(), [&](auto& p) { return selects(stopAfter_, p->name()); })) {
    std::string why = "autodiff runs only when training: --train";
    for (const PassRegistration& r : passRegistry())
      if (r.name == stopAfter_ && r.trainingOnly) why = fmt::format("{} runs only when training: --train", r.name);
      else if (r.name == stopAfter_ && r.inferenceOnly) why = fmt::format("{} runs only without --train", r.name);
    return fail(fmt::format("pass '{}' is not part of this pipeline ({})", stopAfter_, why));
  }
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


}  // namespace shoal
