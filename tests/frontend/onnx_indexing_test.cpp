// ONNX's GatherND, ScatterND and ScatterElements beyond the conformance cases, by hand:
// negative indices, replaced and added slices, duplicates under "add", batch_dims with a
// two-axis tuple, and an index outside the data reported at run time (not dropped).
#include <gtest/gtest.h>
#include <shoal/shoal.h>

#include "onnx_test_models.h"
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

#endif  // SHOAL_HAVE_ONNX

}  // namespace
