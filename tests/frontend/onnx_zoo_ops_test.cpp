// What exports of real models needed beyond ONNX's backend cases (the sweep of PyTorch 2.11's
// exports of torchvision, timm and Hugging Face models, bench/results/2026-12-03-h200-onnx-zoo/):
// shape arithmetic folded through comparisons, Where, Pow, reductions and ScatterND; empty
// tensors as values known at import; a run-time shape named by where it comes from; global
// pooling of volumes; batch normalization in training mode; Col2Im; Resize's opset-18/19
// attributes. Values by hand, or from a transcription of ONNX's reference Resize.
#include <gtest/gtest.h>
#include <shoal/shoal.h>

#include <cmath>
#include <functional>

#include "frontend/onnx/onnx_import.h"
#include "onnx_test_models.h"
#include "passes/grad_cases.h"
#include "test_util.h"

namespace {

using namespace shoal;
using namespace shoal::test;

#if SHOAL_HAVE_ONNX

void zooNear(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-5) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "at " << i;
}

Tensor zooI64(Shape shape, std::vector<double> v) { return Tensor::fromDoubles(DType::I64, std::move(shape), v); }

// The TorchScript exporter's Expand: its target built as Where(Equal(shape, -1), ones, shape)
// from constants; with the comparisons, logic and Where folded, the expand's shape is known
// and only the expand remains.
TEST(OnnxZooOps, LegacyExpandTargetFoldsThroughComparisonsAndWhere) {
  OnnxModelBuilder b(17);
  b.input("x", DType::F32, {int64_t(1), int64_t(3)});
  b.output("y", DType::F32, {int64_t(2), int64_t(3)});
  b.output("logic", DType::Bool, {int64_t(4)});
  constantNode(b, "target", i64Tensor({2, -1}));
  constantNode(b, "minus1", i64Tensor({-1}));
  constantNode(b, "len", i64Tensor({2}));
  attrTensor(b.node("ConstantOfShape", {"len"}, {"ones"}), "value", i64Tensor({1}));
  b.node("Equal", {"target", "minus1"}, {"is_free"});
  b.node("Where", {"is_free", "ones", "target"}, {"shape"});
  b.node("Expand", {"x", "shape"}, {"y"});
  // Less, Greater, LessOrEqual, GreaterOrEqual, Not, And, Or, Xor folded the same way.
  constantNode(b, "a", i64Tensor({1, 5, 3, -2}));
  constantNode(b, "c", i64Tensor({1, 2, 3, 4}));
  b.node("Less", {"a", "c"}, {"lt"});             // F F F T
  b.node("GreaterOrEqual", {"a", "c"}, {"ge"});   // T T T F
  b.node("LessOrEqual", {"a", "c"}, {"le"});      // T F T T
  b.node("Greater", {"a", "c"}, {"gt"});          // F T F F
  b.node("Not", {"le"}, {"not_le"});              // F T F F
  b.node("Xor", {"gt", "not_le"}, {"x0"});        // F F F F
  b.node("Or", {"x0", "lt"}, {"x1"});             // F F F T
  b.node("And", {"x1", "ge"}, {"x2"});            // F F F F
  b.node("Or", {"x2", "gt"}, {"logic"});          // F T F F
  auto p = importOnnxFile(b.save(tempDir()), {});
  ASSERT_TRUE(p) << p.error().error.str();
  for (Node* n : p->model->nodes())
    EXPECT_TRUE(n->opName() == "input" || n->opName() == "expand" || n->opName() == "output" ||
                n->opName() == "constant")
        << n->opName();
  auto out = runOnnxOnCpu(b, {{"x", f32Tensor({1, 3}, {1, 2, 3})}});
  EXPECT_EQ(out["y"].toDoubles(), (std::vector<double>{1, 2, 3, 1, 2, 3}));
  EXPECT_EQ(out["logic"].toDoubles(), (std::vector<double>{0, 1, 0, 0}));
}

