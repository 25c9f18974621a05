// Public vocabulary: element types, static shapes and tensor types.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shoal {


/// Element type of a tensor. The order is part of the IR text (names, not numbers, are
/// printed), so new kinds may be appended freely. Bool is one byte holding 0 or 1 (what
/// comparisons produce and `where` selects by; safetensors BOOL).
///
/// F16 (IEEE binary16), BF16, I8, I16, U16, U32 and U64 are storage types: tensors hold them
/// (ONNX models and test data, checkpoints) and `cast` converts them, but ops compute in the
/// types above (storageOnly(), computeDType()). F16 and BF16 are held as their 16-bit patterns.
enum class DType : uint8_t { F32, F64, I32, I64, U8, Bool, F16, BF16, I8, I16, U16, U32, U64 };

/// Every element type, in enum order.
inline constexpr DType kAllDTypes[] = {DType::F32, DType::F64, DType::I32, DType::I64, DType::U8,
                                       DType::Bool, DType::F16, DType::BF16, DType::I8, DType::I16,
                                       DType::U16, DType::U32, DType::U64};

/// "f32", "f64", "i32", "i64", "u8", "bool", "f16", "bf16", "i8", "i16", "u16", "u32", "u64".
std::string_view dtypeName(DType t);
/// Inverse of dtypeName (also "b8" for bool); nullopt for an unknown name.
std::optional<DType> parseDType(std::string_view name);
/// Bytes per element.
size_t dtypeSize(DType t);
/// True for f32 and f64.
bool isFloat(DType t);
/// True for the storage types (F16, BF16, I8, I16, U16, U32, U64): only source, output and
/// cast ops take or make them.
bool storageOnly(DType t);
/// The type that holds every value of `t` and that ops compute in: f32 for F16 and BF16, i32
/// for I8, I16 and U16, i64 for U32; U64 has none (it is itself); other types are themselves.
DType computeDType(DType t);

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

/// Shorthand for tensor types: `shoal::f32({64, 784})`.
inline TensorType f32(Shape shape) { return {DType::F32, std::move(shape)}; }
inline TensorType f64(Shape shape) { return {DType::F64, std::move(shape)}; }

}  // namespace shoal
