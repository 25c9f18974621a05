// IR round-trip cases of the elementwise family's non-formula ops (see SHOAL_ROUND_TRIP_CASE;
// the formula rows are covered generically): comparisons, where, reductions.
#include "ir/round_trip_cases.h"

namespace shoal::test {
namespace {

SHOAL_ROUND_TRIP_CASE(Compare, OpKind::Equal, OpKind::NotEqual, OpKind::Less, OpKind::LessEqual, OpKind::Greater,
                      OpKind::GreaterEqual) {
  ins = {addInput(g, "a", f32({2, 3})), addInput(g, "b", f32({3}))};
  results = {{"mask", {DType::Bool, {2, 3}}}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(Where, OpKind::Where) {
  ins = {addInput(g, "cond", {DType::Bool, {2, 1}}), addInput(g, "a", i64({3})), addInput(g, "b", i64({}))};
  results = {{"y", i64({2, 3})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(Reduce, OpKind::ReduceSum, OpKind::ReduceMean, OpKind::ReduceMax, OpKind::ReduceMin,
                      OpKind::ReduceProd) {
  ins = {addInput(g, "x", f32({2, 3, 4}))};
  a.set("axes", std::vector<int64_t>{0, -1});
  a.set("keepdim", int64_t(1));
  results = {{"r", f32({1, 3, 1})}};
  return true;
}

}  // namespace
}  // namespace shoal::test
