// The gradient registry, the emitter gradient rules build with, and the rules of the core ops.
#include "passes/gradients.h"

#include <array>

#include "ir/shape_inference.h"

namespace shoal {

namespace {
std::array<GradientRule, kNumOps>& gradientRegistry() {
  static std::array<GradientRule, kNumOps> rules{};
  return rules;
}
}  // namespace

GradientRule findGradientRule(OpKind kind) { return gradientRegistry()[size_t(kind)]; }

GradientRegistration::GradientRegistration(OpKind kind, GradientRule rule) { gradientRegistry()[size_t(kind)] = rule; }

Attrs attrsOf(std::initializer_list<std::pair<const char*, AttrValue>> entries) {
  Attrs a;
  for (const auto& [k, v] : entries) a.set(k, v);
  return a;
}

Expected<Value*> GradientEmitter::emit(OpKind kind, std::vector<Value*> inputs, Attrs attrs, const std::string& name,
                                       const Location& loc, DType dtype) {
  Node* n = g_.addNode(kind, std::move(inputs), std::move(attrs), {{name, TensorType{dtype, {}}}}, loc);
  fillDefaultAttrs(*n);
  auto types = inferResultTypes(*n);
  if (!types) return Unexpected(types.error());
  n->result()->setType((*types)[0]);
  return n->result();
}

Expected<void> GradientEmitter::emitSink(OpKind kind, std::vector<Value*> inputs, Attrs attrs, const Location& loc) {
  Node* n = g_.addNode(kind, std::move(inputs), std::move(attrs), {}, loc);
  fillDefaultAttrs(*n);
  auto types = inferResultTypes(*n);
  if (!types) return Unexpected(types.error());
  return {};
}

Expected<Value*> GradientEmitter::reduceToOperand(Value* full, const Value* operand, const std::string& name,
                                                  const Location& loc) {
  if (full->type().shape == operand->type().shape) return full;
  return emit(OpKind::SumTo, {full}, attrsOf({{"shape", operand->type().shape}}), name, loc);
}

// dy + zeros, where the zeros carry only the extents dy lacks (so the constant stays as
// small as it can).
Expected<Value*> GradientEmitter::broadcastTo(Value* dy, const Value* x, const std::string& name, const Location& loc) {
  const Shape& xs = x->type().shape;
  const Shape& ds = dy->type().shape;
  if (xs == ds) return dy;
  Shape zeros(xs.size(), 1);
  size_t offset = xs.size() - ds.size();
  for (size_t d = 0; d < xs.size(); ++d)
    if (d < offset || ds[d - offset] != xs[d]) zeros[d] = xs[d];
  Attrs lit;
  lit.set("value", TensorLiteral{zeros, std::vector<double>(size_t(numElements(zeros)), 0.0)});
  auto zero = emit(OpKind::Constant, {}, lit, name + ".zeros", loc, dy->type().dtype);
  if (!zero) return zero;
  return emit(OpKind::Add, {dy, *zero}, {}, name, loc);
}

// ---- rules ---------------------------------------------------------------------------------

#define SHOAL_TRY_VALUE(var, expr)                         \
  auto var##OrError_ = (expr);                             \
  if (!var##OrError_) return var##OrError_;                \
  Value* var = *var##OrError_

SHOAL_GRADIENT(Cast) {
  return g.emit(OpKind::Cast, {g.dy}, attrsOf({{"dtype", std::string(dtypeName(g.x()->type().dtype))}}));
}

SHOAL_GRADIENT(Scale) {
  return g.emit(OpKind::Scale, {g.dy}, attrsOf({{"scale", g.attrs().getFloat("scale")}, {"shift", 0.0}}));
}

SHOAL_GRADIENT(Normalize) {
  std::vector<double> stds = g.attrs().getFloats("std");
  if (stds.size() == 1) return g.emit(OpKind::Scale, {g.dy}, attrsOf({{"scale", 1.0 / stds[0]}, {"shift", 0.0}}));
  Shape shape(size_t(g.x()->type().rank()), 1);  // [1, C, 1, ...]: broadcasts over axis 1
  shape[1] = int64_t(stds.size());
  SHOAL_TRY_VALUE(stdConst, g.constant(TensorLiteral{shape, stds}, ".std"));
  return g.emit(OpKind::Div, {g.dy, stdConst}, {});
}

// The gradient ops take the convolution's attributes (stride, padding, dilation, groups).
SHOAL_GRADIENT(Conv2d) {
  Attrs conv = g.attrs();
  if (g.operand == 0) {
    conv.set("input_shape", g.x()->type().shape);
    return g.emit(OpKind::Conv2dBackwardData, {g.dy, g.input(1)}, conv);
  }
  if (g.operand == 1) {
    conv.set("weight_shape", g.x()->type().shape);
    return g.emit(OpKind::Conv2dBackwardWeight, {g.input(0), g.dy}, conv);
  }
  // Bias [O]: sum over N, H, W. sum_to's target must broadcast to dy [N,O,H,W], so reduce to
  // [1,O,1,1] and reshape.
  int64_t o = g.x()->type().shape[0];
  SHOAL_TRY_VALUE(summed, g.emit(OpKind::SumTo, {g.dy}, attrsOf({{"shape", Shape{1, o, 1, 1}}}), ".sum"));
  return g.emit(OpKind::Reshape, {summed}, attrsOf({{"shape", Shape{o}}}));
}

// The pool gradients take the pool's attributes (kernel, stride, padding, ceil_mode, and
// count_include_pad for the average).
SHOAL_GRADIENT(MaxPool2d) { return g.emit(OpKind::MaxPool2dGrad, {g.x(), g.dy}, g.attrs()); }

SHOAL_GRADIENT(AvgPool2d) {
  Attrs a = g.attrs();
  a.set("input_shape", g.x()->type().shape);
  return g.emit(OpKind::AvgPool2dGrad, {g.dy}, a);
}

Expected<Value*> reshapeBack(const GradientArgs& g) {
  return g.emit(OpKind::Reshape, {g.dy}, attrsOf({{"shape", g.x()->type().shape}}));
}
SHOAL_GRADIENT(Flatten) { return reshapeBack(g); }
SHOAL_GRADIENT(Reshape) { return reshapeBack(g); }

// y = x w^T + b: dx = dy w, dw = dy^T x, db = sum over the batch.
SHOAL_GRADIENT(Dense) {
  if (g.operand == 0) return g.emit(OpKind::MatMul, {g.dy, g.input(1)}, {});
  if (g.operand == 1) return g.emit(OpKind::MatMul, {g.dy, g.input(0)}, attrsOf({{"transpose_a", int64_t(1)}}));
  return g.emit(OpKind::SumTo, {g.dy}, attrsOf({{"shape", g.x()->type().shape}}));
}

// y = op(A) op(B), op = identity or transpose. Each case is the transpose-free rule
// dA = dY B^T, dB = A^T dY rewritten so no explicit transpose is needed.
SHOAL_GRADIENT(MatMul) {
  bool ta = g.attrs().getInt("transpose_a") != 0, tb = g.attrs().getInt("transpose_b") != 0;
  Value* a = g.input(0);
  Value* b = g.input(1);
  Value* dy = g.dy;
  auto mm = [&](Value* l, Value* r, bool tl, bool tr) {
    return g.emit(OpKind::MatMul, {l, r}, attrsOf({{"transpose_a", int64_t(tl)}, {"transpose_b", int64_t(tr)}}));
  };
  if (g.operand == 0) {
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

// relu' is read off the output (y > 0 exactly when x > 0), so the pre-activation value dies
// at the relu and conv/dense + relu can fuse in training graphs too.
SHOAL_GRADIENT(Relu) { return g.emit(OpKind::ReluGrad, {g.y(), g.dy}, {}); }
SHOAL_GRADIENT(Sigmoid) { return g.emit(OpKind::SigmoidGrad, {g.y(), g.dy}, {}); }
SHOAL_GRADIENT(Tanh) { return g.emit(OpKind::TanhGrad, {g.y(), g.dy}, {}); }

// softplus'(x) = sigmoid(x).
SHOAL_GRADIENT(Softplus) {
  SHOAL_TRY_VALUE(s, g.emit(OpKind::Sigmoid, {g.x()}, {}, ".sigmoid"));
  return g.emit(OpKind::Mul, {g.dy, s}, {});
}

SHOAL_GRADIENT(Neg) { return g.emit(OpKind::Neg, {g.dy}, {}); }

SHOAL_GRADIENT(Add) { return g.reduceToOperand(g.dy); }

SHOAL_GRADIENT(Sub) {
  if (g.operand == 0) return g.reduceToOperand(g.dy);
  SHOAL_TRY_VALUE(summed, g.reduceToOperand(g.dy, ".sum"));
  return g.emit(OpKind::Scale, {summed}, attrsOf({{"scale", -1.0}, {"shift", 0.0}}));
}

// d(a*b)/da = dy * b, reduced over a's broadcast dims.
SHOAL_GRADIENT(Mul) {
  SHOAL_TRY_VALUE(prod, g.emit(OpKind::Mul, {g.dy, g.input(1 - g.operand)}, {}, g.broadcast() ? ".mul" : ""));
  return g.reduceToOperand(prod);
}

SHOAL_GRADIENT(Div) {
  Value* b = g.input(1);
  if (g.operand == 0) {
    SHOAL_TRY_VALUE(quot, g.emit(OpKind::Div, {g.dy, b}, {}, g.broadcast() ? ".div" : ""));
    return g.reduceToOperand(quot);
  }
  // db = -dy * a / b^2 = -(dy * y) / b, with y = a / b the forward result.
  SHOAL_TRY_VALUE(prod, g.emit(OpKind::Mul, {g.dy, g.y()}, {}, ".mul"));
  SHOAL_TRY_VALUE(quot, g.emit(OpKind::Div, {prod, b}, {}, ".div"));
  SHOAL_TRY_VALUE(summed, g.reduceToOperand(quot, ".sum"));
  return g.emit(OpKind::Scale, {summed}, attrsOf({{"scale", -1.0}, {"shift", 0.0}}));
}

SHOAL_GRADIENT(SumTo) { return g.emitter.broadcastTo(g.dy, g.x(), g.name, g.node.loc()); }

SHOAL_GRADIENT(Softmax) {
  return g.emit(OpKind::SoftmaxGrad, {g.y(), g.dy}, attrsOf({{"axis", g.attrs().getInt("axis")}}));
}

SHOAL_GRADIENT(LogSoftmax) {
  return g.emit(OpKind::LogSoftmaxGrad, {g.y(), g.dy}, attrsOf({{"axis", g.attrs().getInt("axis")}}));
}

// Only the logits are differentiable; integer labels never need a gradient.
SHOAL_GRADIENT(SoftmaxCrossEntropy) {
  return g.emit(OpKind::SoftmaxCrossEntropyGrad, {g.x(), g.input(1), g.dy},
                attrsOf({{"label_smoothing", g.attrs().getFloat("label_smoothing", 0.0)}}));
}

// Symmetric: d/dtarget of (pred - target)^2 is mse_grad with the roles swapped.
SHOAL_GRADIENT(Mse) { return g.emit(OpKind::MseGrad, {g.x(), g.input(1 - g.operand), g.dy}, {}); }

#undef SHOAL_TRY_VALUE

}  // namespace shoal
