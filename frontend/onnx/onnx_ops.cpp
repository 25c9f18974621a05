// The ONNX op table: how each ai.onnx op becomes shoal IR (or, when its inputs are known at
// import time, a folded tensor). One function per op (or per family of ops that lower alike),
// one row per op in kOps at the end. A lowering reads every attribute it honours; an
// attribute it does not read makes the node unsupported (never silently ignored). A value
// shoal cannot compute gives a clear "unsupported" error naming the node.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "frontend/onnx/onnx_fold.h"
#include "frontend/onnx/onnx_importer.h"
#include "frontend/onnx/onnx_ops_families.h"
#include "ir/conv_geometry.h"
#include "ir/shape_inference.h"

namespace shoal::onnx_import {

namespace {

// The most elements a tensor computed at import time may have (a constant that large belongs in
// the model's initializers, not in shape arithmetic).
constexpr int64_t kMaxFoldedElements = int64_t(1) << 28;

int64_t product(const Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to && i < s.size(); ++i) p *= s[i];
  return p;
}

std::string dtypeAttr(DType t) { return std::string(dtypeName(t)); }

// ---- plain aliases and constants --------------------------------------------------------------

void lowerIdentity(NodeContext& c) {
  if (const Tensor* k = c.known(0))
    c.setKnownOutput(0, *k);
  else
    c.setOutput(0, c.value(0));
}

void lowerConstant(NodeContext& c) {
  static const char* kValueAttrs[] = {"value",      "value_float",  "value_floats",  "value_int",
                                      "value_ints", "value_string", "value_strings", "sparse_value"};
  int given = 0;
  for (const char* a : kValueAttrs) given += c.hasAttr(a);
  if (given != 1) c.invalid("needs exactly one value attribute");
  if (c.hasAttr("value")) return c.setKnownOutput(0, c.attrTensor("value"));
  if (c.hasAttr("value_float")) {
    Tensor t(DType::F32, {});
    t.set(0, c.attrFloat("value_float"));
    return c.setKnownOutput(0, t);
  }
  if (c.hasAttr("value_floats")) {
    auto v = c.attrFloats("value_floats");
    return c.setKnownOutput(0, Tensor::fromDoubles(DType::F32, {int64_t(v.size())}, v));
  }
  if (c.hasAttr("value_int")) {
    Tensor t(DType::I64, {});
    t.data<int64_t>()[0] = c.attrInt("value_int");
    return c.setKnownOutput(0, t);
  }
  if (c.hasAttr("value_ints")) return c.setKnownOutput(0, fold::ints(c.attrInts("value_ints")));
  c.unsupported(c.hasAttr("sparse_value") ? "sparse constants" : "string constants");
}

// Dropout: shoal's dropout, the identity at inference (what ONNX computes without
// training_mode) and a dropout again when a pipeline fine-tunes the model.
void lowerDropout(NodeContext& c) {
  if (c.opset() < 7 && c.attrInt("is_test", 0) == 0) c.unsupported("dropout in training mode (is_test=0)");
  if (c.opset() < 6) c.ignoreAttr("consumed_inputs");
  double rate = 0.5;
  if (c.opset() < 12) {
    rate = c.attrFloat("ratio", 0.5);
  } else {
    c.attrInt("seed", 0);  // only the training form draws masks, from shoal's own seed
    if (c.has(1)) rate = c.constantFloats(1, "the ratio").at(0);
  }
  if (c.has(2)) {
    auto mode = c.constantInts(2, "training_mode");
    // Training mode draws a random mask, except at ratio 0, where it keeps everything.
    if (!mode.empty() && mode[0] != 0 && rate != 0) c.unsupported("dropout in training mode (training_mode=true)");
  }
  c.requireFloat(0);
  Attrs a;
  a.set("rate", rate);
  c.setOutput(0, c.emit(OpKind::Dropout, {c.value(0)}, a));
  // At inference every element is kept: the mask is all true (a constant; a pipeline that
  // fine-tunes the model does not read it either).
  if (c.outputUsed(1)) {
    if (c.opset() < 10) c.unsupported("the dropout mask output before opset 10 (its type is the input's)");
    Tensor ones(DType::Bool, c.shape(0));
    for (int64_t i = 0; i < ones.numElements(); ++i) ones.set(i, 1.0);
    c.setOutput(1, c.constantValue(ones, "mask"));
  }
}

// ---- elementwise ---------------------------------------------------------------------------

template <OpKind kKind>
void lowerFloatUnary(NodeContext& c) {
  c.requireFloat(0);
  if (c.opset() < 6) c.ignoreAttr("consumed_inputs");
  c.setOutput(0, c.emit(kKind, {c.value(0)}));
}

// Gelu (opset 20): the exact form (erf) or, approximate = "tanh", the tanh form.
void lowerGelu(NodeContext& c) {
  c.requireFloat(0);
  std::string approximate = c.attrString("approximate", "none");
  if (approximate != "none" && approximate != "tanh") c.invalid(fmt::format("approximate '{}'", approximate));
  c.setOutput(0, c.emit(approximate == "tanh" ? OpKind::GeluTanh : OpKind::Gelu, {c.value(0)}));
}

void lowerNeg(NodeContext& c) {
  if (c.opset() < 6) c.ignoreAttr("consumed_inputs");
  if (isFloat(c.dtype(0))) return c.setOutput(0, c.emit(OpKind::Neg, {c.value(0)}));
  // Integers: 0 - x (shoal's neg is for floats).
  c.setOutput(0, c.emit(OpKind::Sub, {c.scalar(0, c.dtype(0), "zero"), c.value(0)}));
}

bool foldNeg(NodeContext& c) {
  if (c.opset() < 6) c.ignoreAttr("consumed_inputs");
  c.setKnownOutput(0, fold::unary(*c.known(0), c.dtype(0), [](double x) { return -x; }));
  return true;
}

}  // namespace

// Opsets before 7 broadcast only with broadcast=1, B aligned to A at `axis` (default: the
// trailing dims). The shape B takes to broadcast NumPy-style.
Shape legacyBroadcastShape(NodeContext& c) {
  if (c.opset() >= 7) return c.shape(1);
  if (c.opset() < 6) c.ignoreAttr("consumed_inputs");
  bool broadcast = c.attrInt("broadcast", 0) != 0;
  const Shape& a = c.shape(0);
  const Shape& b = c.shape(1);
  if (!broadcast) {
    c.ignoreAttr("axis");
    if (a != b) c.invalid(fmt::format("shapes {} and {} differ without broadcast=1", shapeString(a), shapeString(b)));
    return b;
  }
  int64_t axis = c.attrInt("axis", int64_t(a.size()) - int64_t(b.size()));
  if (axis < 0) axis += int64_t(a.size());
  if (axis < 0 || axis + int64_t(b.size()) > int64_t(a.size()))
    c.invalid(fmt::format("cannot broadcast {} into {} at axis {}", shapeString(b), shapeString(a), axis));
  Shape out(b);
  out.resize(a.size() - size_t(axis), 1);
  return out;
}