// Pow, Sqrt, Log, Reciprocal, Round and the reductions on values known at import (DINOv2's
// position-embedding size and flattening products in the legacy exports), Equal on floats
// with a NaN (unordered: never equal), and int64 compared exactly beyond 2^53.
TEST(OnnxZooOps, ArithmeticAndReductionsFoldAtImport) {
  OnnxModelBuilder b(17);
  b.input("x", DType::F32, {int64_t(2), int64_t(3), int64_t(4)});
  b.output("y", DType::F32, {int64_t(2), int64_t(12)});
  b.output("pw", DType::F32, {int64_t(3)});
  b.output("red", DType::I64, {int64_t(2)});
  b.output("nan_eq", DType::Bool, {int64_t(2)});
  b.output("big_eq", DType::Bool, {int64_t(1)});
  b.node("Shape", {"x"}, {"s"});
  constantNode(b, "one", i64Tensor({1}));
  constantNode(b, "end", i64Tensor({3}));
  b.node("Slice", {"s", "one", "end"}, {"tail"});
  attrInt(b.node("ReduceProd", {"tail"}, {"prod"}), "keepdims", 1);  // [12]
  constantNode(b, "zero", i64Tensor({0}));
  b.node("Slice", {"s", "zero", "one"}, {"head"});
  attrInt(b.node("Concat", {"head", "prod"}, {"target"}), "axis", 0);
  b.node("Reshape", {"x", "target"}, {"y"});
  constantNode(b, "base", f32Tensor({3}, {4, 9, 2.5}));
  constantNode(b, "half", f32Tensor({1}, {0.5}));
  b.node("Pow", {"base", "half"}, {"root"});          // 2 3 1.5811
  b.node("Reciprocal", {"root"}, {"inv"});            // .5 .3333 .63246
  b.node("Log", {"base"}, {"lg"});                    // 1.3863 2.1972 .91629
  b.node("Add", {"inv", "lg"}, {"sum"});              // 1.8863 2.5305 1.54875
  b.node("Round", {"sum"}, {"pw"});                   // 2 3 2
  constantNode(b, "m", i64Tensor({3, -7, 2, 8}));
  constantNode(b, "two_two", i64Tensor({2, 2}));
  b.node("Reshape", {"m", "two_two"}, {"m2"});
  attrInt(b.node("ReduceMax", {"m2"}, {"mx"}), "keepdims", 0);   // over every axis: 8
  attrInts(b.node("ReduceMin", {"m2"}, {"mn"}), "axes", {1});    // [[-7], [2]]
  constantNode(b, "minus_one", i64Tensor({-1}));
  b.node("Reshape", {"mn", "minus_one"}, {"mn1"});
  b.node("Mul", {"mn1", "mx"}, {"red"});                         // -56 16
  constantNode(b, "f", f32Tensor({2}, {1, std::nan("")}));
  b.node("Equal", {"f", "f"}, {"nan_eq"});
  constantNode(b, "big", i64Tensor({(int64_t(1) << 53) + 1}));
  constantNode(b, "big2", i64Tensor({int64_t(1) << 53}));
  b.node("Equal", {"big", "big2"}, {"big_eq"});
  auto out = runOnnxOnCpu(b, {{"x", f32Tensor({2, 3, 4}, std::vector<double>(24, 1.0))}});
  EXPECT_EQ(out["y"].shape(), (Shape{2, 12}));
  EXPECT_EQ(out["pw"].toDoubles(), (std::vector<double>{2, 3, 2}));
  EXPECT_EQ(out["red"].toDoubles(), (std::vector<double>{-56, 16}));
  EXPECT_EQ(out["nan_eq"].toDoubles(), (std::vector<double>{1, 0}));
  EXPECT_EQ(out["big_eq"].toDoubles(), (std::vector<double>{0}));
}

// ScatterND into an int64 constant (BEiT's relative position index): folded at import, the
// slices replaced in index order or combined by the reduction.
TEST(OnnxZooOps, ScatterNDOfKnownIntegersFolds) {
  OnnxModelBuilder b(16);
  b.input("x", DType::F32, {int64_t(1)});
  b.output("replaced", DType::I64, {int64_t(3), int64_t(2)});
  b.output("added", DType::I64, {int64_t(3), int64_t(2)});
  b.output("x_out", DType::F32, {int64_t(1)});
  constantNode(b, "data", zooI64({3, 2}, {1, 2, 3, 4, 5, 6}));
  constantNode(b, "idx", zooI64({2, 1}, {-1, 0}));
  constantNode(b, "upd", zooI64({2, 2}, {70, 80, 10, 20}));
  b.node("ScatterND", {"data", "idx", "upd"}, {"replaced"});
  constantNode(b, "idx2", zooI64({3, 2}, {0, 1, 0, 1, 2, 0}));
  constantNode(b, "upd2", zooI64({3}, {100, 1000, -5}));
  attrString(b.node("ScatterND", {"data", "idx2", "upd2"}, {"added"}), "reduction", "add");
  b.node("Identity", {"x"}, {"x_out"});
  auto out = runOnnxOnCpu(b, {{"x", f32Tensor({1}, {0})}});
  EXPECT_EQ(out["replaced"].toDoubles(), (std::vector<double>{10, 20, 3, 4, 70, 80}));
  EXPECT_EQ(out["added"].toDoubles(), (std::vector<double>{1, 1102, 3, 4, 0, 6}));
}

