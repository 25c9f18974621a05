// ONNX data movement on shoal's shape family (transpose, concat, slice, gather, pad, expand),
// the ops composed from it (Split, Tile, DepthToSpace, SpaceToDepth, GatherElements, Trilu,
// OneHot), and MatMul with batched operands (batch_matmul). Index arguments (axes, starts,
// pads, repeats) must be known at import: shoal's shapes are static.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "frontend/onnx/onnx_fold.h"
#include "frontend/onnx/onnx_importer.h"
#include "frontend/onnx/onnx_ops_families.h"
#include "ir/shape_inference.h"

namespace shoal::onnx_import {

Value* transposeOp(NodeContext& c, Value* x, const std::vector<int64_t>& perm, const std::string& suffix) {
  Attrs a;
  a.set("perm", perm);
  return c.emit(OpKind::Transpose, {x}, a, suffix);
}

Value* sliceOp(NodeContext& c, Value* x, std::vector<int64_t> starts, std::vector<int64_t> ends,
               std::vector<int64_t> axes, std::vector<int64_t> steps, const std::string& suffix) {
  Attrs a;
  a.set("starts", std::move(starts));
  a.set("ends", std::move(ends));
  a.set("axes", std::move(axes));
  a.set("steps", std::move(steps));
  return c.emit(OpKind::Slice, {x}, a, suffix);
}

void lowerTranspose(NodeContext& c) {
  const Shape& xs = c.shape(0);
  std::vector<int64_t> perm = c.attrInts("perm", std::vector<int64_t>{});
  if (perm.empty())
    for (int64_t d = int64_t(xs.size()) - 1; d >= 0; --d) perm.push_back(d);
  if (perm.size() != xs.size()) c.invalid("perm has the wrong length");
  bool identity = true;
  for (size_t d = 0; d < perm.size(); ++d) identity &= perm[d] == int64_t(d);
  if (identity) return c.setOutput(0, c.value(0));
  c.setOutput(0, transposeOp(c, c.value(0), perm, ""));
}

Value* concatMany(NodeContext& c, std::vector<Value*> parts, int64_t axis, const std::string& tag) {
  if (parts.empty()) c.invalid("nothing to concatenate");
  Attrs a;
  a.set("axis", axis);
  for (int round = 0; parts.size() > 1; ++round) {
    std::vector<Value*> next;
    const bool last = parts.size() <= kMaxConcatOperands;
    for (size_t i = 0; i < parts.size(); i += kMaxConcatOperands) {
      std::vector<Value*> group(parts.begin() + i, parts.begin() + std::min(parts.size(), i + kMaxConcatOperands));
      // The final concat takes the node's own name (tag ""); the rounds before it are named.
      next.push_back(group.size() == 1 ? group[0]
                                       : c.emit(OpKind::Concat, group, a,
                                                last && tag.empty() ? "" : fmt::format("{}cat{}_{}", tag, round, i / kMaxConcatOperands)));
    }
    parts = std::move(next);
  }
  return parts[0];
}

void lowerConcat(NodeContext& c) {
  int64_t rank = c.rank(0);
  int64_t axis = c.axis(c.attrInt("axis", c.opset() < 4 ? 1 : 0), rank);
  std::vector<Value*> ins;
  for (size_t i = 0; i < c.numInputs(); ++i) {
    if (!c.has(i)) continue;
    if (c.dtype(i) != c.dtype(0))
      c.invalid(fmt::format("operand types differ: {} and {}", c.type(0).str(), c.type(i).str()));
    if (numElements(c.shape(i)) == 0) c.unsupported("an empty operand");
    ins.push_back(c.value(i));
  }
  c.setOutput(0, concatMany(c, ins, axis, ""));
}

SliceArgs sliceArgs(NodeContext& c) {
  SliceArgs a;
  if (c.opset() < 10) {
    a.starts = c.attrInts("starts");
    a.ends = c.attrInts("ends");
    a.axes = c.attrInts("axes", std::vector<int64_t>{});
  } else {
    a.starts = c.constantInts(1, "starts");
    a.ends = c.constantInts(2, "ends");
    if (c.has(3)) a.axes = c.constantInts(3, "axes");
    if (c.has(4)) a.steps = c.constantInts(4, "steps");
  }
  if (a.axes.empty())
    for (size_t i = 0; i < a.starts.size(); ++i) a.axes.push_back(int64_t(i));
  if (a.steps.empty()) a.steps.assign(a.starts.size(), 1);
  if (a.ends.size() != a.starts.size() || a.axes.size() != a.starts.size() || a.steps.size() != a.starts.size())
    c.invalid("starts, ends, axes and steps differ in length");
  return a;
}

// Slice: starts/ends/axes/steps (attributes before opset 10, inputs after), normalised here as
// the fold does (negative indices from the back, clamped), so shoal's slice reads the same
// elements; an empty result is refused (shoal's tensors are non-empty).
void lowerSlice(NodeContext& c) {
  const Shape& ds = c.shape(0);
  int64_t rank = int64_t(ds.size());
  auto [starts, ends, axes, steps] = sliceArgs(c);
  std::vector<bool> seen(size_t(rank), false);
  std::vector<int64_t> b(starts.size()), e(starts.size());
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t a = c.axis(axes[i], rank), n = ds[size_t(a)], s = steps[i];
    if (seen[size_t(a)]) c.invalid(fmt::format("axis {} appears twice", a));
    seen[size_t(a)] = true;
    axes[i] = a;
    if (s == 0) c.invalid("a step is 0");
    // Clamp in a way that cannot overflow (ONNX writes INT64_MAX and INT64_MIN for "to the end").
    auto norm = [&](int64_t v) { return v < 0 ? (v < -n ? -n - 1 : v + n) : std::min(v, n + 1); };
    int64_t bb = norm(starts[i]), ee = norm(ends[i]);
    int64_t count;
    if (s > 0) {
      bb = std::clamp<int64_t>(bb, 0, n);
      ee = std::clamp<int64_t>(ee, 0, n);
      count = ee > bb ? (ee - bb + s - 1) / s : 0;
    } else {
      bb = std::clamp<int64_t>(bb, 0, n - 1);
      ee = std::clamp<int64_t>(ee, -1, n - 1);
      count = bb > ee ? (bb - ee - s - 1) / (-s) : 0;
    }
    if (count == 0) c.unsupported("an empty slice");
    b[i] = bb;
    e[i] = ee == -1 ? -n - 1 : ee;  // -1 would count from the back: -n-1 is "before index 0"
  }
  c.setOutput(0, sliceOp(c, c.value(0), b, e, axes, steps, ""));
}

