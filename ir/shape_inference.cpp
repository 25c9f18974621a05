// Shape rules, one per op-table row's `shapeRule`.
#include "ir/shape_inference.h"

#include "ir/shape_rules.h"

#include "ir/conv_geometry.h"
#include "ir/elementwise.h"
#include "ir/shape_geometry.h"
#include "support/checked.h"

#include <fmt/format.h>

#include <limits>

namespace shoal {

namespace shape {

Error shapeError(const Node& n, const std::string& msg) { return Error(n.describe() + ": " + msg, n.loc()); }

std::string sh(const Value* v) { return v->type().str(); }

Expected<Types> requireFloat(const Node& n, const Value* v, std::string_view what) {
  if (!isFloat(v->type().dtype))
    return Unexpected(shapeError(n, fmt::format("{} must be f32 or f64, got {}", what, sh(v))));
  return Types{};
}

Expected<Types> requireRank(const Node& n, const Value* v, int64_t rank, std::string_view what) {
  if (v->type().rank() != rank)
    return Unexpected(shapeError(n, fmt::format("{} must have rank {}, got {}", what, rank, sh(v))));
  return Types{};
}

Expected<Types> requireSameDType(const Node& n, const Value* a, const Value* b) {
  if (a->type().dtype != b->type().dtype)
    return Unexpected(shapeError(n, fmt::format("element types differ: {} vs {}", sh(a), sh(b))));
  return Types{};
}

Expected<Types> requireConvOperands(const Node& n, std::string_view weightLayout) {
  const Value* x = n.input(0);
  const Value* w = n.input(1);
  if (auto r = requireFloat(n, x, "input"); !r) return r;
  if (auto r = requireRank(n, x, 4, "input (NCHW)"); !r) return r;
  if (auto r = requireRank(n, w, 4, fmt::format("weight ({})", weightLayout)); !r) return r;
  return requireSameDType(n, x, w);
}

#define SHOAL_TRY(expr)                                      \
  do {                                                       \
    auto shoalTryResult_ = (expr);                           \
    if (!shoalTryResult_) return Unexpected(shoalTryResult_.error()); \
  } while (0)

Expected<std::vector<int64_t>> intsOfLen(const Node& n, const std::string& key, size_t len) {
  const auto& v = n.attrs().getInts(key);
  if (v.size() != len)
    return Unexpected(shapeError(n, fmt::format("attribute '{}' needs {} values, got {}", key, len, v.size())));
  return v;
}

}  // namespace shape

namespace {

using namespace shape;

Expected<Types> shapeDeclared(const Node& n) {
  Types out;
  for (size_t i = 0; i < n.numResults(); ++i) {
    for (int64_t d : n.result(i)->type().shape)
      if (d <= 0)
        return Unexpected(shapeError(n, fmt::format("declared shape {} has a non-positive extent", n.result(i)->type().str())));
    out.push_back(n.result(i)->type());
  }
  return out;
}

Expected<Types> shapeConstant(const Node& n) {
  const TensorLiteral& lit = n.attrs().getTensor("value");
  if (int64_t(lit.values.size()) != numElements(lit.shape))
    return Unexpected(shapeError(n, fmt::format("the literal has {} values, its shape {} needs {}", lit.values.size(),
                                                     shapeString(lit.shape), numElements(lit.shape))));
  DType dt = n.numResults() ? n.result()->type().dtype : DType::F32;
  return Types{{dt, lit.shape}};
}

Expected<Types> shapeNone(const Node&) { return Types{}; }

Expected<Types> shapeCast(const Node& n) {
  auto dt = parseDType(n.attrs().getString("dtype"));
  if (!dt) return Unexpected(shapeError(n, fmt::format("unknown dtype '{}'", n.attrs().getString("dtype"))));
  return Types{{*dt, n.input(0)->type().shape}};
}

Expected<Types> shapeSameFloat(const Node& n) {
  SHOAL_TRY(requireFloat(n, n.input(0), "input"));
  if (n.kind() == OpKind::Normalize) {
    size_t m = n.attrs().getFloats("mean").size(), s = n.attrs().getFloats("std").size();
    const Shape& x = n.input(0)->type().shape;
    int64_t channels = x.size() >= 2 ? x[1] : 1;
    if (m != s || (m != 1 && int64_t(m) != channels))
      return Unexpected(shapeError(
          n, fmt::format("mean and std need 1 value or one per channel ({}); got {} and {}", channels, m, s)));
    for (double d : n.attrs().getFloats("std"))
      if (d == 0) return Unexpected(shapeError(n, "std must not be 0"));
  }
  return Types{n.input(0)->type()};
}

// softmax, log_softmax and their gradients: any axis in [-rank, rank).
Expected<Types> shapeSameFloatAxis(const Node& n) {
  SHOAL_TRY(requireFloat(n, n.input(0), "input"));
  int64_t rank = n.input(0)->type().rank();
  int64_t axis = n.attrs().getInt("axis");
  if (rank == 0) return Unexpected(shapeError(n, "input must have rank >= 1, got a scalar"));
  if (axis < -rank || axis >= rank)
    return Unexpected(
        shapeError(n, fmt::format("axis {} is out of range for rank {} (valid: {} to {})", axis, rank, -rank, rank - 1)));
  return Types{n.input(0)->type()};
}

// The output shape [N, O, oh, ow] of convolving an x-typed input with a w-typed weight
// [O, C/groups, kh, kw] under the node's stride/padding/dilation/groups (conv2d and both of its
// gradients).
Expected<Shape> convOutputShape(const Node& n, const TensorType& x, const TensorType& w) {
  auto stride = intsOfLen(n, "stride", 2);
  if (!stride) return Unexpected(stride.error());
  auto pad = intsOfLen(n, "padding", 4);
  if (!pad) return Unexpected(pad.error());
  auto dil = intsOfLen(n, "dilation", 2);
  if (!dil) return Unexpected(dil.error());
  for (int64_t s : *stride)
    if (s <= 0) return Unexpected(shapeError(n, "stride must be positive"));
  for (int64_t d : *dil)
    if (d <= 0) return Unexpected(shapeError(n, "dilation must be positive"));
  for (int64_t p : *pad)
    if (p < 0) return Unexpected(shapeError(n, "padding must not be negative"));
  const int64_t groups = n.attrs().getInt("groups", 1);
  if (groups <= 0) return Unexpected(shapeError(n, fmt::format("groups must be positive, got {}", groups)));
  const Shape& xs = x.shape;
  const Shape& ws = w.shape;
  if (xs[1] % groups != 0)
    return Unexpected(
        shapeError(n, fmt::format("input has {} channels ({}), not divisible by groups={}", xs[1], x.str(), groups)));
  if (ws[0] % groups != 0)
    return Unexpected(
        shapeError(n, fmt::format("the weight's {} filters ({}) are not divisible by groups={}", ws[0], w.str(), groups)));
  if (xs[1] / groups != ws[1]) {
    if (groups == 1)
      return Unexpected(shapeError(
          n, fmt::format("input has {} channels ({}) but the weight expects {} ({})", xs[1], x.str(), ws[1], w.str())));
    return Unexpected(shapeError(n, fmt::format("input has {} channels ({}), {} per group with groups={}, but the weight "
                                                "expects {} per group ({})",
                                                xs[1], x.str(), xs[1] / groups, groups, ws[1], w.str())));
  }
  for (int i = 0; i < 2; ++i)
    if (!checkedMul((*dil)[size_t(i)], ws[size_t(2 + i)] - 1))
      return Unexpected(shapeError(n, fmt::format("kernel {}x{} dilated by {}x{} spans more than 2^63 pixels", ws[2], ws[3],
                                                  (*dil)[0], (*dil)[1])));
  auto oh = windowOutputSize(xs[2], ws[2], (*stride)[0], (*pad)[0], (*pad)[2], (*dil)[0]);
  auto ow = windowOutputSize(xs[3], ws[3], (*stride)[1], (*pad)[1], (*pad)[3], (*dil)[1]);
  if (!oh || !ow)
    return Unexpected(shapeError(n, fmt::format("padding {} of the input {} overflows 64-bit extents",
                                                shapeString(*pad), x.str())));
  if (*oh <= 0 || *ow <= 0)
    return Unexpected(shapeError(
        n, fmt::format("kernel {}x{} does not fit the padded input {}x{} ({})", ws[2], ws[3], xs[2] + (*pad)[0] + (*pad)[2],
                       xs[3] + (*pad)[1] + (*pad)[3], x.str())));
  return Shape{xs[0], ws[0], *oh, *ow};
}

// A shape attribute (input_shape, weight_shape) of a gradient op: 4 positive extents.
Expected<Shape> shapeAttr4(const Node& n, const std::string& key) {
  const auto& s = n.attrs().getInts(key);
  if (s.size() != 4) return Unexpected(shapeError(n, key + " needs 4 extents"));
  for (int64_t d : s)
    if (d <= 0) return Unexpected(shapeError(n, fmt::format("{} {} has a non-positive extent", key, shapeString(s))));
  return s;
}

// The upstream gradient must have the shape the forward op produced.
Expected<Types> requireGradient(const Node& n, const Value* dy, const TensorType& want, std::string_view what) {
  if (dy->type() != want)
    return Unexpected(shapeError(n, fmt::format("gradient {} does not match {} {}", sh(dy), what, want.str())));
  return Types{};
}

// fused_conv2d / fused_dense carry the activation they apply.
Expected<Types> checkFusedActivation(const Node& n) {
  if (!n.attrs().has("activation")) return Types{};
  const std::string& a = n.attrs().getString("activation");
  if (a != "relu" && a != "sigmoid" && a != "tanh")
    return Unexpected(shapeError(n, fmt::format("activation must be relu, sigmoid or tanh, got '{}'", a)));
  return Types{};
}

// A convolution's result over an input seen as `x` (operand 0's type, or what input_expr makes
// of it) and weight operand 1, checking the optional bias against it.
Expected<Types> convResult(const Node& n, const TensorType& x) {
  const Value* w = n.input(1);
  auto y = convOutputShape(n, x, w->type());
  if (!y) return Unexpected(y.error());
  if (n.numInputs() >= 3) {
    const Value* b = n.input(2);
    int64_t o = w->type().shape[0];
    if (b->type().shape != Shape{o} || b->type().dtype != x.dtype)
      return Unexpected(shapeError(n, fmt::format("bias must be {}[{}], got {}", dtypeName(x.dtype), o, sh(b))));
  }
  return Types{{x.dtype, *y}};
}

// A convolution's input (operand 0, float NCHW) and weight (operand 1, OIHW, the same type),
// then its result (convResult).
Expected<Types> convOperandsAndResult(const Node& n) {
  SHOAL_TRY(requireConvOperands(n, "OIHW"));
  return convResult(n, n.input(0)->type());
}

Expected<Types> shapeConv2d(const Node& n) {
  SHOAL_TRY(checkFusedActivation(n));
  return convOperandsAndResult(n);
}

// fused_conv2d: conv2d's rule; with output_expr (fuse-conv-epilogue) also the program's
// operands: the bias, then one or more operands of the result's type, and no activation.
Expected<Types> shapeFusedConv2d(const Node& n) {
  const std::string& expr = n.attrs().getString("output_expr", "");
  if (expr.empty()) {
    if (n.numInputs() > 3)
      return Unexpected(shapeError(n, fmt::format("takes 2 or 3 operands without output_expr, got {}", n.numInputs())));
    return shapeConv2d(n);
  }
  if (const std::string& a = n.attrs().getString("activation", ""); !a.empty())
    return Unexpected(shapeError(
        n, fmt::format("with output_expr the program applies the activation: activation must be \"\", got '{}'", a)));
  if (n.numInputs() < 4)
    return Unexpected(shapeError(n, fmt::format("output_expr needs the bias and at least one more operand, got {} operands",
                                                n.numInputs())));
  auto y = convOperandsAndResult(n);
  if (!y) return Unexpected(y.error());
  for (size_t i = 3; i < n.numInputs(); ++i)
    if (n.input(i)->type() != y->front())
      return Unexpected(shapeError(
          n, fmt::format("output_expr operand {} must be {} (the result's type), got {}", i, y->front().str(), sh(n.input(i)))));
  if (auto program = parseElementwiseExpr(expr, int(n.numInputs()) - 2); !program)
    return Unexpected(shapeError(n, "output_expr: " + program.error().message()));
  return y;
}

Expected<Types> shapeConv2dBackwardData(const Node& n) {
  // (dy, w) -> dx of type dtype[input_shape].
  auto s = shapeAttr4(n, "input_shape");
  if (!s) return Unexpected(s.error());
  const Value* dy = n.input(0);
  const Value* w = n.input(1);
  SHOAL_TRY(requireFloat(n, dy, "gradient"));
  SHOAL_TRY(requireRank(n, w, 4, "weight (OIHW)"));
  SHOAL_TRY(requireSameDType(n, dy, w));
  TensorType x{dy->type().dtype, *s};
  auto y = convOutputShape(n, x, w->type());
  if (!y) return Unexpected(y.error());
  SHOAL_TRY(requireGradient(n, dy, {x.dtype, *y}, "the convolution's output"));
  return Types{x};
}

Expected<Types> shapeConv2dBackwardWeight(const Node& n) {
  // (x, dy) -> dw of type dtype[weight_shape].
  auto s = shapeAttr4(n, "weight_shape");
  if (!s) return Unexpected(s.error());
  const Value* x = n.input(0);
  const Value* dy = n.input(1);
  SHOAL_TRY(requireFloat(n, x, "input"));
  SHOAL_TRY(requireRank(n, x, 4, "input (NCHW)"));
  SHOAL_TRY(requireSameDType(n, x, dy));
  TensorType w{x->type().dtype, *s};
  auto y = convOutputShape(n, x->type(), w);
  if (!y) return Unexpected(y.error());
  SHOAL_TRY(requireGradient(n, dy, {w.dtype, *y}, "the convolution's output"));
  return Types{w};
}

// The output shape [N, C, oh, ow] of pooling an x-typed input under the node's
// kernel/stride/padding/ceil_mode (both pools and both pool gradients); fused_conv2d_pool names
// them pool_kernel/pool_stride/pool_padding/pool_ceil_mode (prefix "pool_").
Expected<Shape> poolOutputShape(const Node& n, const TensorType& x, const std::string& prefix = "") {
  auto k = intsOfLen(n, prefix + "kernel", 2);
  if (!k) return Unexpected(k.error());
  auto s = intsOfLen(n, prefix + "stride", 2);
  if (!s) return Unexpected(s.error());
  auto p = intsOfLen(n, prefix + "padding", 4);
  if (!p) return Unexpected(p.error());
  for (int i = 0; i < 2; ++i)
    if ((*k)[i] <= 0 || (*s)[i] <= 0)
      return Unexpected(shapeError(n, fmt::format("{}kernel and {}stride must be positive", prefix, prefix)));
  for (int64_t v : *p)
    if (v < 0) return Unexpected(shapeError(n, fmt::format("{}padding must not be negative", prefix)));
  if ((*p)[0] >= (*k)[0] || (*p)[1] >= (*k)[1] || (*p)[2] >= (*k)[0] || (*p)[3] >= (*k)[1])
    return Unexpected(shapeError(n, fmt::format("{}padding must be smaller than the window", prefix)));
  const Shape& xs = x.shape;
  const bool ceilMode = n.attrs().getInt(prefix + "ceil_mode", 0) != 0;
  // The padding is smaller than the window (checked above), so the padded extent cannot
  // overflow unless the window itself is near 2^63.
  for (int i = 0; i < 2; ++i)
    if (auto once = checkedAdd(xs[size_t(2 + i)], (*p)[size_t(i)]);
        !once || !checkedAdd(*once, (*p)[size_t(i + 2)]))
      return Unexpected(shapeError(n, fmt::format("{}padding {} of the input {} overflows 64-bit extents", prefix,
                                                  shapeString(*p), x.str())));
  const int64_t oh = poolOutputSize(xs[2], (*k)[0], (*s)[0], (*p)[0], (*p)[2], ceilMode);
  const int64_t ow = poolOutputSize(xs[3], (*k)[1], (*s)[1], (*p)[1], (*p)[3], ceilMode);
  if (oh <= 0 || ow <= 0)
    return Unexpected(shapeError(n, fmt::format("{}window {}x{} does not fit the input {}", prefix.empty() ? "" : "pool ",
                                                     (*k)[0], (*k)[1], x.str())));
  return Shape{xs[0], xs[1], oh, ow};
}

Expected<Types> shapePool2d(const Node& n) {
  const Value* x = n.input(0);
  SHOAL_TRY(requireFloat(n, x, "input"));
  SHOAL_TRY(requireRank(n, x, 4, "input (NCHW)"));
  auto y = poolOutputShape(n, x->type());
  if (!y) return Unexpected(y.error());
  return Types{{x->type().dtype, *y}};
}

// fused_conv2d_pool: the conv's output shape (shapeConv2d's checks), then the pool's.
Expected<Types> shapeConv2dPool(const Node& n) {
  Expected<Types> conv = Types{};
  if (const std::string& expr = n.attrs().getString("input_expr", ""); !expr.empty()) {
    // The input is read through a one-operand elementwise program (a folded fused_elementwise),
    // converted to the weights' type first: the convolution sees that type.
    const Value* x = n.input(0);
    const Value* w = n.input(1);
    SHOAL_TRY(checkFusedActivation(n));
    SHOAL_TRY(requireFloat(n, w, "weight"));
    SHOAL_TRY(requireRank(n, x, 4, "input (NCHW)"));
    SHOAL_TRY(requireRank(n, w, 4, "weight (OIHW)"));
    if (!convertsOnLoad(x->type().dtype))
      return Unexpected(shapeError(n, fmt::format("an input read through input_expr is u8, i8, i32, f32 or f64, got {}",
                                                       sh(x))));
    if (auto program = parseElementwiseExpr(expr, 1); !program)
      return Unexpected(shapeError(n, "input_expr: " + program.error().message()));
    conv = convResult(n, TensorType{w->type().dtype, x->type().shape});
  } else {
    conv = shapeConv2d(n);
  }
  if (!conv) return Unexpected(conv.error());
  auto y = poolOutputShape(n, conv->front(), "pool_");
  if (!y) return Unexpected(y.error());
  return Types{{conv->front().dtype, *y}};
}

Expected<Types> shapeAvgPool2dGrad(const Node& n) {
  // dy -> dx of type dtype[input_shape].
  auto s = shapeAttr4(n, "input_shape");
  if (!s) return Unexpected(s.error());
  const Value* dy = n.input(0);
  SHOAL_TRY(requireFloat(n, dy, "gradient"));
  TensorType x{dy->type().dtype, *s};
  auto y = poolOutputShape(n, x);
  if (!y) return Unexpected(y.error());
  SHOAL_TRY(requireGradient(n, dy, {x.dtype, *y}, "the pooled output"));
  return Types{x};
}

Expected<Types> shapeFlatten(const Node& n) {
  const Shape& xs = n.input(0)->type().shape;
  int64_t axis = n.attrs().getInt("axis");
  if (axis < 0) axis += int64_t(xs.size());
  if (axis < 0 || axis > int64_t(xs.size()))
    return Unexpected(shapeError(n, fmt::format("axis {} is out of range for {}", n.attrs().getInt("axis"), sh(n.input(0)))));
  // Both products divide the operand's element count, which the operand check bounds.
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < int64_t(xs.size()); ++i) {
    int64_t& part = i < axis ? outer : inner;
    auto next = checkedMul(part, xs[size_t(i)]);
    if (!next) return Unexpected(shapeError(n, fmt::format("{} has too many elements to flatten", sh(n.input(0)))));
    part = *next;
  }
  return Types{{n.input(0)->type().dtype, {outer, inner}}};
}

Expected<Types> shapeReshape(const Node& n) {
  Shape target = n.attrs().getInts("shape");
  int64_t total = n.input(0)->type().numElements();
  int64_t known = 1, wild = -1;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == -1) {
      if (wild >= 0) return Unexpected(shapeError(n, "at most one extent may be -1"));
      wild = int64_t(i);
    } else if (target[i] <= 0) {
      return Unexpected(shapeError(n, fmt::format("extent {} must be positive or -1", target[i])));
    } else {
      auto next = checkedMul(known, target[i]);
      if (!next)
        return Unexpected(shapeError(n, fmt::format("cannot reshape {} to {}: its extents multiply past 2^63",
                                                    sh(n.input(0)), shapeString(target))));
      known = *next;
    }
  }
  if (wild >= 0) {
    if (known == 0 || total % known != 0)
      return Unexpected(shapeError(n, fmt::format("cannot reshape {} to {}", sh(n.input(0)), shapeString(target))));
    target[size_t(wild)] = total / known;
  }
  if (numElements(target) != total)
    return Unexpected(shapeError(n, fmt::format("cannot reshape {} ({} elements) to {} ({} elements)", sh(n.input(0)),
                                                     total, shapeString(target), numElements(target))));
  return Types{{n.input(0)->type().dtype, target}};
}