namespace {

std::function<double(double, double)> arithmetic(OpKind k) {
  switch (k) {
    case OpKind::Add:
      return [](double x, double y) { return x + y; };
    case OpKind::Sub:
      return [](double x, double y) { return x - y; };
    case OpKind::Mul:
      return [](double x, double y) { return x * y; };
    default:
      return [](double x, double y) { return x / y; };
  }
}

template <OpKind kKind>
void lowerBinary(NodeContext& c) {
  Shape bShape = legacyBroadcastShape(c);
  if (c.dtype(0) != c.dtype(1))
    c.invalid(fmt::format("operand types differ: {} and {}", c.type(0).str(), c.type(1).str()));
  Value* b = c.reshape(c.value(1), bShape, "b");
  c.setOutput(0, c.emit(kKind, {c.value(0), b}));
}

template <OpKind kKind>
bool foldBinary(NodeContext& c) {
  Shape bShape = legacyBroadcastShape(c);
  auto out = fold::binary(*c.known(0), c.known(1)->reshaped(bShape), c.dtype(0), arithmetic(kKind));
  if (!out) c.invalid("operand shapes do not broadcast");
  c.setKnownOutput(0, *out);
  return true;
}

// Sum and Mean: a chain of adds (then a scale for Mean).
template <bool kMean>
void lowerVariadicSum(NodeContext& c) {
  if (c.opset() < 6) c.ignoreAttr("consumed_inputs");
  if (c.numInputs() == 0) c.invalid("needs at least one input");
  Value* acc = c.value(0);
  for (size_t i = 1; i < c.numInputs(); ++i) acc = c.emit(OpKind::Add, {acc, c.value(i)}, {}, fmt::format("add{}", i));
  if (kMean && c.numInputs() > 1) {
    c.requireFloat(0);
    Attrs a;
    a.set("scale", 1.0 / double(c.numInputs()));
    acc = c.emit(OpKind::Scale, {acc}, a);
  }
  c.setOutput(0, acc);
}

// PRelu: relu(x) - slope * relu(-x).
void lowerPRelu(NodeContext& c) {
  c.requireFloat(0);
  if (c.opset() < 6) c.ignoreAttr("consumed_inputs");
  Value* x = c.value(0);
  Value* slope = c.value(1);
  Shape s = c.shape(1);
  // Before opset 7 a per-channel slope [C] applies along axis 1.
  if (c.opset() < 7 && s.size() == 1 && c.rank(0) >= 2 && s[0] == c.shape(0)[1] && s[0] != 1) {
    Shape cs(size_t(c.rank(0) - 1), 1);
    cs[0] = s[0];
    slope = c.reshape(slope, cs, "slope");
  }
  Value* pos = c.emit(OpKind::Relu, {x}, {}, "pos");
  Value* negRelu = c.emit(OpKind::Relu, {c.emit(OpKind::Neg, {x}, {}, "negx")}, {}, "neg");
  Value* scaled = c.emit(OpKind::Mul, {slope, negRelu}, {}, "slope_neg");
  c.setOutput(0, c.emit(OpKind::Sub, {pos, scaled}));
}

// ---- matrix products --------------------------------------------------------------------------

void lowerGemm(NodeContext& c) {
  c.requireFloat(0);
  double alpha = c.attrFloat("alpha", 1.0), beta = c.attrFloat("beta", 1.0);
  bool transA = c.attrInt("transA", 0) != 0, transB = c.attrInt("transB", 0) != 0;
  if (c.opset() < 7) c.attrInt("broadcast", 0);  // C broadcasts NumPy-style, a superset of the old rule
  if (c.rank(0) != 2 || c.rank(1) != 2)
    c.invalid(fmt::format("A and B must be matrices, got {} and {}", c.type(0).str(), c.type(1).str()));
  int64_t n = transB ? c.shape(1)[0] : c.shape(1)[1];
  bool hasC = c.has(2);
  // The common case, y = x w^T + b, is shoal's dense (one GEMM with its bias).
  bool denseBias =
      !hasC || (beta == 1.0 && numElements(c.shape(2)) == n && (c.shape(2) == Shape{n} || c.shape(2) == Shape{1, n}));
  if (!transA && transB && alpha == 1.0 && denseBias) {
    std::vector<Value*> ins = {c.value(0), c.value(1)};
    if (hasC) ins.push_back(c.reshape(c.value(2), {n}, "bias"));
    return c.setOutput(0, c.emit(OpKind::Dense, ins));
  }
  Attrs m;
  m.set("transpose_a", int64_t(transA));
  m.set("transpose_b", int64_t(transB));
  Value* y = c.emit(OpKind::MatMul, {c.value(0), c.value(1)}, m);
  if (alpha != 1.0) {
    Attrs s;
    s.set("scale", alpha);
    y = c.emit(OpKind::Scale, {y}, s, "alpha");
  }
  if (hasC && beta != 0.0) {
    Value* cv = c.value(2);
    if (beta != 1.0) {
      Attrs s;
      s.set("scale", beta);
      cv = c.emit(OpKind::Scale, {cv}, s, "beta");
    }
    y = c.emit(OpKind::Add, {y, cv});
  }
  c.setOutput(0, y);
}

void lowerMatMul(NodeContext& c) {
  c.requireFloat(0);
  Shape a = c.shape(0), b = c.shape(1);
  if (a.empty() || b.empty()) c.invalid("operands must not be scalars");
  Value* av = c.value(0);
  Value* bv = c.value(1);
  // NumPy's rank-1 rules: a vector a is a row [1,K], a vector b a column [K,1]; their extent
  // is dropped from the result.
  bool aVec = a.size() == 1, bVec = b.size() == 1;
  if (aVec) av = c.reshape(av, {1, a[0]}, "a2d"), a = {1, a[0]};
  if (bVec) bv = c.reshape(bv, {b[0], 1}, "b2d"), b = {b[0], 1};
  if (b.size() > 2) return lowerBatchedMatMul(c);
  Shape outShape(a.begin(), a.end() - 1);
  outShape.push_back(b[1]);
  // Leading dims of `a` fold into its rows: [..., M, K] x [K, N] is one [prod, K] x [K, N] GEMM
  // (the rows written -1, so the reshape follows the batch when a Session rebatches).
  Value* a2 = c.reshape(av, {a.size() > 2 ? -1 : a[0], a.back()}, "rows");
  Value* y = c.emit(OpKind::MatMul, {a2, bv});
  if (aVec) outShape.erase(outShape.end() - 2);
  if (bVec) outShape.pop_back();
  c.setOutput(0, c.reshape(y, outShape, "out"));
}

// ---- convolution and pooling ---------------------------------------------------------------------

}  // namespace

Window readWindow(NodeContext& c, const Shape& x, std::vector<int64_t> kernel, bool hasDilations) {
  Window w;
  w.spatial = int64_t(x.size()) - 2;
  if (w.spatial != 1 && w.spatial != 2)
    c.unsupported(fmt::format("{}-D input {} (shoal's convolutions and pools are 2-D; 1-D runs as 2-D)", w.spatial,
                              shapeString(x)));
  size_t sp = size_t(w.spatial);
  if (c.hasAttr("kernel_shape") || kernel.empty()) {
    auto ks = c.attrInts("kernel_shape");
    if (!kernel.empty() && ks != kernel)
      c.invalid(fmt::format("kernel_shape {} differs from the weight's {}", shapeString(ks), shapeString(kernel)));
    kernel = ks;
  }
  if (kernel.size() != sp) c.invalid("kernel_shape has the wrong length");
  auto strides = c.attrInts("strides", std::vector<int64_t>(sp, 1));
  auto dil = hasDilations ? c.attrInts("dilations", std::vector<int64_t>(sp, 1)) : std::vector<int64_t>(sp, 1);
  std::string autoPad = c.attrString("auto_pad", "NOTSET");
  std::vector<int64_t> pads = c.attrInts("pads", std::vector<int64_t>(2 * sp, 0));
  if (strides.size() != sp || dil.size() != sp || pads.size() != 2 * sp)
    c.invalid("strides, dilations or pads have the wrong length");
  if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
    for (size_t i = 0; i < sp; ++i) {
      int64_t in = x[2 + i];
      int64_t out = (in + strides[i] - 1) / strides[i];
      int64_t total = std::max<int64_t>(0, (out - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - in);
      int64_t small = total / 2, big = total - small;
      pads[i] = autoPad == "SAME_UPPER" ? small : big;
      pads[i + sp] = autoPad == "SAME_UPPER" ? big : small;
    }
  } else if (autoPad == "VALID") {
    std::fill(pads.begin(), pads.end(), 0);
  } else if (autoPad != "NOTSET") {
    c.invalid(fmt::format("unknown auto_pad '{}'", autoPad));
  }
  if (sp == 1) {
    w.kernel = {1, kernel[0]};
    w.stride = {1, strides[0]};
    w.dilation = {1, dil[0]};
    w.pads = {0, pads[0], 0, pads[1]};
  } else {
    w.kernel = kernel;
    w.stride = strides;
    w.dilation = dil;
    w.pads = {pads[0], pads[1], pads[2], pads[3]};
  }
  return w;
}