void lowerGather(NodeContext& c) {
  DType it = c.dtype(1);
  if (it != DType::I64 && it != DType::I32)
    c.invalid(fmt::format("indices must be int32 or int64, got {}", c.type(1).str()));
  if (numElements(c.shape(1)) == 0) c.unsupported("empty indices");
  Attrs a;
  a.set("axis", c.axis(c.attrInt("axis", 0), c.rank(0)));
  c.setOutput(0, c.emit(OpKind::Gather, {c.value(0), c.value(1)}, a));
}

// GatherElements: out[i...] = data[i... with index[i...] on the axis], as a gather from the
// flattened data at index·stride + (the flat offset of the other coordinates), computed in
// int64.
void lowerGatherElements(NodeContext& c) {
  const Shape& ds = c.shape(0);
  const Shape& is = c.shape(1);
  DType it = c.dtype(1);
  if (it != DType::I64 && it != DType::I32)
    c.invalid(fmt::format("indices must be int32 or int64, got {}", c.type(1).str()));
  int64_t rank = int64_t(ds.size());
  if (int64_t(is.size()) != rank) c.invalid("data and indices differ in rank");
  int64_t axis = c.axis(c.attrInt("axis", 0), rank);
  for (int64_t d = 0; d < rank; ++d)
    if (d != axis && is[size_t(d)] > ds[size_t(d)])
      c.invalid(fmt::format("indices {} exceed data {} on axis {}", c.type(1).str(), c.type(0).str(), d));
  int64_t count = numElements(is);
  if (count == 0) c.unsupported("empty indices");
  auto dStrides = fold::strides(ds), iStrides = fold::strides(is);
  Tensor base(DType::I64, is);
  for (int64_t k = 0; k < count; ++k) {
    int64_t off = 0;
    for (int64_t d = 0; d < rank; ++d)
      if (d != axis) off += ((k / iStrides[size_t(d)]) % is[size_t(d)]) * dStrides[size_t(d)];
    base.data<int64_t>()[k] = off;
  }
  Value* idx = c.value(1);
  if (it != DType::I64) {
    Attrs a;
    a.set("dtype", std::string("i64"));
    idx = c.emit(OpKind::Cast, {idx}, a, "idx64");
  }
  int64_t n = ds[size_t(axis)];
  // Negative indices count from the back; anything still outside [0, n) is pushed out of the
  // flattened range too, so shoal's gather reports it instead of reading a neighbour.
  Value* zero = c.scalar(0, DType::I64, "zero");
  Value* wrapped = c.emit(OpKind::Where,
                          {c.emit(OpKind::Less, {idx, zero}, {}, "negative"),
                           c.emit(OpKind::Add, {idx, c.scalar(double(n), DType::I64, "n")}, {}, "from_back"), idx},
                          {}, "wrapped");
  Value* outside =
      c.emit(OpKind::Where,
             {c.emit(OpKind::GreaterEqual, {wrapped, c.scalar(double(n), DType::I64, "n2")}, {}, "too_big"),
              c.scalar(double(numElements(ds)), DType::I64, "past_end"),
              c.emit(OpKind::Where,
                     {c.emit(OpKind::Less, {wrapped, zero}, {}, "too_small"),
                      c.scalar(double(-numElements(ds) - 1), DType::I64, "before_start"), wrapped},
                     {}, "low_checked")},
             {}, "checked");
  Value* flatIdx = c.emit(
      OpKind::Add,
      {c.emit(OpKind::Mul, {outside, c.scalar(double(dStrides[size_t(axis)]), DType::I64, "stride")}, {}, "scaled"),
       c.constantValue(base, "base")},
      {}, "flat_index");
  Value* flat = c.reshape(c.value(0), {numElements(ds)}, "flat");
  Attrs g;
  g.set("axis", int64_t(0));
  c.setOutput(0, c.emit(OpKind::Gather, {flat, flatIdx}, g));
}

// Pad: constant, reflect or edge (shoal's pad); negative pads crop (constant mode only).
void lowerPad(NodeContext& c) {
  const Shape& xs = c.shape(0);
  int64_t rank = int64_t(xs.size());
  std::string mode = c.attrString("mode", "constant");
  std::vector<int64_t> pads;
  double value = 0;
  if (c.opset() < 2) {
    pads = c.attrInts("paddings");
    value = c.attrFloat("value", 0.0);
  } else if (c.opset() < 11) {
    pads = c.attrInts("pads");
    value = c.attrFloat("value", 0.0);
  } else {
    pads = c.constantInts(1, "the pads");
    if (c.has(2)) {
      auto v = c.constantFloats(2, "the constant value");
      if (v.size() != 1) c.invalid("constant_value must be a scalar");
      value = v[0];
    }
    if (c.has(3)) {  // opset 18: the pads are for these axes only
      std::vector<int64_t> axes = c.constantInts(3, "the axes");
      if (pads.size() != 2 * axes.size())
        c.invalid(fmt::format("pads has {} values for {} axes", pads.size(), axes.size()));
      std::vector<int64_t> full(size_t(2 * rank), 0);
      std::vector<bool> seen(size_t(rank), false);
      for (size_t k = 0; k < axes.size(); ++k) {
        int64_t a = c.axis(axes[k], rank);
        if (seen[size_t(a)]) c.invalid(fmt::format("axis {} appears twice in axes", a));
        seen[size_t(a)] = true;
        full[size_t(a)] = pads[k];
        full[size_t(a + rank)] = pads[k + axes.size()];
      }
      pads = full;
    }
  }
  if (int64_t(pads.size()) != 2 * rank) c.invalid(fmt::format("pads has {} values for rank {}", pads.size(), rank));
  if (mode != "constant" && mode != "reflect" && mode != "edge") c.unsupported(fmt::format("mode '{}'", mode));
  Value* x = c.value(0);
  bool crop = false;
  for (int64_t p : pads) crop |= p < 0;
  if (crop) {
    if (mode != "constant") c.unsupported(fmt::format("negative pads in {} mode", mode));
    std::vector<int64_t> st, en, ax, sp;
    for (int64_t d = 0; d < rank; ++d) {
      int64_t lo = std::max<int64_t>(0, -pads[size_t(d)]), hi = std::max<int64_t>(0, -pads[size_t(d + rank)]);
      if (!lo && !hi) continue;
      if (lo + hi >= xs[size_t(d)]) c.unsupported("pads that crop an axis away (an empty result)");
      st.push_back(lo), en.push_back(xs[size_t(d)] - hi), ax.push_back(d), sp.push_back(1);
    }
    x = sliceOp(c, x, st, en, ax, sp, "cropped");
    for (int64_t& p : pads) p = std::max<int64_t>(0, p);
  }
  bool any = false;
  for (int64_t d = 0; d < rank; ++d) {
    any |= pads[size_t(d)] > 0 || pads[size_t(d + rank)] > 0;
    if (mode == "reflect" && (pads[size_t(d)] >= xs[size_t(d)] || pads[size_t(d + rank)] >= xs[size_t(d)]))
      c.unsupported("reflect padding as wide as the axis (shoal mirrors once, as PyTorch)");
  }
  if (!any) return c.setOutput(0, x);
  Attrs a;
  a.set("pads", pads);
  a.set("mode", mode);
  a.set("value", value);
  c.setOutput(0, c.emit(OpKind::Pad, {x}, a));
}