Expected<Types> shapeDense(const Node& n) {
  SHOAL_TRY(checkFusedActivation(n));
  const Value* x = n.input(0);
  const Value* w = n.input(1);
  SHOAL_TRY(requireFloat(n, x, "input"));
  SHOAL_TRY(requireSameDType(n, x, w));
  SHOAL_TRY(requireRank(n, x, 2, "input ([batch, features]; flatten first)"));
  SHOAL_TRY(requireRank(n, w, 2, "weight ([out, in])"));
  const Shape& xs = x->type().shape;
  const Shape& ws = w->type().shape;
  if (xs[1] != ws[1])
    return Unexpected(shapeError(
        n, fmt::format("input has {} features ({}) but the weight expects {} ({})", xs[1], sh(x), ws[1], sh(w))));
  if (n.numInputs() == 3) {
    const Value* b = n.input(2);
    if (b->type().shape != Shape{ws[0]} || b->type().dtype != x->type().dtype)
      return Unexpected(shapeError(n, fmt::format("bias must be {}[{}], got {}", dtypeName(x->type().dtype), ws[0], sh(b))));
  }
  return Types{{x->type().dtype, {xs[0], ws[0]}}};
}

// fused_mlp: x [batch, in], w1 [hidden, in], b1 [hidden], w2 [out, hidden], b2 [out].
Expected<Types> shapeMlp(const Node& n) {
  SHOAL_TRY(checkFusedActivation(n));
  const Value* x = n.input(0);
  SHOAL_TRY(requireFloat(n, x, "input"));
  SHOAL_TRY(requireRank(n, x, 2, "input ([batch, features]; flatten first)"));
  for (size_t i = 1; i < 5; ++i) SHOAL_TRY(requireSameDType(n, x, n.input(i)));
  SHOAL_TRY(requireRank(n, n.input(1), 2, "first weight ([hidden, in])"));
  SHOAL_TRY(requireRank(n, n.input(3), 2, "second weight ([out, hidden])"));
  const Shape& xs = x->type().shape;
  const Shape& w1 = n.input(1)->type().shape;
  const Shape& w2 = n.input(3)->type().shape;
  if (xs[1] != w1[1])
    return Unexpected(shapeError(n, fmt::format("input has {} features ({}) but the first weight expects {} ({})", xs[1],
                                                sh(x), w1[1], sh(n.input(1)))));
  if (w2[1] != w1[0])
    return Unexpected(shapeError(n, fmt::format("the first weight makes {} hidden features ({}) but the second expects {} ({})",
                                                w1[0], sh(n.input(1)), w2[1], sh(n.input(3)))));
  if (n.input(2)->type().shape != Shape{w1[0]})
    return Unexpected(shapeError(n, fmt::format("first bias must be [{}], got {}", w1[0], sh(n.input(2)))));
  if (n.input(4)->type().shape != Shape{w2[0]})
    return Unexpected(shapeError(n, fmt::format("second bias must be [{}], got {}", w2[0], sh(n.input(4)))));
  return Types{{x->type().dtype, {xs[0], w2[0]}}};
}

