// Shape rules of the shape family (data movement, batch_matmul, causal_mask); the index
// geometry they check is ir/shape_geometry.h, which the kernels use too.
#include <fmt/format.h>

#include "ir/shape_geometry.h"
#include "ir/shape_rules.h"

namespace shoal::shape {

namespace {

// A geometry error as a shape error of the node.
template <typename T>
Expected<T> orShapeError(const Node& n, Expected<T> r) {
  if (!r) return Unexpected(shapeError(n, r.error().message()));
  return r;
}

bool isIndexType(DType t) { return t == DType::I64 || t == DType::I32 || t == DType::U8; }

Expected<Types> requireIndices(const Node& n, const Value* indices) {
  if (!isIndexType(indices->type().dtype))
    return Unexpected(shapeError(n, fmt::format("indices must be i64, i32 or u8, got {}", sh(indices))));
  return Types{};
}

// A shape attribute (input_shape) of a gradient op: positive extents.
Expected<Shape> positiveShapeAttr(const Node& n, const std::string& key) {
  const Shape& s = n.attrs().getInts(key);
  for (int64_t d : s)
    if (d <= 0) return Unexpected(shapeError(n, fmt::format("{} {} has a non-positive extent", key, shapeString(s))));
  return s;
}

// The shape gather gives for data of `data`, `indices` and a normalised axis.
Shape gatherShape(const Shape& data, const Shape& indices, int64_t axis) {
  Shape out(data.begin(), data.begin() + axis);
  out.insert(out.end(), indices.begin(), indices.end());
  out.insert(out.end(), data.begin() + axis + 1, data.end());
  return out;
}

}  // namespace

Expected<Types> shapeConcat(const Node& n) {
  const Value* first = n.input(0);
  const int64_t rank = first->type().rank();
  if (rank == 0) return Unexpected(shapeError(n, "operands must have rank >= 1, got a scalar"));
  auto axis = orShapeError(n, geometry::normalizeAxis(n.attrs().getInt("axis"), rank));
  if (!axis) return Unexpected(axis.error());
  Shape out = first->type().shape;
  for (size_t i = 1; i < n.numInputs(); ++i) {
    const Value* v = n.input(i);
    SHOAL_SHAPE_TRY(requireSameDType(n, first, v));
    bool agree = v->type().rank() == rank;
    for (int64_t d = 0; agree && d < rank; ++d) agree = d == *axis || v->type().shape[size_t(d)] == out[size_t(d)];
    if (!agree)
      return Unexpected(shapeError(n, fmt::format("operand {} is {}, operand 0 is {}: only axis {} may differ", i, sh(v),
                                                  sh(first), *axis)));
    out[size_t(*axis)] += v->type().shape[size_t(*axis)];
  }
  return Types{{first->type().dtype, out}};
}

Expected<Types> shapeSlice(const Node& n) {
  auto axes = orShapeError(n, geometry::sliceAxes(n.input(0)->type().shape, n.attrs()));
  if (!axes) return Unexpected(axes.error());
  return Types{{n.input(0)->type().dtype, geometry::sliceShape(*axes)}};
}

Expected<Types> shapeSliceGrad(const Node& n) {
  auto input = positiveShapeAttr(n, "input_shape");
  if (!input) return Unexpected(input.error());
  const Value* dy = n.input(0);
  SHOAL_SHAPE_TRY(requireFloat(n, dy, "gradient"));
  auto axes = orShapeError(n, geometry::sliceAxes(*input, n.attrs()));
  if (!axes) return Unexpected(axes.error());
  const Shape want = geometry::sliceShape(*axes);
  if (dy->type().shape != want)
    return Unexpected(shapeError(n, fmt::format("gradient {} does not match the slice's result {}", sh(dy),
                                                TensorType{dy->type().dtype, want}.str())));
  return Types{{dy->type().dtype, *input}};
}

Expected<Types> shapeTranspose(const Node& n) {
  const Shape& in = n.input(0)->type().shape;
  auto perm = orShapeError(n, geometry::permutation(n.attrs().getInts("perm"), int64_t(in.size())));
  if (!perm) return Unexpected(perm.error());
  return Types{{n.input(0)->type().dtype, geometry::transposeView(in, *perm).shape}};
}

Expected<Types> shapePad(const Node& n) {
  const Shape& in = n.input(0)->type().shape;
  if (in.empty()) return Unexpected(shapeError(n, "input must have rank >= 1, got a scalar"));
  auto pad = orShapeError(n, geometry::padSpec(in, n.attrs()));
  if (!pad) return Unexpected(pad.error());
  return Types{{n.input(0)->type().dtype, geometry::paddedShape(in, *pad)}};
}

Expected<Types> shapePadGrad(const Node& n) {
  const Value* dy = n.input(0);
  SHOAL_SHAPE_TRY(requireFloat(n, dy, "gradient"));
  const Shape& out = dy->type().shape;
  const std::vector<int64_t>& pads = n.attrs().getInts("pads");
  if (pads.size() != 2 * out.size())
    return Unexpected(shapeError(n, fmt::format("pads needs {} values for the gradient {}, got {}", 2 * out.size(),
                                                sh(dy), pads.size())));
  Shape in = out;
  for (size_t d = 0; d < out.size(); ++d) {
    in[d] -= pads[d] + pads[d + out.size()];
    if (in[d] <= 0)
      return Unexpected(shapeError(n, fmt::format("pads of axis {} leave nothing of the gradient {}", d, sh(dy))));
  }
  auto pad = orShapeError(n, geometry::padSpec(in, n.attrs()));
  if (!pad) return Unexpected(pad.error());
  return Types{{dy->type().dtype, in}};
}

Expected<Types> shapeGather(const Node& n) {
  const Value* data = n.input(0);
  const Value* indices = n.input(1);
  SHOAL_SHAPE_TRY(requireIndices(n, indices));
  const Shape& ds = data->type().shape;
  if (ds.empty()) return Unexpected(shapeError(n, "data must have rank >= 1, got a scalar"));
  auto axis = orShapeError(n, geometry::normalizeAxis(n.attrs().getInt("axis"), int64_t(ds.size())));
  if (!axis) return Unexpected(axis.error());
  return Types{{data->type().dtype, gatherShape(ds, indices->type().shape, *axis)}};
}

Expected<Types> shapeGatherGrad(const Node& n) {
  const Value* dy = n.input(0);
  const Value* indices = n.input(1);
  SHOAL_SHAPE_TRY(requireFloat(n, dy, "gradient"));
  SHOAL_SHAPE_TRY(requireIndices(n, indices));
  auto input = positiveShapeAttr(n, "input_shape");
  if (!input) return Unexpected(input.error());
  if (input->empty()) return Unexpected(shapeError(n, "input_shape must have rank >= 1"));
  auto axis = orShapeError(n, geometry::normalizeAxis(n.attrs().getInt("axis"), int64_t(input->size())));
  if (!axis) return Unexpected(axis.error());
  const Shape want = gatherShape(*input, indices->type().shape, *axis);
  if (dy->type().shape != want)
    return Unexpected(shapeError(n, fmt::format("gradient {} does not match the gather's result {}", sh(dy),
                                                TensorType{dy->type().dtype, want}.str())));
  return Types{{dy->type().dtype, *input}};
}

Expected<Types> shapeExpand(const Node& n) {
  auto out = orShapeError(n, geometry::expandShape(n.input(0)->type().shape, n.attrs().getInts("shape")));
  if (!out) return Unexpected(out.error());
  return Types{{n.input(0)->type().dtype, *out}};
}

Expected<Types> shapeSqueeze(const Node& n) {
  auto out = orShapeError(n, geometry::squeezeShape(n.input(0)->type().shape, n.attrs().getInts("axes")));
  if (!out) return Unexpected(out.error());
  return Types{{n.input(0)->type().dtype, *out}};
}

Expected<Types> shapeUnsqueeze(const Node& n) {
  auto out = orShapeError(n, geometry::unsqueezeShape(n.input(0)->type().shape, n.attrs().getInts("axes")));
  if (!out) return Unexpected(out.error());
  return Types{{n.input(0)->type().dtype, *out}};
}

Expected<Types> shapeBatchMatMul(const Node& n) {
  const Value* a = n.input(0);
  const Value* b = n.input(1);
  SHOAL_SHAPE_TRY(requireFloat(n, a, "left operand"));
  SHOAL_SHAPE_TRY(requireSameDType(n, a, b));
  auto g = orShapeError(n, geometry::batchMatMulGeometry(a->type().shape, b->type().shape,
                                                         n.attrs().getInt("transpose_a") != 0,
                                                         n.attrs().getInt("transpose_b") != 0));
  if (!g) return Unexpected(g.error());
  return Types{{a->type().dtype, g->outShape()}};
}

Expected<Types> shapeCausalMask(const Node& n) {
  SHOAL_SHAPE_TRY(requireFloat(n, n.input(0), "input"));
  if (n.input(0)->type().rank() < 2)
    return Unexpected(shapeError(n, fmt::format("input must have rank >= 2 ([..., queries, keys]), got {}", sh(n.input(0)))));
  return Types{n.input(0)->type()};
}

}  // namespace shoal::shape
