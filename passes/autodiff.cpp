// autodiff: loss, reverse-mode gradients (the op table's gradient rules) and optimizer updates.
#include "passes/autodiff.h"

#include <fmt/format.h>

#include <unordered_map>
#include <unordered_set>

#include "ir/shape_inference.h"

namespace shoal {

namespace {

std::string gradName(const Value* v) { return v->name() + ".grad"; }

// Appends (or inserts) single-result nodes and types them by the op's shape rule, so the
// graph verifies after every step.
class NodeEmitter {
 public:
  explicit NodeEmitter(Graph& g) : g_(g) {}

  /// Appends `kind(inputs) {attrs}` with one result named `name`; `dtype` is the placeholder
  /// result's element type (only constants read it).
  Expected<Value*> emit(OpKind kind, std::vector<Value*> inputs, Attrs attrs, const std::string& name,
                        const Location& loc, DType dtype = DType::F32) {
    Node* n = g_.addNode(kind, std::move(inputs), std::move(attrs), {{name, TensorType{dtype, {}}}}, loc);
    return typeNode(*n);
  }

  /// Appends a node with no results (an optimizer update), checked by its shape rule.
  Expected<void> emitSink(OpKind kind, std::vector<Value*> inputs, Attrs attrs, const Location& loc) {
    Node* n = g_.addNode(kind, std::move(inputs), std::move(attrs), {}, loc);
    fillDefaultAttrs(*n);
    auto types = inferResultTypes(*n);
    if (!types) return Unexpected(types.error());
    return {};
  }

  Graph& graph() { return g_; }

 private:
  Expected<Value*> typeNode(Node& n) {
    fillDefaultAttrs(n);
    auto types = inferResultTypes(n);
    if (!types) return Unexpected(types.error());
    n.result()->setType((*types)[0]);
    return n.result();
  }

  Graph& g_;
};

Attrs attrsOf(std::initializer_list<std::pair<const char*, AttrValue>> entries) {
  Attrs a;
  for (const auto& [k, v] : entries) a.set(k, v);
  return a;
}

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
      if (!n.info().differentiable() || n.numResults() != 1) continue;
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
      if (n->info().differentiable() || !isFloat(n->result()->type().dtype)) continue;
      if (n->kind() == OpKind::Accuracy || n->kind() == OpKind::ArgMax) continue;
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

  // `full` (the result's shape) summed down to `operand`'s shape when broadcasting grew it.
  Expected<Value*> reduceToOperand(Value* full, const Value* operand, const std::string& name, const Location& loc) {
    if (full->type().shape == operand->type().shape) return full;
    return e_.emit(OpKind::SumTo, {full}, attrsOf({{"shape", operand->type().shape}}), name, loc);
  }

