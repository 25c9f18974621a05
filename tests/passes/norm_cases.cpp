// Gradient-check cases of the norm family (see SHOAL_GRAD_CASES in grad_cases.h): float64
// central differences against the registered rules, through the statistics too.
#include "ir/printer.h"
#include "passes/grad_cases.h"

namespace shoal::test {
namespace {

// A positive variance from a param: p * p with p away from zero.
Value* positive(TestGraph& t, const std::string& name, Shape shape) {
  Value* p = t.param(name, std::move(shape), Fill::AwayFromZero);
  return t.op(OpKind::Mul, {p, p}, {}, name + ".squared");
}

SHOAL_GRAD_CASES(BatchNorm, OpKind::BatchNorm) {
  return {
      {"every operand a param (NCHW)",
       [](TestGraph& t) {
         Value* var = positive(t, "var", {3});
         t.mseLoss(t.op(OpKind::BatchNorm,
                        {t.param("x", {2, 3, 2, 2}), t.param("mean", {3}), var, t.param("w", {3}), t.param("b", {3})},
                        attrs({{"eps", 1e-3}})));
       }},
      {"[N, C] without affine",
       [](TestGraph& t) {
         Value* var = positive(t, "var", {3});
         t.mseLoss(t.op(OpKind::BatchNorm, {t.param("x", {4, 3}), t.param("mean", {3}), var}));
       }},
      {"weight only", [](TestGraph& t) {
         Value* var = positive(t, "var", {2});
         t.mseLoss(t.op(OpKind::BatchNorm, {t.param("x", {3, 2, 3}), t.param("mean", {2}), var, t.param("w", {2})}));
       }}};
}

SHOAL_GRAD_CASES(BatchNormTrain, OpKind::BatchNormTrain) {
  return {
      {"NCHW with weight and bias",
       [](TestGraph& t) {
         t.mseLoss(t.op(OpKind::BatchNormTrain, {t.param("x", {3, 2, 2, 2}), t.param("w", {2}), t.param("b", {2})}));
       }},
      {"[N, C] without affine",
       [](TestGraph& t) {
         t.mseLoss(t.op(OpKind::BatchNormTrain, {t.param("x", {5, 3})}));
       }},
      {"weight only, large eps", [](TestGraph& t) {
         t.mseLoss(t.op(OpKind::BatchNormTrain, {t.param("x", {4, 2, 3}), t.param("w", {2})}, attrs({{"eps", 0.5}})));
       }}};
}

SHOAL_GRAD_CASES(LayerNorm, OpKind::LayerNorm) {
  return {{"last dim with weight and bias",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::LayerNorm, {t.param("x", {3, 5}), t.param("w", {5}), t.param("b", {5})}));
           }},
          {"dims 2 with weight and bias",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::LayerNorm, {t.param("x", {2, 3, 2}), t.param("w", {3, 2}), t.param("b", {3, 2})},
                            attrs({{"dims", int64_t(2)}})));
           }},
          {"every dim, no affine", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::LayerNorm, {t.param("x", {2, 3})}, attrs({{"dims", int64_t(2)}})));
           }}};
}

SHOAL_GRAD_CASES(GroupNorm, OpKind::GroupNorm) {
  return {{"two groups with weight and bias",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::GroupNorm, {t.param("x", {2, 4, 3}), t.param("w", {4}), t.param("b", {4})},
                            attrs({{"groups", int64_t(2)}})));
           }},
          {"a group per channel (instance norm), no affine",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::GroupNorm, {t.param("x", {2, 3, 2, 2})}, attrs({{"groups", int64_t(3)}})));
           }},
          {"one group with weight", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::GroupNorm, {t.param("x", {2, 3, 2}), t.param("w", {3})},
                            attrs({{"groups", int64_t(1)}})));
           }}};
}

SHOAL_GRAD_CASES(Dropout, OpKind::Dropout) {
  return {{"the identity", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Dropout, {t.param("x", {3, 4})}, attrs({{"rate", 0.5}})));
           }}};
}

SHOAL_GRAD_CASES(DropoutTrain, OpKind::DropoutTrain) {
  auto dropout = [](double rate) {
    return [rate](TestGraph& t) {
      Value* step = t.input("step", TensorType{DType::F32, {}}, std::vector<double>{3});
      t.mseLoss(
          t.op(OpKind::DropoutTrain, {t.param("x", {5, 7}), step}, attrs({{"rate", rate}, {"seed", int64_t(11)}})));
    };
  };
  return {{"rate 0.3", dropout(0.3)}, {"rate 0.9", dropout(0.9)}};
}

}  // namespace
}  // namespace shoal::test
