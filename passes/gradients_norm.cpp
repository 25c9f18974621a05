// Gradient rules and training forms of the norm family: batchnorm (evaluation and training
// forms), layernorm, groupnorm, dropout.
#include <fmt/format.h>

#include "passes/gradients.h"
#include "passes/training_forms.h"
#include "support/hash.h"

namespace shoal {

namespace {

#define SHOAL_TRY_VALUE(var, expr)          \
  auto var##OrError_ = (expr);              \
  if (!var##OrError_) return var##OrError_; \
  Value* var = *var##OrError_

int64_t channels(const Value* x) { return x->type().shape[1]; }

// `v` [N, C, ...] summed over every axis but the channels: [C].
Expected<Value*> channelSum(const GradientArgs& g, Value* v, const std::string& suffix) {
  Shape keep(size_t(v->type().rank()), 1);
  keep[1] = channels(v);
  SHOAL_TRY_VALUE(summed, g.emit(OpKind::SumTo, {v}, attrsOf({{"shape", keep}}), suffix + ".sum"));
  return g.emit(OpKind::Reshape, {summed}, attrsOf({{"shape", Shape{channels(v)}}}), suffix);
}

Attrs epsOf(const GradientArgs& g) { return attrsOf({{"eps", g.attrs().getFloat("eps")}}); }

Unexpected<Error> noGradient(const GradientArgs& g, const std::string& what) {
  return fail(fmt::format("internal error: {} has no gradient for its {}", g.node.describe(), what), g.node.loc());
}

}  // namespace

// ---- batchnorm, evaluation form: y = (x - mean) * invstd * w + b with invstd = (var + eps)^-1/2
// and the statistics given, so every operand is differentiated directly:
//   dx = dy w invstd                    (batchnorm of dy with mean 0, no bias)
//   dmean = -sum(dy) w invstd           (the same on the channel sums)
//   dvar = -sum(dy xhat) w / (2 (var + eps)),   dw = sum(dy xhat),   db = sum(dy)
SHOAL_GRADIENT(BatchNorm) {
  const Node& n = g.node;
  Value* x = n.input(0);
  Value* var = n.input(2);
  Value* w = n.numInputs() > 3 ? n.input(3) : nullptr;
  const int64_t c = channels(x);
  auto zeros = [&]() { return g.constant(TensorLiteral{{c}, std::vector<double>(size_t(c), 0.0)}, ".zeros"); };
  auto xhatSum = [&]() -> Expected<Value*> {  // sum over the batch of dy * (x - mean) * invstd, per channel
    SHOAL_TRY_VALUE(xhat, g.emit(OpKind::BatchNorm, {x, n.input(1), var}, epsOf(g), ".xhat"));
    SHOAL_TRY_VALUE(prod, g.emit(OpKind::Mul, {g.dy, xhat}, {}, ".mul"));
    return channelSum(g, prod, "");
  };
  switch (g.operand) {
    case 0: {
      SHOAL_TRY_VALUE(zero, zeros());
      std::vector<Value*> ins = {g.dy, zero, var};
      if (w) ins.push_back(w);
      return g.emit(OpKind::BatchNorm, ins, epsOf(g));
    }
    case 1: {
      SHOAL_TRY_VALUE(sum, channelSum(g, g.dy, ".dy"));
      SHOAL_TRY_VALUE(row, g.emit(OpKind::Reshape, {sum}, attrsOf({{"shape", Shape{1, c}}}), ".row"));
      SHOAL_TRY_VALUE(zero, zeros());
      std::vector<Value*> ins = {row, zero, var};
      if (w) ins.push_back(w);
      SHOAL_TRY_VALUE(scaled, g.emit(OpKind::BatchNorm, ins, epsOf(g), ".scaled"));
      SHOAL_TRY_VALUE(flat, g.emit(OpKind::Reshape, {scaled}, attrsOf({{"shape", Shape{c}}}), ".flat"));
      return g.emit(OpKind::Scale, {flat}, attrsOf({{"scale", -1.0}, {"shift", 0.0}}));
    }
    case 2: {
      SHOAL_TRY_VALUE(sum, xhatSum());
      Value* t = sum;
      if (w) {
        SHOAL_TRY_VALUE(weighted, g.emit(OpKind::Mul, {sum, w}, {}, ".weighted"));
        t = weighted;
      }
      SHOAL_TRY_VALUE(shifted, g.emit(OpKind::Scale, {var},
                                      attrsOf({{"scale", 1.0}, {"shift", g.attrs().getFloat("eps")}}), ".var_eps"));
      SHOAL_TRY_VALUE(quot, g.emit(OpKind::Div, {t, shifted}, {}, ".div"));
      return g.emit(OpKind::Scale, {quot}, attrsOf({{"scale", -0.5}, {"shift", 0.0}}));
    }
    case 3:
      return xhatSum();
    case 4:
      return channelSum(g, g.dy, "");
  }
  return noGradient(g, "operand " + std::to_string(g.operand));
}

// ---- batchnorm, training form: the statistics are the batch's own, so dx goes through them
// (batchnorm_train_grad); dw = sum(dy xhat) (batchnorm_train_weight_grad), db = sum(dy).
SHOAL_GRADIENT(BatchNormTrain) {
  const Node& n = g.node;
  switch (g.operand) {
    case 0: {
      std::vector<Value*> ins = {n.input(0), g.dy};
      if (n.numInputs() > 1) ins.push_back(n.input(1));
      return g.emit(OpKind::BatchNormTrainGrad, ins, epsOf(g));
    }
    case 1:
      return g.emit(OpKind::BatchNormTrainWeightGrad, {n.input(0), g.dy}, epsOf(g));
    case 2:
      return channelSum(g, g.dy, "");
  }
  return noGradient(g, "operand " + std::to_string(g.operand));
}

// ---- layernorm and groupnorm: dx through the statistics (the *_grad ops); the weight and
// bias gradients sum dy * xhat and dy over everything the affine broadcasts over.
SHOAL_GRADIENT(LayerNorm) {
  const Node& n = g.node;
  Attrs a = attrsOf({{"dims", g.attrs().getInt("dims")}, {"eps", g.attrs().getFloat("eps")}});
  switch (g.operand) {
    case 0: {
      std::vector<Value*> ins = {n.input(0), g.dy};
      if (n.numInputs() > 1) ins.push_back(n.input(1));
      return g.emit(OpKind::LayerNormGrad, ins, a);
    }
    case 1: {
      SHOAL_TRY_VALUE(xhat, g.emit(OpKind::LayerNorm, {n.input(0)}, a, ".xhat"));
      SHOAL_TRY_VALUE(prod, g.emit(OpKind::Mul, {g.dy, xhat}, {}, ".mul"));
      return g.reduceToOperand(prod);
    }
    case 2:
      return g.reduceToOperand(g.dy);
  }
  return noGradient(g, "operand " + std::to_string(g.operand));
}

SHOAL_GRADIENT(GroupNorm) {
  const Node& n = g.node;
  Attrs a = attrsOf({{"groups", g.attrs().getInt("groups")}, {"eps", g.attrs().getFloat("eps")}});
  switch (g.operand) {
    case 0: {
      std::vector<Value*> ins = {n.input(0), g.dy};
      if (n.numInputs() > 1) ins.push_back(n.input(1));
      return g.emit(OpKind::GroupNormGrad, ins, a);
    }
    case 1: {
      SHOAL_TRY_VALUE(xhat, g.emit(OpKind::GroupNorm, {n.input(0)}, a, ".xhat"));
      SHOAL_TRY_VALUE(prod, g.emit(OpKind::Mul, {g.dy, xhat}, {}, ".mul"));
      return channelSum(g, prod, "");
    }
    case 2:
      return channelSum(g, g.dy, "");
  }
  return noGradient(g, "operand " + std::to_string(g.operand));
}

// ---- dropout: the evaluation form is the identity; the training form multiplies by a mask
// that depends only on (seed, step, index), so dropout_train of dy applies the same mask.
SHOAL_GRADIENT(Dropout) { return g.dy; }

SHOAL_GRADIENT(DropoutTrain) {
  if (g.operand != 0) return noGradient(g, "step count");
  return g.emit(OpKind::DropoutTrain, {g.dy, g.input(1)},
                attrsOf({{"rate", g.attrs().getFloat("rate")}, {"seed", g.attrs().getInt("seed")}}));
}

// ---- training forms ------------------------------------------------------------------------

// batchnorm(x, running_mean, running_var, [w, [b]]) trains as
//   y = batchnorm_train(x, [w, [b]])                  normalised by the batch's statistics
//   stats = batchnorm_stats(x)                        mean and unbiased variance per channel
//   batchnorm_update(running_mean, running_var, stats, [num_batches_tracked])
// The count is the i64 state named as PyTorch names it beside the running mean
// (`bn.running_mean` -> `bn.num_batches_tracked`), when the model has one.
SHOAL_TRAINING_FORM(BatchNorm) {
  const Node& n = f.node;
  Value* x = n.input(0);
  const TensorType& xt = x->type();
  if (xt.rank() >= 2 && xt.numElements() / xt.shape[1] < 2)
    return fail(fmt::format("{}: training needs more than one value per channel, got input {} (as in PyTorch)",
                            n.describe(), xt.str()),
                n.loc());
  std::vector<Value*> ins = {x};
  for (size_t i = 3; i < n.numInputs(); ++i) ins.push_back(n.input(i));
  SHOAL_TRY_VALUE(y, f.emit(OpKind::BatchNormTrain, ins, attrsOf({{"eps", n.attrs().getFloat("eps")}}), ".train"));
  SHOAL_TRY_VALUE(stats, f.emit(OpKind::BatchNormStats, {x}, {}, ".stats"));
  std::vector<Value*> update = {n.input(1), n.input(2), stats};
  const std::string& meanName = n.input(1)->name();
  const std::string suffix = ".running_mean";
  if (meanName.size() > suffix.size() && meanName.ends_with(suffix)) {
    Value* count = f.graph.findValue(meanName.substr(0, meanName.size() - suffix.size()) + ".num_batches_tracked");
    if (count && count->def()->kind() == OpKind::State && count->type() == TensorType{DType::I64, {}})
      update.push_back(count);
  }
  auto ok = f.emitSink(OpKind::BatchNormUpdate, update, attrsOf({{"momentum", n.attrs().getFloat("momentum")}}));
  if (!ok) return Unexpected(ok.error());
  return y;
}

// dropout(x) trains as dropout_train(x, step) with a seed from the training seed and the node's
// name: every dropout of a model draws its own mask, the same again for the same seed. At rate
// 0 it keeps every element in training too: x itself, no mask drawn (models exported with their
// dropouts set to 0 have dozens; each would be a kernel of its own, a random draw per element).
SHOAL_TRAINING_FORM(Dropout) {
  const Node& n = f.node;
  if (n.attrs().getFloat("rate") == 0.0) return n.input(0);
  SHOAL_TRY_VALUE(step, f.step());
  const uint64_t seed = fnv1a64(fmt::format("dropout:{}:{}", n.result()->name(), f.train.seed));
  return f.emit(OpKind::DropoutTrain, {n.input(0), step},
                attrsOf({{"rate", n.attrs().getFloat("rate")}, {"seed", int64_t(seed)}}), ".train");
}

#undef SHOAL_TRY_VALUE

}  // namespace shoal
