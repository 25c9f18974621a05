// ONNX's index-addressed reads and writes beyond Gather: GatherND, ScatterND, ScatterElements
// (and its older name Scatter). Each computes, in int64, one flat row index per addressed
// element or slice of the data viewed as [rows, rest...]; GatherND gathers those rows, the
// scatters add the updates into zeros at them (shoal's gather_grad, a scatter-add in index
// order) and then replace or add. Every index is checked by a gather of the same rows, so an
// index outside the data is reported at run time, not dropped.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "frontend/onnx/onnx_fold.h"
#include "frontend/onnx/onnx_importer.h"
#include "frontend/onnx/onnx_ops_families.h"

namespace shoal::onnx_import {

namespace {

Value* toInt64(NodeContext& c, Value* idx, const std::string& suffix) {
  if (idx->type().dtype == DType::I64) return idx;
  DType it = idx->type().dtype;
  if (it != DType::I32) c.invalid(fmt::format("indices must be int32 or int64, got {}", idx->type().str()));
  Attrs a;
  a.set("dtype", std::string("i64"));
  return c.emit(OpKind::Cast, {idx}, a, suffix);
}

// idx counted from the back when negative (n + idx), and `invalid` (a row no gather accepts)
// where it lies outside [-n, n).
Value* wrapIndex(NodeContext& c, Value* idx, int64_t n, int64_t invalid, const std::string& p) {
  Value* zero = c.scalar(0, DType::I64, p + "zero");
  Value* wrapped = c.emit(OpKind::Where,
                          {c.emit(OpKind::Less, {idx, zero}, {}, p + "negative"),
                           c.emit(OpKind::Add, {idx, c.scalar(double(n), DType::I64, p + "n")}, {}, p + "from_back"), idx},
                          {}, p + "wrapped");
  Value* bad = c.emit(OpKind::Where,
                      {c.emit(OpKind::Less, {wrapped, zero}, {}, p + "too_small"), c.scalar(1, DType::Bool, p + "yes"),
                       c.emit(OpKind::GreaterEqual, {wrapped, c.scalar(double(n), DType::I64, p + "n2")}, {}, p + "too_big")},
                      {}, p + "outside");
  return c.emit(OpKind::Where, {bad, c.scalar(double(invalid), DType::I64, p + "invalid"), wrapped}, {}, p + "checked");
}

Value* gatherRows(NodeContext& c, Value* data, Value* rows, const std::string& suffix) {
  Attrs g;
  g.set("axis", int64_t(0));
  return c.emit(OpKind::Gather, {data, rows}, g, suffix);
}

// A constant [rows, 1, ...] of ones gathered at `rowIdx` (which checks every row) and the
// count of entries written to each row (those ones scattered back).
struct RowHits {
  Value* ones;  // [count, 1, ...]
  Value* hits;  // [rows, 1, ...]
};
RowHits rowHits(NodeContext& c, const Shape& ds, DType dt, Value* rowIdx) {
  Shape onesShape(ds.size(), 1);
  onesShape[0] = ds[0];
  Tensor onesT(dt, onesShape);
  for (int64_t i = 0; i < ds[0]; ++i) onesT.set(i, 1.0);
  Value* ones = gatherRows(c, c.constantValue(onesT, "ones"), rowIdx, "rows_checked");
  Attrs h;
  h.set("axis", int64_t(0));
  h.set("input_shape", onesShape);
  return {ones, c.emit(OpKind::GatherGrad, {ones, rowIdx}, h, "hits")};
}

// The data [rows, rest...] (null: zeros of `type`) with `updates` (one [rest...] block per
// entry of `rowIdx`) written at those rows: replaced (reduction "none"; a row written twice
// gets the mean of its updates — ONNX leaves it undefined, PyTorch and onnxruntime keep one of
// them, so equal duplicates, the common case, come out as that value) or added ("add"). Rows
// outside the data are reported by the gather of ones (rowHits), multiplied into the updates
// so the check stays in the graph.
Value* scatterRows(NodeContext& c, Value* data, const TensorType& type, Value* rowIdx, Value* updates,
                   const std::string& reduction) {
  const Shape& ds = type.shape;
  DType dt = type.dtype;
  if (!isFloat(dt)) c.unsupported(fmt::format("scattering into {} (shoal's scatter-add is for floats)", type.str()));
  if (reduction != "none" && reduction != "add")
    c.unsupported(fmt::format("reduction '{}' (shoal scatters with 'none' and 'add')", reduction));
  RowHits h = rowHits(c, ds, dt, rowIdx);
  Value* checked = c.emit(OpKind::Mul, {updates, h.ones}, {}, "updates_checked");
  Attrs a;
  a.set("axis", int64_t(0));
  a.set("input_shape", ds);
  Value* sums = c.emit(OpKind::GatherGrad, {checked, rowIdx}, a, "scattered");
  if (reduction == "add") return data ? c.emit(OpKind::Add, {data, sums}) : sums;
  Value* written = c.emit(OpKind::Greater, {h.hits, c.scalar(0, dt, "zero_hits")}, {}, "written");
  Value* divisor = c.emit(OpKind::Where, {written, h.hits, c.scalar(1, dt, "one_hit")}, {}, "divisor");
  Value* mean = c.emit(OpKind::Div, {sums, divisor}, {}, "mean");
  return data ? c.emit(OpKind::Where, {written, mean, data}) : mean;  // rows not written: 0 / 1
}

// ScatterND / GatherND addressing: indices [..., k] pick the data's first k axes (after
// batch_dims leading axes shared by data and indices); returns the flat row of each index
// tuple in the data viewed as [prod(data[:batch_dims + k]), data[batch_dims + k:]...], and that
// view's shape.
struct NdRows {
  Value* rows;
  Shape dataRows;  // the data's view
  Shape tuples;    // indices' shape without its last axis
};

NdRows ndRows(NodeContext& c, size_t dataInput, size_t indicesInput, int64_t batchDims) {
  const Shape& ds = c.shape(dataInput);
  const Shape& is = c.shape(indicesInput);
  if (is.empty()) c.invalid("indices must have rank >= 1");
  int64_t k = is.back();
  int64_t r = int64_t(ds.size()), q = int64_t(is.size());
  if (batchDims < 0 || batchDims >= q || batchDims > r)
    c.invalid(fmt::format("batch_dims {} for data {} and indices {}", batchDims, c.type(dataInput).str(),
                          c.type(indicesInput).str()));
  for (int64_t d = 0; d < batchDims; ++d)
    if (ds[size_t(d)] != is[size_t(d)])
      c.invalid(fmt::format("data {} and indices {} differ on batch axis {}", c.type(dataInput).str(),
                            c.type(indicesInput).str(), d));
  if (k < 1 || batchDims + k > r)
    c.invalid(fmt::format("indices {} address {} axes of data {} after {} batch axes", c.type(indicesInput).str(), k,
                          c.type(dataInput).str(), batchDims));
  Shape tuples(is.begin(), is.end() - 1);
  int64_t count = numElements(tuples);
  if (count == 0) c.unsupported("empty indices");
  // Rows of one batch entry, and the strides of the k addressed axes within it.
  Shape addressed(ds.begin() + batchDims, ds.begin() + batchDims + k);
  int64_t perBatch = numElements(addressed);
  int64_t total = numElements(Shape(ds.begin(), ds.begin() + batchDims + k));
  auto strides = fold::strides(addressed);
  Value* idx = toInt64(c, c.value(indicesInput), "indices64");
  Value* rows = nullptr;
  for (int64_t j = 0; j < k; ++j) {
    std::string p = fmt::format("axis{}_", j);
    Attrs s;
    s.set("starts", std::vector<int64_t>{j});
    s.set("ends", std::vector<int64_t>{j + 1});
    s.set("axes", std::vector<int64_t>{q - 1});
    Value* comp = c.reshape(c.emit(OpKind::Slice, {idx}, s, p + "index"), tuples, p + "component");
    Value* term = wrapIndex(c, comp, addressed[size_t(j)], total, p);
    if (strides[size_t(j)] != 1)
      term = c.emit(OpKind::Mul, {term, c.scalar(double(strides[size_t(j)]), DType::I64, p + "stride")}, {}, p + "term");
    rows = rows ? c.emit(OpKind::Add, {rows, term}, {}, p + "sum") : term;
  }
  if (batchDims > 0) {
    // Each tuple's batch entry (its first batch_dims coordinates) as a row offset known at import.
    Shape batchShape(is.begin(), is.begin() + batchDims);
    int64_t inner = count / numElements(batchShape);
    Tensor base(DType::I64, tuples);
    for (int64_t t = 0; t < count; ++t) base.data<int64_t>()[t] = (t / inner) * perBatch;
    rows = c.emit(OpKind::Add, {rows, c.constantValue(base, "batch_rows")}, {}, "rows");
  }
  Shape view = {total};
  view.insert(view.end(), ds.begin() + batchDims + k, ds.end());
  return {rows, view, tuples};
}

}  // namespace

// MaxUnpool: zeros of the unpooled shape with each input value at its index (ONNX's indices
// count over the whole unpooled tensor, as MaxPool's Indices output does). With a larger
// output_shape, an index keeps its coordinates in the unpooled shape (the extra extent is
// zeros at the end of each axis, as ONNX's reference). An index two windows share carries
// the same value twice: the mean of what lands there keeps it.
void lowerMaxUnpool(NodeContext& c) {
  c.requireFloat(0);
  const Shape& xs = c.shape(0);
  if (xs.size() < 3) c.invalid(fmt::format("X must have rank >= 3, got {}", c.type(0).str()));
  if (c.shape(1) != xs) c.invalid(fmt::format("I is {}, X is {}", c.type(1).str(), c.type(0).str()));
  size_t spatial = xs.size() - 2;
  std::vector<int64_t> kernel = c.attrInts("kernel_shape");
  std::vector<int64_t> strides = c.attrInts("strides", std::vector<int64_t>(spatial, 1));
  std::vector<int64_t> pads = c.attrInts("pads", std::vector<int64_t>(2 * spatial, 0));
  if (kernel.size() != spatial || strides.size() != spatial || pads.size() != 2 * spatial)
    c.invalid("kernel_shape, strides and pads must match the spatial rank");
  Shape out = xs;
  for (size_t d = 0; d < spatial; ++d)
    out[2 + d] = (xs[2 + d] - 1) * strides[d] - (pads[d] + pads[spatial + d]) + kernel[d];
  const Shape unpooled = out;
  if (c.has(2)) {
    std::vector<int64_t> given = c.constantInts(2, "output_shape");
    if (given.size() != xs.size() || given[0] != xs[0] || given[1] != xs[1])
      c.invalid(fmt::format("output_shape has {} extents for X {}", given.size(), c.type(0).str()));
    for (size_t d = 0; d < spatial; ++d)
      if (given[2 + d] < out[2 + d])
        c.invalid(fmt::format("output_shape {} is smaller than the unpooled extent {} on axis {}", given[2 + d],
                              out[2 + d], 2 + d));
    out = Shape(given.begin(), given.end());
  }
  for (int64_t d : out)
    if (d < 1) c.invalid(fmt::format("the unpooled shape {} has an empty or negative extent", shapeString(out)));
  int64_t count = numElements(xs), total = numElements(out);
  if (total > (int64_t(1) << 28))
    c.unsupported(fmt::format("an unpooled output of shape {} (more than 2^28 elements)", shapeString(out)));
  DType dt = c.dtype(0);
  Value* idx = c.reshape(toInt64(c, c.value(1), "indices64"), {count}, "indices_flat");
  int64_t unpooledTotal = numElements(unpooled);
  idx = wrapIndex(c, idx, unpooledTotal, total, "");
  if (out != unpooled) {
    // Each coordinate of the unpooled shape, re-encoded in the output's: c_d = idx / s_d -
    // (idx / (s_d · n_d)) · n_d (non-negative, so division truncates as floor); an index sent
    // outside stays outside.
    auto from = fold::strides(unpooled), to = fold::strides(out);
    Value* moved = nullptr;
    for (size_t d = 0; d < out.size(); ++d) {
      std::string p = fmt::format("axis{}_", d);
      auto i64 = [&](int64_t v, const std::string& s) { return c.scalar(double(v), DType::I64, p + s); };
      Value* coarse = c.emit(OpKind::Div, {idx, i64(from[d], "stride")}, {}, p + "coarse");
      Value* coord = d == 0 ? coarse
                            : c.emit(OpKind::Sub,
                                     {coarse, c.emit(OpKind::Mul,
                                                     {c.emit(OpKind::Div, {idx, i64(from[d] * unpooled[d], "block")}, {},
                                                             p + "blocks"),
                                                      i64(unpooled[d], "extent")},
                                                     {}, p + "whole")},
                                     {}, p + "coord");
      Value* term = c.emit(OpKind::Mul, {coord, i64(to[d], "out_stride")}, {}, p + "term");
      moved = moved ? c.emit(OpKind::Add, {moved, term}, {}, p + "sum") : term;
    }
    idx = c.emit(OpKind::Where, {c.emit(OpKind::GreaterEqual, {idx, c.scalar(double(total), DType::I64, "total")}, {},
                                        "was_outside"),
                                 idx, moved},
                 {}, "moved");
  }
  Value* mean = scatterRows(c, nullptr, TensorType{dt, {total}}, idx, c.reshape(c.value(0), {count}, "x_flat"), "none");
  c.setOutput(0, c.reshape(mean, out, ""));
}

// ReverseSequence: along the time axis, each batch entry's first sequence_lens[b] steps
// reversed and the rest kept — a gather of rows of the data viewed as [time·batch, rest...]
// whose source rows are computed from the lengths at run time.
void lowerReverseSequence(NodeContext& c) {
  const Shape& xs = c.shape(0);
  if (xs.size() < 2) c.invalid(fmt::format("input must have rank >= 2, got {}", c.type(0).str()));
  int64_t timeAxis = c.attrInt("time_axis", 0), batchAxis = c.attrInt("batch_axis", 1);
  if (!((timeAxis == 0 && batchAxis == 1) || (timeAxis == 1 && batchAxis == 0)))
    c.invalid(fmt::format("time_axis {} and batch_axis {} (one must be 0, the other 1)", timeAxis, batchAxis));
  int64_t steps = xs[size_t(timeAxis)], batch = xs[size_t(batchAxis)];
  if (c.shape(1) != Shape{batch}) c.invalid(fmt::format("sequence_lens is {}, expected [{}]", c.type(1).str(), batch));
  // t and b of each (axis 0, axis 1) position, known at import.
  Shape grid = {xs[0], xs[1]};
  Tensor tT(DType::I64, grid), bT(DType::I64, grid);
  for (int64_t i = 0; i < xs[0]; ++i)
    for (int64_t j = 0; j < xs[1]; ++j) {
      tT.set(i * xs[1] + j, double(timeAxis == 0 ? i : j));
      bT.set(i * xs[1] + j, double(timeAxis == 0 ? j : i));
    }
  Value* t = c.constantValue(tT, "time");
  Value* b = c.constantValue(bT, "batch");
  Shape lensShape = timeAxis == 0 ? Shape{1, batch} : Shape{batch, 1};
  Value* lens = c.reshape(toInt64(c, c.value(1), "lens64"), lensShape, "lens");
  // Source step: len - 1 - t inside the sequence, t after it; a length outside [1, T] sends
  // its rows outside the data (the gather reports it).
  Value* inside = c.emit(OpKind::Less, {t, lens}, {}, "inside");
  Value* reversed = c.emit(OpKind::Sub, {c.emit(OpKind::Sub, {lens, c.scalar(1, DType::I64, "one")}, {}, "last"), t}, {},
                           "reversed");
  Value* src = c.emit(OpKind::Where, {inside, reversed, t}, {}, "source_step");
  Value* badLen = c.emit(OpKind::Where,
                         {c.emit(OpKind::Less, {lens, c.scalar(1, DType::I64, "min_len")}, {}, "too_short"),
                          c.scalar(1, DType::Bool, "yes"),
                          c.emit(OpKind::Greater, {lens, c.scalar(double(steps), DType::I64, "max_len")}, {}, "too_long")},
                         {}, "bad_len");
  src = c.emit(OpKind::Where, {badLen, c.scalar(double(steps * batch), DType::I64, "invalid"), src}, {}, "checked_step");
  Value* row = timeAxis == 0
                   ? c.emit(OpKind::Add, {c.emit(OpKind::Mul, {src, c.scalar(double(batch), DType::I64, "B")}, {}, "time_rows"), b}, {}, "rows")
                   : c.emit(OpKind::Add, {c.emit(OpKind::Mul, {b, c.scalar(double(steps), DType::I64, "T")}, {}, "batch_rows"), src}, {}, "rows");
  Shape view = {xs[0] * xs[1]};
  view.insert(view.end(), xs.begin() + 2, xs.end());
  Value* out = gatherRows(c, c.reshape(c.value(0), view, "data_rows"), c.reshape(row, {xs[0] * xs[1]}, "rows_flat"),
                          "gathered");
  c.setOutput(0, c.reshape(out, xs, ""));
}

// GridSample (2-D): each output pixel reads the input at the grid's location, un-normalised
// ([-1, 1] to pixel centres or corners), through 1 (nearest), 4 (bilinear) or 16 (bicubic,
// Keys' a = -0.75) taps. A tap outside the image is 0 (zeros), the edge pixel (border) or the
// pixel reflected at the edges (reflection), tap by tap, as onnxruntime does. The taps are
// gathered as rows of the input viewed as [N·H·W, C], weighted and summed, so the grid and the
// input both get gradients.
void lowerGridSample(NodeContext& c) {
  c.requireFloat(0);
  const Shape& xs = c.shape(0);
  const Shape& gs = c.shape(1);
  if (xs.size() != 4)
    c.unsupported(fmt::format("{}-D input {} (shoal's GridSample is 2-D)", int64_t(xs.size()) - 2, c.type(0).str()));
  if (gs.size() != 4 || gs[0] != xs[0] || gs[3] != 2)
    c.invalid(fmt::format("grid is {}; expected [{}, H_out, W_out, 2]", c.type(1).str(), xs[0]));
  if (c.dtype(1) != c.dtype(0)) c.invalid(fmt::format("grid is {}, X is {}", c.type(1).str(), c.type(0).str()));
  const bool align = c.attrInt("align_corners", 0) != 0;
  // Opset 20 renamed bilinear and bicubic to linear and cubic.
  std::string mode = c.attrString("mode", c.opset() >= 20 ? "linear" : "bilinear");
  if (c.opset() >= 20) {
    if (mode == "linear") mode = "bilinear";
    else if (mode == "cubic") mode = "bicubic";
    else if (mode != "nearest") c.invalid(fmt::format("mode '{}' (opset 20: linear, nearest, cubic)", mode));
  }
  const std::string padding = c.attrString("padding_mode", "zeros");
  if (mode != "bilinear" && mode != "nearest" && mode != "bicubic") c.invalid(fmt::format("mode '{}'", mode));
  if (padding != "zeros" && padding != "border" && padding != "reflection")
    c.invalid(fmt::format("padding_mode '{}'", padding));
  DType dt = c.dtype(0);
  const int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3], Ho = gs[1], Wo = gs[2];
  const int64_t points = N * Ho * Wo;
  auto f = [&](double v, const std::string& s) { return c.scalar(v, dt, s); };
  auto i64 = [&](double v, const std::string& s) { return c.scalar(v, DType::I64, s); };
  auto op = [&](OpKind k, std::vector<Value*> ins, const std::string& s) { return c.emit(k, std::move(ins), {}, s); };
  auto affine = [&](Value* v, double scale, double shift, const std::string& s) {
    Attrs a;
    a.set("scale", scale);
    a.set("shift", shift);
    return c.emit(OpKind::Scale, {v}, a, s);
  };
  // The grid's x and y as [points], in pixels.
  auto coordinate = [&](int64_t k, int64_t length, const std::string& name) {
    Attrs s;
    s.set("starts", std::vector<int64_t>{k});
    s.set("ends", std::vector<int64_t>{k + 1});
    s.set("axes", std::vector<int64_t>{3});
    Value* g = c.reshape(c.emit(OpKind::Slice, {c.value(1)}, s, name + "_slice"), {points}, name + "_normalised");
    // align_corners: (g + 1) / 2 · (length - 1); else ((g + 1) · length - 1) / 2.
    return align ? affine(g, 0.5 * double(length - 1), 0.5 * double(length - 1), name)
                 : affine(g, 0.5 * double(length), 0.5 * double(length - 1), name);
  };
  Value* x = coordinate(0, W, "x");
  Value* y = coordinate(1, H, "y");
  // The image rows, [N·H·W, C], and each point's first row (its image's), known at import.
  Value* rowsOfX = c.reshape(transposeOp(c, c.value(0), {0, 2, 3, 1}, "channels_last"), {N * H * W, C}, "pixels");
  Tensor baseT(DType::I64, {points});
  for (int64_t p = 0; p < points; ++p) baseT.set(p, double((p / (Ho * Wo)) * H * W));
  Value* base = c.constantValue(baseT, "image_rows");
  // A float tap coordinate (whole) to an in-range int64 index, with, for zeros, whether it was in.
  struct Tap {
    Value* index;
    Value* inside;  // zeros padding only
  };
  auto tapIndex = [&](Value* whole, int64_t length, const std::string& p) -> Tap {
    // Far-away (or non-finite) coordinates are held to a range where every step is exact.
    Attrs hold;
    hold.set("min", -4.0 * double(length) - 8);
    hold.set("max", 4.0 * double(length) + 8);
    Value* v = c.emit(OpKind::Clip, {whole}, hold, p + "held");
    Value* inside = nullptr;
    if (padding == "reflection") {
      // onnxruntime's reflection of the tap over [lo, hi] (pixel edges, or centres with
      // align_corners), folded as often as needed, then truncated toward zero.
      double lo = align ? 0.0 : -0.5, hi = align ? double(length - 1) : double(length) - 0.5, range = hi - lo;
      auto fold = [&](Value* d, bool below, const std::string& s) {
        // n = floor(d / range); r = d - n·range; even n: near edge + r, odd: far edge - r.
        Value* n = floorOf(c, affine(d, 1.0 / range, 0, s + "_ranges"), s + "_n");
        Value* r = op(OpKind::Sub, {d, affine(n, range, 0, s + "_whole")}, s + "_r");
        Value* odd = op(OpKind::NotEqual, {affine(n, 0.5, 0, s + "_half_n"),
                                           floorOf(c, affine(n, 0.5, 0, s + "_half_n2"), s + "_half_floor")},
                        s + "_odd");
        Value* nearEdge = below ? affine(r, 1, lo, s + "_from_lo") : affine(r, -1, hi, s + "_from_hi");
        Value* farEdge = below ? affine(r, -1, hi, s + "_to_hi") : affine(r, 1, lo, s + "_to_lo");
        return op(OpKind::Where, {odd, farEdge, nearEdge}, s);
      };
      Value* under = fold(affine(v, -1, lo, p + "below"), true, p + "low");
      Value* over = fold(affine(v, 1, -hi, p + "above"), false, p + "high");
      v = op(OpKind::Where, {op(OpKind::Less, {v, f(lo, p + "lo")}, p + "is_low"), under,
                             op(OpKind::Where, {op(OpKind::Greater, {v, f(hi, p + "hi")}, p + "is_high"), over, v},
                                p + "not_low")},
             p + "reflected");
    }
    Attrs toInt;
    toInt.set("dtype", std::string("i64"));
    Value* idx = c.emit(OpKind::Cast, {v}, toInt, p + "int");
    if (padding == "zeros")
      inside = op(OpKind::Where, {op(OpKind::Less, {idx, i64(0, p + "zero")}, p + "neg"), c.scalar(0, DType::Bool, p + "no"),
                                  op(OpKind::Less, {idx, i64(double(length), p + "len")}, p + "below_len")},
                  p + "inside");
    // Clamped: border's rule, and a safe row for zeros (whose value is then dropped).
    Value* clamped = op(OpKind::Where, {op(OpKind::Less, {idx, i64(0, p + "zero2")}, p + "neg2"), i64(0, p + "first"),
                                        op(OpKind::Where, {op(OpKind::Greater, {idx, i64(double(length - 1), p + "last_i")}, p + "past"),
                                                           i64(double(length - 1), p + "last"), idx},
                                           p + "upper")},
                        p + "clamped");
    return {clamped, inside};
  };
  // The value at whole tap coordinates (ty, tx), [points, C].
  auto pixel = [&](Value* ty, Value* tx, const std::string& p) {
    Tap ry = tapIndex(ty, H, p + "y_"), rx = tapIndex(tx, W, p + "x_");
    Value* row = op(OpKind::Add, {base, op(OpKind::Add, {op(OpKind::Mul, {ry.index, i64(double(W), p + "W")}, p + "row_y"), rx.index}, p + "in_image")},
                    p + "row");
    Attrs g;
    g.set("axis", int64_t(0));
    Value* v = c.emit(OpKind::Gather, {rowsOfX, row}, g, p + "value");
    if (padding != "zeros") return v;
    Value* in = c.reshape(op(OpKind::Where, {ry.inside, rx.inside, c.scalar(0, DType::Bool, p + "no2")}, p + "in"), {points, 1},
                          p + "in_rows");
    return op(OpKind::Where, {in, v, f(0, p + "zero_value")}, p + "padded");
  };
  auto weighted = [&](Value* v, Value* w, const std::string& p) {
    return op(OpKind::Mul, {v, c.reshape(w, {points, 1}, p + "_weight_rows")}, p + "_weighted");
  };
  Value* out = nullptr;
  auto accumulate = [&](Value* term, const std::string& p) { out = out ? op(OpKind::Add, {out, term}, p + "_sum") : term; };
  if (mode == "nearest") {
    out = pixel(roundHalfEven(c, y, "ny_"), roundHalfEven(c, x, "nx_"), "n_");
  } else if (mode == "bilinear") {
    Value* x0 = floorOf(c, x, "x0");
    Value* y0 = floorOf(c, y, "y0");
    Value* x1 = affine(x0, 1, 1, "x1");
    Value* y1 = affine(y0, 1, 1, "y1");
    Value* wx1 = op(OpKind::Sub, {x, x0}, "wx1");
    Value* wx0 = op(OpKind::Sub, {x1, x}, "wx0");
    Value* wy1 = op(OpKind::Sub, {y, y0}, "wy1");
    Value* wy0 = op(OpKind::Sub, {y1, y}, "wy0");
    Value* ys[2] = {y0, y1};
    Value* xs2[2] = {x0, x1};
    Value* wys[2] = {wy0, wy1};
    Value* wxs[2] = {wx0, wx1};
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) {
        std::string p = fmt::format("t{}{}", i, j);
        accumulate(weighted(pixel(ys[i], xs2[j], p + "_"), op(OpKind::Mul, {wys[i], wxs[j]}, p + "_w"), p), p);
      }
  } else {
    // Keys' cubic convolution, a = -0.75, at distances t + 1, t, 1 - t, 2 - t from the taps.
    const double a = -0.75;
    auto coefficients = [&](Value* t, const std::string& p) {
      auto far = [&](Value* d, const std::string& s) {  // ((a d - 5a) d + 8a) d - 4a, for 1 <= d <= 2
        Value* q = affine(d, a, -5 * a, s + "_q");
        q = affine(op(OpKind::Mul, {q, d}, s + "_qd"), 1, 8 * a, s + "_q2");
        return affine(op(OpKind::Mul, {q, d}, s + "_qdd"), 1, -4 * a, s);
      };
      auto near = [&](Value* d, const std::string& s) {  // ((a + 2) d - (a + 3)) d² + 1, for d <= 1
        Value* q = affine(d, a + 2, -(a + 3), s + "_q");
        return affine(op(OpKind::Mul, {q, op(OpKind::Mul, {d, d}, s + "_dd")}, s + "_qdd"), 1, 1, s);
      };
      return std::vector<Value*>{far(affine(t, 1, 1, p + "d0"), p + "c0"), near(t, p + "c1"),
                                 near(affine(t, -1, 1, p + "d2"), p + "c2"), far(affine(t, -1, 2, p + "d3"), p + "c3")};
    };
    Value* fx = floorOf(c, x, "fx");
    Value* fy = floorOf(c, y, "fy");
    auto cx = coefficients(op(OpKind::Sub, {x, fx}, "tx"), "cx");
    auto cy = coefficients(op(OpKind::Sub, {y, fy}, "ty"), "cy");
    for (int i = 0; i < 4; ++i) {
      Value* row = nullptr;
      Value* ty = affine(fy, 1, double(i - 1), fmt::format("y{}", i));
      for (int j = 0; j < 4; ++j) {
        std::string p = fmt::format("t{}{}", i, j);
        Value* term = weighted(pixel(ty, affine(fx, 1, double(j - 1), p + "_x"), p + "_"), cx[size_t(j)], p);
        row = row ? op(OpKind::Add, {row, term}, p + "_row") : term;
      }
      accumulate(weighted(row, cy[size_t(i)], fmt::format("r{}", i)), fmt::format("r{}", i));
    }
  }
  Value* image = c.reshape(out, {N, Ho, Wo, C}, "sampled");
  c.setOutput(0, transposeOp(c, image, {0, 3, 1, 2}, ""));
}

