// Shape-rule cases of the norm family (see SHOAL_SHAPE_CASES in shape_cases.h): each op's
// valid node and every error its rule reports.
#include "ir/shape_cases.h"

namespace shoal::test {
namespace {

SHOAL_SHAPE_CASES(BatchNorm, OpKind::BatchNorm) {
  const TensorType x = f32({2, 3}), c = f32({3});
  return {{{f32({2, 3, 4, 4}), c, c, c, c}, {}, {f32({2, 3, 4, 4})}},
          {{"integer input", {i64({2, 3}), i64({3}), i64({3})}, {}, "input must be f32 or f64, got i64[2,3]"},
           {"rank 1", {f32({4}), f32({4}), f32({4})}, {}, "input must be [N, C, ...] (rank >= 2), got f32[4]"},
           {"running_mean of the wrong length",
            {x, f32({4}), c},
            {},
            "running_mean must be f32[3] (one per channel of f32[2,3]), got f32[4]"},
           {"running_var of the wrong type",
            {x, c, f64({3})},
            {},
            "running_var must be f32[3] (one per channel of f32[2,3]), got f64[3]"},
           {"weight of the wrong length",
            {x, c, c, f32({1})},
            {},
            "weight must be f32[3] (one per channel of f32[2,3]), got f32[1]"},
           {"bias of the wrong length",
            {x, c, c, c, f32({2})},
            {},
            "bias must be f32[3] (one per channel of f32[2,3]), got f32[2]"},
           {"momentum above 1", {x, c, c}, attrs({{"momentum", 1.5}}), "momentum must be in [0, 1], got 1.5"},
           {"negative eps", {x, c, c}, attrs({{"eps", -1.0}}), "eps must be >= 0, got -1.0"}}};
}

SHOAL_SHAPE_CASES(BatchNormTrain, OpKind::BatchNormTrain) {
  const TensorType x = f32({2, 3, 5});
  return {{{x, f32({3}), f32({3})}, {}, {x}},
          {{"integer input", {i32({2, 3})}, {}, "input must be f32 or f64, got i32[2,3]"},
           {"rank 1", {f32({3})}, {}, "input must be [N, C, ...] (rank >= 2), got f32[3]"},
           {"weight over the last axis",
            {x, f32({5})},
            {},
            "weight must be f32[3] (one per channel of f32[2,3,5]), got f32[5]"},
           {"bias f64", {x, f32({3}), f64({3})}, {}, "bias must be f32[3] (one per channel of f32[2,3,5]), got f64[3]"},
           {"negative eps", {x}, attrs({{"eps", -0.5}}), "eps must be >= 0, got -0.5"}}};
}

SHOAL_SHAPE_CASES(BatchNormTrainGrad, OpKind::BatchNormTrainGrad) {
  const TensorType x = f32({2, 3, 4, 4});
  return {{{x, x, f32({3})}, {}, {x}},
          {{"gradient of another shape",
            {x, f32({2, 3, 4, 5})},
            {},
            "the gradient f32[2,3,4,5] must have the input's type f32[2,3,4,4]"},
           {"weight of the wrong length",
            {x, x, f32({4})},
            {},
            "weight must be f32[3] (one per channel of f32[2,3,4,4]), got f32[4]"},
           {"rank 1", {f32({3}), f32({3})}, {}, "input must be [N, C, ...] (rank >= 2), got f32[3]"}}};
}

SHOAL_SHAPE_CASES(BatchNormTrainWeightGrad, OpKind::BatchNormTrainWeightGrad) {
  const TensorType x = f32({2, 3, 4, 4});
  return {{{x, x}, {}, {f32({3})}},
          {{"gradient of another shape",
            {x, f32({2, 3, 4, 5})},
            {},
            "the gradient f32[2,3,4,5] must have the input's type f32[2,3,4,4]"},
           {"rank 1", {f32({3}), f32({3})}, {}, "input must be [N, C, ...] (rank >= 2), got f32[3]"},
           {"negative eps", {x, x}, attrs({{"eps", -0.5}}), "eps must be >= 0, got -0.5"}}};
}

SHOAL_SHAPE_CASES(BatchNormStats, OpKind::BatchNormStats) {
  return {{{f32({2, 3, 4, 4})}, {}, {f32({2, 3})}},
          {{"one value per channel", {f32({1, 3})}, {}, "needs more than one value per channel, got f32[1,3]"},
           {"rank 1", {f32({8})}, {}, "input must be [N, C, ...] (rank >= 2), got f32[8]"},
           {"integer input", {i64({4, 3})}, {}, "input must be f32 or f64, got i64[4,3]"}}};
}

SHOAL_SHAPE_CASES(BatchNormUpdate, OpKind::BatchNormUpdate) {
  const TensorType c = f32({3}), stats = f32({2, 3});
  return {
      {{c, c, stats, i64({})}, {}, {}},
      {{"integer running_mean", {i64({3}), i64({3}), i64({2, 3})}, {}, "running_mean must be f32 or f64, got i64[3]"},
       {"running_mean of rank 2", {f32({1, 3}), f32({1, 3}), stats}, {}, "running_mean must have rank 1, got f32[1,3]"},
       {"running_var of another length",
        {c, f32({4}), stats},
        {},
        "running_var must be f32[3] like running_mean, got f32[4]"},
       {"stats of one row", {c, c, f32({3})}, {}, "stats must be f32[2,3] (mean and variance per channel), got f32[3]"},
       {"float batch count", {c, c, stats, f32({})}, {}, "num_batches_tracked must be i64[], got f32[]"},
       {"negative momentum", {c, c, stats}, attrs({{"momentum", -0.1}}), "momentum must be in [0, 1], got -0.1"}}};
}

SHOAL_SHAPE_CASES(BatchNormScale, OpKind::BatchNormScale) {
  return {{{f32({3}), f32({3})}, {}, {f32({3})}},
          {{"integer weight", {i32({3}), i32({3})}, {}, "weight must be f32 or f64, got i32[3]"},
           {"lengths differ", {f32({3}), f32({4})}, {}, "weight f32[3] and variance f32[4] must have one type"},
           {"negative eps", {f32({3}), f32({3})}, attrs({{"eps", -1e-3}}), "eps must be >= 0, got -0.001"}}};
}

SHOAL_SHAPE_CASES(LayerNorm, OpKind::LayerNorm) {
  const TensorType x = f32({2, 3, 4});
  return {{{x, f32({3, 4}), f32({3, 4})}, attrs({{"dims", int64_t(2)}}), {x}},
          {{"integer input", {i64({2, 3})}, {}, "input must be f32 or f64, got i64[2,3]"},
           {"dims 0", {x}, attrs({{"dims", int64_t(0)}}), "dims must be in [1, 3] (the rank of f32[2,3,4]), got 0"},
           {"dims above the rank",
            {x},
            attrs({{"dims", int64_t(4)}}),
            "dims must be in [1, 3] (the rank of f32[2,3,4]), got 4"},
           {"weight of the leading extent",
            {x, f32({3})},
            {},
            "weight must be f32[4] (the last 1 extents of f32[2,3,4]), got f32[3]"},
           {"bias of one extent too few",
            {x, f32({3, 4}), f32({4})},
            attrs({{"dims", int64_t(2)}}),
            "bias must be f32[3,4] (the last 2 extents of f32[2,3,4]), got f32[4]"},
           {"negative eps", {x}, attrs({{"eps", -1.0}}), "eps must be >= 0, got -1.0"}}};
}

SHOAL_SHAPE_CASES(LayerNormGrad, OpKind::LayerNormGrad) {
  const TensorType x = f32({2, 5});
  return {{{x, x, f32({5})}, {}, {x}},
          {{"gradient f64", {x, f64({2, 5})}, {}, "the gradient f64[2,5] must have the input's type f32[2,5]"},
           {"weight of the wrong length",
            {x, x, f32({2})},
            {},
            "weight must be f32[5] (the last 1 extents of f32[2,5]), got f32[2]"},
           {"dims above the rank",
            {x, x},
            attrs({{"dims", int64_t(3)}}),
            "dims must be in [1, 2] (the rank of f32[2,5]), got 3"}}};
}

SHOAL_SHAPE_CASES(GroupNorm, OpKind::GroupNorm) {
  const TensorType x = f32({2, 6, 3});
  const Attrs three = attrs({{"groups", int64_t(3)}});
  return {
      {{x, f32({6}), f32({6})}, three, {x}},
      {{"groups not dividing the channels",
        {x},
        attrs({{"groups", int64_t(4)}}),
        "groups must divide the 6 channels of f32[2,6,3], got 4"},
       {"zero groups", {x}, attrs({{"groups", int64_t(0)}}), "groups must be positive, got 0"},
       {"weight per group", {x, f32({3})}, three, "weight must be f32[6] (one per channel of f32[2,6,3]), got f32[3]"},
       {"rank 1", {f32({6})}, three, "input must be [N, C, ...] (rank >= 2), got f32[6]"},
       {"integer input", {i64({2, 6})}, three, "input must be f32 or f64, got i64[2,6]"}}};
}

SHOAL_SHAPE_CASES(GroupNormGrad, OpKind::GroupNormGrad) {
  const TensorType x = f32({2, 4, 3});
  const Attrs two = attrs({{"groups", int64_t(2)}});
  return {{{x, x, f32({4})}, two, {x}},
          {{"gradient of another shape",
            {x, f32({2, 4})},
            two,
            "the gradient f32[2,4] must have the input's type f32[2,4,3]"},
           {"groups not dividing the channels",
            {x, x},
            attrs({{"groups", int64_t(3)}}),
            "groups must divide the 4 channels of f32[2,4,3], got 3"},
           {"weight of the wrong length",
            {x, x, f32({2})},
            two,
            "weight must be f32[4] (one per channel of f32[2,4,3]), got f32[2]"}}};
}

SHOAL_SHAPE_CASES(Dropout, OpKind::Dropout) {
  return {{{f32({2, 3})}, attrs({{"rate", 0.1}}), {f32({2, 3})}},
          {{"rate above 1", {f32({2, 3})}, attrs({{"rate", 1.5}}), "rate must be in [0, 1], got 1.5"},
           {"integer input", {i64({2})}, {}, "input must be f32 or f64, got i64[2]"}}};
}

SHOAL_SHAPE_CASES(DropoutTrain, OpKind::DropoutTrain) {
  const TensorType x = f64({4, 5});
  return {{{x, f32({})}, attrs({{"rate", 0.25}, {"seed", int64_t(7)}}), {x}},
          {{"step of one element", {x, f32({1})}, {}, "step must be a float scalar (the step count), got f32[1]"},
           {"integer step", {x, i64({})}, {}, "step must be a float scalar (the step count), got i64[]"},
           {"negative rate", {x, f32({})}, attrs({{"rate", -0.25}}), "rate must be in [0, 1], got -0.25"},
           {"integer input", {i32({4}), f32({})}, {}, "input must be f32 or f64, got i32[4]"}}};
}

}  // namespace
}  // namespace shoal::test