// ConstantOfShape of extent 0 is an empty value known at import (MobileBERT's legacy export
// concatenates one into a shape); only using it at run time is refused.
TEST(OnnxZooOps, EmptyKnownTensorsJoinShapeArithmetic) {
  OnnxModelBuilder b(17);
  b.input("x", DType::F32, {int64_t(6)});
  b.output("y", DType::F32, {int64_t(2), int64_t(3)});
  constantNode(b, "zero", i64Tensor({0}));
  attrTensor(b.node("ConstantOfShape", {"zero"}, {"empty"}), "value", i64Tensor({7}));
  constantNode(b, "dims", i64Tensor({2, 3}));
  attrInt(b.node("Concat", {"empty", "dims"}, {"target"}), "axis", 0);
  b.node("Reshape", {"x", "target"}, {"y"});
  auto out = runOnnxOnCpu(b, {{"x", f32Tensor({6}, {1, 2, 3, 4, 5, 6})}});
  EXPECT_EQ(out["y"].shape(), (Shape{2, 3}));
  EXPECT_EQ(out["y"].toDoubles(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
}

// A shape needed at import but computed at run time says where it comes from: a graph input,
// or the first node that shoal computes from known values without folding.
TEST(OnnxZooOps, ARunTimeShapeNamesItsOrigin) {
  {
    OnnxModelBuilder b(17);
    b.input("x", DType::F32, {int64_t(6)});
    b.input("t", DType::I64, {int64_t(2)});
    b.output("y", DType::F32, {int64_t(2), int64_t(3)});
    constantNode(b, "one", i64Tensor({1}));
    b.node("Add", {"t", "one"}, {"t1"}, "add_one");
    b.node("Reshape", {"x", "t1"}, {"y"}, "reshape");
    auto p = importOnnxFile(b.save(tempDir()), {});
    ASSERT_FALSE(p);
    EXPECT_NE(p.error().error.message().find("node 'reshape' (Reshape"), std::string::npos) << p.error().error.str();
    EXPECT_NE(p.error().error.message().find("it depends on the graph input 't'"), std::string::npos)
        << p.error().error.str();
  }
  {
    OnnxModelBuilder b(17);
    b.input("x", DType::F32, {int64_t(6)});
    b.output("y", DType::F32, {int64_t(2), int64_t(3)});
    constantNode(b, "angles", f32Tensor({2}, {0.0, 0.0}));
    b.node("Sin", {"angles"}, {"zeros"}, "sine");  // Sin is not folded
    constantNode(b, "dims", f32Tensor({2}, {2, 3}));
    b.node("Add", {"zeros", "dims"}, {"fdims"}, "add");
    attrInt(b.node("Cast", {"fdims"}, {"target"}, "cast"), "to", onnx::TensorProto::INT64);
    b.node("Reshape", {"x", "target"}, {"y"}, "reshape");
    auto p = importOnnxFile(b.save(tempDir()), {});
    ASSERT_FALSE(p);
    EXPECT_NE(p.error().error.message().find("node 'sine' (Sin) computes it from values known at import"),
              std::string::npos)
        << p.error().error.str();
  }
}

// ReduceMax/ReduceMin of integers at run time (torchaudio's Conformer takes its longest
// length so): exact beyond 2^53, odd extents, keepdims either way.
TEST(OnnxZooOps, IntegerMaxAndMinReduceExactly) {
  OnnxModelBuilder b(18);
  b.input("n", DType::I64, {int64_t(2), int64_t(3)});
  b.output("mx", DType::I64, {int64_t(2)});
  b.output("mn", DType::I64, {int64_t(1), int64_t(1)});
  b.initializer("axis1", i64Tensor({1}));
  attrInt(b.node("ReduceMax", {"n", "axis1"}, {"mx"}), "keepdims", 0);
  b.node("ReduceMin", {"n"}, {"mn"});
  const int64_t big = int64_t(1) << 60;
  Tensor n(DType::I64, {2, 3});
  int64_t vals[] = {big + 1, big + 3, big + 2, -5, 7, 7};
  for (int i = 0; i < 6; ++i) n.data<int64_t>()[i] = vals[i];
  auto out = runOnnxOnCpu(b, {{"n", n}});
  ASSERT_EQ(out["mx"].numElements(), 2);
  EXPECT_EQ(out["mx"].data<int64_t>()[0], big + 3);
  EXPECT_EQ(out["mx"].data<int64_t>()[1], 7);
  EXPECT_EQ(out["mn"].shape(), (Shape{1, 1}));
  EXPECT_EQ(out["mn"].data<int64_t>()[0], -5);
}

// ArgMax/ArgMin of int64 (GPT-2's sequence classifier finds its last token so): values that
// differ only beyond 2^53, ties resolved to the first index or with select_last_index to the
// last, along either axis, keepdims either way.
TEST(OnnxZooOps, Int64ArgMaxAndArgMinAreExact) {
  OnnxModelBuilder b(13);
  b.input("n", DType::I64, {int64_t(2), int64_t(5)});
  b.output("amax", DType::I64, {int64_t(2)});
  b.output("amax_last", DType::I64, {int64_t(2), int64_t(1)});
  b.output("amin", DType::I64, {int64_t(2)});
  b.output("amin_axis0", DType::I64, {int64_t(5)});
  auto argNode = [&](const char* op, const char* out, int64_t axis, int64_t keep, int64_t last) {
    onnx::NodeProto& nd = b.node(op, {"n"}, {out});
    attrInt(nd, "axis", axis);
    attrInt(nd, "keepdims", keep);
    if (last) attrInt(nd, "select_last_index", 1);
  };
  argNode("ArgMax", "amax", 1, 0, 0);
  argNode("ArgMax", "amax_last", -1, 1, 1);
  argNode("ArgMin", "amin", 1, 0, 0);
  argNode("ArgMin", "amin_axis0", 0, 0, 0);
  const int64_t big = int64_t(1) << 60;
  Tensor n(DType::I64, {2, 5});
  // Row 0: the maximum big + 3 twice (indices 1 and 3), the minimum big + 1 at 0 (as a double
  // all five would be 2^60). Row 1: small values, maximum 7 at 2 and 4, minimum -5 at 0 and 1.
  int64_t vals[] = {big + 1, big + 3, big + 2, big + 3, big + 2, -5, -5, 7, 6, 7};
  for (int i = 0; i < 10; ++i) n.data<int64_t>()[i] = vals[i];
  auto out = runOnnxOnCpu(b, {{"n", n}});
  EXPECT_EQ(out["amax"].toDoubles(), (std::vector<double>{1, 2}));
  EXPECT_EQ(out["amax_last"].shape(), (Shape{2, 1}));
  EXPECT_EQ(out["amax_last"].toDoubles(), (std::vector<double>{3, 4}));
  EXPECT_EQ(out["amin"].toDoubles(), (std::vector<double>{0, 0}));
  EXPECT_EQ(out["amin_axis0"].toDoubles(), (std::vector<double>{1, 1, 1, 1, 1}));
}

// Global pooling of a volume [N, C, D, H, W] (torchvision's video ResNets, legacy export).
TEST(OnnxZooOps, GlobalPoolingOfVolumes) {
  OnnxModelBuilder b(17);
  b.input("x", DType::F32, {int64_t(1), int64_t(2), int64_t(2), int64_t(2), int64_t(2)});
  b.output("avg", DType::F32, {int64_t(1), int64_t(2), int64_t(1), int64_t(1), int64_t(1)});
  b.output("max", DType::F32, {int64_t(1), int64_t(2), int64_t(1), int64_t(1), int64_t(1)});
  b.node("GlobalAveragePool", {"x"}, {"avg"});
  b.node("GlobalMaxPool", {"x"}, {"max"});
  std::vector<double> v = {1, -2, 3, 4, 5, 6, -7, 8, /* channel 1 */ 0.5, 0.5, 0.5, 0.5, 2, 2, 2, 9};
  auto out = runOnnxOnCpu(b, {{"x", f32Tensor({1, 2, 2, 2, 2}, v)}});
  EXPECT_EQ(out["avg"].shape(), (Shape{1, 2, 1, 1, 1}));
  zooNear(out["avg"].toDoubles(), {18.0 / 8, 17.0 / 8});
  EXPECT_EQ(out["max"].toDoubles(), (std::vector<double>{8, 9}));
}

// training_mode=1: the batch's own statistics (population variance), and the running
// statistics outputs; then its gradients against central differences.
TEST(OnnxZooOps, BatchNormalizationInTrainingMode) {
  OnnxModelBuilder b(15);
  b.input("x", DType::F32, {int64_t(2), int64_t(2), int64_t(1), int64_t(2)});
  b.output("y", DType::F32, {int64_t(2), int64_t(2), int64_t(1), int64_t(2)});
  b.output("rm", DType::F32, {int64_t(2)});
  b.output("rv", DType::F32, {int64_t(2)});
  b.initializer("scale", f32Tensor({2}, {2, 1}));
  b.initializer("bias", f32Tensor({2}, {0, 10}));
  b.initializer("mean", f32Tensor({2}, {1, 1}));
  b.initializer("var", f32Tensor({2}, {1, 1}));
  auto& n = b.node("BatchNormalization", {"x", "scale", "bias", "mean", "var"}, {"y", "rm", "rv"});
  attrInt(n, "training_mode", 1);
  attrFloat(n, "epsilon", 0.0f);
  attrFloat(n, "momentum", 0.5f);
  // Channel 0: {1, 3, 5, 7}: mean 4, variance 5. Channel 1: {2, 2, 6, 6}: mean 4, variance 4.
  auto out = runOnnxOnCpu(b, {{"x", f32Tensor({2, 2, 1, 2}, {1, 3, 2, 2, 5, 7, 6, 6})}});
  double s5 = std::sqrt(5.0);
  zooNear(out["y"].toDoubles(), {2 * -3 / s5, 2 * -1 / s5, 9, 9, 2 * 1 / s5, 2 * 3 / s5, 11, 11});
  zooNear(out["rm"].toDoubles(), {0.5 * 1 + 0.5 * 4, 0.5 * 1 + 0.5 * 4});
  zooNear(out["rv"].toDoubles(), {0.5 * 1 + 0.5 * 5, 0.5 * 1 + 0.5 * 4});

  OnnxModelBuilder g(15);
  g.input("x", DType::F64, {int64_t(3), int64_t(2), int64_t(2)});
  g.output("y", DType::F64, {int64_t(3), int64_t(2), int64_t(2)});
  g.initializer("scale", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{1.5, -0.5}));
  g.initializer("bias", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{0.1, 0.2}));
  g.initializer("mean", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{0, 0}));
  g.initializer("var", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{1, 1}));
  attrInt(g.node("BatchNormalization", {"x", "scale", "bias", "mean", "var"}, {"y"}), "training_mode", 1);
  std::string path = g.save(tempDir());
  TestGraph t(DType::F64);
  Value* x = t.param("x", {3, 2, 2});
  auto outs = importOnnxInto(t.g, path, {x}, "m", Location{path, 0, 0, "m"});
  ASSERT_TRUE(outs) << outs.error().error.str();
  t.params = {{"x", Tensor::fromDoubles(DType::F64, {3, 2, 2},
                                        std::vector<double>{0.3, -1.2, 0.8, 0.1, 2.0, -0.4, 0.9, 1.7, -0.6, 0.2, 1.1, -0.9})},
              {"scale", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{1.5, -0.5})},
              {"bias", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{0.1, 0.2})}};
  t.mseLoss((*outs)[0]);
  checkGradients(t);
}