Expected<Types> shapeMatMul(const Node& n) {
  const Value* a = n.input(0);
  const Value* b = n.input(1);
  SHOAL_TRY(requireFloat(n, a, "left operand"));
  SHOAL_TRY(requireSameDType(n, a, b));
  SHOAL_TRY(requireRank(n, a, 2, "left operand"));
  SHOAL_TRY(requireRank(n, b, 2, "right operand"));
  bool ta = n.attrs().getInt("transpose_a") != 0, tb = n.attrs().getInt("transpose_b") != 0;
  const Shape& as = a->type().shape;
  const Shape& bs = b->type().shape;
  int64_t m = ta ? as[1] : as[0], k1 = ta ? as[0] : as[1];
  int64_t k2 = tb ? bs[1] : bs[0], nn = tb ? bs[0] : bs[1];
  if (k1 != k2)
    return Unexpected(shapeError(n, fmt::format("inner dimensions differ: {} ({}{}) vs {} ({}{})", k1, sh(a), ta ? ", transposed" : "",
                                                     k2, sh(b), tb ? ", transposed" : "")));
  return Types{{a->type().dtype, {m, nn}}};
}

Expected<Types> shapeBroadcast(const Node& n) {
  const Value* a = n.input(0);
  const Value* b = n.input(1);
  SHOAL_TRY(requireSameDType(n, a, b));
  auto out = broadcastShapes(a->type().shape, b->type().shape);
  if (!out)
    return Unexpected(shapeError(n, fmt::format("shapes {} and {} do not broadcast", sh(a), sh(b))));
  return Types{{a->type().dtype, *out}};
}

