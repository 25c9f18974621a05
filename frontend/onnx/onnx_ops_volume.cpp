// ONNX convolutions and pools that shoal's 2-D ops compose: 3-D Conv as a sum over the kernel's
// depth taps of 2-D convolutions (the output depth folded into the batch), 3-D MaxPool and
// AveragePool as a max or mean over depth taps then a 2-D pool, and dilated MaxPool as the
// maximum of strided slices of the input padded with -inf.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "frontend/onnx/onnx_importer.h"
#include "frontend/onnx/onnx_ops_families.h"

namespace shoal::onnx_import {

namespace {

struct Geometry3 {
  std::vector<int64_t> kernel, stride, dilation, pads;  // pads: [d0, h0, w0, d1, h1, w1]
  std::vector<int64_t> out;
};

// Kernel, strides, dilations, pads (auto_pad resolved) and output extents over `spatial` axes.
Geometry3 readGeometry(NodeContext& c, const Shape& xs, std::vector<int64_t> kernel, bool dilations, bool ceilAllowed) {
  size_t sp = xs.size() - 2;
  Geometry3 g;
  if (c.hasAttr("kernel_shape") || kernel.empty()) {
    auto ks = c.attrInts("kernel_shape");
    if (!kernel.empty() && ks != kernel) c.invalid("kernel_shape differs from the weight's");
    kernel = ks;
  }
  if (kernel.size() != sp) c.invalid("kernel_shape has the wrong length");
  g.kernel = kernel;
  g.stride = c.attrInts("strides", std::vector<int64_t>(sp, 1));
  g.dilation = dilations ? c.attrInts("dilations", std::vector<int64_t>(sp, 1)) : std::vector<int64_t>(sp, 1);
  g.pads = c.attrInts("pads", std::vector<int64_t>(2 * sp, 0));
  std::string autoPad = c.attrString("auto_pad", "NOTSET");
  if (g.stride.size() != sp || g.dilation.size() != sp || g.pads.size() != 2 * sp)
    c.invalid("strides, dilations or pads have the wrong length");
  for (size_t i = 0; i < sp; ++i)
    if (g.stride[i] <= 0 || g.dilation[i] <= 0 || g.kernel[i] <= 0 || g.pads[i] < 0 || g.pads[i + sp] < 0)
      c.invalid("kernel, strides and dilations must be positive, pads not negative");
  if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
    for (size_t i = 0; i < sp; ++i) {
      int64_t in = xs[2 + i], out = (in + g.stride[i] - 1) / g.stride[i];
      int64_t total = std::max<int64_t>(0, (out - 1) * g.stride[i] + (g.kernel[i] - 1) * g.dilation[i] + 1 - in);
      int64_t small = total / 2, big = total - small;
      g.pads[i] = autoPad == "SAME_UPPER" ? small : big;
      g.pads[i + sp] = autoPad == "SAME_UPPER" ? big : small;
    }
  } else if (autoPad == "VALID") {
    std::fill(g.pads.begin(), g.pads.end(), 0);
  } else if (autoPad != "NOTSET") {
    c.invalid(fmt::format("unknown auto_pad '{}'", autoPad));
  }
  bool ceil = ceilAllowed && c.opset() >= 10 && c.attrInt("ceil_mode", 0) != 0;
  for (size_t i = 0; i < sp; ++i) {
    int64_t room = xs[2 + i] + g.pads[i] + g.pads[i + sp] - (g.kernel[i] - 1) * g.dilation[i] - 1;
    if (room < 0) c.invalid(fmt::format("the window is larger than the padded input on spatial axis {}", i));
    int64_t fl = room / g.stride[i] + 1, cl = (room + g.stride[i] - 1) / g.stride[i] + 1;
    if (ceil && cl != fl) c.unsupported("ceil_mode=1 where it adds a window (3-D or dilated pooling)");
    g.out.push_back(fl);
  }
  return g;
}

Value* padAxes(NodeContext& c, Value* x, const std::vector<std::pair<int64_t, std::pair<int64_t, int64_t>>>& axes,
               double value, const std::string& suffix) {
  int64_t rank = x->type().rank();
  std::vector<int64_t> pads(size_t(2 * rank), 0);
  bool any = false;
  for (const auto& [axis, p] : axes) {
    pads[size_t(axis)] = p.first, pads[size_t(axis + rank)] = p.second;
    any |= p.first || p.second;
  }
  if (!any) return x;
  Attrs a;
  a.set("pads", pads);
  a.set("value", value);
  return c.emit(OpKind::Pad, {x}, a, suffix);
}

// `count` elements from `start` every `step` along `axis`.
Value* strided(NodeContext& c, Value* x, int64_t axis, int64_t start, int64_t count, int64_t step,
               const std::string& suffix) {
  int64_t n = x->type().shape[size_t(axis)];
  if (start == 0 && count == n && step == 1) return x;
  Attrs a;
  a.set("starts", std::vector<int64_t>{start});
  a.set("ends", std::vector<int64_t>{start + (count - 1) * step + 1});
  a.set("axes", std::vector<int64_t>{axis});
  a.set("steps", std::vector<int64_t>{step});
  return c.emit(OpKind::Slice, {x}, a, suffix);
}

}  // namespace

