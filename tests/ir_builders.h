// The small builders every IR-level test spells the same way: tensor types by element type
// (f32({2, 3})), attribute sets from a list (attrs({{"axis", int64_t(1)}})), a convolution's
// stride, padding and dilation (convAttrs). One definition for all the case headers and test
// files: the test sources are compiled several to a translation unit (tests/CMakeLists.txt,
// SHOAL_TESTS_UNITY_BATCH), where two copies would collide.
#pragma once

#include <initializer_list>
#include <utility>

#include "ir/graph.h"

namespace shoal::test {

using ::shoal::f32;  // include/shoal/types.h
using ::shoal::f64;
inline TensorType i64(Shape s) { return {DType::I64, std::move(s)}; }
inline TensorType i32(Shape s) { return {DType::I32, std::move(s)}; }
inline TensorType u8(Shape s) { return {DType::U8, std::move(s)}; }

inline Attrs attrs(std::initializer_list<std::pair<const char*, AttrValue>> entries) {
  Attrs a;
  for (const auto& [k, v] : entries) a.set(k, v);
  return a;
}

/// A convolution's or pool's stride, padding and dilation.
inline Attrs convAttrs(Shape stride = {1, 1}, Shape padding = {0, 0, 0, 0}, Shape dilation = {1, 1}) {
  return attrs({{"stride", stride}, {"padding", padding}, {"dilation", dilation}});
}

}  // namespace shoal::test