Shape expandShape(NodeContext& c) {
  auto shape = c.constantInts(1, "the target shape");
  for (int64_t d : shape)
    if (d <= 0) c.unsupported(fmt::format("expanding to the shape {} (an empty tensor)", shapeString(shape)));
  auto out = broadcastShapes(c.shape(0), shape);
  if (!out) c.invalid(fmt::format("{} does not broadcast to {}", c.type(0).str(), shapeString(shape)));
  return *out;
}

void lowerExpandOp(NodeContext& c) {
  const Shape out = expandShape(c);
  if (out == c.shape(0)) return c.setOutput(0, c.value(0));
  Attrs a;
  a.set("shape", out);
  c.setOutput(0, c.emit(OpKind::Expand, {c.value(0)}, a));
}

void lowerSplit(NodeContext& c) {
  const Shape& xs = c.shape(0);
  int64_t axis = c.axis(c.attrInt("axis", 0), int64_t(xs.size()));
  int64_t n = xs[size_t(axis)];
  std::vector<int64_t> sizes;
  if (c.opset() >= 13) {
    if (c.has(1)) sizes = c.constantInts(1, "the split sizes");
  } else {
    sizes = c.attrInts("split", std::vector<int64_t>{});
    if (sizes.empty() && c.has(1)) sizes = c.constantInts(1, "the split sizes");
  }
  size_t parts = c.numOutputs();
  if (c.opset() >= 18 && c.hasAttr("num_outputs")) {
    // num_outputs parts of ceil(n / num_outputs), the last one shorter.
    int64_t k = c.attrInt("num_outputs");
    if (k < 1 || size_t(k) != parts)
      c.invalid(fmt::format("num_outputs is {}, the node has {} outputs", k, parts));
    if (!sizes.empty()) c.invalid("both the split input and num_outputs");
    int64_t chunk = (n + k - 1) / k;
    for (int64_t i = 0; i < k; ++i) sizes.push_back(std::min(chunk, n - i * chunk));
  }
  if (sizes.empty()) {
    if (parts == 0 || n % int64_t(parts) != 0)
      c.invalid(fmt::format("extent {} does not split into {} equal parts", n, parts));
    sizes.assign(parts, n / int64_t(parts));
  }
  if (sizes.size() != parts) c.invalid(fmt::format("{} split sizes for {} outputs", sizes.size(), parts));
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) c.invalid("a negative split size");
    if (s == 0) c.unsupported("an empty split part");
    total += s;
  }
  if (total != n) c.invalid(fmt::format("split sizes add up to {}, the axis has {}", total, n));
  int64_t off = 0;
  for (size_t i = 0; i < parts; ++i) {
    if (sizes[i] == n) {
      c.setOutput(i, c.value(0));
    } else {
      c.setOutput(i, sliceOp(c, c.value(0), {off}, {off + sizes[i]}, {axis}, {1}, fmt::format("part{}", i)));
    }
    off += sizes[i];
  }
}

// Tile: each axis d of extent e repeated r times is a new axis of r in front of it, expanded,
// then merged: [.., r, e, ..] -> [.., r·e, ..].
void lowerTile(NodeContext& c) {
  const Shape& xs = c.shape(0);
  auto reps = c.constantInts(1, "the repeats");
  if (reps.size() != xs.size()) c.invalid(fmt::format("{} repeats for rank {}", reps.size(), xs.size()));
  bool any = false;
  for (int64_t r : reps) {
    if (r < 0) c.invalid("a negative repeat");
    if (r == 0) c.unsupported("a repeat of 0 (an empty tensor)");
    any |= r != 1;
  }
  if (!any) return c.setOutput(0, c.value(0));
  Shape inter, expanded, out;
  for (size_t d = 0; d < xs.size(); ++d) {
    inter.push_back(1), inter.push_back(xs[d]);
    expanded.push_back(reps[d]), expanded.push_back(xs[d]);
    out.push_back(reps[d] * xs[d]);
  }
  Value* x = c.reshape(c.value(0), inter, "interleaved");
  Attrs a;
  a.set("shape", expanded);
  c.setOutput(0, c.reshape(c.emit(OpKind::Expand, {x}, a, "repeated"), out, "tiled"));
}

// DepthToSpace (DCR or CRD) and SpaceToDepth: a reshape, a 6-D transpose, a reshape.
void lowerDepthToSpace(NodeContext& c) {
  const Shape& xs = c.shape(0);
  if (xs.size() != 4) c.invalid(fmt::format("input must be 4-D, got {}", c.type(0).str()));
  int64_t b = c.attrInt("blocksize");
  if (b <= 0) c.invalid("blocksize must be positive");
  int64_t n = xs[0], ch = xs[1], h = xs[2], w = xs[3];
  Value* x = c.value(0);
  if (c.opType() == "SpaceToDepth") {
    if (h % b || w % b) c.invalid(fmt::format("{} is not divisible by the block size {}", c.type(0).str(), b));
    Value* v = c.reshape(x, {n, ch, h / b, b, w / b, b}, "blocks");
    Value* t = transposeOp(c, v, {0, 3, 5, 1, 2, 4}, "moved");
    return c.setOutput(0, c.reshape(t, {n, ch * b * b, h / b, w / b}, "out"));
  }
  if (ch % (b * b)) c.invalid(fmt::format("{} channels do not divide by blocksize² {}", ch, b * b));
  std::string mode = c.opset() >= 11 ? c.attrString("mode", "DCR") : "DCR";
  Value* v;
  Value* t;
  if (mode == "DCR") {
    v = c.reshape(x, {n, b, b, ch / (b * b), h, w}, "blocks");
    t = transposeOp(c, v, {0, 3, 4, 1, 5, 2}, "moved");
  } else if (mode == "CRD") {
    v = c.reshape(x, {n, ch / (b * b), b, b, h, w}, "blocks");
    t = transposeOp(c, v, {0, 1, 4, 2, 5, 3}, "moved");
  } else {
    c.invalid(fmt::format("unknown mode '{}'", mode));
  }
  c.setOutput(0, c.reshape(t, {n, ch / (b * b), h * b, w * b}, "out"));
}