// x as 4-D NCHW (a 1-D input [N, C, L] gains a unit height).
Value* as4d(NodeContext& c, Value* x, const Window& w, const std::string& suffix) {
  if (w.spatial == 2) return x;
  const Shape& s = x->type().shape;
  return c.reshape(x, {s[0], s[1], 1, s[2]}, suffix);
}

// A 4-D result back in the model's rank.
Value* fromNd(NodeContext& c, Value* y, const Window& w) {
  if (w.spatial == 2) return y;
  const Shape& s = y->type().shape;
  return c.reshape(y, {s[0], s[1], s[3]}, "out");
}

namespace {

// Conv's and ConvTranspose's operands: a float input [N, C, spatial...] and a weight of its rank.
void requireConvOperands(NodeContext& c) {
  c.requireFloat(0);
  if (c.rank(0) < 3 || c.rank(1) != c.rank(0))
    c.invalid(
        fmt::format("weight {} and input {} must be [N, C, spatial...] of one rank", c.type(1).str(), c.type(0).str()));
}

void lowerConv(NodeContext& c) {
  requireConvOperands(c);
  const Shape& xs = c.shape(0);
  const Shape& ws = c.shape(1);
  if (xs.size() == 5) return lowerConv3d(c);
  Window w = readWindow(c, xs, std::vector<int64_t>(ws.begin() + 2, ws.end()), /*hasDilations=*/true);
  int64_t group = c.attrInt("group", 1);
  Value* x = as4d(c, c.value(0), w, "x4d");
  Value* weight = c.value(1);
  if (w.spatial == 1) weight = c.reshape(weight, {ws[0], ws[1], 1, ws[2]}, "w4d");
  std::vector<Value*> ins = {x, weight};
  if (c.has(2)) ins.push_back(c.value(2));
  Attrs a;
  a.set("stride", w.stride);
  a.set("padding", w.pads);
  a.set("dilation", w.dilation);
  a.set("groups", group);
  c.setOutput(0, fromNd(c, c.emit(OpKind::Conv2d, ins, a), w));
}

// ConvTranspose: shoal's conv_transpose2d (PyTorch's ConvTranspose2d), its padding cropped from
// the full output; output_shape and auto_pad become that cropping (ONNX's rule: the odd pixel
// goes to the end for SAME_UPPER, to the start otherwise).
void lowerConvTranspose(NodeContext& c) {
  requireConvOperands(c);
  const Shape& xs = c.shape(0);
  const Shape& ws = c.shape(1);
  size_t sp = xs.size() - 2;
  if (sp != 1 && sp != 2)
    c.unsupported(fmt::format("{}-D input {} (shoal's convolutions are 2-D; 1-D runs as 2-D)", sp, shapeString(xs)));
  std::vector<int64_t> kernel(ws.begin() + 2, ws.end());
  if (c.hasAttr("kernel_shape") && c.attrInts("kernel_shape") != kernel)
    c.invalid("kernel_shape differs from the weight's");
  auto strides = c.attrInts("strides", std::vector<int64_t>(sp, 1));
  auto dil = c.attrInts("dilations", std::vector<int64_t>(sp, 1));
  auto outPad = c.attrInts("output_padding", std::vector<int64_t>(sp, 0));
  auto pads = c.attrInts("pads", std::vector<int64_t>(2 * sp, 0));
  std::string autoPad = c.attrString("auto_pad", "NOTSET");
  int64_t group = c.attrInt("group", 1);
  if (strides.size() != sp || dil.size() != sp || outPad.size() != sp || pads.size() != 2 * sp)
    c.invalid("strides, dilations, output_padding or pads have the wrong length");
  std::vector<int64_t> outShape;
  if (c.hasAttr("output_shape")) {
    outShape = c.attrInts("output_shape");
    if (outShape.size() == sp + 2) outShape.erase(outShape.begin(), outShape.begin() + 2);
    if (outShape.size() != sp) c.invalid("output_shape has the wrong length");
  } else if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
    for (size_t i = 0; i < sp; ++i) outShape.push_back(xs[2 + i] * strides[i]);
  } else if (autoPad != "NOTSET" && autoPad != "VALID") {
    c.invalid(fmt::format("unknown auto_pad '{}'", autoPad));
  }
  if (!outShape.empty()) {
    for (size_t i = 0; i < sp; ++i) {
      int64_t full = strides[i] * (xs[2 + i] - 1) + outPad[i] + (kernel[i] - 1) * dil[i] + 1;
      int64_t total = full - outShape[i];
      if (total < 0) {
        // A longer output than the full one: the extra goes into output_padding, if it may.
        outPad[i] -= total;
        total = 0;
      }
      int64_t small = total / 2, big = total - small;
      pads[i] = autoPad == "SAME_UPPER" ? small : big;
      pads[i + sp] = autoPad == "SAME_UPPER" ? big : small;
    }
  }
  for (size_t i = 0; i < sp; ++i)
    if (outPad[i] >= strides[i] && outPad[i] >= dil[i])
      c.unsupported(
          fmt::format("output padding {} not below the stride {} or dilation {}", outPad[i], strides[i], dil[i]));
  Window w;
  w.spatial = int64_t(sp);
  Value* x = as4d(c, c.value(0), w, "x4d");
  Value* weight = c.value(1);
  Attrs a;
  if (sp == 1) {
    weight = c.reshape(weight, {ws[0], ws[1], 1, ws[2]}, "w4d");
    a.set("stride", std::vector<int64_t>{1, strides[0]});
    a.set("padding", std::vector<int64_t>{0, pads[0], 0, pads[1]});
    a.set("output_padding", std::vector<int64_t>{0, outPad[0]});
    a.set("dilation", std::vector<int64_t>{1, dil[0]});
  } else {
    a.set("stride", strides);
    a.set("padding", pads);
    a.set("output_padding", outPad);
    a.set("dilation", dil);
  }
  a.set("groups", group);
  std::vector<Value*> ins = {x, weight};
  if (c.has(2)) ins.push_back(c.value(2));
  c.setOutput(0, fromNd(c, c.emit(OpKind::ConvTranspose2d, ins, a), w));
}

// Whether ceil_mode's output extents are ONNX's as well as PyTorch's (which shoal computes):
// PyTorch drops a last window that would start in the trailing padding, ONNX 1.12 keeps it.
bool ceilModeAgrees(const Window& w, int64_t h, int64_t wd) {
  int64_t ins[2] = {h, wd};
  for (size_t i = 0; i < 2; ++i) {
    int64_t room = ins[i] + w.pads[i] + w.pads[i + 2] - w.kernel[i];
    int64_t onnx = room < 0 ? 0 : (room + w.stride[i] - 1) / w.stride[i] + 1;
    if (onnx != poolOutputSize(ins[i], w.kernel[i], w.stride[i], w.pads[i], w.pads[i + 2], /*ceilMode=*/true))
      return false;
  }
  return true;
}