Expected<Types> shapeSumTo(const Node& n) {
  const Shape& target = n.attrs().getInts("shape");
  auto b = broadcastShapes(target, n.input(0)->type().shape);
  if (!b || *b != n.input(0)->type().shape)
    return Unexpected(shapeError(n, fmt::format("{} does not broadcast from {}", sh(n.input(0)), shapeString(target))));
  return Types{{n.input(0)->type().dtype, target}};
}

Expected<Types> shapeArgMax(const Node& n) {
  const Shape& xs = n.input(0)->type().shape;
  int64_t axis = n.attrs().getInt("axis");
  if (xs.empty()) return Unexpected(shapeError(n, "input must have rank >= 1"));
  if (axis != -1 && axis != int64_t(xs.size()) - 1)
    return Unexpected(shapeError(n, "only the last axis is supported"));
  return Types{{DType::I64, Shape(xs.begin(), xs.end() - 1)}};
}

// softmax_cross_entropy, accuracy and the cross-entropy gradient: logits [N, C], integer labels [N].
Expected<Types> requireLabels(const Node& n, const Value* logits, const Value* labels) {
  SHOAL_TRY(requireRank(n, logits, 2, "logits ([batch, classes])"));
  if (isFloat(labels->type().dtype) || labels->type().dtype == DType::Bool)
    return Unexpected(shapeError(n, fmt::format("labels must be integer class ids, got {}", sh(labels))));
  if (labels->type().shape != Shape{logits->type().shape[0]})
    return Unexpected(shapeError(n, fmt::format("labels {} do not match logits {}: expected [{}]", sh(labels),
                                                     sh(logits), logits->type().shape[0])));
  return Types{};
}