// Trilu: where(mask, x, 0), the mask over the last two axes known at import.
void lowerTrilu(NodeContext& c) {
  const Shape& xs = c.shape(0);
  if (xs.size() < 2) c.invalid(fmt::format("input must have rank >= 2, got {}", c.type(0).str()));
  bool upper = c.attrInt("upper", 1) != 0;
  int64_t k = 0;
  if (c.has(1)) {
    auto kv = c.constantInts(1, "k");
    if (kv.size() != 1) c.invalid("k must be a scalar");
    k = kv[0];
  }
  if (numElements(xs) == 0) c.unsupported("an empty input");
  int64_t m = xs[xs.size() - 2], n = xs.back();
  Tensor mask(DType::Bool, {m, n});
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) mask.set(i * n + j, (upper ? j - i >= k : j - i <= k) ? 1.0 : 0.0);
  c.setOutput(0, c.emit(OpKind::Where, {c.constantValue(mask, "mask"), c.value(0), c.scalar(0, c.dtype(0), "zero")}));
}

// OneHot: where(index == iota, on, off), the iota along `axis` known at import; negative
// indices count from the back (ONNX), others out of range give a row of `off`.
void lowerOneHot(NodeContext& c) {
  const Shape& is = c.shape(0);
  int64_t rank = int64_t(is.size()) + 1;
  auto depthV = c.constantFloats(1, "the depth");
  if (depthV.size() != 1) c.invalid("depth must be a scalar");
  int64_t depth = int64_t(depthV[0]);
  if (depth <= 0) c.unsupported(fmt::format("depth {} (an empty result)", depth));
  int64_t axis = c.attrInt("axis", -1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) c.invalid(fmt::format("axis {} is out of range for a rank-{} result", axis, rank));
  if (numElements(c.shape(2)) != 2) c.invalid("values must hold [off, on]");
  if (c.dtype(0) == DType::Bool) c.invalid("indices must be numbers");
  Value* idx = c.value(0);
  if (c.dtype(0) != DType::I64) {
    // ONNX casts the indices to int64 (truncating floats).
    Attrs a;
    a.set("dtype", std::string("i64"));
    idx = c.emit(OpKind::Cast, {idx}, a, "idx64");
  }
  Value* zero = c.scalar(0, DType::I64, "zero");
  idx = c.emit(OpKind::Where,
               {c.emit(OpKind::Less, {idx, zero}, {}, "negative"),
                c.emit(OpKind::Add, {idx, c.scalar(double(depth), DType::I64, "depth")}, {}, "from_back"), idx},
               {}, "wrapped");
  Shape us = is;
  us.insert(us.begin() + axis, 1);
  Value* col = c.reshape(idx, us, "unsqueezed");
  Shape iotaShape(size_t(rank), 1);
  iotaShape[size_t(axis)] = depth;
  Tensor iota(DType::I64, iotaShape);
  for (int64_t j = 0; j < depth; ++j) iota.data<int64_t>()[j] = j;
  Value* hot = c.emit(OpKind::Equal, {col, c.constantValue(iota, "iota")}, {}, "hot");
  Value* off;
  Value* on;
  if (const Tensor* v = c.known(2)) {
    off = c.scalar(v->at(0), v->dtype(), "off");
    on = c.scalar(v->at(1), v->dtype(), "on");
  } else {
    Value* vals = c.reshape(c.value(2), {2}, "values");
    off = c.reshape(sliceOp(c, vals, {0}, {1}, {0}, {1}, "off_slice"), {}, "off");
    on = c.reshape(sliceOp(c, vals, {1}, {2}, {0}, {1}, "on_slice"), {}, "on");
  }
  c.setOutput(0, c.emit(OpKind::Where, {hot, on, off}));
}

// MatMul whose operands have leading (batch) axes on the right: shoal's batch_matmul, which
// broadcasts them; rank-1 operands as NumPy (a row, a column; their extent dropped).
void lowerBatchedMatMul(NodeContext& c) {
  c.requireFloat(0);
  if (c.dtype(1) != c.dtype(0))
    c.invalid(fmt::format("operand types differ: {} and {}", c.type(0).str(), c.type(1).str()));
  Shape a = c.shape(0), b = c.shape(1);
  Value* av = c.value(0);
  Value* bv = c.value(1);
  bool aVec = a.size() == 1, bVec = b.size() == 1;
  if (aVec) av = c.reshape(av, {1, a[0]}, "a2d"), a = {1, a[0]};
  if (bVec) bv = c.reshape(bv, {b[0], 1}, "b2d"), b = {b[0], 1};
  Value* y = c.emit(OpKind::BatchMatMul, {av, bv});
  Shape out = y->type().shape;
  if (aVec) out.erase(out.end() - 2);
  if (bVec) out.pop_back();
  c.setOutput(0, c.reshape(y, out, "out"));
}

// ---- Einsum -------------------------------------------------------------------------------------

namespace {

// One operand of an einsum: its index letters, one per axis, and its value.
struct EinsumTerm {
  std::string letters;
  Value* value = nullptr;
};

// x summed over the letters `drop` (reduce_sum), keeping the others in order.
EinsumTerm sumOut(NodeContext& c, EinsumTerm t, const std::string& drop, const std::string& suffix) {
  std::vector<int64_t> axes;
  std::string kept;
  for (size_t i = 0; i < t.letters.size(); ++i)
    (drop.find(t.letters[i]) != std::string::npos ? axes.push_back(int64_t(i)) : void(kept += t.letters[i]));
  if (axes.empty()) return t;
  Attrs a;
  a.set("axes", axes);
  a.set("keepdim", int64_t(0));
  return {kept, c.emit(OpKind::ReduceSum, {t.value}, a, suffix)};
}

// x with its axes in the order of `order` (a permutation of its letters).
Value* permuteTo(NodeContext& c, const EinsumTerm& t, const std::string& order, const std::string& suffix) {
  std::vector<int64_t> perm;
  for (char l : order) perm.push_back(int64_t(t.letters.find(l)));
  bool identity = true;
  for (size_t i = 0; i < perm.size(); ++i) identity &= perm[i] == int64_t(i);
  return identity ? t.value : transposeOp(c, t.value, perm, suffix);
}

int64_t extentsOf(const std::map<char, int64_t>& extent, const std::string& letters) {
  int64_t n = 1;
  for (char l : letters) n *= extent.at(l);
  return n;
}

}  // namespace