// Col2Im: ONNX's own example (blocks of 1 × 5 on a 5 × 5 image), then overlapping 2 × 2 blocks
// with a pad and a stride summed by hand, then its gradient.
TEST(OnnxZooOps, Col2ImSumsBlocksIntoTheImage) {
  {
    OnnxModelBuilder b(18);
    b.input("x", DType::F32, {int64_t(1), int64_t(5), int64_t(5)});
    b.output("y", DType::F32, {int64_t(1), int64_t(1), int64_t(5), int64_t(5)});
    b.initializer("image", i64Tensor({5, 5}));
    b.initializer("block", i64Tensor({1, 5}));
    b.node("Col2Im", {"x", "image", "block"}, {"y"});
    auto out = runOnnxOnCpu(b, {{"x", f32Tensor({1, 5, 5}, {1, 6, 11, 16, 21, 2, 7, 12, 17, 22, 3, 8, 13, 18, 23,
                                                      4, 9, 14, 19, 24, 5, 0, 15, 20, 25})}});
    EXPECT_EQ(out["y"].toDoubles(), (std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 11, 12, 13, 14, 15, 16,
                                                         17, 18, 19, 20, 21, 22, 23, 24, 25}));
  }
  {
    // Image 2 × 3, blocks 2 × 2, pads 1 on the left and right (width 5), stride 1 along the
    // height, 2 along the width: places 1 × 2 (columns -1..0 and 1..2). Taps (k = ky·2 + kx) of
    // place l: x[0, k, l] = 10·k + l + 1.
    OnnxModelBuilder b(18);
    b.input("x", DType::F32, {int64_t(1), int64_t(4), int64_t(2)});
    b.output("y", DType::F32, {int64_t(1), int64_t(1), int64_t(2), int64_t(3)});
    b.initializer("image", i64Tensor({2, 3}));
    b.initializer("block", i64Tensor({2, 2}));
    auto& n = b.node("Col2Im", {"x", "image", "block"}, {"y"});
    attrInts(n, "pads", {0, 1, 0, 1});
    attrInts(n, "strides", {1, 2});
    auto out = runOnnxOnCpu(b, {{"x", f32Tensor({1, 4, 2}, {1, 2, 11, 12, 21, 22, 31, 32})}});
    // Place 0 covers columns -1 (padding) and 0; place 1 columns 1 and 2.
    // Row 0: col 0 <- tap (0,1) of place 0 = 11; col 1 <- tap (0,0) of place 1 = 2; col 2 <- tap (0,1) of place 1 = 12.
    // Row 1: col 0 <- tap (1,1) place 0 = 31; col 1 <- tap (1,0) place 1 = 22; col 2 <- tap (1,1) place 1 = 32.
    EXPECT_EQ(out["y"].toDoubles(), (std::vector<double>{11, 2, 12, 31, 22, 32}));
  }
  {
    // Overlaps add: 2 × 2 blocks, stride 1, on a 3 × 3 image: 4 places; every tap 1 gives the
    // number of blocks covering each pixel.
    OnnxModelBuilder b(18);
    b.input("x", DType::F32, {int64_t(1), int64_t(4), int64_t(4)});
    b.output("y", DType::F32, {int64_t(1), int64_t(1), int64_t(3), int64_t(3)});
    b.initializer("image", i64Tensor({3, 3}));
    b.initializer("block", i64Tensor({2, 2}));
    b.node("Col2Im", {"x", "image", "block"}, {"y"});
    auto out = runOnnxOnCpu(b, {{"x", f32Tensor({1, 4, 4}, std::vector<double>(16, 1.0))}});
    EXPECT_EQ(out["y"].toDoubles(), (std::vector<double>{1, 2, 1, 2, 4, 2, 1, 2, 1}));
  }
  {
    OnnxModelBuilder b(18);
    b.input("x", DType::F64, {int64_t(1), int64_t(8), int64_t(4)});
    b.output("y", DType::F64, {int64_t(1), int64_t(2), int64_t(3), int64_t(3)});
    b.initializer("image", i64Tensor({3, 3}));
    b.initializer("block", i64Tensor({2, 2}));
    b.node("Col2Im", {"x", "image", "block"}, {"y"});
    std::string path = b.save(tempDir());
    TestGraph t(DType::F64);
    Value* x = t.param("x", {1, 8, 4});
    auto outs = importOnnxInto(t.g, path, {x}, "m", Location{path, 0, 0, "m"});
    ASSERT_TRUE(outs) << outs.error().error.str();
    std::vector<double> xv;
    for (int i = 0; i < 32; ++i) xv.push_back(0.1 * double((i * 5) % 13) - 0.6);
    t.params = {{"x", Tensor::fromDoubles(DType::F64, {1, 8, 4}, xv)}};
    t.mseLoss((*outs)[0]);
    checkGradients(t);
  }
}