Expected<Types> shapeLoss(const Node& n) {
  const Value* p = n.input(0);
  const Value* t = n.input(1);
  SHOAL_TRY(requireFloat(n, p, "prediction"));
  if (n.kind() == OpKind::Mse) {
    if (p->type() != t->type())
      return Unexpected(shapeError(n, fmt::format("prediction {} and target {} must have the same type", sh(p), sh(t))));
    return Types{{p->type().dtype, {}}};
  }
  SHOAL_TRY(requireLabels(n, p, t));
  DType out = n.kind() == OpKind::Accuracy ? DType::F32 : p->type().dtype;
  return Types{{out, {}}};
}

Expected<Types> shapeSameAsFirst(const Node& n) {
  // Gradient ops: (forward operand or output, upstream gradient, ...) -> gradient of the first.
  const Value* x = n.input(0);
  const TensorType& t = x->type();
  if (n.kind() == OpKind::ReluGrad || n.kind() == OpKind::SigmoidGrad || n.kind() == OpKind::TanhGrad ||
      n.kind() == OpKind::SoftmaxGrad || n.kind() == OpKind::LogSoftmaxGrad || n.kind() == OpKind::MaxPool2dGrad) {
    SHOAL_TRY(requireFloat(n, x, "operand"));
    if (n.input(1)->type().dtype != t.dtype ||
        (n.kind() != OpKind::MaxPool2dGrad && n.input(1)->type().shape != t.shape))
      return Unexpected(shapeError(n, fmt::format("gradient {} does not match operand {}", sh(n.input(1)), sh(x))));
  }
  if (n.kind() == OpKind::SoftmaxGrad || n.kind() == OpKind::LogSoftmaxGrad) SHOAL_TRY(shapeSameFloatAxis(n));
  if (n.kind() == OpKind::MaxPool2dGrad) {
    SHOAL_TRY(requireRank(n, x, 4, "input (NCHW)"));
    auto y = poolOutputShape(n, t);
    if (!y) return Unexpected(y.error());
    SHOAL_TRY(requireGradient(n, n.input(1), {t.dtype, *y}, "the pooled output"));
  }
  if (n.kind() == OpKind::SoftmaxCrossEntropyGrad) {
    SHOAL_TRY(requireFloat(n, x, "prediction"));
    SHOAL_TRY(requireLabels(n, x, n.input(1)));
  }
  if (n.kind() == OpKind::MseGrad) {
    SHOAL_TRY(requireFloat(n, x, "prediction"));
    if (n.input(1)->type() != t)
      return Unexpected(
          shapeError(n, fmt::format("prediction {} and target {} must have the same type", sh(x), sh(n.input(1)))));
  }
  if (n.kind() == OpKind::SoftmaxCrossEntropyGrad || n.kind() == OpKind::MseGrad) {
    const Value* dloss = n.input(2);
    if (dloss->type().rank() != 0)
      return Unexpected(shapeError(n, fmt::format("loss gradient must be a scalar, got {}", sh(dloss))));
    if (dloss->type().dtype != t.dtype)
      return Unexpected(
          shapeError(n, fmt::format("loss gradient {} must have the element type of {}", sh(dloss), sh(x))));
  }
  return Types{t};
}

