// Shape rules of the norm family (ir/ops.def): batchnorm and its training forms, layernorm,
// groupnorm, dropout.
#include <fmt/format.h>

#include <algorithm>

#include "ir/shape_rules.h"

namespace shoal::shape {

namespace {

Unexpected<Error> failAt(const Node& n, const std::string& msg) { return Unexpected(shapeError(n, msg)); }

// x must be a float tensor [N, C, ...].
Expected<Types> requireChannels(const Node& n, const Value* x) {
  SHOAL_SHAPE_TRY(requireFloat(n, x, "input"));
  if (x->type().rank() < 2) return failAt(n, fmt::format("input must be [N, C, ...] (rank >= 2), got {}", sh(x)));
  return Types{};
}

// Operand `i`, when present, must have x's element type and shape `want`.
Expected<Types> requireOperand(const Node& n, size_t i, const char* what, const Value* x, const Shape& want,
                               const std::string& why) {
  if (i >= n.numInputs()) return Types{};
  const Value* v = n.input(i);
  TensorType expected{x->type().dtype, want};
  if (v->type() != expected)
    return failAt(n, fmt::format("{} must be {} ({}), got {}", what, expected.str(), why, sh(v)));
  return Types{};
}

Expected<Types> requireEps(const Node& n) {
  double eps = n.attrs().getFloat("eps");
  if (!(eps >= 0)) return failAt(n, fmt::format("eps must be >= 0, got {}", formatDouble(eps)));
  return Types{};
}

Expected<Types> requireMomentum(const Node& n) {
  double m = n.attrs().getFloat("momentum");
  if (!(m >= 0 && m <= 1)) return failAt(n, fmt::format("momentum must be in [0, 1], got {}", formatDouble(m)));
  return Types{};
}

std::string perChannel(const Value* x) { return fmt::format("one per channel of {}", sh(x)); }

// The weight (operand w) and bias (operand w + 1) of a per-channel affine, when present.
Expected<Types> requireChannelAffine(const Node& n, size_t w, const Value* x) {
  const Shape c{x->type().shape[1]};
  SHOAL_SHAPE_TRY(requireOperand(n, w, "weight", x, c, perChannel(x)));
  SHOAL_SHAPE_TRY(requireOperand(n, w + 1, "bias", x, c, perChannel(x)));
  return Types{};
}

// layernorm's normalized shape: the last `dims` extents of x.
Expected<Shape> normalizedShape(const Node& n, const Value* x) {
  int64_t dims = n.attrs().getInt("dims");
  if (dims < 1 || dims > x->type().rank())
    return failAt(n, fmt::format("dims must be in [1, {}] (the rank of {}), got {}", x->type().rank(), sh(x), dims));
  const Shape& s = x->type().shape;
  return Shape(s.end() - dims, s.end());
}

Expected<Types> requireLayerNorm(const Node& n, const Value* x, size_t w) {
  SHOAL_SHAPE_TRY(requireFloat(n, x, "input"));
  auto norm = normalizedShape(n, x);
  if (!norm) return Unexpected(norm.error());
  std::string why = fmt::format("the last {} extents of {}", n.attrs().getInt("dims"), sh(x));
  SHOAL_SHAPE_TRY(requireOperand(n, w, "weight", x, *norm, why));
  SHOAL_SHAPE_TRY(requireOperand(n, w + 1, "bias", x, *norm, why));
  return requireEps(n);
}

Expected<Types> requireGroupNorm(const Node& n, const Value* x, size_t w) {
  SHOAL_SHAPE_TRY(requireChannels(n, x));
  int64_t groups = n.attrs().getInt("groups");
  int64_t c = x->type().shape[1];
  if (groups < 1) return failAt(n, fmt::format("groups must be positive, got {}", groups));
  if (c % groups != 0)
    return failAt(n, fmt::format("groups must divide the {} channels of {}, got {}", c, sh(x), groups));
  SHOAL_SHAPE_TRY(requireChannelAffine(n, w, x));
  return requireEps(n);
}

Expected<Types> requireRate(const Node& n) {
  double rate = n.attrs().getFloat("rate");
  if (!(rate >= 0 && rate <= 1)) return failAt(n, fmt::format("rate must be in [0, 1], got {}", formatDouble(rate)));
  return Types{};
}

}  // namespace

Expected<Types> shapeBatchNorm(const Node& n) {
  const Value* x = n.input(0);
  SHOAL_SHAPE_TRY(requireChannels(n, x));
  const Shape c{x->type().shape[1]};
  SHOAL_SHAPE_TRY(requireOperand(n, 1, "running_mean", x, c, perChannel(x)));
  SHOAL_SHAPE_TRY(requireOperand(n, 2, "running_var", x, c, perChannel(x)));
  SHOAL_SHAPE_TRY(requireChannelAffine(n, 3, x));
  SHOAL_SHAPE_TRY(requireMomentum(n));
  SHOAL_SHAPE_TRY(requireEps(n));
  return Types{x->type()};
}

Expected<Types> shapeBatchNormTrain(const Node& n) {
  const Value* x = n.input(0);
  SHOAL_SHAPE_TRY(requireChannels(n, x));
  SHOAL_SHAPE_TRY(requireChannelAffine(n, 1, x));
  SHOAL_SHAPE_TRY(requireEps(n));
  return Types{x->type()};
}

Expected<Types> shapeBatchNormTrainWeightGrad(const Node& n) {
  const Value* x = n.input(0);
  const Value* dy = n.input(1);
  SHOAL_SHAPE_TRY(requireChannels(n, x));
  SHOAL_SHAPE_TRY(requireEps(n));
  if (dy->type() != x->type())
    return failAt(n, fmt::format("the gradient {} must have the input's type {}", sh(dy), sh(x)));
  return Types{{x->type().dtype, {x->type().shape[1]}}};
}

Expected<Types> shapeBatchNormStats(const Node& n) {
  const Value* x = n.input(0);
  SHOAL_SHAPE_TRY(requireChannels(n, x));
  // The unbiased variance divides by count - 1 (PyTorch refuses to train on one value too).
  int64_t c = x->type().shape[1];
  if (x->type().numElements() / std::max<int64_t>(c, 1) < 2)
    return failAt(n, fmt::format("needs more than one value per channel, got {}", sh(x)));
  return Types{{x->type().dtype, {2, c}}};
}

Expected<Types> shapeBatchNormUpdate(const Node& n) {
  const Value* mean = n.input(0);
  SHOAL_SHAPE_TRY(requireFloat(n, mean, "running_mean"));
  if (mean->type().rank() != 1) return failAt(n, fmt::format("running_mean must have rank 1, got {}", sh(mean)));
  if (n.input(1)->type() != mean->type())
    return failAt(n, fmt::format("running_var must be {} like running_mean, got {}", sh(mean), sh(n.input(1))));
  TensorType stats{mean->type().dtype, {2, mean->type().shape[0]}};
  if (n.input(2)->type() != stats)
    return failAt(n,
                  fmt::format("stats must be {} (mean and variance per channel), got {}", stats.str(), sh(n.input(2))));
  if (n.numInputs() > 3 && n.input(3)->type() != TensorType{DType::I64, {}})
    return failAt(n, fmt::format("num_batches_tracked must be i64[], got {}", sh(n.input(3))));
  SHOAL_SHAPE_TRY(requireMomentum(n));
  return Types{};
}

Expected<Types> shapeBatchNormScale(const Node& n) {
  const Value* w = n.input(0);
  SHOAL_SHAPE_TRY(requireFloat(n, w, "weight"));
  if (n.input(1)->type() != w->type())
    return failAt(n, fmt::format("weight {} and variance {} must have one type", sh(w), sh(n.input(1))));
  SHOAL_SHAPE_TRY(requireEps(n));
  return Types{w->type()};
}

Expected<Types> shapeLayerNorm(const Node& n) {
  SHOAL_SHAPE_TRY(requireLayerNorm(n, n.input(0), 1));
  return Types{n.input(0)->type()};
}

Expected<Types> shapeGroupNorm(const Node& n) {
  SHOAL_SHAPE_TRY(requireGroupNorm(n, n.input(0), 1));
  return Types{n.input(0)->type()};
}

Expected<Types> shapeNormGrad(const Node& n) {
  const Value* x = n.input(0);
  const Value* dy = n.input(1);
  if (n.kind() == OpKind::LayerNormGrad) {
    SHOAL_SHAPE_TRY(requireLayerNorm(n, x, 2));
  } else if (n.kind() == OpKind::GroupNormGrad) {
    SHOAL_SHAPE_TRY(requireGroupNorm(n, x, 2));
  } else {
    SHOAL_SHAPE_TRY(requireChannels(n, x));
    SHOAL_SHAPE_TRY(requireOperand(n, 2, "weight", x, Shape{x->type().shape[1]}, perChannel(x)));
    SHOAL_SHAPE_TRY(requireEps(n));
  }
  if (dy->type() != x->type())
    return failAt(n, fmt::format("the gradient {} must have the input's type {}", sh(dy), sh(x)));
  return Types{x->type()};
}

Expected<Types> shapeDropout(const Node& n) {
  SHOAL_SHAPE_TRY(requireFloat(n, n.input(0), "input"));
  SHOAL_SHAPE_TRY(requireRate(n));
  return Types{n.input(0)->type()};
}

Expected<Types> shapeDropoutTrain(const Node& n) {
  SHOAL_SHAPE_TRY(requireFloat(n, n.input(0), "input"));
  const Value* step = n.input(1);
  if (!isFloat(step->type().dtype) || step->type().rank() != 0)
    return failAt(n, fmt::format("step must be a float scalar (the step count), got {}", sh(step)));
  SHOAL_SHAPE_TRY(requireRate(n));
  return Types{n.input(0)->type()};
}

}  // namespace shoal::shape
