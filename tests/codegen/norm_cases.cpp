// CUDA codegen cases of the norm family (see SHOAL_CUDA_CASE in cuda_test_graphs.h): each op
// with and without its affine operands, in NCHW and [N, C], and one input long enough that the
// statistics are reduced in several splits merged afterwards (count >= 4096 per group).
#include "codegen/cuda_test_graphs.h"

namespace shoal::test {
namespace {

// A non-negative variance computed in the graph: v * v.
Value* squared(OpGraphBuilder& b, const std::string& name, Shape s) {
  Value* v = b.input(name, std::move(s));
  return b.op(OpKind::Mul, {v, v}, {}, name + "_squared");
}

SHOAL_CUDA_CASE(BatchNorm, OpKind::BatchNorm) {
  b.op(OpKind::BatchNorm,
       {b.input("x", Shape{2, 3, 4, 4}), b.input("mean", Shape{3}), squared(b, "var", {3}), b.param("w", {3}),
        b.param("b", {3})},
       attrs({{"eps", 1e-3}}), "nchw");
  b.op(OpKind::BatchNorm, {b.input("x2", Shape{5, 4}), b.input("mean2", Shape{4}), squared(b, "var2", {4})}, {}, "nc");
  b.op(OpKind::BatchNorm,
       {b.input("x3", Shape{2, 2, 7}), b.input("mean3", Shape{2}), squared(b, "var3", {2}), b.param("w3", {2})}, {},
       "weight_only");
  return true;
}

SHOAL_CUDA_CASE(BatchNormTrain, OpKind::BatchNormTrain) {
  b.op(OpKind::BatchNormTrain, {b.input("x", Shape{2, 3, 4, 4}), b.param("w", {3}), b.param("b", {3})}, {}, "nchw");
  b.op(OpKind::BatchNormTrain, {b.input("x2", Shape{6, 5})}, attrs({{"eps", 0.1}}), "nc");
  // 8·24·24 = 4608 values per channel: two splits per channel, merged.
  b.op(OpKind::BatchNormTrain, {b.input("xl", Shape{8, 3, 24, 24}), b.param("wl", {3})}, {}, "split");
  return true;
}

SHOAL_CUDA_CASE(BatchNormTrainGrad, OpKind::BatchNormTrainGrad) {
  b.op(OpKind::BatchNormTrainGrad,
       {b.input("x", Shape{2, 3, 4, 4}), b.input("dy", Shape{2, 3, 4, 4}), b.param("w", {3})}, {}, "nchw");
  b.op(OpKind::BatchNormTrainGrad, {b.input("x2", Shape{6, 5}), b.input("dy2", Shape{6, 5})}, {}, "nc");
  b.op(OpKind::BatchNormTrainGrad,
       {b.input("xl", Shape{8, 3, 24, 24}), b.input("dyl", Shape{8, 3, 24, 24}), b.param("wl", {3})}, {}, "split");
  return true;
}

SHOAL_CUDA_CASE(BatchNormTrainWeightGrad, OpKind::BatchNormTrainWeightGrad) {
  b.op(OpKind::BatchNormTrainWeightGrad, {b.input("x", Shape{2, 3, 4, 4}), b.input("dy", Shape{2, 3, 4, 4})}, {},
       "nchw");
  b.op(OpKind::BatchNormTrainWeightGrad, {b.input("x2", Shape{6, 5}), b.input("dy2", Shape{6, 5})},
       attrs({{"eps", 0.1}}), "nc");
  // 8·24·24 = 4608 values per channel: two splits per channel, merged.
  b.op(OpKind::BatchNormTrainWeightGrad, {b.input("xl", Shape{8, 3, 24, 24}), b.input("dyl", Shape{8, 3, 24, 24})}, {},
       "split");
  return true;
}

SHOAL_CUDA_CASE(BatchNormStats, OpKind::BatchNormStats) {
  b.op(OpKind::BatchNormStats, {b.input("x", Shape{4, 3, 2, 2})}, {}, "nchw");
  b.op(OpKind::BatchNormStats, {b.input("x2", Shape{2, 7})}, {}, "nc");
  b.op(OpKind::BatchNormStats, {b.input("xl", Shape{8, 2, 24, 24})}, {}, "split");
  return true;
}

SHOAL_CUDA_CASE(BatchNormUpdate, OpKind::BatchNormUpdate) {
  Value* count = b.graph()
                     .addNode(OpKind::State, {}, attrs({{"init", std::string("zeros")}}),
                              {{"bn.num_batches_tracked", TensorType{DType::I64, {}}}}, Location{"ops.mmd", 1, 1, "bn"})
                     ->result();
  b.op(OpKind::BatchNormUpdate,
       {b.state("bn.running_mean", {3}), b.state("bn.running_var", {3}), b.input("stats", Shape{2, 3}), count},
       attrs({{"momentum", 0.25}}), "update");
  b.op(OpKind::BatchNormUpdate, {b.state("m", {5}), b.state("v", {5}), b.input("stats2", Shape{2, 5})}, {}, "plain");
  return true;
}

SHOAL_CUDA_CASE(BatchNormScale, OpKind::BatchNormScale) {
  b.op(OpKind::BatchNormScale, {b.input("w", Shape{7}), squared(b, "var", {7})}, {}, "s");
  b.op(OpKind::BatchNormScale, {b.input("w2", Shape{3}), squared(b, "var2", {3})}, attrs({{"eps", 0.5}}), "s2");
  return true;
}

SHOAL_CUDA_CASE(LayerNorm, OpKind::LayerNorm) {
  b.op(OpKind::LayerNorm, {b.input("x", Shape{4, 6}), b.param("w", {6}), b.param("b", {6})}, {}, "rows");
  b.op(OpKind::LayerNorm, {b.input("x2", Shape{2, 3, 5}), b.param("w2", {3, 5}), b.param("b2", {3, 5})},
       attrs({{"dims", int64_t(2)}}), "dims2");
  b.op(OpKind::LayerNorm, {b.input("xl", Shape{2, 5000})}, attrs({{"eps", 1e-3}}), "split");
  return true;
}

SHOAL_CUDA_CASE(LayerNormGrad, OpKind::LayerNormGrad) {
  b.op(OpKind::LayerNormGrad, {b.input("x", Shape{4, 6}), b.input("dy", Shape{4, 6}), b.param("w", {6})}, {}, "rows");
  b.op(OpKind::LayerNormGrad, {b.input("x2", Shape{2, 3, 5}), b.input("dy2", Shape{2, 3, 5})},
       attrs({{"dims", int64_t(2)}}), "dims2");
  b.op(OpKind::LayerNormGrad, {b.input("xl", Shape{2, 5000}), b.input("dyl", Shape{2, 5000}), b.param("wl", {5000})},
       {}, "split");
  return true;
}

SHOAL_CUDA_CASE(GroupNorm, OpKind::GroupNorm) {
  b.op(OpKind::GroupNorm, {b.input("x", Shape{2, 6, 3, 3}), b.param("w", {6}), b.param("b", {6})},
       attrs({{"groups", int64_t(3)}}), "groups3");
  b.op(OpKind::GroupNorm, {b.input("x2", Shape{2, 4, 5})}, attrs({{"groups", int64_t(4)}}), "instance");
  b.op(OpKind::GroupNorm, {b.input("x3", Shape{3, 4}), b.param("w3", {4})}, attrs({{"groups", int64_t(2)}}), "nc");
  return true;
}

SHOAL_CUDA_CASE(GroupNormGrad, OpKind::GroupNormGrad) {
  b.op(OpKind::GroupNormGrad, {b.input("x", Shape{2, 6, 3, 3}), b.input("dy", Shape{2, 6, 3, 3}), b.param("w", {6})},
       attrs({{"groups", int64_t(3)}}), "groups3");
  b.op(OpKind::GroupNormGrad, {b.input("x2", Shape{2, 4, 5}), b.input("dy2", Shape{2, 4, 5})},
       attrs({{"groups", int64_t(4)}}), "instance");
  b.op(OpKind::GroupNormGrad, {b.input("x3", Shape{3, 4}), b.input("dy3", Shape{3, 4}), b.param("w3", {4})},
       attrs({{"groups", int64_t(2)}}), "nc");
  return true;
}

SHOAL_CUDA_CASE(Dropout, OpKind::Dropout) {
  b.op(OpKind::Dropout, {b.input("x", Shape{3, 50})}, attrs({{"rate", 0.3}}), "d");
  return true;
}

// The masks must agree element for element: a dropped element against a kept one fails any
// tolerance. The step input is fed the run's number (so each run draws another mask).
SHOAL_CUDA_CASE(DropoutTrain, OpKind::DropoutTrain) {
  Value* step = b.input("step", TensorType{DType::F32, {}});
  b.op(OpKind::DropoutTrain, {b.input("x", Shape{3, 50}), step}, attrs({{"rate", 0.3}, {"seed", int64_t(5)}}), "d");
  b.op(OpKind::DropoutTrain, {b.input("x2", Shape{37}), step},
       attrs({{"rate", 0.5}, {"seed", int64_t(0x7edcba9876543210)}}), "d2");
  return true;
}

}  // namespace
}  // namespace shoal::test
