// The IR verifier.
#include "ir/verifier.h"

#include <fmt/format.h>

#include <set>
#include <unordered_map>

#include "ir/shape_inference.h"

namespace shoal {

namespace {

bool kindAccepts(AttrKind want, AttrKind got) {
  if (want == got) return true;
  if (want == AttrKind::Float && got == AttrKind::Int) return true;
  if (want == AttrKind::Floats && got == AttrKind::Ints) return true;
  return false;
}

}  // namespace

bool verifyNodeStructure(const Node& n, DiagnosticEngine& diags) {
  const OpInfo& info = n.info();
  bool ok = true;
  auto err = [&](const std::string& msg) {
    diags.error(n.loc(), n.describe() + ": " + msg);
    ok = false;
  };
  int nin = int(n.numInputs());
  if (nin < info.minInputs || nin > info.maxInputs) {
    if (info.minInputs == info.maxInputs)
      err(fmt::format("takes {} operand{}, got {}", info.minInputs, info.minInputs == 1 ? "" : "s", nin));
    else
      err(fmt::format("takes {} to {} operands, got {}", info.minInputs, info.maxInputs, nin));
  }
  if (int(n.numResults()) != info.numResults) err(fmt::format("has {} results, expected {}", n.numResults(), info.numResults));
  for (size_t i = 0; i < n.numInputs(); ++i)
    if (!n.input(i)) err(fmt::format("operand {} is missing", i));
  for (const auto& [key, value] : n.attrs().entries()) {
    const AttrSpec* spec = info.findAttr(key);
    if (!spec) {
      err(fmt::format("unknown attribute '{}'", key));
      continue;
    }
    if (!kindAccepts(spec->kind, attrKindOf(value)))
      err(fmt::format("attribute '{}' must be {}, got {} {}", key, attrKindName(spec->kind), attrKindName(attrKindOf(value)),
                      attrValueString(value)));
  }
  for (const AttrSpec& spec : info.attrs)
    if (!n.attrs().has(spec.name) && !spec.defaultValue) err(fmt::format("missing required attribute '{}'", spec.name));
  return ok;
}

bool verifyGraph(const Graph& g, DiagnosticEngine& diags) {
  int before = diags.errorCount();
  std::unordered_map<const Value*, size_t> defIndex;
  std::set<std::string> inputNames, outputNames;
  // Value -> index of the node that mutates it, to check no reader comes later.
  std::unordered_map<const Value*, size_t> mutatedAt;
  const auto& nodes = g.nodes();
  for (size_t idx = 0; idx < nodes.size(); ++idx) {
    const Node& n = *nodes[idx];
    bool structural = verifyNodeStructure(n, diags);
    bool operandsOk = true;
    for (size_t i = 0; i < n.numInputs(); ++i) {
      const Value* v = n.input(i);
      if (!v) {
        operandsOk = false;
        continue;
      }
      if (!defIndex.count(v)) {
        diags.error(n.loc(), fmt::format("{}: operand %{} is used before it is defined (a cycle, or out of order)",
                                         n.describe(), v->name()));
        operandsOk = false;
      }
      auto m = mutatedAt.find(v);
      if (m != mutatedAt.end())
        diags.error(n.loc(), fmt::format("{}: reads %{} after {} updated it in place", n.describe(), v->name(),
                                         nodes[m->second]->describe()));
    }
    for (int op : mutatedOperands(n.kind())) {
      if (size_t(op) >= n.numInputs() || !n.input(size_t(op))) continue;
      const Value* v = n.input(size_t(op));
      if (!v->def() || !isPersistentSource(v->def()->kind()))
        diags.error(n.loc(), fmt::format("{}: updates %{} in place, which is not a param or state", n.describe(), v->name()));
      if (mutatedAt.count(v))
        diags.error(n.loc(), fmt::format("{}: %{} is updated in place twice", n.describe(), v->name()));
      mutatedAt[v] = idx;
    }
    // A name of another kind (name=967) is the schema check's error; only strings collide.
    const AttrValue* name = n.attrs().find("name");
    const std::string* nameText = name ? std::get_if<std::string>(name) : nullptr;
    if (n.kind() == OpKind::Input && nameText && !inputNames.insert(*nameText).second)
      diags.error(n.loc(), fmt::format("{}: duplicate input name '{}'", n.describe(), *nameText));
    if (n.kind() == OpKind::Output && nameText && !outputNames.insert(*nameText).second)
      diags.error(n.loc(), fmt::format("{}: duplicate output name '{}'", n.describe(), *nameText));
    if (structural && operandsOk) {
      auto types = inferResultTypes(n);
      if (!types) {
        diags.report(types.error());
      } else {
        for (size_t r = 0; r < n.numResults() && r < types->size(); ++r)
          if (n.result(r)->type() != (*types)[r])
            diags.error(n.loc(), fmt::format("{}: result %{} has type {}, but its operands give {}", n.describe(),
                                             n.result(r)->name(), n.result(r)->type().str(), (*types)[r].str()));
      }
    }
    for (size_t r = 0; r < n.numResults(); ++r) defIndex[n.result(r)] = idx;
  }
  return diags.errorCount() == before;
}

Expected<void> verifyGraph(const Graph& g) {
  DiagnosticEngine diags;
  if (verifyGraph(g, diags)) return {};
  return Unexpected(diags.firstError());
}

}  // namespace shoal
