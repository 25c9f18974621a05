// Overflow-checked integer arithmetic for shapes, element counts and byte sizes.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include <shoal/types.h>

namespace shoal {

/// a + b, or nullopt when the sum does not fit in int64.
inline std::optional<int64_t> checkedAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// a - b, or nullopt when the difference does not fit in int64.
inline std::optional<int64_t> checkedSub(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// a * b, or nullopt when the product does not fit in int64.
inline std::optional<int64_t> checkedMul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// a + b clamped to the int64 range: for running totals (arena sizes) that are compared
/// against a limit afterwards, where "more than fits" and "too much" mean the same.
inline int64_t saturatingAdd(int64_t a, int64_t b) {
  if (auto r = checkedAdd(a, b)) return *r;
  return (a > 0) ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
}

/// a * b clamped to the int64 range: for work estimates (parallel grain sizes, operation
/// counts) whose factors are each bounded but whose product need not be.
inline int64_t saturatingMul(int64_t a, int64_t b) {
  if (auto r = checkedMul(a, b)) return *r;
  return ((a < 0) != (b < 0)) ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int64_t>::max();
}

/// The largest byte size of one tensor that shoal accepts: 2^48 bytes (256 TiB). It lies
/// beyond any device's memory, and leaves room for the sums and index products the planner
/// and the kernels form from a few such sizes without overflowing int64.
inline constexpr int64_t kMaxTensorBytes = int64_t(1) << 48;

/// The number of elements of `s`, or nullopt when an extent is negative or the product does
/// not fit in int64.
std::optional<int64_t> checkedNumElements(const Shape& s);

/// The byte size of a tensor of type `t`, or nullopt when it does not fit in int64 (or an
/// extent is negative).
std::optional<int64_t> checkedByteSize(const TensorType& t);

/// "" when a tensor of type `t` can exist (non-negative extents, at most kMaxTensorBytes
/// bytes), else why not: "its 2 extents multiply past 2^63 elements", "it needs 2^50 bytes,
/// more than the 2^48 a tensor may hold", "extent -3 is negative".
std::string tensorSizeProblem(const TensorType& t);

}  // namespace shoal
