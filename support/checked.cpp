// Overflow-checked element counts and byte sizes.
#include "support/checked.h"

#include <fmt/format.h>

namespace shoal {

std::optional<int64_t> checkedNumElements(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s)
    if (d < 0) return std::nullopt;
  for (int64_t d : s)
    if (d == 0) return 0;
  for (int64_t d : s) {
    auto next = checkedMul(n, d);
    if (!next) return std::nullopt;
    n = *next;
  }
  return n;
}

std::optional<int64_t> checkedByteSize(const TensorType& t) {
  auto n = checkedNumElements(t.shape);
  if (!n) return std::nullopt;
  return checkedMul(*n, int64_t(dtypeSize(t.dtype)));
}

std::string tensorSizeProblem(const TensorType& t) {
  for (int64_t d : t.shape)
    if (d < 0) return fmt::format("extent {} is negative", d);
  auto n = checkedNumElements(t.shape);
  if (!n) return fmt::format("its extents multiply past 2^63 elements");
  auto bytes = checkedByteSize(t);
  if (!bytes || *bytes > kMaxTensorBytes)
    return fmt::format("it needs {} bytes, more than the {} (2^48) a tensor may hold",
                       bytes ? std::to_string(*bytes) : fmt::format("{} x {}", *n, dtypeSize(t.dtype)), kMaxTensorBytes);
  return "";
}

}  // namespace shoal
