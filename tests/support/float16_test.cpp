// The storage element types: float16/bfloat16 conversions (support/float16.h, bit patterns
// from IEEE 754 and hand-worked rounding cases), Tensor reads and writes of every storage
// type, .npy round trips, and the IR's rule that only sources, outputs and cast touch them.
#include "support/float16.h"

#include <gtest/gtest.h>

#include <shoal/tensor.h>

#include <cmath>
#include <limits>

#include "ir/graph.h"
#include "ir/shape_inference.h"
#include "runtime/cpu/interpreter.h"
#include "runtime/data/npy.h"

namespace shoal {
namespace {

TEST(Float16, ExactValuesAndLimits) {
  EXPECT_EQ(shoal_f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(shoal_f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(shoal_f32_to_f16(0.0f), 0x0000);
  EXPECT_EQ(shoal_f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(shoal_f32_to_f16(65504.0f), 0x7bff);                    // the largest finite
  EXPECT_EQ(shoal_f32_to_f16(0x1p-14f), 0x0400);                    // the smallest normal
  EXPECT_EQ(shoal_f32_to_f16(0x1p-24f), 0x0001);                    // the smallest subnormal
  EXPECT_EQ(shoal_f32_to_f16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(shoal_f32_to_f16(-std::numeric_limits<float>::infinity()), 0xfc00);
  const uint16_t nan = shoal_f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_EQ(shoal_f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(shoal_f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(shoal_f16_to_f32(0x0001), 0x1p-24f);
  EXPECT_EQ(shoal_f16_to_f32(0x83ff), -0x3ffp-24f);  // the largest negative subnormal
  EXPECT_TRUE(std::isinf(shoal_f16_to_f32(0x7c00)));
  EXPECT_TRUE(std::isnan(shoal_f16_to_f32(0x7e00)));
}

TEST(Float16, RoundsToNearestEven) {
  // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: to even (1). 1 + 3·2^-11: up to 1 + 2^-9.
  EXPECT_EQ(shoal_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
  EXPECT_EQ(shoal_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
  EXPECT_EQ(shoal_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);  // past the tie: up
  // 65520 is halfway between 65504 and 2^16 (inf): to even, which is inf.
  EXPECT_EQ(shoal_f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(shoal_f32_to_f16(65520.0f), 0x7c00);
  // Subnormals: 2^-25 ties to 0, 3·2^-25 ties up to 2·2^-24, 2^-25 + 2^-30 rounds up to 2^-24.
  EXPECT_EQ(shoal_f32_to_f16(0x1p-25f), 0x0000);
  EXPECT_EQ(shoal_f32_to_f16(3 * 0x1p-25f), 0x0002);
  EXPECT_EQ(shoal_f32_to_f16(0x1p-25f + 0x1p-30f), 0x0001);
  // 0.1 = 0x2e66 (0.0999755859375), as numpy's float16(0.1).
  EXPECT_EQ(shoal_f32_to_f16(0.1f), 0x2e66);
  // Every float16 survives f16 -> f32 -> f16.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;  // NaNs: payloads may be quieted
    ASSERT_EQ(shoal_f32_to_f16(shoal_f16_to_f32(uint16_t(h))), h) << std::hex << h;
  }
}

TEST(Float16, DoubleRoundsOnceNotTwice) {
  // 1 + 2^-11 + 2^-40: nearest float is 1 + 2^-11 (a float16 tie, which would go to 1.0);
  // the double itself lies past the tie, so float16 rounds up.
  EXPECT_EQ(shoal_f64_to_f16(1.0 + 0x1p-11 + 0x1p-40), 0x3c01);
  EXPECT_EQ(shoal_f64_to_f16(1.0 + 0x1p-11 - 0x1p-40), 0x3c00);
  EXPECT_EQ(shoal_f64_to_f16(1e300), 0x7c00);
  EXPECT_EQ(shoal_f64_to_f16(-1e-300), 0x8000);
  EXPECT_EQ(shoal_f64_to_bf16(1.0 + 0x1p-8 + 0x1p-40), 0x3f81);
}

TEST(BFloat16, IsTheHighHalfRoundedToNearestEven) {
  EXPECT_EQ(shoal_f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(shoal_bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(shoal_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);              // tie: to even
  EXPECT_EQ(shoal_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);          // tie: to even (up)
  EXPECT_EQ(shoal_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);   // past the tie
  EXPECT_EQ(shoal_f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to inf
  EXPECT_TRUE(std::isnan(shoal_bf16_to_f32(shoal_f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(StorageTypes, TensorsReadAndWriteThem) {
  Tensor h(DType::F16, {3});
  h.set(0, 0.1);
  h.set(1, 70000.0);
  h.set(2, -1.5);
  EXPECT_EQ(h.data<uint16_t>()[0], 0x2e66);
  EXPECT_EQ(h.at(0), 0.0999755859375);
  EXPECT_TRUE(std::isinf(h.at(1)));
  EXPECT_EQ(h.at(2), -1.5);
  Tensor i8(DType::I8, {3});
  i8.set(0, 300);  // saturates, as every integer type does
  i8.set(1, -300);
  i8.set(2, -7.9);  // toward zero
  EXPECT_EQ(i8.at(0), 127);
  EXPECT_EQ(i8.at(1), -128);
  EXPECT_EQ(i8.at(2), -7);
  Tensor u64(DType::U64, {2});
  u64.set(0, 1e19);
  u64.set(1, -5);
  EXPECT_EQ(u64.data<uint64_t>()[0], 10000000000000000000ull);
  EXPECT_EQ(u64.at(1), 0);
  Tensor wide = h.cast(DType::F32);
  EXPECT_EQ(wide.data<float>()[2], -1.5f);
  for (DType t : kAllDTypes) {
    EXPECT_EQ(parseDType(dtypeName(t)), t);
    EXPECT_EQ(storageOnly(t), t != DType::F32 && t != DType::F64 && t != DType::I32 && t != DType::I64 &&
                                  t != DType::U8 && t != DType::Bool);
    EXPECT_FALSE(storageOnly(computeDType(t)) && computeDType(t) != DType::U64) << dtypeName(t);
  }
  EXPECT_EQ(computeDType(DType::F16), DType::F32);
  EXPECT_EQ(computeDType(DType::U16), DType::I32);
  EXPECT_EQ(computeDType(DType::U32), DType::I64);
}

TEST(StorageTypes, NpyRoundTrips) {
  Tensor h(DType::F16, {2});
  h.set(0, 0.5);
  h.set(1, -3);
  auto back = parseNpy(encodeNpy(h), "h.npy");
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->dtype(), DType::F16);
  EXPECT_EQ(back->at(1), -3);
  Tensor b(DType::BF16, {1});
  b.set(0, 2.5);
  auto asF32 = parseNpy(encodeNpy(b), "b.npy");  // NumPy has no bfloat16: written as f32
  ASSERT_TRUE(asF32) << asF32.error().message();
  EXPECT_EQ(asF32->dtype(), DType::F32);
  EXPECT_EQ(asF32->at(0), 2.5);
}

TEST(StorageTypes, OnlySourcesOutputsAndCastTouchThem) {
  Graph g("storage");
  Attrs in;
  in.set("name", std::string("x"));
  Value* x = g.addNode(OpKind::Input, {}, in, {{"x", {DType::F16, {4}}}}, {})->result();
  Node* add = g.addNode(OpKind::Add, {x, x}, {}, {{"y", {DType::F16, {4}}}}, {});
  auto bad = inferResultTypes(*add);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("operand %x is f16[4]: shoal stores f16 values and computes in f32 (cast it first)"),
            std::string::npos)
      << bad.error().message();
  Attrs toF32;
  toF32.set("dtype", std::string("f32"));
  Node* cast = g.addNode(OpKind::Cast, {x}, toF32, {{"w", {DType::F32, {4}}}}, {});
  auto ok = inferResultTypes(*cast);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ((*ok)[0].dtype, DType::F32);
  Attrs toU64;
  toU64.set("dtype", std::string("u64"));
  Node* relu = g.addNode(OpKind::Relu, {cast->result()}, {}, {{"r", {DType::F32, {4}}}}, {});
  Node* wide = g.addNode(OpKind::Cast, {relu->result()}, toU64, {{"u", {DType::U64, {4}}}}, {});
  ASSERT_TRUE(inferResultTypes(*wide));
  Node* neg = g.addNode(OpKind::Neg, {wide->result()}, {}, {{"n", {DType::U64, {4}}}}, {});
  auto refused = inferResultTypes(*neg);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("shoal stores u64 values and only casts them"), std::string::npos)
      << refused.error().message();
}

}  // namespace
}  // namespace shoal