void lowerConv3d(NodeContext& c) {
  const Shape& xs = c.shape(0);
  const Shape& ws = c.shape(1);
  Geometry3 g = readGeometry(c, xs, {ws[2], ws[3], ws[4]}, /*dilations=*/true, /*ceilAllowed=*/false);
  int64_t group = c.attrInt("group", 1);
  int64_t n = xs[0], ch = xs[1], od = g.out[0];
  Value* x = padAxes(c, c.value(0), {{2, {g.pads[0], g.pads[3]}}}, 0.0, "depth_padded");
  Value* w = c.value(1);
  Value* acc = nullptr;
  for (int64_t k = 0; k < g.kernel[0]; ++k) {
    std::string tap = fmt::format("tap{}", k);
    Value* xk = strided(c, x, 2, k * g.dilation[0], od, g.stride[0], tap + "_x");
    Attrs t;
    t.set("perm", std::vector<int64_t>{0, 2, 1, 3, 4});
    Value* planes = c.reshape(c.emit(OpKind::Transpose, {xk}, t, tap + "_depth_first"), {n * od, ch, xs[3], xs[4]},
                              tap + "_planes");
    Value* wk = c.reshape(strided(c, w, 2, k, 1, 1, tap + "_w"), {ws[0], ws[1], ws[3], ws[4]}, tap + "_w2d");
    std::vector<Value*> ins = {planes, wk};
    if (k == 0 && c.has(2)) ins.push_back(c.value(2));
    Attrs a;
    a.set("stride", std::vector<int64_t>{g.stride[1], g.stride[2]});
    a.set("padding", std::vector<int64_t>{g.pads[1], g.pads[2], g.pads[4], g.pads[5]});
    a.set("dilation", std::vector<int64_t>{g.dilation[1], g.dilation[2]});
    a.set("groups", group);
    Value* y = c.emit(OpKind::Conv2d, ins, a, tap + "_conv");
    acc = acc ? c.emit(OpKind::Add, {acc, y}, {}, tap + "_sum") : y;
  }
  const Shape& ys = acc->type().shape;
  Value* back = c.reshape(acc, {n, od, ys[1], ys[2], ys[3]}, "depth_major");
  Attrs t;
  t.set("perm", std::vector<int64_t>{0, 2, 1, 3, 4});
  c.setOutput(0, c.emit(OpKind::Transpose, {back}, t, "out"));
}

