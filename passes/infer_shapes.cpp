// infer-shapes: sets every result type from the op table's shape rules.
#include "ir/shape_inference.h"
#include "ir/verifier.h"
#include "passes/pass.h"

namespace shoal {

namespace {

class InferShapesPass : public Pass {
 public:
  std::string_view name() const override { return "infer-shapes"; }
  std::string_view summary() const override { return "compute every result type from the op shape rules"; }
  Expected<bool> run(Graph& g, PassContext& ctx) override {
    bool changed = false;
    for (Node* n : g.nodes()) {
      DiagnosticEngine local;
      if (!verifyNodeStructure(*n, local)) return Unexpected(local.firstError());
      for (size_t i = 0; i < n->numInputs(); ++i)
        if (!n->input(i)->def() || g.indexOf(n->input(i)->def()) >= g.indexOf(n))
          return fail(n->describe() + ": operand %" + n->input(i)->name() + " is used before it is defined", n->loc());
      auto types = inferResultTypes(*n);
      if (!types) return Unexpected(types.error());
      for (size_t r = 0; r < n->numResults(); ++r) {
        if (n->result(r)->type() != (*types)[r]) {
          n->result(r)->setType((*types)[r]);
          changed = true;
        }
      }
    }
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> createInferShapesPass() { return std::make_unique<InferShapesPass>(); }

}  // namespace shoal