// Resize from opset 18/19: scales for some axes only, keep_aspect_ratio_policy, antialiased
// linear and cubic downsampling, half_pixel_symmetric. Expected values from a transcription of
// ONNX's reference (onnx/reference/ops/op_resize.py), which the backend cases of these
// attributes (ONNX ≥ 1.13; Debian's test data is 1.12) were generated with.
TEST(OnnxZooOps, ResizeOpset18And19Attributes) {
  std::vector<double> img16;
  for (int i = 1; i <= 16; ++i) img16.push_back(i);
  auto resize = [&](int64_t opset, const std::vector<double>& scales, const std::vector<int64_t>& sizes, Shape in,
                    Shape outShape, std::function<void(onnx::NodeProto&)> attrs, const std::vector<double>& x) {
    OnnxModelBuilder b(opset);
    std::vector<OnnxDim> inDims(in.begin(), in.end()), outDims(outShape.begin(), outShape.end());
    b.input("x", DType::F32, inDims);
    b.output("y", DType::F32, outDims);
    if (!scales.empty()) b.initializer("scales", f32Tensor({int64_t(scales.size())}, scales));
    if (!sizes.empty()) b.initializer("sizes", i64Tensor(sizes));
    auto& n = b.node("Resize", {"x", "", scales.empty() ? "" : "scales", sizes.empty() ? "" : "sizes"}, {"y"});
    attrs(n);
    auto out = runOnnxOnCpu(b, {{"x", f32Tensor(in, x)}});
    EXPECT_EQ(out["y"].shape(), outShape);
    return out["y"].toDoubles();
  };
  // Antialiased linear and cubic downsampling by 0.6 (ONNX's *_antialias cases).
  zooNear(resize(18, {1, 1, 0.6, 0.6}, {}, {1, 1, 4, 4}, {1, 1, 2, 2},
                    [](onnx::NodeProto& n) {
                      attrString(n, "mode", "linear");
                      attrInt(n, "antialias", 1);
                    },
                    img16),
             {2.875, 4.5, 9.375, 11.0});
  zooNear(resize(18, {1, 1, 0.6, 0.6}, {}, {1, 1, 4, 4}, {1, 1, 2, 2},
                    [](onnx::NodeProto& n) {
                      attrString(n, "mode", "cubic");
                      attrInt(n, "antialias", 1);
                    },
                    img16),
             {2.5180722891566183, 4.285886402753868, 9.589328743545613, 11.357142857142865});
  // Scales given for axes 2 and 3 only; the same result.
  zooNear(resize(18, {0.6, 0.6}, {}, {1, 1, 4, 4}, {1, 1, 2, 2},
                    [](onnx::NodeProto& n) {
                      attrString(n, "mode", "linear");
                      attrInt(n, "antialias", 1);
                      attrInts(n, "axes", {2, -1});
                    },
                    img16),
             {2.875, 4.5, 9.375, 11.0});
  // half_pixel_symmetric, down (4 -> floor(2.4) = 2) and up (2 × 2 -> 4 × 5).
  zooNear(resize(19, {1, 1, 1, 0.6}, {}, {1, 1, 1, 4}, {1, 1, 1, 2},
                    [](onnx::NodeProto& n) {
                      attrString(n, "mode", "linear");
                      attrString(n, "coordinate_transformation_mode", "half_pixel_symmetric");
                    },
                    {1, 2, 3, 4}),
             {1.6666666666666665, 3.333333333333333});
  zooNear(resize(19, {1, 1, 2.3, 2.94}, {}, {1, 1, 2, 2}, {1, 1, 4, 5},
                    [](onnx::NodeProto& n) {
                      attrString(n, "mode", "linear");
                      attrString(n, "coordinate_transformation_mode", "half_pixel_symmetric");
                    },
                    {1, 2, 3, 4}),
             {1.0, 1.1598639455782314, 1.5, 1.8401360544217686, 2.0, 1.5652173913043477, 1.725081336882579,
              2.0652173913043477, 2.4053534457261163, 2.5652173913043477, 2.4347826086956523, 2.5946465542738837,
              2.9347826086956523, 3.274918663117421, 3.4347826086956523, 3.0, 3.1598639455782314, 3.5,
              3.8401360544217686, 4.0});
  // keep_aspect_ratio_policy with sizes [7, 8] for axes 2, 3 of a 2 × 2 image: not_larger
  // takes the scale 3.5 for both (7 × 7), not_smaller 4 (8 × 8). Nearest, half_pixel,
  // round_prefer_floor picks rows and columns 0,0,0,0,1,1,1 at scale 3.5.
  auto nl = resize(18, {}, {7, 8}, {1, 1, 2, 2}, {1, 1, 7, 7},
                   [](onnx::NodeProto& n) {
                     attrInts(n, "axes", {2, 3});
                     attrString(n, "keep_aspect_ratio_policy", "not_larger");
                   },
                   {1, 2, 3, 4});
  ASSERT_EQ(nl.size(), 49u);
  std::vector<int> pick = {0, 0, 0, 0, 1, 1, 1};
  for (int r = 0; r < 7; ++r)
    for (int col = 0; col < 7; ++col) EXPECT_EQ(nl[size_t(r * 7 + col)], 1 + pick[size_t(col)] + 2 * pick[size_t(r)]);
  auto ns = resize(18, {}, {7, 8}, {1, 1, 2, 2}, {1, 1, 8, 8},
                   [](onnx::NodeProto& n) {
                     attrInts(n, "axes", {2, 3});
                     attrString(n, "keep_aspect_ratio_policy", "not_smaller");
                   },
                   {1, 2, 3, 4});
  ASSERT_EQ(ns.size(), 64u);
  EXPECT_EQ(ns[0], 1);
  EXPECT_EQ(ns[63], 4);
}