  // One gradient rule: the contribution of node `n` to the gradient of its operand `i`,
  // given the gradient `dy` of its result. The rules are those summarised in ir/ops.def.
  Expected<Value*> operandGradient(Node& n, size_t i, Value* dy) {
    Value* x = n.input(i);
    Value* y = n.result();
    const Location& loc = n.loc();
    const Attrs& a = n.attrs();
    std::string name = gradName(x);
    bool reduce = x->type().shape != y->type().shape;  // broadcasting binary ops
    switch (n.kind()) {
      case OpKind::Cast:
        return e_.emit(OpKind::Cast, {dy}, attrsOf({{"dtype", std::string(dtypeName(x->type().dtype))}}), name, loc);
      case OpKind::Scale:
        return e_.emit(OpKind::Scale, {dy}, attrsOf({{"scale", a.getFloat("scale")}, {"shift", 0.0}}), name, loc);
      case OpKind::Normalize: {
        std::vector<double> stds = a.getFloats("std");
        if (stds.size() == 1)
          return e_.emit(OpKind::Scale, {dy}, attrsOf({{"scale", 1.0 / stds[0]}, {"shift", 0.0}}), name, loc);
        Shape shape(size_t(x->type().rank()), 1);  // [1, C, 1, ...]: broadcasts over axis 1
        shape[1] = int64_t(stds.size());
        Attrs lit;
        lit.set("value", TensorLiteral{shape, stds});
        SHOAL_TRY_ASSIGN(stdConst, e_.emit(OpKind::Constant, {}, lit, name + ".std", loc, x->type().dtype));
        return e_.emit(OpKind::Div, {dy, stdConst}, {}, name, loc);
      }
      case OpKind::Conv2d: {
        Attrs conv = attrsOf({{"stride", a.getInts("stride")}, {"padding", a.getInts("padding")},
                              {"dilation", a.getInts("dilation")}});
        if (i == 0) {
          conv.set("input_shape", x->type().shape);
          return e_.emit(OpKind::Conv2dBackwardData, {dy, n.input(1)}, conv, name, loc);
        }
        if (i == 1) {
          conv.set("weight_shape", x->type().shape);
          return e_.emit(OpKind::Conv2dBackwardWeight, {n.input(0), dy}, conv, name, loc);
        }
        // Bias [O]: sum over N, H, W. sum_to's target must broadcast to dy [N,O,H,W], so
        // reduce to [1,O,1,1] and reshape.
        int64_t o = x->type().shape[0];
        SHOAL_TRY_ASSIGN(summed, e_.emit(OpKind::SumTo, {dy}, attrsOf({{"shape", Shape{1, o, 1, 1}}}), name + ".sum", loc));
        return e_.emit(OpKind::Reshape, {summed}, attrsOf({{"shape", Shape{o}}}), name, loc);
      }
      case OpKind::MaxPool2d:
        return e_.emit(OpKind::MaxPool2dGrad, {x, dy},
                       attrsOf({{"kernel", a.getInts("kernel")}, {"stride", a.getInts("stride")},
                                {"padding", a.getInts("padding")}}),
                       name, loc);
      case OpKind::AvgPool2d:
        return e_.emit(OpKind::AvgPool2dGrad, {dy},
                       attrsOf({{"kernel", a.getInts("kernel")}, {"stride", a.getInts("stride")},
                                {"padding", a.getInts("padding")}, {"input_shape", x->type().shape}}),
                       name, loc);
      case OpKind::Flatten:
      case OpKind::Reshape:
        return e_.emit(OpKind::Reshape, {dy}, attrsOf({{"shape", x->type().shape}}), name, loc);
      case OpKind::Dense:
        // y = x w^T + b: dx = dy w, dw = dy^T x, db = sum over the batch.
        if (i == 0) return e_.emit(OpKind::MatMul, {dy, n.input(1)}, {}, name, loc);
        if (i == 1) return e_.emit(OpKind::MatMul, {dy, n.input(0)}, attrsOf({{"transpose_a", int64_t(1)}}), name, loc);
        return e_.emit(OpKind::SumTo, {dy}, attrsOf({{"shape", x->type().shape}}), name, loc);
      case OpKind::MatMul:
        return matMulGradient(n, i, dy, name);
      case OpKind::Relu:
        // relu' is read off the output (y > 0 exactly when x > 0), so the pre-activation value
        // dies at the relu and conv/dense + relu can fuse in training graphs too.
        return e_.emit(OpKind::ReluGrad, {y, dy}, {}, name, loc);
      case OpKind::Sigmoid:
        return e_.emit(OpKind::SigmoidGrad, {y, dy}, {}, name, loc);
      case OpKind::Tanh:
        return e_.emit(OpKind::TanhGrad, {y, dy}, {}, name, loc);
      case OpKind::Add:
        return reduceToOperand(dy, x, name, loc);
      case OpKind::Sub: {
        if (i == 0) return reduceToOperand(dy, x, name, loc);
        SHOAL_TRY_ASSIGN(summed, reduceToOperand(dy, x, name + ".sum", loc));
        return e_.emit(OpKind::Scale, {summed}, attrsOf({{"scale", -1.0}, {"shift", 0.0}}), name, loc);
      }
      case OpKind::Mul: {
        // d(a*b)/da = dy * b, reduced over a's broadcast dims.
        SHOAL_TRY_ASSIGN(prod, e_.emit(OpKind::Mul, {dy, n.input(1 - i)}, {}, reduce ? name + ".mul" : name, loc));
        return reduceToOperand(prod, x, name, loc);
      }
      case OpKind::Div: {
        Value* b = n.input(1);
        if (i == 0) {
          SHOAL_TRY_ASSIGN(quot, e_.emit(OpKind::Div, {dy, b}, {}, reduce ? name + ".div" : name, loc));
          return reduceToOperand(quot, x, name, loc);
        }
        // db = -dy * a / b^2 = -(dy * y) / b, with y = a / b the forward result.
        SHOAL_TRY_ASSIGN(prod, e_.emit(OpKind::Mul, {dy, y}, {}, name + ".mul", loc));
        SHOAL_TRY_ASSIGN(quot, e_.emit(OpKind::Div, {prod, b}, {}, name + ".div", loc));
        SHOAL_TRY_ASSIGN(summed, reduceToOperand(quot, x, name + ".sum", loc));
        return e_.emit(OpKind::Scale, {summed}, attrsOf({{"scale", -1.0}, {"shift", 0.0}}), name, loc);
      }
      case OpKind::SumTo:
        return broadcastTo(dy, x, name, loc);
      case OpKind::Softmax:
        return e_.emit(OpKind::SoftmaxGrad, {y, dy}, attrsOf({{"axis", a.getInt("axis")}}), name, loc);
      case OpKind::LogSoftmax:
        return e_.emit(OpKind::LogSoftmaxGrad, {y, dy}, attrsOf({{"axis", a.getInt("axis")}}), name, loc);
      case OpKind::SoftmaxCrossEntropy:
        // Only the logits are differentiable; integer labels never need a gradient.
        return e_.emit(OpKind::SoftmaxCrossEntropyGrad, {x, n.input(1), dy}, {}, name, loc);
      case OpKind::Mse:
        // Symmetric: d/dtarget of (pred - target)^2 is mse_grad with the roles swapped.
        return e_.emit(OpKind::MseGrad, {x, n.input(1 - i), dy}, {}, name, loc);
      case OpKind::Input:
      case OpKind::Param:
      case OpKind::State:
      case OpKind::Constant:
      case OpKind::Output:
      case OpKind::Conv2dBackwardData:
      case OpKind::Conv2dBackwardWeight:
      case OpKind::MaxPool2dGrad:
      case OpKind::AvgPool2dGrad:
      case OpKind::ReluGrad:
      case OpKind::SigmoidGrad:
      case OpKind::TanhGrad:
      case OpKind::SoftmaxGrad:
      case OpKind::LogSoftmaxGrad:
      case OpKind::ArgMax:
      case OpKind::Accuracy:
      case OpKind::SoftmaxCrossEntropyGrad:
      case OpKind::MseGrad:
      case OpKind::SgdUpdate:
      case OpKind::AdamUpdate:
      // Fusion runs after autodiff, so a training step never differentiates a fused op.
      case OpKind::FusedConv2d:
      case OpKind::FusedConv2dPool:
      case OpKind::FusedDense:
      case OpKind::FusedElementwise:
        break;
    }
    return fail(fmt::format("internal error: {} has no gradient rule", n.describe()), loc);
  }

