// autodiff: loss, reverse-mode gradients (the registered rules of passes/gradients*.cpp) and
// optimizer updates.
#include "passes/autodiff.h"

#include <fmt/format.h>

#include <unordered_map>
#include <unordered_set>

#include "ir/elementwise.h"
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
    auto ok = appendTrainingStep(g, *ctx.train, "logits", ctx.ranks);
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

namespace {

// Appends `kind(inputs) {attrs}` before `pos`, typed by its shape rule.
Expected<Value*> insertTyped(Graph& g, Node* pos, OpKind kind, std::vector<Value*> inputs, Attrs attrs,
                             const std::string& name, const Location& loc) {
  Node* n = g.insertNodeBefore(pos, kind, std::move(inputs), std::move(attrs), {{name, TensorType{}}}, loc);
  fillDefaultAttrs(*n);
  auto types = inferResultTypes(*n);
  if (!types) return Unexpected(types.error());
  n->result()->setType((*types)[0]);
  return n->result();
}

// The ops a fused op stands for, inserted before it; returns the value that replaces its
// result. Fused ops have no gradient rules: a graph after the fuse-* passes (an IR dump, say)
// is trained by differentiating what they fuse, and the fuse-* passes after autodiff fuse
// again what the backward pass leaves fusible.
Expected<Value*> expandFused(Graph& g, Node* n) {
  const Location& loc = n->loc();
  const std::string y = n->result()->name();
  const Attrs& a = n->attrs();
  auto activation = [&](Value* pre, const std::string& name) -> Expected<Value*> {
    auto act = opKindFromName(a.getString("activation"));
    if (!act) return fail(fmt::format("{}: unknown activation '{}'", n->describe(), a.getString("activation")), loc);
    return insertTyped(g, n, *act, {pre}, {}, name, loc);
  };
  std::vector<Value*> convInputs = n->inputs();
  if (n->kind() == OpKind::FusedConv2dPool && !a.getString("input_expr", "").empty()) {
    // The input read through input_expr (fuse-conv-prologue): that program as ops first.
    const DType dt = n->result()->type().dtype;
    Node* pro = g.insertNodeBefore(n, OpKind::FusedElementwise, {n->input(0)},
                                   attrsOf({{"expr", a.getString("input_expr")}, {"dtype", std::string(dtypeName(dt))}}),
                                   {{y + ".input", TensorType{dt, n->input(0)->type().shape}}}, loc);
    fillDefaultAttrs(*pro);
    SHOAL_TRY_ASSIGN(seen, expandFused(g, pro));
    g.replaceAllUsesWith(pro->result(), seen);
    g.eraseNode(pro);
    convInputs[0] = seen;
  }
  auto conv = [&](const std::string& name) {
    return insertTyped(g, n, OpKind::Conv2d, convInputs,
                       attrsOf({{"stride", a.getInts("stride")}, {"padding", a.getInts("padding")},
                                {"dilation", a.getInts("dilation")}, {"groups", a.getInt("groups", 1)}}),
                       name, loc);
  };
  if (n->kind() == OpKind::FusedDense) {
    SHOAL_TRY_ASSIGN(pre, insertTyped(g, n, OpKind::Dense, n->inputs(), {}, y + ".dense", loc));
    return activation(pre, y + ".act");
  }
  if (n->kind() == OpKind::FusedMlp) {
    // fuse-dense-pair: the first layer with its activation, then the second dense. The first
    // layer's node id (the fused op's location) names them, as the pipeline lowering did.
    const std::string base = loc.node.empty() ? y + ".h" : loc.node;
    SHOAL_TRY_ASSIGN(pre, insertTyped(g, n, OpKind::Dense, {n->input(0), n->input(1), n->input(2)}, {}, base + ".dense", loc));
    SHOAL_TRY_ASSIGN(hidden, activation(pre, base));
    return insertTyped(g, n, OpKind::Dense, {hidden, n->input(3), n->input(4)}, {}, y + ".dense2", loc);
  }
  if (n->kind() == OpKind::FusedConv2d && !a.getString("output_expr", "").empty()) {
    // fuse-conv-epilogue: conv2d with its bias, then the program over it and operands 3.. as ops.
    convInputs.resize(3);
    SHOAL_TRY_ASSIGN(pre, conv(y + ".conv"));
    std::vector<Value*> operands = {pre};
    for (size_t i = 3; i < n->numInputs(); ++i) operands.push_back(n->input(i));
    Node* epi = g.insertNodeBefore(n, OpKind::FusedElementwise, operands, attrsOf({{"expr", a.getString("output_expr")}}),
                                   {{y + ".epilogue", n->result()->type()}}, loc);
    fillDefaultAttrs(*epi);
    SHOAL_TRY_ASSIGN(out, expandFused(g, epi));
    g.replaceAllUsesWith(epi->result(), out);
    g.eraseNode(epi);
    return out;
  }
  if (n->kind() == OpKind::FusedConv2d) {
    SHOAL_TRY_ASSIGN(pre, conv(y + ".conv"));
    return activation(pre, y + ".act");
  }
  if (n->kind() == OpKind::FusedConv2dPool) {
    // The conv node's id names the conv and its activation, as the pipeline lowering did.
    const std::string base = loc.node.empty() ? y + ".c" : loc.node;
    SHOAL_TRY_ASSIGN(pre, conv(base + ".conv"));
    SHOAL_TRY_ASSIGN(act, activation(pre, base));
    Attrs pool = attrsOf({{"kernel", a.getInts("pool_kernel")}, {"stride", a.getInts("pool_stride")},
                          {"padding", a.getInts("pool_padding")}});
    return insertTyped(g, n, OpKind::MaxPool2d, {act}, std::move(pool), y + ".pool", loc);
  }
  if (n->kind() != OpKind::FusedElementwise)
    return fail(fmt::format("internal error: {} is not a fused op", n->describe()), loc);
  // The postfix program, one op per instruction (constants become scalar constants).
  auto program = parseElementwiseExpr(a.getString("expr"), int(n->numInputs()));
  if (!program) return fail(n->describe() + ": " + program.error().message(), loc);
  std::vector<Value*> stack;
  int k = 0;
  for (const ExprInstr& op : *program) {
    const std::string name = y + ".e" + std::to_string(k++);
    switch (op.kind) {
      case ExprInstr::Kind::Operand: {
        Value* in = n->input(size_t(op.operand));
        const DType dt = n->result()->type().dtype;
        if (in->type().dtype != dt) {  // a folded cast: made a cast node again
          Node* c = g.insertNodeBefore(n, OpKind::Cast, {in}, attrsOf({{"dtype", std::string(dtypeName(dt))}}),
                                       {{name, TensorType{dt, in->type().shape}}}, loc);
          in = c->result();
        }
        stack.push_back(in);
        continue;
      }
      case ExprInstr::Kind::Constant: {
        Node* c = g.insertNodeBefore(n, OpKind::Constant, {}, attrsOf({{"value", TensorLiteral{{}, {op.constant}}}}),
                                     {{name, TensorType{n->result()->type().dtype, {}}}}, loc);
        stack.push_back(c->result());
        continue;
      }
      case ExprInstr::Kind::Op: break;
    }
    std::vector<Value*> operands(stack.end() - op.arity(), stack.end());
    stack.resize(stack.size() - size_t(op.arity()));
    Attrs attrs;
    const std::vector<std::string>& params = opInfo(op.op).formulaParams;
    for (size_t p = 0; p < params.size() && p < op.params.size(); ++p) attrs.set(params[p], op.params[p]);
    SHOAL_TRY_ASSIGN(v, insertTyped(g, n, op.op, std::move(operands), std::move(attrs), name, loc));
    stack.push_back(v);
  }
  return stack.back();
}

bool isFusedOp(OpKind k) { return opInfo(k).traits.isFused; }

Expected<void> expandFusedOps(Graph& g) {
  std::vector<Node*> fused;
  for (Node* n : g.nodes())
    if (isFusedOp(n->kind())) fused.push_back(n);
  for (Node* n : fused) {
    auto v = expandFused(g, n);
    if (!v) return Unexpected(v.error());
    std::string name = n->result()->name();
    g.replaceAllUsesWith(n->result(), *v);
    g.eraseNode(n);
    g.renameValue(*v, name);
  }
  return {};
}

// The scalar operands every optimizer update of the step shares.
struct UpdateOperands {
  Value* step = nullptr;       ///< adam, adamw
  Value* lr = nullptr;
  Value* gradScale = nullptr;  ///< with gradient clipping
};

}  // namespace

