// Shape-rule cases of the elementwise family (see SHOAL_SHAPE_CASES): each op's valid use and
// every error its rule reports.
#include "ir/shape_cases.h"

namespace shoal::test {
namespace {

inline TensorType b8(Shape s) { return {DType::Bool, std::move(s)}; }

SHOAL_SHAPE_CASES(UnaryMath, OpKind::Gelu, OpKind::GeluTanh, OpKind::Silu, OpKind::Hardswish, OpKind::Hardsigmoid,
                  OpKind::Relu6, OpKind::Clip, OpKind::LeakyRelu, OpKind::Exp, OpKind::Log, OpKind::Sqrt, OpKind::Rsqrt,
                  OpKind::Reciprocal, OpKind::Erf, OpKind::Abs, OpKind::Sin, OpKind::Cos, OpKind::Tan, OpKind::Asin,
                  OpKind::Acos, OpKind::Atan, OpKind::Sinh, OpKind::Cosh, OpKind::Asinh, OpKind::Acosh, OpKind::Atanh) {
  return {{{f64({2, 3})}, {}, {f64({2, 3})}},
          {{"integer input", {i64({2})}, {}, "input must be f32 or f64, got i64[2]"},
           {"bool input", {b8({2})}, {}, "input must be f32 or f64, got bool[2]"}}};
}

SHOAL_SHAPE_CASES(UnaryGrads, OpKind::GeluGrad, OpKind::GeluTanhGrad, OpKind::SiluGrad, OpKind::HardswishGrad,
                  OpKind::HardsigmoidGrad, OpKind::Relu6Grad, OpKind::ClipGrad, OpKind::LeakyReluGrad,
                  OpKind::RsqrtGrad, OpKind::ReciprocalGrad, OpKind::ErfGrad, OpKind::AbsGrad) {
  // The schema's required floats (hardsigmoid_grad's alpha/beta, clip_grad's min/max, ...).
  Attrs a;
  for (const AttrSpec& spec : opInfo(kind).attrs) a.set(spec.name, 0.5);
  return {{{f32({2, 3}), f32({2, 3})}, a, {f32({2, 3})}},
          {{"gradient shape", {f32({2, 3}), f32({3})}, a, "gradient f32[3] does not match operand f32[2,3]"},
           {"gradient type", {f32({2, 3}), f64({2, 3})}, a, "gradient f64[2,3] does not match operand f32[2,3]"},
           {"integer operands", {i32({2}), i32({2})}, a, "operand must be f32 or f64, got i32[2]"}}};
}

SHOAL_SHAPE_CASES(Pow, OpKind::Pow) {
  return {{{f32({2, 3}), f32({3, 1, 1})}, {}, {f32({3, 2, 3})}},
          {{"shapes that do not broadcast", {f32({2, 3}), f32({2})}, {}, "shapes f32[2,3] and f32[2] do not broadcast"},
           {"element types differ", {f32({2}), f64({2})}, {}, "element types differ: f32[2] vs f64[2]"},
           {"integers", {i64({2}), i64({2})}, {}, "operands must be f32 or f64, got i64[2]"}}};
}

SHOAL_SHAPE_CASES(ThreeOperandGrads, OpKind::PowGradBase, OpKind::PowGradExponent, OpKind::MinimumGrad,
                  OpKind::MaximumGrad) {
  return {{{f64({2, 1}), f64({3}), f64({2, 3})}, {}, {f64({2, 3})}},
          {{"third operand does not broadcast",
            {f32({2, 1}), f32({3}), f32({4, 3})},
            {},
            "shapes f32[2,1], f32[3] and f32[4,3] do not broadcast"},
           {"gradient of another type", {f32({2}), f32({2}), f64({2})}, {}, "element types differ: f32[2] vs f64[2]"},
           {"integers", {i64({2}), i64({2}), i64({2})}, {}, "operands must be f32 or f64, got i64[2]"}}};
}

SHOAL_SHAPE_CASES(MinMax, OpKind::Minimum, OpKind::Maximum, OpKind::Fmod) {
  // Integers too (the interpreter's integer path), like add.
  return {{{i64({2, 1}), i64({3})}, {}, {i64({2, 3})}},
          {{"shapes that do not broadcast", {f32({2, 3}), f32({2})}, {}, "shapes f32[2,3] and f32[2] do not broadcast"},
           {"element types differ", {f32({2}), i64({2})}, {}, "element types differ: f32[2] vs i64[2]"}}};
}

SHOAL_SHAPE_CASES(Compare, OpKind::Equal, OpKind::NotEqual, OpKind::Less, OpKind::LessEqual, OpKind::Greater,
                  OpKind::GreaterEqual) {
  return {{{f32({4, 1}), f32({3})}, {}, {b8({4, 3})}},
          {{"shapes that do not broadcast", {i64({2, 3}), i64({4})}, {}, "shapes i64[2,3] and i64[4] do not broadcast"},
           {"element types differ", {f32({2}), f64({2})}, {}, "element types differ: f32[2] vs f64[2]"}}};
}

SHOAL_SHAPE_CASES(Where, OpKind::Where) {
  return {{{b8({2, 1}), f32({3}), f32({})}, {}, {f32({2, 3})}},
          {{"condition not bool",
            {f32({3}), f32({3}), f32({3})},
            {},
            "condition must be bool, got f32[3] (compare first, or cast)"},
           {"values of two types", {b8({3}), f32({3}), f64({3})}, {}, "element types differ: f32[3] vs f64[3]"},
           {"shapes that do not broadcast",
            {b8({2}), f32({3}), f32({3})},
            {},
            "shapes bool[2] and f32[3] do not broadcast"}}};
}

SHOAL_SHAPE_CASES(Reduce, OpKind::ReduceSum, OpKind::ReduceMean, OpKind::ReduceMax, OpKind::ReduceMin,
                  OpKind::ReduceProd) {
  auto ax = [](std::vector<int64_t> axes, int64_t keep = 0) { return attrs({{"axes", axes}, {"keepdim", keep}}); };
  OpShapeCases c{
      {{f32({2, 3, 4})}, ax({0, -1}, 1), {f32({1, 3, 1})}},
      {{"integer input", {i64({2})}, {}, "input must be f32 or f64, got i64[2]"},
       {"axis out of range", {f32({2, 3})}, ax({2}), "axis 2 is out of range for f32[2,3] (axes lie in [-2, 2))"},
       {"negative axis out of range",
        {f32({2, 3})},
        ax({-3}),
        "axis -3 is out of range for f32[2,3] (axes lie in [-2, 2))"},
       {"an axis twice", {f32({2, 3})}, ax({1, -1}), "axis 1 appears twice in axes"},
       {"keepdim not 0 or 1", {f32({2, 3})}, ax({0}, 2), "keepdim must be 0 or 1, got 2"}}};
  if (kind == OpKind::ReduceMax || kind == OpKind::ReduceMin)
    c.errors.push_back({"an empty range",
                        {f32({2, 0})},
                        ax({1}),
                        std::string("cannot take the ") + (kind == OpKind::ReduceMax ? "maximum" : "minimum") +
                            " over an empty range of f32[2,0]"});
  return c;
}

}  // namespace
}  // namespace shoal::test