// Einsum of one or two operands with explicit index letters: letters summed away are
// reduced, then the two operands are laid out as [batch, free, contracted] and [batch,
// contracted, free] and multiplied by one batch_matmul; the result is permuted to the output's
// order. An implicit output (no "->") is the letters that occur once, sorted, as ONNX says.
// Ellipses, repeated letters in one operand (diagonals) and more than two operands are
// unsupported by name.
void lowerEinsum(NodeContext& c) {
  std::string eq;
  for (char ch : c.attrString("equation"))
    if (ch != ' ') eq += ch;
  if (eq.find("...") != std::string::npos) c.unsupported("an ellipsis (...) in the equation");
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> inputs;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    inputs.push_back(lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (inputs.size() != c.numInputs())
    c.invalid(fmt::format("equation '{}' names {} operands, the node has {}", eq, inputs.size(), c.numInputs()));
  if (inputs.size() > 2) c.unsupported(fmt::format("einsum of {} operands", inputs.size()));
  std::map<char, int64_t> extent, count;
  std::vector<EinsumTerm> terms;
  for (size_t i = 0; i < inputs.size(); ++i) {
    c.requireFloat(i);
    const std::string& letters = inputs[i];
    if (int64_t(letters.size()) != c.rank(i))
      c.invalid(fmt::format("operand {} has rank {}, the equation gives it '{}'", i, c.rank(i), letters));
    for (size_t d = 0; d < letters.size(); ++d) {
      const char l = letters[d];
      if (!std::isalpha(static_cast<unsigned char>(l))) c.invalid(fmt::format("equation '{}': '{}' is not a letter", eq, l));
      if (letters.find(l) != d) c.unsupported(fmt::format("index '{}' repeated in operand {} (a diagonal)", l, i));
      auto [it, fresh] = extent.emplace(l, c.shape(i)[d]);
      if (!fresh && it->second != c.shape(i)[d])
        c.unsupported(fmt::format("index '{}' has extents {} and {} (broadcast indices)", l, it->second, c.shape(i)[d]));
      ++count[l];
    }
    terms.push_back({letters, c.value(i)});
  }
  if (inputs.size() == 2 && c.dtype(0) != c.dtype(1))
    c.invalid(fmt::format("operand types differ: {} and {}", c.type(0).str(), c.type(1).str()));
  std::string out;
  if (arrow != std::string::npos) {
    out = eq.substr(arrow + 2);
    for (size_t d = 0; d < out.size(); ++d)
      if (!extent.count(out[d]) || out.find(out[d]) != d)
        c.invalid(fmt::format("equation '{}': output index '{}' is not an operand's, or repeats", eq, out[d]));
  } else {
    for (auto [l, n] : count)
      if (n == 1) out += l;  // std::map: sorted
  }
  auto inOut = [&](char l) { return out.find(l) != std::string::npos; };
  auto inTerm = [&](size_t i, char l) { return i < terms.size() && terms[i].letters.find(l) != std::string::npos; };
  // Letters only one operand has and the output lacks are summed away first.
  for (size_t i = 0; i < terms.size(); ++i) {
    std::string drop;
    for (char l : terms[i].letters)
      if (!inOut(l) && !inTerm(1 - i, l)) drop += l;
    terms[i] = sumOut(c, terms[i], drop, fmt::format("sum{}", i));
  }
  if (terms.size() == 1) return c.setOutput(0, permuteTo(c, terms[0], out, "out"));
  std::string batch, contracted, freeA, freeB;
  for (char l : terms[0].letters)
    (inTerm(1, l) ? (inOut(l) ? batch : contracted) : freeA) += l;
  for (char l : terms[1].letters)
    if (!inTerm(0, l)) freeB += l;
  const int64_t nb = extentsOf(extent, batch), nk = extentsOf(extent, contracted);
  const int64_t nfa = extentsOf(extent, freeA), nfb = extentsOf(extent, freeB);
  Value* a = c.reshape(permuteTo(c, terms[0], batch + freeA + contracted, "a_order"), {nb, nfa, nk}, "a3d");
  Value* b = c.reshape(permuteTo(c, terms[1], batch + contracted + freeB, "b_order"), {nb, nk, nfb}, "b3d");
  Value* y = c.emit(OpKind::BatchMatMul, {a, b}, {}, "product");
  Shape full;
  for (char l : batch + freeA + freeB) full.push_back(extent.at(l));
  EinsumTerm result{batch + freeA + freeB, c.reshape(y, full, "unflat")};
  c.setOutput(0, permuteTo(c, result, out, "out"));
}

}  // namespace shoal::onnx_import

// ---- Resize and Upsample ---------------------------------------------------------------------

