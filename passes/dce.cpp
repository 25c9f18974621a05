// dce: removes nodes whose results nobody uses.
#include <unordered_set>

#include "passes/pass.h"

namespace shoal {

namespace {

// Outputs and in-place updates are kept whatever uses them; inputs, params and state too,
// since they are part of the graph's interface (fed by callers, saved in checkpoints); and
// collectives, which every rank must run alike.
bool isRoot(const Node& n) {
  return n.numResults() == 0 || n.kind() == OpKind::Input || isPersistentSource(n.kind()) ||
         n.info().traits.isCollective;
}

class DeadCodeEliminationPass : public Pass {
 public:
  std::string_view name() const override { return "dce"; }
  std::string_view summary() const override { return "remove nodes whose results are unused"; }
  Expected<bool> run(Graph& g, PassContext&) override {
    std::unordered_set<const Node*> live;
    const auto& nodes = g.nodes();
    for (size_t i = nodes.size(); i-- > 0;) {
      Node* n = nodes[i];
      if (!isRoot(*n) && !live.count(n)) continue;
      live.insert(n);
      for (Value* in : n->inputs())
        if (in && in->def()) live.insert(in->def());
    }
    std::vector<Node*> dead;
    for (size_t i = nodes.size(); i-- > 0;)
      if (!live.count(nodes[i])) dead.push_back(nodes[i]);
    for (Node* n : dead) g.eraseNode(n);
    return !dead.empty();
  }
};

}  // namespace

std::unique_ptr<Pass> createDeadCodeEliminationPass() { return std::make_unique<DeadCodeEliminationPass>(); }

}  // namespace shoal