Expected<Types> shapeFusedElementwise(const Node& n) {
  TensorType t = n.input(0)->type();
  if (const std::string& name = n.attrs().getString("dtype", ""); !name.empty()) {
    auto dt = parseDType(name);
    if (!dt) return Unexpected(shapeError(n, fmt::format("unknown dtype '{}'", name)));
    if (!isFloat(*dt)) return Unexpected(shapeError(n, fmt::format("dtype must be f32 or f64, got {}", name)));
    t.dtype = *dt;
  } else if (!isFloat(t.dtype)) {
    return Unexpected(shapeError(n, fmt::format("operands must be f32 or f64, got {}", sh(n.input(0)))));
  }
  for (size_t i = 0; i < n.numInputs(); ++i) {
    const TensorType& in = n.input(i)->type();
    if (in.shape != t.shape)
      return Unexpected(shapeError(n, fmt::format("operand {} is {}, operand 0 is {}: fused operands share one shape", i,
                                                       sh(n.input(i)), sh(n.input(0)))));
    if (in.dtype != t.dtype && !convertsOnLoad(in.dtype))
      return Unexpected(shapeError(n, fmt::format("operand {} is {}: a fused chain in {} reads u8, i8, i32, f32 or f64", i,
                                                       sh(n.input(i)), dtypeName(t.dtype))));
  }
  auto program = parseElementwiseExpr(n.attrs().getString("expr"), int(n.numInputs()));
  if (!program) return Unexpected(shapeError(n, program.error().message()));
  return Types{t};
}

}  // namespace

