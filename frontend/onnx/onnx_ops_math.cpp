// ONNX elementwise math, comparisons, logic, reductions and arg-reductions on shoal's
// elementwise family (exp, log, sqrt, ..., comparisons, where, reduce_*). An op shoal lacks is
// composed from these only where the composition computes what ONNX specifies, NaN and
// infinities included; integer inputs go where shoal's ops take them, else they are refused.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <compare>
#include <functional>
#include <limits>

#include "frontend/onnx/onnx_fold.h"
#include "frontend/onnx/onnx_importer.h"
#include "frontend/onnx/onnx_ops_families.h"

namespace shoal::onnx_import {

namespace {

void ignoreConsumed(NodeContext& c) {
  if (c.opset() < 6) c.ignoreAttr("consumed_inputs");
}

Value* binop(NodeContext& c, OpKind k, Value* a, Value* b, const std::string& suffix) {
  return c.emit(k, {a, b}, {}, suffix);
}

Value* whereOp(NodeContext& c, Value* cond, Value* a, Value* b, const std::string& suffix) {
  return c.emit(OpKind::Where, {cond, a, b}, {}, suffix);
}

Value* scaled(NodeContext& c, Value* x, double s, const std::string& suffix) {
  if (s == 1.0) return x;
  Attrs a;
  a.set("scale", s);
  return c.emit(OpKind::Scale, {x}, a, suffix);
}

// Input i, its shape made NumPy-broadcastable against input 0 (opsets < 7: broadcast/axis).
Value* broadcastOperand(NodeContext& c, size_t i) {
  if (i != 1) return c.value(i);
  return c.reshape(c.value(1), legacyBroadcastShape(c), "b");
}

void requireSameTypes(NodeContext& c, size_t a, size_t b) {
  if (c.dtype(a) != c.dtype(b))
    c.invalid(fmt::format("operand types differ: {} and {}", c.type(a).str(), c.type(b).str()));
}

}  // namespace

// ---- unary math ----------------------------------------------------------------------------------

void lowerUnaryMath(NodeContext& c) {
  ignoreConsumed(c);
  const std::string& op = c.opType();
  if (op == "Abs" && !isFloat(c.dtype(0))) {
    // Integers: x < 0 ? 0 - x : x (unsigned values are their own magnitude).
    if (c.dtype(0) == DType::U8 || c.dtype(0) == DType::Bool) return c.setOutput(0, c.value(0));
    Value* x = c.value(0);
    Value* zero = c.scalar(0, c.dtype(0), "zero");
    Value* neg = c.emit(OpKind::Less, {x, zero}, {}, "negative");
    return c.setOutput(0, whereOp(c, neg, binop(c, OpKind::Sub, zero, x, "negated"), x, "abs"));
  }
  c.requireFloat(0);
  static const std::map<std::string, OpKind> kinds = {{"Exp", OpKind::Exp},   {"Log", OpKind::Log},
                                                      {"Sqrt", OpKind::Sqrt}, {"Reciprocal", OpKind::Reciprocal},
                                                      {"Erf", OpKind::Erf},   {"Abs", OpKind::Abs},
                                                      {"Sin", OpKind::Sin},   {"Cos", OpKind::Cos},
                                                      {"Tan", OpKind::Tan},   {"Asin", OpKind::Asin},
                                                      {"Acos", OpKind::Acos}, {"Atan", OpKind::Atan},
                                                      {"Sinh", OpKind::Sinh}, {"Cosh", OpKind::Cosh},
                                                      {"Asinh", OpKind::Asinh}, {"Acosh", OpKind::Acosh},
                                                      {"Atanh", OpKind::Atanh}};
  c.setOutput(0, c.emit(kinds.at(op), {c.value(0)}));
}

void lowerSoftsign(NodeContext& c) {
  c.requireFloat(0);
  Value* x = c.value(0);
  Value* den = binop(c, OpKind::Add, c.scalar(1, c.dtype(0), "one"), c.emit(OpKind::Abs, {x}, {}, "abs"), "den");
  c.setOutput(0, binop(c, OpKind::Div, x, den, "softsign"));
}

// Elu: x > 0 ? x : alpha (exp(x) - 1); Selu: gamma times that. exp reads min(x, 0), so the
// branch where() drops never overflows.
void lowerElu(NodeContext& c) {
  c.requireFloat(0);
  ignoreConsumed(c);
  bool selu = c.opType() == "Selu";
  double alpha = c.attrFloat("alpha", selu ? 1.67326319217681884765625 : 1.0);
  double gamma = selu ? c.attrFloat("gamma", 1.05070102214813232421875) : 1.0;
  DType dt = c.dtype(0);
  Value* x = c.value(0);
  Value* zero = c.scalar(0, dt, "zero");
  Value* e = c.emit(OpKind::Exp, {binop(c, OpKind::Minimum, x, zero, "nonpos")}, {}, "exp");
  Value* neg = scaled(c, binop(c, OpKind::Sub, e, c.scalar(1, dt, "one"), "expm1"), alpha, "alpha");
  Value* y = whereOp(c, c.emit(OpKind::Greater, {x, zero}, {}, "positive"), x, neg, selu ? "elu" : "");
  c.setOutput(0, scaled(c, y, gamma, "gamma"));
}

void lowerThresholdedRelu(NodeContext& c) {
  c.requireFloat(0);
  double alpha = c.attrFloat("alpha", 1.0);
  Value* x = c.value(0);
  Value* above = c.emit(OpKind::Greater, {x, c.scalar(alpha, c.dtype(0), "alpha")}, {}, "above");
  c.setOutput(0, whereOp(c, above, x, c.scalar(0, c.dtype(0), "zero"), ""));
}

void lowerLeakyReluOp(NodeContext& c) {
  c.requireFloat(0);
  ignoreConsumed(c);
  Attrs a;
  a.set("alpha", c.attrFloat("alpha", 0.01));
  c.setOutput(0, c.emit(OpKind::LeakyRelu, {c.value(0)}, a));
}

void lowerHardSigmoid(NodeContext& c) {
  c.requireFloat(0);
  ignoreConsumed(c);
  Attrs a;
  a.set("alpha", c.attrFloat("alpha", 0.2));
  a.set("beta", c.attrFloat("beta", 0.5));
  c.setOutput(0, c.emit(OpKind::Hardsigmoid, {c.value(0)}, a));
}

void lowerHardSwish(NodeContext& c) {
  c.requireFloat(0);
  c.setOutput(0, c.emit(OpKind::Hardswish, {c.value(0)}));
}

// Clip: min(max(x, lo), hi) (NumPy's clip, as ONNX's reference). Bounds known at import go into
// shoal's clip (floats); bounds computed at run time, and integers, use maximum and minimum.
void lowerClip(NodeContext& c) {
  ignoreConsumed(c);
  DType dt = c.dtype(0);
  Value* x = c.value(0);
  if (c.opset() < 11) {
    c.requireFloat(0);
    Attrs a;
    a.set("min", c.attrFloat("min", -std::numeric_limits<double>::infinity()));
    a.set("max", c.attrFloat("max", std::numeric_limits<double>::infinity()));
    return c.setOutput(0, c.emit(OpKind::Clip, {x}, a));
  }
  for (size_t i = 1; i <= 2; ++i)
    if (c.has(i)) {
      if (c.dtype(i) != dt)
        c.invalid(fmt::format("bound {} differs from the input {}", c.type(i).str(), c.type(0).str()));
      if (numElements(c.shape(i)) != 1) c.invalid(fmt::format("bound {} is not a scalar", c.type(i).str()));
    }
  bool knownBounds = (!c.has(1) || c.known(1)) && (!c.has(2) || c.known(2));
  if (isFloat(dt) && knownBounds) {
    Attrs a;
    a.set("min", c.has(1) ? c.known(1)->at(0) : -std::numeric_limits<double>::infinity());
    a.set("max", c.has(2) ? c.known(2)->at(0) : std::numeric_limits<double>::infinity());
    return c.setOutput(0, c.emit(OpKind::Clip, {x}, a));
  }
  if (dt == DType::Bool) c.unsupported("Clip on bool");
  Value* y = x;
  if (c.has(1)) y = binop(c, OpKind::Maximum, y, c.reshape(c.value(1), {}, "lo"), "at_least");
  if (c.has(2)) y = binop(c, OpKind::Minimum, y, c.reshape(c.value(2), {}, "hi"), "at_most");
  if (y == x) return c.setOutput(0, x);
  c.setOutput(0, y);
}

// Sign: x < 0 ? -1 : (x > 0 ? 1 : x * 0) (NaN stays NaN, zeros stay zeros).
void lowerSign(NodeContext& c) {
  DType dt = c.dtype(0);
  if (dt == DType::Bool) c.unsupported("Sign on bool");
  Value* x = c.value(0);
  Value* zero = c.scalar(0, dt, "zero");
  Value* rest = isFloat(dt) ? binop(c, OpKind::Mul, x, zero, "zeroed") : zero;
  Value* pos = whereOp(c, c.emit(OpKind::Greater, {x, zero}, {}, "positive"), c.scalar(1, dt, "one"), rest, "nonneg");
  if (dt == DType::U8) return c.setOutput(0, pos);
  c.setOutput(0, whereOp(c, c.emit(OpKind::Less, {x, zero}, {}, "negative"), c.scalar(-1, dt, "minus_one"), pos, ""));
}

// Pow: shoal's pow for a float base; an exponent of another type is cast to the base's (ONNX
// allows integer exponents).
// Pow: a float base takes the exponent cast to its type. An integer base is computed as ONNX
// Runtime does, in double then converted to the base's type (toward zero): the power is
// scaled up by 2^-50 of itself first, so an exact integer power that the device's pow
// returns a few ulps low (3^6 as 728.9999999999999) still truncates to itself.
void lowerPow(NodeContext& c) {
  if (c.dtype(0) == DType::Bool) c.invalid("the base is bool");
  if (c.dtype(1) == DType::Bool) c.invalid("the exponent is bool");
  const bool integerBase = !isFloat(c.dtype(0));
  const DType work = integerBase ? DType::F64 : c.dtype(0);
  auto castTo = [&](Value* v, DType t, const std::string& suffix) {
    if (v->type().dtype == t) return v;
    Attrs a;
    a.set("dtype", std::string(dtypeName(t)));
    return c.emit(OpKind::Cast, {v}, a, suffix);
  };
  // The exponent is cast before any reshape: it may be of a storage type (uint64).
  Value* e = castTo(c.value(1), work, "exponent");
  if (c.opset() < 7) e = c.reshape(e, legacyBroadcastShape(c), "b");
  Value* base = castTo(c.value(0), work, "base");
  Value* p = c.emit(OpKind::Pow, {base, e}, {}, integerBase ? "power" : "");
  if (!integerBase) return c.setOutput(0, p);
  Attrs nudge;
  nudge.set("scale", 1.0 + std::ldexp(1.0, -50));
  p = c.emit(OpKind::Scale, {p}, nudge, "nudged");
  c.setOutput(0, castTo(p, c.dtype(0), ""));
}

void lowerMinMax(NodeContext& c) {
  ignoreConsumed(c);
  OpKind k = c.opType() == "Min" ? OpKind::Minimum : OpKind::Maximum;
  if (c.numInputs() == 0) c.invalid("needs at least one input");
  if (c.dtype(0) == DType::Bool) c.unsupported(fmt::format("{} on bool", c.opType()));
  Value* acc = c.value(0);
  for (size_t i = 1; i < c.numInputs(); ++i) {
    requireSameTypes(c, 0, i);
    acc = binop(c, k, acc, c.value(i), fmt::format("{}{}", opName(k), i));
  }
  c.setOutput(0, acc);
}

// Mod with fmod=1 is C's fmod (the dividend's sign), shoal's `fmod`; with fmod=0 (integers
// only) the remainder takes the divisor's sign, as Python's %: fmod's remainder plus the
// divisor where the two signs differ and the remainder is not 0.
void lowerMod(NodeContext& c) {
  requireSameTypes(c, 0, 1);
  const DType dt = c.dtype(0);
  if (dt == DType::Bool) c.invalid("Mod of bool");
  const bool cMod = c.attrInt("fmod", 0) != 0;
  if (isFloat(dt) && !cMod) c.invalid("fmod=0 on floating-point inputs (ONNX requires fmod=1 for them)");
  Value* b = c.value(1);
  Value* r = c.emit(OpKind::Fmod, {c.value(0), b}, {}, cMod ? "" : "fmod");
  if (cMod || dt == DType::U8) return c.setOutput(0, r);  // u8: both signs are +
  Value* zero = c.scalar(0, dt, "zero");
  Value* nonzero = c.emit(OpKind::NotEqual, {r, zero}, {}, "nonzero");
  Value* differ = c.emit(OpKind::NotEqual, {c.emit(OpKind::Less, {r, zero}, {}, "r_negative"),
                                            c.emit(OpKind::Less, {b, zero}, {}, "b_negative")},
                         {}, "signs_differ");
  Value* fix = c.emit(OpKind::Where, {nonzero, differ, nonzero}, {}, "fix");  // nonzero && differ
  c.setOutput(0, c.emit(OpKind::Where, {fix, c.emit(OpKind::Add, {r, b}, {}, "shifted"), r}));
}

// Mod folded at import, in double like lowerMod's ops: C's fmod, or Python's % for fmod=0.
// An integer divisor of 0 is an error here as in the interpreter.
bool foldMod(NodeContext& c) {
  requireSameTypes(c, 0, 1);
  const DType dt = c.dtype(0);
  if (dt == DType::Bool) c.invalid("Mod of bool");
  const bool cMod = c.attrInt("fmod", 0) != 0;
  if (isFloat(dt) && !cMod) c.invalid("fmod=0 on floating-point inputs (ONNX requires fmod=1 for them)");
  const Tensor& divisor = *c.known(1);
  if (!isFloat(dt))
    for (int64_t i = 0; i < divisor.numElements(); ++i)
      if (divisor.at(i) == 0) c.invalid("integer division by zero (a divisor is 0)");
  auto out = fold::binary(*c.known(0), divisor, dt, [cMod](double x, double y) {
    double r = std::fmod(x, y);
    if (!cMod && r != 0 && (r < 0) != (y < 0)) r += y;
    return r;
  });
  if (!out) c.invalid("operand shapes do not broadcast");
  c.setKnownOutput(0, *out);
  return true;
}

void lowerCompare(NodeContext& c) {
  static const std::map<std::string, OpKind> kinds = {{"Equal", OpKind::Equal},
                                                      {"Less", OpKind::Less},
                                                      {"Greater", OpKind::Greater},
                                                      {"LessOrEqual", OpKind::LessEqual},
                                                      {"GreaterOrEqual", OpKind::GreaterEqual}};
  requireSameTypes(c, 0, 1);
  OpKind k = kinds.at(c.opType());
  if (c.dtype(0) == DType::Bool && k != OpKind::Equal) c.unsupported(fmt::format("{} on bool", c.opType()));
  c.setOutput(0, c.emit(k, {c.value(0), broadcastOperand(c, 1)}));
}

// Logic on bool: And = a ? b : false, Or = a ? true : b, Xor = a != b, Not = x == false.
void lowerLogic(NodeContext& c) {
  for (size_t i = 0; i < c.numInputs(); ++i)
    if (c.dtype(i) != DType::Bool)
      c.invalid(fmt::format("{} needs bool operands, got {}", c.opType(), c.type(i).str()));
  const std::string& op = c.opType();
  Value* a = c.value(0);
  if (op == "Not") return c.setOutput(0, c.emit(OpKind::Equal, {a, c.scalar(0, DType::Bool, "false")}, {}, "not"));
  Value* b = broadcastOperand(c, 1);
  if (op == "Xor") return c.setOutput(0, c.emit(OpKind::NotEqual, {a, b}, {}, "xor"));
  // where() broadcasts its three operands; the bool constant is a scalar.
  if (op == "And") return c.setOutput(0, whereOp(c, a, b, c.scalar(0, DType::Bool, "false"), "and"));
  c.setOutput(0, whereOp(c, a, c.scalar(1, DType::Bool, "true"), b, "or"));
}

void lowerWhere(NodeContext& c) {
  if (c.dtype(0) != DType::Bool) c.invalid(fmt::format("the condition must be bool, got {}", c.type(0).str()));
  requireSameTypes(c, 1, 2);
  c.setOutput(0, c.emit(OpKind::Where, {c.value(0), c.value(1), c.value(2)}));
}

// Pow of tensors known at import (an integer base truncated toward zero, as the lowering).
bool foldPow(NodeContext& c) {
  if (c.dtype(0) == DType::Bool) c.invalid("the base is bool");
  if (c.dtype(1) == DType::Bool) c.invalid("the exponent is bool");
  auto out = fold::binary(*c.known(0), c.known(1)->reshaped(legacyBroadcastShape(c)), c.dtype(0),
                          [](double b, double e) { return std::pow(b, e); });
  if (!out) c.invalid("operand shapes do not broadcast");
  c.setKnownOutput(0, *out);
  return true;
}

// The same three on tensors known at import (the legacy exporter's shape arithmetic: an
// Expand's target built as Where(Equal(shape, -1), ones, shape)).
bool foldCompare(NodeContext& c) {
  requireSameTypes(c, 0, 1);
  const std::string& op = c.opType();
  std::function<bool(std::partial_ordering)> holds;
  if (op == "Equal") holds = [](std::partial_ordering o) { return o == 0; };
  else if (op == "Less") holds = [](std::partial_ordering o) { return o < 0; };
  else if (op == "Greater") holds = [](std::partial_ordering o) { return o > 0; };
  else if (op == "LessOrEqual") holds = [](std::partial_ordering o) { return o <= 0; };
  else holds = [](std::partial_ordering o) { return o >= 0; };
  auto out = fold::compare(*c.known(0), c.known(1)->reshaped(legacyBroadcastShape(c)), holds);
  if (!out) c.invalid("operand shapes do not broadcast");
  c.setKnownOutput(0, *out);
  return true;
}

bool foldLogic(NodeContext& c) {
  for (size_t i = 0; i < c.numInputs(); ++i)
    if (c.dtype(i) != DType::Bool)
      c.invalid(fmt::format("{} needs bool operands, got {}", c.opType(), c.type(i).str()));
  const std::string& op = c.opType();
  if (op == "Not") return c.setKnownOutput(0, fold::unary(*c.known(0), DType::Bool, [](double x) { return x == 0; })), true;
  std::function<double(double, double)> f;
  if (op == "And") f = [](double a, double b) { return double(a != 0 && b != 0); };
  else if (op == "Or") f = [](double a, double b) { return double(a != 0 || b != 0); };
  else f = [](double a, double b) { return double((a != 0) != (b != 0)); };
  auto out = fold::binary(*c.known(0), c.known(1)->reshaped(legacyBroadcastShape(c)), DType::Bool, f);
  if (!out) c.invalid("operand shapes do not broadcast");
  c.setKnownOutput(0, *out);
  return true;
}

bool foldWhere(NodeContext& c) {
  if (c.dtype(0) != DType::Bool) c.invalid(fmt::format("the condition must be bool, got {}", c.type(0).str()));
  requireSameTypes(c, 1, 2);
  auto out = fold::where(*c.known(0), *c.known(1), *c.known(2));
  if (!out) c.invalid("operand shapes do not broadcast");
  c.setKnownOutput(0, *out);
  return true;
}

// BitShift of unsigned integers (uint8; uint16 and uint32 held wider), exact and within the
// type: computed in int64 as (x mod 2^(B − s)) · 2^s to the left (the bits shifted out
// dropped) and x div 2^s to the right, B the type's width and s clamped to B (everything
// shifted out gives 0, as NumPy). uint64 has no compute type and is refused before this.
void lowerBitShift(NodeContext& c) {
  const std::string direction = c.attrString("direction");
  if (direction != "LEFT" && direction != "RIGHT") c.invalid(fmt::format("direction '{}' (LEFT or RIGHT)", direction));
  const DType stored = c.slot(0).onnxDType();
  int64_t bits = stored == DType::U8 ? 8 : stored == DType::U16 ? 16 : stored == DType::U32 ? 32 : 0;
  if (bits == 0) c.invalid(fmt::format("BitShift of {} (ONNX shifts unsigned integers)", dtypeName(stored)));
  if (c.slot(1).onnxDType() != stored) c.invalid("the shift amounts' type differs from the input's");
  auto cast = [&](Value* v, DType t, const std::string& suffix) {
    if (v->type().dtype == t) return v;
    Attrs a;
    a.set("dtype", std::string(dtypeName(t)));
    return c.emit(OpKind::Cast, {v}, a, suffix);
  };
  Value* x = cast(c.value(0), DType::I64, "x64");
  Value* s = c.emit(OpKind::Minimum, {cast(broadcastOperand(c, 1), DType::I64, "s64"), c.scalar(double(bits), DType::I64, "width")},
                    {}, "shift");
  auto powerOfTwo = [&](Value* e, const std::string& suffix) {
    Value* p = c.emit(OpKind::Pow, {c.scalar(2, DType::F64, suffix + "_two"), cast(e, DType::F64, suffix + "_exp")}, {}, suffix);
    return cast(p, DType::I64, suffix + "_i64");
  };
  Value* step = powerOfTwo(s, "pow2_shift");
  Value* y;
  if (direction == "LEFT") {
    Value* keep = powerOfTwo(c.emit(OpKind::Sub, {c.scalar(double(bits), DType::I64, "bits"), s}, {}, "kept_bits"), "pow2_kept");
    y = c.emit(OpKind::Mul, {c.emit(OpKind::Fmod, {x, keep}, {}, "low_bits"), step}, {}, "shifted");
  } else {
    y = c.emit(OpKind::Div, {x, step}, {}, "shifted");
  }
  c.setOutput(0, cast(y, c.dtype(0), ""));
}

void lowerIsNaN(NodeContext& c) {
  c.requireFloat(0);
  c.setOutput(0, c.emit(OpKind::NotEqual, {c.value(0), c.value(0)}, {}, "isnan"));
}

void lowerIsInf(NodeContext& c) {
  c.requireFloat(0);
  bool pos = c.attrInt("detect_positive", 1) != 0, neg = c.attrInt("detect_negative", 1) != 0;
  Value* x = c.value(0);
  DType dt = c.dtype(0);
  double inf = std::numeric_limits<double>::infinity();
  Value* p = pos ? c.emit(OpKind::Equal, {x, c.scalar(inf, dt, "inf")}, {}, "posinf") : nullptr;
  Value* n = neg ? c.emit(OpKind::Equal, {x, c.scalar(-inf, dt, "neginf")}, {}, "neginf") : nullptr;
  if (p && n) return c.setOutput(0, whereOp(c, p, c.scalar(1, DType::Bool, "true"), n, "isinf"));
  if (p || n) return c.setOutput(0, p ? p : n);
  c.setOutput(0, c.constantValue(Tensor(DType::Bool, c.shape(0)), "none"));
}

// ---- reductions ---------------------------------------------------------------------------------

// ReduceSum/Mean/Max/Min on shoal's reductions; the others composed: SumSquare = sum(x·x),
// L1 = sum|x|, L2 = sqrt(sum(x·x)), LogSum = log(sum x), LogSumExp = log(sum(exp x)) (ONNX's
// reference computes it so too).
namespace {

struct ReduceAxes {
  std::vector<int64_t> axes;  // as written (empty: every axis, unless noop)
  bool keep = true;
  bool noop = false;  // noop_with_empty_axes with no axes: the identity
};

ReduceAxes reduceAxes(NodeContext& c) {
  ReduceAxes r;
  r.keep = c.attrInt("keepdims", 1) != 0;
  // axes: an input for ReduceSum from opset 13, for every reduction from opset 18.
  bool axesInput = c.opset() >= (c.opType() == "ReduceSum" ? 13 : 18);
  if (axesInput) {
    r.noop = c.attrInt("noop_with_empty_axes", 0) != 0;
    if (c.has(1)) r.axes = c.constantInts(1, "axes");
  } else {
    r.axes = c.attrInts("axes", std::vector<int64_t>{});
  }
  r.noop = r.noop && r.axes.empty();
  return r;
}

}  // namespace

// A reduction of a tensor known at import (shape arithmetic: the product of some extents).
bool foldReduce(NodeContext& c) {
  const std::string& op = c.opType();
  const Tensor& x = *c.known(0);
  if (op == "ReduceMean" && !isFloat(x.dtype())) return false;
  ReduceAxes r = reduceAxes(c);
  if (r.noop) return c.setKnownOutput(0, x), true;
  const Shape& xs = x.shape();
  int64_t rank = int64_t(xs.size());
  std::vector<bool> reduced(size_t(rank), r.axes.empty());
  for (int64_t a : r.axes) reduced[size_t(c.axis(a, rank))] = true;
  Shape out, kept;
  for (int64_t d = 0; d < rank; ++d) {
    if (!reduced[size_t(d)]) out.push_back(xs[size_t(d)]), kept.push_back(xs[size_t(d)]);
    else if (r.keep) out.push_back(1);
  }
  int64_t n = numElements(kept);
  if (n == 0 || x.numElements() == 0) return false;  // empty reductions: the lowering's errors
  std::vector<double> acc(size_t(n), op == "ReduceProd" ? 1.0 : 0.0);
  std::vector<bool> started(size_t(n), false);
  auto st = fold::strides(xs);
  for (int64_t i = 0; i < x.numElements(); ++i) {
    int64_t o = 0;
    for (int64_t d = 0; d < rank; ++d)
      if (!reduced[size_t(d)]) o = o * xs[size_t(d)] + (i / st[size_t(d)]) % xs[size_t(d)];
    double v = x.at(i), &a = acc[size_t(o)];
    if (op == "ReduceMax" || op == "ReduceMin") {
      bool better = op == "ReduceMax" ? v > a : v < a;
      if (!started[size_t(o)] || better || std::isnan(v)) a = v;
      started[size_t(o)] = true;
    } else if (op == "ReduceProd") {
      a *= v;
    } else {
      a += v;
    }
  }
  Tensor y(x.dtype(), out);
  int64_t count = x.numElements() / n;
  for (int64_t o = 0; o < n; ++o) y.set(o, op == "ReduceMean" ? acc[size_t(o)] / double(count) : acc[size_t(o)]);
  c.setKnownOutput(0, y);
  return true;
}

namespace {

// The maximum (or minimum) of integers over `axes` (normalised, kept as extents of 1), exact
// for int64 too: per axis, halving rounds of where(a > b, a, b) between the two halves (an odd
// extent's last element carried into the next round). `tag` prefixes the values' names.
Value* integerMaxMin(NodeContext& c, Value* x, const std::vector<int64_t>& axes, bool isMax, const std::string& tag) {
  auto slice = [&](Value* v, int64_t axis, int64_t from, int64_t to, const std::string& suffix) {
    return sliceOp(c, v, {from}, {to}, {axis}, {1}, suffix);
  };
  for (int64_t axis : axes) {
    if (x->type().shape[size_t(axis)] == 0) c.invalid(fmt::format("{} over an empty axis {}", c.opType(), axis));
    for (int round = 0; x->type().shape[size_t(axis)] > 1; ++round) {
      int64_t n = x->type().shape[size_t(axis)], h = n / 2;
      std::string t = fmt::format("{}axis{}_round{}", tag, axis, round);
      Value* a = slice(x, axis, 0, h, t + "_a");
      Value* b = slice(x, axis, h, 2 * h, t + "_b");
      Value* pick = c.emit(isMax ? OpKind::Greater : OpKind::Less, {a, b}, {}, t + "_pick");
      Value* m = whereOp(c, pick, a, b, t + "_best");
      if (n % 2) {
        Attrs cat;
        cat.set("axis", axis);
        m = c.emit(OpKind::Concat, {m, slice(x, axis, n - 1, n, t + "_odd")}, cat, t + "_carry");
      }
      x = m;
    }
  }
  return x;
}

}  // namespace

// ReduceMax/ReduceMin of integers (a sequence's longest length: torchaudio's Conformer), exact
// for int64 too (integerMaxMin).
void lowerIntegerMaxMin(NodeContext& c, const ReduceAxes& r) {
  if (c.dtype(0) == DType::Bool) c.invalid(fmt::format("{} of bool", c.opType()));
  int64_t rank = c.rank(0);
  if (rank == 0) return c.setOutput(0, c.value(0));  // a scalar is its own maximum (as for floats)
  std::vector<int64_t> axes;
  for (int64_t a : r.axes) axes.push_back(c.axis(a, rank));
  if (axes.empty())
    for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
  Value* x = integerMaxMin(c, c.value(0), axes, c.opType() == "ReduceMax", "");
  if (!r.keep) {
    Shape out;
    for (int64_t d = 0; d < rank; ++d)
      if (std::find(axes.begin(), axes.end(), d) == axes.end()) out.push_back(c.shape(0)[size_t(d)]);
    x = c.reshape(x, out, "squeezed");
  }
  c.setOutput(0, x);
}

void lowerReduce(NodeContext& c) {
  const std::string& op = c.opType();
  ReduceAxes r = reduceAxes(c);
  bool keep = r.keep;
  std::vector<int64_t> axes = r.axes;
  if (r.noop) return c.setOutput(0, c.value(0));
  if (!isFloat(c.dtype(0)) && (op == "ReduceMax" || op == "ReduceMin")) return lowerIntegerMaxMin(c, r);
  if (!isFloat(c.dtype(0)))
    c.unsupported(fmt::format("{} of {} (shoal's reductions are for floats)", op, c.type(0).str()));
  int64_t rank = c.rank(0);
  for (int64_t& a : axes) a = c.axis(a, rank);
  if (rank == 0) return c.setOutput(0, c.value(0));
  Value* x = c.value(0);
  OpKind k = OpKind::ReduceSum;
  if (op == "ReduceMean")
    k = OpKind::ReduceMean;
  else if (op == "ReduceMax")
    k = OpKind::ReduceMax;
  else if (op == "ReduceMin")
    k = OpKind::ReduceMin;
  else if (op == "ReduceProd")
    k = OpKind::ReduceProd;
  else if (op == "ReduceSumSquare" || op == "ReduceL2")
    x = binop(c, OpKind::Mul, x, x, "square");
  else if (op == "ReduceL1")
    x = c.emit(OpKind::Abs, {x}, {}, "abs");
  else if (op == "ReduceLogSumExp")
    x = c.emit(OpKind::Exp, {x}, {}, "exp");
  Attrs a;
  a.set("axes", axes);
  a.set("keepdim", int64_t(keep));
  Value* y = c.emit(k, {x}, a, "reduce");
  if (op == "ReduceL2") y = c.emit(OpKind::Sqrt, {y}, {}, "sqrt");
  if (op == "ReduceLogSum" || op == "ReduceLogSumExp") y = c.emit(OpKind::Log, {y}, {}, "log");
  c.setOutput(0, y);
}

// x with `axis` moved last (a transpose unless every axis after it is a unit axis), as rows
// [rest, extent]; `perm` receives the permutation applied (empty: none).
Value* axisAsRows(NodeContext& c, Value* x, int64_t axis, std::vector<int64_t>& perm) {
  const Shape& xs = x->type().shape;
  int64_t rank = int64_t(xs.size());
  bool last = true;
  for (int64_t d = axis + 1; d < rank; ++d) last &= xs[size_t(d)] == 1;
  perm.clear();
  if (!last) {
    for (int64_t d = 0; d < rank; ++d)
      if (d != axis) perm.push_back(d);
    perm.push_back(axis);
    Attrs a;
    a.set("perm", perm);
    x = c.emit(OpKind::Transpose, {x}, a, "axis_last");
  }
  int64_t n = xs[size_t(axis)];
  return c.reshape(x, {numElements(xs) / n, n}, "rows");
}

namespace {

// ArgMax/ArgMin's result shape: x's with `axis` kept as 1 or dropped.
Shape argShape(Shape xs, int64_t axis, bool keep) {
  if (keep)
    xs[size_t(axis)] = 1;
  else
    xs.erase(xs.begin() + axis);
  return xs;
}

// ArgMax and ArgMin of int64 (beyond double's 2^53, so not through shoal's float argmax; GPT-2's
// sequence classifier takes the last token's position so), exact: the extreme value along the
// axis (integerMaxMin), then the smallest index holding it -- the integer minimum of
// where(x == extreme, index, n) -- or with select_last_index the largest, of where(..., -1).
void lowerInt64ArgMinMax(NodeContext& c, int64_t axis, bool keep, bool lastIndex) {
  const Shape& xs = c.shape(0);
  const int64_t n = xs[size_t(axis)];
  if (n == 0) c.invalid(fmt::format("{} over an empty axis {}", c.opType(), axis));
  Value* x = c.value(0);
  Value* extreme = integerMaxMin(c, x, {axis}, c.opType() == "ArgMax", "extreme_");
  Value* hit = c.emit(OpKind::Equal, {x, extreme}, {}, "hit");
  Shape is(xs.size(), 1);
  is[size_t(axis)] = n;
  Tensor iota(DType::I64, is);
  for (int64_t i = 0; i < n; ++i) iota.set(i, double(i));
  Value* index = c.constantValue(iota, "index");
  Value* candidate = whereOp(c, hit, index, c.scalar(lastIndex ? -1.0 : double(n), DType::I64, "miss"), "candidate");
  Value* idx = integerMaxMin(c, candidate, {axis}, lastIndex, "pick_");
  c.setOutput(0, c.reshape(idx, argShape(xs, axis, keep), "out"));
}

}  // namespace

// ArgMax and ArgMin along any axis: shoal's argmax over rows (the axis moved last); ArgMin is
// the argmax of -x (the first minimum is the first maximum of the negation);
// select_last_index reverses the rows and maps the index back.
void lowerArgMinMax(NodeContext& c) {
  const Shape& xs = c.shape(0);
  if (xs.empty()) c.invalid("input must have rank >= 1");
  int64_t axis = c.axis(c.attrInt("axis", 0), int64_t(xs.size()));
  bool keep = c.attrInt("keepdims", 1) != 0;
  bool lastIndex = c.opset() >= 12 && c.attrInt("select_last_index", 0) != 0;
  Value* x = c.value(0);
  DType dt = c.dtype(0);
  if (dt == DType::I64) return lowerInt64ArgMinMax(c, axis, keep, lastIndex);
  if (!isFloat(dt)) {
    // int32 and uint8 are exact in double.
    if (dt != DType::I32 && dt != DType::U8) c.unsupported(fmt::format("{} of {}", c.opType(), c.type(0).str()));
    Attrs a;
    a.set("dtype", std::string("f64"));
    x = c.emit(OpKind::Cast, {x}, a, "as_f64");
  }
  std::vector<int64_t> perm;
  Value* rows = axisAsRows(c, x, axis, perm);
  int64_t n = xs[size_t(axis)];
  if (c.opType() == "ArgMin") rows = c.emit(OpKind::Neg, {rows}, {}, "negated");
  if (lastIndex) {
    Attrs s;
    s.set("starts", std::vector<int64_t>{-1});
    s.set("ends", std::vector<int64_t>{-n - 1});
    s.set("axes", std::vector<int64_t>{1});
    s.set("steps", std::vector<int64_t>{-1});
    rows = c.emit(OpKind::Slice, {rows}, s, "reversed");
  }
  Value* idx = c.emit(OpKind::ArgMax, {rows}, {}, "argmax");
  if (lastIndex) idx = binop(c, OpKind::Sub, c.scalar(double(n - 1), DType::I64, "last"), idx, "index");
  c.setOutput(0, c.reshape(idx, argShape(xs, axis, keep), "out"));
}

// TopK: k rounds over the axis moved last. Each takes the first index of the row's largest key
// (argmax), gathers the value there (a sum of the row where its index matches: exact, NaN and
// infinities included) and retires that entry's key to -inf. Keys are x (-x for largest=0)
// with -inf raised to the lowest finite value, so a retired entry never ties with a real one;
// equal values come out in index order, as ONNX asks. The result is sorted whatever `sorted`
// says (any order is allowed when it is 0).
void lowerTopK(NodeContext& c) {
  c.requireFloat(0);
  const Shape& xs = c.shape(0);
  if (xs.empty()) c.invalid("input must have rank >= 1");
  int64_t rank = int64_t(xs.size());
  int64_t axis = c.axis(c.attrInt("axis", -1), rank);
  int64_t k = 0;
  if (c.opset() >= 10) {
    std::vector<int64_t> ks = c.constantInts(1, "K");
    if (ks.size() != 1) c.invalid(fmt::format("K has {} values; expected one", ks.size()));
    k = ks[0];
  } else {
    k = c.attrInt("k");
  }
  bool largest = c.opset() >= 11 ? c.attrInt("largest", 1) != 0 : true;
  if (c.opset() >= 11) c.attrInt("sorted", 1);
  int64_t n = xs[size_t(axis)];
  if (k < 0 || k > n) c.invalid(fmt::format("K = {} for {} elements along axis {}", k, n, axis));
  if (k == 0) c.unsupported("K = 0 (empty outputs)");
  constexpr int64_t kMaxRounds = 1024;  // ~5 nodes a round
  if (k > kMaxRounds) c.unsupported(fmt::format("K = {} (shoal's TopK unrolls K rounds, at most {})", k, kMaxRounds));
  DType dt = c.dtype(0);
  std::vector<int64_t> perm;
  Value* rows = axisAsRows(c, c.value(0), axis, perm);
  Value* key = largest ? rows : c.emit(OpKind::Neg, {rows}, {}, "negated");
  double lowest = dt == DType::F64 ? -std::numeric_limits<double>::max() : -double(std::numeric_limits<float>::max());
  Value* ninf = c.scalar(-std::numeric_limits<double>::infinity(), dt, "minus_inf");
  key = whereOp(c, c.emit(OpKind::Equal, {key, ninf}, {}, "is_minus_inf"), c.scalar(lowest, dt, "lowest"), key, "key");
  Tensor iotaT(DType::I64, {1, n});
  for (int64_t i = 0; i < n; ++i) iotaT.set(i, double(i));
  Value* iota = c.constantValue(iotaT, "iota");
  Value* zero = c.scalar(0, dt, "zero");
  int64_t rowCount = numElements(xs) / n;
  Attrs sumRow;
  sumRow.set("axes", std::vector<int64_t>{1});
  sumRow.set("keepdim", int64_t(1));
  std::vector<Value*> values, indices;
  for (int64_t j = 0; j < k; ++j) {
    std::string p = fmt::format("k{}_", j);
    Value* idx = c.reshape(c.emit(OpKind::ArgMax, {key}, {}, p + "argmax"), {rowCount, 1}, p + "index");
    Value* hit = c.emit(OpKind::Equal, {iota, idx}, {}, p + "hit");
    values.push_back(c.emit(OpKind::ReduceSum, {whereOp(c, hit, rows, zero, p + "picked")}, sumRow, p + "value"));
    indices.push_back(idx);
    if (j + 1 < k) key = whereOp(c, hit, ninf, key, p + "retired");
  }
  auto concat = [&](std::vector<Value*> parts, const std::string& name) {
    for (int round = 0; parts.size() > 1; ++round) {
      std::vector<Value*> next;
      for (size_t g = 0; g < parts.size(); g += 64) {
        std::vector<Value*> group(parts.begin() + long(g), parts.begin() + long(std::min(parts.size(), g + 64)));
        Attrs a;
        a.set("axis", int64_t(1));
        next.push_back(group.size() == 1 ? group[0]
                                         : c.emit(OpKind::Concat, group, a, fmt::format("{}_cat{}_{}", name, round, g)));
      }
      parts = std::move(next);
    }
    return parts[0];
  };
  // Back to the input's layout with k along the axis.
  auto restore = [&](Value* v, const std::string& name) {
    Shape outShape = xs;
    outShape[size_t(axis)] = k;
    if (perm.empty()) return c.reshape(v, outShape, name);
    Shape permuted;
    for (int64_t d : perm) permuted.push_back(outShape[size_t(d)]);
    std::vector<int64_t> inverse(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) inverse[size_t(perm[i])] = int64_t(i);
    Attrs a;
    a.set("perm", inverse);
    return c.emit(OpKind::Transpose, {c.reshape(v, permuted, name + "_rows")}, a, name);
  };
  c.setOutput(0, restore(concat(values, "values"), "values"));
  if (c.hasOutput(1)) c.setOutput(1, restore(concat(indices, "indices"), "indices"));
}

// Softmax and LogSoftmax along an axis that is not the last (opset 13+), and Hardmax: the axis
// moved last, normalised as rows, moved back.
void lowerSoftmaxAnyAxis(NodeContext& c) {
  c.requireFloat(0);
  const Shape& xs = c.shape(0);
  int64_t rank = int64_t(xs.size());
  const std::string& op = c.opType();
  Value* x = c.value(0);
  Value* rows;
  std::vector<int64_t> perm;
  if (c.opset() < 13) {
    // Coerced to 2-D at `axis` (default 1): the rows are what follows it.
    int64_t axis = c.axis(c.attrInt("axis", 1), rank);
    int64_t inner = 1;
    for (int64_t d = axis; d < rank; ++d) inner *= xs[size_t(d)];
    rows = c.reshape(x, {numElements(xs) / inner, inner}, "rows");
  } else {
    if (rank == 0) c.invalid(fmt::format("{} of a scalar (its axis needs rank 1 or more)", op));
    int64_t axis = c.axis(c.attrInt("axis", -1), rank);
    rows = axisAsRows(c, x, axis, perm);
  }
  Value* y;
  if (op == "Hardmax") {
    // A one at the first maximum of each row: argmax == iota.
    int64_t n = rows->type().shape[1], r = rows->type().shape[0];
    Value* idx = c.reshape(c.emit(OpKind::ArgMax, {rows}, {}, "argmax"), {r, 1}, "argmax_col");
    Tensor iota(DType::I64, {1, n});
    for (int64_t j = 0; j < n; ++j) iota.data<int64_t>()[j] = j;
    Value* hot = c.emit(OpKind::Equal, {idx, c.constantValue(iota, "iota")}, {}, "hot");
    Attrs a;
    a.set("dtype", std::string(dtypeName(c.dtype(0))));
    y = c.emit(OpKind::Cast, {hot}, a, "hardmax");
  } else {
    y = c.emit(op == "Softmax" ? OpKind::Softmax : OpKind::LogSoftmax, {rows});
  }
  if (perm.empty()) return c.setOutput(0, c.reshape(y, xs, "out"));
  Shape moved;
  for (int64_t p : perm) moved.push_back(xs[size_t(p)]);
  Value* back = c.reshape(y, moved, "moved");
  std::vector<int64_t> inverse(perm.size());
  for (size_t d = 0; d < perm.size(); ++d) inverse[size_t(perm[d])] = int64_t(d);
  Attrs a;
  a.set("perm", inverse);
  c.setOutput(0, c.emit(OpKind::Transpose, {back}, a, "out"));
}

// CumSum as a prefix sum of log2(n) shifted adds (Hillis-Steele): each step adds the running
// sums `s` places back (a slice padded with zeros in front), so infinities and NaN propagate
// as a running sum's do. exclusive shifts by one first; reverse runs on the reversed axis.
void lowerCumSum(NodeContext& c) {
  DType dt = c.dtype(0);
  if (dt == DType::Bool) c.unsupported("CumSum on bool");
  const Shape& xs = c.shape(0);
  int64_t rank = int64_t(xs.size());
  if (rank == 0) c.invalid("input must have rank >= 1");
  auto axisV = c.constantInts(1, "the axis");
  if (axisV.size() != 1) c.invalid("axis must be a scalar");
  int64_t axis = c.axis(axisV[0], rank);
  bool exclusive = c.attrInt("exclusive", 0) != 0, reverse = c.attrInt("reverse", 0) != 0;
  int64_t n = xs[size_t(axis)];
  Value* x = c.value(0);
  auto reversed = [&](Value* v, const std::string& suffix) {
    Attrs s;
    s.set("starts", std::vector<int64_t>{-1});
    s.set("ends", std::vector<int64_t>{-n - 1});
    s.set("axes", std::vector<int64_t>{axis});
    s.set("steps", std::vector<int64_t>{-1});
    return c.emit(OpKind::Slice, {v}, s, suffix);
  };
  // v shifted `k` places along the axis, zeros in front.
  auto shifted = [&](Value* v, int64_t k, const std::string& suffix) {
    Attrs s;
    s.set("starts", std::vector<int64_t>{0});
    s.set("ends", std::vector<int64_t>{n - k});
    s.set("axes", std::vector<int64_t>{axis});
    Value* head = c.emit(OpKind::Slice, {v}, s, suffix + "_head");
    std::vector<int64_t> pads(size_t(2 * rank), 0);
    pads[size_t(axis)] = k;
    Attrs p;
    p.set("pads", pads);
    return c.emit(OpKind::Pad, {head}, p, suffix);
  };
  if (n > 1 && reverse) x = reversed(x, "reversed");
  if (exclusive) {
    if (n == 1) return c.setOutput(0, c.constantValue(Tensor(dt, xs), "zeros"));
    x = shifted(x, 1, "exclusive");
  }
  for (int64_t s = 1; s < n; s *= 2)
    x = binop(c, OpKind::Add, x, shifted(x, s, fmt::format("shift{}", s)), fmt::format("sum{}", s));
  if (n > 1 && reverse) x = reversed(x, "out");
  c.setOutput(0, x);
}

}  // namespace shoal::onnx_import

