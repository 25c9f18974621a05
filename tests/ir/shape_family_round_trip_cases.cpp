// IR round-trip cases of the shape family (SHOAL_ROUND_TRIP_CASE, round_trip_cases.h): a node of
// each op with every attribute set, printed and parsed back by tests/ir/printer_parser_test.cpp.
#include <limits>

#include "ir/round_trip_cases.h"

namespace shoal::test {
namespace {

using Ints = std::vector<int64_t>;

SHOAL_ROUND_TRIP_CASE(Concat, OpKind::Concat) {
  ins = {addInput(g, "a", f32({2, 3})), addInput(g, "b", f32({2, 4})), addInput(g, "c", f32({2, 1}))};
  a.set("axis", int64_t(-1));
  results = {{"y", f32({2, 8})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(Slice, OpKind::Slice) {
  ins = {addInput(g, "x", f32({4, 7}))};
  a.set("starts", Ints{-1, 1});
  a.set("ends", Ints{-100, 6});
  a.set("axes", Ints{0, 1});
  a.set("steps", Ints{-2, 2});
  results = {{"y", f32({2, 3})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(SliceGrad, OpKind::SliceGrad) {
  ins = {addInput(g, "dy", f32({2, 3}))};
  a.set("starts", Ints{-1, 1});
  a.set("ends", Ints{-100, 6});
  a.set("axes", Ints{0, 1});
  a.set("steps", Ints{-2, 2});
  a.set("input_shape", Ints{4, 7});
  results = {{"dx", f32({4, 7})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(Transpose, OpKind::Transpose) {
  ins = {addInput(g, "x", i64({2, 3, 4}))};
  a.set("perm", Ints{1, 2, 0});
  results = {{"y", i64({3, 4, 2})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(Pad, OpKind::Pad) {
  ins = {addInput(g, "x", f32({3, 4}))};
  a.set("pads", Ints{1, 2, 0, 2});
  a.set("mode", std::string("reflect"));
  a.set("value", -0.5);
  results = {{"y", f32({4, 8})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(PadGrad, OpKind::PadGrad) {
  ins = {addInput(g, "dy", f32({4, 8}))};
  a.set("pads", Ints{1, 2, 0, 2});
  a.set("mode", std::string("edge"));
  results = {{"dx", f32({3, 4})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(Gather, OpKind::Gather) {
  ins = {addParam(g, "e.weight", f32({10, 4})), addInput(g, "ids", i64({2, 3}))};
  a.set("axis", int64_t(0));
  results = {{"e", f32({2, 3, 4})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(GatherGrad, OpKind::GatherGrad) {
  ins = {addInput(g, "dy", f32({2, 3, 4})), addInput(g, "ids", i64({2, 3}))};
  a.set("axis", int64_t(0));
  a.set("input_shape", Ints{10, 4});
  results = {{"dw", f32({10, 4})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(Expand, OpKind::Expand) {
  ins = {addInput(g, "x", f32({3, 1}))};
  a.set("shape", Ints{2, -1, 5});
  results = {{"y", f32({2, 3, 5})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(Squeeze, OpKind::Squeeze) {
  ins = {addInput(g, "x", u8({1, 3, 1}))};
  a.set("axes", Ints{0, -1});
  results = {{"y", u8({3})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(Unsqueeze, OpKind::Unsqueeze) {
  ins = {addInput(g, "x", f32({3}))};
  a.set("axes", Ints{0, 2});
  results = {{"y", f32({1, 3, 1})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(BatchMatMul, OpKind::BatchMatMul) {
  ins = {addInput(g, "q", f32({2, 4, 5})), addInput(g, "k", f32({2, 6, 5}))};
  a.set("transpose_a", int64_t(0));
  a.set("transpose_b", int64_t(1));
  a.set("alpha", 0.125);
  results = {{"s", f32({2, 4, 6})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(CausalMask, OpKind::CausalMask) {
  ins = {addInput(g, "s", f32({2, 4, 4}))};
  a.set("value", -std::numeric_limits<double>::infinity());
  results = {{"m", f32({2, 4, 4})}};
  return true;
}

}  // namespace
}  // namespace shoal::test