// 3-D pools: the depth window first (a max, or a mean when no depth padding is excluded from
// the divisor), then a 2-D pool of each output depth plane.
void lowerPool3d(NodeContext& c, bool isMax) {
  c.requireFloat(0);
  const Shape& xs = c.shape(0);
  Geometry3 g = readGeometry(c, xs, {}, /*dilations=*/isMax && c.opset() >= 10, /*ceilAllowed=*/true);
  for (int64_t d : g.dilation)
    if (d != 1) c.unsupported("3-D pooling with dilations");
  bool includePad = false;
  if (isMax) {
    if (c.opset() >= 8) c.attrInt("storage_order", 0);
    if (c.outputUsed(1)) c.setOutput(1, maxPoolIndices(c));
  } else {
    includePad = c.opset() >= 7 && c.attrInt("count_include_pad", 0) != 0;
    if (!includePad && (g.pads[0] || g.pads[3]))
      c.unsupported("3-D average pooling over depth padding excluded from the divisor");
  }
  int64_t n = xs[0], ch = xs[1], od = g.out[0];
  double fill = isMax ? -std::numeric_limits<double>::infinity() : 0.0;
  Value* x = padAxes(c, c.value(0), {{2, {g.pads[0], g.pads[3]}}}, fill, "depth_padded");
  Value* acc = nullptr;
  for (int64_t k = 0; k < g.kernel[0]; ++k) {
    Value* xk = strided(c, x, 2, k, od, g.stride[0], fmt::format("tap{}", k));
    acc = !acc ? xk : c.emit(isMax ? OpKind::Maximum : OpKind::Add, {acc, xk}, {}, fmt::format("tap{}_acc", k));
  }
  if (!isMax && g.kernel[0] > 1) {
    Attrs s;
    s.set("scale", 1.0 / double(g.kernel[0]));
    acc = c.emit(OpKind::Scale, {acc}, s, "depth_mean");
  }
  Value* planes = c.reshape(acc, {n, ch * od, xs[3], xs[4]}, "planes");
  Attrs a;
  a.set("kernel", std::vector<int64_t>{g.kernel[1], g.kernel[2]});
  a.set("stride", std::vector<int64_t>{g.stride[1], g.stride[2]});
  a.set("padding", std::vector<int64_t>{g.pads[1], g.pads[2], g.pads[4], g.pads[5]});
  a.set("ceil_mode", int64_t(0));
  if (!isMax) a.set("count_include_pad", int64_t(includePad));
  Value* y = c.emit(isMax ? OpKind::MaxPool2d : OpKind::AvgPool2d, {planes}, a, "pool");
  c.setOutput(0, c.reshape(y, {n, ch, od, g.out[1], g.out[2]}, "out"));
}