namespace shoal::onnx_import {

namespace {

// floor(x) (or ceil) from casts: below 2^52 (f64) or 2^23 (f32) in magnitude a float converts
// to int64 exactly, truncating toward zero, and the truncation is off by one where x is not
// whole; at or above it every float is whole, and NaN and the infinities are their own floor, so
// those pass through unchanged (and never reach the cast).
Value* floorLike(NodeContext& c, Value* x, bool ceil, const std::string& suffix) {
  DType dt = x->type().dtype;
  double big = dt == DType::F64 ? 4503599627370496.0 : 8388608.0;
  Value* small =
      c.emit(OpKind::Less, {c.emit(OpKind::Abs, {x}, {}, suffix + "_abs"), c.scalar(big, dt, suffix + "_big")}, {},
             suffix + "_small");
  Value* zero = c.scalar(0, dt, suffix + "_zero");
  Value* safe = c.emit(OpKind::Where, {small, x, zero}, {}, suffix + "_safe");
  Attrs toInt, toFloat;
  toInt.set("dtype", std::string("i64"));
  toFloat.set("dtype", std::string(dtypeName(dt)));
  Value* t = c.emit(OpKind::Cast, {c.emit(OpKind::Cast, {safe}, toInt, suffix + "_int")}, toFloat, suffix + "_trunc");
  Value* one = c.scalar(1, dt, suffix + "_one");
  Value* off = c.emit(ceil ? OpKind::Less : OpKind::Greater, {t, safe}, {}, suffix + "_off");
  Value* fixed =
      c.emit(OpKind::Where, {off, c.emit(ceil ? OpKind::Add : OpKind::Sub, {t, one}, {}, suffix + "_step"), t}, {},
             suffix + "_fixed");
  return c.emit(OpKind::Where, {small, fixed, x}, {}, suffix);
}

}  // namespace

Value* floorOf(NodeContext& c, Value* x, const std::string& suffix) { return floorLike(c, x, false, suffix); }

void lowerFloorCeil(NodeContext& c) {
  c.requireFloat(0);
  ignoreConsumed(c);
  c.setOutput(0, floorLike(c, c.value(0), c.opType() == "Ceil", c.opType() == "Ceil" ? "ceil" : "floor"));
}

// Round half to even: f = floor(x), d = x - f (exact); d > 1/2 rounds up, d < 1/2 down, and a
// tie goes to whichever of f, f + 1 is even (f is odd when f/2 is not whole).
Value* roundHalfEven(NodeContext& c, Value* x, const std::string& prefix) {
  DType dt = x->type().dtype;
  Value* f = floorLike(c, x, false, prefix + "floor");
  Value* d = c.emit(OpKind::Sub, {x, f}, {}, prefix + "fraction");
  Value* half = c.scalar(0.5, dt, prefix + "half");
  Value* up = c.emit(OpKind::Add, {f, c.scalar(1, dt, prefix + "one")}, {}, prefix + "up");
  Value* halfF = scaled(c, f, 0.5, prefix + "half_floor");
  Value* odd = c.emit(OpKind::NotEqual, {halfF, floorLike(c, halfF, false, prefix + "parity")}, {}, prefix + "odd");
  Value* tie = c.emit(OpKind::Where, {odd, up, f}, {}, prefix + "tie");
  Value* below = c.emit(OpKind::Where, {c.emit(OpKind::Less, {d, half}, {}, prefix + "below_half"), f, tie}, {},
                        prefix + "not_above");
  return c.emit(OpKind::Where, {c.emit(OpKind::Greater, {d, half}, {}, prefix + "above_half"), up, below}, {},
                prefix + "round");
}

void lowerRound(NodeContext& c) {
  c.requireFloat(0);
  c.setOutput(0, roundHalfEven(c, c.value(0), ""));
}

// Shrink: x < -lambd ? x + bias : (x > lambd ? x - bias : 0).
void lowerShrink(NodeContext& c) {
  c.requireFloat(0);
  DType dt = c.dtype(0);
  double lambd = c.attrFloat("lambd", 0.5), bias = c.attrFloat("bias", 0.0);
  Value* x = c.value(0);
  Value* hi = c.emit(OpKind::Where,
                     {c.emit(OpKind::Greater, {x, c.scalar(lambd, dt, "lambd")}, {}, "above"),
                      c.emit(OpKind::Sub, {x, c.scalar(bias, dt, "bias")}, {}, "minus_bias"), c.scalar(0, dt, "zero")},
                     {}, "upper");
  c.setOutput(0, c.emit(OpKind::Where,
                        {c.emit(OpKind::Less, {x, c.scalar(-lambd, dt, "neg_lambd")}, {}, "below"),
                         c.emit(OpKind::Add, {x, c.scalar(bias, dt, "bias2")}, {}, "plus_bias"), hi},
                        {}, "shrink"));
}

}  // namespace shoal::onnx_import