std::optional<Shape> broadcastShapes(const Shape& a, const Shape& b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = geometry::alignedExtent(a, i, rank), db = geometry::alignedExtent(b, i, rank);
    if (da != db && da != 1 && db != 1) return std::nullopt;
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::optional<int64_t> windowOutputSize(int64_t in, int64_t kernel, int64_t stride, int64_t padBefore,
                                        int64_t padAfter, int64_t dilation) {
  if (stride <= 0) return std::nullopt;
  auto kernelMinus1 = checkedSub(kernel, 1);
  auto spread = kernelMinus1 ? checkedMul(dilation, *kernelMinus1) : std::nullopt;
  auto span = spread ? checkedAdd(*spread, 1) : std::nullopt;
  auto padded1 = checkedAdd(in, padBefore);
  auto padded = padded1 ? checkedAdd(*padded1, padAfter) : std::nullopt;
  if (!span || !padded) return std::nullopt;
  if (*padded < *span) return 0;
  auto steps = checkedSub(*padded, *span);
  if (!steps) return std::nullopt;
  return checkedAdd(*steps / stride, 1);
}

std::vector<int64_t> samePadding(int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh,
                                 int64_t dw) {
  auto one = [](int64_t in, int64_t k, int64_t s, int64_t d) {
    if (in <= 0 || k <= 0 || s <= 0 || d <= 0) return std::pair<int64_t, int64_t>(0, 0);
    int64_t out = in / s + (in % s != 0);  // ceil(in / s) without forming in + s - 1
    // (out - 1)·s <= in - 1, so `rest` lies in [1 - s, 0] and only d·(k - 1) can overflow.
    int64_t rest = (out - 1) * s + 1 - in;
    auto spread = checkedMul(d, k - 1);
    int64_t total = spread ? *spread + rest : std::numeric_limits<int64_t>::max();
    total = std::max<int64_t>(0, total);
    return std::pair<int64_t, int64_t>(total / 2, total - total / 2);
  };
  auto [t, b] = one(h, kh, sh, dh);
  auto [l, r] = one(w, kw, sw, dw);
  return {t, l, b, r};
}

namespace {

Expected<std::vector<TensorType>> dispatchShapeRule(const Node& node) {
  using namespace shape;
  switch (node.kind()) {
#define SHOAL_OP(kind, text, minIn, maxIn, results, schema, shapeRule, traits, grad, doc) \
  case OpKind::kind:                                                                      \
    return shapeRule(node);
#include "ir/ops.def"
#undef SHOAL_OP
  }
  return Unexpected(Error("unknown op"));
}

}  // namespace

Expected<std::vector<TensorType>> inferResultTypes(const Node& node) {
  // Every tensor's size must fit: the rules below and every later layer (the planner, the
  // kernels) multiply extents, so an operand or a result past kMaxTensorBytes stops here.
  for (size_t i = 0; i < node.numInputs(); ++i) {
    const TensorType& t = node.input(i)->type();
    if (std::string why = tensorSizeProblem(t); !why.empty())
      return Unexpected(shapeError(node, fmt::format("operand %{} {} is too large: {}", node.input(i)->name(), t.str(), why)));
  }
  // The storage types (f16, i8, ...) are held and converted, never computed in: only the ops
  // whose row says `storage()` (sources, outputs, cast) take or make them.
  const bool storage = opInfo(node.kind()).traits.storageTypes;
  for (size_t i = 0; i < node.numInputs() && !storage; ++i)
    if (DType t = node.input(i)->type().dtype; storageOnly(t))
      return Unexpected(shapeError(
          node, computeDType(t) != t
                    ? fmt::format("operand %{} is {}: shoal stores {} values and computes in {} (cast it first)",
                                  node.input(i)->name(), node.input(i)->type().str(), dtypeName(t),
                                  dtypeName(computeDType(t)))
                    : fmt::format("operand %{} is {}: shoal stores {} values and only casts them",
                                  node.input(i)->name(), node.input(i)->type().str(), dtypeName(t))));
  auto types = dispatchShapeRule(node);
  if (!types) return types;
  for (size_t r = 0; r < types->size() && !storage; ++r)
    if (storageOnly((*types)[r].dtype))
      return Unexpected(shapeError(node, fmt::format("result {} is a storage type; only cast makes those",
                                                     (*types)[r].str())));
  for (size_t r = 0; r < types->size(); ++r) {
    const TensorType& t = (*types)[r];
    if (std::string why = tensorSizeProblem(t); !why.empty()) {
      std::string name = r < node.numResults() ? "%" + node.result(r)->name() + " " : "";
      return Unexpected(shapeError(node, fmt::format("result {}{} is too large: {}", name, t.str(), why)));
    }
  }
  return types;
}

}  // namespace shoal
