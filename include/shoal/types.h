// Public vocabulary: element types, static shapes and tensor types.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shoal {


/// Element type of a tensor. The order is part of the IR text (names, not numbers, are
/// printed), so new kinds may be appended freely. Bool is one byte holding 0 or 1 (what
/// comparisons produce and `where` selects by; safetensors BOOL).
enum class DType : uint8_t { F32, F64, I32, I64, U8, Bool };

/// "f32", "f64", "i32", "i64", "u8", "bool".
std::string_view dtypeName(DType t);
/// Inverse of dtypeName (also "b8" for bool); nullopt for an unknown name.
std::optional<DType> parseDType(std::string_view name);
/// Bytes per element.
size_t dtypeSize(DType t);
/// True for f32 and f64.
bool isFloat(DType t);

/// A static shape: one extent per dimension, outermost first (NCHW for images).
using Shape = std::vector<int64_t>;

/// Product of the extents (1 for a scalar, i.e. an empty shape). A product that does not fit
/// in int64 saturates at INT64_MAX (shape inference rejects such types; see support/checked.h).
int64_t numElements(const Shape& s);
/// "64x1x28x28"; "scalar" for rank 0.
std::string shapeString(const Shape& s);

/// The type of an IR value: element type plus static shape.
struct TensorType {
  DType dtype = DType::F32;
  Shape shape;

  int64_t numElements() const { return shoal::numElements(shape); }
  /// numElements() x the element size; saturates at SIZE_MAX instead of wrapping.
  size_t byteSize() const;
  int64_t rank() const { return int64_t(shape.size()); }
  /// IR spelling: "f32[64,1,28,28]", "f32[]" for a scalar.
  std::string str() const;
  bool operator==(const TensorType&) const = default;
};

}  // namespace shoal
