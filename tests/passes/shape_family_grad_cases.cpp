// Gradient-check cases of the shape family (SHOAL_GRAD_CASES, grad_cases.h): float64 graphs
// whose loss depends on the op, checked against central differences by autodiff_test.cpp.
#include "ir/printer.h"  // grad_cases.h prints graphs without including it
#include "passes/grad_cases.h"

namespace shoal::test {
namespace {

using Ints = std::vector<int64_t>;

SHOAL_GRAD_CASES(Concat, OpKind::Concat) {
  return {{"two operands, axis 1",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Concat, {t.param("a", {2, 3}), t.param("b", {2, 2})}, attrs({{"axis", int64_t(1)}})));
           }},
          {"three operands, one used twice, axis 0",
           [](TestGraph& t) {
             Value* a = t.param("a", {1, 2, 2});
             t.mseLoss(t.op(OpKind::Concat, {a, t.param("b", {3, 2, 2}), a}, attrs({{"axis", int64_t(-3)}})));
           }}};
}

SHOAL_GRAD_CASES(Slice, OpKind::Slice) {
  return {{"negative step, clamped end",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Slice, {t.param("p", {4, 5})},
                            attrs({{"starts", Ints{-1, 1}}, {"ends", Ints{-100, 100}}, {"steps", Ints{-2, 2}}})));
           }},
          {"one axis of three",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Slice, {t.param("p", {2, 6, 3})},
                            attrs({{"starts", Ints{1}}, {"ends", Ints{-1}}, {"axes", Ints{1}}})));
           }}};
}

SHOAL_GRAD_CASES(Transpose, OpKind::Transpose) {
  return {{"rank 3", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Transpose, {t.param("p", {2, 3, 4})}, attrs({{"perm", Ints{2, 0, 1}}})));
           }}};
}

SHOAL_GRAD_CASES(Pad, OpKind::Pad) {
  auto make = [](std::string mode, Ints pads) {
    return [=](TestGraph& t) {
      t.mseLoss(t.op(OpKind::Pad, {t.param("p", {3, 4})}, attrs({{"pads", pads}, {"mode", mode}, {"value", 0.5}})));
    };
  };
  return {{"constant", make("constant", {1, 0, 2, 3})},
          {"reflect", make("reflect", {2, 3, 1, 2})},
          {"edge", make("edge", {0, 4, 3, 1})}};
}

SHOAL_GRAD_CASES(Gather, OpKind::Gather) {
  return {{"rows, repeated and negative indices",
           [](TestGraph& t) {
             Value* ids = t.constant("ids", {2, 3}, {1, 4, -1, 1, 0, 1}, DType::I64);
             t.mseLoss(t.op(OpKind::Gather, {t.param("table", {5, 3}), ids}));
           }},
          {"axis 1, i32 indices",
           [](TestGraph& t) {
             Value* ids = t.constant("ids", {3}, {2, 2, 0}, DType::I32);
             t.mseLoss(t.op(OpKind::Gather, {t.param("x", {2, 3, 2}), ids}, attrs({{"axis", int64_t(1)}})));
           }}};
}

SHOAL_GRAD_CASES(GatherGrad, OpKind::GatherGrad) {
  return {{"rows scattered, one of them twice", [](TestGraph& t) {
             Value* ids = t.constant("ids", {3}, {2, 0, 2}, DType::I64);
             t.mseLoss(t.op(OpKind::GatherGrad, {t.param("u", {3, 2}), ids},
                            attrs({{"axis", int64_t(0)}, {"input_shape", Ints{4, 2}}})));
           }}};
}

SHOAL_GRAD_CASES(Expand, OpKind::Expand) {
  return {{"broadcast and new axis", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Expand, {t.param("p", {3, 1})}, attrs({{"shape", Ints{2, 3, 4}}})));
           }}};
}

SHOAL_GRAD_CASES(Squeeze, OpKind::Squeeze, OpKind::Unsqueeze) {
  return {{"through a tanh", [=](TestGraph& t) {
             Value* p = t.param("p", kind == OpKind::Squeeze ? Shape{1, 3, 1} : Shape{3, 2});
             Attrs a = kind == OpKind::Squeeze ? Attrs{} : attrs({{"axes", Ints{1}}});
             t.mseLoss(t.op(OpKind::Tanh, {t.op(kind, {p}, a)}));
           }}};
}

SHOAL_GRAD_CASES(BatchMatMul, OpKind::BatchMatMul) {
  std::vector<GradCase> cases;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      cases.push_back({"dense batch, transpose_a=" + std::to_string(ta) + " transpose_b=" + std::to_string(tb),
                       [=](TestGraph& t) {
                         Shape a = ta ? Shape{2, 4, 3} : Shape{2, 3, 4};
                         Shape b = tb ? Shape{2, 5, 4} : Shape{2, 4, 5};
                         t.mseLoss(t.op(OpKind::BatchMatMul, {t.param("a", a), t.param("b", b)},
                                        attrs({{"transpose_a", int64_t(ta)}, {"transpose_b", int64_t(tb)},
                                               {"alpha", ta == tb ? 1.0 : -0.375}})));
                       }});
  cases.push_back({"broadcast batch axes both ways", [](TestGraph& t) {
                     t.mseLoss(t.op(OpKind::BatchMatMul, {t.param("a", {2, 1, 3, 2}), t.param("b", {3, 2, 4})},
                                    attrs({{"transpose_a", int64_t(0)}})));
                   }});
  cases.push_back({"shared rank-2 operand, transposed", [](TestGraph& t) {
                     t.mseLoss(t.op(OpKind::BatchMatMul, {t.param("x", {3, 2, 4}), t.param("w", {5, 4})},
                                    attrs({{"transpose_b", int64_t(1)}})));
                   }});
  return cases;
}

SHOAL_GRAD_CASES(CausalMask, OpKind::CausalMask) {
  return {{"a finite value", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::CausalMask, {t.param("p", {2, 3, 4})}, attrs({{"value", -2.0}})));
           }},
          {"-inf then softmax (attention's use)", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Softmax, {t.op(OpKind::CausalMask, {t.param("p", {2, 3, 3})})}));
           }}};
}

}  // namespace
}  // namespace shoal::test