namespace shoal::onnx_import {

namespace {

// One axis of a resize as ONNX's reference computes it (onnx/backend/test/case/node/resize.py,
// interpolate_1d_with_x): for each output coordinate, the input indices of its taps (edge
// clamped) and their weights, or "extrapolate" (tf_crop_and_resize outside the box).
struct AxisTaps {
  int64_t taps = 0;
  std::vector<std::vector<int64_t>> index;  // [tap][output]
  std::vector<std::vector<double>> weight;  // [tap][output]
  std::vector<bool> extrapolate;            // [output]
  bool anyExtrapolated = false;
};

struct ResizeMode {
  std::string mode = "nearest";  // nearest | linear | cubic
  std::string transform = "half_pixel";
  std::string nearest = "round_prefer_floor";
  double cubicA = -0.75;
  bool excludeOutside = false;
  bool antialias = false;  // opset 18: linear and cubic filters widened by 1/scale when downsampling
};

// The cubic convolution kernel with parameter a at distance x.
double cubicKernel(double a, double x) {
  x = std::fabs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

// Antialiased taps (ONNX's reference): the filter stretched by 1/scale (scale ≤ 1), sampled at
// the taps around the coordinate, normalised to sum 1.
std::vector<double> antialiasCoeffs(const ResizeMode& m, double ratio, double scale) {
  scale = std::min(scale, 1.0);
  bool cubic = m.mode == "cubic";
  double support = cubic ? 2.0 : 1.0;
  int64_t start = int64_t(std::floor(-support / scale)) + 1, end = 2 - start;  // taps start..end-1
  std::vector<double> w;
  double sum = 0;
  for (int64_t i = start; i < end; ++i) {
    double x = scale * (double(i) - ratio);
    double v = cubic ? cubicKernel(m.cubicA, x) : std::clamp(1 - std::fabs(x), 0.0, 1.0);
    w.push_back(v);
    sum += v;
  }
  for (double& v : w) v /= sum;
  return w;
}

std::vector<double> resizeCoeffs(const ResizeMode& m, double ratio, bool integral, double scale) {
  if (m.antialias) return antialiasCoeffs(m, ratio, scale);
  if (m.mode == "nearest") {
    if (integral) return {0, 1};
    if (m.nearest == "round_prefer_floor") return {double(ratio <= 0.5), double(ratio > 0.5)};
    if (m.nearest == "round_prefer_ceil") return {double(ratio < 0.5), double(ratio >= 0.5)};
    if (m.nearest == "floor") return {1, 0};
    return {0, 1};  // ceil
  }
  if (m.mode == "linear") return {1 - ratio, ratio};
  double a = m.cubicA, r = ratio, s = 1 - ratio;
  return {((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a, ((a + 2) * r - (a + 3)) * r * r + 1,
          ((a + 2) * s - (a + 3)) * s * s + 1, ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a};
}

AxisTaps axisTaps(const ResizeMode& m, int64_t in, int64_t out, double scale, double roiStart, double roiEnd) {
  AxisTaps t;
  t.taps = int64_t(resizeCoeffs(m, 0.5, false, scale).size());
  t.index.assign(size_t(t.taps), std::vector<int64_t>(size_t(out)));
  t.weight.assign(size_t(t.taps), std::vector<double>(size_t(out)));
  t.extrapolate.assign(size_t(out), false);
  double outWidth = scale * double(in);
  int64_t pad = (t.taps + 1) / 2, limit = in + 2 * pad;
  for (int64_t o = 0; o < out; ++o) {
    double x = double(o), xo;
    if (m.transform == "align_corners") {
      xo = outWidth == 1 ? 0.0 : x * double(in - 1) / (outWidth - 1);
    } else if (m.transform == "asymmetric") {
      xo = x / scale;
    } else if (m.transform == "tf_crop_and_resize") {
      xo = outWidth == 1 ? (roiEnd - roiStart) * double(in - 1) / 2
                         : x * (roiEnd - roiStart) * double(in - 1) / (outWidth - 1);
      xo += roiStart * double(in - 1);
      if (xo < 0 || xo > double(in - 1)) {
        t.extrapolate[size_t(o)] = t.anyExtrapolated = true;
        for (int64_t k = 0; k < t.taps; ++k) t.index[size_t(k)][size_t(o)] = 0, t.weight[size_t(k)][size_t(o)] = 0;
        continue;
      }
    } else if (m.transform == "pytorch_half_pixel") {
      xo = outWidth == 1 ? -0.5 : (x + 0.5) / scale - 0.5;
    } else if (m.transform == "tf_half_pixel_for_nn") {
      xo = (x + 0.5) / scale;
    } else if (m.transform == "half_pixel_symmetric") {
      // The centre of the input maps to the centre of the output (differs from half_pixel
      // when the output extent was rounded).
      double offset = double(in) / 2 * (1 - double(out) / outWidth);
      xo = offset + (x + 0.5) / scale - 0.5;
    } else {  // half_pixel
      xo = (x + 0.5) / scale - 0.5;
    }
    double fl = std::floor(xo);
    bool integral = xo == fl;
    double ratio = integral ? 1.0 : xo - fl;
    std::vector<double> coeffs = resizeCoeffs(m, ratio, integral, scale);
    // The `taps` indices of the edge-padded axis nearest to xo (ties to the smaller), sorted.
    double xp = xo + double(pad);
    int64_t centre = std::clamp<int64_t>(int64_t(std::floor(xp)), 0, limit - 1);
    std::vector<int64_t> cand;
    for (int64_t i = std::max<int64_t>(0, centre - t.taps - 1); i <= std::min(limit - 1, centre + t.taps + 1); ++i)
      cand.push_back(i);
    std::stable_sort(cand.begin(), cand.end(), [&](int64_t a, int64_t b) {
      double da = std::fabs(xp - double(a)), db = std::fabs(xp - double(b));
      return da != db ? da < db : a < b;
    });
    cand.resize(size_t(t.taps));
    std::sort(cand.begin(), cand.end());
    if (m.excludeOutside) {
      double sum = 0;
      for (int64_t k = 0; k < t.taps; ++k) {
        int64_t orig = cand[size_t(k)] - pad;
        if (orig < 0 || orig >= in) coeffs[size_t(k)] = 0;
        sum += coeffs[size_t(k)];
      }
      for (double& w : coeffs) w /= sum;
    }
    for (int64_t k = 0; k < t.taps; ++k) {
      t.index[size_t(k)][size_t(o)] = std::clamp<int64_t>(cand[size_t(k)] - pad, 0, in - 1);
      t.weight[size_t(k)][size_t(o)] = coeffs[size_t(k)];
    }
  }
  return t;
}

}  // namespace

// Resize (opsets 10-17) and Upsample: separable, axis by axis from the last, each output
// coordinate a weighted sum of gathered input rows (one gather for nearest), with ONNX's
// reference geometry and coefficients computed at import.
void lowerResize(NodeContext& c) {
  const Shape& xs = c.shape(0);
  int64_t rank = int64_t(xs.size());
  ResizeMode m;
  std::string keepAspect = "stretch";
  std::vector<int64_t> axes;  // opset 18: the axes scales, sizes and roi are given for
  m.mode = c.attrString("mode", "nearest");
  if (m.mode != "nearest" && m.mode != "linear" && m.mode != "cubic" && m.mode != "bilinear")
    c.invalid(fmt::format("unknown mode '{}'", m.mode));
  if (m.mode == "bilinear") m.mode = "linear";  // Upsample-7's spelling
  double extrapolation = 0;
  std::vector<double> scales, roi;
  std::vector<int64_t> sizes;
  bool modern = c.opType() == "Resize" && c.opset() >= 11;
  if (modern) {
    m.transform = c.attrString("coordinate_transformation_mode", "half_pixel");
    m.nearest = c.attrString("nearest_mode", "round_prefer_floor");
    m.cubicA = c.attrFloat("cubic_coeff_a", -0.75);
    m.excludeOutside = c.attrInt("exclude_outside", 0) != 0;
    extrapolation = c.attrFloat("extrapolation_value", 0.0);
    if (c.has(1) && numElements(c.shape(1)) > 0) roi = c.constantFloats(1, "roi");
    if (c.has(2) && numElements(c.shape(2)) > 0) scales = c.constantFloats(2, "scales");
    if (c.has(3) && numElements(c.shape(3)) > 0) sizes = c.constantInts(3, "sizes");
    if (c.opset() >= 18) {
      m.antialias = c.attrInt("antialias", 0) != 0;
      if (m.antialias && m.mode == "nearest") c.invalid("antialias needs mode linear or cubic");
      keepAspect = c.attrString("keep_aspect_ratio_policy", "stretch");
      if (keepAspect != "stretch" && keepAspect != "not_larger" && keepAspect != "not_smaller")
        c.invalid(fmt::format("unknown keep_aspect_ratio_policy '{}'", keepAspect));
      if (c.hasAttr("axes")) {
        axes = c.attrInts("axes");
        std::set<int64_t> seen;
        for (int64_t& a : axes) {
          a = c.axis(a, rank);
          if (!seen.insert(a).second) c.invalid(fmt::format("axis {} is repeated in axes", a));
        }
      }
    }
  } else {
    // Upsample and Resize-10: asymmetric coordinates, nearest rounds down.
    m.transform = "asymmetric";
    m.nearest = "floor";
    if (c.opType() == "Upsample" && c.opset() < 9)
      scales = c.attrFloats("scales");
    else
      scales = c.constantFloats(1, "scales");
  }
  static const std::set<std::string> transforms = {"half_pixel",         "pytorch_half_pixel", "align_corners",
                                                   "asymmetric",         "tf_crop_and_resize", "tf_half_pixel_for_nn",
                                                   "half_pixel_symmetric"};
  if (!transforms.count(m.transform)) c.unsupported(fmt::format("coordinate_transformation_mode '{}'", m.transform));
  if (m.mode == "cubic" && !modern) c.invalid("cubic needs opset 11");
  if (m.mode != "nearest" && !isFloat(c.dtype(0)))
    c.unsupported(fmt::format("{} resizing of {}", m.mode, c.type(0).str()));
  if (scales.empty() == sizes.empty()) c.invalid("needs exactly one of scales and sizes");
  if (!axes.empty()) {
    // Given for some axes only: the others keep their extent (scale 1, roi [0, 1]).
    size_t na = axes.size();
    if (!scales.empty() && scales.size() != na) c.invalid(fmt::format("{} scales for {} axes", scales.size(), na));
    if (!sizes.empty() && sizes.size() != na) c.invalid(fmt::format("{} sizes for {} axes", sizes.size(), na));
    if (!roi.empty() && roi.size() != 2 * na) c.invalid(fmt::format("{} roi values for {} axes", roi.size(), na));
    std::vector<double> fullScales(size_t(rank), 1.0), fullRoi(2 * size_t(rank), 0.0);
    std::vector<int64_t> fullSizes(xs.begin(), xs.end());
    for (size_t r = 0; r < size_t(rank); ++r) fullRoi[size_t(rank) + r] = 1.0;
    for (size_t i = 0; i < na; ++i) {
      size_t d = size_t(axes[i]);
      if (!scales.empty()) fullScales[d] = scales[i];
      if (!sizes.empty()) fullSizes[d] = sizes[i];
      if (!roi.empty()) fullRoi[d] = roi[i], fullRoi[size_t(rank) + d] = roi[na + i];
    }
    if (!scales.empty()) scales = fullScales;
    if (!sizes.empty()) sizes = fullSizes;
    if (!roi.empty()) roi = fullRoi;
  } else {
    for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
  }
  // keep_aspect_ratio_policy (with sizes): one scale for every resized axis, the smallest
  // (not_larger) or largest (not_smaller) of sizes / extent; extents rounded half up.
  std::vector<double> sizeScales;
  if (!sizes.empty() && int64_t(sizes.size()) == rank && keepAspect != "stretch") {
    double common = keepAspect == "not_larger" ? std::numeric_limits<double>::infinity() : 0.0;
    for (int64_t a : axes) {
      double r = double(sizes[size_t(a)]) / double(xs[size_t(a)]);
      common = keepAspect == "not_larger" ? std::min(common, r) : std::max(common, r);
    }
    sizeScales.assign(size_t(rank), 1.0);
    for (int64_t a : axes) {
      sizeScales[size_t(a)] = common;
      sizes[size_t(a)] = int64_t(common * double(xs[size_t(a)]) + 0.5);
    }
  }
  if (!scales.empty() && int64_t(scales.size()) != rank)
    c.invalid(fmt::format("{} scales for rank {}", scales.size(), rank));
  if (!sizes.empty() && int64_t(sizes.size()) != rank)
    c.invalid(fmt::format("{} sizes for rank {}", sizes.size(), rank));
  if (m.transform == "tf_crop_and_resize" && int64_t(roi.size()) != 2 * rank)
    c.invalid("tf_crop_and_resize needs a roi of 2·rank values");
  Value* y = c.value(0);
  DType dt = c.dtype(0);
  for (int64_t d = rank - 1; d >= 0; --d) {
    int64_t in = xs[size_t(d)], out;
    double scale;
    if (!sizes.empty()) {
      out = sizes[size_t(d)];
      scale = sizeScales.empty() ? double(out) / double(in) : sizeScales[size_t(d)];
    } else {
      scale = scales[size_t(d)];
      if (!(scale > 0)) c.invalid(fmt::format("scale {} is not positive", scale));
      out = int64_t(std::floor(double(in) * scale));
    }
    if (out <= 0) c.unsupported(fmt::format("an empty output along axis {}", d));
    if (out > (int64_t(1) << 24)) c.unsupported(fmt::format("an output extent {} (too large)", out));
    bool crop = m.transform == "tf_crop_and_resize";
    if (out == in && !crop && scale == 1.0) continue;  // the identity on this axis
    AxisTaps t = axisTaps(m, in, out, scale, crop ? roi[size_t(d)] : 0, crop ? roi[size_t(d + rank)] : 1);
    if (m.mode == "nearest") {
      // One gather of the chosen input element (no multiply by 0, which would turn an
      // infinity in the other tap into NaN).
      for (int64_t o = 0; o < out; ++o)
        if (t.weight[1][size_t(o)] > t.weight[0][size_t(o)]) t.index[0][size_t(o)] = t.index[1][size_t(o)];
      for (int64_t o = 0; o < out; ++o) t.weight[0][size_t(o)] = t.extrapolate[size_t(o)] ? 0.0 : 1.0;
      t.taps = 1;
    }
    Shape along(size_t(rank), 1);
    along[size_t(d)] = out;
    Attrs g;
    g.set("axis", d);
    Value* acc = nullptr;
    std::string ax = fmt::format("axis{}", d);
    for (int64_t k = 0; k < t.taps; ++k) {
      bool used = false, unit = true;
      for (int64_t o = 0; o < out; ++o) {
        double w = t.weight[size_t(k)][size_t(o)];
        used |= w != 0;
        unit &= w == 1.0 || t.extrapolate[size_t(o)];
      }
      if (!used) continue;
      Value* gathered =
          c.emit(OpKind::Gather, {y, c.constantValue(fold::ints(t.index[size_t(k)]), fmt::format("{}_index{}", ax, k))},
                 g, fmt::format("{}_tap{}", ax, k));
      Value* term = gathered;
      if (m.mode != "nearest" || !unit) {
        Tensor w(dt, along);
        for (int64_t o = 0; o < out; ++o) w.set(o, t.weight[size_t(k)][size_t(o)]);
        term = c.emit(OpKind::Mul, {gathered, c.constantValue(w, fmt::format("{}_weight{}", ax, k))}, {},
                      fmt::format("{}_term{}", ax, k));
      }
      acc = acc ? c.emit(OpKind::Add, {acc, term}, {}, fmt::format("{}_sum{}", ax, k)) : term;
    }
    if (!acc)
      acc = c.constantValue(Tensor(dt,
                                   [&] {
                                     Shape s = y->type().shape;
                                     s[size_t(d)] = out;
                                     return s;
                                   }()),
                            ax + "_zeros");
    if (t.anyExtrapolated) {
      Tensor mask(DType::Bool, along);
      for (int64_t o = 0; o < out; ++o) mask.set(o, t.extrapolate[size_t(o)] ? 1.0 : 0.0);
      acc = c.emit(OpKind::Where,
                   {c.constantValue(mask, ax + "_outside"), c.scalar(extrapolation, dt, ax + "_extrapolation"), acc},
                   {}, ax + "_cropped");
    }
    y = acc;
  }
  c.setOutput(0, y);
}

}  // namespace shoal::onnx_import

// ---- sequences (lists known at import) -----------------------------------------------------

namespace shoal::onnx_import {

namespace {

// A position input (a scalar known at import: a constant or a fed input), in [-n, n + extra).
int64_t sequencePosition(NodeContext& c, size_t i, int64_t n, int64_t extra) {
  auto v = c.constantInts(i, "the position");
  if (v.size() != 1) c.invalid("the position must be a scalar");
  int64_t p = v[0];
  if (p < -n || p >= n + extra) c.invalid(fmt::format("position {} is out of range for a sequence of {}", p, n));
  return p < 0 ? p + n : p;
}

}  // namespace

void lowerSequence(NodeContext& c) {
  const std::string& op = c.opType();
  if (op == "SequenceEmpty") {
    c.attrInt("dtype", onnx::TensorProto::FLOAT);
    return c.setSequenceOutput(0, {});
  }
  if (op == "SequenceConstruct") {
    std::vector<Value*> els;
    for (size_t i = 0; i < c.numInputs(); ++i) els.push_back(c.value(i));
    return c.setSequenceOutput(0, std::move(els));
  }
  if (op == "SplitToSequence") {
    const Shape& xs = c.shape(0);
    int64_t axis = c.axis(c.attrInt("axis", 0), int64_t(xs.size()));
    bool keep = c.attrInt("keepdims", 1) != 0;
    int64_t n = xs[size_t(axis)];
    std::vector<int64_t> sizes;
    if (c.has(1)) {
      const Tensor& t = c.constant(1, "the split");
      auto v = c.constantInts(1, "the split");
      if (t.shape().empty()) {
        if (v[0] <= 0) c.invalid("the split size must be positive");
        for (int64_t off = 0; off < n; off += v[0]) sizes.push_back(std::min(v[0], n - off));
      } else {
        sizes = v;
      }
    } else {
      sizes.assign(size_t(n), 1);
    }
    std::vector<Value*> els;
    int64_t off = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (sizes[i] <= 0) c.unsupported("an empty split part");
      if (off + sizes[i] > n) c.invalid("the split sizes exceed the axis");
      Value* part = sliceOp(c, c.value(0), {off}, {off + sizes[i]}, {axis}, {1}, fmt::format("part{}", i));
      if (!c.has(1) && !keep) {
        Shape s = part->type().shape;
        s.erase(s.begin() + axis);
        part = c.reshape(part, s, fmt::format("part{}_squeezed", i));
      }
      els.push_back(part);
      off += sizes[i];
    }
    if (off != n) c.invalid("the split sizes do not add up to the axis");
    return c.setSequenceOutput(0, std::move(els));
  }
  std::vector<Value*> seq = c.sequence(0);
  int64_t n = int64_t(seq.size());
  if (op == "SequenceLength") {
    Tensor t(DType::I64, {});
    t.data<int64_t>()[0] = n;
    return c.setKnownOutput(0, t);
  }
  if (op == "SequenceAt") return c.setOutput(0, seq[size_t(sequencePosition(c, 1, n, 0))]);
  if (op == "SequenceInsert") {
    int64_t p = c.has(2) ? sequencePosition(c, 2, n, 1) : n;
    seq.insert(seq.begin() + p, c.value(1));
    return c.setSequenceOutput(0, std::move(seq));
  }
  if (op == "SequenceErase") {
    if (n == 0) c.invalid("erasing from an empty sequence");
    int64_t p = c.has(1) ? sequencePosition(c, 1, n, 0) : n - 1;
    seq.erase(seq.begin() + p);
    return c.setSequenceOutput(0, std::move(seq));
  }
  // ConcatFromSequence
  if (seq.empty()) c.invalid("concatenating an empty sequence");
  bool newAxis = c.attrInt("new_axis", 0) != 0;
  int64_t rank = seq[0]->type().rank() + (newAxis ? 1 : 0);
  int64_t axis = c.axis(c.attrInt("axis"), rank);
  std::vector<Value*> parts;
  for (size_t i = 0; i < seq.size(); ++i) {
    Value* v = seq[i];
    if (newAxis) {
      Shape s = v->type().shape;
      s.insert(s.begin() + axis, 1);
      v = c.reshape(v, s, fmt::format("element{}", i));
    }
    parts.push_back(v);
  }
  c.setOutput(0, concatMany(c, parts, axis, ""));
}

}  // namespace shoal::onnx_import

namespace shoal::onnx_import {

// Compress with a condition known at import (a constant, or an input a run feeds): a gather of
// the positions where it holds (of the flattened input when there is no axis).
void lowerCompress(NodeContext& c) {
  const Tensor& cond = c.constant(1, "the condition");
  if (cond.shape().size() != 1) c.invalid("the condition must be 1-D");
  Value* x = c.value(0);
  int64_t axis = 0;
  if (c.hasAttr("axis")) {
    axis = c.axis(c.attrInt("axis"), c.rank(0));
  } else {
    x = c.reshape(x, {numElements(c.shape(0))}, "flat");
  }
  int64_t n = x->type().shape[size_t(axis)];
  if (cond.numElements() > n)
    c.invalid(fmt::format("the condition has {} elements, the axis {}", cond.numElements(), n));
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < cond.numElements(); ++i)
    if (cond.at(i) != 0) keep.push_back(i);
  if (keep.empty()) c.unsupported("a condition that selects nothing (an empty result)");
  Attrs a;
  a.set("axis", axis);
  c.setOutput(0, c.emit(OpKind::Gather, {x, c.constantValue(fold::ints(keep), "kept")}, a));
}

}  // namespace shoal::onnx_import
