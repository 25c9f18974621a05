// ONNX's quantized ops: QuantizeLinear and DequantizeLinear, and the integer products of
// quantized models — MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv. The integer
// products run as float64 products of the zero-point-centred operands: every partial sum of
// 8-bit products is an integer far below 2^53, so they are exact, and the dense, matmul and
// conv kernels (CPU and GPU) compute them as they compute anything else. The QLinear ops then
// requantize as the ONNX reference does: a float32 multiplier (x_scale · w_scale / y_scale),
// the product in float64, rounded half to even.
#include <fmt/format.h>

#include "frontend/onnx/onnx_importer.h"
#include "frontend/onnx/onnx_ops_families.h"

namespace shoal::onnx_import {

namespace {

// Input i (a quantization scale or zero point: a scalar, or one value per slice of `axis`),
// shaped to broadcast against input 0.
Value* perAxis(NodeContext& c, size_t i, const std::string& what) {
  if (c.rank(i) == 0 || (c.rank(i) == 1 && c.shape(i)[0] == 1)) return c.reshape(c.value(i), {}, what + "_scalar");
  int64_t rank = c.rank(0);
  int64_t axis = c.axis(c.attrInt("axis", 1), rank);
  if (c.rank(i) != 1 || c.shape(i)[0] != c.shape(0)[size_t(axis)])
    c.invalid(fmt::format("{} is {}; expected a scalar or [{}] (one per slice of axis {} of {})", what, c.type(i).str(),
                          c.shape(0)[size_t(axis)], axis, c.type(0).str()));
  Shape s(size_t(rank), 1);
  s[size_t(axis)] = c.shape(0)[size_t(axis)];
  return c.reshape(c.value(i), s, what + "_per_axis");
}

// The range of a quantized type, for saturation.
std::pair<double, double> quantizedRange(NodeContext& c, DType t) {
  switch (t) {
    case DType::U8:
      return {0, 255};
    case DType::I8:
      return {-128, 127};
    case DType::U16:
      return {0, 65535};
    case DType::I16:
      return {-32768, 32767};
    default:
      c.unsupported(fmt::format("quantizing to {} (shoal quantizes to uint8, int8, uint16 and int16)",
                                onnxTypeName(onnxFromDtype(t))));
  }
}


Value* castTo(NodeContext& c, Value* v, DType t, const std::string& suffix) {
  if (v->type().dtype == t) return v;
  Attrs a;
  a.set("dtype", std::string(dtypeName(t)));
  return c.emit(OpKind::Cast, {v}, a, suffix);
}

// A scale or zero point of an integer product: a scalar, or one value per entry of an axis of
// the operand (`extent` entries), viewed as `perShape` to broadcast; anything else is named.
Value* perEntry(NodeContext& c, size_t i, int64_t extent, const Shape& perShape, const std::string& what,
                const std::string& per) {
  if (c.rank(i) == 0 || (c.rank(i) == 1 && c.shape(i)[0] == 1)) return c.reshape(c.value(i), {}, what + "_scalar");
  if (c.rank(i) != 1 || c.shape(i)[0] != extent)
    c.invalid(fmt::format("{} is {}; expected a scalar or [{}] (one per {})", what, c.type(i).str(), extent, per));
  return c.reshape(c.value(i), perShape, what + "_per_entry");
}

// Input x minus its zero point (input zp when given; shaped by perEntry), in float64.
Value* centred(NodeContext& c, size_t x, size_t zp, int64_t extent, const Shape& perShape, const std::string& what,
               const std::string& per) {
  Value* v = castTo(c, c.value(x), DType::F64, what + "_f64");
  if (!c.has(zp)) return v;
  if (c.slot(zp).onnxDType() != c.slot(x).onnxDType())
    c.invalid(fmt::format("{}'s zero point is {}, {} is {}", what, onnxTypeName(onnxFromDtype(c.slot(zp).onnxDType())),
                          what, onnxTypeName(onnxFromDtype(c.slot(x).onnxDType()))));
  Value* z = castTo(c, perEntry(c, zp, extent, perShape, what + "_zero_point", per), DType::F64, what + "_zero_f64");
  return c.emit(OpKind::Sub, {v, z}, {}, what + "_centred");
}

void requireQuantized(NodeContext& c, size_t i, const std::string& what) {
  DType t = c.slot(i).onnxDType();
  if (t != DType::U8 && t != DType::I8)
    c.invalid(fmt::format("{} is {}; expected uint8 or int8", what, onnxTypeName(onnxFromDtype(t))));
}

// a [..., M, K] x b [K, N] or [..., K, N] (batched, broadcasting), both float64.
Value* product(NodeContext& c, Value* a, Value* b) {
  const Shape& as = a->type().shape;
  const Shape& bs = b->type().shape;
  if (as.size() < 2 || bs.size() < 2)
    c.unsupported(fmt::format("operands of rank {} and {} (shoal's integer products take matrices or batches of them)",
                              as.size(), bs.size()));
  if (bs.size() > 2) return c.emit(OpKind::BatchMatMul, {a, b}, {}, "product");
  Shape out(as.begin(), as.end() - 1);
  out.push_back(bs[1]);
  Value* y = c.emit(OpKind::MatMul, {c.reshape(a, {numElements(as) / as.back(), as.back()}, "a_rows"), b}, {}, "product");
  return c.reshape(y, out, "product_out");
}

// The requantized result: saturate(round_half_even(acc · multiplier) + y_zero_point), the
// multiplier a float32 value (or per-entry vector) as the ONNX reference computes it.
void requantize(NodeContext& c, Value* acc, Value* multiplier32, size_t yZeroPoint) {
  DType target = c.slot(yZeroPoint).onnxDType();
  auto [lo, hi] = quantizedRange(c, target);
  Value* scaled = c.emit(OpKind::Mul, {acc, castTo(c, multiplier32, DType::F64, "multiplier_f64")}, {}, "rescaled");
  Value* q = roundHalfEven(c, scaled, "");
  q = c.emit(OpKind::Add, {q, castTo(c, c.reshape(c.value(yZeroPoint), {}, "y_zero_point_scalar"), DType::F64,
                                     "y_zero_point")},
             {}, "shifted");
  Attrs range;
  range.set("min", lo);
  range.set("max", hi);
  c.setOutput(0, castTo(c, c.emit(OpKind::Clip, {q}, range, "saturated"), target, ""));
}

Value* scalarInput(NodeContext& c, size_t i, const std::string& what) {
  if (numElements(c.shape(i)) != 1) c.invalid(fmt::format("{} is {}; expected a scalar", what, c.type(i).str()));
  return c.reshape(c.value(i), {}, what + "_scalar");
}

// The float32 multiplier a_scale · b_scale / y_scale, shaped `perShape` where a scale is per entry.
Value* multiplier(NodeContext& c, Value* aScale, Value* bScale, Value* yScale) {
  for (Value* v : {aScale, bScale, yScale})
    if (v->type().dtype != DType::F32) c.invalid(fmt::format("scales must be float32, got {}", v->type().str()));
  return c.emit(OpKind::Div, {c.emit(OpKind::Mul, {aScale, bScale}, {}, "scale_product"), yScale}, {}, "multiplier");
}

// The convolution of the centred operands (2-D, or 1-D as 2-D), float64.
Value* convolution(NodeContext& c, Value* x, Value* w, size_t xInput, size_t wInput) {
  const Shape& xs = c.shape(xInput);
  const Shape& ws = c.shape(wInput);
  if (xs.size() < 3 || ws.size() != xs.size())
    c.invalid(fmt::format("weight {} and input {} must be [N, C, spatial...] of one rank", c.type(wInput).str(),
                          c.type(xInput).str()));
  Window win = readWindow(c, xs, std::vector<int64_t>(ws.begin() + 2, ws.end()), /*hasDilations=*/true);
  if (win.spatial == 1) w = c.reshape(w, {ws[0], ws[1], 1, ws[2]}, "w4d");
  Attrs a;
  a.set("stride", win.stride);
  a.set("padding", win.pads);
  a.set("dilation", win.dilation);
  a.set("groups", c.attrInt("group", 1));
  return fromNd(c, c.emit(OpKind::Conv2d, {as4d(c, x, win, "x4d"), w}, a, "conv"), win);
}

}  // namespace

// QuantizeLinear: saturate(round_half_even(x / scale) + zero_point), in the zero point's type
// (uint8 without one). Computed in x's float type: every value of those types is exact there.
void lowerQuantizeLinear(NodeContext& c) {
  c.requireFloat(0);
  DType dt = c.dtype(0);
  DType target = c.has(2) ? c.slot(2).onnxDType() : DType::U8;
  auto [lo, hi] = quantizedRange(c, target);
  bool perAxisInputs = c.rank(1) == 1 && c.shape(1)[0] != 1;
  if (!perAxisInputs && c.hasAttr("axis")) c.attrInt("axis");  // has no effect with a scalar scale
  if (c.dtype(1) != dt) c.invalid(fmt::format("y_scale is {}, x is {}", c.type(1).str(), c.type(0).str()));
  Value* q = roundHalfEven(c, c.emit(OpKind::Div, {c.value(0), perAxis(c, 1, "y_scale")}, {}, "scaled"), "");
  if (c.has(2)) {
    Attrs toFloat;
    toFloat.set("dtype", std::string(dtypeName(dt)));
    q = c.emit(OpKind::Add, {q, c.emit(OpKind::Cast, {perAxis(c, 2, "y_zero_point")}, toFloat, "zero_point")}, {},
               "shifted");
  }
  Attrs range, to;
  range.set("min", lo);
  range.set("max", hi);
  to.set("dtype", std::string(dtypeName(target)));
  c.setOutput(0, c.emit(OpKind::Cast, {c.emit(OpKind::Clip, {q}, range, "saturated")}, to));
}

// DequantizeLinear: (x - zero_point) · scale, in the scale's type.
void lowerDequantizeLinear(NodeContext& c) {
  DType onnxScale = c.slot(1).onnxDType();
  DType dt = c.dtype(1);
  if (!isFloat(dt)) c.invalid(fmt::format("x_scale is {}; expected a float type", c.type(1).str()));
  bool perAxisInputs = c.rank(1) == 1 && c.shape(1)[0] != 1;
  if (!perAxisInputs && c.hasAttr("axis")) c.attrInt("axis");  // has no effect with a scalar scale
  Attrs toFloat;
  toFloat.set("dtype", std::string(dtypeName(dt)));
  Value* x = c.emit(OpKind::Cast, {c.value(0)}, toFloat, "x");
  if (c.has(2)) {
    if (c.slot(2).onnxDType() != c.slot(0).onnxDType())
      c.invalid(fmt::format("x_zero_point is {}, x is {}", onnxTypeName(onnxFromDtype(c.slot(2).onnxDType())),
                            onnxTypeName(onnxFromDtype(c.slot(0).onnxDType()))));
    x = c.emit(OpKind::Sub, {x, c.emit(OpKind::Cast, {perAxis(c, 2, "x_zero_point")}, toFloat, "zero_point")}, {},
               "centered");
  }
  Value* y = c.emit(OpKind::Mul, {x, perAxis(c, 1, "x_scale")}, {}, onnxScale == dt ? "" : "wide");
  if (onnxScale != dt) {
    Attrs narrow;
    narrow.set("dtype", std::string(dtypeName(onnxScale)));
    y = c.emit(OpKind::Cast, {y}, narrow);
  }
  c.setOutput(0, y);
}

namespace {

// (a - a_zero_point)(b - b_zero_point) of inputs a and b (zero points per tensor, per row of a,
// per column of b), float64; m and n receive a's rows and b's columns.
Value* centredProduct(NodeContext& c, size_t aIn, size_t aZp, size_t bIn, size_t bZp, int64_t& m, int64_t& n) {
  requireQuantized(c, aIn, "a");
  requireQuantized(c, bIn, "b");
  const Shape& as = c.shape(aIn);
  const Shape& bs = c.shape(bIn);
  if (as.size() < 2 || bs.size() < 2) c.unsupported("vector operands (shoal's integer products take matrices)");
  m = as[as.size() - 2];
  n = bs.back();
  return product(c, centred(c, aIn, aZp, m, {m, 1}, "a", "row of a"), centred(c, bIn, bZp, n, {1, n}, "b", "column of b"));
}

}  // namespace

// MatMulInteger: (a - a_zero_point)(b - b_zero_point) in int32.
void lowerMatMulInteger(NodeContext& c) {
  int64_t m = 0, n = 0;
  c.setOutput(0, castTo(c, centredProduct(c, 0, 2, 1, 3, m, n), DType::I32, ""));
}

// ConvInteger: the convolution of (x - x_zero_point) and (w - w_zero_point) in int32; w's zero
// point per tensor or per output channel.
void lowerConvInteger(NodeContext& c) {
  requireQuantized(c, 0, "x");
  requireQuantized(c, 1, "w");
  if (c.rank(1) < 3) c.invalid(fmt::format("w is {}; expected [M, C, spatial...]", c.type(1).str()));
  int64_t m = c.shape(1)[0];
  Shape perChannel(c.shape(1).size(), 1);
  perChannel[0] = m;
  Value* x = centred(c, 0, 2, 1, {}, "x", "tensor");
  Value* w = centred(c, 1, 3, m, perChannel, "w", "output channel");
  c.setOutput(0, castTo(c, convolution(c, x, w, 0, 1), DType::I32, ""));
}

// QLinearMatMul: a (scale, zero point), b (scale, zero point) -> y (scale, zero point).
void lowerQLinearMatMul(NodeContext& c) {
  int64_t m = 0, n = 0;
  Value* acc = centredProduct(c, 0, 2, 3, 5, m, n);
  Value* mult = multiplier(c, perEntry(c, 1, m, {m, 1}, "a_scale", "row of a"),
                           perEntry(c, 4, n, {1, n}, "b_scale", "column of b"), scalarInput(c, 6, "y_scale"));
  requantize(c, acc, mult, 7);
}

// QLinearConv: x (scale, zero point), w (scale, zero point; per output channel or per tensor),
// y (scale, zero point), an int32 bias B added to the accumulator.
void lowerQLinearConv(NodeContext& c) {
  requireQuantized(c, 0, "x");
  requireQuantized(c, 3, "w");
  const Shape& ws = c.shape(3);
  if (ws.size() < 3 || c.rank(0) < 3)
    c.invalid(fmt::format("x is {} and w {}; expected [N, C, spatial...] and [M, C, spatial...]", c.type(0).str(),
                          c.type(3).str()));
  int64_t m = ws[0];
  Shape perWeight(ws.size(), 1), perOutput(c.shape(0).size(), 1);
  perWeight[0] = m;
  perOutput[1] = m;
  Value* x = centred(c, 0, 2, 1, {}, "x", "tensor");
  Value* w = centred(c, 3, 5, m, perWeight, "w", "output channel");
  Value* acc = convolution(c, x, w, 0, 3);
  if (c.has(8)) {
    if (c.dtype(8) != DType::I32 || c.shape(8) != Shape{m})
      c.invalid(fmt::format("B is {}; expected i32[{}]", c.type(8).str(), m));
    acc = c.emit(OpKind::Add, {acc, c.reshape(castTo(c, c.value(8), DType::F64, "bias_f64"), perOutput, "bias")}, {},
                 "biased");
  }
  Value* mult = multiplier(c, scalarInput(c, 1, "x_scale"), perEntry(c, 4, m, perOutput, "w_scale", "output channel"),
                           scalarInput(c, 6, "y_scale"));
  requantize(c, acc, mult, 7);
}

}  // namespace shoal::onnx_import
