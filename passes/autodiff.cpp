// autodiff: loss, reverse-mode gradients (the registered rules of passes/gradients*.cpp) and
// optimizer updates.
#include "passes/autodiff.h"

#include <fmt/format.h>

#include <unordered_map>
#include <unordered_set>

#include "ir/shape_inference.h"
#include "passes/gradients.h"

namespace shoal {

namespace {

std::string gradName(const Value* v) { return v->name() + ".grad"; }

#define SHOAL_TRY_ASSIGN(var, expr)                                   \
  auto var##OrError_ = (expr);                                        \
  if (!var##OrError_) return Unexpected(var##OrError_.error()); \
  Value* var = *var##OrError_

#define SHOAL_TRY_VOID(expr)                                       \
  do {                                                             \
    auto shoalTryResult_ = (expr);                                 \
    if (!shoalTryResult_) return Unexpected(shoalTryResult_.error()); \
  } while (0)

// The backward pass of one loss: which values need gradients, then the gradient rules applied
// in reverse program order, accumulating the contributions of every use.
class GradientBuilder {
 public:
  explicit GradientBuilder(Graph& g) : g_(g), e_(g) {}

  Expected<std::vector<ParamGradient>> run(Value* loss) {
    const TensorType& lt = loss->type();
    if (lt.rank() != 0 || !isFloat(lt.dtype))
      return fail(fmt::format("the loss %{} must be a float scalar, got {}", loss->name(), lt.str()), loss->def()->loc());
    std::vector<Node*> forward(g_.nodes().begin(), g_.nodes().begin() + ptrdiff_t(g_.indexOf(loss->def())) + 1);
    SHOAL_TRY_VOID(findGradientPaths(forward, loss));

    Attrs one;
    one.set("value", TensorLiteral{{}, {1.0}});
    SHOAL_TRY_ASSIGN(seed, e_.emit(OpKind::Constant, {}, one, gradName(loss), loss->def()->loc(), lt.dtype));
    grads_[loss] = seed;

    for (auto it = forward.rbegin(); it != forward.rend(); ++it) {
      Node& n = **it;
      if (!findGradientRule(n.kind()) || n.numResults() != 1) continue;
      auto dy = grads_.find(n.result());
      if (dy == grads_.end()) continue;
      for (size_t i = 0; i < n.numInputs(); ++i) {
        if (!needsGrad_.count(n.input(i))) continue;
        auto contribution = operandGradient(n, i, dy->second);
        if (!contribution) return Unexpected(contribution.error());
        SHOAL_TRY_VOID(accumulate(n.input(i), *contribution, n.loc()));
      }
    }

    std::vector<ParamGradient> out;
    for (Node* n : forward)
      if (n->kind() == OpKind::Param && grads_.count(n->result())) out.push_back({n->result(), grads_[n->result()]});
    return out;
  }

 private:
  // needsGrad_: float values on a path from a param to the loss. A non-differentiable op on
  // such a path is an error, except the piecewise-constant ones (their gradient is zero).
  Expected<void> findGradientPaths(const std::vector<Node*>& forward, Value* loss) {
    std::unordered_set<const Value*> dependsOnParam, reachesLoss{loss};
    for (Node* n : forward) {
      bool fromParam = n->kind() == OpKind::Param;
      for (Value* v : n->inputs()) fromParam |= dependsOnParam.count(v) != 0;
      if (!fromParam) continue;
      for (size_t r = 0; r < n->numResults(); ++r)
        if (isFloat(n->result(r)->type().dtype)) dependsOnParam.insert(n->result(r));
    }
    for (auto it = forward.rbegin(); it != forward.rend(); ++it) {
      Node* n = *it;
      bool reaches = false;
      for (size_t r = 0; r < n->numResults(); ++r) reaches |= reachesLoss.count(n->result(r)) != 0;
      if (!reaches) continue;
      for (Value* v : n->inputs()) reachesLoss.insert(v);
      if (findGradientRule(n->kind()) || !isFloat(n->result()->type().dtype)) continue;
      if (n->info().traits.hasZeroGradient) continue;
      for (Value* v : n->inputs())
        if (dependsOnParam.count(v))
          return fail(fmt::format("{}: cannot differentiate the loss %{} through this op: it has no gradient rule",
                                  n->describe(), loss->name()),
                      n->loc());
    }
    for (const Value* v : dependsOnParam)
      if (reachesLoss.count(v)) needsGrad_.insert(v);
    return {};
  }

  // Adds `contribution` to the gradient of `v`; the running total keeps the name `%v.grad`.
  Expected<void> accumulate(Value* v, Value* contribution, const Location& loc) {
    auto it = grads_.find(v);
    if (it == grads_.end()) {
      grads_[v] = contribution;
      return {};
    }
    Value* old = it->second;
    std::string want = gradName(v);
    for (Value* part : {old, contribution})
      if (part->name() == want) g_.renameValue(part, want + ".partial");
    SHOAL_TRY_ASSIGN(sum, e_.emit(OpKind::Add, {old, contribution}, {}, want, loc));
    grads_[v] = sum;
    return {};
  }

  // The contribution of node `n` to the gradient of its operand `i`, given the gradient `dy`
  // of its result: the op's registered rule (passes/gradients*.cpp).
  Expected<Value*> operandGradient(Node& n, size_t i, Value* dy) {
    GradientRule rule = findGradientRule(n.kind());
    if (!rule) return fail(fmt::format("internal error: {} has no gradient rule", n.describe()), n.loc());
    GradientArgs args{n, i, dy, gradName(n.input(i)), e_};
    return rule(args);
  }

  Graph& g_;
  GradientEmitter e_;
  std::unordered_set<const Value*> needsGrad_;
  std::unordered_map<const Value*, Value*> grads_;
};

// Inserts a source node (no operands) right after `anchor`, or first when anchor is null.
Node* insertSourceAfter(Graph& g, Node* anchor, OpKind kind, Attrs attrs, ResultSpec result, const Location& loc) {
  size_t pos = anchor ? g.indexOf(anchor) + 1 : 0;
  if (pos >= g.size()) return g.addNode(kind, {}, std::move(attrs), {std::move(result)}, loc);
  return g.insertNodeBefore(g.nodes()[pos], kind, {}, std::move(attrs), {std::move(result)}, loc);
}

Node* lastNodeOfKind(const Graph& g, OpKind kind) {
  Node* last = nullptr;
  for (Node* n : g.nodes())
    if (n->kind() == kind) last = n;
  return last;
}

bool hasInputNamed(const Graph& g, const std::string& name) {
  for (Node* n : g.inputNodes())
    if (n->attrs().getString("name", "") == name) return true;
  return false;
}

// The `step` input an earlier training pass declared (training-forms, for dropout's masks):
// f32[], fed by the trainer with the step count. Null when there is none.
Value* declaredStep(const Graph& g) {
  for (Node* n : g.inputNodes())
    if (n->attrs().getString("name", "") == "step" && n->result()->type() == TensorType{DType::F32, {}})
      return n->result();
  return nullptr;
}

bool hasOutputNamed(const Graph& g, const std::string& name) {
  for (Node* n : g.outputNodes())
    if (n->attrs().getString("name", "") == name) return true;
  return false;
}

class AutodiffPass : public Pass {
 public:
  std::string_view name() const override { return "autodiff"; }
  std::string_view summary() const override {
    return "add the loss, reverse-mode gradients and optimizer updates (one training step)";
  }
  Expected<bool> run(Graph& g, PassContext& ctx) override {
    if (!ctx.train) return false;
    auto ok = appendTrainingStep(g, *ctx.train);
    if (!ok) return Unexpected(ok.error());
    return true;
  }
};

}  // namespace

Expected<std::vector<ParamGradient>> appendBackward(Graph& g, Value* loss) { return GradientBuilder(g).run(loss); }

Expected<void> appendGradients(Graph& g, const std::string& lossOutput) {
  Value* loss = g.outputValue(lossOutput);
  if (!loss) return fail(fmt::format("the graph has no output named '{}'", lossOutput));
  auto grads = appendBackward(g, loss);
  if (!grads) return Unexpected(grads.error());
  if (grads->empty()) return fail(fmt::format("no parameter influences the output '{}'", lossOutput), loss->def()->loc());
  for (const ParamGradient& pg : *grads)
    g.addNode(OpKind::Output, {pg.grad}, attrsOf({{"name", "grad:" + pg.param->name()}}), {}, pg.param->def()->loc());
  return {};
}

Expected<void> appendTrainingStep(Graph& g, const TrainConfig& cfg, const std::string& logitsOutput) {
  // Everything a user can get wrong is checked before the graph changes.
  Value* logits = g.outputValue(logitsOutput);
  if (!logits) return fail(fmt::format("the model has no output named '{}' to train", logitsOutput), cfg.loc);
  bool crossEntropy = cfg.loss == "softmax_cross_entropy";
  if (!crossEntropy && cfg.loss != "mse")
    return fail(fmt::format("unknown loss '{}' (expected softmax_cross_entropy or mse)", cfg.loss), cfg.loc);
  bool adam = cfg.optimizer == "adam";
  if (!adam && cfg.optimizer != "sgd")
    return fail(fmt::format("unknown optimizer '{}' (expected adam or sgd)", cfg.optimizer), cfg.loc);
  const TensorType& lt = logits->type();
  if (!isFloat(lt.dtype))
    return fail(fmt::format("cannot train on '{}': it is {}, not a float tensor", logitsOutput, lt.str()), logits->def()->loc());
  if (crossEntropy && lt.rank() != 2)
    return fail(fmt::format("softmax_cross_entropy needs logits of rank 2 ([batch, classes]), got {}", lt.str()),
                logits->def()->loc());
  if (!lastNodeOfKind(g, OpKind::Param)) return fail("the model has no parameters to train", cfg.loc);
  std::string targetName = crossEntropy ? "labels" : "targets";
  Value* step = declaredStep(g);
  for (const std::string& in : {targetName, std::string("step")}) {
    if (in == "step" && (!adam || step)) continue;
    if (hasInputNamed(g, in)) return fail(fmt::format("the model already has an input named '{}'", in), cfg.loc);
  }
  for (const char* out : {"loss", "accuracy"})
    if (hasOutputNamed(g, out)) return fail(fmt::format("the model already has an output named '{}'", out), cfg.loc);

  // New inputs, after the existing ones.
  Node* anchor = lastNodeOfKind(g, OpKind::Input);
  TensorType targetType = crossEntropy ? TensorType{DType::I64, {lt.shape[0]}} : lt;
  anchor = insertSourceAfter(g, anchor, OpKind::Input, attrsOf({{"name", targetName}}), {targetName, targetType}, cfg.loc);
  Value* target = anchor->result();
  if (adam && !step) {
    anchor = insertSourceAfter(g, anchor, OpKind::Input, attrsOf({{"name", std::string("step")}}),
                               {"step", TensorType{DType::F32, {}}}, cfg.loc);
    step = anchor->result();
  }

  // The loss (and accuracy) heads.
  GradientEmitter e(g);
  auto loss = e.emit(crossEntropy ? OpKind::SoftmaxCrossEntropy : OpKind::Mse, {logits, target}, {}, "loss", cfg.loc);
  if (!loss) return Unexpected(loss.error());
  g.addNode(OpKind::Output, {*loss}, attrsOf({{"name", std::string("loss")}}), {}, cfg.loc);
  if (crossEntropy) {
    auto acc = e.emit(OpKind::Accuracy, {logits, target}, {}, "accuracy", cfg.loc);
    if (!acc) return Unexpected(acc.error());
    g.addNode(OpKind::Output, {*acc}, attrsOf({{"name", std::string("accuracy")}}), {}, cfg.loc);
  }

  auto grads = appendBackward(g, *loss);
  if (!grads) return Unexpected(grads.error());
  if (grads->empty()) return fail("no parameter of the model influences the loss", cfg.loc);

  // Optimizer state, declared after the model's last param or state (so the model's own state,
  // batchnorm's running statistics, keeps its place in the persistent layout that evaluation
  // programs share); then the in-place updates, last.
  Node* stateAnchor = nullptr;
  for (Node* n : g.nodes())
    if (isPersistentSource(n->kind())) stateAnchor = n;
  for (const ParamGradient& pg : *grads) {
    Value* p = pg.param;
    const Location& loc = p->def()->loc();
    auto newState = [&](const std::string& suffix) {
      stateAnchor = insertSourceAfter(g, stateAnchor, OpKind::State, attrsOf({{"init", std::string("zeros")}}),
                                      {p->name() + suffix, p->type()}, loc);
      return stateAnchor->result();
    };
    if (adam) {
      Value* m = newState(".m");
      Value* v = newState(".v");
      auto ok = e.emitSink(OpKind::AdamUpdate, {p, pg.grad, m, v, step},
                           attrsOf({{"lr", cfg.lr}, {"beta1", cfg.beta1}, {"beta2", cfg.beta2}, {"eps", cfg.eps},
                                    {"weight_decay", cfg.weightDecay}}),
                           loc);
      if (!ok) return Unexpected(ok.error());
    } else {
      std::vector<Value*> operands{p, pg.grad};
      if (cfg.momentum != 0.0) operands.push_back(newState(".velocity"));
      auto ok = e.emitSink(OpKind::SgdUpdate, std::move(operands),
                           attrsOf({{"lr", cfg.lr}, {"momentum", cfg.momentum}, {"weight_decay", cfg.weightDecay}}), loc);
      if (!ok) return Unexpected(ok.error());
    }
  }
  return {};
}

std::unique_ptr<Pass> createAutodiffPass() { return std::make_unique<AutodiffPass>(); }

#undef SHOAL_TRY_ASSIGN
#undef SHOAL_TRY_VOID

}  // namespace shoal
