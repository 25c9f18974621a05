// ONNX's GatherND, ScatterND and ScatterElements beyond the conformance cases, by hand:
// negative indices, replaced and added slices, duplicates under "add", batch_dims with a
// two-axis tuple, and an index outside the data reported at run time (not dropped).
#include <gtest/gtest.h>
#include <shoal/shoal.h>

#include <limits>

#include "frontend/onnx/onnx_import.h"
#include "onnx_test_models.h"
#include "passes/grad_cases.h"
#include "test_util.h"

namespace {

using namespace shoal;
using namespace shoal::test;

#if SHOAL_HAVE_ONNX

Tensor i64Matrix(Shape shape, std::vector<double> values) {
  return Tensor::fromDoubles(DType::I64, std::move(shape), values);
}

TEST(OnnxIndexing, ScatterNDReplacesAndAddsSlices) {
  // Replace rows (k = 1), one of them counted from the back.
  {
    OnnxModelBuilder b(16);
    b.input("data", DType::F32, {int64_t(4), int64_t(2)});
    b.output("y", DType::F32, {int64_t(4), int64_t(2)});
    b.initializer("idx", i64Matrix({2, 1}, {-1, 1}));
    b.initializer("upd", f32Tensor({2, 2}, {10, 20, 30, 40}));
    b.node("ScatterND", {"data", "idx", "upd"}, {"y"}, "scatter");
    auto session = Session::create(b.save(tempDir()), {.device = DeviceKind::Cpu});
    ASSERT_TRUE(session) << session.error().str();
    auto out = session->run({{"data", f32Tensor({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8})}});
    ASSERT_TRUE(out) << out.error().str();
    EXPECT_EQ(out->at("y").toDoubles(), (std::vector<double>{1, 2, 30, 40, 5, 6, 10, 20}));
  }
  // Replace with a row written twice with the same values (torch's scatter of a constant at a
  // repeated index): the row gets those values, not their sum.
  {
    OnnxModelBuilder b(16);
    b.input("data", DType::F32, {int64_t(3), int64_t(2)});
    b.output("y", DType::F32, {int64_t(3), int64_t(2)});
    b.initializer("idx", i64Matrix({3, 1}, {1, 0, 1}));
    b.initializer("upd", f32Tensor({3, 2}, {9, 9, -1, -1, 9, 9}));
    b.node("ScatterND", {"data", "idx", "upd"}, {"y"}, "scatter");
    auto session = Session::create(b.save(tempDir()), {.device = DeviceKind::Cpu});
    ASSERT_TRUE(session) << session.error().str();
    auto out = session->run({{"data", f32Tensor({3, 2}, {1, 2, 3, 4, 5, 6})}});
    ASSERT_TRUE(out) << out.error().str();
    EXPECT_EQ(out->at("y").toDoubles(), (std::vector<double>{-1, -1, 9, 9, 5, 6}));
  }
  // Add elements (k = 2); the same element twice gets both.
  {
    OnnxModelBuilder b(16);
    b.input("data", DType::F32, {int64_t(2), int64_t(3)});
    b.output("y", DType::F32, {int64_t(2), int64_t(3)});
    b.initializer("idx", i64Matrix({3, 2}, {0, 2, 1, 0, 0, -1}));
    b.initializer("upd", f32Tensor({3}, {1, 2, 4}));
    attrString(b.node("ScatterND", {"data", "idx", "upd"}, {"y"}, "scatter"), "reduction", "add");
    auto session = Session::create(b.save(tempDir()), {.device = DeviceKind::Cpu});
    ASSERT_TRUE(session) << session.error().str();
    auto out = session->run({{"data", f32Tensor({2, 3}, {1, 1, 1, 1, 1, 1})}});
    ASSERT_TRUE(out) << out.error().str();
    EXPECT_EQ(out->at("y").toDoubles(), (std::vector<double>{1, 1, 6, 3, 1, 1}));
  }
}

TEST(OnnxIndexing, GatherNDWithBatchDimsPicksWithinEachBatchEntry) {
  // data [2,2,3] = 0..11; batch_dims 1, tuples (1,2) for entry 0 and (0,-2) for entry 1:
  // data[0][1][2] = 5, data[1][0][1] = 7.
  OnnxModelBuilder b(13);
  b.input("data", DType::F32, {int64_t(2), int64_t(2), int64_t(3)});
  b.input("idx", DType::I64, {int64_t(2), int64_t(1), int64_t(2)});
  b.output("y", DType::F32, {int64_t(2), int64_t(1)});
  attrInt(b.node("GatherND", {"data", "idx"}, {"y"}, "gather"), "batch_dims", 1);
  auto session = Session::create(b.save(tempDir()), {.device = DeviceKind::Cpu});
  ASSERT_TRUE(session) << session.error().str();
  std::vector<double> ramp;
  for (int i = 0; i < 12; ++i) ramp.push_back(i);
  auto out = session->run({{"data", f32Tensor({2, 2, 3}, ramp)}, {"idx", i64Matrix({2, 1, 2}, {1, 2, 0, -2})}});
  ASSERT_TRUE(out) << out.error().str();
  EXPECT_EQ(out->at("y").shape(), (Shape{2, 1}));
  EXPECT_EQ(out->at("y").toDoubles(), (std::vector<double>{5, 7}));
  // An index outside its axis is an error at run time that names the node, not a neighbour's
  // value: (0, 3) would be row 3 of the flattened data, inside it.
  auto bad = session->run({{"data", f32Tensor({2, 2, 3}, ramp)}, {"idx", i64Matrix({2, 1, 2}, {0, 3, 0, 0})}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("gather"), std::string::npos) << bad.error().str();
  EXPECT_NE(bad.error().str().find("is outside"), std::string::npos) << bad.error().str();
}

TEST(OnnxIndexing, ScatterElementsReportsAnIndexOutsideTheData) {
  OnnxModelBuilder b(13);
  b.input("data", DType::F32, {int64_t(2), int64_t(3)});
  b.input("idx", DType::I64, {int64_t(1), int64_t(2)});
  b.output("y", DType::F32, {int64_t(2), int64_t(3)});
  b.initializer("upd", f32Tensor({1, 2}, {-1, -2}));
  attrInt(b.node("ScatterElements", {"data", "idx", "upd"}, {"y"}, "scatter"), "axis", 1);
  auto session = Session::create(b.save(tempDir()), {.device = DeviceKind::Cpu});
  ASSERT_TRUE(session) << session.error().str();
  Tensor data = f32Tensor({2, 3}, {1, 2, 3, 4, 5, 6});
  auto out = session->run({{"data", data}, {"idx", i64Matrix({1, 2}, {2, -3})}});
  ASSERT_TRUE(out) << out.error().str();
  EXPECT_EQ(out->at("y").toDoubles(), (std::vector<double>{-2, 2, -1, 4, 5, 6}));
  auto bad = session->run({{"data", data}, {"idx", i64Matrix({1, 2}, {2, 3})}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("is outside"), std::string::npos) << bad.error().str();
  // reduction 'mul' is refused by name.
  OnnxModelBuilder mul(16);
  mul.input("data", DType::F32, {int64_t(2), int64_t(3)});
  mul.output("y", DType::F32, {int64_t(2), int64_t(3)});
  mul.initializer("idx", i64Matrix({1, 2}, {0, 1}));
  mul.initializer("upd", f32Tensor({1, 2}, {2, 2}));
  attrString(mul.node("ScatterElements", {"data", "idx", "upd"}, {"y"}, "scatter"), "reduction", "mul");
  auto refused = Session::create(mul.save(tempDir()), {.device = DeviceKind::Cpu});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().str().find("unsupported: reduction 'mul' (shoal scatters with 'none' and 'add')"),
            std::string::npos)
      << refused.error().str();
}

// TopK along axis 0 of [3,2] (the axis moved last and back): ties in index order, -inf values
// ranked last but still picked in index order, and the smallest k.
TEST(OnnxIndexing, TopKKeepsIndexOrderOnTiesAndInfinities) {
  const double inf = std::numeric_limits<double>::infinity();
  for (bool largest : {true, false}) {
    SCOPED_TRACE(largest ? "largest" : "smallest");
    int64_t k = largest ? 3 : 2;
    OnnxModelBuilder b(13);
    b.input("x", DType::F32, {int64_t(3), int64_t(2)});
    b.output("v", DType::F32, {k, int64_t(2)});
    b.output("i", DType::I64, {k, int64_t(2)});
    b.initializer("k", i64Tensor({k}));
    auto& n = b.node("TopK", {"x", "k"}, {"v", "i"}, "top");
    attrInt(n, "axis", 0);
    attrInt(n, "largest", largest ? 1 : 0);
    auto session = Session::create(b.save(tempDir()), {.device = DeviceKind::Cpu});
    ASSERT_TRUE(session) << session.error().str();
    // Columns: [1, 5, 5] and [-inf, 2, -inf].
    auto out = session->run({{"x", f32Tensor({3, 2}, {1, -inf, 5, 2, 5, -inf})}});
    ASSERT_TRUE(out) << out.error().str();
    if (largest) {
      EXPECT_EQ(out->at("v").toDoubles(), (std::vector<double>{5, 2, 5, -inf, 1, -inf}));
      EXPECT_EQ(out->at("i").toDoubles(), (std::vector<double>{1, 1, 2, 0, 0, 2}));
    } else {
      EXPECT_EQ(out->at("v").toDoubles(), (std::vector<double>{1, -inf, 5, -inf}));
      EXPECT_EQ(out->at("i").toDoubles(), (std::vector<double>{0, 0, 1, 2}));
    }
  }
}

// ReverseSequence reverses each batch entry's first sequence_lens steps and keeps the rest; a
// length outside [1, T] is an error at run time. MaxUnpool keeps a value two windows share.
TEST(OnnxIndexing, ReverseSequenceAndMaxUnpoolByHand) {
  {
    OnnxModelBuilder b(13);
    b.input("x", DType::F32, {int64_t(3), int64_t(2)});
    b.input("lens", DType::I64, {int64_t(2)});
    b.output("y", DType::F32, {int64_t(3), int64_t(2)});
    b.node("ReverseSequence", {"x", "lens"}, {"y"}, "rev");
    auto session = Session::create(b.save(tempDir()), {.device = DeviceKind::Cpu});
    ASSERT_TRUE(session) << session.error().str();
    // Time along rows: entry 0 is 1, 3, 5 (all three reversed), entry 1 is 2, 4, 6 (two).
    Tensor x = f32Tensor({3, 2}, {1, 2, 3, 4, 5, 6});
    auto out = session->run({{"x", x}, {"lens", i64Tensor({3, 2})}});
    ASSERT_TRUE(out) << out.error().str();
    EXPECT_EQ(out->at("y").toDoubles(), (std::vector<double>{5, 4, 3, 2, 1, 6}));
    auto bad = session->run({{"x", x}, {"lens", i64Tensor({4, 1})}});
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().str().find("is outside"), std::string::npos) << bad.error().str();
  }
  {
    OnnxModelBuilder b(11);
    b.input("x", DType::F32, {int64_t(1), int64_t(1), int64_t(2), int64_t(1)});
    b.input("i", DType::I64, {int64_t(1), int64_t(1), int64_t(2), int64_t(1)});
    b.output("y", DType::F32, {int64_t(1), int64_t(1), int64_t(3), int64_t(1)});
    auto& n = b.node("MaxUnpool", {"x", "i"}, {"y"}, "unpool");
    attrInts(n, "kernel_shape", {2, 1});
    auto session = Session::create(b.save(tempDir()), {.device = DeviceKind::Cpu});
    ASSERT_TRUE(session) << session.error().str();
    // Both windows (rows 0-1 and 1-2) found their maximum, 7, at row 1.
    auto out = session->run({{"x", f32Tensor({1, 1, 2, 1}, {7, 7})},
                             {"i", Tensor::fromDoubles(DType::I64, {1, 1, 2, 1}, std::vector<double>{1, 1})}});
    ASSERT_TRUE(out) << out.error().str();
    EXPECT_EQ(out->at("y").toDoubles(), (std::vector<double>{0, 7, 0}));
  }
}

// Training through the scatters: ScatterElements' data (where not overwritten) and updates,
// and GridSample's input and grid, against central differences.
TEST(OnnxIndexing, ScatterAndGridSampleGradientsMatchCentralDifferences) {
  {
    OnnxModelBuilder b(13);
    b.input("idx", DType::I64, {int64_t(2), int64_t(2)});
    b.output("y", DType::F64, {int64_t(3), int64_t(2)});
    b.initializer("data", Tensor::fromDoubles(DType::F64, {3, 2}, std::vector<double>{0.1, -0.2, 0.3, 0.4, -0.5, 0.6}));
    b.initializer("upd", Tensor::fromDoubles(DType::F64, {2, 2}, std::vector<double>{0.7, -0.8, 0.9, 0.25}));
    b.node("ScatterElements", {"data", "idx", "upd"}, {"y"}, "scatter");
    std::string path = b.save(tempDir());
    TestGraph t(DType::F64);
    Value* idx = t.input("idx", {DType::I64, {2, 2}}, std::vector<double>{2, 0, 0, 0});
    auto outs = importOnnxInto(t.g, path, {idx}, "m", Location{path, 0, 0, "m"});
    ASSERT_TRUE(outs) << outs.error().error.str();
    t.params = {{"data", Tensor::fromDoubles(DType::F64, {3, 2}, std::vector<double>{0.1, -0.2, 0.3, 0.4, -0.5, 0.6})},
                {"upd", Tensor::fromDoubles(DType::F64, {2, 2}, std::vector<double>{0.7, -0.8, 0.9, 0.25})}};
    t.mseLoss((*outs)[0]);
    checkGradients(t);
  }
  {
    OnnxModelBuilder b(16);
    b.input("grid", DType::F64, {int64_t(1), int64_t(2), int64_t(2), int64_t(2)});
    b.output("y", DType::F64, {int64_t(1), int64_t(2), int64_t(2), int64_t(2)});
    std::vector<double> image;
    for (int i = 0; i < 2 * 3 * 3; ++i) image.push_back(0.1 * double((i * 7) % 11) - 0.4);
    b.initializer("x", Tensor::fromDoubles(DType::F64, {1, 2, 3, 3}, image));
    attrString(b.node("GridSample", {"x", "grid"}, {"y"}, "sample"), "mode", "bicubic");
    std::string path = b.save(tempDir());
    TestGraph t(DType::F64);
    // The grid a parameter too; its points away from pixel edges (floor does not jump within
    // the differences' reach).
    Value* grid = t.param("grid", {1, 2, 2, 2});
    auto outs = importOnnxInto(t.g, path, {grid}, "m", Location{path, 0, 0, "m"});
    ASSERT_TRUE(outs) << outs.error().error.str();
    t.params = {{"x", Tensor::fromDoubles(DType::F64, {1, 2, 3, 3}, image)},
                {"grid", Tensor::fromDoubles(DType::F64, {1, 2, 2, 2},
                                             std::vector<double>{-0.61, 0.13, 0.27, -0.44, 0.52, 0.71, -0.09, -0.83})}};
    t.mseLoss((*outs)[0]);
    checkGradients(t);
  }
}

// GridSample on [[1, 2], [3, 4]] at the centre (0, 0), the top-left corner (-1, -1) and the
// bottom-right (1, 1), pixel edges (align_corners 0): x = y = 0.5, -0.5, 1.5.
TEST(OnnxIndexing, GridSampleByHand) {
  struct Case {
    std::string mode, padding;
    std::vector<double> want;
  };
  const Case cases[] = {
      {"bilinear", "zeros", {2.5, 0.25, 1.0}},      // corners: one tap of four inside
      {"bilinear", "border", {2.5, 1.0, 4.0}},      // corners: the edge pixel
      {"bilinear", "reflection", {2.5, 1.0, 4.0}},  // tap -1 reflects over -0.5 to 0
      {"nearest", "zeros", {1, 1, 0}},              // 0.5 and -0.5 round to 0, 1.5 to 2 (outside)
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.mode + " " + k.padding);
    OnnxModelBuilder b(16);
    b.input("x", DType::F32, {int64_t(1), int64_t(1), int64_t(2), int64_t(2)});
    b.input("grid", DType::F32, {int64_t(1), int64_t(1), int64_t(3), int64_t(2)});
    b.output("y", DType::F32, {int64_t(1), int64_t(1), int64_t(1), int64_t(3)});
    auto& n = b.node("GridSample", {"x", "grid"}, {"y"}, "sample");
    attrString(n, "mode", k.mode);
    attrString(n, "padding_mode", k.padding);
    auto session = Session::create(b.save(tempDir()), {.device = DeviceKind::Cpu});
    ASSERT_TRUE(session) << session.error().str();
    auto out = session->run({{"x", f32Tensor({1, 1, 2, 2}, {1, 2, 3, 4})},
                             {"grid", f32Tensor({1, 1, 3, 2}, {0, 0, -1, -1, 1, 1})}});
    ASSERT_TRUE(out) << out.error().str();
    EXPECT_EQ(out->at("y").toDoubles(), k.want);
  }
}

#endif  // SHOAL_HAVE_ONNX

}  // namespace
