// IR round-trip cases of the train family (see tests/ir/round_trip_cases.h): each op with its
// operands and every schema attribute set.
#include "ir/round_trip_cases.h"

namespace shoal::test {
namespace {

TensorType f64Scalar() { return {DType::F64, {}}; }

SHOAL_ROUND_TRIP_CASE(SgdUpdate, OpKind::SgdUpdate) {
  ins = {addParam(g, "d.weight", f32({3, 8})), addInput(g, "g", f32({3, 8})), addInput(g, "lr", f64Scalar()),
         addInput(g, "gs", f32({}))};
  a.set("weight_decay", 5e-4);
  results = {};
  return true;
}

SHOAL_ROUND_TRIP_CASE(SgdMomentumUpdate, OpKind::SgdMomentumUpdate) {
  ins = {addParam(g, "d.weight", f32({3, 8})), addInput(g, "g", f32({3, 8})),
         addState(g, "d.weight.velocity", f32({3, 8})), addInput(g, "lr", f64Scalar())};
  a.set("momentum", 0.9);
  a.set("weight_decay", 5e-4);
  a.set("nesterov", int64_t(1));
  results = {};
  return true;
}

SHOAL_ROUND_TRIP_CASE(AdamUpdate, OpKind::AdamUpdate) {
  ins = {addParam(g, "d.weight", f32({3, 8})),
         addInput(g, "g", f32({3, 8})),
         addState(g, "m", f32({3, 8})),
         addState(g, "v", f32({3, 8})),
         addInput(g, "step", i64({})),
         addInput(g, "lr", f64Scalar()),
         addInput(g, "gs", f32({}))};
  a.set("beta1", 0.8);
  a.set("beta2", 0.99);
  a.set("eps", 1e-8);
  a.set("weight_decay", 0.01);
  a.set("decoupled_weight_decay", int64_t(1));
  results = {};
  return true;
}

SHOAL_ROUND_TRIP_CASE(BceWithLogits, OpKind::BceWithLogits) {
  ins = {addInput(g, "logits", f32({2, 3})), addInput(g, "targets", f32({2, 3}))};
  results = {{"loss", f32({})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(BceWithLogitsGrad, OpKind::BceWithLogitsGrad) {
  ins = {addInput(g, "logits", f32({2, 3})), addInput(g, "targets", f32({2, 3})), addInput(g, "dloss", f32({}))};
  results = {{"dlogits", f32({2, 3})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(OneHot, OpKind::OneHot) {
  ins = {addInput(g, "labels", u8({2}))};
  a.set("classes", int64_t(3));
  a.set("dtype", std::string("f64"));
  results = {{"targets", {DType::F64, {2, 3}}}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(GlobalSumSquares, OpKind::GlobalSumSquares) {
  ins = {addInput(g, "a", f32({2, 3})), addInput(g, "b", f32({4})), addInput(g, "c", f32({}))};
  results = {{"s", f32({})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(AllReduce, OpKind::AllReduce) {
  ins = {addInput(g, "g", f32({3, 8}))};
  a.set("op", std::string("sum"));
  a.set("ranks", int64_t(4));
  results = {{"g.all_reduce", f32({3, 8})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(LossScaleUpdate, OpKind::LossScaleUpdate) {
  ins = {addState(g, "loss_scale.exponent", f32({})), addState(g, "loss_scale.good_steps", f32({})),
         addInput(g, "s", f32({}))};
  a.set("growth_interval", int64_t(100));
  results = {};
  return true;
}

}  // namespace
}  // namespace shoal::test
