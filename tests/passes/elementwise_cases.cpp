// Gradient checks of the elementwise family (see SHOAL_GRAD_CASES): float64 central
// differences of mse(op(params)) against autodiff, away from kinks and ties (the choices
// there are checked exactly in tests/runtime/elementwise_cases.cpp and elementwise_test.cpp).
#include "ir/printer.h"  // grad_cases.h prints graphs in its messages
#include "passes/grad_cases.h"

namespace shoal::test {
namespace {

Attrs scaleBy(double scale, double shift) { return attrs({{"scale", scale}, {"shift", shift}}); }

// mse(kind(x)) with x = scale * p + shift, p ~ U(-1, 1): [shift - scale, shift + scale].
GradCase unaryOver(OpKind kind, const std::string& label, double scale, double shift, Attrs a = {}) {
  return {label, [=](TestGraph& t) {
            Value* x = t.op(OpKind::Scale, {t.param("p", {3, 4})}, scaleBy(scale, shift), "x");
            t.mseLoss(t.op(kind, {x}, a));
          }};
}

SHOAL_GRAD_CASES(SmoothUnary, OpKind::Gelu, OpKind::GeluTanh, OpKind::Silu, OpKind::Erf, OpKind::Exp) {
  return {unaryOver(kind, "on [-3, 3]", 3, 0)};
}

SHOAL_GRAD_CASES(Trig, OpKind::Sin, OpKind::Cos, OpKind::Atan, OpKind::Sinh, OpKind::Cosh, OpKind::Asinh) {
  return {unaryOver(kind, "on [-3, 3]", 3, 0)};
}

SHOAL_GRAD_CASES(TrigInsideDomain, OpKind::Tan, OpKind::Asin, OpKind::Acos, OpKind::Atanh) {
  // Away from tan's poles and from the ends of [-1, 1], where the derivatives blow up.
  return {unaryOver(kind, "on [-0.8, 0.8]", 0.8, 0)};
}

SHOAL_GRAD_CASES(Acosh, OpKind::Acosh) { return {unaryOver(kind, "on [1.2, 3]", 0.9, 2.1)}; }

SHOAL_GRAD_CASES(PiecewiseUnary, OpKind::Hardswish, OpKind::Hardsigmoid, OpKind::Relu6) {
  // Every piece: below, across and above the kinks (at -3/3 and 0/6).
  return {unaryOver(kind, "on [-4.5, 7.5]", 6, 1.5)};
}

SHOAL_GRAD_CASES(Clip, OpKind::Clip) {
  return {unaryOver(kind, "both bounds", 1, 0, attrs({{"min", -0.4}, {"max", 0.6}})),
          unaryOver(kind, "no bounds", 1, 0),
          unaryOver(kind, "min above max", 1, 0, attrs({{"min", 0.5}, {"max", 0.0}}))};
}

SHOAL_GRAD_CASES(LeakyRelu, OpKind::LeakyRelu) {
  return {unaryOver(kind, "default slope", 1, 0), unaryOver(kind, "slope -0.5", 1, 0, attrs({{"alpha", -0.5}}))};
}

SHOAL_GRAD_CASES(Abs, OpKind::Abs) {
  return {{"away from 0", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Abs, {t.param("p", {3, 4}, Fill::AwayFromZero)}));
           }}};
}

SHOAL_GRAD_CASES(PositiveDomain, OpKind::Log, OpKind::Sqrt, OpKind::Rsqrt) {
  return {unaryOver(kind, "on [0.5, 2.5]", 1, 1.5)};
}

SHOAL_GRAD_CASES(Reciprocal, OpKind::Reciprocal) {
  return {{"away from 0", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Reciprocal, {t.param("p", {3, 4}, Fill::AwayFromZero)}));
           }}};
}