// DFT by hand: x = [1, 2, 3, 4] gives [10, -2+2i, -2, -2-2i]; onesided keeps k ≤ n/2; the
// inverse of the full spectrum gives x back; dft_length 6 zero-pads (expected values summed
// here from the definition); a complex input along axis 1 of [2, 2, 2] (opset 20's axis
// input). Then the gradient of a real DFT by central differences.
TEST(OnnxZooOps, DftByHand) {
  auto dft = [&](int64_t opset, Shape in, Shape outShape, const std::vector<double>& x,
                 std::function<void(OnnxModelBuilder&, onnx::NodeProto&)> setup) {
    OnnxModelBuilder b(opset);
    std::vector<OnnxDim> inDims(in.begin(), in.end()), outDims(outShape.begin(), outShape.end());
    b.input("x", DType::F32, inDims);
    b.output("y", DType::F32, outDims);
    auto& n = b.node("DFT", {"x"}, {"y"});
    setup(b, n);
    auto out = runOnnxOnCpu(b, {{"x", f32Tensor(in, x)}});
    EXPECT_EQ(out["y"].shape(), outShape);
    return out["y"].toDoubles();
  };
  zooNear(dft(17, {1, 4, 1}, {1, 4, 2}, {1, 2, 3, 4}, [](OnnxModelBuilder&, onnx::NodeProto&) {}),
          {10, 0, -2, 2, -2, 0, -2, -2});
  zooNear(dft(17, {1, 4, 1}, {1, 3, 2}, {1, 2, 3, 4}, [](OnnxModelBuilder&, onnx::NodeProto& n) { attrInt(n, "onesided", 1); }),
          {10, 0, -2, 2, -2, 0});
  zooNear(dft(17, {1, 4, 2}, {1, 4, 2}, {10, 0, -2, 2, -2, 0, -2, -2},
              [](OnnxModelBuilder&, onnx::NodeProto& n) { attrInt(n, "inverse", 1); }),
          {1, 0, 2, 0, 3, 0, 4, 0});
  std::vector<double> padded;
  for (int k = 0; k < 6; ++k) {
    double re = 0, im = 0;
    for (int j = 0; j < 4; ++j) {
      re += (j + 1) * std::cos(-2 * M_PI * j * k / 6);
      im += (j + 1) * std::sin(-2 * M_PI * j * k / 6);
    }
    padded.push_back(re), padded.push_back(im);
  }
  zooNear(dft(17, {1, 4, 1}, {1, 6, 2}, {1, 2, 3, 4},
              [](OnnxModelBuilder& b, onnx::NodeProto& n) {
                b.initializer("len", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{6}));
                n.set_input(0, "x");
                n.add_input("len");
              }),
          padded);
  // Opset 20: the axis as an input; a complex signal [2, 2, 2] along axis 1 (2 points: X0 = a +
  // b, X1 = a - b for each leading row).
  zooNear(dft(20, {2, 2, 2}, {2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8},
              [](OnnxModelBuilder& b, onnx::NodeProto& n) {
                b.initializer("axis", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{1}));
                n.add_input("");
                n.add_input("axis");
              }),
          {4, 6, -2, -2, 12, 14, -2, -2});

  OnnxModelBuilder g(17);
  g.input("x", DType::F64, {int64_t(2), int64_t(5), int64_t(1)});
  g.output("y", DType::F64, {int64_t(2), int64_t(3), int64_t(2)});
  attrInt(g.node("DFT", {"x"}, {"y"}), "onesided", 1);
  std::string path = g.save(tempDir());
  TestGraph t(DType::F64);
  Value* x = t.param("x", {2, 5, 1});
  auto outs = importOnnxInto(t.g, path, {x}, "m", Location{path, 0, 0, "m"});
  ASSERT_TRUE(outs) << outs.error().error.str();
  t.params = {{"x", Tensor::fromDoubles(DType::F64, {2, 5, 1},
                                        std::vector<double>{0.3, -1.2, 0.8, 0.1, 2.0, -0.4, 0.9, 1.7, -0.6, 0.2})}};
  t.mseLoss((*outs)[0]);
  checkGradients(t);
}

