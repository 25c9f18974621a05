// ONNX TensorProto <-> shoal Tensor: element types, raw and typed storage, external data,
// and the .pb tensor files of ONNX's test data.
#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "frontend/onnx/onnx_importer.h"
#include "support/file_util.h"

namespace shoal {
namespace onnx_import {

namespace fs = std::filesystem;

void throwUnsupported(std::string message) { throw ImportFailure{std::move(message), true}; }
void throwInvalid(std::string message) { throw ImportFailure{std::move(message), false}; }

std::optional<DType> dtypeFromOnnx(int32_t elemType) {
  switch (elemType) {
    case onnx::TensorProto::FLOAT:
      return DType::F32;
    case onnx::TensorProto::DOUBLE:
      return DType::F64;
    case onnx::TensorProto::INT32:
      return DType::I32;
    case onnx::TensorProto::INT64:
      return DType::I64;
    case onnx::TensorProto::UINT8:
      return DType::U8;
    case onnx::TensorProto::BOOL:
      return DType::Bool;
    case onnx::TensorProto::FLOAT16:
      return DType::F16;
    case onnx::TensorProto::BFLOAT16:
      return DType::BF16;
    case onnx::TensorProto::INT8:
      return DType::I8;
    case onnx::TensorProto::INT16:
      return DType::I16;
    case onnx::TensorProto::UINT16:
      return DType::U16;
    case onnx::TensorProto::UINT32:
      return DType::U32;
    case onnx::TensorProto::UINT64:
      return DType::U64;
    default:
      return std::nullopt;
  }
}

int32_t onnxFromDtype(DType t) {
  switch (t) {
    case DType::F32:
      return onnx::TensorProto::FLOAT;
    case DType::F64:
      return onnx::TensorProto::DOUBLE;
    case DType::I32:
      return onnx::TensorProto::INT32;
    case DType::I64:
      return onnx::TensorProto::INT64;
    case DType::U8:
      return onnx::TensorProto::UINT8;
    case DType::Bool:
      return onnx::TensorProto::BOOL;
    case DType::F16:
      return onnx::TensorProto::FLOAT16;
    case DType::BF16:
      return onnx::TensorProto::BFLOAT16;
    case DType::I8:
      return onnx::TensorProto::INT8;
    case DType::I16:
      return onnx::TensorProto::INT16;
    case DType::U16:
      return onnx::TensorProto::UINT16;
    case DType::U32:
      return onnx::TensorProto::UINT32;
    case DType::U64:
      return onnx::TensorProto::UINT64;
  }
  return onnx::TensorProto::UNDEFINED;
}

std::string onnxTypeName(int32_t elemType) {
  switch (elemType) {
    case onnx::TensorProto::FLOAT:
      return "float";
    case onnx::TensorProto::UINT8:
      return "uint8";
    case onnx::TensorProto::INT8:
      return "int8";
    case onnx::TensorProto::UINT16:
      return "uint16";
    case onnx::TensorProto::INT16:
      return "int16";
    case onnx::TensorProto::INT32:
      return "int32";
    case onnx::TensorProto::INT64:
      return "int64";
    case onnx::TensorProto::STRING:
      return "string";
    case onnx::TensorProto::BOOL:
      return "bool";
    case onnx::TensorProto::FLOAT16:
      return "float16";
    case onnx::TensorProto::DOUBLE:
      return "double";
    case onnx::TensorProto::UINT32:
      return "uint32";
    case onnx::TensorProto::UINT64:
      return "uint64";
    case onnx::TensorProto::COMPLEX64:
      return "complex64";
    case onnx::TensorProto::COMPLEX128:
      return "complex128";
    case onnx::TensorProto::BFLOAT16:
      return "bfloat16";
    default:
      return fmt::format("data type {}", elemType);
  }
}

namespace {

std::string describeTensor(const onnx::TensorProto& t) {
  return t.name().empty() ? std::string("a tensor") : fmt::format("tensor '{}'", t.name());
}

// The bytes of an external tensor: `location` relative to the model's folder (never outside
// it), `offset` and `length` in bytes.
std::string readExternal(const onnx::TensorProto& t, const std::string& baseDir) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& e : t.external_data()) {
    if (e.key() == "location")
      location = e.value();
    else if (e.key() == "offset" || e.key() == "length") {
      int64_t v = 0;
      try {
        size_t used = 0;
        v = std::stoll(e.value(), &used);
        if (used != e.value().size() || v < 0) throw std::invalid_argument("");
      } catch (const std::exception&) {
        throwInvalid(
            fmt::format("{}: external data {} '{}' is not a byte count", describeTensor(t), e.key(), e.value()));
      }
      (e.key() == "offset" ? offset : length) = v;
    }
  }
  if (location.empty()) throwInvalid(fmt::format("{}: external data without a location", describeTensor(t)));
  fs::path rel(location);
  if (rel.is_absolute())
    throwInvalid(fmt::format("{}: external data location '{}' must be relative to the model's folder",
                             describeTensor(t), location));
  for (const auto& part : rel)
    if (part == "..")
      throwInvalid(
          fmt::format("{}: external data location '{}' leaves the model's folder", describeTensor(t), location));
  fs::path file = fs::path(baseDir.empty() ? "." : baseDir) / rel;
  std::ifstream in(file, std::ios::binary);
  if (!in) throwInvalid(fmt::format("{}: cannot open external data file '{}'", describeTensor(t), file.string()));
  in.seekg(0, std::ios::end);
  int64_t size = int64_t(in.tellg());
  if (length < 0) length = size - offset;
  if (offset > size || length > size - offset)
    throwInvalid(fmt::format("{}: external data [{}, {}) lies beyond the end of '{}' ({} bytes)", describeTensor(t),
                             offset, offset + length, file.string(), size));
  std::string bytes(size_t(length), '\0');
  in.seekg(offset);
  in.read(bytes.data(), length);
  if (!in) throwInvalid(fmt::format("{}: cannot read external data file '{}'", describeTensor(t), file.string()));
  return bytes;
}

template <typename Field>
void copyTyped(const Field& field, Tensor& out, const onnx::TensorProto& t, const char* fieldName) {
  if (int64_t(field.size()) != out.numElements())
    throwInvalid(fmt::format("{} holds {} values in {}, its shape {} needs {}", describeTensor(t), field.size(),
                             fieldName, shapeString(out.shape()), out.numElements()));
  for (int64_t i = 0; i < out.numElements(); ++i) out.set(i, double(field[int(i)]));
}

}  // namespace

