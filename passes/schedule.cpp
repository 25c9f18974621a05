// schedule: a topological execution order with in-place updates after every other reader.
#include <unordered_map>

#include "passes/pass.h"

namespace shoal {

namespace {

class SchedulePass : public Pass {
 public:
  std::string_view name() const override { return "schedule"; }
  std::string_view summary() const override { return "topological order; in-place updates after every reader"; }
  Expected<bool> run(Graph& g, PassContext&) override {
    // Stable: keep program order, but move in-place updates to the end (their operands are
    // read by forward and backward ops), in their original relative order.
    std::vector<Node*> order, updates;
    for (Node* n : g.nodes()) (mutatedOperands(n->kind()).empty() ? order : updates).push_back(n);
    order.insert(order.end(), updates.begin(), updates.end());
    // Kahn's algorithm, stable with respect to that order, catches any use-before-def.
    std::unordered_map<const Node*, size_t> pos;
    for (size_t i = 0; i < order.size(); ++i) pos[order[i]] = i;
    std::unordered_map<const Node*, int> pending;
    std::unordered_map<const Node*, std::vector<Node*>> consumers;
    for (Node* n : order) {
      pending[n] = 0;
      for (Value* in : n->inputs()) {
        if (!in || !in->def()) continue;
        ++pending[n];
        consumers[in->def()].push_back(n);
      }
    }
    std::vector<Node*> result;
    std::vector<bool> done(order.size(), false);
    // Simple O(n^2) stable selection: graphs here have hundreds of nodes, not millions.
    while (result.size() < order.size()) {
      bool progressed = false;
      for (size_t i = 0; i < order.size(); ++i) {
        if (done[i] || pending[order[i]] != 0) continue;
        done[i] = true;
        result.push_back(order[i]);
        for (Node* c : consumers[order[i]]) --pending[c];
        progressed = true;
        break;
      }
      if (!progressed) {
        for (size_t i = 0; i < order.size(); ++i)
          if (!done[i]) return fail(order[i]->describe() + ": part of a cycle", order[i]->loc());
      }
    }
    bool changed = result != g.nodes();
    if (changed) g.setOrder(std::move(result));
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> createSchedulePass() { return std::make_unique<SchedulePass>(); }

}  // namespace shoal