namespace shoal::onnx_import {

// LRN: x / (bias + alpha/size · Σ x²)^beta, the sum over `size` neighbouring channels; the sum
// over the window is an average pool with the padding counted (average · size), over [N, 1, C, rest].
void lowerLRN(NodeContext& c) {
  c.requireFloat(0);
  const Shape& xs = c.shape(0);
  if (xs.size() < 3) c.invalid(fmt::format("input must be [N, C, spatial...], got {}", c.type(0).str()));
  int64_t size = c.attrInt("size");
  if (size <= 0) c.invalid("size must be positive");
  double alpha = c.attrFloat("alpha", 1e-4), beta = c.attrFloat("beta", 0.75), bias = c.attrFloat("bias", 1.0);
  DType dt = c.dtype(0);
  Value* x = c.value(0);
  int64_t rest = numElements(xs) / (xs[0] * xs[1]);
  Value* sq = c.reshape(c.emit(OpKind::Mul, {x, x}, {}, "square"), {xs[0], 1, xs[1], rest}, "channels");
  Attrs p;
  p.set("kernel", std::vector<int64_t>{size, 1});
  p.set("stride", std::vector<int64_t>{1, 1});
  p.set("padding", std::vector<int64_t>{(size - 1) / 2, 0, size - 1 - (size - 1) / 2, 0});
  p.set("count_include_pad", int64_t(1));
  p.set("ceil_mode", int64_t(0));
  Value* avg = c.reshape(c.emit(OpKind::AvgPool2d, {sq}, p, "window_mean"), xs, "window_mean_nd");
  Value* base = c.emit(OpKind::Add, {scaled(c, avg, alpha, "alpha"), c.scalar(bias, dt, "bias")}, {}, "base");
  Value* den = c.emit(OpKind::Pow, {base, c.scalar(beta, dt, "beta")}, {}, "den");
  c.setOutput(0, c.emit(OpKind::Div, {x, den}, {}, "lrn"));
}

}  // namespace shoal::onnx_import
