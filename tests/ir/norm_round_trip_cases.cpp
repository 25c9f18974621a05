// IR round-trip cases of the norm family (see SHOAL_ROUND_TRIP_CASE in round_trip_cases.h):
// one node per op with its operands and every schema attribute set. batchnorm_scale is
// elementwise and covered by the generic case.
#include "ir/round_trip_cases.h"

namespace shoal::test {
namespace {

SHOAL_ROUND_TRIP_CASE(BatchNorm, OpKind::BatchNorm) {
  ins = {addInput(g, "x", f32({2, 3, 4, 4})), addState(g, "bn.running_mean", f32({3})),
         addState(g, "bn.running_var", f32({3})), addParam(g, "bn.weight", f32({3})), addParam(g, "bn.bias", f32({3}))};
  a.set("momentum", 0.25);
  a.set("eps", 1e-3);
  results = {{"bn", f32({2, 3, 4, 4})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(BatchNormTrain, OpKind::BatchNormTrain) {
  ins = {addInput(g, "x", f32({2, 3})), addParam(g, "bn.weight", f32({3}))};
  a.set("eps", 1e-4);
  results = {{"bn", f32({2, 3})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(BatchNormTrainGrad, OpKind::BatchNormTrainGrad) {
  ins = {addInput(g, "x", f32({2, 3, 5})), addInput(g, "dy", f32({2, 3, 5})), addParam(g, "bn.weight", f32({3}))};
  a.set("eps", 0.5);
  results = {{"dx", f32({2, 3, 5})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(BatchNormTrainWeightGrad, OpKind::BatchNormTrainWeightGrad) {
  ins = {addInput(g, "x", f32({2, 3, 5})), addInput(g, "dy", f32({2, 3, 5}))};
  a.set("eps", 0.5);
  results = {{"bn.weight.grad", f32({3})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(BatchNormStats, OpKind::BatchNormStats) {
  ins = {addInput(g, "x", f32({4, 3, 2, 2}))};
  results = {{"bn.stats", f32({2, 3})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(BatchNormUpdate, OpKind::BatchNormUpdate) {
  ins = {addState(g, "bn.running_mean", f32({3})), addState(g, "bn.running_var", f32({3})),
         addInput(g, "bn.stats", f32({2, 3})), addState(g, "bn.num_batches_tracked", i64({}))};
  a.set("momentum", 0.01);
  results = {};
  return true;
}

SHOAL_ROUND_TRIP_CASE(LayerNorm, OpKind::LayerNorm) {
  ins = {addInput(g, "x", f32({2, 3, 4})), addParam(g, "ln.weight", f32({3, 4})), addParam(g, "ln.bias", f32({3, 4}))};
  a.set("dims", int64_t(2));
  a.set("eps", 1e-6);
  results = {{"ln", f32({2, 3, 4})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(LayerNormGrad, OpKind::LayerNormGrad) {
  ins = {addInput(g, "x", f32({2, 4})), addInput(g, "dy", f32({2, 4})), addParam(g, "ln.weight", f32({4}))};
  a.set("dims", int64_t(1));
  a.set("eps", 1e-6);
  results = {{"dx", f32({2, 4})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(GroupNorm, OpKind::GroupNorm) {
  ins = {addInput(g, "x", f32({2, 6, 3, 3})), addParam(g, "gn.weight", f32({6})), addParam(g, "gn.bias", f32({6}))};
  a.set("groups", int64_t(3));
  a.set("eps", 1e-4);
  results = {{"gn", f32({2, 6, 3, 3})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(GroupNormGrad, OpKind::GroupNormGrad) {
  ins = {addInput(g, "x", f32({2, 4, 3})), addInput(g, "dy", f32({2, 4, 3}))};
  a.set("groups", int64_t(2));
  a.set("eps", 1e-4);
  results = {{"dx", f32({2, 4, 3})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(Dropout, OpKind::Dropout) {
  ins = {addInput(g, "x", f32({2, 3}))};
  a.set("rate", 0.2);
  results = {{"d", f32({2, 3})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(DropoutTrain, OpKind::DropoutTrain) {
  ins = {addInput(g, "x", f32({2, 3})), addInput(g, "step", f32({}))};
  a.set("rate", 0.2);
  a.set("seed", int64_t(-1245446809450219516));  // a 64-bit seed prints and parses back as itself
  results = {{"d", f32({2, 3})}};
  return true;
}

}  // namespace
}  // namespace shoal::test