// MaxPool with dilations (1-D or 2-D): the maximum over the window's taps of strided slices of
// the input padded with -inf. Max pooling is separable (a window's maximum is the maximum over
// its rows of each row's maximum), so the taps go one axis at a time, last axis first: K_h +
// K_w strided slices and maxima instead of K_h * K_w (PyTorch's MaxPool2d test with a 60 x 80
// dilated window is 280 nodes, not 14,400).
// MaxPool's Indices output: for each window, the flat index over the input [N, C, spatial...]
// (padding not counted; spatial positions row-major, or column-major with storage_order 1) of
// its first maximum in window order, as ONNX's reference and PyTorch's return_indices. Each tap is a strided slice of the input padded
// with -inf; the taps side by side as rows, argmax over them, then the tap's offset plus the
// window's origin along each axis. (A window whose maximum is -inf can name a padding tap.)
Value* maxPoolIndices(NodeContext& c) {
  const Shape& xs = c.shape(0);
  size_t sp = xs.size() - 2;
  Geometry3 g = readGeometry(c, xs, {}, /*dilations=*/c.opset() >= 10, /*ceilAllowed=*/true);
  const bool columnMajor = c.opset() >= 8 && c.attrInt("storage_order", 0) != 0;
  Value* x = c.value(0);
  if (!isFloat(x->type().dtype)) {
    Attrs f;
    f.set("dtype", std::string("f32"));
    x = c.emit(OpKind::Cast, {x}, f, "indices_f32");
  }
  std::vector<std::pair<int64_t, std::pair<int64_t, int64_t>>> padSpec;
  for (size_t i = 0; i < sp; ++i) {
    // Enough at the end for the last window (ceil_mode may reach past the given pads).
    int64_t need = (g.out[i] - 1) * g.stride[i] + (g.kernel[i] - 1) * g.dilation[i] + 1 - xs[2 + i] - g.pads[i];
    padSpec.push_back({int64_t(2 + i), {g.pads[i], std::max<int64_t>(need, 0)}});
  }
  Value* v = padAxes(c, x, padSpec, -std::numeric_limits<double>::infinity(), "indices_padded");
  int64_t taps = 1;
  for (int64_t k : g.kernel) taps *= k;
  if (taps > 4096) c.unsupported(fmt::format("the indices output of a {}-tap window", taps));
  Shape outShape = {xs[0], xs[1]};
  outShape.insert(outShape.end(), g.out.begin(), g.out.end());
  int64_t rows = numElements(outShape);
  std::vector<Tensor> offsets;  // one table per axis (Tensor copies would share one buffer)
  for (size_t i = 0; i < sp; ++i) offsets.emplace_back(DType::I64, Shape{taps});
  std::vector<Value*> columns;
  for (int64_t t = 0; t < taps; ++t) {
    Value* tap = v;
    for (int64_t rest = t, i = int64_t(sp) - 1; i >= 0; --i) {
      int64_t k = rest % g.kernel[size_t(i)];
      rest /= g.kernel[size_t(i)];
      offsets[size_t(i)].data<int64_t>()[t] = k * g.dilation[size_t(i)];
      tap = strided(c, tap, 2 + i, k * g.dilation[size_t(i)], g.out[size_t(i)], g.stride[size_t(i)],
                    fmt::format("indices_tap{}_axis{}", t, i));
    }
    columns.push_back(c.reshape(tap, {rows, 1}, fmt::format("indices_tap{}", t)));
  }
  Value* tapValues = concatMany(c, columns, 1, "indices_taps_");
  Value* best = c.reshape(c.emit(OpKind::ArgMax, {tapValues}, {}, "indices_best_tap"), outShape, "indices_best_nd");
  // A window whose maximum is -inf ties its padding taps (padded with -inf) with its in-image
  // ones, and the first tap may be padding; ONNX takes the first in-image tap then (its
  // reference walks the in-image taps only). Each output position's first in-image tap is
  // known at import: taken where the maximum is -inf. (A window with no tap in the image keeps
  // the argmax's.)
  std::vector<int64_t> outSpatial(g.out.begin(), g.out.end());
  int64_t positions = numElements(Shape(outSpatial.begin(), outSpatial.end()));
  Tensor firstIn(DType::I64, {positions});
  bool padded = false;
  for (int64_t p = 0; p < positions; ++p) {
    std::vector<int64_t> at(sp);  // the position's index along each spatial axis
    for (int64_t rest = p, i = int64_t(sp) - 1; i >= 0; --i) {
      at[size_t(i)] = rest % g.out[size_t(i)];
      rest /= g.out[size_t(i)];
    }
    int64_t first = 0;
    for (int64_t t = 0; t < taps; ++t) {
      bool inside = true;
      for (size_t i = 0; i < sp; ++i) {
        int64_t pos = at[i] * g.stride[i] - g.pads[i] + offsets[i].data<int64_t>()[t];
        inside &= pos >= 0 && pos < xs[2 + i];
      }
      if (inside) {
        first = t;
        break;
      }
    }
    padded |= first != 0;
    firstIn.data<int64_t>()[p] = first;
  }
  if (padded) {
    Attrs r;
    r.set("axes", std::vector<int64_t>{1});
    r.set("keepdim", int64_t(0));
    Value* top = c.reshape(c.emit(OpKind::ReduceMax, {tapValues}, r, "indices_max"), outShape, "indices_max_nd");
    Value* allNegInf = c.emit(OpKind::Equal, {top, c.scalar(-std::numeric_limits<double>::infinity(),
                                                            top->type().dtype, "indices_neg_inf")},
                              {}, "indices_all_neg_inf");
    Shape posShape(outShape.size(), 1);
    std::copy(outSpatial.begin(), outSpatial.end(), posShape.begin() + 2);
    Value* firstTap = c.reshape(c.constantValue(firstIn, "indices_first_in_image"), posShape, "indices_first_nd");
    best = c.emit(OpKind::Where, {allNegInf, firstTap, best}, {}, "indices_best_in_image");
  }
  // Strides of the input's spatial axes (row-major, or column-major for storage_order 1), and
  // each sample-channel plane's start.
  std::vector<int64_t> st(sp, 1);
  if (columnMajor)
    for (size_t i = 1; i < sp; ++i) st[i] = st[i - 1] * xs[i + 1];
  else
    for (int64_t i = int64_t(sp) - 2; i >= 0; --i) st[size_t(i)] = st[size_t(i) + 1] * xs[size_t(i) + 3];
  int64_t plane = numElements(Shape(xs.begin() + 2, xs.end()));
  Tensor base(DType::I64, {xs[0], xs[1]});
  for (int64_t nc = 0; nc < xs[0] * xs[1]; ++nc) base.data<int64_t>()[nc] = nc * plane;
  Shape baseShape(outShape.size(), 1);
  baseShape[0] = xs[0], baseShape[1] = xs[1];
  Value* idx = c.reshape(c.constantValue(base, "indices_plane"), baseShape, "indices_plane4d");
  Attrs g0;
  g0.set("axis", int64_t(0));
  for (size_t i = 0; i < sp; ++i) {
    Value* off = c.emit(OpKind::Gather, {c.constantValue(offsets[i], fmt::format("indices_offsets{}", i)), best}, g0,
                        fmt::format("indices_offset{}", i));
    off = c.reshape(off, outShape, fmt::format("indices_offset{}_nd", i));
    Tensor origin(DType::I64, {g.out[i]});
    for (int64_t o = 0; o < g.out[i]; ++o) origin.data<int64_t>()[o] = o * g.stride[i] - g.pads[i];
    Shape along(outShape.size(), 1);
    along[2 + i] = g.out[i];
    Value* pos = c.emit(OpKind::Add, {off, c.reshape(c.constantValue(origin, fmt::format("indices_origin{}", i)), along,
                                                     fmt::format("indices_origin{}_nd", i))},
                        {}, fmt::format("indices_pos{}", i));
    Value* term = st[i] == 1 ? pos
                             : c.emit(OpKind::Mul, {pos, c.scalar(double(st[i]), DType::I64, fmt::format("indices_stride{}", i))},
                                      {}, fmt::format("indices_term{}", i));
    idx = c.emit(OpKind::Add, {idx, term}, {}, fmt::format("indices_sum{}", i));
  }
  return idx;
}