void lowerGatherND(NodeContext& c) {
  int64_t batchDims = c.attrInt("batch_dims", 0);
  NdRows nd = ndRows(c, 0, 1, batchDims);
  Value* out = gatherRows(c, c.reshape(c.value(0), nd.dataRows, "data_rows"), nd.rows, "gathered");
  const Shape& ds = c.shape(0);
  Shape outShape = nd.tuples;
  outShape.insert(outShape.end(), ds.begin() + batchDims + c.shape(1).back(), ds.end());
  c.setOutput(0, c.reshape(out, outShape, ""));
}

void lowerScatterND(NodeContext& c) {
  std::string reduction = c.opset() >= 16 ? c.attrString("reduction", "none") : "none";
  NdRows nd = ndRows(c, 0, 1, 0);
  Shape updatesShape = nd.tuples;
  updatesShape.insert(updatesShape.end(), nd.dataRows.begin() + 1, nd.dataRows.end());
  if (c.shape(2) != updatesShape)
    c.invalid(fmt::format("updates are {}, expected {}", c.type(2).str(), TensorType{c.dtype(2), updatesShape}.str()));
  if (c.dtype(2) != c.dtype(0)) c.invalid(fmt::format("updates are {}, data {}", c.type(2).str(), c.type(0).str()));
  Shape flatUpdates = {numElements(nd.tuples)};
  flatUpdates.insert(flatUpdates.end(), nd.dataRows.begin() + 1, nd.dataRows.end());
  Value* rows = c.reshape(nd.rows, {numElements(nd.tuples)}, "rows_flat");
  Value* data = c.reshape(c.value(0), nd.dataRows, "data_rows");
  Value* out = scatterRows(c, data, data->type(), rows, c.reshape(c.value(2), flatUpdates, "updates_rows"), reduction);
  c.setOutput(0, c.reshape(out, c.shape(0), ""));
}