Expected<void> appendTrainingStep(Graph& g, const TrainConfig& cfg, const std::string& logitsOutput, int ranks) {
  // Everything a user can get wrong is checked before the graph changes.
  Value* logits = g.outputValue(logitsOutput);
  if (!logits) return fail(fmt::format("the model has no output named '{}' to train", logitsOutput), cfg.loc);
  const bool crossEntropy = cfg.loss == "softmax_cross_entropy";
  const bool bce = cfg.loss == "bce_with_logits";
  if (!crossEntropy && !bce && cfg.loss != "mse")
    return fail(fmt::format("unknown loss '{}' (expected softmax_cross_entropy, mse or bce_with_logits)", cfg.loss),
                cfg.loc);
  const bool adam = cfg.optimizer == "adam" || cfg.optimizer == "adamw";
  if (!adam && cfg.optimizer != "sgd")
    return fail(fmt::format("unknown optimizer '{}' (expected adam, adamw or sgd)", cfg.optimizer), cfg.loc);
  if (!crossEntropy && cfg.labelSmoothing != 0)
    return fail(fmt::format("label smoothing applies to the cross-entropy loss, not {}", cfg.loss), cfg.loc);
  if (!(cfg.labelSmoothing >= 0 && cfg.labelSmoothing <= 1))
    return fail(fmt::format("label smoothing must be in [0, 1], got {}", cfg.labelSmoothing), cfg.loc);
  if (crossEntropy && cfg.oneHotTargets)
    return fail("one-hot targets are for mse and bce_with_logits (cross-entropy reads the labels)", cfg.loc);
  if (cfg.nesterov && (adam || !(cfg.momentum > 0)))
    return fail("Nesterov momentum needs optimizer sgd with a positive momentum", cfg.loc);
  if (!(cfg.clipNorm >= 0)) return fail(fmt::format("clip norm must be 0 (off) or positive, got {}", cfg.clipNorm), cfg.loc);
  const double lossScale = cfg.lossScale.value_or(0.0);
  if (!(lossScale >= 0) || !std::isfinite(lossScale))
    return fail(fmt::format("loss scale must be 0 (off) or a positive initial scale, got {}", lossScale), cfg.loc);
  if (lossScale > 0 && cfg.lossScaleInterval < 1)
    return fail(fmt::format("loss scale growth interval must be 1 or more, got {}", cfg.lossScaleInterval), cfg.loc);
  const TensorType lt = logits->type();  // a copy: expanding fused ops below may replace logits' node
  if (!isFloat(lt.dtype))
    return fail(fmt::format("cannot train on '{}': it is {}, not a float tensor", logitsOutput, lt.str()), logits->def()->loc());
  const bool readsLabels = crossEntropy || cfg.oneHotTargets;
  if (readsLabels && lt.rank() != 2)
    return fail(fmt::format("{} needs logits of rank 2 ([batch, classes]), got {}",
                            crossEntropy ? "softmax_cross_entropy" : "one-hot targets", lt.str()),
                logits->def()->loc());
  if (!lastNodeOfKind(g, OpKind::Param)) return fail("the model has no parameters to train", cfg.loc);
  std::string targetName = readsLabels ? "labels" : "targets";
  Value* step = declaredStep(g);  // an earlier training pass (dropout) may have declared it
  for (const std::string& in : {targetName, std::string("step"), std::string("lr")}) {
    if (in == "step" && (!adam || step)) continue;
    if (hasInputNamed(g, in)) return fail(fmt::format("the model already has an input named '{}'", in), cfg.loc);
  }
  for (const char* out : {"loss", "accuracy"})
    if (hasOutputNamed(g, out)) return fail(fmt::format("the model already has an output named '{}'", out), cfg.loc);

  // Fused ops (an IR dump after the fuse-* passes) become their parts, which have gradients.
  if (auto ok = expandFusedOps(g); !ok) return Unexpected(ok.error());
  logits = g.outputValue(logitsOutput);  // the expansion's value when a fused op made the logits

  // New inputs, after the existing ones: the targets, Adam's step count, the learning rate.
  Node* anchor = lastNodeOfKind(g, OpKind::Input);
  TensorType targetType = readsLabels ? TensorType{DType::I64, {lt.shape[0]}} : lt;
  anchor = insertSourceAfter(g, anchor, OpKind::Input, attrsOf({{"name", targetName}}), {targetName, targetType}, cfg.loc);
  Value* target = anchor->result();
  UpdateOperands shared;
  shared.step = adam ? step : nullptr;
  if (adam && !step) {
    anchor = insertSourceAfter(g, anchor, OpKind::Input, attrsOf({{"name", std::string("step")}}),
                               {"step", TensorType{DType::F32, {}}}, cfg.loc);
    shared.step = anchor->result();
  }
  // f64 whatever the model's type, like the Python float PyTorch keeps it in.
  anchor = insertSourceAfter(g, anchor, OpKind::Input, attrsOf({{"name", std::string("lr")}}),
                             {"lr", TensorType{DType::F64, {}}}, cfg.loc);
  shared.lr = anchor->result();

  // The loss (and accuracy) heads.
  GradientEmitter e(g);
  Value* labels = readsLabels ? target : nullptr;
  if (cfg.oneHotTargets) {
    SHOAL_TRY_ASSIGN(hot, e.emit(OpKind::OneHot, {labels},
                                 attrsOf({{"classes", lt.shape[1]}, {"dtype", std::string(dtypeName(lt.dtype))}}),
                                 "targets", cfg.loc));
    target = hot;
  }
  const OpKind lossKind = crossEntropy ? OpKind::SoftmaxCrossEntropy : bce ? OpKind::BceWithLogits : OpKind::Mse;
  Attrs lossAttrs = crossEntropy ? attrsOf({{"label_smoothing", cfg.labelSmoothing}}) : Attrs{};
  auto loss = e.emit(lossKind, {logits, target}, std::move(lossAttrs), "loss", cfg.loc);
  if (!loss) return Unexpected(loss.error());
  g.addNode(OpKind::Output, {*loss}, attrsOf({{"name", std::string("loss")}}), {}, cfg.loc);
  if (labels) {
    SHOAL_TRY_ASSIGN(acc, e.emit(OpKind::Accuracy, {logits, labels}, {}, "accuracy", cfg.loc));
    g.addNode(OpKind::Output, {acc}, attrsOf({{"name", std::string("accuracy")}}), {}, cfg.loc);
  }

  // Optimizer state (and the loss scale's) goes after the model's last param or state (so the
  // model's own state, batchnorm's running statistics, keeps its place in the persistent
  // layout that evaluation programs share).
  Node* stateAnchor = nullptr;
  for (Node* n : g.nodes())
    if (isPersistentSource(n->kind())) stateAnchor = n;
  auto newStateOf = [&](const std::string& name, const TensorType& type, const Location& loc) {
    stateAnchor = insertSourceAfter(g, stateAnchor, OpKind::State, attrsOf({{"init", std::string("zeros")}}),
                                    {name, type}, loc);
    return stateAnchor->result();
  };

  // Dynamic loss scaling: the backward pass starts from loss · scale (scale = init · 2^e), so
  // small gradients survive fp16 operands; the updates unscale (below).
  Value* scaleExponent = nullptr;
  Value* goodSteps = nullptr;
  Value* scale = nullptr;
  Value* differentiated = *loss;
  if (lossScale > 0) {
    const TensorType scalar{DType::F32, {}};
    scaleExponent = newStateOf("loss_scale.exponent", scalar, cfg.loc);
    goodSteps = newStateOf("loss_scale.good_steps", scalar, cfg.loc);
    SHOAL_TRY_ASSIGN(s, e.emit(OpKind::LossScale, {scaleExponent}, attrsOf({{"init_scale", lossScale}}), "loss_scale",
                               cfg.loc));
    Value* lossValue = *loss;
    if (lossValue->type().dtype != DType::F32) {
      SHOAL_TRY_ASSIGN(c, e.emit(OpKind::Cast, {s}, attrsOf({{"dtype", std::string(dtypeName(lossValue->type().dtype))}}),
                                 "loss_scale", cfg.loc));
      s = c;
    }
    scale = s;
    SHOAL_TRY_ASSIGN(scaled, e.emit(OpKind::Mul, {*loss, scale}, {}, "loss.scaled", cfg.loc));
    differentiated = scaled;
  }

  auto grads = appendBackward(g, differentiated);
  if (!grads) return Unexpected(grads.error());
  if (grads->empty()) return fail("no parameter of the model influences the loss", cfg.loc);
  if (ranks < 1) return fail(fmt::format("data-parallel ranks must be 1 or more, got {}", ranks), cfg.loc);

  // Data parallelism: every gradient averaged over the ranks, before anything reads it.
  if (ranks > 1) {
    for (ParamGradient& pg : *grads) {
      SHOAL_TRY_ASSIGN(avg, e.emit(OpKind::AllReduce, {pg.grad},
                                   attrsOf({{"op", std::string("mean")}, {"ranks", int64_t(ranks)}}),
                                   pg.grad->name() + ".all_reduce", cfg.loc));
      pg.grad = avg;
    }
  }

  // Gradient clipping by global norm and loss scaling: the squared norm of every gradient (a
  // global_sum_squares per 64 gradients, the op's operand limit, then their sum), then the
  // factor every update multiplies its gradient by (unscale_coef: 0 when the scaled gradients
  // overflowed, which skips the updates).
  Value* sumSquares = nullptr;
  if (cfg.clipNorm > 0 || scale) {
    const int maxOperands = opInfo(OpKind::GlobalSumSquares).maxInputs;
    Value* total = nullptr;
    for (size_t begin = 0; begin < grads->size(); begin += size_t(maxOperands)) {
      std::vector<Value*> chunk;
      for (size_t i = begin; i < std::min(grads->size(), begin + size_t(maxOperands)); ++i) chunk.push_back((*grads)[i].grad);
      SHOAL_TRY_ASSIGN(part, e.emit(OpKind::GlobalSumSquares, std::move(chunk), {}, "grads.sum_squares", cfg.loc));
      if (total) {
        SHOAL_TRY_ASSIGN(sum, e.emit(OpKind::Add, {total, part}, {}, "grads.sum_squares", cfg.loc));
        total = sum;
      } else {
        total = part;
      }
    }
    sumSquares = total;
    auto coef = scale ? e.emit(OpKind::UnscaleCoef, {total, scale}, attrsOf({{"max_norm", cfg.clipNorm}}),
                               "grads.unscale_coef", cfg.loc)
                      : e.emit(OpKind::ClipGradCoef, {total}, attrsOf({{"max_norm", cfg.clipNorm}}), "grads.clip_coef",
                               cfg.loc);
    if (!coef) return Unexpected(coef.error());
    shared.gradScale = *coef;
  }

  // The optimizer's state, then the in-place updates, last.
  for (const ParamGradient& pg : *grads) {
    Value* p = pg.param;
    const Location& loc = p->def()->loc();
    auto newState = [&](const std::string& suffix) { return newStateOf(p->name() + suffix, p->type(), loc); };
    auto withScale = [&](std::vector<Value*> operands) {
      if (shared.gradScale) operands.push_back(shared.gradScale);
      return operands;
    };
    Expected<void> ok;
    if (adam) {
      Value* m = newState(".m");
      Value* v = newState(".v");
      ok = e.emitSink(OpKind::AdamUpdate, withScale({p, pg.grad, m, v, shared.step, shared.lr}),
                      attrsOf({{"beta1", cfg.beta1}, {"beta2", cfg.beta2}, {"eps", cfg.eps},
                               {"weight_decay", cfg.weightDecay},
                               {"decoupled_weight_decay", int64_t(cfg.optimizer == "adamw")}}),
                      loc);
    } else if (cfg.momentum != 0.0) {
      ok = e.emitSink(OpKind::SgdMomentumUpdate, withScale({p, pg.grad, newState(".velocity"), shared.lr}),
                      attrsOf({{"momentum", cfg.momentum}, {"weight_decay", cfg.weightDecay},
                               {"nesterov", int64_t(cfg.nesterov)}}),
                      loc);
    } else {
      ok = e.emitSink(OpKind::SgdUpdate, withScale({p, pg.grad, shared.lr}), attrsOf({{"weight_decay", cfg.weightDecay}}),
                      loc);
    }
    if (!ok) return Unexpected(ok.error());
  }
  // The scale moves after the step: halved when it overflowed, doubled after an interval of
  // good steps.
  if (scale) {
    auto ok = e.emitSink(OpKind::LossScaleUpdate, {scaleExponent, goodSteps, sumSquares},
                         attrsOf({{"growth_interval", cfg.lossScaleInterval}}), cfg.loc);
    if (!ok) return Unexpected(ok.error());
  }
  return {};
}

std::unique_ptr<Pass> createAutodiffPass() { return std::make_unique<AutodiffPass>(); }

#undef SHOAL_TRY_ASSIGN
#undef SHOAL_TRY_VOID

}  // namespace shoal
