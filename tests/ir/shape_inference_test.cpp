// Shape rules: for every op a valid node and its result types, and every error its rule can
// report (exact messages from inferResultTypes); the shape helpers (broadcasting, window sizes,
// TensorFlow "same" padding); and the verifier surfacing the errors at the node's location.
#include "ir/shape_inference.h"

#include <gtest/gtest.h>

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "ir/shape_cases.h"
#include "ir/verifier.h"

namespace shoal {
namespace {

using namespace shoal::test;

SHOAL_SHAPE_CASES(Input, OpKind::Input) {
  return {{{},
           attrs({{"name", std::string("x")}}),
           {u8({2, 1, 28, 28})},
           std::vector<ResultSpec>{{"x", u8({2, 1, 28, 28})}}},
          {{"zero extent",
            {},
            attrs({{"name", std::string("x")}}),
            "declared shape f32[2,0] has a non-positive extent",
            std::vector<ResultSpec>{{"x", f32({2, 0})}}},
           {"negative extent",
            {},
            attrs({{"name", std::string("x")}}),
            "declared shape f32[-1,3] has a non-positive extent",
            std::vector<ResultSpec>{{"x", f32({-1, 3})}}}}};
  return {};
}

SHOAL_SHAPE_CASES(Param, OpKind::Param) {
  return {{{}, {}, {f32({4, 3})}, std::vector<ResultSpec>{{"d.weight", f32({4, 3})}}},
          {{"zero extent",
            {},
            {},
            "declared shape f32[0,3] has a non-positive extent",
            std::vector<ResultSpec>{{"d.weight", f32({0, 3})}}}}};
  return {};
}

SHOAL_SHAPE_CASES(State, OpKind::State) {
  return {{{}, {}, {f32({4})}, std::vector<ResultSpec>{{"m", f32({4})}}},
          {{"negative extent",
            {},
            {},
            "declared shape f32[-2] has a non-positive extent",
            std::vector<ResultSpec>{{"m", f32({-2})}}}}};
  return {};
}

SHOAL_SHAPE_CASES(Constant, OpKind::Constant) {
  // The dtype comes from the declared result, the shape from the literal.
  return {{{},
           attrs({{"value", TensorLiteral{{2, 2}, {1, 2, 3, 4}}}}),
           {f64({2, 2})},
           std::vector<ResultSpec>{{"k", f64({2, 2})}}},
          {{"too few values",
            {},
            attrs({{"value", TensorLiteral{{2, 2}, {1, 2, 3}}}}),
            "the literal has 3 values, its shape 2x2 needs 4",
            std::vector<ResultSpec>{{"k", f32({2, 2})}}}}};
  return {};
}

SHOAL_SHAPE_CASES(Output, OpKind::Output) {
  return {{{i64({})}, attrs({{"name", std::string("out")}}), {}},
          {},
          "output only names its operand: every operand type is accepted and there is no result"};
  return {};
}

SHOAL_SHAPE_CASES(Cast, OpKind::Cast) {
  return {{{u8({2, 3})}, attrs({{"dtype", std::string("f32")}}), {f32({2, 3})}},
          {{"unknown dtype", {u8({2, 3})}, attrs({{"dtype", std::string("f8")}}), "unknown dtype 'f8'"},
           {"a C type name", {u8({2, 3})}, attrs({{"dtype", std::string("float")}}), "unknown dtype 'float'"}}};
  return {};
}

SHOAL_SHAPE_CASES(Scale, OpKind::Scale) {
  return {{{f64({2})}, attrs({{"scale", 2.0}}), {f64({2})}},
          {{"integer input", {i64({2})}, attrs({{"scale", 2.0}}), "input must be f32 or f64, got i64[2]"},
           {"u8 input", {u8({1, 28, 28})}, attrs({{"scale", 2.0}}), "input must be f32 or f64, got u8[1,28,28]"}}};
  return {};
}

SHOAL_SHAPE_CASES(Normalize, OpKind::Normalize) {
  {
    auto norm = [](std::vector<double> mean, std::vector<double> stdv) {
      return attrs({{"mean", std::move(mean)}, {"std", std::move(stdv)}});
    };
    return {{{f32({2, 3, 4, 4})}, norm({0.1, 0.2, 0.3}, {1, 2, 3}), {f32({2, 3, 4, 4})}},
            {{"u8 input", {u8({1, 3, 2, 2})}, norm({0.5}, {0.5}), "input must be f32 or f64, got u8[1,3,2,2]"},
             {"two means for three channels",
              {f32({1, 3, 2, 2})},
              norm({0.1, 0.2}, {1, 2}),
              "mean and std need 1 value or one per channel (3); got 2 and 2"},
             {"mean and std of different lengths",
              {f32({1, 3, 2, 2})},
              norm({0.1}, {1, 2, 3}),
              "mean and std need 1 value or one per channel (3); got 1 and 3"},
             {"zero std", {f32({1, 3, 2, 2})}, norm({0.1, 0.2, 0.3}, {1, 0, 3}), "std must not be 0"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(Flatten, OpKind::Flatten) {
  return {
      {{f32({2, 3, 4})}, {}, {f32({2, 12})}},
      {{"axis past the rank", {f32({2, 3, 4})}, attrs({{"axis", int64_t{4}}}), "axis 4 is out of range for f32[2,3,4]"},
       {"negative axis past the front",
        {f32({2, 3, 4})},
        attrs({{"axis", int64_t{-4}}}),
        "axis -4 is out of range for f32[2,3,4]"}}};
  return {};
}

SHOAL_SHAPE_CASES(Reshape, OpKind::Reshape) {
  {
    const TensorType x = f32({2, 6});
    auto to = [](Shape s) { return attrs({{"shape", std::move(s)}}); };
    return {{{x}, to({3, -1}), {f32({3, 4})}},
            {{"two -1 extents", {x}, to({-1, -1}), "at most one extent may be -1"},
             {"zero extent", {x}, to({0, 12}), "extent 0 must be positive or -1"},
             {"-1 that does not divide", {x}, to({5, -1}), "cannot reshape f32[2,6] to 5x-1"},
             {"element counts differ", {x}, to({5, 2}), "cannot reshape f32[2,6] (12 elements) to 5x2 (10 elements)"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(Dense, OpKind::Dense) {
  {
    const TensorType x = f32({2, 8}), w = f32({3, 8});
    return {{{x, w, f32({3})}, {}, {f32({2, 3})}},
            {{"integer input", {i64({2, 8}), w}, {}, "input must be f32 or f64, got i64[2,8]"},
             {"weight f64", {x, f64({3, 8})}, {}, "element types differ: f32[2,8] vs f64[3,8]"},
             {"input rank 4",
              {f32({2, 8, 1, 1}), w},
              {},
              "input ([batch, features]; flatten first) must have rank 2, got f32[2,8,1,1]"},
             {"weight rank 1", {x, f32({8})}, {}, "weight ([out, in]) must have rank 2, got f32[8]"},
             {"features differ",
              {x, f32({3, 5})},
              {},
              "input has 8 features (f32[2,8]) but the weight expects 5 (f32[3,5])"},
             {"bias of the wrong length", {x, w, f32({4})}, {}, "bias must be f32[3], got f32[4]"},
             {"bias of the wrong type", {x, w, f64({3})}, {}, "bias must be f32[3], got f64[3]"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(FusedDense, OpKind::FusedDense) {
  {
    const TensorType x = f32({2, 8}), w = f32({3, 8});
    auto act = [](const char* a) { return attrs({{"activation", std::string(a)}}); };
    return {{{x, w, f32({3})}, act("sigmoid"), {f32({2, 3})}},
            {{"unknown activation", {x, w}, act("swish"), "activation must be relu, sigmoid or tanh, got 'swish'"},
             {"features differ",
              {x, f32({3, 5})},
              act("relu"),
              "input has 8 features (f32[2,8]) but the weight expects 5 (f32[3,5])"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(FusedMlp, OpKind::FusedMlp) {
  {
    const TensorType x = f32({2, 8}), w1 = f32({5, 8}), b1 = f32({5}), w2 = f32({3, 5}), b2 = f32({3});
    auto act = [](const char* a) { return attrs({{"activation", std::string(a)}}); };
    return {{{x, w1, b1, w2, b2}, act("tanh"), {f32({2, 3})}},
            {{"unknown activation", {x, w1, b1, w2, b2}, act("gelu"), "activation must be relu, sigmoid or tanh, got 'gelu'"},
             {"input features differ",
              {x, f32({5, 7}), b1, w2, b2},
              act("relu"),
              "input has 8 features (f32[2,8]) but the first weight expects 7 (f32[5,7])"},
             {"hidden widths differ",
              {x, w1, b1, f32({3, 4}), b2},
              act("relu"),
              "the first weight makes 5 hidden features (f32[5,8]) but the second expects 4 (f32[3,4])"},
             {"first bias", {x, w1, f32({3}), w2, b2}, act("relu"), "first bias must be [5], got f32[3]"},
             {"second bias", {x, w1, b1, w2, f32({5})}, act("relu"), "second bias must be [3], got f32[5]"},
             {"mixed types", {x, w1, b1, TensorType{DType::F64, {3, 5}}, b2}, act("relu"), "element types differ: f32[2,8] vs f64[3,5]"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(FusedElementwise, OpKind::FusedElementwise) {
  {
    const TensorType t = f32({2, 3});
    auto e = [](const char* x) { return attrs({{"expr", std::string(x)}}); };
    auto ed = [](const char* x, const char* dtype) { return attrs({{"expr", std::string(x)}, {"dtype", std::string(dtype)}}); };
    // A decoded input: the u8 operand is read as the chain's f32 (a folded cast).
    return {{{TensorType{DType::U8, {2, 3}}, t}, ed("a0 a1 mul 0.5 add relu", "f32"), {t}},
            {{"integer operands", {i32({2, 3})}, e("a0 relu"), "operands must be f32 or f64, got i32[2,3]"},
             {"integer dtype", {i32({2, 3})}, ed("a0 relu", "i32"), "dtype must be f32 or f64, got i32"},
             {"unknown dtype", {t}, ed("a0 relu", "float"), "unknown dtype 'float'"},
             {"i64 operand", {t, i64({2, 3})}, ed("a0 a1 add", "f32"), "operand 1 is i64[2,3]: a fused chain in f32 reads u8, i8, i32, f32 or f64"},
             {"operands differ",
              {t, f32({3, 2})},
              e("a0 a1 add"),
              "operand 1 is f32[3,2], operand 0 is f32[2,3]: fused operands share one shape"},
             {"unknown operation", {t}, e("a0 swish"), "unknown operation 'swish' in fused expression"},
             {"missing operand", {t}, e("a0 a1 add"), "fused expression names operand 'a1', but there are 1"},
             {"stack underflow", {t}, e("a0 add"), "'add' needs 2 values in fused expression 'a0 add'"},
             {"two values left", {t, t}, e("a0 a1"), "fused expression 'a0 a1' leaves 2 values, expected 1"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(MatMul, OpKind::MatMul) {
  {
    auto t = [](int64_t ta, int64_t tb) { return attrs({{"transpose_a", ta}, {"transpose_b", tb}}); };
    return {
        {{f32({3, 3}), f32({3, 2})}, {}, {f32({3, 2})}},
        {{"integer left operand", {i32({3, 3}), i32({3, 2})}, {}, "left operand must be f32 or f64, got i32[3,3]"},
         {"f32 with f64", {f32({3, 3}), f64({3, 2})}, {}, "element types differ: f32[3,3] vs f64[3,2]"},
         {"left rank 1", {f32({3}), f32({3, 2})}, {}, "left operand must have rank 2, got f32[3]"},
         {"right rank 3", {f32({3, 3}), f32({1, 3, 2})}, {}, "right operand must have rank 2, got f32[1,3,2]"},
         {"inner dimensions", {f32({3, 3}), f32({2, 2})}, {}, "inner dimensions differ: 3 (f32[3,3]) vs 2 (f32[2,2])"},
         {"inner dimensions, a transposed",
          {f32({3, 2}), f32({2, 4})},
          t(1, 0),
          "inner dimensions differ: 3 (f32[3,2], transposed) vs 2 (f32[2,4])"},
         {"inner dimensions, b transposed",
          {f32({2, 3}), f32({4, 2})},
          t(0, 1),
          "inner dimensions differ: 3 (f32[2,3]) vs 2 (f32[4,2], transposed)"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(Relu, OpKind::Relu, OpKind::Sigmoid, OpKind::Tanh, OpKind::Softplus, OpKind::Neg) {
  return {{{f64({2, 3})}, {}, {f64({2, 3})}},
          {{"integer input", {i64({2})}, {}, "input must be f32 or f64, got i64[2]"}}};
  return {};
}

SHOAL_SHAPE_CASES(ReluGrad, OpKind::ReluGrad, OpKind::SigmoidGrad, OpKind::TanhGrad) {
  return {{{f32({2, 3}), f32({2, 3})}, {}, {f32({2, 3})}},
          {{"gradient shape", {f32({2, 3}), f32({3, 2})}, {}, "gradient f32[3,2] does not match operand f32[2,3]"},
           {"gradient type", {f32({2, 3}), f64({2, 3})}, {}, "gradient f64[2,3] does not match operand f32[2,3]"},
           {"integer operands", {i64({2, 3}), i64({2, 3})}, {}, "operand must be f32 or f64, got i64[2,3]"}}};
  return {};
}

SHOAL_SHAPE_CASES(Add, OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div) {
  return {{{f32({2, 3}), f32({3})}, {}, {f32({2, 3})}},
          {{"shapes that do not broadcast", {f32({2, 3}), f32({2})}, {}, "shapes f32[2,3] and f32[2] do not broadcast"},
           {"f32 with f64", {f32({2, 3}), f64({3})}, {}, "element types differ: f32[2,3] vs f64[3]"},
           {"i64 with i32", {i64({2}), i32({2})}, {}, "element types differ: i64[2] vs i32[2]"}}};
  return {};
}

SHOAL_SHAPE_CASES(SumTo, OpKind::SumTo) {
  return {{{f32({2, 3})}, attrs({{"shape", Shape{3}}}), {f32({3})}},
          {{"target that does not broadcast",
            {f32({2, 3})},
            attrs({{"shape", Shape{2}}}),
            "f32[2,3] does not broadcast from 2"},
           {"target larger than the input",
            {f32({2, 3})},
            attrs({{"shape", Shape{4, 2, 3}}}),
            "f32[2,3] does not broadcast from 4x2x3"}}};
  return {};
}

SHOAL_SHAPE_CASES(Softmax, OpKind::Softmax, OpKind::LogSoftmax) {
  return {{{f32({2, 10, 3})}, attrs({{"axis", int64_t{1}}}), {f32({2, 10, 3})}},
          {{"integer input", {i64({2, 3})}, {}, "input must be f32 or f64, got i64[2,3]"},
           {"scalar", {f32({})}, {}, "input must have rank >= 1, got a scalar"},
           {"axis out of range",
            {f32({2, 3})},
            attrs({{"axis", int64_t{2}}}),
            "axis 2 is out of range for rank 2 (valid: -2 to 1)"},
           {"negative axis out of range",
            {f32({2, 3})},
            attrs({{"axis", int64_t{-3}}}),
            "axis -3 is out of range for rank 2 (valid: -2 to 1)"}}};
  return {};
}

SHOAL_SHAPE_CASES(SoftmaxGrad, OpKind::SoftmaxGrad, OpKind::LogSoftmaxGrad) {
  return {{{f32({2, 10}), f32({2, 10})}, attrs({{"axis", int64_t{0}}}), {f32({2, 10})}},
          {{"gradient shape", {f32({2, 10}), f32({2, 3})}, {}, "gradient f32[2,3] does not match operand f32[2,10]"},
           {"integer operands", {i32({2, 10}), i32({2, 10})}, {}, "operand must be f32 or f64, got i32[2,10]"},
           {"scalar", {f32({}), f32({})}, {}, "input must have rank >= 1, got a scalar"},
           {"axis out of range",
            {f32({2, 3}), f32({2, 3})},
            attrs({{"axis", int64_t{2}}}),
            "axis 2 is out of range for rank 2 (valid: -2 to 1)"}}};
  return {};
}

SHOAL_SHAPE_CASES(ArgMax, OpKind::ArgMax) {
  return {{{f32({4, 10})}, {}, {i64({4})}},
          {{"scalar", {f32({})}, {}, "input must have rank >= 1"},
           {"axis 0", {f32({4, 10})}, attrs({{"axis", int64_t{0}}}), "only the last axis is supported"}}};
  return {};
}

SHOAL_SHAPE_CASES(Accuracy, OpKind::Accuracy, OpKind::SoftmaxCrossEntropy) {
  {
    // accuracy is f32[] whatever the logits; the loss has the logits' type.
    TensorType out = kind == OpKind::Accuracy ? f32({}) : f64({});
    return {{{f64({4, 10}), u8({4})}, {}, {out}},
            {{"integer logits", {i64({4, 10}), i64({4})}, {}, "prediction must be f32 or f64, got i64[4,10]"},
             {"logits rank 3",
              {f32({4, 10, 1}), i64({4})},
              {},
              "logits ([batch, classes]) must have rank 2, got f32[4,10,1]"},
             {"float labels", {f32({4, 10}), f32({4})}, {}, "labels must be integer class ids, got f32[4]"},
             {"labels for another batch",
              {f32({4, 10}), i64({5})},
              {},
              "labels i64[5] do not match logits f32[4,10]: expected [4]"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(SoftmaxCrossEntropyGrad, OpKind::SoftmaxCrossEntropyGrad) {
  {
    const TensorType logits = f32({4, 10}), labels = i64({4}), dloss = f32({});
    return {
        {{logits, labels, dloss}, {}, {logits}},
        {{"integer logits", {i64({4, 10}), labels, dloss}, {}, "prediction must be f32 or f64, got i64[4,10]"},
         {"labels for another batch",
          {logits, i64({3}), dloss},
          {},
          "labels i64[3] do not match logits f32[4,10]: expected [4]"},
         {"float labels", {logits, f32({4}), dloss}, {}, "labels must be integer class ids, got f32[4]"},
         {"loss gradient not a scalar", {logits, labels, f32({1})}, {}, "loss gradient must be a scalar, got f32[1]"},
         {"loss gradient f64",
          {logits, labels, f64({})},
          {},
          "loss gradient f64[] must have the element type of f32[4,10]"}}};
  }
  return {};
}

SHOAL_SHAPE_CASES(Mse, OpKind::Mse) {
  return {{{f32({2, 3}), f32({2, 3})}, {}, {f32({})}},
          {{"target shape",
            {f32({2, 3}), f32({3, 2})},
            {},
            "prediction f32[2,3] and target f32[3,2] must have the same type"},
           {"target type",
            {f32({2, 3}), f64({2, 3})},
            {},
            "prediction f32[2,3] and target f64[2,3] must have the same type"},
           {"integer prediction", {i64({2, 3}), i64({2, 3})}, {}, "prediction must be f32 or f64, got i64[2,3]"}}};
  return {};
}

SHOAL_SHAPE_CASES(MseGrad, OpKind::MseGrad) {
  {
    const TensorType p = f32({2, 3});
    return {
        {{p, p, f32({})}, {}, {p}},
        {{"target shape", {p, f32({3}), f32({})}, {}, "prediction f32[2,3] and target f32[3] must have the same type"},
         {"integer prediction", {i64({2, 3}), i64({2, 3}), f32({})}, {}, "prediction must be f32 or f64, got i64[2,3]"},
         {"loss gradient not a scalar", {p, p, f32({2})}, {}, "loss gradient must be a scalar, got f32[2]"},
         {"loss gradient f64", {p, p, f64({})}, {}, "loss gradient f64[] must have the element type of f32[2,3]"}}};
  }
  return {};
}

// Every registered case of `kind` (none: the tests fail naming the op).
OpShapeCases casesFor(OpKind kind) {
  auto* fn = ShapeCaseRegistry::find(kind);
  return fn ? fn(kind) : OpShapeCases{};
}

class ShapeInferenceOp : public ::testing::TestWithParam<OpKind> {};

TEST_P(ShapeInferenceOp, ValidNodeGetsItsResultTypes) {
  OpKind kind = GetParam();
  OpShapeCases cases = casesFor(kind);
  Graph g;
  Node* n = buildNode(g, kind, cases.valid.operands, cases.valid.attrs, cases.valid.results);
  DiagnosticEngine diags;
  ASSERT_TRUE(verifyNodeStructure(*n, diags)) << diags.render();
  auto types = inferResultTypes(*n);
  ASSERT_TRUE(types.has_value()) << types.error().str();
  EXPECT_EQ(*types, cases.valid.types);
  EXPECT_EQ(types->size(), size_t(opInfo(kind).numResults));
}

TEST_P(ShapeInferenceOp, ReportsEachErrorWithOpNodeAndShapes) {
  OpKind kind = GetParam();
  OpShapeCases cases = casesFor(kind);
  if (cases.errors.empty()) {
    EXPECT_FALSE(cases.cannotFail.empty())
        << "op " << opName(kind) << " has neither error cases nor a reason it cannot fail";
    return;
  }
  EXPECT_TRUE(cases.cannotFail.empty());
  for (const ErrorCase& c : cases.errors) {
    SCOPED_TRACE(c.label);
    Graph g;
    Node* n = buildNode(g, kind, c.operands, c.attrs, c.results);
    DiagnosticEngine diags;
    ASSERT_TRUE(verifyNodeStructure(*n, diags)) << "the node itself must be well-formed: " << diags.render();
    auto types = inferResultTypes(*n);
    ASSERT_FALSE(types.has_value()) << "accepted; expected: " << c.message;
    EXPECT_EQ(types.error().message(), std::string(opName(kind)) + " 'n1': " + c.message);
    EXPECT_EQ(types.error().location().str(), "model.mmd:7:5");
    EXPECT_EQ(types.error().location().node, "n1");
  }
}

INSTANTIATE_TEST_SUITE_P(ShapeInference, ShapeInferenceOp, ::testing::ValuesIn(allOps()),
                         [](const ::testing::TestParamInfo<OpKind>& info) { return std::string(opName(info.param)); });

// Without a pipeline node id the message names the op by its result instead.
TEST(ShapeInference, ErrorNamesTheResultWithoutANodeId) {
  Graph g;
  Value* x = g.addNode(OpKind::Input, {}, attrs({{"name", std::string("x")}}), {{"x", i64({2})}})->result();
  Node* n = g.addNode(OpKind::Relu, {x}, {}, {{"h1", TensorType{}}}, Location{"m.ir", 3, 1, ""});
  auto types = inferResultTypes(*n);
  ASSERT_FALSE(types.has_value());
  EXPECT_EQ(types.error().str(), "m.ir:3:1: error: relu 'h1': input must be f32 or f64, got i64[2]");
}

// ---- helpers -----------------------------------------------------------------------------

TEST(ShapeInference, BroadcastShapes) {
  EXPECT_EQ(broadcastShapes({2, 3}, {3}), (Shape{2, 3}));
  EXPECT_EQ(broadcastShapes({3}, {2, 3}), (Shape{2, 3}));
  EXPECT_EQ(broadcastShapes({2, 1}, {1, 3}), (Shape{2, 3}));
  EXPECT_EQ(broadcastShapes({}, {4}), (Shape{4}));
  EXPECT_EQ(broadcastShapes({}, {}), (Shape{}));
  EXPECT_EQ(broadcastShapes({5, 1, 4}, {3, 1}), (Shape{5, 3, 4}));
  EXPECT_EQ(broadcastShapes({8, 1, 6, 1}, {7, 1, 5}), (Shape{8, 7, 6, 5}));  // NumPy's documented example
  EXPECT_EQ(broadcastShapes({2, 3}, {2, 3}), (Shape{2, 3}));
  EXPECT_EQ(broadcastShapes({2, 3}, {4}), std::nullopt);
  EXPECT_EQ(broadcastShapes({2, 3}, {3, 3}), std::nullopt);
  EXPECT_EQ(broadcastShapes({2, 1}, {8, 4, 3}), std::nullopt);
}

TEST(ShapeInference, WindowOutputSize) {
  EXPECT_EQ(windowOutputSize(28, 3, 1, 0, 0), 26);   // valid 3x3
  EXPECT_EQ(windowOutputSize(28, 3, 1, 1, 1), 28);   // padded by 1
  EXPECT_EQ(windowOutputSize(5, 3, 2, 1, 1), 3);     // (5 + 2 - 3)/2 + 1
  EXPECT_EQ(windowOutputSize(5, 2, 2, 0, 0), 2);     // floor: the last row is dropped
  EXPECT_EQ(windowOutputSize(26, 2, 2, 0, 0), 13);   // the MNIST pool
  EXPECT_EQ(windowOutputSize(5, 3, 1, 0, 0, 2), 1);  // dilated span 5 fits exactly
  EXPECT_EQ(windowOutputSize(7, 3, 2, 1, 1, 2), 3);  // (9 - 5)/2 + 1
  EXPECT_EQ(windowOutputSize(4, 3, 1, 0, 1), 3);     // asymmetric padding
  EXPECT_LE(windowOutputSize(5, 3, 1, 0, 0, 3), 0);  // span 7 > 5
  EXPECT_LE(windowOutputSize(2, 3, 1, 0, 0), 0);
}

TensorType inferOne(OpKind kind, const std::vector<TensorType>& operands, Attrs a);

TEST(ShapeInference, WindowOutputSizeNeverOverflows) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(windowOutputSize(8, 2, kMax, 0, 0), 1);                     // one window, a stride past everything
  EXPECT_EQ(windowOutputSize(kMax, 1, 1, 0, 0), kMax);                  // the largest extent, exactly
  EXPECT_EQ(windowOutputSize(8, 3, 1, 0, 0, (int64_t(1) << 62) - 1), 0);  // span 2^63 - 1 fits (and does not fit 8)
  EXPECT_EQ(windowOutputSize(8, 3, 1, 0, 0, int64_t(1) << 62), std::nullopt);  // 2·2^62 overflows
  EXPECT_EQ(windowOutputSize(8, 3, 1, kMax, 1), std::nullopt);          // padded extent overflows
  EXPECT_EQ(windowOutputSize(kMax, 1, 1, 1, 0), std::nullopt);
  EXPECT_EQ(windowOutputSize(8, 2, 0, 0, 0), std::nullopt);             // stride 0: no division by zero
}

TEST(ShapeInference, SamePaddingNeverOverflows) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  // Issue "Hardening" 2: maxpool size=2x2 stride=INT64_MAX padding=same. ceil(8 / s) = 1 window
  // and no padding (ceil used to be formed as in + s - 1, which overflowed).
  EXPECT_EQ(samePadding(8, 8, 2, 2, kMax, kMax, 1, 1), (std::vector<int64_t>{0, 0, 0, 0}));
  EXPECT_EQ(samePadding(kMax, kMax, 3, 3, 1, 1, 1, 1), (std::vector<int64_t>{1, 1, 1, 1}));
  // conv2d dilation=2^62, kernel 3: the true padding (about 2^63) does not fit; it saturates, and
  // the shape rule then reports the dilated kernel (ConvWithOverflowingDilation below).
  auto huge = samePadding(8, 8, 3, 3, 1, 1, int64_t(1) << 62, int64_t(1) << 62);
  EXPECT_EQ(huge[0] + huge[2], kMax);
  EXPECT_EQ(huge[1] + huge[3], kMax);
  // Out-of-range arguments (the shape rules report them) give zero padding, not a trap.
  EXPECT_EQ(samePadding(8, 8, 2, 2, 0, -1, 1, 1), (std::vector<int64_t>{0, 0, 0, 0}));
  EXPECT_EQ(samePadding(8, 8, std::numeric_limits<int64_t>::min(), 0, 1, 1, 1, 1), (std::vector<int64_t>{0, 0, 0, 0}));
}

TEST(ShapeInference, HugeTypesAreRejectedNotWrapped) {
  // Issue "Hardening" 1: extents whose product overflows int64, or whose bytes pass 2^48.
  Graph g;
  Node* in = buildNode(g, OpKind::Input, {}, attrs({{"name", std::string("x")}}),
                       std::vector<ResultSpec>{{"x", f32({4294967296, 4294967296})}});
  auto r = inferResultTypes(*in);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "input 'n1': result %x f32[4294967296,4294967296] is too large: its extents multiply past 2^63 elements");
  // A weight [4611686018427387905, 4]: 2^64 + 4 elements used to wrap to 4.
  Graph g2;
  Node* dense = buildNode(g2, OpKind::Dense, {f32({1, 4}), f32({4611686018427387905, 4})}, {});
  auto d = inferResultTypes(*dense);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().message(),
            "dense 'n1': operand %in1 f32[4611686018427387905,4] is too large: its extents multiply past 2^63 elements");
  // Elements that fit, bytes that do not: [2^62] f32 is 2^64 bytes; [2^47] f32 is 2^49.
  Graph g3;
  Node* relu = buildNode(g3, OpKind::Relu, {f32({int64_t(1) << 47})}, {});
  auto rr = inferResultTypes(*relu);
  ASSERT_FALSE(rr);
  EXPECT_EQ(rr.error().message(), "relu 'n1': operand %in0 f32[140737488355328] is too large: it needs 562949953421312 "
                                  "bytes, more than the 281474976710656 (2^48) a tensor may hold");
  // A dense whose result alone is too large (operands fine): [2^24, 2^22] x [2^22, 2^22]^T.
  Graph g4;
  Node* big = buildNode(g4, OpKind::Dense, {f32({int64_t(1) << 24, 4}), f32({int64_t(1) << 23, 4})}, {});
  auto b = inferResultTypes(*big);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().message(), "dense 'n1': result %r f32[16777216,8388608] is too large: it needs 562949953421312 "
                                 "bytes, more than the 281474976710656 (2^48) a tensor may hold");
  // reshape to extents whose product overflows, with a -1 (the product of the known ones).
  Graph g5;
  Node* reshape = buildNode(g5, OpKind::Reshape, {f32({4, 4})},
                            attrs({{"shape", Shape{4294967296, 4294967296, -1}}}));
  auto rs = inferResultTypes(*reshape);
  ASSERT_FALSE(rs);
  EXPECT_EQ(rs.error().message(),
            "reshape 'n1': cannot reshape f32[4,4] to 4294967296x4294967296x-1: its extents multiply past 2^63");
}

TEST(ShapeInference, ConvWithOverflowingDilation) {
  // Issue "Hardening" 2: conv2d dilation=4611686018427387904 padding=same.
  constexpr int64_t d = int64_t(1) << 62;
  Graph g;
  auto pad = samePadding(8, 8, 3, 3, 1, 1, d, d);
  Node* n = buildNode(g, OpKind::Conv2d, {f32({1, 1, 8, 8}), f32({1, 1, 3, 3})}, convAttrs({1, 1}, pad, {d, d}));
  auto r = inferResultTypes(*n);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "conv2d 'n1': kernel 3x3 dilated by 4611686018427387904x4611686018427387904 spans more "
                                 "than 2^63 pixels");
  // A padding that overflows the extent (written in IR text, say).
  Graph g2;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  Node* p = buildNode(g2, OpKind::Conv2d, {f32({1, 1, 8, 8}), f32({1, 1, 3, 3})}, convAttrs({1, 1}, {kMax, 0, 1, 0}));
  auto rp = inferResultTypes(*p);
  ASSERT_FALSE(rp);
  EXPECT_EQ(rp.error().message(),
            "conv2d 'n1': padding 9223372036854775807x0x1x0 of the input f32[1,1,8,8] overflows 64-bit extents");
  // maxpool 2x2, stride INT64_MAX, "same": one window.
  EXPECT_EQ(inferOne(OpKind::MaxPool2d, {f32({1, 1, 8, 8})}, pool({2, 2}, {kMax, kMax}, samePadding(8, 8, 2, 2, kMax, kMax, 1, 1))),
            f32({1, 1, 1, 1}));
}

TEST(ShapeInference, SamePaddingFollowsTensorFlow) {
  // [top, left, bottom, right]; total = max(0, (ceil(in/s) - 1)·s + d(k-1) + 1 - in), the odd
  // pixel after (bottom/right).
  EXPECT_EQ(samePadding(28, 28, 3, 3, 1, 1, 1, 1), (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(samePadding(5, 5, 2, 2, 1, 1, 1, 1), (std::vector<int64_t>{0, 0, 1, 1}));  // total 1
  EXPECT_EQ(samePadding(5, 5, 3, 3, 2, 2, 1, 1), (std::vector<int64_t>{1, 1, 1, 1}));  // out 3: 2·2 + 3 - 5 = 2
  EXPECT_EQ(samePadding(6, 6, 3, 3, 2, 2, 1, 1), (std::vector<int64_t>{0, 0, 1, 1}));  // out 3: 2·2 + 3 - 6 = 1
  // H: out 3, total 1 -> 0/1; W (k 4, s 1): out 7, total 6 + 4 - 7 = 3 -> 1/2.
  EXPECT_EQ(samePadding(6, 7, 3, 4, 2, 1, 1, 1), (std::vector<int64_t>{0, 1, 1, 2}));
  EXPECT_EQ(samePadding(5, 5, 3, 3, 1, 1, 2, 2), (std::vector<int64_t>{2, 2, 2, 2}));  // dilated span 5
  EXPECT_EQ(samePadding(5, 5, 1, 1, 2, 2, 1, 1), (std::vector<int64_t>{0, 0, 0, 0}));  // stride > kernel
  EXPECT_EQ(samePadding(4, 4, 1, 1, 3, 3, 1, 1), (std::vector<int64_t>{0, 0, 0, 0}));  // negative total clamps to 0
}

TEST(ShapeInference, SamePaddingGivesCeilOfInputOverStride) {
  for (int64_t in : {1, 4, 5, 7, 28})
    for (int64_t k : {1, 2, 3, 5})
      for (int64_t s : {1, 2, 3})
        for (int64_t d : {1, 2}) {
          auto p = samePadding(in, in, k, k, s, s, d, d);
          SCOPED_TRACE(testing::Message() << "in " << in << " k " << k << " s " << s << " d " << d);
          EXPECT_EQ(windowOutputSize(in, k, s, p[0], p[2], d), (in + s - 1) / s);
          EXPECT_GE(p[2], p[0]);
          EXPECT_LE(p[2] - p[0], 1);
        }
}

// ---- result types of conv and pool nodes --------------------------------------------------

TensorType inferOne(OpKind kind, const std::vector<TensorType>& operands, Attrs a) {
  Graph g;
  Node* n = buildNode(g, kind, operands, std::move(a));
  auto types = inferResultTypes(*n);
  if (!types) {
    ADD_FAILURE() << types.error().str();
    return {};
  }
  return types->at(0);
}

TEST(ShapeInference, ConvOutputShapes) {
  const TensorType x = f32({64, 1, 28, 28}), w = f32({32, 1, 3, 3});
  EXPECT_EQ(inferOne(OpKind::Conv2d, {x, w}, {}), f32({64, 32, 26, 26}));  // valid
  EXPECT_EQ(inferOne(OpKind::Conv2d, {x, w, f32({32})}, convAttrs({1, 1}, {1, 1, 1, 1})), f32({64, 32, 28, 28}));
  EXPECT_EQ(inferOne(OpKind::Conv2d, {x, w}, convAttrs({2, 2})), f32({64, 32, 13, 13}));  // (28-3)/2+1
  EXPECT_EQ(inferOne(OpKind::Conv2d, {x, w}, convAttrs({1, 1}, {0, 0, 0, 0}, {2, 2})), f32({64, 32, 24, 24}));
  EXPECT_EQ(inferOne(OpKind::Conv2d, {x, f32({8, 1, 3, 5})}, convAttrs({1, 2}, {0, 1, 0, 0})),
            f32({64, 8, 26, 13}));  // H: 28 - 3 + 1 = 26; W: (28 + 1 - 5)/2 + 1 = 13
  EXPECT_EQ(inferOne(OpKind::Conv2d, {f64({1, 3, 5, 5}), f64({2, 3, 5, 5})}, {}), f64({1, 2, 1, 1}));
  // "same" padding keeps 28x28 at stride 1 and gives ceil(28/2) = 14 at stride 2.
  auto same1 = samePadding(28, 28, 3, 3, 1, 1, 1, 1), same2 = samePadding(28, 28, 3, 3, 2, 2, 1, 1);
  EXPECT_EQ(inferOne(OpKind::Conv2d, {x, w}, convAttrs({1, 1}, same1)), f32({64, 32, 28, 28}));
  EXPECT_EQ(inferOne(OpKind::Conv2d, {x, w}, convAttrs({2, 2}, same2)), f32({64, 32, 14, 14}));
  // The gradients take their result types from the attributes.
  EXPECT_EQ(inferOne(OpKind::Conv2dBackwardData, {f32({64, 32, 13, 13}), w},
                     with(convAttrs({2, 2}), "input_shape", Shape{64, 1, 28, 28})),
            x);
  EXPECT_EQ(inferOne(OpKind::Conv2dBackwardWeight, {x, f32({64, 32, 14, 14})},
                     with(convAttrs({2, 2}, same2), "weight_shape", Shape{32, 1, 3, 3})),
            w);
}

TEST(ShapeInference, PoolOutputShapes) {
  EXPECT_EQ(inferOne(OpKind::MaxPool2d, {f32({64, 32, 26, 26})}, pool({2, 2}, {2, 2})), f32({64, 32, 13, 13}));
  EXPECT_EQ(inferOne(OpKind::MaxPool2d, {f32({1, 1, 5, 5})}, pool({2, 2}, {2, 2})), f32({1, 1, 2, 2}));  // floor
  EXPECT_EQ(inferOne(OpKind::MaxPool2d, {f32({1, 1, 2, 2})}, pool({2, 2}, {1, 1}, {1, 1, 1, 1})), f32({1, 1, 3, 3}));
  EXPECT_EQ(inferOne(OpKind::AvgPool2d, {f64({2, 3, 7, 7})}, pool({3, 3}, {2, 2}, {1, 1, 1, 1})), f64({2, 3, 4, 4}));
  EXPECT_EQ(inferOne(OpKind::AvgPool2d, {f32({1, 1, 3, 2})}, pool({3, 1}, {1, 1})), f32({1, 1, 1, 2}));
  EXPECT_EQ(inferOne(OpKind::MaxPool2dGrad, {f32({1, 1, 5, 5}), f32({1, 1, 2, 2})}, pool({2, 2}, {2, 2})),
            f32({1, 1, 5, 5}));
  EXPECT_EQ(inferOne(OpKind::AvgPool2dGrad, {f32({1, 1, 2, 2})},
                     with(pool({2, 2}, {2, 2}), "input_shape", Shape{1, 1, 5, 5})),
            f32({1, 1, 5, 5}));
}

TEST(ShapeInference, OtherResultTypes) {
  EXPECT_EQ(inferOne(OpKind::Flatten, {f32({2, 3, 4})}, attrs({{"axis", int64_t{3}}})), f32({24, 1}));
  EXPECT_EQ(inferOne(OpKind::Flatten, {f32({2, 3, 4})}, attrs({{"axis", int64_t{-1}}})), f32({6, 4}));
  EXPECT_EQ(inferOne(OpKind::Flatten, {u8({2, 3, 4})}, attrs({{"axis", int64_t{0}}})), u8({1, 24}));
  EXPECT_EQ(inferOne(OpKind::Reshape, {i64({2, 6})}, attrs({{"shape", Shape{-1}}})), i64({12}));
  EXPECT_EQ(inferOne(OpKind::MatMul, {f32({3, 2}), f32({4, 3})},
                     attrs({{"transpose_a", int64_t{1}}, {"transpose_b", int64_t{1}}})),
            f32({2, 4}));
  EXPECT_EQ(inferOne(OpKind::Add, {i64({2, 1}), i64({1, 3})}, {}), i64({2, 3}));
  EXPECT_EQ(inferOne(OpKind::SumTo, {f32({2, 3, 4})}, attrs({{"shape", Shape{3, 1}}})), f32({3, 1}));
  EXPECT_EQ(inferOne(OpKind::ArgMax, {f64({2, 5, 10})}, {}), i64({2, 5}));
  EXPECT_EQ(inferOne(OpKind::Cast, {f32({4})}, attrs({{"dtype", std::string("i64")}})), i64({4}));
  EXPECT_EQ(inferOne(OpKind::SoftmaxCrossEntropy, {f32({4, 10}), i32({4})}, {}), f32({}));
}

// ---- the verifier reports the same errors at the node's location -------------------------

Value* addInput(Graph& g, const std::string& name, TensorType t, int line) {
  return g
      .addNode(OpKind::Input, {}, attrs({{"name", name}}), {{name, std::move(t)}}, Location{"model.mmd", line, 3, name})
      ->result();
}

Value* addParam(Graph& g, const std::string& name, TensorType t, int line, const std::string& node) {
  Node* n = g.addNode(OpKind::Param, {}, {}, {{name, std::move(t)}}, Location{"model.mmd", line, 3, node});
  fillDefaultAttrs(*n);
  return n->result();
}

TEST(ShapeInference, VerifierReportsConvChannelErrorAtItsLocation) {
  const std::string source =
      "flowchart TD\n"
      "  x[input: x shape=1x28x28]\n"
      "  x --> c1[conv2d: filters=32 kernel=3x3]\n"
      "  c1 --> out[output]\n";
  Graph g("model");
  Value* x = addInput(g, "x", f32({64, 1, 28, 28}), 2);
  Value* w = addParam(g, "c1.weight", f32({32, 3, 3, 3}), 3, "c1");
  Node* conv =
      g.addNode(OpKind::Conv2d, {x, w}, {}, {{"c1", f32({64, 32, 26, 26})}}, Location{"model.mmd", 3, 9, "c1"});
  fillDefaultAttrs(*conv);
  g.addNode(OpKind::Output, {conv->result()}, attrs({{"name", std::string("y")}}), {},
            Location{"model.mmd", 4, 10, "out"});

  auto ok = verifyGraph(g);
  ASSERT_FALSE(ok.has_value());
  EXPECT_EQ(ok.error().str(),
            "model.mmd:3:9: error: conv2d 'c1': input has 1 channels (f32[64,1,28,28]) but the weight expects 3 "
            "(f32[32,3,3,3])");

  DiagnosticEngine diags;
  diags.addSource("model.mmd", source);
  EXPECT_FALSE(verifyGraph(g, diags));
  EXPECT_EQ(diags.errorCount(), 1);
  EXPECT_EQ(diags.render(),
            "model.mmd:3:9: error: conv2d 'c1': input has 1 channels (f32[64,1,28,28]) but the weight expects 3 "
            "(f32[32,3,3,3])\n"
            "  x --> c1[conv2d: filters=32 kernel=3x3]\n"
            "        ^\n");
}

TEST(ShapeInference, VerifierReportsEveryBadNode) {
  Graph g("model");
  Value* x = addInput(g, "x", f32({4, 8}), 1);
  Value* w = addParam(g, "d1.weight", f32({3, 5}), 2, "d1");
  Node* d1 = g.addNode(OpKind::Dense, {x, w}, {}, {{"d1", f32({4, 3})}}, Location{"model.mmd", 2, 7, "d1"});
  Value* lbl = addInput(g, "labels", f32({4}), 3);
  Node* loss = g.addNode(OpKind::SoftmaxCrossEntropy, {d1->result(), lbl}, {}, {{"loss", f32({})}},
                         Location{"model.mmd", 5, 4, "t"});
  g.addNode(OpKind::Output, {loss->result()}, attrs({{"name", std::string("loss")}}), {},
            Location{"model.mmd", 6, 1, "o"});
  DiagnosticEngine diags;
  EXPECT_FALSE(verifyGraph(g, diags));
  ASSERT_EQ(diags.errorCount(), 2);
  EXPECT_EQ(diags.diagnostics()[0].loc.str(), "model.mmd:2:7");
  EXPECT_EQ(diags.diagnostics()[0].message,
            "dense 'd1': input has 8 features (f32[4,8]) but the weight expects 5 (f32[3,5])");
  EXPECT_EQ(diags.diagnostics()[1].loc.str(), "model.mmd:5:4");
  EXPECT_EQ(diags.diagnostics()[1].message, "softmax_cross_entropy 't': labels must be integer class ids, got f32[4]");
}

TEST(ShapeInference, VerifierReportsADeclaredTypeTheRuleDisagreesWith) {
  Graph g("model");
  Value* a = addInput(g, "a", f32({3, 3}), 1);
  Value* b = addInput(g, "b", f32({3, 2}), 2);
  g.addNode(OpKind::MatMul, {a, b}, attrs({{"transpose_a", int64_t{0}}, {"transpose_b", int64_t{0}}}),
            {{"y", f32({3, 3})}}, Location{"model.mmd", 3, 5, "mm"});
  auto ok = verifyGraph(g);
  ASSERT_FALSE(ok.has_value());
  EXPECT_EQ(ok.error().str(),
            "model.mmd:3:5: error: matmul 'mm': result %y has type f32[3,3], but its operands give f32[3,2]");
}

}  // namespace
}  // namespace shoal
