// Shape-rule cases of the train family (see tests/ir/shape_cases.h): a valid node and every
// error each rule reports.
#include "ir/shape_cases.h"

namespace shoal::test {
namespace {

SHOAL_SHAPE_CASES(SgdUpdate, OpKind::SgdUpdate) {
  const TensorType w = f32({3, 8}), lr = f64({});
  return {{{w, w, lr, f32({})}, attrs({{"weight_decay", 0.1}}), {}},
          {{"integer parameter", {i64({3, 8}), i64({3, 8}), lr}, {}, "parameter must be f32 or f64, got i64[3,8]"},
           {"gradient shape", {w, f32({8, 3}), lr}, {}, "gradient has type f32[8,3], the parameter f32[3,8]"},
           {"learning rate not a scalar", {w, w, f32({1})}, {}, "learning rate must be a scalar, got f32[1]"},
           {"integer learning rate", {w, w, i64({})}, {}, "learning rate must be f32 or f64, got i64[]"},
           {"grad_scale not a scalar", {w, w, lr, f32({3, 8})}, {}, "grad_scale must be a scalar, got f32[3,8]"}}};
}

SHOAL_SHAPE_CASES(SgdMomentumUpdate, OpKind::SgdMomentumUpdate) {
  const TensorType w = f32({3, 8}), lr = f64({});
  const Attrs a = attrs({{"momentum", 0.9}, {"nesterov", int64_t(1)}});
  return {{{w, w, w, lr}, a, {}},
          {{"velocity type", {w, w, f64({3, 8}), lr}, a, "velocity has type f64[3,8], the parameter f32[3,8]"},
           {"velocity where the rate goes", {w, w, lr, lr}, a, "velocity has type f64[], the parameter f32[3,8]"},
           {"learning rate shaped like the parameter", {w, w, w, w}, a, "learning rate must be a scalar, got f32[3,8]"},
           {"nesterov without momentum",
            {w, w, w, lr},
            attrs({{"momentum", 0.0}, {"nesterov", int64_t(1)}}),
            "Nesterov momentum needs a positive momentum"}}};
}

SHOAL_SHAPE_CASES(AdamUpdate, OpKind::AdamUpdate) {
  const TensorType w = f32({3, 8}), t = f32({}), lr = f64({});
  return {{{w, w, w, w, t, lr, f32({})}, attrs({{"decoupled_weight_decay", int64_t(1)}}), {}},
          {{"u8 parameter",
            {u8({3, 8}), u8({3, 8}), u8({3, 8}), u8({3, 8}), t, lr},
            {},
            "parameter must be f32 or f64, got u8[3,8]"},
           {"gradient type", {w, f64({3, 8}), w, w, t, lr}, {}, "gradient has type f64[3,8], the parameter f32[3,8]"},
           {"first moment shape",
            {w, w, f32({8, 3}), w, t, lr},
            {},
            "first moment has type f32[8,3], the parameter f32[3,8]"},
           {"second moment shape",
            {w, w, w, f32({24}), t, lr},
            {},
            "second moment has type f32[24], the parameter f32[3,8]"},
           {"step count not a scalar", {w, w, w, w, i64({1}), lr}, {}, "step count must be a scalar, got i64[1]"},
           {"learning rate not a scalar", {w, w, w, w, t, f64({2})}, {}, "learning rate must be a scalar, got f64[2]"},
           {"integer grad_scale", {w, w, w, w, t, lr, i64({})}, {}, "grad_scale must be f32 or f64, got i64[]"}}};
}

SHOAL_SHAPE_CASES(BceWithLogits, OpKind::BceWithLogits) {
  return {{{f64({4, 3}), f64({4, 3})}, {}, {f64({})}},
          {{"integer logits", {i64({4, 3}), i64({4, 3})}, {}, "logits must be f32 or f64, got i64[4,3]"},
           {"targets of another shape",
            {f32({4, 3}), f32({4})},
            {},
            "targets f32[4] must have the logits' type f32[4,3] (float probabilities)"},
           {"integer class targets",
            {f32({4, 3}), i64({4, 3})},
            {},
            "targets i64[4,3] must have the logits' type f32[4,3] (float probabilities)"}}};
}

SHOAL_SHAPE_CASES(BceWithLogitsGrad, OpKind::BceWithLogitsGrad) {
  const TensorType x = f32({4, 3});
  return {{{x, x, f32({})}, {}, {x}},
          {{"targets of another type",
            {x, f64({4, 3}), f32({})},
            {},
            "targets f64[4,3] must have the logits' type f32[4,3] (float probabilities)"},
           {"loss gradient not a scalar", {x, x, f32({1})}, {}, "loss gradient must be a scalar, got f32[1]"},
           {"loss gradient f64", {x, x, f64({})}, {}, "loss gradient f64[] must have the element type of f32[4,3]"}}};
}

SHOAL_SHAPE_CASES(OneHot, OpKind::OneHot) {
  const Attrs a = attrs({{"classes", int64_t(10)}});
  return {{{u8({4})}, attrs({{"classes", int64_t(10)}, {"dtype", std::string("f64")}}), {f64({4, 10})}},
          {{"float labels", {f32({4})}, a, "labels must be integer class ids, got f32[4]"},
           {"labels of rank 2", {i64({4, 1})}, a, "labels must have rank 1, got i64[4,1]"},
           {"no classes", {i64({4})}, attrs({{"classes", int64_t(0)}}), "classes must be positive, got 0"},
           {"integer dtype",
            {i64({4})},
            attrs({{"classes", int64_t(10)}, {"dtype", std::string("i64")}}),
            "dtype must be f32 or f64, got 'i64'"}}};
}

SHOAL_SHAPE_CASES(GlobalSumSquares, OpKind::GlobalSumSquares) {
  return {{{f32({3, 8}), f32({8}), f32({})}, {}, {f32({})}},
          {{"integer operand", {i64({3})}, {}, "operand 0 must be f32 or f64, got i64[3]"},
           {"mixed element types",
            {f32({3}), f64({3})},
            {},
            "operand 1 is f64[3], operand 0 is f32[3]: all operands share one element type"}}};
}

SHOAL_SHAPE_CASES(ClipGradCoef, OpKind::ClipGradCoef) {
  return {{{f32({})}, attrs({{"max_norm", 1.0}}), {f32({})}},
          {{"integer sum", {i64({})}, attrs({{"max_norm", 1.0}}), "input must be f32 or f64, got i64[]"}}};
}

SHOAL_SHAPE_CASES(LossScale, OpKind::LossScale) {
  return {{{f32({})}, attrs({{"init_scale", 65536.0}}), {f32({})}},
          {{"integer exponent", {i64({})}, {}, "input must be f32 or f64, got i64[]"}}};
}

SHOAL_SHAPE_CASES(UnscaleCoef, OpKind::UnscaleCoef) {
  return {{{f32({}), f32({})}, attrs({{"max_norm", 1.0}}), {f32({})}},
          {{"element types differ", {f32({}), f64({})}, {}, "element types differ: f32[] vs f64[]"},
           {"integers", {i64({}), i64({})}, {}, "operands must be f32 or f64, got i64[]"}}};
}

SHOAL_SHAPE_CASES(LossScaleUpdate, OpKind::LossScaleUpdate) {
  return {{{f32({}), f32({}), f32({})}, attrs({{"growth_interval", int64_t(10)}}), {}},
          {{"exponent not a scalar", {f32({2}), f32({}), f32({})}, {}, "scale exponent must be a scalar, got f32[2]"},
           {"integer count", {f32({}), i64({}), f32({})}, {}, "good-step count must be f32 or f64, got i64[]"},
           {"norm not a scalar", {f32({}), f32({}), f32({3})}, {}, "squared gradient norm must be a scalar, got f32[3]"},
           {"interval 0", {f32({}), f32({}), f32({})}, attrs({{"growth_interval", int64_t(0)}}),
            "growth_interval must be 1 or more, got 0"}}};
}

SHOAL_SHAPE_CASES(AllReduce, OpKind::AllReduce) {
  const Attrs mean2 = attrs({{"op", std::string("mean")}, {"ranks", int64_t(2)}});
  return {{{f32({3, 8})}, mean2, {f32({3, 8})}},
          {{"integer operand", {i64({3})}, mean2, "operand must be f32 or f64, got i64[3]"},
           {"unknown op", {f32({3})}, attrs({{"op", std::string("max")}, {"ranks", int64_t(2)}}),
            "op must be sum or mean, got 'max'"},
           {"no ranks", {f32({3})}, attrs({{"op", std::string("sum")}, {"ranks", int64_t(0)}}),
            "ranks must be 1 or more, got 0"}}};
}

}  // namespace
}  // namespace shoal::test