SHOAL_GRAD_CASES(Pow, OpKind::Pow) {
  return {{"positive base, both operands",
           [](TestGraph& t) {
             Value* a = t.op(OpKind::Scale, {t.param("a", {3, 4})}, scaleBy(1, 2), "base");
             t.mseLoss(t.op(OpKind::Pow, {a, t.param("b", {3, 4})}));
           }},
          {"broadcast exponent [4] and base [3,1]",
           [](TestGraph& t) {
             Value* a = t.op(OpKind::Scale, {t.param("a", {3, 1})}, scaleBy(1, 2), "base");
             t.mseLoss(t.op(OpKind::Pow, {a, t.param("b", {4})}));
           }},
          {"any base, integer exponents", [](TestGraph& t) {
             Value* b = t.constant("e", {4}, {0, 1, 2, 3}, DType::F64);
             t.mseLoss(t.op(OpKind::Pow, {t.param("a", {3, 4}, Fill::AwayFromZero), b}));
           }}};
}

SHOAL_GRAD_CASES(MinMax, OpKind::Minimum, OpKind::Maximum) {
  return {{"same shape",
           [=](TestGraph& t) {
             t.mseLoss(t.op(kind, {t.param("a", {3, 4}), t.param("b", {3, 4})}));
           }},
          {"b broadcast [4] to [3,4]", [=](TestGraph& t) {
             t.mseLoss(t.op(kind, {t.param("a", {3, 4}), t.param("b", {4})}));
           }}};
}

SHOAL_GRAD_CASES(Where, OpKind::Where) {
  // cond = (c > 0) for a constant c of [3,1] (rows chosen), a [3,4], b [4] broadcast.
  return {{"broadcast operands", [](TestGraph& t) {
             Value* c = t.constant("c", {3, 1}, {1, -1, 2}, DType::F64);
             Value* zero = t.constant("zero", {}, {0}, DType::F64);
             Value* cond = t.op(OpKind::Greater, {c, zero}, {}, "cond");
             t.mseLoss(t.op(OpKind::Where, {cond, t.param("a", {3, 4}), t.param("b", {4})}));
           }}};
}

// mse(kind(p)) over p [2,3,4] for several axes and keepdim.
std::vector<GradCase> reduceCases(OpKind kind, Fill fill) {
  auto make = [=](std::vector<int64_t> axes, int64_t keep) {
    return [=](TestGraph& t) {
      t.mseLoss(t.op(kind, {t.param("p", {2, 3, 4}, fill)}, attrs({{"axes", axes}, {"keepdim", keep}})));
    };
  };
  return {{"all axes", make({}, 0)},
          {"middle axis", make({1}, 0)},
          {"first and last, kept", make({0, -1}, 1)},
          {"last, kept", make({2}, 1)}};
}

SHOAL_GRAD_CASES(ReduceSumMean, OpKind::ReduceSum, OpKind::ReduceMean) { return reduceCases(kind, Fill::Uniform); }

// Distinct values: no ties within reach of the differences.
SHOAL_GRAD_CASES(ReduceMaxMin, OpKind::ReduceMax, OpKind::ReduceMin) { return reduceCases(kind, Fill::Distinct); }

// Away from zero (the quotient rule), then slices holding one zero and two (the product of
// the rest, and 0): zeros made by relu of -1, which the differences do not cross.
SHOAL_GRAD_CASES(ReduceProd, OpKind::ReduceProd) {
  std::vector<GradCase> cases = reduceCases(kind, Fill::AwayFromZero);
  auto zeros = [=](std::vector<double> mask) {
    return [=](TestGraph& t) {
      Value* p = t.param("p", {2, 3}, Fill::AwayFromZero);
      // mask 0 makes a term exactly 0: p · relu(mask), relu(-1) = 0.
      Value* m = t.op(OpKind::Relu, {t.constant("mask", {2, 3}, mask, t.dtype())}, {}, "mask_relu");
      t.mseLoss(t.op(kind, {t.op(OpKind::Mul, {p, m}, {}, "masked")}, attrs({{"axes", std::vector<int64_t>{1}}})));
    };
  };
  cases.push_back({"a row with one zero, a row with two", zeros({1, -1, 1, -1, 1, -1})});
  cases.push_back({"one zero in each row", zeros({-1, 1, 1, 1, 1, -1})});
  return cases;
}

}  // namespace
}  // namespace shoal::test
