// training-forms: evaluation-form ops become their training forms (the registry, the step
// input, the pass).
#include "passes/training_forms.h"

#include <fmt/format.h>

#include <array>

#include "ir/shape_inference.h"

namespace shoal {

namespace {

std::array<TrainingFormRule, kNumOps>& trainingFormRegistry() {
  static std::array<TrainingFormRule, kNumOps> rules{};
  return rules;
}

// The value `n` computes, typed by its shape rule; on an error the node is removed again.
Expected<void> typeNode(Graph& g, Node* n) {
  fillDefaultAttrs(*n);
  auto types = inferResultTypes(*n);
  if (!types) {
    g.eraseNode(n);
    return Unexpected(types.error());
  }
  for (size_t i = 0; i < n->numResults(); ++i) n->result(i)->setType((*types)[i]);
  return {};
}

class TrainingFormsPass : public Pass {
 public:
  std::string_view name() const override { return "training-forms"; }
  std::string_view summary() const override {
    return "evaluation-form ops become their training forms (batch statistics, dropout masks)";
  }
  Expected<bool> run(Graph& g, PassContext& ctx) override {
    if (!ctx.train) return false;
    bool changed = false;
    std::vector<Node*> nodes = g.nodes();  // the rules insert nodes
    for (Node* n : nodes) {
      TrainingFormRule rule = findTrainingFormRule(n->kind());
      if (!rule) continue;
      TrainingFormArgs args(g, *n, *ctx.train);
      auto replacement = rule(args);
      if (!replacement) return Unexpected(replacement.error());
      std::string name = n->result()->name();
      g.replaceAllUsesWith(n->result(), *replacement);
      g.eraseNode(n);
      g.renameValue(*replacement, name);
      changed = true;
    }
    return changed;
  }
};

}  // namespace

TrainingFormRule findTrainingFormRule(OpKind kind) { return trainingFormRegistry()[size_t(kind)]; }

TrainingFormRegistration::TrainingFormRegistration(OpKind kind, TrainingFormRule rule) {
  trainingFormRegistry()[size_t(kind)] = rule;
}

Expected<Value*> TrainingFormArgs::emit(OpKind kind, std::vector<Value*> inputs, Attrs attrs,
                                        const std::string& suffix) const {
  Node* n = graph.insertNodeBefore(&node, kind, std::move(inputs), std::move(attrs),
                                   {{node.result()->name() + suffix, TensorType{}}}, node.loc());
  if (auto ok = typeNode(graph, n); !ok) return Unexpected(ok.error());
  return n->result();
}

Expected<void> TrainingFormArgs::emitSink(OpKind kind, std::vector<Value*> inputs, Attrs attrs) const {
  Node* n = graph.insertNodeBefore(&node, kind, std::move(inputs), std::move(attrs), {}, node.loc());
  return typeNode(graph, n);
}

Expected<Value*> TrainingFormArgs::step() const {
  const TensorType type{DType::F32, {}};
  Node* lastInput = nullptr;
  for (Node* in : graph.inputNodes()) {
    if (in->attrs().getString("name", "") == "step") {
      if (in->result()->type() != type)
        return fail(fmt::format("the model has an input named 'step' of type {}; a training step feeds the step count "
                                "there as {}",
                                in->result()->type().str(), type.str()),
                    in->loc());
      return in->result();
    }
    lastInput = in;
  }
  Attrs a;
  a.set("name", std::string("step"));
  size_t pos = lastInput ? graph.indexOf(lastInput) + 1 : 0;
  Node* n = pos < graph.size() ? graph.insertNodeBefore(graph.nodes()[pos], OpKind::Input, {}, std::move(a),
                                                        {{"step", type}}, train.loc)
                               : graph.addNode(OpKind::Input, {}, std::move(a), {{"step", type}}, train.loc);
  return n->result();
}

std::unique_ptr<Pass> createTrainingFormsPass() { return std::make_unique<TrainingFormsPass>(); }

}  // namespace shoal
