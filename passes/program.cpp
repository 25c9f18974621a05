// compileProgram: the pass pipeline, then the memory plan.
#include "passes/program.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>

#include "passes/autodiff.h"

namespace shoal {

void buildPipeline(PassManager& pm, const CompileOptions& opts) {
  for (const PassRegistration& r : passRegistry())
    if ((!r.trainingOnly || opts.train) && (!r.inferenceOnly || !opts.train)) pm.add(r.create());
}

bool updatesParameters(const Program& p) {
  for (const Node* n : p.graph->nodes())
    if (!mutatedOperands(n->kind()).empty()) return true;
  return false;
}

std::unordered_set<const Node*> parameterDerivedNodes(const Program& p) {
  std::unordered_set<const Node*> derived;
  if (!p.graph || updatesParameters(p)) return derived;
  // Program order is a topological order: operands are decided before their readers.
  for (const Node* n : p.graph->nodes()) {
    const OpTraits& t = n->info().traits;
    if (t.isSource || t.isCollective || t.numMutated > 0 || n->numInputs() == 0 || n->numResults() == 0) continue;
    const bool fromParameters = std::all_of(n->inputs().begin(), n->inputs().end(), [&](const Value* v) {
      const Node* def = v->def();
      return def && (isPersistentSource(def->kind()) || def->kind() == OpKind::Constant || derived.contains(def));
    });
    if (fromParameters) derived.insert(n);
  }
  return derived;
}

Expected<Program> compileProgram(std::unique_ptr<Graph> g, const CompileOptions& opts) {
  PassManager pm;
  buildPipeline(pm, opts);
  for (const std::string& name : opts.disabledPasses) pm.disable(name);
  if (!opts.stopAfter.empty()) pm.stopAfter(opts.stopAfter);
  pm.setVerifyEach(opts.verifyEach);
  pm.setCheckUnchanged(opts.checkUnchanged);
  if (opts.observer) pm.setObserver(opts.observer);
  PassContext ctx;
  ctx.diags = opts.diags;
  ctx.train = opts.train;
  ctx.ranks = opts.ranks;
  ctx.collectiveBucketBytes = opts.collectiveBucketBytes;
  auto ok = pm.run(*g, ctx);
  if (!ok) return Unexpected(ok.error());
  Program p;
  p.plan = planMemory(*g, opts.planner);
  if (opts.memoryLimit > 0) {
    auto ok = checkMemoryLimit(*g, p.plan, opts.memoryLimit);
    if (!ok) return Unexpected(ok.error());
  }
  p.graph = std::move(g);
  return p;
}

Expected<void> checkMemoryLimit(const Graph& g, const MemoryPlan& plan, int64_t limit) {
  int64_t total = plan.totalBytes();
  if (limit <= 0 || total <= limit) return {};
  auto mb = [](int64_t bytes) { return fmt::format("{:.1f} MB", double(bytes) / 1e6); };
  std::string where = "the graph outputs";
  if (plan.peakAt >= 0 && size_t(plan.peakAt) < g.size()) {
    const Node& n = *g.nodes()[size_t(plan.peakAt)];
    where = n.describe();
    if (std::string loc = n.loc().str(); !loc.empty()) where += " (" + loc + ")";
  }
  return fail(fmt::format("memory plan needs {} (arena {} bytes + persistent {}), over the limit of {} bytes; peak {} live at {}",
                          mb(total), plan.arenaBytes, plan.persistentBytes, limit, mb(plan.peakLiveBytes), where));
}

}  // namespace shoal

namespace shoal {

Expected<std::unique_ptr<Graph>> rebatchGraph(const Graph& g, int64_t batch) {
  auto copy = g.clone();
  int64_t oldBatch = -1;
  for (Node* n : copy->inputNodes())
    if (!n->result()->type().shape.empty()) {
      oldBatch = n->result()->type().shape[0];
      break;
    }
  // At the batch it was built for, the graph is itself: its inputs' leading extents need not
  // agree (a time-major sequence beside its initial state).
  if (batch == oldBatch) return copy;
  if (g.batchRebuilder()) return g.batchRebuilder()(batch);  // the frontend builds it anew
  for (Node* n : copy->inputNodes()) {
    TensorType t = n->result()->type();
    if (t.shape.empty()) continue;  // scalars (the step count) have no batch
    t.shape[0] = batch;
    n->result()->setType(t);
  }
  for (Node* n : copy->nodes())
    if (n->kind() == OpKind::Reshape) {
      auto shape = n->attrs().getInts("shape");
      if (!shape.empty() && shape[0] == oldBatch) {
        shape[0] = -1;  // a reshape keeps the batch; let its extent follow
        n->attrs().set("shape", shape);
      }
    }
  PassContext ctx;
  auto changed = createInferShapesPass()->run(*copy, ctx);
  if (!changed) return Unexpected(changed.error());
  return copy;
}

Program cloneProgram(const Program& p) {
  Program out;
  out.graph = p.graph->clone();
  out.plan = p.plan;
  out.plan.buffers.clear();
  out.plan.aliasOf.clear();
  // The clone's nodes are the original's in the same order: value i of node n is value i of
  // the clone's node n.
  std::unordered_map<const Value*, const Value*> to;
  const auto& from = p.graph->nodes();
  const auto& into = out.graph->nodes();
  for (size_t n = 0; n < from.size() && n < into.size(); ++n)
    for (size_t r = 0; r < from[n]->numResults() && r < into[n]->numResults(); ++r)
      to[from[n]->result(r)] = into[n]->result(r);
  for (const auto& [v, a] : p.plan.buffers) out.plan.buffers[to.at(v)] = a;
  for (const auto& [v, first] : p.plan.aliasOf) out.plan.aliasOf[to.at(v)] = to.at(first);
  return out;
}

}  // namespace shoal
