// Shape-rule cases of the shape family (SHOAL_SHAPE_CASES, shape_cases.h): one valid node per op
// with its result type, and every error its rule reports, with the exact message.
#include "ir/shape_cases.h"

namespace shoal::test {
namespace {

using Ints = std::vector<int64_t>;

SHOAL_SHAPE_CASES(Concat, OpKind::Concat) {
  const Attrs mid = attrs({{"axis", int64_t(1)}});
  return {{{f32({2, 3}), f32({2, 4}), f32({2, 1})}, mid, {f32({2, 8})}},
          {{"scalar", {f32({})}, {}, "operands must have rank >= 1, got a scalar"},
           {"axis out of range", {f32({2, 3}), f32({2, 3})}, attrs({{"axis", int64_t(2)}}),
            "axis 2 is out of range for rank 2 (valid: -2 to 1)"},
           {"another axis differs", {f32({2, 3}), f32({3, 3})}, mid,
            "operand 1 is f32[3,3], operand 0 is f32[2,3]: only axis 1 may differ"},
           {"ranks differ", {f32({2, 3}), f32({2, 3, 1})}, {},
            "operand 1 is f32[2,3,1], operand 0 is f32[2,3]: only axis 0 may differ"},
           {"element types differ", {f32({2, 3}), i64({2, 3})}, {}, "element types differ: f32[2,3] vs i64[2,3]"}}};
}

Attrs sliceAttrs(Ints starts, Ints ends, Ints axes = {}, Ints steps = {}) {
  return attrs({{"starts", starts}, {"ends", ends}, {"axes", axes}, {"steps", steps}});
}

SHOAL_SHAPE_CASES(Slice, OpKind::Slice) {
  // Axis 0 backwards from its last index (3, 1); axis 1 from 1 below 6 by 2 (1, 3, 5).
  return {{{i32({4, 7})}, sliceAttrs({-1, 1}, {-100, 6}, {0, 1}, {-2, 2}), {i32({2, 3})}},
          {{"no starts", {f32({4, 7})}, sliceAttrs({}, {}), "starts must name at least one index"},
           {"ends longer", {f32({4, 7})}, sliceAttrs({0}, {1, 2}), "starts and ends have different lengths (1 and 2)"},
           {"axes longer", {f32({4, 7})}, sliceAttrs({0}, {1}, {0, 1}),
            "starts and axes have different lengths (1 and 2)"},
           {"steps longer", {f32({4, 7})}, sliceAttrs({0}, {1}, {0}, {1, 1}),
            "starts and steps have different lengths (1 and 2)"},
           {"zero step", {f32({4, 7})}, sliceAttrs({0}, {2}, {}, {0}), "the step of axis 0 is 0"},
           {"axis out of range", {f32({4, 7})}, sliceAttrs({0}, {2}, {2}),
            "axis 2 is out of range for rank 2 (valid: -2 to 1)"},
           {"axis twice", {f32({4, 7})}, sliceAttrs({0, 0}, {1, 1}, {1, -1}), "axis -1 is sliced twice"},
           {"empty", {f32({4, 7})}, sliceAttrs({3}, {1}),
            "the slice of axis 0 is empty (start 3, end 1, step 1 over extent 4)"}}};
}

SHOAL_SHAPE_CASES(SliceGrad, OpKind::SliceGrad) {
  auto a = [](Ints input) { return with(sliceAttrs({-1, 1}, {-100, 6}, {0, 1}, {-2, 2}), "input_shape", input); };
  return {{{f32({2, 3})}, a({4, 7}), {f32({4, 7})}},
          {{"integer gradient", {i64({2, 3})}, a({4, 7}), "gradient must be f32 or f64, got i64[2,3]"},
           {"gradient shape", {f32({3, 3})}, a({4, 7}), "gradient f32[3,3] does not match the slice's result f32[2,3]"},
           {"bad input_shape", {f32({2, 3})}, a({4, 0}), "input_shape 4x0 has a non-positive extent"}}};
}

SHOAL_SHAPE_CASES(Transpose, OpKind::Transpose) {
  return {{{u8({2, 3, 4})}, attrs({{"perm", Ints{1, 2, 0}}}), {u8({3, 4, 2})}},
          {{"perm too short", {f32({2, 3, 4})}, attrs({{"perm", Ints{1, 0}}}), "perm has 2 axes, the input has rank 3"},
           {"perm repeats", {f32({2, 3, 4})}, attrs({{"perm", Ints{0, 0, 1}}}), "perm names axis 0 twice"},
           {"perm out of range", {f32({2, 3, 4})}, attrs({{"perm", Ints{0, 1, 3}}}),
            "perm axis 3 is out of range for rank 3 (valid: -3 to 2)"}}};
}

Attrs padAttrs(Ints pads, std::string mode = "constant") { return attrs({{"pads", pads}, {"mode", mode}}); }

SHOAL_SHAPE_CASES(Pad, OpKind::Pad) {
  return {{{f32({3, 4})}, padAttrs({1, 2, 0, 2}, "reflect"), {f32({4, 8})}},
          {{"scalar", {f32({})}, padAttrs({}), "input must have rank >= 1, got a scalar"},
           {"pads count", {f32({3, 4})}, padAttrs({1, 2}),
            "pads needs 4 values (before for each axis, then after for each axis), got 2"},
           {"negative pad", {f32({3, 4})}, padAttrs({-1, 0, 0, 0}), "pads of axis 0 are negative (-1, 0)"},
           {"reflect as wide as the axis", {f32({3, 4})}, padAttrs({3, 0, 0, 0}, "reflect"),
            "reflect pads of axis 0 (3, 0) must be smaller than its extent 3"},
           {"unknown mode", {f32({3, 4})}, padAttrs({0, 0, 0, 0}, "wrap"),
            "mode must be constant, reflect or edge, got 'wrap'"}}};
}

SHOAL_SHAPE_CASES(PadGrad, OpKind::PadGrad) {
  return {{{f32({4, 8})}, padAttrs({1, 2, 0, 2}, "edge"), {f32({3, 4})}},
          {{"integer gradient", {i32({4, 8})}, padAttrs({1, 2, 0, 2}, "edge"), "gradient must be f32 or f64, got i32[4,8]"},
           {"pads count", {f32({4, 8})}, padAttrs({1, 2}, "edge"), "pads needs 4 values for the gradient f32[4,8], got 2"},
           {"nothing left", {f32({4, 8})}, padAttrs({2, 4, 2, 4}, "edge"),
            "pads of axis 0 leave nothing of the gradient f32[4,8]"},
           {"reflect as wide as the axis", {f32({6, 4})}, padAttrs({3, 0, 0, 0}, "reflect"),
            "reflect pads of axis 0 (3, 0) must be smaller than its extent 3"}}};
}

SHOAL_SHAPE_CASES(Gather, OpKind::Gather) {
  return {{{f32({10, 4}), i64({2, 3})}, {}, {f32({2, 3, 4})}},
          {{"float indices", {f32({10, 4}), f32({3})}, {}, "indices must be i64, i32 or u8, got f32[3]"},
           {"scalar data", {f32({}), i32({3})}, {}, "data must have rank >= 1, got a scalar"},
           {"axis out of range", {f32({10, 4}), u8({3})}, attrs({{"axis", int64_t(2)}}),
            "axis 2 is out of range for rank 2 (valid: -2 to 1)"}}};
}

SHOAL_SHAPE_CASES(GatherGrad, OpKind::GatherGrad) {
  const Attrs a = attrs({{"axis", int64_t(0)}, {"input_shape", Ints{10, 4}}});
  return {{{f32({2, 3, 4}), i64({2, 3})}, a, {f32({10, 4})}},
          {{"integer gradient", {i64({2, 3, 4}), i64({2, 3})}, a, "gradient must be f32 or f64, got i64[2,3,4]"},
           {"float indices", {f32({2, 3, 4}), f64({2, 3})}, a, "indices must be i64, i32 or u8, got f64[2,3]"},
           {"gradient shape", {f32({2, 4}), i64({2, 3})}, a,
            "gradient f32[2,4] does not match the gather's result f32[2,3,4]"},
           {"scalar input_shape", {f32({2, 3}), i64({2, 3})}, attrs({{"axis", int64_t(0)}, {"input_shape", Ints{}}}),
            "input_shape must have rank >= 1"}}};
}

SHOAL_SHAPE_CASES(Expand, OpKind::Expand) {
  return {{{f32({3, 1})}, attrs({{"shape", Ints{2, -1, 4}}}), {f32({2, 3, 4})}},
          {{"lower rank", {f32({2, 3})}, attrs({{"shape", Ints{3}}}), "cannot expand [2,3] to [3], of lower rank"},
           {"extent not 1", {f32({3, 2})}, attrs({{"shape", Ints{3, 4}}}),
            "cannot expand [3,2] to [3,4]: extent 2 of axis 1 is not 1"},
           {"new axis of -1", {f32({3})}, attrs({{"shape", Ints{-1, 3}}}), "new leading extent -1 must be positive"}}};
}

SHOAL_SHAPE_CASES(Squeeze, OpKind::Squeeze) {
  return {{{f32({1, 3, 1})}, {}, {f32({3})}},
          {{"extent not 1", {f32({2, 3})}, attrs({{"axes", Ints{0}}}), "axis 0 has extent 2, not 1, in [2,3]"},
           {"axis twice", {f32({1, 3})}, attrs({{"axes", Ints{0, -2}}}), "axis -2 is named twice"},
           {"axis out of range", {f32({1, 3})}, attrs({{"axes", Ints{2}}}),
            "axis 2 is out of range for rank 2 (valid: -2 to 1)"}}};
}

SHOAL_SHAPE_CASES(Unsqueeze, OpKind::Unsqueeze) {
  return {{{i64({3})}, attrs({{"axes", Ints{0, 2}}}), {i64({1, 3, 1})}},
          {{"no axes", {f32({3})}, attrs({{"axes", Ints{}}}), "axes must name at least one new axis"},
           {"axis out of range", {f32({3})}, attrs({{"axes", Ints{2}}}),
            "axis 2 is out of range for rank 2 (valid: -2 to 1)"},
           {"axis twice", {f32({3})}, attrs({{"axes", Ints{0, -3}}}), "axis -3 is named twice"}}};
}

SHOAL_SHAPE_CASES(BatchMatMul, OpKind::BatchMatMul) {
  const Attrs tb = attrs({{"transpose_b", int64_t(1)}});
  return {{{f32({2, 1, 4, 5}), f32({3, 6, 5})}, tb, {f32({2, 3, 4, 6})}},
          {{"integer operands", {i64({2, 4, 5}), i64({2, 5, 4})}, {}, "left operand must be f32 or f64, got i64[2,4,5]"},
           {"element types differ", {f32({2, 4, 5}), f64({2, 5, 4})}, {},
            "element types differ: f32[2,4,5] vs f64[2,5,4]"},
           {"rank 1", {f32({5}), f32({5, 2})}, {}, "operands must have rank >= 2 ([..., rows, cols]), got [5] and [5,2]"},
           {"inner dimensions", {f32({2, 4, 5}), f32({2, 6, 5})}, {}, "inner dimensions differ: 5 ([2,4,5]) vs 6 ([2,6,5])"},
           {"inner dimensions, transposed", {f32({2, 4, 5}), f32({2, 6, 4})}, tb,
            "inner dimensions differ: 5 ([2,4,5]) vs 4 ([2,6,4], transposed)"},
           {"batch axes", {f32({2, 4, 5}), f32({3, 5, 6})}, {}, "batch axes [2] and [3] do not broadcast"}}};
}

SHOAL_SHAPE_CASES(CausalMask, OpKind::CausalMask) {
  return {{{f64({2, 4, 4})}, {}, {f64({2, 4, 4})}},
          {{"integer input", {i64({4, 4})}, {}, "input must be f32 or f64, got i64[4,4]"},
           {"rank 1", {f32({4})}, {}, "input must have rank >= 2 ([..., queries, keys]), got f32[4]"}}};
}

}  // namespace
}  // namespace shoal::test