void lowerPool(NodeContext& c, OpKind kind) {
  bool isMax = kind == OpKind::MaxPool2d;
  // MaxPool on uint8 or int8 (opset 12): the maximum of f32 copies, which hold those exactly.
  const bool bytes = isMax && (c.dtype(0) == DType::U8 || c.slot(0).onnxDType() == DType::I8);
  if (!bytes) c.requireFloat(0);
  if (c.rank(0) == 5) {
    if (bytes) c.unsupported("3-D max pooling of integers");
    return lowerPool3d(c, isMax);
  }
  Window w = readWindow(c, c.shape(0), {}, /*hasDilations=*/isMax ? c.opset() >= 10 : c.opset() >= 19);
  if (w.dilation != std::vector<int64_t>{1, 1}) {
    if (bytes) c.unsupported("dilated max pooling of integers");
    if (!isMax) c.unsupported("average pooling with dilations");
    return lowerDilatedMaxPool(c);
  }
  Attrs a;
  if (isMax) {
    if (c.opset() >= 8) c.attrInt("storage_order", 0);  // only the indices output depends on it
    if (c.outputUsed(1)) c.setOutput(1, maxPoolIndices(c));
  } else {
    // Before opset 7 the divisor excludes the padding.
    a.set("count_include_pad", c.opset() >= 7 ? c.attrInt("count_include_pad", 0) : int64_t(0));
  }
  const Shape& xs = c.shape(0);
  int64_t h = w.spatial == 2 ? xs[2] : 1, wd = xs[w.spatial == 2 ? 3 : 2];
  bool ceil = c.opset() >= 10 && c.attrInt("ceil_mode", 0) != 0;
  if (ceil && !ceilModeAgrees(w, h, wd))
    c.unsupported(
        "ceil_mode=1 with a last window inside the trailing padding (ONNX keeps it, PyTorch and shoal drop it)");
  a.set("kernel", w.kernel);
  a.set("stride", w.stride);
  a.set("padding", w.pads);
  a.set("ceil_mode", int64_t(ceil));
  Value* x = c.value(0);
  if (bytes) {
    Attrs f;
    f.set("dtype", std::string("f32"));
    x = c.emit(OpKind::Cast, {x}, f, "f32");
  }
  Value* y = fromNd(c, c.emit(kind, {as4d(c, x, w, "x4d")}, a, bytes ? "pooled" : ""), w);
  if (bytes) {
    Attrs back;
    back.set("dtype", std::string(dtypeName(c.dtype(0))));
    y = c.emit(OpKind::Cast, {y}, back);
  }
  c.setOutput(0, y);
}

void lowerMaxPool(NodeContext& c) { lowerPool(c, OpKind::MaxPool2d); }
void lowerAveragePool(NodeContext& c) { lowerPool(c, OpKind::AvgPool2d); }

// Global pooling of [N, C, spatial...] as 2-D pooling of one plane: 1-D inputs gain a unit
// height, 3-D and more fold their leading spatial axes into the height ([N, C, D·H, W]: every
// position of the volume is in the plane), and the result takes the model's rank back.
Value* globalPool(NodeContext& c, OpKind kind) {
  c.requireFloat(0);
  const Shape& xs = c.shape(0);
  if (xs.size() < 3) c.invalid(fmt::format("input {} has no spatial axes", c.type(0).str()));
  int64_t last = xs.back();
  int64_t height = numElements(Shape(xs.begin() + 2, xs.end())) / std::max<int64_t>(last, 1);
  Value* x = c.reshape(c.value(0), {xs[0], xs[1], height, last}, "x4d");
  Value* y;
  if (kind == OpKind::GlobalAvgPool) {
    y = c.emit(kind, {x});
  } else {
    Attrs a;
    a.set("kernel", std::vector<int64_t>{height, last});
    a.set("stride", std::vector<int64_t>{height, last});
    a.set("padding", std::vector<int64_t>{0, 0, 0, 0});
    y = c.emit(kind, {x}, a);
  }
  Shape out(xs.size(), 1);
  out[0] = xs[0], out[1] = xs[1];
  return c.reshape(y, out, "");
}

void lowerGlobalAveragePool(NodeContext& c) { c.setOutput(0, globalPool(c, OpKind::GlobalAvgPool)); }
void lowerGlobalMaxPool(NodeContext& c) { c.setOutput(0, globalPool(c, OpKind::MaxPool2d)); }

// Batch normalization with running statistics: shoal's batchnorm (the evaluation form; a
// training step turns it into PyTorch's training form). A float initializer for the mean or the
// variance becomes state (the training form updates it), scale and B parameters.
// Mean, x − mean, population variance and 1/sqrt(variance + eps) of x over `axes` (kept as
// unit axes), composed of reductions (so they differentiate like any graph).
struct Moments {
  Value *mean, *centred, *var, *invStd;
};
Moments moments(NodeContext& c, Value* x, const std::vector<int64_t>& axes, double eps) {
  Attrs r;
  r.set("axes", axes);
  r.set("keepdim", int64_t(1));
  Moments m;
  m.mean = c.emit(OpKind::ReduceMean, {x}, r, "mean");
  m.centred = c.emit(OpKind::Sub, {x, m.mean}, {}, "centred");
  m.var = c.emit(OpKind::ReduceMean, {c.emit(OpKind::Mul, {m.centred, m.centred}, {}, "squared")}, r, "var");
  Value* varEps = c.emit(OpKind::Add, {m.var, c.scalar(eps, x->type().dtype, "eps")}, {}, "var_eps");
  m.invStd = c.emit(OpKind::Reciprocal, {c.emit(OpKind::Sqrt, {varEps}, {}, "std")}, {}, "inv_std");
  return m;
}

// training_mode=1 (opset 14): normalised by the batch's own statistics over every axis but the
// channel (population variance, as ONNX's reference): shoal's batchnorm_train, one kernel
// forward and one (batchnorm_train_grad) for its gradient, where reductions and broadcasts
// composed a dozen nodes each way. The running statistics outputs, when read, are
// input · momentum + batch · (1 - momentum), from the batch's moments composed of reductions.
// (timm's NF-Nets export their weight standardisation so.)
void lowerBatchNormTraining(NodeContext& c, double eps, double momentum) {
  if (c.rank(0) < 2) c.invalid("input must have a channel axis");
  const Shape& xs = c.shape(0);
  int64_t channels = xs[1];
  for (size_t i = 1; i < 5; ++i)
    if (c.shape(i) != Shape{channels})
      c.invalid(fmt::format("input {} is {}, expected [{}] (one per channel)", i, c.type(i).str(), channels));
  DType dt = c.dtype(0);
  std::vector<int64_t> axes{0};
  for (int64_t d = 2; d < int64_t(xs.size()); ++d) axes.push_back(d);
  Attrs a;
  a.set("eps", eps);
  c.setOutput(0, c.emit(OpKind::BatchNormTrain, {c.value(0), c.value(1), c.value(2)}, a));
  if (!c.outputUsed(1) && !c.outputUsed(2)) return;
  auto [mean, centred, var, inv] = moments(c, c.value(0), axes, eps);
  for (size_t i = 1; i < 3; ++i) {
    if (!c.outputUsed(i)) continue;
    Value* batch = c.reshape(i == 1 ? mean : var, {channels}, i == 1 ? "mean_out" : "var_out");
    Value* running = c.emit(OpKind::Add,
                            {c.emit(OpKind::Mul, {c.value(i + 2), c.scalar(momentum, dt, "momentum")}, {},
                                    i == 1 ? "mean_kept" : "var_kept"),
                             c.emit(OpKind::Mul, {batch, c.scalar(1 - momentum, dt, "one_minus_momentum")}, {},
                                    i == 1 ? "mean_new" : "var_new")},
                            {}, i == 1 ? "running_mean" : "running_var");
    c.setOutput(i, running);
  }
}

void lowerBatchNormalization(NodeContext& c) {
  c.requireFloat(0);
  double eps = c.attrFloat("epsilon", 1e-5);
  double momentum = c.attrFloat("momentum", 0.9);  // ONNX weighs the running value, PyTorch the batch
  if (c.opset() < 6) c.ignoreAttr("consumed_inputs");
  if (c.opset() < 7 && c.attrInt("is_test", 0) == 0 && c.outputUsed(1))
    c.unsupported("batch normalization in training mode");
  if (c.opset() < 9 && c.attrInt("spatial", 1) != 1) c.unsupported("spatial=0 (per-activation statistics)");
  if (c.opset() >= 14 && c.attrInt("training_mode", 0) != 0) return lowerBatchNormTraining(c, eps, momentum);
  for (size_t i = 1; i < c.numOutputs(); ++i)
    if (c.outputUsed(i)) c.unsupported("the running statistics outputs (training mode)");
  if (c.rank(0) < 2) c.invalid("input must have a channel axis");
  Attrs a;
  a.set("eps", eps);
  a.set("momentum", std::clamp(1.0 - momentum, 0.0, 1.0));
  c.setOutput(0, c.emit(OpKind::BatchNorm, {c.value(0), c.stateValue(3), c.stateValue(4), c.value(1), c.value(2)}, a));
}