// Col2Im (opset 18): the sum of sliding blocks back into an image (torch's fold; timm's VOLO
// exports its outlook attention through it). The input [N, C·K, L] (K block positions, L block
// places) is scatter-added along one axis of [N, C, K·L] by a constant map from each (k, l)
// to its image pixel, padding taps to one extra slot that is sliced off.
void lowerCol2Im(NodeContext& c) {
  c.requireFloat(0);
  std::vector<int64_t> image = c.constantInts(1, "image_shape"), block = c.constantInts(2, "block_shape");
  size_t nd = image.size();
  if (nd == 0 || block.size() != nd)
    c.invalid(fmt::format("image_shape has {} extents, block_shape {}", image.size(), block.size()));
  std::vector<int64_t> dil = c.attrInts("dilations", std::vector<int64_t>(nd, 1));
  std::vector<int64_t> pads = c.attrInts("pads", std::vector<int64_t>(2 * nd, 0));
  std::vector<int64_t> strides = c.attrInts("strides", std::vector<int64_t>(nd, 1));
  if (dil.size() != nd || strides.size() != nd || pads.size() != 2 * nd)
    c.invalid("dilations, strides and pads must have one (pads: two) entries per image axis");
  int64_t K = 1, L = 1, P = 1;
  std::vector<int64_t> places(nd);
  for (size_t d = 0; d < nd; ++d) {
    const int64_t big = int64_t(1) << 31;
    if (image[d] < 1 || block[d] < 1 || dil[d] < 1 || strides[d] < 1 || pads[d] < 0 || pads[d + nd] < 0 ||
        image[d] > big || block[d] > big || dil[d] > big || strides[d] > big || pads[d] > big || pads[d + nd] > big)
      c.invalid(fmt::format("axis {}: image {}, block {}, dilation {}, stride {}, pads {}/{}", d, image[d], block[d],
                            dil[d], strides[d], pads[d], pads[d + nd]));
    int64_t span = dil[d] * (block[d] - 1) + 1, padded = image[d] + pads[d] + pads[d + nd];
    if (span > padded) c.invalid(fmt::format("axis {}: the block spans {} of a padded extent {}", d, span, padded));
    places[d] = (padded - span) / strides[d] + 1;
    // Bounded as they grow (no overflow): the map holds K·L entries, the image P pixels.
    if (image[d] > (int64_t(1) << 31) / P || places[d] > (int64_t(1) << 24) / L || block[d] > (int64_t(1) << 24) / K)
      c.unsupported("an image or a block map too large (over 2^31 pixels or 2^24 taps)");
    K *= block[d], L *= places[d], P *= image[d];
  }
  if (K * L > (int64_t(1) << 24)) c.unsupported(fmt::format("{} block taps (too many to map)", K * L));
  const Shape& xs = c.shape(0);
  if (xs.size() != 3 || xs[1] % K != 0 || xs[2] != L)
    c.invalid(fmt::format("input {} is not [N, C·{}, {}] for these blocks", c.type(0).str(), K, L));
  int64_t n = xs[0], ch = xs[1] / K;
  Tensor map(DType::I64, {K * L});
  std::vector<int64_t> kIdx(nd), lIdx(nd);
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t r = k, d = int64_t(nd) - 1; d >= 0; --d) kIdx[size_t(d)] = r % block[size_t(d)], r /= block[size_t(d)];
    for (int64_t l = 0; l < L; ++l) {
      for (int64_t r = l, d = int64_t(nd) - 1; d >= 0; --d) lIdx[size_t(d)] = r % places[size_t(d)], r /= places[size_t(d)];
      int64_t flat = 0;
      bool inside = true;
      for (size_t d = 0; d < nd; ++d) {
        int64_t pos = lIdx[d] * strides[d] - pads[d] + kIdx[d] * dil[d];
        inside &= pos >= 0 && pos < image[d];
        flat = flat * image[d] + pos;
      }
      map.data<int64_t>()[k * L + l] = inside ? flat : P;
    }
  }
  Attrs a;
  a.set("axis", int64_t(2));
  a.set("input_shape", Shape{n, ch, P + 1});
  Value* sums = c.emit(OpKind::GatherGrad, {c.reshape(c.value(0), {n, ch, K * L}, "taps"), c.constantValue(map, "pixel_of_tap")},
                       a, "summed");
  Shape out{n, ch};
  out.insert(out.end(), image.begin(), image.end());
  c.setOutput(0, c.reshape(sliceOp(c, sums, {0}, {P}, {2}, {1}, "image"), out, ""));
}

