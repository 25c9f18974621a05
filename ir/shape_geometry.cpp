// Index geometry of the shape family's ops: one place that says which element goes where.
#include "ir/shape_geometry.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <limits>
#include <optional>

namespace shoal::geometry {

namespace {

// "[2,3]": shapes in messages, as the IR writes them (f32[2,3]).
std::string bracket(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ",")); }

}  // namespace

Expected<int64_t> normalizeAxis(int64_t axis, int64_t rank, const std::string& what) {
  if (axis < -rank || axis >= rank)
    return fail(fmt::format("{} {} is out of range for rank {} (valid: {} to {})", what, axis, rank, -rank, rank - 1));
  return axis < 0 ? axis + rank : axis;
}

std::vector<int64_t> stridesOf(const Shape& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) s[d - 1] = s[d] * shape[d];
  return s;
}

Expected<std::vector<SliceAxis>> sliceAxes(const Shape& shape, const Attrs& attrs) {
  const std::vector<int64_t>& starts = attrs.getInts("starts");
  const std::vector<int64_t>& ends = attrs.getInts("ends");
  std::vector<int64_t> axes = attrs.has("axes") ? attrs.getInts("axes") : std::vector<int64_t>{};
  std::vector<int64_t> steps = attrs.has("steps") ? attrs.getInts("steps") : std::vector<int64_t>{};
  const int64_t rank = int64_t(shape.size());
  if (starts.empty()) return fail("starts must name at least one index");
  if (ends.size() != starts.size())
    return fail(fmt::format("starts and ends have different lengths ({} and {})", starts.size(), ends.size()));
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(int64_t(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (axes.size() != starts.size())
    return fail(fmt::format("starts and axes have different lengths ({} and {})", starts.size(), axes.size()));
  if (steps.size() != starts.size())
    return fail(fmt::format("starts and steps have different lengths ({} and {})", starts.size(), steps.size()));
  std::vector<SliceAxis> out(static_cast<size_t>(rank));
  std::vector<bool> named(size_t(rank), false);
  for (int64_t d = 0; d < rank; ++d) out[size_t(d)] = {0, 1, shape[size_t(d)]};
  for (size_t i = 0; i < starts.size(); ++i) {
    auto axis = normalizeAxis(axes[i], rank);
    if (!axis) return Unexpected(axis.error());
    if (named[size_t(*axis)]) return fail(fmt::format("axis {} is sliced twice", axes[i]));
    named[size_t(*axis)] = true;
    const int64_t step = steps[i];
    if (step == 0) return fail(fmt::format("the step of axis {} is 0", axes[i]));
    const int64_t dim = shape[size_t(*axis)];
    // numpy/ONNX: negative indices count from the back; then clamp to what the step can reach.
    auto resolve = [&](int64_t v) {
      if (v < 0) v = v < std::numeric_limits<int64_t>::min() + dim ? std::numeric_limits<int64_t>::min() : v + dim;
      return v;
    };
    int64_t start = resolve(starts[i]), end = resolve(ends[i]);
    int64_t count;
    if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
      count = end > start ? (end - start + step - 1) / step : 0;
    } else {
      start = std::clamp<int64_t>(start, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
      count = start > end ? (start - end + (-step) - 1) / (-step) : 0;
    }
    if (count <= 0)
      return fail(fmt::format("the slice of axis {} is empty (start {}, end {}, step {} over extent {})", axes[i],
                              starts[i], ends[i], step, dim));
    out[size_t(*axis)] = {start, step, count};
  }
  return out;
}

Shape sliceShape(const std::vector<SliceAxis>& axes) {
  Shape s;
  for (const SliceAxis& a : axes) s.push_back(a.count);
  return s;
}

StridedView sliceView(const Shape& input, const std::vector<SliceAxis>& axes) {
  std::vector<int64_t> in = stridesOf(input);
  StridedView v;
  for (size_t d = 0; d < axes.size(); ++d) {
    v.shape.push_back(axes[d].count);
    v.strides.push_back(axes[d].step * in[d]);
    v.offset += axes[d].start * in[d];
  }
  return v;
}

Expected<std::vector<int64_t>> permutation(const std::vector<int64_t>& perm, int64_t rank) {
  if (perm.empty()) {
    std::vector<int64_t> reversed;
    for (int64_t d = rank; d-- > 0;) reversed.push_back(d);
    return reversed;
  }
  if (int64_t(perm.size()) != rank)
    return fail(fmt::format("perm has {} axes, the input has rank {}", perm.size(), rank));
  std::vector<int64_t> out;
  std::vector<bool> seen(size_t(rank), false);
  for (int64_t p : perm) {
    auto axis = normalizeAxis(p, rank, "perm axis");
    if (!axis) return Unexpected(axis.error());
    if (seen[size_t(*axis)]) return fail(fmt::format("perm names axis {} twice", p));
    seen[size_t(*axis)] = true;
    out.push_back(*axis);
  }
  return out;
}

StridedView transposeView(const Shape& input, const std::vector<int64_t>& perm) {
  std::vector<int64_t> in = stridesOf(input);
  StridedView v;
  for (int64_t p : perm) {
    v.shape.push_back(input[size_t(p)]);
    v.strides.push_back(in[size_t(p)]);
  }
  return v;
}

std::vector<int64_t> inversePermutation(const std::vector<int64_t>& perm) {
  std::vector<int64_t> inv(perm.size());
  for (size_t d = 0; d < perm.size(); ++d) inv[size_t(perm[d])] = int64_t(d);
  return inv;
}

Expected<PadSpec> padSpec(const Shape& shape, const Attrs& attrs) {
  PadSpec p;
  const std::string& mode = attrs.getString("mode");
  if (mode == "constant") p.mode = PadModeKind::Constant;
  else if (mode == "reflect") p.mode = PadModeKind::Reflect;
  else if (mode == "edge") p.mode = PadModeKind::Edge;
  else return fail(fmt::format("mode must be constant, reflect or edge, got '{}'", mode));
  p.value = attrs.getFloat("value", 0.0);
  const std::vector<int64_t>& pads = attrs.getInts("pads");
  const size_t rank = shape.size();
  if (pads.size() != 2 * rank)
    return fail(fmt::format("pads needs {} values (before for each axis, then after for each axis), got {}", 2 * rank,
                            pads.size()));
  p.before.assign(pads.begin(), pads.begin() + ptrdiff_t(rank));
  p.after.assign(pads.begin() + ptrdiff_t(rank), pads.end());
  for (size_t d = 0; d < rank; ++d) {
    if (p.before[d] < 0 || p.after[d] < 0)
      return fail(fmt::format("pads of axis {} are negative ({}, {})", d, p.before[d], p.after[d]));
    if (p.mode == PadModeKind::Reflect && (p.before[d] >= shape[d] || p.after[d] >= shape[d]))
      return fail(fmt::format("reflect pads of axis {} ({}, {}) must be smaller than its extent {}", d, p.before[d],
                              p.after[d], shape[d]));
  }
  return p;
}

Shape paddedShape(const Shape& shape, const PadSpec& pad) {
  Shape out = shape;
  for (size_t d = 0; d < shape.size(); ++d) out[d] += pad.before[d] + pad.after[d];
  return out;
}

int64_t padSource(int64_t o, int64_t extent, int64_t before, PadModeKind mode) {
  int64_t i = o - before;
  if (i >= 0 && i < extent) return i;
  switch (mode) {
    case PadModeKind::Constant: return -1;
    case PadModeKind::Edge: return i < 0 ? 0 : extent - 1;
    case PadModeKind::Reflect: return i < 0 ? -i : 2 * (extent - 1) - i;
  }
  return -1;
}

Expected<Shape> expandShape(const Shape& input, const Shape& target) {
  if (target.size() < input.size())
    return fail(fmt::format("cannot expand {} to {}, of lower rank", bracket(input), bracket(target)));
  Shape out(target.size());
  const size_t lead = target.size() - input.size();
  for (size_t d = 0; d < target.size(); ++d) {
    const int64_t want = target[d];
    if (d < lead) {
      if (want <= 0) return fail(fmt::format("new leading extent {} must be positive", want));
      out[d] = want;
      continue;
    }
    const int64_t have = input[d - lead];
    if (want == -1 || want == have) out[d] = have;
    else if (have == 1 && want > 0) out[d] = want;
    else
      return fail(fmt::format("cannot expand {} to {}: extent {} of axis {} is not 1", bracket(input), bracket(target),
                              have, d - lead));
  }
  return out;
}

StridedView expandView(const Shape& input, const Shape& output) {
  std::vector<int64_t> in = stridesOf(input);
  StridedView v;
  v.shape = output;
  const size_t lead = output.size() - input.size();
  for (size_t d = 0; d < output.size(); ++d)
    v.strides.push_back(d < lead || input[d - lead] != output[d] ? 0 : in[d - lead]);
  return v;
}

Expected<Shape> squeezeShape(const Shape& input, const std::vector<int64_t>& axes) {
  const int64_t rank = int64_t(input.size());
  std::vector<bool> drop(size_t(rank), false);
  if (axes.empty()) {
    for (int64_t d = 0; d < rank; ++d) drop[size_t(d)] = input[size_t(d)] == 1;
  } else {
    for (int64_t a : axes) {
      auto axis = normalizeAxis(a, rank);
      if (!axis) return Unexpected(axis.error());
      if (drop[size_t(*axis)]) return fail(fmt::format("axis {} is named twice", a));
      if (input[size_t(*axis)] != 1)
        return fail(fmt::format("axis {} has extent {}, not 1, in {}", a, input[size_t(*axis)], bracket(input)));
      drop[size_t(*axis)] = true;
    }
  }
  Shape out;
  for (int64_t d = 0; d < rank; ++d)
    if (!drop[size_t(d)]) out.push_back(input[size_t(d)]);
  return out;
}

Expected<Shape> unsqueezeShape(const Shape& input, const std::vector<int64_t>& axes) {
  if (axes.empty()) return fail("axes must name at least one new axis");
  const int64_t rank = int64_t(input.size() + axes.size());
  std::vector<bool> inserted(size_t(rank), false);
  for (int64_t a : axes) {
    auto axis = normalizeAxis(a, rank);
    if (!axis) return Unexpected(axis.error());
    if (inserted[size_t(*axis)]) return fail(fmt::format("axis {} is named twice", a));
    inserted[size_t(*axis)] = true;
  }
  Shape out;
  size_t next = 0;
  for (int64_t d = 0; d < rank; ++d) out.push_back(inserted[size_t(d)] ? 1 : input[next++]);
  return out;
}

AxisSplit splitAt(const Shape& shape, int64_t axis) {
  AxisSplit s;
  for (int64_t d = 0; d < int64_t(shape.size()); ++d) {
    if (d < axis) s.outer *= shape[size_t(d)];
    else if (d == axis) s.extent = shape[size_t(d)];
    else s.inner *= shape[size_t(d)];
  }
  return s;
}

int64_t BatchMatMulGeometry::aOffset(int64_t i) const {
  int64_t off = 0;
  for (size_t d = batch.size(); d-- > 0;) {
    off += (i % batch[d]) * aStrides[d];
    i /= batch[d];
  }
  return off;
}

int64_t BatchMatMulGeometry::bOffset(int64_t i) const {
  int64_t off = 0;
  for (size_t d = batch.size(); d-- > 0;) {
    off += (i % batch[d]) * bStrides[d];
    i /= batch[d];
  }
  return off;
}

Shape BatchMatMulGeometry::outShape() const {
  Shape s = batch;
  s.push_back(m);
  s.push_back(n);
  return s;
}

Expected<BatchMatMulGeometry> batchMatMulGeometry(const Shape& a, const Shape& b, bool transA, bool transB) {
  if (a.size() < 2 || b.size() < 2)
    return fail(fmt::format("operands must have rank >= 2 ([..., rows, cols]), got {} and {}", bracket(a), bracket(b)));
  BatchMatMulGeometry g;
  g.transA = transA, g.transB = transB;
  const size_t ra = a.size(), rb = b.size();
  g.m = transA ? a[ra - 1] : a[ra - 2];
  const int64_t ka = transA ? a[ra - 2] : a[ra - 1];
  const int64_t kb = transB ? b[rb - 1] : b[rb - 2];
  g.n = transB ? b[rb - 2] : b[rb - 1];
  if (ka != kb)
    return fail(fmt::format("inner dimensions differ: {} ({}{}) vs {} ({}{})", ka, bracket(a),
                            transA ? ", transposed" : "", kb, bracket(b), transB ? ", transposed" : ""));
  g.k = ka;
  const Shape aBatch(a.begin(), a.end() - 2), bBatch(b.begin(), b.end() - 2);
  const size_t rank = std::max(aBatch.size(), bBatch.size());
  const std::vector<int64_t> aS = stridesOf(a), bS = stridesOf(b);
  for (size_t d = 0; d < rank; ++d) {
    const bool inA = d >= rank - aBatch.size(), inB = d >= rank - bBatch.size();
    const int64_t ea = inA ? aBatch[d - (rank - aBatch.size())] : 1;
    const int64_t eb = inB ? bBatch[d - (rank - bBatch.size())] : 1;
    if (ea != eb && ea != 1 && eb != 1)
      return fail(fmt::format("batch axes {} and {} do not broadcast", bracket(aBatch), bracket(bBatch)));
    const int64_t e = ea == 1 ? eb : ea;
    g.batch.push_back(e);
    g.aStrides.push_back(ea == e && e != 1 ? aS[d - (rank - aBatch.size())] : 0);
    g.bStrides.push_back(eb == e && e != 1 ? bS[d - (rank - bBatch.size())] : 0);
  }
  return g;
}

namespace {

// The stride c with offset(j) = j·c over the batch axes [from, rank) flattened, if there is one.
std::optional<int64_t> uniformStride(const Shape& batch, const std::vector<int64_t>& strides, size_t from) {
  std::optional<int64_t> c;
  int64_t span = 1;  // elements of the flattened index per step of axis d
  for (size_t d = batch.size(); d-- > from;) {
    if (batch[d] != 1) {
      if (!c) {
        if (strides[d] % span != 0) return std::nullopt;
        c = strides[d] / span;
      }
      if (strides[d] != *c * span) return std::nullopt;
    }
    span *= batch[d];
  }
  return c.value_or(0);
}

}  // namespace

std::vector<BatchRun> batchRuns(const BatchMatMulGeometry& g) {
  // The longest run of trailing batch axes over which both operands move uniformly.
  size_t from = g.batch.size();
  while (from > 0 && uniformStride(g.batch, g.aStrides, from - 1) && uniformStride(g.batch, g.bStrides, from - 1))
    --from;
  const int64_t count = numElements(Shape(g.batch.begin() + ptrdiff_t(from), g.batch.end()));
  const int64_t aStride = *uniformStride(g.batch, g.aStrides, from);
  const int64_t bStride = *uniformStride(g.batch, g.bStrides, from);
  std::vector<BatchRun> runs;
  for (int64_t first = 0; first < g.batchCount(); first += count) runs.push_back({first, count, aStride, bStride});
  return runs;
}

}  // namespace shoal::geometry