// Layer normalization over the axes from `axis` on: shoal's layernorm over the last dims.
void lowerLayerNormalization(NodeContext& c) {
  c.requireFloat(0);
  int64_t rank = c.rank(0);
  int64_t axis = c.axis(c.attrInt("axis", -1), rank);
  double eps = c.attrFloat("epsilon", 1e-5);
  int64_t stash = c.attrInt("stash_type", 1);  // shoal's statistics are double whatever the stash type
  if (c.outputUsed(1) || c.outputUsed(2)) {
    // The statistics as outputs: mean and 1/sqrt(var + eps) over the normalized axes (kept as
    // unit axes), in the stash type.
    auto st = dtypeFromOnnx(int32_t(stash));
    if (!st || !isFloat(*st)) c.unsupported(fmt::format("stash_type {}", onnxTypeName(int32_t(stash))));
    std::vector<int64_t> axes;
    for (int64_t d = axis; d < rank; ++d) axes.push_back(d);
    auto [mean, centred, var, inv] = moments(c, c.value(0), axes, eps);
    auto inStash = [&](Value* v, const std::string& suffix) {
      if (*st == c.dtype(0)) return v;
      Attrs a;
      a.set("dtype", dtypeAttr(*st));
      return c.emit(OpKind::Cast, {v}, a, suffix);
    };
    c.setOutput(1, inStash(mean, "mean_out"));
    c.setOutput(2, inStash(inv, "inv_std_out"));
  }
  Shape normalized(c.shape(0).begin() + axis, c.shape(0).end());
  std::vector<Value*> ins = {c.value(0)};
  for (size_t i = 1; i <= 2 && c.has(i); ++i) {
    if (numElements(c.shape(i)) != numElements(normalized))
      c.unsupported(fmt::format("a {} of shape {} broadcast over the normalized shape {}", i == 1 ? "scale" : "bias",
                                shapeString(c.shape(i)), shapeString(normalized)));
    ins.push_back(c.reshape(c.value(i), normalized, i == 1 ? "scale" : "bias"));
  }
  Attrs a;
  a.set("dims", rank - axis);
  a.set("eps", eps);
  c.setOutput(0, c.emit(OpKind::LayerNorm, ins, a));
}

// Instance normalization: per sample and channel over the spatial extents, which is shoal's
// groupnorm with one channel per group.
void lowerInstanceNormalization(NodeContext& c) {
  c.requireFloat(0);
  if (c.opset() < 6) c.ignoreAttr("consumed_inputs");
  if (c.rank(0) < 2) c.invalid("input must have a channel axis");
  Attrs a;
  a.set("groups", c.shape(0)[1]);
  a.set("eps", c.attrFloat("epsilon", 1e-5));
  c.setOutput(0, c.emit(OpKind::GroupNorm, {c.value(0), c.value(1), c.value(2)}, a));
}

// ---- softmax -------------------------------------------------------------------------------------

// Before opset 13 softmax flattens to 2-D at `axis` (default 1) and normalises the rows; from
// 13 on it normalises along `axis` (default -1).
void lowerSoftmaxLike(NodeContext& c, OpKind kind) {
  c.requireFloat(0);
  const Shape& xs = c.shape(0);
  int64_t rank = int64_t(xs.size());
  if (c.opset() < 13) {
    int64_t axis = c.axis(c.attrInt("axis", 1), rank);
    Value* x2 = c.reshape(c.value(0), {axis > 0 ? -1 : 1, product(xs, size_t(axis), xs.size())}, "rows");
    Value* y = c.emit(kind, {x2});
    return c.setOutput(0, c.reshape(y, xs, "out"));
  }
  if (rank == 0) c.invalid(fmt::format("{} of a scalar (its axis needs rank 1 or more)", c.opType()));
  int64_t axis = c.axis(c.attrInt("axis", -1), rank);
  // Trailing unit axes do not change which elements share a softmax.
  bool lastNonUnit = true;
  for (int64_t d = axis + 1; d < rank; ++d) lastNonUnit &= xs[size_t(d)] == 1;
  if (!lastNonUnit) return lowerSoftmaxAnyAxis(c);
  Value* x2 = c.reshape(c.value(0), {axis > 0 ? -1 : 1, xs[size_t(axis)]}, "rows");
  c.setOutput(0, c.reshape(c.emit(kind, {x2}), xs, "out"));
}

void lowerSoftmax(NodeContext& c) { lowerSoftmaxLike(c, OpKind::Softmax); }
void lowerLogSoftmax(NodeContext& c) { lowerSoftmaxLike(c, OpKind::LogSoftmax); }

// ---- shapes: reshapes are views, shape queries are known at import -------------------------------

// The output shape of Reshape's `shape` input (0 copies an extent unless allowzero, -1 infers one).
Shape reshapeTarget(NodeContext& c, const Shape& in, std::vector<int64_t> shape, bool allowZero) {
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && !allowZero) {
      if (i >= in.size()) c.invalid("shape copies an extent the input does not have");
      shape[i] = in[i];
    }
    if (shape[i] == -1) {
      if (infer >= 0) c.invalid("shape has two -1 extents");
      infer = int64_t(i);
    } else if (shape[i] < 0) {
      c.invalid(fmt::format("shape has a negative extent {}", shape[i]));
    } else {
      known *= shape[i];
    }
  }
  int64_t total = numElements(in);
  if (infer >= 0) {
    if (known == 0 || total % known != 0)
      c.invalid(fmt::format("cannot reshape {} into {}", shapeString(in), shapeString(shape)));
    shape[size_t(infer)] = total / known;
  }
  if (numElements(shape) != total)
    c.invalid(fmt::format("cannot reshape {} into {}", shapeString(in), shapeString(shape)));
  return shape;
}

// The shape a reshape-like op (Reshape, Flatten, Squeeze, Unsqueeze) gives its input 0.
Shape reshapeLikeTarget(NodeContext& c) {
  const std::string& op = c.opType();
  const Shape& in = c.shape(0);
  int64_t rank = int64_t(in.size());
  if (op == "Reshape") {
    if (c.opset() < 5) return reshapeTarget(c, in, c.attrInts("shape"), false);
    if (c.opset() < 5) c.ignoreAttr("consumed_inputs");
    bool allowZero = c.opset() >= 14 && c.attrInt("allowzero", 0) != 0;
    return reshapeTarget(c, in, c.constantInts(1, "the target shape"), allowZero);
  }
  if (op == "Flatten") {
    int64_t axis = c.attrInt("axis", 1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank) c.invalid(fmt::format("axis {} is out of range for rank {}", axis, rank));
    return {product(in, 0, size_t(axis)), product(in, size_t(axis), in.size())};
  }
  std::vector<int64_t> axes;
  bool given;
  if (c.opset() < 13) {
    given = c.hasAttr("axes");
    axes = c.attrInts("axes", std::vector<int64_t>{});
  } else {
    given = c.has(1);
    if (given) axes = c.constantInts(1, "axes");
  }
  if (op == "Squeeze") {
    std::vector<bool> drop(in.size(), false);
    if (!given) {
      for (size_t d = 0; d < in.size(); ++d) drop[d] = in[d] == 1;
    } else {
      for (int64_t a : axes) {
        int64_t d = c.axis(a, rank);
        if (in[size_t(d)] != 1) c.invalid(fmt::format("cannot squeeze axis {} of extent {}", a, in[size_t(d)]));
        drop[size_t(d)] = true;
      }
    }
    Shape out;
    for (size_t d = 0; d < in.size(); ++d)
      if (!drop[d]) out.push_back(in[d]);
    return out;
  }
  // Unsqueeze: axes are positions in the result.
  if (!given) c.invalid("needs axes");
  int64_t outRank = rank + int64_t(axes.size());
  std::vector<bool> unit(size_t(outRank), false);
  for (int64_t a : axes) {
    int64_t d = a < 0 ? a + outRank : a;
    if (d < 0 || d >= outRank || unit[size_t(d)])
      c.invalid(fmt::format("bad axis {} for a rank-{} result", a, outRank));
    unit[size_t(d)] = true;
  }
  Shape out;
  size_t next = 0;
  for (int64_t d = 0; d < outRank; ++d) out.push_back(unit[size_t(d)] ? 1 : in[next++]);
  return out;
}

