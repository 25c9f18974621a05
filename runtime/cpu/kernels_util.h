// Internal helpers shared by the CPU kernel sources (not part of the kernel API).
#pragma once

#include <cstdint>

namespace shoal::cpu::detail {

/// Σ x[0..n) accumulated in double, in four interleaved partial sums so the additions
/// pipeline (a single running sum is bound by the add latency).
template <typename T>
double sumAsDouble(const T* x, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += double(x[i]);
    s1 += double(x[i + 1]);
    s2 += double(x[i + 2]);
    s3 += double(x[i + 3]);
  }
  for (; i < n; ++i) s0 += double(x[i]);
  return (s0 + s1) + (s2 + s3);
}

}  // namespace shoal::cpu::detail