void lowerDilatedMaxPool(NodeContext& c) {
  c.requireFloat(0);
  const Shape& xs = c.shape(0);
  size_t sp = xs.size() - 2;
  Geometry3 g = readGeometry(c, xs, {}, /*dilations=*/true, /*ceilAllowed=*/true);
  if (c.outputUsed(1)) c.setOutput(1, maxPoolIndices(c));
  std::vector<std::pair<int64_t, std::pair<int64_t, int64_t>>> padSpec;
  for (size_t i = 0; i < sp; ++i) padSpec.push_back({int64_t(2 + i), {g.pads[i], g.pads[i + sp]}});
  Value* v = padAxes(c, c.value(0), padSpec, -std::numeric_limits<double>::infinity(), "padded");
  for (size_t i = sp; i-- > 0;) {
    Value* acc = nullptr;
    for (int64_t k = 0; k < g.kernel[i]; ++k) {
      Value* tap = strided(c, v, int64_t(2 + i), k * g.dilation[i], g.out[i], g.stride[i], fmt::format("axis{}_tap{}", i, k));
      acc = acc ? c.emit(OpKind::Maximum, {acc, tap}, {}, fmt::format("axis{}_tap{}_max", i, k)) : tap;
    }
    v = acc;
  }
  c.setOutput(0, v);
}

}  // namespace shoal::onnx_import