  // y = op(A) op(B), op = identity or transpose. Each case is the transpose-free rule
  // dA = dY B^T, dB = A^T dY rewritten so no explicit transpose is needed.
  Expected<Value*> matMulGradient(Node& n, size_t i, Value* dy, const std::string& name) {
    bool ta = n.attrs().getInt("transpose_a") != 0, tb = n.attrs().getInt("transpose_b") != 0;
    Value* a = n.input(0);
    Value* b = n.input(1);
    auto mm = [&](Value* l, Value* r, bool tl, bool tr) {
      return e_.emit(OpKind::MatMul, {l, r}, attrsOf({{"transpose_a", int64_t(tl)}, {"transpose_b", int64_t(tr)}}), name,
                     n.loc());
    };
    if (i == 0) {
      if (!ta && !tb) return mm(dy, b, false, true);  // dA = dY B^T
      if (!ta && tb) return mm(dy, b, false, false);  // Y = A B^T: dA = dY B
      if (ta && !tb) return mm(b, dy, false, true);   // Y = A^T B: dA = B dY^T
      return mm(b, dy, true, true);                   // Y = A^T B^T: dA = B^T dY^T
    }
    if (!ta && !tb) return mm(a, dy, true, false);  // dB = A^T dY
    if (!ta && tb) return mm(dy, a, true, false);   // Y = A B^T: dB = dY^T A
    if (ta && !tb) return mm(a, dy, false, false);  // Y = A^T B: dB = A dY
    return mm(dy, a, true, true);                   // Y = A^T B^T: dB = dY^T A^T
  }

  // sum_to's gradient: dy broadcast back to x's shape, as dy + zeros, where the zeros carry
  // only the extents dy lacks (so the constant stays as small as it can).
  Expected<Value*> broadcastTo(Value* dy, const Value* x, const std::string& name, const Location& loc) {
    const Shape& xs = x->type().shape;
    const Shape& ds = dy->type().shape;
    if (xs == ds) return dy;
    Shape zeros(xs.size(), 1);
    size_t offset = xs.size() - ds.size();
    for (size_t d = 0; d < xs.size(); ++d)
      if (d < offset || ds[d - offset] != xs[d]) zeros[d] = xs[d];
    Attrs lit;
    lit.set("value", TensorLiteral{zeros, std::vector<double>(size_t(numElements(zeros)), 0.0)});
    SHOAL_TRY_ASSIGN(zero, e_.emit(OpKind::Constant, {}, lit, name + ".zeros", loc, dy->type().dtype));
    return e_.emit(OpKind::Add, {dy, zero}, {}, name, loc);
  }

  Graph& g_;
  NodeEmitter e_;
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
  for (const std::string& in : {targetName, std::string("step")}) {
    if (in == "step" && !adam) continue;
    if (hasInputNamed(g, in)) return fail(fmt::format("the model already has an input named '{}'", in), cfg.loc);
  }
  for (const char* out : {"loss", "accuracy"})
    if (hasOutputNamed(g, out)) return fail(fmt::format("the model already has an output named '{}'", out), cfg.loc);

  // New inputs, after the existing ones.
  Node* anchor = lastNodeOfKind(g, OpKind::Input);
  TensorType targetType = crossEntropy ? TensorType{DType::I64, {lt.shape[0]}} : lt;
  anchor = insertSourceAfter(g, anchor, OpKind::Input, attrsOf({{"name", targetName}}), {targetName, targetType}, cfg.loc);
  Value* target = anchor->result();
  Value* step = nullptr;
  if (adam) {
    anchor = insertSourceAfter(g, anchor, OpKind::Input, attrsOf({{"name", std::string("step")}}),
                               {"step", TensorType{DType::F32, {}}}, cfg.loc);
    step = anchor->result();
  }

  // The loss (and accuracy) heads.
  NodeEmitter e(g);
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

  // Optimizer state, declared after the last param; then the in-place updates, last.
  Node* stateAnchor = lastNodeOfKind(g, OpKind::Param);
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