// ScatterND on tensors known at import (a relative-position index table built by scattering
// into a constant): the slices copied (exact for every type), or combined in double under a
// reduction, in index order.
bool foldScatterND(NodeContext& c) {
  std::string reduction = c.opset() >= 16 ? c.attrString("reduction", "none") : "none";
  if (reduction != "none" && reduction != "add" && reduction != "mul" && reduction != "max" && reduction != "min")
    c.invalid(fmt::format("unknown reduction '{}'", reduction));
  const Tensor& data = *c.known(0);
  const Tensor& indices = *c.known(1);
  const Tensor& updates = *c.known(2);
  const Shape& ds = data.shape();
  const Shape& is = indices.shape();
  if (is.empty()) c.invalid("indices must have rank >= 1");
  int64_t k = is.back();
  if (k < 1 || k > int64_t(ds.size()))
    c.invalid(fmt::format("indices {} address {} axes of data {}", indices.type().str(), k, data.type().str()));
  Shape tuples(is.begin(), is.end() - 1), expect = tuples;
  expect.insert(expect.end(), ds.begin() + k, ds.end());
  if (updates.shape() != expect)
    c.invalid(fmt::format("updates are {}, expected {}", updates.type().str(), TensorType{data.dtype(), expect}.str()));
  if (updates.dtype() != data.dtype()) c.invalid(fmt::format("updates are {}, data {}", updates.type().str(), data.type().str()));
  int64_t slice = numElements(Shape(ds.begin() + k, ds.end()));
  auto st = fold::strides(Shape(ds.begin(), ds.begin() + k));
  Tensor out = data.clone();  // copies share storage: the constant itself stays as it was
  size_t size = dtypeSize(data.dtype());
  for (int64_t t = 0; t < numElements(tuples); ++t) {
    int64_t off = 0;
    for (int64_t j = 0; j < k; ++j) {
      int64_t i = fold::intAt(indices, t * k + j), n = ds[size_t(j)];
      if (i < -n || i >= n) c.invalid(fmt::format("index {} is out of range for extent {} (tuple {})", i, n, t));
      off += (i < 0 ? i + n : i) * st[size_t(j)];
    }
    if (reduction == "none") {
      std::memcpy(static_cast<char*>(out.raw()) + size_t(off * slice) * size,
                  static_cast<const char*>(updates.raw()) + size_t(t * slice) * size, size_t(slice) * size);
      continue;
    }
    for (int64_t e = 0; e < slice; ++e) {
      double a = out.at(off * slice + e), u = updates.at(t * slice + e);
      out.set(off * slice + e, reduction == "add"   ? a + u
                               : reduction == "mul" ? a * u
                               : reduction == "max" ? std::max(a, u)
                                                    : std::min(a, u));
    }
  }
  c.setKnownOutput(0, out);
  return true;
}