Tensor tensorFromProto(const onnx::TensorProto& t, const std::string& baseDir) {
  auto dtype = dtypeFromOnnx(t.data_type());
  if (!dtype)
    throwUnsupported(fmt::format("{} has element type {}, which shoal does not support", describeTensor(t),
                                 onnxTypeName(t.data_type())));
  Shape shape;
  int64_t count = 1;
  for (int64_t d : t.dims()) {
    if (d < 0) throwInvalid(fmt::format("{} has a negative extent {}", describeTensor(t), d));
    if (d > 0 && count > (int64_t(1) << 40) / d)
      throwInvalid(fmt::format("{} has an absurd shape (over 2^40 elements)", describeTensor(t)));
    count *= d;
    shape.push_back(d);
  }
  // The data must be there before anything is allocated for it (a malformed file can claim
  // any shape).
  bool external = t.data_location() == onnx::TensorProto::EXTERNAL;
  std::string bytes;
  size_t need = size_t(count) * dtypeSize(*dtype);
  if (external || t.has_raw_data()) {
    bytes = external ? readExternal(t, baseDir) : t.raw_data();
    if (bytes.size() != need)
      throwInvalid(fmt::format("{} has {} bytes of data, its type {}{} needs {}", describeTensor(t), bytes.size(),
                               dtypeName(*dtype), shapeString(shape), need));
  } else {
    const bool wideUnsigned = t.data_type() == onnx::TensorProto::UINT32 || t.data_type() == onnx::TensorProto::UINT64;
    int64_t have = t.data_type() == onnx::TensorProto::FLOAT    ? t.float_data_size()
                   : t.data_type() == onnx::TensorProto::DOUBLE ? t.double_data_size()
                   : t.data_type() == onnx::TensorProto::INT64  ? t.int64_data_size()
                   : wideUnsigned                               ? t.uint64_data_size()
                                                                : t.int32_data_size();
    if (have != count)
      throwInvalid(
          fmt::format("{} holds {} values, its shape {} needs {}", describeTensor(t), have, shapeString(shape), count));
  }
  Tensor out(*dtype, shape);
  if (count == 0) return out;
  if (!bytes.empty()) {
    std::memcpy(out.raw(), bytes.data(), bytes.size());  // ONNX stores little-endian, as x86-64 and ARM64 do
    if (*dtype == DType::Bool)
      for (size_t k = 0; k < bytes.size(); ++k)
        if (static_cast<unsigned char>(bytes[k]) > 1)
          throwInvalid(fmt::format("{}: bool element {} is byte {}, not 0 or 1", describeTensor(t), k,
                                   int(static_cast<unsigned char>(bytes[k]))));
    return out;
  }
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      copyTyped(t.float_data(), out, t, "float_data");
      break;
    case onnx::TensorProto::DOUBLE:
      copyTyped(t.double_data(), out, t, "double_data");
      break;
    case onnx::TensorProto::INT64:
      if (t.int64_data_size() != out.numElements())
        throwInvalid(fmt::format("{} holds {} values in int64_data, its shape {} needs {}", describeTensor(t),
                                 t.int64_data_size(), shapeString(shape), out.numElements()));
      for (int64_t i = 0; i < out.numElements(); ++i) out.data<int64_t>()[i] = t.int64_data(int(i));
      break;
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16:
      // int32_data holds each element's 16 bits (ONNX's TensorProto comment).
      for (int64_t i = 0; i < out.numElements(); ++i) out.data<uint16_t>()[i] = uint16_t(t.int32_data(int(i)));
      break;
    case onnx::TensorProto::UINT32:
      for (int64_t i = 0; i < out.numElements(); ++i) out.data<uint32_t>()[i] = uint32_t(t.uint64_data(int(i)));
      break;
    case onnx::TensorProto::UINT64:
      for (int64_t i = 0; i < out.numElements(); ++i) out.data<uint64_t>()[i] = t.uint64_data(int(i));
      break;
    default:
      copyTyped(t.int32_data(), out, t, "int32_data");
      break;  // int32, uint8, int8, int16, uint16 (and bool)
  }
  return out;
}