void lowerReshapeLike(NodeContext& c) {
  Shape target = reshapeLikeTarget(c);
  if (const Tensor* k = c.known(0)) return c.setKnownOutput(0, k->clone().reshaped(target));
  c.setOutput(0, c.reshape(c.value(0), target, "reshape"));
}

bool foldReshapeLike(NodeContext& c) {
  lowerReshapeLike(c);
  return true;
}

void lowerShape(NodeContext& c) {
  const Shape& s = c.shape(0);
  int64_t rank = int64_t(s.size());
  int64_t start = 0, end = rank;
  if (c.opset() >= 15) {
    start = c.attrInt("start", 0);
    end = c.attrInt("end", rank);
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = std::clamp<int64_t>(start, 0, rank);
    end = std::clamp<int64_t>(end, 0, rank);
  }
  std::vector<int64_t> dims;
  for (int64_t i = start; i < end; ++i) dims.push_back(s[size_t(i)]);
  c.setKnownOutput(0, fold::ints(dims));
}

void lowerSize(NodeContext& c) {
  Tensor t(DType::I64, {});
  t.data<int64_t>()[0] = numElements(c.shape(0));
  c.setKnownOutput(0, t);
}

void lowerConstantOfShape(NodeContext& c) {
  auto shape = c.constantInts(0, "the shape");
  Tensor value(DType::F32, {1});
  if (c.hasAttr("value")) value = c.attrTensor("value");
  if (value.numElements() != 1) c.invalid("value must hold one element");
  int64_t count = 1;
  for (int64_t d : shape) {
    // An empty result is fine as a value known at import (shape arithmetic concatenates it);
    // materialised for run time it is refused then.
    if (d < 0) c.invalid(fmt::format("a negative extent {} in the shape", d));
    if (d > 0 && count > 0 && d > kMaxFoldedElements / count)
      c.unsupported(fmt::format("a constant of shape {} (too large to fold)", shapeString(shape)));
    count *= d;
  }
  Tensor out(value.dtype(), shape);
  double v = value.at(0);
  for (int64_t i = 0; i < out.numElements(); ++i) out.set(i, v);
  c.setKnownOutput(0, out);
}

void lowerRange(NodeContext& c) {
  const Tensor& start = c.constant(0, "start");
  const Tensor& limit = c.constant(1, "limit");
  const Tensor& delta = c.constant(2, "delta");
  double s = start.at(0), l = limit.at(0), d = delta.at(0);
  if (d == 0) c.invalid("delta is 0");
  double steps = std::ceil((l - s) / d);
  if (!(steps <= double(kMaxFoldedElements))) c.unsupported("a range too long to fold");
  int64_t n = std::max<int64_t>(0, int64_t(steps));
  if (n == 0) c.unsupported("an empty range");
  Tensor out(start.dtype(), {n});
  for (int64_t i = 0; i < n; ++i) out.set(i, s + double(i) * d);
  c.setKnownOutput(0, out);
}

// EyeLike depends only on its input's (static) shape: ones on the k-th diagonal.
void lowerEyeLike(NodeContext& c) {
  const Shape& s = c.shape(0);
  if (s.size() != 2) c.invalid(fmt::format("input must be 2-D, got {}", c.type(0).str()));
  DType dt = c.dtype(0);
  if (c.hasAttr("dtype")) {
    auto d = dtypeFromOnnx(int32_t(c.attrInt("dtype")));
    if (!d) c.unsupported(fmt::format("dtype {}", onnxTypeName(int32_t(c.attrInt("dtype")))));
    dt = *d;
  }
  int64_t k = c.attrInt("k", 0);
  Tensor out(dt, s);
  for (int64_t i = 0; i < s[0]; ++i)
    if (i + k >= 0 && i + k < s[1]) out.set(i * s[1] + i + k, 1.0);
  c.setKnownOutput(0, out);
}

// Cast's `to`: an ONNX data type (a name before opset 6).
DType castTarget(NodeContext& c) {
  if (c.opset() < 6) {
    std::string to = c.attrString("to");
    static const std::map<std::string, DType> names = {{"FLOAT", DType::F32},
                                                       {"DOUBLE", DType::F64},
                                                       {"INT32", DType::I32},
                                                       {"INT64", DType::I64},
                                                       {"UINT8", DType::U8}};
    auto it = names.find(to);
    if (it == names.end()) c.unsupported(fmt::format("cast to {}", to));
    return it->second;
  }
  int64_t to = c.attrInt("to");
  auto dt = dtypeFromOnnx(int32_t(to));
  if (!dt) c.unsupported(fmt::format("cast to {}", onnxTypeName(int32_t(to))));
  return *dt;
}

void lowerCast(NodeContext& c) {
  DType to = castTarget(c);
  if (c.opset() >= 19) c.attrInt("saturate", 1);
  if (to == c.dtype(0)) return lowerIdentity(c);
  Attrs a;
  a.set("dtype", dtypeAttr(to));
  c.setOutput(0, c.emit(OpKind::Cast, {c.value(0)}, a));
}

bool foldCast(NodeContext& c) {
  DType to = castTarget(c);
  c.setKnownOutput(0, c.known(0)->cast(to));
  return true;
}

// ---- data movement on known tensors (shape arithmetic) -----------------------------------------------

bool foldConcat(NodeContext& c) {
  int64_t rank = c.rank(0);
  int64_t axis = c.axis(c.attrInt("axis", c.opset() < 4 ? 1 : 0), rank);
  Shape out = c.shape(0);
  out[size_t(axis)] = 0;
  std::vector<const Tensor*> parts;
  for (size_t i = 0; i < c.numInputs(); ++i) {
    if (!c.has(i)) continue;
    const Tensor* t = c.known(i);
    Shape other = t->shape(), first = c.shape(0);
    if (other.size() != size_t(rank) || t->dtype() != c.dtype(0)) c.invalid("operands differ in rank or type");
    other[size_t(axis)] = first[size_t(axis)] = 0;
    if (other != first) c.invalid("operands differ in an extent other than the axis");
    out[size_t(axis)] += t->shape()[size_t(axis)];
    parts.push_back(t);
  }
  // Copy the parts into place, outer block by outer block.
  Tensor result(c.dtype(0), out);
  int64_t outer = product(out, 0, size_t(axis)), inner = product(out, size_t(axis) + 1, out.size());
  size_t es = dtypeSize(c.dtype(0));
  char* dst = static_cast<char*>(result.raw());
  for (int64_t o = 0; o < outer; ++o)
    for (const Tensor* t : parts) {
      size_t bytes = size_t(t->shape()[size_t(axis)] * inner) * es;
      std::memcpy(dst, static_cast<const char*>(t->raw()) + size_t(o) * bytes, bytes);
      dst += bytes;
    }
  c.setKnownOutput(0, result);
  return true;
}

