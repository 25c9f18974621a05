// Shape rules of the train family: optimizer updates, binary cross-entropy, one-hot targets and
// the squared global norm gradient clipping reads.
#include <fmt/format.h>

#include "ir/shape_rules.h"

namespace shoal::shape {

namespace {

Expected<Types> requireScalar(const Node& n, const Value* v, std::string_view what) {
  if (v->type().rank() != 0) return Unexpected(shapeError(n, fmt::format("{} must be a scalar, got {}", what, sh(v))));
  return Types{};
}

Expected<Types> requireFloatScalar(const Node& n, const Value* v, std::string_view what) {
  SHOAL_SHAPE_TRY(requireScalar(n, v, what));
  return requireFloat(n, v, what);
}

Expected<Types> requireLike(const Node& n, const Value* v, const Value* w, std::string_view what) {
  if (v->type() != w->type())
    return Unexpected(shapeError(n, fmt::format("{} has type {}, the parameter {}", what, sh(v), sh(w))));
  return Types{};
}

}  // namespace

Expected<Types> shapeUpdate(const Node& n) {
  // Operand roles by op: the tensors shaped like the parameter, then the scalars.
  struct Layout {
    std::vector<const char*> likeParam;  ///< after w (operand 0)
    std::vector<const char*> scalars;    ///< the rest, in order; the last one (grad_scale) optional
  };
  Layout layout;
  if (n.kind() == OpKind::SgdUpdate)
    layout = {{"gradient"}, {"learning rate", "grad_scale"}};
  else if (n.kind() == OpKind::SgdMomentumUpdate)
    layout = {{"gradient", "velocity"}, {"learning rate", "grad_scale"}};
  else if (n.kind() == OpKind::AdamUpdate)
    layout = {{"gradient", "first moment", "second moment"}, {"step count", "learning rate", "grad_scale"}};
  else
    return Unexpected(shapeError(n, "internal error: shapeUpdate on an op that is no optimizer update"));
  const Value* w = n.input(0);
  SHOAL_SHAPE_TRY(requireFloat(n, w, "parameter"));
  size_t i = 1;
  for (const char* what : layout.likeParam) {
    if (i >= n.numInputs()) return Unexpected(shapeError(n, fmt::format("missing the {} operand", what)));
    SHOAL_SHAPE_TRY(requireLike(n, n.input(i++), w, what));
  }
  for (const char* what : layout.scalars) {
    if (i >= n.numInputs()) break;
    // The step count may be any numeric type (the trainer feeds f32); rates are floats.
    if (std::string_view(what) == "step count")
      SHOAL_SHAPE_TRY(requireScalar(n, n.input(i), what));
    else
      SHOAL_SHAPE_TRY(requireFloatScalar(n, n.input(i), what));
    ++i;
  }
  if (n.kind() == OpKind::SgdMomentumUpdate && n.attrs().getInt("nesterov") != 0 && n.attrs().getFloat("momentum") <= 0)
    return Unexpected(shapeError(n, "Nesterov momentum needs a positive momentum"));
  return Types{};
}

Expected<Types> shapeBceWithLogits(const Node& n) {
  const Value* x = n.input(0);
  const Value* t = n.input(1);
  SHOAL_SHAPE_TRY(requireFloat(n, x, "logits"));
  if (t->type() != x->type())
    return Unexpected(
        shapeError(n, fmt::format("targets {} must have the logits' type {} (float probabilities)", sh(t), sh(x))));
  if (n.kind() == OpKind::BceWithLogitsGrad) {
    const Value* dloss = n.input(2);
    SHOAL_SHAPE_TRY(requireScalar(n, dloss, "loss gradient"));
    if (dloss->type().dtype != x->type().dtype)
      return Unexpected(
          shapeError(n, fmt::format("loss gradient {} must have the element type of {}", sh(dloss), sh(x))));
    return Types{x->type()};
  }
  return Types{{x->type().dtype, {}}};
}

Expected<Types> shapeOneHot(const Node& n) {
  const Value* labels = n.input(0);
  if (isFloat(labels->type().dtype))
    return Unexpected(shapeError(n, fmt::format("labels must be integer class ids, got {}", sh(labels))));
  SHOAL_SHAPE_TRY(requireRank(n, labels, 1, "labels"));
  int64_t classes = n.attrs().getInt("classes");
  if (classes <= 0) return Unexpected(shapeError(n, fmt::format("classes must be positive, got {}", classes)));
  auto dt = parseDType(n.attrs().getString("dtype"));
  if (!dt || !isFloat(*dt))
    return Unexpected(shapeError(n, fmt::format("dtype must be f32 or f64, got '{}'", n.attrs().getString("dtype"))));
  return Types{{*dt, {labels->type().shape[0], classes}}};
}

Expected<Types> shapeLossScaleUpdate(const Node& n) {
  // (e, good, s): float scalars, the first two the states it moves.
  SHOAL_SHAPE_TRY(requireFloatScalar(n, n.input(0), "scale exponent"));
  SHOAL_SHAPE_TRY(requireFloatScalar(n, n.input(1), "good-step count"));
  SHOAL_SHAPE_TRY(requireFloatScalar(n, n.input(2), "squared gradient norm"));
  if (n.attrs().getInt("growth_interval") < 1)
    return Unexpected(
        shapeError(n, fmt::format("growth_interval must be 1 or more, got {}", n.attrs().getInt("growth_interval"))));
  return Types{};
}

Expected<Types> shapeGlobalSumSquares(const Node& n) {
  const Value* first = n.input(0);
  SHOAL_SHAPE_TRY(requireFloat(n, first, "operand 0"));
  for (size_t i = 1; i < n.numInputs(); ++i)
    if (n.input(i)->type().dtype != first->type().dtype)
      return Unexpected(
          shapeError(n, fmt::format("operand {} is {}, operand 0 is {}: all operands share one element type", i,
                                    sh(n.input(i)), sh(first))));
  return Types{{first->type().dtype, {}}};
}

Expected<Types> shapeAllReduce(const Node& n) {
  const Value* x = n.input(0);
  SHOAL_SHAPE_TRY(requireFloat(n, x, "operand"));
  const std::string& op = n.attrs().getString("op");
  if (op != "sum" && op != "mean")
    return Unexpected(shapeError(n, fmt::format("op must be sum or mean, got '{}'", op)));
  if (int64_t ranks = n.attrs().getInt("ranks"); ranks < 1)
    return Unexpected(shapeError(n, fmt::format("ranks must be 1 or more, got {}", ranks)));
  return Types{x->type()};
}

}  // namespace shoal::shape
