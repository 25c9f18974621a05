// Element types, static shapes and tensor types.
#include <shoal/types.h>

#include <cassert>
#include <limits>

static_assert(sizeof(bool) == 1, "DType::Bool tensors hold one byte per element, read as C++ bool");

namespace shoal {

std::string_view dtypeName(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::U8: return "u8";
    case DType::Bool: return "bool";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::I8: return "i8";
    case DType::I16: return "i16";
    case DType::U16: return "u16";
    case DType::U32: return "u32";
    case DType::U64: return "u64";
  }
  return "?";
}

std::optional<DType> parseDType(std::string_view name) {
  for (DType t : kAllDTypes)
    if (dtypeName(t) == name) return t;
  if (name == "b8") return DType::Bool;  // the spelling of one-byte booleans elsewhere (MLIR's i1 is a bit)
  return std::nullopt;
}

size_t dtypeSize(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::U8: return 1;
    case DType::Bool: return 1;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I8: return 1;
    case DType::I16: return 2;
    case DType::U16: return 2;
    case DType::U32: return 4;
    case DType::U64: return 8;
  }
  return 0;
}

bool isFloat(DType t) { return t == DType::F32 || t == DType::F64; }

bool storageOnly(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F64:
    case DType::I32:
    case DType::I64:
    case DType::U8:
    case DType::Bool: return false;
    case DType::F16:
    case DType::BF16:
    case DType::I8:
    case DType::I16:
    case DType::U16:
    case DType::U32:
    case DType::U64: return true;
  }
  return true;
}

DType computeDType(DType t) {
  switch (t) {
    case DType::F16:
    case DType::BF16: return DType::F32;
    case DType::I8:
    case DType::I16:
    case DType::U16: return DType::I32;
    case DType::U32: return DType::I64;
    default: return t;
  }
}

int64_t numElements(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s)
    if (d == 0) return 0;
  for (int64_t d : s)
    if (__builtin_mul_overflow(n, d, &n)) return std::numeric_limits<int64_t>::max();
  return n;
}

size_t TensorType::byteSize() const {
  int64_t n = numElements();
  size_t bytes;
  if (n < 0 || __builtin_mul_overflow(size_t(n), dtypeSize(dtype), &bytes)) return std::numeric_limits<size_t>::max();
  return bytes;
}

std::string shapeString(const Shape& s) {
  if (s.empty()) return "scalar";
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += 'x';
    out += std::to_string(s[i]);
  }
  return out;
}

std::string TensorType::str() const {
  std::string out(dtypeName(dtype));
  out += '[';
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(shape[i]);
  }
  out += ']';
  return out;
}

}  // namespace shoal