bool foldGather(NodeContext& c) {
  const Tensor& data = *c.known(0);
  const Tensor& idx = *c.known(1);
  const Shape& ds = data.shape();
  int64_t axis = c.axis(c.attrInt("axis", 0), int64_t(ds.size()));
  Shape out(ds.begin(), ds.begin() + axis);
  out.insert(out.end(), idx.shape().begin(), idx.shape().end());
  out.insert(out.end(), ds.begin() + axis + 1, ds.end());
  int64_t n = ds[size_t(axis)], inner = product(ds, size_t(axis) + 1, ds.size()), count = idx.numElements();
  std::vector<int64_t> index(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    int64_t k = fold::intAt(idx, i);
    if (k < 0) k += n;
    if (k < 0 || k >= n) c.invalid(fmt::format("index {} is out of range for extent {}", fold::intAt(idx, i), n));
    index[size_t(i)] = k;
  }
  c.setKnownOutput(0, fold::gatherElements(data, out, [&](int64_t i) {
                     int64_t in = i % inner, rest = i / inner;
                     int64_t j = rest % count, o = rest / count;
                     return (o * n + index[size_t(j)]) * inner + in;
                   }));
  return true;
}

// Slice (attributes before opset 10, inputs after): per axis, start/end clamped, any step.
bool foldSlice(NodeContext& c) {
  const Tensor& data = *c.known(0);
  const Shape& ds = data.shape();
  int64_t rank = int64_t(ds.size());
  auto [starts, ends, axes, steps] = sliceArgs(c);
  std::vector<int64_t> begin(size_t(rank), 0), step(size_t(rank), 1);
  Shape out = ds;
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t a = c.axis(axes[i], rank), n = ds[size_t(a)], s = steps[i];
    if (s == 0) c.invalid("a step is 0");
    int64_t b = starts[i], e = ends[i];
    if (b < 0) b += n;
    if (e < 0) e += n;
    if (s > 0) {
      b = std::clamp<int64_t>(b, 0, n);
      e = std::clamp<int64_t>(e, 0, n);
      out[size_t(a)] = e > b ? (e - b + s - 1) / s : 0;
    } else {
      b = std::clamp<int64_t>(b, 0, n - 1);
      e = std::clamp<int64_t>(e, -1, n - 1);
      out[size_t(a)] = b > e ? (b - e - s - 1) / (-s) : 0;
    }
    begin[size_t(a)] = b;
    step[size_t(a)] = s;
  }
  // An empty slice is fine at import (shape arithmetic: x.shape[:0]); only a run-time value
  // must be non-empty (Importer::materialize refuses it).
  auto inStrides = fold::strides(ds), outStrides = fold::strides(out);
  c.setKnownOutput(0, fold::gatherElements(data, out, [&](int64_t i) {
                     int64_t src = 0;
                     for (size_t d = 0; d < out.size(); ++d) {
                       int64_t k = (i / outStrides[d]) % out[d];
                       src += (begin[d] + k * step[d]) * inStrides[d];
                     }
                     return src;
                   }));
  return true;
}

bool foldTranspose(NodeContext& c) {
  const Tensor& data = *c.known(0);
  const Shape& ds = data.shape();
  std::vector<int64_t> perm = c.attrInts("perm", std::vector<int64_t>{});
  if (perm.empty())
    for (int64_t d = int64_t(ds.size()) - 1; d >= 0; --d) perm.push_back(d);
  if (perm.size() != ds.size()) c.invalid("perm has the wrong length");
  std::vector<bool> seen(ds.size(), false);
  for (int64_t& p : perm) {
    p = c.axis(p, int64_t(ds.size()));
    if (seen[size_t(p)]) c.invalid("perm is not a permutation");
    seen[size_t(p)] = true;
  }
  Shape out;
  for (int64_t p : perm) out.push_back(ds[size_t(p)]);
  auto inStrides = fold::strides(ds), outStrides = fold::strides(out);
  c.setKnownOutput(0, fold::gatherElements(data, out, [&](int64_t i) {
                     int64_t src = 0;
                     for (size_t d = 0; d < out.size(); ++d)
                       src += ((i / outStrides[d]) % out[d]) * inStrides[size_t(perm[d])];
                     return src;
                   }));
  return true;
}

// Expand folded at import: expandShape's result, if it is small enough to fold.
bool foldExpand(NodeContext& c) {
  Shape out = expandShape(c);
  int64_t count = 1;
  for (int64_t d : out) {
    if (d > kMaxFoldedElements / count) c.unsupported(fmt::format("expanding to the huge shape {}", shapeString(out)));
    count *= d;
  }
  Tensor zeros(c.dtype(0), out);
  c.setKnownOutput(0, *fold::binary(*c.known(0), zeros, c.dtype(0), [](double x, double) { return x; }));
  return true;
}

// Elementwise arithmetic on known tensors only (shape arithmetic on scalars).
template <int kOp>
bool foldUnaryMath(NodeContext& c) {
  const Tensor& x = *c.known(0);
  if (kOp >= 5 && !isFloat(x.dtype())) return false;  // Log, Reciprocal, Round: the lowering refuses integers
  std::function<double(double)> f;
  switch (kOp) {
    case 0:
      f = [](double v) { return std::floor(v); };
      break;
    case 1:
      f = [](double v) { return std::ceil(v); };
      break;
    case 2:
      f = [](double v) { return std::sqrt(v); };
      break;
    case 3:
      f = [](double v) { return std::fabs(v); };
      break;
    case 5:
      f = [](double v) { return std::log(v); };
      break;
    case 6:
      f = [](double v) { return 1.0 / v; };
      break;
    case 7:
      f = [](double v) { return std::nearbyint(v); };  // halves to even (the default rounding mode)
      break;
    default:
      f = [](double v) { return std::exp(v); };
      break;
  }
  c.setKnownOutput(0, fold::unary(x, x.dtype(), f));
  return true;
}

template <int kOp>
bool foldMinMax(NodeContext& c) {
  Tensor acc = *c.known(0);
  for (size_t i = 1; i < c.numInputs(); ++i) {
    auto r = fold::binary(acc, *c.known(i), acc.dtype(),
                          [](double a, double b) { return kOp == 0 ? std::min(a, b) : std::max(a, b); });
    if (!r) c.invalid("operand shapes do not broadcast");
    acc = *r;
  }
  c.setKnownOutput(0, acc);
  return true;
}