// ScatterElements (and Scatter, its name before opset 11): data[... index ... on the axis] =
// updates, element by element, as rows of the flattened data (like GatherElements).
void lowerScatterElements(NodeContext& c) {
  std::string reduction = c.opType() == "ScatterElements" && c.opset() >= 16 ? c.attrString("reduction", "none") : "none";
  const Shape& ds = c.shape(0);
  const Shape& is = c.shape(1);
  int64_t rank = int64_t(ds.size());
  if (int64_t(is.size()) != rank) c.invalid("data and indices differ in rank");
  if (c.shape(2) != is) c.invalid(fmt::format("updates {} and indices {} differ in shape", c.type(2).str(), c.type(1).str()));
  if (c.dtype(2) != c.dtype(0)) c.invalid(fmt::format("updates are {}, data {}", c.type(2).str(), c.type(0).str()));
  int64_t axis = c.axis(c.attrInt("axis", 0), rank);
  for (int64_t d = 0; d < rank; ++d)
    if (d != axis && is[size_t(d)] > ds[size_t(d)])
      c.invalid(fmt::format("indices {} exceed data {} on axis {}", c.type(1).str(), c.type(0).str(), d));
  int64_t count = numElements(is), total = numElements(ds);
  if (count == 0) c.unsupported("empty indices");
  auto dStrides = fold::strides(ds), iStrides = fold::strides(is);
  Tensor base(DType::I64, {count});
  for (int64_t e = 0; e < count; ++e) {
    int64_t off = 0;
    for (int64_t d = 0; d < rank; ++d)
      if (d != axis) off += ((e / iStrides[size_t(d)]) % is[size_t(d)]) * dStrides[size_t(d)];
    base.data<int64_t>()[e] = off;
  }
  Value* idx = c.reshape(toInt64(c, c.value(1), "indices64"), {count}, "indices_flat");
  Value* along = wrapIndex(c, idx, ds[size_t(axis)], total, "");
  Value* rows = c.emit(OpKind::Add,
                       {c.emit(OpKind::Mul, {along, c.scalar(double(dStrides[size_t(axis)]), DType::I64, "stride")}, {},
                               "scaled"),
                        c.constantValue(base, "base")},
                       {}, "rows");
  Value* data = c.reshape(c.value(0), {total}, "data_flat");
  Value* out = scatterRows(c, data, data->type(), rows, c.reshape(c.value(2), {count}, "updates_flat"), reduction);
  c.setOutput(0, c.reshape(out, ds, ""));
}

}  // namespace shoal::onnx_import
