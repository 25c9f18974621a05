// Checked arithmetic: overflow at the int64 edges, element counts and byte sizes, the size
// problems shape inference reports, and the saturating numElements/byteSize of the public types.
#include "support/checked.h"

#include <gtest/gtest.h>

#include <limits>

namespace shoal {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

TEST(Checked, AddSubMulAtTheEdges) {
  EXPECT_EQ(checkedAdd(kMax - 1, 1), kMax);
  EXPECT_EQ(checkedAdd(kMax, 1), std::nullopt);
  EXPECT_EQ(checkedAdd(kMin, -1), std::nullopt);
  EXPECT_EQ(checkedSub(kMin + 1, 1), kMin);
  EXPECT_EQ(checkedSub(kMin, 1), std::nullopt);
  EXPECT_EQ(checkedSub(0, kMin), std::nullopt);
  EXPECT_EQ(checkedMul(int64_t(1) << 31, int64_t(1) << 31), int64_t(1) << 62);
  EXPECT_EQ(checkedMul(int64_t(1) << 32, int64_t(1) << 31), std::nullopt);
  EXPECT_EQ(checkedMul(4611686018427387905, 4), std::nullopt);  // 2^64 + 4: used to wrap to 4
  EXPECT_EQ(checkedMul(-1, kMin), std::nullopt);
  EXPECT_EQ(saturatingAdd(kMax, 5), kMax);
  EXPECT_EQ(saturatingAdd(kMin, -5), kMin);
  EXPECT_EQ(saturatingAdd(40, 2), 42);
}

TEST(Checked, ElementCountsAndBytes) {
  EXPECT_EQ(checkedNumElements({}), 1);
  EXPECT_EQ(checkedNumElements({64, 1, 28, 28}), 50176);
  EXPECT_EQ(checkedNumElements({4294967296, 4294967296}), std::nullopt);
  EXPECT_EQ(checkedNumElements({4294967296, 4294967296, 0}), 0) << "a zero extent wins over an overflow";
  EXPECT_EQ(checkedNumElements({3, -2}), std::nullopt);
  EXPECT_EQ(checkedByteSize({DType::F64, {int64_t(1) << 59}}), int64_t(1) << 62);
  EXPECT_EQ(checkedByteSize({DType::F64, {int64_t(1) << 60}}), std::nullopt);
  EXPECT_EQ(checkedByteSize({DType::U8, {kMax}}), kMax);
}

TEST(Checked, TensorSizeProblems) {
  EXPECT_EQ(tensorSizeProblem({DType::F32, {64, 784}}), "");
  EXPECT_EQ(tensorSizeProblem({DType::U8, {kMaxTensorBytes}}), "");
  EXPECT_EQ(tensorSizeProblem({DType::U8, {kMaxTensorBytes + 1}}),
            "it needs 281474976710657 bytes, more than the 281474976710656 (2^48) a tensor may hold");
  EXPECT_EQ(tensorSizeProblem({DType::F64, {kMax / 4}}),
            "it needs 2305843009213693951 x 8 bytes, more than the 281474976710656 (2^48) a tensor may hold");
  EXPECT_EQ(tensorSizeProblem({DType::F32, {4294967296, 4294967296}}), "its extents multiply past 2^63 elements");
  EXPECT_EQ(tensorSizeProblem({DType::F32, {2, -3}}), "extent -3 is negative");
}

TEST(Checked, PublicSizesSaturateInsteadOfWrapping) {
  EXPECT_EQ(numElements({4294967296, 4294967296}), kMax);
  EXPECT_EQ(numElements({4611686018427387905, 4}), kMax);
  EXPECT_EQ(numElements({4294967296, 4294967296, 0}), 0);
  EXPECT_EQ((TensorType{DType::F32, {4611686018427387905, 4}}.byteSize()), std::numeric_limits<size_t>::max());
  EXPECT_EQ((TensorType{DType::F32, {kMax}}.byteSize()), std::numeric_limits<size_t>::max());
  EXPECT_EQ((TensorType{DType::F32, {kMax / 2}}.byteSize()), size_t(kMax / 2) * 4) << "fits in size_t";
  EXPECT_EQ((TensorType{DType::F32, {3, 5}}.byteSize()), 60u);
}

}  // namespace
}  // namespace shoal
