// Shape-rule cases of the conv family: a valid node per op and every error its rule reports.
#include "ir/shape_cases.h"
#include "ir/shape_inference.h"

namespace shoal {
namespace {

using namespace shoal::test;

SHOAL_SHAPE_CASES(Conv2d, OpKind::Conv2d) {
  {
    const TensorType x = f32({1, 1, 5, 5}), w = f32({1, 1, 3, 3});
    // Valid: (32 + 2 + 2 - 5)/2 + 1 = 16.
    return {
        {{f32({8, 3, 32, 32}), f32({16, 3, 5, 5}), f32({16})}, convAttrs({2, 2}, {2, 2, 2, 2}), {f32({8, 16, 16, 16})}},
        {{"integer input", {i64({1, 1, 5, 5}), w}, {}, "input must be f32 or f64, got i64[1,1,5,5]"},
         {"input rank 3", {f32({1, 5, 5}), w}, {}, "input (NCHW) must have rank 4, got f32[1,5,5]"},
         {"weight rank 2", {x, f32({3, 3})}, {}, "weight (OIHW) must have rank 4, got f32[3,3]"},
         {"weight f64", {x, f64({1, 1, 3, 3})}, {}, "element types differ: f32[1,1,5,5] vs f64[1,1,3,3]"},
         {"stride of one value", {x, w}, attrs({{"stride", Shape{1}}}), "attribute 'stride' needs 2 values, got 1"},
         {"padding of two values",
          {x, w},
          attrs({{"padding", Shape{1, 1}}}),
          "attribute 'padding' needs 4 values, got 2"},
         {"dilation of three values",
          {x, w},
          attrs({{"dilation", Shape{1, 1, 1}}}),
          "attribute 'dilation' needs 2 values, got 3"},
         {"zero stride", {x, w}, attrs({{"stride", Shape{0, 1}}}), "stride must be positive"},
         {"negative dilation", {x, w}, attrs({{"dilation", Shape{1, -1}}}), "dilation must be positive"},
         {"negative padding", {x, w}, attrs({{"padding", Shape{0, -1, 0, 0}}}), "padding must not be negative"},
         {"channels differ",
          {f32({1, 3, 5, 5}), f32({4, 1, 3, 3})},
          {},
          "input has 3 channels (f32[1,3,5,5]) but the weight expects 1 (f32[4,1,3,3])"},
         {"bias of the wrong length", {x, f32({4, 1, 3, 3}), f32({2})}, {}, "bias must be f32[4], got f32[2]"},
         {"bias of the wrong type", {x, w, f64({1})}, {}, "bias must be f32[1], got f64[1]"},
         {"kernel larger than the input",
          {f32({1, 1, 2, 2}), w},
          {},
          "kernel 3x3 does not fit the padded input 2x2 (f32[1,1,2,2])"},
         {"dilated kernel larger than the input",
          {x, w},
          attrs({{"dilation", Shape{3, 3}}}),
          "kernel 3x3 does not fit the padded input 5x5 (f32[1,1,5,5])"},
         {"zero groups", {x, w}, attrs({{"groups", int64_t(0)}}), "groups must be positive, got 0"},
         {"channels not divisible by groups",
          {f32({1, 6, 5, 5}), f32({4, 2, 3, 3})},
          attrs({{"groups", int64_t(4)}}),
          "input has 6 channels (f32[1,6,5,5]), not divisible by groups=4"},
         {"filters not divisible by groups",
          {f32({1, 6, 5, 5}), f32({5, 3, 3, 3})},
          attrs({{"groups", int64_t(2)}}),
          "the weight's 5 filters (f32[5,3,3,3]) are not divisible by groups=2"},
         {"channels per group differ",
          {f32({1, 6, 5, 5}), f32({4, 2, 3, 3})},
          attrs({{"groups", int64_t(2)}}),
          "input has 6 channels (f32[1,6,5,5]), 3 per group with groups=2, but the weight expects 2 per group "
          "(f32[4,2,3,3])"},
         {"depthwise weight for a grouped conv",
          {f32({1, 4, 5, 5}), f32({4, 1, 3, 3})},
          attrs({{"groups", int64_t(2)}}),
          "input has 4 channels (f32[1,4,5,5]), 2 per group with groups=2, but the weight expects 1 per group "
          "(f32[4,1,3,3])"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(Conv2dBackwardData, OpKind::Conv2dBackwardData) {
  {
    const TensorType dy = f32({2, 4, 4, 4}), w = f32({4, 1, 3, 3});
    const Attrs a = with(convAttrs(), "input_shape", Shape{2, 1, 6, 6});
    return {
        {{dy, w}, a, {f32({2, 1, 6, 6})}},
        {{"input_shape of 3 extents", {dy, w}, with(a, "input_shape", Shape{2, 1, 6}), "input_shape needs 4 extents"},
         {"input_shape with a zero",
          {dy, w},
          with(a, "input_shape", Shape{2, 1, 0, 6}),
          "input_shape 2x1x0x6 has a non-positive extent"},
         {"integer gradient",
          {i64({2, 4, 4, 4}), i64({4, 1, 3, 3})},
          a,
          "gradient must be f32 or f64, got i64[2,4,4,4]"},
         {"weight rank 3", {dy, f32({4, 1, 3})}, a, "weight (OIHW) must have rank 4, got f32[4,1,3]"},
         {"weight f64", {dy, f64({4, 1, 3, 3})}, a, "element types differ: f32[2,4,4,4] vs f64[4,1,3,3]"},
         {"stride of one value", {dy, w}, with(a, "stride", Shape{1}), "attribute 'stride' needs 2 values, got 1"},
         {"channels differ",
          {dy, w},
          with(a, "input_shape", Shape{2, 2, 6, 6}),
          "input has 2 channels (f32[2,2,6,6]) but the weight expects 1 (f32[4,1,3,3])"},
         {"kernel larger than the input",
          {dy, w},
          with(a, "input_shape", Shape{2, 1, 2, 2}),
          "kernel 3x3 does not fit the padded input 2x2 (f32[2,1,2,2])"},
         {"gradient of the wrong shape",
          {f32({2, 4, 5, 5}), w},
          a,
          "gradient f32[2,4,5,5] does not match the convolution's output f32[2,4,4,4]"},
         {"input channels not divisible by groups",
          {dy, w},
          with(with(a, "groups", int64_t(2)), "input_shape", Shape{2, 3, 6, 6}),
          "input has 3 channels (f32[2,3,6,6]), not divisible by groups=2"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(Conv2dBackwardWeight, OpKind::Conv2dBackwardWeight) {
  {
    const TensorType x = f32({2, 1, 6, 6}), dy = f32({2, 4, 4, 4});
    const Attrs a = with(convAttrs(), "weight_shape", Shape{4, 1, 3, 3});
    return {{{x, dy}, a, {f32({4, 1, 3, 3})}},
            {{"weight_shape of 3 extents",
              {x, dy},
              with(a, "weight_shape", Shape{4, 1, 3}),
              "weight_shape needs 4 extents"},
             {"weight_shape with a negative extent",
              {x, dy},
              with(a, "weight_shape", Shape{4, 1, -3, 3}),
              "weight_shape 4x1x-3x3 has a non-positive extent"},
             {"integer input", {i32({2, 1, 6, 6}), dy}, a, "input must be f32 or f64, got i32[2,1,6,6]"},
             {"input rank 2", {f32({6, 6}), dy}, a, "input (NCHW) must have rank 4, got f32[6,6]"},
             {"gradient f64", {x, f64({2, 4, 4, 4})}, a, "element types differ: f32[2,1,6,6] vs f64[2,4,4,4]"},
             {"padding of two values",
              {x, dy},
              with(a, "padding", Shape{1, 1}),
              "attribute 'padding' needs 4 values, got 2"},
             {"channels differ",
              {x, dy},
              with(a, "weight_shape", Shape{4, 2, 3, 3}),
              "input has 1 channels (f32[2,1,6,6]) but the weight expects 2 (f32[4,2,3,3])"},
             {"gradient of the wrong shape",
              {x, f32({2, 3, 4, 4})},
              a,
              "gradient f32[2,3,4,4] does not match the convolution's output f32[2,4,4,4]"},
             {"filters not divisible by groups",
              {f32({2, 2, 6, 6}), f32({2, 3, 4, 4})},
              with(with(a, "groups", int64_t(2)), "weight_shape", Shape{3, 1, 3, 3}),
              "the weight's 3 filters (f32[3,1,3,3]) are not divisible by groups=2"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(MaxPool2d, OpKind::MaxPool2d, OpKind::AvgPool2d) {
  {
    const TensorType x = f32({1, 1, 4, 4});
    const Attrs k2 = pool({2, 2}, {2, 2});
    return {{{f32({64, 32, 26, 26})}, k2, {f32({64, 32, 13, 13})}},
            {{"integer input", {i64({1, 1, 4, 4})}, k2, "input must be f32 or f64, got i64[1,1,4,4]"},
             {"input rank 3", {f32({1, 4, 4})}, k2, "input (NCHW) must have rank 4, got f32[1,4,4]"},
             {"kernel of one value", {x}, pool({2}, {2, 2}), "attribute 'kernel' needs 2 values, got 1"},
             {"stride of three values", {x}, pool({2, 2}, {2, 2, 2}), "attribute 'stride' needs 2 values, got 3"},
             {"padding of two values", {x}, pool({2, 2}, {2, 2}, {1, 1}), "attribute 'padding' needs 4 values, got 2"},
             {"zero kernel", {x}, pool({0, 2}, {2, 2}), "kernel and stride must be positive"},
             {"zero stride", {x}, pool({2, 2}, {2, 0}), "kernel and stride must be positive"},
             {"negative padding", {x}, pool({2, 2}, {2, 2}, {-1, 0, 0, 0}), "padding must not be negative"},
             {"padding as large as the window",
              {x},
              pool({2, 2}, {2, 2}, {0, 0, 2, 0}),
              "padding must be smaller than the window"},
             {"window larger than the input",
              {x},
              pool({5, 5}, {1, 1}),
              "window 5x5 does not fit the input f32[1,1,4,4]"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(MaxPool2dGrad, OpKind::MaxPool2dGrad) {
  {
    const TensorType x = f32({1, 2, 4, 4}), dy = f32({1, 2, 2, 2});
    const Attrs k2 = pool({2, 2}, {2, 2});
    return {{{x, dy}, k2, {x}},
            {{"integer operands",
              {i64({1, 2, 4, 4}), i64({1, 2, 2, 2})},
              k2,
              "operand must be f32 or f64, got i64[1,2,4,4]"},
             {"gradient f64", {x, f64({1, 2, 2, 2})}, k2, "gradient f64[1,2,2,2] does not match operand f32[1,2,4,4]"},
             {"input rank 3", {f32({2, 4, 4}), f32({2, 2, 2})}, k2, "input (NCHW) must have rank 4, got f32[2,4,4]"},
             {"kernel of three values", {x, dy}, pool({2, 2, 2}, {2, 2}), "attribute 'kernel' needs 2 values, got 3"},
             {"gradient of the wrong shape",
              {x, f32({1, 2, 3, 3})},
              k2,
              "gradient f32[1,2,3,3] does not match the pooled output f32[1,2,2,2]"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(AvgPool2dGrad, OpKind::AvgPool2dGrad) {
  {
    // Valid: 7x7, window 3, stride 2, padding 1 -> (7 + 2 - 3)/2 + 1 = 4.
    const TensorType dy = f32({1, 1, 4, 4});
    const Attrs a = with(pool({3, 3}, {2, 2}, {1, 1, 1, 1}), "input_shape", Shape{1, 1, 7, 7});
    return {{{dy}, a, {f32({1, 1, 7, 7})}},
            {{"input_shape of 2 extents", {dy}, with(a, "input_shape", Shape{7, 7}), "input_shape needs 4 extents"},
             {"input_shape with a negative extent",
              {dy},
              with(a, "input_shape", Shape{1, 1, -7, 7}),
              "input_shape 1x1x-7x7 has a non-positive extent"},
             {"integer gradient", {i64({1, 1, 4, 4})}, a, "gradient must be f32 or f64, got i64[1,1,4,4]"},
             {"window larger than the input",
              {dy},
              with(with(a, "kernel", Shape{10, 10}), "stride", Shape{1, 1}),
              "window 10x10 does not fit the input f32[1,1,7,7]"},
             {"gradient of the wrong shape",
              {f32({1, 1, 3, 3})},
              a,
              "gradient f32[1,1,3,3] does not match the pooled output f32[1,1,4,4]"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(FusedConv2d, OpKind::FusedConv2d) {
  {
    const TensorType x = f32({1, 1, 5, 5}), w = f32({2, 1, 3, 3});
    auto act = [](const char* a) { return attrs({{"activation", std::string(a)}}); };
    return {{{x, w, f32({2})}, act("relu"), {f32({1, 2, 3, 3})}},
            {{"unknown activation", {x, w}, act("gelu"), "activation must be relu, sigmoid or tanh, got 'gelu'"},
             {"channels differ",
              {f32({1, 3, 5, 5}), w},
              act("tanh"),
              "input has 3 channels (f32[1,3,5,5]) but the weight expects 1 (f32[2,1,3,3])"},
             {"channels not divisible by groups",
              {f32({1, 3, 5, 5}), w},
              with(act("relu"), "groups", int64_t(2)),
              "input has 3 channels (f32[1,3,5,5]), not divisible by groups=2"},
             {"four operands without output_expr", {x, w, f32({2}), f32({1, 2, 3, 3})}, act("relu"),
              "takes 2 or 3 operands without output_expr, got 4"},
             // output_expr (fuse-conv-epilogue; the valid case: below).
             {"an activation beside output_expr", {x, w, f32({2}), f32({1, 2, 3, 3})},
              with(act("relu"), "output_expr", std::string("a0 a1 add")),
              "with output_expr the program applies the activation: activation must be \"\", got 'relu'"},
             {"output_expr without the bias", {x, w, f32({1, 2, 3, 3})},
              with(act(""), "output_expr", std::string("a0 relu")),
              "output_expr needs the bias and at least one more operand, got 3 operands"},
             {"an output_expr operand of another shape", {x, w, f32({2}), f32({1, 2, 3, 4})},
              with(act(""), "output_expr", std::string("a0 a1 add")),
              "output_expr operand 3 must be f32[1,2,3,3] (the result's type), got f32[1,2,3,4]"},
             {"an output_expr operand of another type", {x, w, f32({2}), f64({1, 2, 3, 3})},
              with(act(""), "output_expr", std::string("a0 a1 add")),
              "output_expr operand 3 must be f32[1,2,3,3] (the result's type), got f64[1,2,3,3]"},
             {"output_expr naming an operand it lacks", {x, w, f32({2}), f32({1, 2, 3, 3})},
              with(act(""), "output_expr", std::string("a0 a2 add")),
              "output_expr: fused expression names operand 'a2', but there are 2"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(FusedConv2dPool, OpKind::FusedConv2dPool) {
  {
    // MNIST's first layer: conv 28x28 -> 26x26, pool 2x2/2 -> 13x13.
    const TensorType x = f32({64, 1, 28, 28}), w = f32({32, 1, 3, 3});
    auto a = [](Shape k, Shape s) {
      return attrs({{"activation", std::string("relu")}, {"pool_kernel", k}, {"pool_stride", s}});
    };
    auto withExpr = [&](const std::string& expr) { return with(a({2, 2}, {2, 2}), "input_expr", expr); };
    return {{{x, w, f32({32})}, a({2, 2}, {2, 2}), {f32({64, 32, 13, 13})}},
            {{"unknown activation",
              {x, w},
              attrs({{"activation", std::string("gelu")}, {"pool_kernel", Shape{2, 2}}, {"pool_stride", Shape{2, 2}}}),
              "activation must be relu, sigmoid or tanh, got 'gelu'"},
             {"channels differ",
              {f32({1, 3, 5, 5}), w},
              a({2, 2}, {2, 2}),
              "input has 3 channels (f32[1,3,5,5]) but the weight expects 1 (f32[32,1,3,3])"},
             {"pool kernel of one value", {x, w}, a({2}, {2, 2}), "attribute 'pool_kernel' needs 2 values, got 1"},
             {"pool stride zero", {x, w}, a({2, 2}, {0, 2}), "pool_kernel and pool_stride must be positive"},
             {"pool window larger than the conv output",
              {f32({1, 1, 5, 5}), w},
              a({4, 4}, {1, 1}),
              "pool window 4x4 does not fit the input f32[1,32,3,3]"},
             // The input read through input_expr (fuse-conv-prologue; the valid case: below).
             {"i64 input through input_expr", {i64({64, 1, 28, 28}), w}, withExpr("a0 relu"),
              "an input read through input_expr is u8, i8, i32, f32 or f64, got i64[64,1,28,28]"},
             {"input_expr over a second operand", {u8({64, 1, 28, 28}), w}, withExpr("a1 relu"),
              "input_expr: fused expression names operand 'a1', but there are 1"},
             {"u8 weights", {u8({64, 1, 28, 28}), u8({32, 1, 3, 3})}, withExpr("a0 relu"),
              "weight must be f32 or f64, got u8[32,1,3,3]"},
             {"bias of the input's type", {u8({64, 1, 28, 28}), w, u8({32})}, withExpr("a0 relu"),
              "bias must be f32[32], got u8[32]"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(ConvTranspose2d, OpKind::ConvTranspose2d) {
  {
    // Valid: (5-1)·2 - 1 - 0 + 1·2 + 1 + 1 = 11 rows; (6-1)·1 - 0 - 1 + 2·1 + 0 + 1 = 7 columns;
    // 3 outputs per group x 2 groups.
    const Attrs valid = attrs({{"stride", Shape{2, 1}},
                               {"padding", Shape{1, 0, 0, 1}},
                               {"output_padding", Shape{1, 0}},
                               {"dilation", Shape{1, 2}},
                               {"groups", int64_t(2)}});
    const TensorType x = f32({1, 1, 3, 3}), w = f32({1, 2, 3, 3});
    return {{{f32({2, 4, 5, 6}), f32({4, 3, 3, 2}), f32({6})}, valid, {f32({2, 6, 11, 7})}},
            {{"integer input", {i64({1, 1, 3, 3}), w}, {}, "input must be f32 or f64, got i64[1,1,3,3]"},
             {"input rank 3", {f32({1, 3, 3}), w}, {}, "input (NCHW) must have rank 4, got f32[1,3,3]"},
             {"weight rank 2", {x, f32({3, 3})}, {}, "weight ([C, O/groups, kh, kw]) must have rank 4, got f32[3,3]"},
             {"weight f64", {x, f64({1, 2, 3, 3})}, {}, "element types differ: f32[1,1,3,3] vs f64[1,2,3,3]"},
             {"stride of one value", {x, w}, attrs({{"stride", Shape{2}}}), "attribute 'stride' needs 2 values, got 1"},
             {"output_padding of one value",
              {x, w},
              attrs({{"output_padding", Shape{1}}}),
              "attribute 'output_padding' needs 2 values, got 1"},
             {"zero stride", {x, w}, attrs({{"stride", Shape{1, 0}}}), "stride must be positive"},
             {"zero dilation", {x, w}, attrs({{"dilation", Shape{0, 1}}}), "dilation must be positive"},
             {"negative padding", {x, w}, attrs({{"padding", Shape{0, 0, -1, 0}}}), "padding must not be negative"},
             {"output_padding as large as the stride",
              {x, w},
              attrs({{"stride", Shape{2, 2}}, {"output_padding", Shape{0, 2}}}),
              "output_padding 0x2 must be non-negative and smaller than the stride 2x2"},
             {"zero groups", {x, w}, attrs({{"groups", int64_t(0)}}), "groups must be positive, got 0"},
             {"channels differ",
              {f32({1, 2, 3, 3}), w},
              {},
              "input has 2 channels (f32[1,2,3,3]) but the weight expects 1 (f32[1,2,3,3])"},
             {"channels not divisible by groups",
              {f32({1, 3, 3, 3}), f32({3, 2, 3, 3})},
              attrs({{"groups", int64_t(2)}}),
              "input has 3 channels (f32[1,3,3,3]), not divisible by groups=2"},
             {"padding crops everything",
              {f32({1, 1, 1, 1}), f32({1, 1, 1, 1})},
              attrs({{"padding", Shape{1, 0, 0, 0}}}),
              "padding [1,0,0,0] crops the whole 1x1 output (f32[1,1,1,1])"},
             {"bias of the wrong length", {x, w, f32({1})}, {}, "bias must be f32[2], got f32[1]"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(GlobalAvgPool, OpKind::GlobalAvgPool) {
  return {{{f32({2, 3, 5, 7})}, {}, {f32({2, 3, 1, 1})}},
          {{"integer input", {i64({2, 3, 5, 7})}, {}, "input must be f32 or f64, got i64[2,3,5,7]"},
           {"input rank 2", {f32({5, 7})}, {}, "input (NCHW) must have rank 4, got f32[5,7]"}}};
}

}  // namespace
}  // namespace shoal

namespace shoal::test {
namespace {

// fused_conv2d_pool reading its input through input_expr: u8 pixels, seen (and computed) as
// the weights' f32.
TEST(ShapeInference, ConvPoolInputThroughItsDecodeIsSeenAsTheWeightsType) {
  Graph g("conv_prologue");
  Node* n = buildNode(g, OpKind::FusedConv2dPool, {u8({64, 1, 28, 28}), f32({32, 1, 3, 3}), f32({32})},
                      attrs({{"activation", std::string("relu")}, {"pool_kernel", Shape{2, 2}},
                             {"pool_stride", Shape{2, 2}}, {"input_expr", std::string("a0 scale(0.5,0.0)")}}));
  auto types = inferResultTypes(*n);
  ASSERT_TRUE(types.has_value()) << types.error().message();
  EXPECT_EQ((*types)[0], f32({64, 32, 13, 13}));
}

// fused_conv2d with output_expr (fuse-conv-epilogue): the bias, then a residual of the result's
// type; the program's a0 is the biased sum.
TEST(ShapeInference, ConvWithAResidualEpilogueKeepsTheConvsShape) {
  Graph g("conv_epilogue");
  Node* n = buildNode(g, OpKind::FusedConv2d, {f32({1, 1, 5, 5}), f32({2, 1, 3, 3}), f32({2}), f32({1, 2, 3, 3})},
                      attrs({{"activation", std::string("")}, {"output_expr", std::string("a0 a1 add relu")}}));
  auto types = inferResultTypes(*n);
  ASSERT_TRUE(types.has_value()) << types.error().message();
  EXPECT_EQ((*types)[0], f32({1, 2, 3, 3}));
}

}  // namespace
}  // namespace shoal::test