const std::vector<OpMapping>& table() {
  static const std::vector<OpMapping> kOps = {
      // aliases, constants and shape queries
      {"Identity", lowerIdentity, nullptr, false, StorageUse::Passes},
      {"Constant", lowerConstant},
      {"Dropout", lowerDropout},
      {"Shape", lowerShape},
      {"Size", lowerSize},
      {"ConstantOfShape", lowerConstantOfShape},
      {"Range", lowerRange, nullptr, /*foldOnly=*/true},  // its bounds must be known at import
      {"EyeLike", lowerEyeLike},
      {"Cast", lowerCast, foldCast, false, StorageUse::Converts},
      // elementwise
      {"Relu", lowerFloatUnary<OpKind::Relu>},
      {"Sigmoid", lowerFloatUnary<OpKind::Sigmoid>},
      {"Gelu", lowerGelu},
      {"Tanh", lowerFloatUnary<OpKind::Tanh>},
      {"Softplus", lowerFloatUnary<OpKind::Softplus>},
      {"Neg", lowerNeg, foldNeg},
      {"Add", lowerBinary<OpKind::Add>, foldBinary<OpKind::Add>},
      {"Sub", lowerBinary<OpKind::Sub>, foldBinary<OpKind::Sub>},
      {"Mul", lowerBinary<OpKind::Mul>, foldBinary<OpKind::Mul>},
      {"Div", lowerBinary<OpKind::Div>, foldBinary<OpKind::Div>},
      {"Sum", lowerVariadicSum<false>},
      {"Mean", lowerVariadicSum<true>},
      {"PRelu", lowerPRelu},
      {"LeakyRelu", lowerLeakyReluOp},
      {"Log", lowerUnaryMath, foldUnaryMath<5>},
      {"Reciprocal", lowerUnaryMath, foldUnaryMath<6>},
      {"Erf", lowerUnaryMath},
      {"Sin", lowerUnaryMath},
      {"Cos", lowerUnaryMath},
      {"Tan", lowerUnaryMath},
      {"Asin", lowerUnaryMath},
      {"Acos", lowerUnaryMath},
      {"Atan", lowerUnaryMath},
      {"Sinh", lowerUnaryMath},
      {"Cosh", lowerUnaryMath},
      {"Asinh", lowerUnaryMath},
      {"Acosh", lowerUnaryMath},
      {"Atanh", lowerUnaryMath},
      {"Softsign", lowerSoftsign},
      {"Elu", lowerElu},
      {"Selu", lowerElu},
      {"ThresholdedRelu", lowerThresholdedRelu},
      {"HardSigmoid", lowerHardSigmoid},
      {"HardSwish", lowerHardSwish},
      {"Clip", lowerClip, nullptr, false, StorageUse::Preserves},
      {"Sign", lowerSign},
      {"Pow", lowerPow, foldPow, false, StorageUse::Exponent},
      {"Equal", lowerCompare, foldCompare},
      {"Less", lowerCompare, foldCompare},
      {"Greater", lowerCompare, foldCompare},
      {"LessOrEqual", lowerCompare, foldCompare},
      {"GreaterOrEqual", lowerCompare, foldCompare},
      {"And", lowerLogic, foldLogic},
      {"Or", lowerLogic, foldLogic},
      {"Xor", lowerLogic, foldLogic},
      {"Not", lowerLogic, foldLogic},
      {"Where", lowerWhere, foldWhere},
      // The result stays within the unsigned type (the lowering reduces it), so a uint16/uint32
      // input keeps its storage type through it.
      {"BitShift", lowerBitShift, nullptr, false, StorageUse::Preserves},
      {"IsNaN", lowerIsNaN},
      {"IsInf", lowerIsInf},
      // reductions
      {"ReduceSum", lowerReduce, foldReduce},
      {"ReduceMean", lowerReduce, foldReduce},
      {"ReduceMax", lowerReduce, foldReduce},
      {"ReduceMin", lowerReduce, foldReduce},
      {"ReduceProd", lowerReduce, foldReduce},
      {"ReduceSumSquare", lowerReduce},
      {"ReduceL1", lowerReduce},
      {"ReduceL2", lowerReduce},
      {"ReduceLogSum", lowerReduce},
      {"ReduceLogSumExp", lowerReduce},
      {"CumSum", lowerCumSum},
      {"Floor", lowerFloorCeil, foldUnaryMath<0>},
      {"Ceil", lowerFloorCeil, foldUnaryMath<1>},
      {"Round", lowerRound, foldUnaryMath<7>},
      {"Shrink", lowerShrink},
      {"LRN", lowerLRN},
      {"QuantizeLinear", lowerQuantizeLinear, nullptr, false, StorageUse::Converts},
      {"DequantizeLinear", lowerDequantizeLinear, nullptr, false, StorageUse::Converts},
      {"MatMulInteger", lowerMatMulInteger, nullptr, false, StorageUse::Converts},
      {"ConvInteger", lowerConvInteger, nullptr, false, StorageUse::Converts},
      {"QLinearMatMul", lowerQLinearMatMul, nullptr, false, StorageUse::Converts},
      {"QLinearConv", lowerQLinearConv, nullptr, false, StorageUse::Converts},
      {"TopK", lowerTopK},
      {"GatherND", lowerGatherND},
      {"MaxUnpool", lowerMaxUnpool},
      {"ReverseSequence", lowerReverseSequence},
      {"GridSample", lowerGridSample},
      {"Col2Im", lowerCol2Im},
      {"If", lowerIf},
      {"Loop", lowerLoop},
      {"Scan", lowerScan},
      {"DFT", lowerDFT},
      {"STFT", lowerSTFT},
      {"MelWeightMatrix", lowerMelWeightMatrix, nullptr, /*foldOnly=*/true},
      {"HannWindow", lowerWindow, nullptr, /*foldOnly=*/true},
      {"HammingWindow", lowerWindow, nullptr, /*foldOnly=*/true},
      {"BlackmanWindow", lowerWindow, nullptr, /*foldOnly=*/true},
      {"ScatterND", lowerScatterND, foldScatterND},
      {"ScatterElements", lowerScatterElements},
      {"Scatter", lowerScatterElements},
      {"RNN", lowerRecurrent},
      {"GRU", lowerRecurrent},
      {"LSTM", lowerRecurrent},
      {"Sqrt", lowerUnaryMath, foldUnaryMath<2>},
      {"Abs", lowerUnaryMath, foldUnaryMath<3>},
      {"Exp", lowerUnaryMath, foldUnaryMath<4>},
      {"Min", lowerMinMax, foldMinMax<0>, false, StorageUse::Preserves},
      {"Max", lowerMinMax, foldMinMax<1>, false, StorageUse::Preserves},
      {"Mod", lowerMod, foldMod, false, StorageUse::Preserves},
      // matrix products
      {"Gemm", lowerGemm},
      {"MatMul", lowerMatMul},
      {"Einsum", lowerEinsum},
      // convolution, pooling, normalisation
      {"Conv", lowerConv},
      {"ConvTranspose", lowerConvTranspose},
      {"MaxPool", lowerMaxPool, nullptr, false, StorageUse::Preserves},
      {"AveragePool", lowerAveragePool},
      {"GlobalAveragePool", lowerGlobalAveragePool},
      {"GlobalMaxPool", lowerGlobalMaxPool},
      {"BatchNormalization", lowerBatchNormalization},
      {"LayerNormalization", lowerLayerNormalization},
      {"InstanceNormalization", lowerInstanceNormalization},
      {"Softmax", lowerSoftmax},
      {"LogSoftmax", lowerLogSoftmax},
      {"ArgMax", lowerArgMinMax},
      {"ArgMin", lowerArgMinMax},
      {"Hardmax", lowerSoftmaxAnyAxis},
      // shapes and data movement
      {"Reshape", lowerReshapeLike, foldReshapeLike},
      {"Flatten", lowerReshapeLike, foldReshapeLike},
      {"Squeeze", lowerReshapeLike, foldReshapeLike},
      {"Unsqueeze", lowerReshapeLike, foldReshapeLike},
      {"Expand", lowerExpandOp, foldExpand},
      {"Concat", lowerConcat, foldConcat},
      {"Gather", lowerGather, foldGather},
      {"Slice", lowerSlice, foldSlice},
      {"Transpose", lowerTranspose, foldTranspose},
      {"GatherElements", lowerGatherElements},
      {"Pad", lowerPad},
      {"Split", lowerSplit},
      {"Tile", lowerTile},
      {"DepthToSpace", lowerDepthToSpace},
      {"SpaceToDepth", lowerDepthToSpace},
      {"Trilu", lowerTrilu},
      {"OneHot", lowerOneHot},
      {"Compress", lowerCompress},
      {"Resize", lowerResize},
      {"Upsample", lowerResize},
      // sequences, as lists of values known at import
      {"SequenceEmpty", lowerSequence},
      {"SequenceConstruct", lowerSequence},
      {"SequenceInsert", lowerSequence},
      {"SequenceAt", lowerSequence},
      {"SequenceErase", lowerSequence},
      {"SequenceLength", lowerSequence},
      {"SplitToSequence", lowerSequence},
      {"ConcatFromSequence", lowerSequence},
  };
  return kOps;
}

}  // namespace

const OpMapping* findOpMapping(std::string_view opType) {
  for (const OpMapping& m : table())
    if (m.opType == opType) return &m;
  return nullptr;
}

std::vector<std::string> mappedOpTypes() {
  std::vector<std::string> out;
  for (const OpMapping& m : table()) out.emplace_back(m.opType);
  return out;
}

}  // namespace shoal::onnx_import
