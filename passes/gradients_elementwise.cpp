// Gradient rules of the elementwise family: activations and math (their *_grad rows or a
// composite of existing ops), pow, minimum/maximum, where and the reductions. Each follows
// PyTorch's derivatives.yaml, including its choices at kinks and ties.
#include "passes/gradients.h"

namespace shoal {

namespace {

#define SHOAL_TRY_VALUE(var, expr)          \
  auto var##OrError_ = (expr);              \
  if (!var##OrError_) return var##OrError_; \
  Value* var = *var##OrError_

// The row `grad(operand, dy)` of an op whose derivative reads its input x (or, with
// `fromOutput`, its result y), carrying the forward node's float attributes.
Expected<Value*> localGrad(const GradientArgs& g, OpKind grad, bool fromOutput = false) {
  Attrs a;
  for (const auto& [key, value] : g.attrs().entries()) a.set(key, value);
  return g.emit(grad, {fromOutput ? g.y() : g.x(), g.dy}, std::move(a));
}

// A scalar constant of the operand's element type.
Expected<Value*> scalar(const GradientArgs& g, double v, const std::string& suffix) {
  return g.constant(TensorLiteral{{}, {v}}, suffix);
}

// The reduced result's shape with every reduced axis kept as extent 1 (a view of dy or y when
// keepdim was 0), so it broadcasts against the input.
Expected<Value*> keptDims(const GradientArgs& g, Value* v, const std::string& suffix) {
  if (g.attrs().getInt("keepdim") != 0) return v;
  const Shape& xs = g.x()->type().shape;
  const int64_t rank = int64_t(xs.size());
  const std::vector<int64_t>& axes = g.attrs().getInts("axes");
  Shape kept = xs;
  for (int64_t d = 0; d < rank; ++d)
    if (axes.empty()) kept[size_t(d)] = 1;
  for (int64_t a : axes) kept[size_t(a < 0 ? a + rank : a)] = 1;
  if (kept == v->type().shape) return v;
  return g.emit(OpKind::Reshape, {v}, attrsOf({{"shape", kept}}), suffix);
}

// dy to the operand that is the extreme one, half of it to each on a tie.
Expected<Value*> extremumGrad(const GradientArgs& g, OpKind grad) {
  SHOAL_TRY_VALUE(full, g.emit(grad, {g.x(), g.input(1 - g.operand), g.dy}, {}, g.broadcast() ? ".full" : ""));
  return g.reduceToOperand(full);
}

// torch.amax/amin's rule: mask = (x == y), dx = mask * (dy / sum(mask)), so ties split dy
// evenly (and a NaN result, which equals nothing, gives NaN as in PyTorch).
Expected<Value*> reduceExtremumGrad(const GradientArgs& g) {
  SHOAL_TRY_VALUE(y, keptDims(g, g.y(), ".y"));
  SHOAL_TRY_VALUE(dy, keptDims(g, g.dy, ".kept"));
  SHOAL_TRY_VALUE(hit, g.emit(OpKind::Equal, {g.x(), y}, {}, ".hit"));
  const std::string dtype(dtypeName(g.x()->type().dtype));
  SHOAL_TRY_VALUE(mask, g.emit(OpKind::Cast, {hit}, attrsOf({{"dtype", dtype}}), ".mask"));
  SHOAL_TRY_VALUE(ties, g.emit(OpKind::ReduceSum, {mask},
                               attrsOf({{"axes", g.attrs().getInts("axes")}, {"keepdim", int64_t(1)}}), ".ties"));
  SHOAL_TRY_VALUE(share, g.emit(OpKind::Div, {dy, ties}, {}, ".share"));
  return g.emit(OpKind::Mul, {mask, share}, {});
}

}  // namespace

SHOAL_GRADIENT(Gelu) { return localGrad(g, OpKind::GeluGrad); }
SHOAL_GRADIENT(GeluTanh) { return localGrad(g, OpKind::GeluTanhGrad); }
SHOAL_GRADIENT(Silu) { return localGrad(g, OpKind::SiluGrad); }
SHOAL_GRADIENT(Hardswish) { return localGrad(g, OpKind::HardswishGrad); }
SHOAL_GRADIENT(Hardsigmoid) { return localGrad(g, OpKind::HardsigmoidGrad); }
SHOAL_GRADIENT(Clip) { return localGrad(g, OpKind::ClipGrad); }
SHOAL_GRADIENT(LeakyRelu) { return localGrad(g, OpKind::LeakyReluGrad); }
SHOAL_GRADIENT(Erf) { return localGrad(g, OpKind::ErfGrad); }
SHOAL_GRADIENT(Abs) { return localGrad(g, OpKind::AbsGrad); }
// relu6, rsqrt and reciprocal read their derivative off the output, so x may die at the op.
SHOAL_GRADIENT(Relu6) { return localGrad(g, OpKind::Relu6Grad, /*fromOutput=*/true); }
SHOAL_GRADIENT(Rsqrt) { return localGrad(g, OpKind::RsqrtGrad, /*fromOutput=*/true); }
SHOAL_GRADIENT(Reciprocal) { return localGrad(g, OpKind::ReciprocalGrad, /*fromOutput=*/true); }

// exp' = exp: dy * y.
SHOAL_GRADIENT(Exp) { return g.emit(OpKind::Mul, {g.dy, g.y()}, {}); }
// log' = 1/x: dy / x.
SHOAL_GRADIENT(Log) { return g.emit(OpKind::Div, {g.dy, g.x()}, {}); }
// sqrt' = 1 / (2 sqrt x): dy / (2 y), PyTorch's expression (inf at 0).
SHOAL_GRADIENT(Sqrt) {
  SHOAL_TRY_VALUE(twice, g.emit(OpKind::Scale, {g.y()}, attrsOf({{"scale", 2.0}, {"shift", 0.0}}), ".twice"));
  return g.emit(OpKind::Div, {g.dy, twice}, {});
}

// ---- trigonometric and hyperbolic functions: composites of the forward rows ----

namespace {

// x·x·scale + shift (1 - x², x² + 1, x² - 1, 1 + y²).
Expected<Value*> squareAffine(const GradientArgs& g, Value* v, double scale, double shift) {
  SHOAL_TRY_VALUE(sq, g.emit(OpKind::Mul, {v, v}, {}, ".sq"));
  return g.emit(OpKind::Scale, {sq}, attrsOf({{"scale", scale}, {"shift", shift}}), ".affine");
}

// dy · sign · f(x) for a forward row f (cos for sin, sinh for cosh, ...).
Expected<Value*> timesRow(const GradientArgs& g, OpKind f, double sign) {
  SHOAL_TRY_VALUE(d, g.emit(f, {g.x()}, {}, ".deriv"));
  if (sign > 0) return g.emit(OpKind::Mul, {g.dy, d}, {});
  SHOAL_TRY_VALUE(prod, g.emit(OpKind::Mul, {g.dy, d}, {}, ".prod"));
  return g.emit(OpKind::Neg, {prod}, {});
}

// dy · sign / sqrt(x²·scale + shift).
Expected<Value*> overRoot(const GradientArgs& g, double scale, double shift, double sign) {
  SHOAL_TRY_VALUE(inner, squareAffine(g, g.x(), scale, shift));
  SHOAL_TRY_VALUE(r, g.emit(OpKind::Rsqrt, {inner}, {}, ".rsqrt"));
  if (sign > 0) return g.emit(OpKind::Mul, {g.dy, r}, {});
  SHOAL_TRY_VALUE(prod, g.emit(OpKind::Mul, {g.dy, r}, {}, ".prod"));
  return g.emit(OpKind::Neg, {prod}, {});
}

// dy / (v²·scale + shift).
Expected<Value*> overSquare(const GradientArgs& g, Value* v, double scale, double shift) {
  SHOAL_TRY_VALUE(den, squareAffine(g, v, scale, shift));
  return g.emit(OpKind::Div, {g.dy, den}, {});
}

}  // namespace

SHOAL_GRADIENT(Sin) { return timesRow(g, OpKind::Cos, 1); }
SHOAL_GRADIENT(Cos) { return timesRow(g, OpKind::Sin, -1); }
SHOAL_GRADIENT(Sinh) { return timesRow(g, OpKind::Cosh, 1); }
SHOAL_GRADIENT(Cosh) { return timesRow(g, OpKind::Sinh, 1); }
// tan' = 1 + tan²: from the output, dy · (1 + y²).
SHOAL_GRADIENT(Tan) {
  SHOAL_TRY_VALUE(den, squareAffine(g, g.y(), 1, 1));
  return g.emit(OpKind::Mul, {g.dy, den}, {});
}
SHOAL_GRADIENT(Asin) { return overRoot(g, -1, 1, 1); }
SHOAL_GRADIENT(Acos) { return overRoot(g, -1, 1, -1); }
SHOAL_GRADIENT(Asinh) { return overRoot(g, 1, 1, 1); }
SHOAL_GRADIENT(Acosh) { return overRoot(g, 1, -1, 1); }
SHOAL_GRADIENT(Atan) { return overSquare(g, g.x(), 1, 1); }
SHOAL_GRADIENT(Atanh) { return overSquare(g, g.x(), -1, 1); }

// d/da a^b = b a^(b-1), d/db a^b = a^b ln a, each with PyTorch's zeros (b = 0; a = 0, b >= 0).
SHOAL_GRADIENT(Pow) {
  const OpKind rule = g.operand == 0 ? OpKind::PowGradBase : OpKind::PowGradExponent;
  SHOAL_TRY_VALUE(full, g.emit(rule, {g.input(0), g.input(1), g.dy}, {}, g.broadcast() ? ".full" : ""));
  return g.reduceToOperand(full);
}

SHOAL_GRADIENT(Minimum) { return extremumGrad(g, OpKind::MinimumGrad); }
SHOAL_GRADIENT(Maximum) { return extremumGrad(g, OpKind::MaximumGrad); }

// where(cond, dy, 0) to a, where(cond, 0, dy) to b, each summed to the operand's shape. The
// condition is bool and never needs a gradient.
SHOAL_GRADIENT(Where) {
  SHOAL_TRY_VALUE(zero, scalar(g, 0.0, ".zero"));
  std::vector<Value*> ins =
      g.operand == 1 ? std::vector<Value*>{g.input(0), g.dy, zero} : std::vector<Value*>{g.input(0), zero, g.dy};
  SHOAL_TRY_VALUE(routed, g.emit(OpKind::Where, std::move(ins), {}, ".where"));
  return g.reduceToOperand(routed);
}

// Every element gets the gradient of the sum it fell into.
SHOAL_GRADIENT(ReduceSum) {
  SHOAL_TRY_VALUE(kept, keptDims(g, g.dy, ".kept"));
  return g.emitter.broadcastTo(kept, g.x(), g.name, g.node.loc());
}

// dy / count, broadcast: PyTorch's expand(grad) / numel element by element.
SHOAL_GRADIENT(ReduceMean) {
  const int64_t count = g.x()->type().numElements() / std::max<int64_t>(1, g.y()->type().numElements());
  SHOAL_TRY_VALUE(kept, keptDims(g, g.dy, ".kept"));
  SHOAL_TRY_VALUE(n, scalar(g, double(count), ".count"));
  SHOAL_TRY_VALUE(share, g.emit(OpKind::Div, {kept, n}, {}, ".share"));
  return g.emitter.broadcastTo(share, g.x(), g.name, g.node.loc());
}

SHOAL_GRADIENT(ReduceMax) { return reduceExtremumGrad(g); }
SHOAL_GRADIENT(ReduceMin) { return reduceExtremumGrad(g); }

// The product of the other terms, without dividing by zero (PyTorch's prod backward): where a
// slice has no zero, y / x; at the slice's only zero, the product of the rest; otherwise 0.
SHOAL_GRADIENT(ReduceProd) {
  const DType dt = g.x()->type().dtype;
  const Attrs keep = attrsOf({{"axes", g.attrs().getInts("axes")}, {"keepdim", int64_t(1)}});
  SHOAL_TRY_VALUE(y, keptDims(g, g.y(), ".y"));
  SHOAL_TRY_VALUE(dy, keptDims(g, g.dy, ".kept"));
  SHOAL_TRY_VALUE(zero, scalar(g, 0.0, ".zero"));
  SHOAL_TRY_VALUE(one, scalar(g, 1.0, ".one"));
  SHOAL_TRY_VALUE(isZero, g.emit(OpKind::Equal, {g.x(), zero}, {}, ".is_zero"));
  SHOAL_TRY_VALUE(zeroCount, g.emit(OpKind::Cast, {isZero}, attrsOf({{"dtype", std::string(dtypeName(dt))}}), ".zeros"));
  SHOAL_TRY_VALUE(zeros, g.emit(OpKind::ReduceSum, {zeroCount}, keep, ".zero_count"));
  SHOAL_TRY_VALUE(safe, g.emit(OpKind::Where, {isZero, one, g.x()}, {}, ".nonzero"));
  SHOAL_TRY_VALUE(rest, g.emit(OpKind::ReduceProd, {safe}, keep, ".rest"));
  SHOAL_TRY_VALUE(noZero, g.emit(OpKind::Equal, {zeros, zero}, {}, ".no_zero"));
  SHOAL_TRY_VALUE(oneZero, g.emit(OpKind::Equal, {zeros, one}, {}, ".one_zero"));
  SHOAL_TRY_VALUE(quotient, g.emit(OpKind::Div, {y, safe}, {}, ".quotient"));
  SHOAL_TRY_VALUE(atNonzero, g.emit(OpKind::Where, {noZero, quotient, zero}, {}, ".at_nonzero"));
  SHOAL_TRY_VALUE(atZero, g.emit(OpKind::Where, {oneZero, rest, zero}, {}, ".at_zero"));
  SHOAL_TRY_VALUE(others, g.emit(OpKind::Where, {isZero, atZero, atNonzero}, {}, ".others"));
  return g.emit(OpKind::Mul, {others, dy}, {});
}

#undef SHOAL_TRY_VALUE

}  // namespace shoal