void tensorToProto(const Tensor& t, const std::string& name, onnx::TensorProto* out) {
  out->Clear();
  out->set_name(name);
  out->set_data_type(onnxFromDtype(t.dtype()));
  for (int64_t d : t.shape()) out->add_dims(d);
  out->set_raw_data(std::string(static_cast<const char*>(t.raw()), t.byteSize()));
}

}  // namespace onnx_import

OnnxExpected<NamedTensor> readOnnxTensorFile(const std::string& path) {
  auto bytes = readFileBytes(path, kTensorFileLimit);
  if (!bytes) return Unexpected(OnnxImportError{bytes.error(), false});
  onnx::TensorProto proto;
  if (!proto.ParseFromString(*bytes))
    return Unexpected(OnnxImportError{Error(fmt::format("{}: not a serialized ONNX TensorProto", path)), false});
  try {
    std::string dir = std::filesystem::path(path).parent_path().string();
    return NamedTensor{proto.name(), onnx_import::tensorFromProto(proto, dir)};
  } catch (const onnx_import::ImportFailure& f) {
    return Unexpected(OnnxImportError{Error(path + ": " + f.message), f.unsupported});
  }
}

Expected<void> writeOnnxTensorFile(const std::string& path, const std::string& name, const Tensor& t) {
  onnx::TensorProto proto;
  onnx_import::tensorToProto(t, name, &proto);
  std::string bytes;
  if (!proto.SerializeToString(&bytes)) return fail(fmt::format("{}: cannot serialize tensor '{}'", path, name));
  return writeFileAtomic(path, bytes);
}

}  // namespace shoal
