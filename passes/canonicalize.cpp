// canonicalize: default attributes filled in; identity ops removed.
#include "passes/pass.h"

namespace shoal {

namespace {

// True when the node computes its (single) operand unchanged.
bool isIdentity(const Node& n) {
  if (n.numResults() != 1 || n.numInputs() != 1) return false;
  const TensorType& in = n.input(0)->type();
  const TensorType& out = n.result()->type();
  if (in != out) return false;
  if (n.kind() == OpKind::Cast || n.kind() == OpKind::Reshape || n.kind() == OpKind::Flatten) return true;
  if (n.kind() == OpKind::Scale)
    return n.attrs().getFloat("scale") == 1.0 && n.attrs().getFloat("shift", 0.0) == 0.0;
  return false;
}

class CanonicalizePass : public Pass {
 public:
  std::string_view name() const override { return "canonicalize"; }
  std::string_view summary() const override { return "fill default attributes, remove identity ops"; }
  Expected<bool> run(Graph& g, PassContext&) override {
    bool changed = false;
    for (Node* n : g.nodes()) {
      Attrs before = n->attrs();
      fillDefaultAttrs(*n);
      changed |= !(before == n->attrs());
    }
    std::vector<Node*> dead;
    for (Node* n : g.nodes()) {
      if (!isIdentity(*n)) continue;
      g.replaceAllUsesWith(n->result(), n->input(0));
      dead.push_back(n);
    }
    for (Node* n : dead) g.eraseNode(n);
    return changed || !dead.empty();
  }
};

}  // namespace

std::unique_ptr<Pass> createCanonicalizePass() { return std::make_unique<CanonicalizePass>(); }

}  // namespace shoal