// Malformed uses of the new mappings are import errors naming the node, never crashes.
TEST(OnnxZooOps, MalformedNewOpsAreErrorsNamingTheNode) {
  struct Case {
    std::string what;
    std::function<void(OnnxModelBuilder&)> build;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"Col2Im with a channel count that is not a multiple of the block",
       [](OnnxModelBuilder& b) {
         b.input("x", DType::F32, {int64_t(1), int64_t(5), int64_t(4)});
         b.output("y", DType::F32, {int64_t(1), int64_t(1), int64_t(3), int64_t(3)});
         b.initializer("image", i64Tensor({3, 3}));
         b.initializer("block", i64Tensor({2, 2}));
         b.node("Col2Im", {"x", "image", "block"}, {"y"}, "bad");
       },
       "is not [N, C·4, 4]"},
      {"DFT along the trailing (real/imaginary) axis",
       [](OnnxModelBuilder& b) {
         b.input("x", DType::F32, {int64_t(1), int64_t(4), int64_t(1)});
         b.output("y", DType::F32, {int64_t(1), int64_t(4), int64_t(2)});
         attrInt(b.node("DFT", {"x"}, {"y"}, "bad"), "axis", 2);
       },
       "axis 2 is out of range"},
      {"STFT frames longer than the signal",
       [](OnnxModelBuilder& b) {
         b.input("x", DType::F32, {int64_t(1), int64_t(4), int64_t(1)});
         b.output("y", DType::F32, {int64_t(1), int64_t(1), int64_t(5), int64_t(2)});
         b.initializer("step", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{1}));
         b.initializer("len", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{8}));
         b.node("STFT", {"x", "step", "", "len"}, {"y"}, "bad");
       },
       "frame_length 8 exceeds the signal's 4 samples"},
      {"Resize with a repeated axis",
       [](OnnxModelBuilder& b) {
         b.input("x", DType::F32, {int64_t(1), int64_t(1), int64_t(2), int64_t(2)});
         b.output("y", DType::F32, {int64_t(1), int64_t(1), int64_t(4), int64_t(4)});
         b.initializer("scales", f32Tensor({2}, {2, 2}));
         attrInts(b.node("Resize", {"x", "", "scales"}, {"y"}, "bad"), "axes", {2, -2});
       },
       "is repeated in axes"},
      {"MelWeightMatrix reaching past the spectrum",
       [](OnnxModelBuilder& b) {
         b.input("x", DType::F32, {int64_t(1)});
         b.output("y", DType::F32, {int64_t(5), int64_t(4)});
         b.initializer("mels", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{4}));
         b.initializer("dft", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{8}));
         b.initializer("rate", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{8000}));
         b.initializer("lo", f32Tensor({}, {0}));
         b.initializer("hi", f32Tensor({}, {16000}));
         b.node("MelWeightMatrix", {"mels", "dft", "rate", "lo", "hi"}, {"y"}, "bad");
       },
       "upper_edge_hertz above the Nyquist rate"},
      {"Loop whose body takes the wrong number of inputs",
       [](OnnxModelBuilder& b) {
         b.input("x", DType::F32, {int64_t(2)});
         b.output("y", DType::F32, {int64_t(2)});
         b.initializer("M", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{2}));
         onnx::GraphProto body;
         body.set_name("body");
         auto* in = body.add_input();
         in->set_name("i");
         auto& n = b.node("Loop", {"M", "", "x"}, {"y"}, "bad");
         auto* a = n.add_attribute();
         a->set_name("body");
         a->set_type(onnx::AttributeProto::GRAPH);
         *a->mutable_g() = body;
       },
       "the body takes 1 inputs, expected 3"},
  };
  for (auto& k : cases) {
    OnnxModelBuilder b(18);
    k.build(b);
    auto p = importOnnxFile(b.save(tempDir()), {});
    ASSERT_FALSE(p) << k.what;
    EXPECT_NE(p.error().error.message().find("node 'bad'"), std::string::npos) << k.what << ": " << p.error().error.str();
    EXPECT_NE(p.error().error.message().find(k.expect), std::string::npos) << k.what << ": " << p.error().error.str();
  }
}

#endif

}  // namespace
