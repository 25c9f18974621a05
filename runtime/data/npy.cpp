// NumPy .npy reading and writing.
#include "runtime/data/npy.h"

#include <fmt/format.h>

#include <cstring>

#include "support/checked.h"
#include "support/file_util.h"

namespace shoal {

namespace {

// NumPy's dtype string of an element type; empty for bf16, which NumPy lacks.
std::string_view npyDescr(DType t) {
  switch (t) {
    case DType::F32: return "<f4";
    case DType::F64: return "<f8";
    case DType::I32: return "<i4";
    case DType::I64: return "<i8";
    case DType::U8: return "|u1";
    case DType::Bool: return "|b1";
    case DType::F16: return "<f2";
    case DType::BF16: return "";
    case DType::I8: return "|i1";
    case DType::I16: return "<i2";
    case DType::U16: return "<u2";
    case DType::U32: return "<u4";
    case DType::U64: return "<u8";
  }
  return "";
}

// The value of `key` in the header dict: the text after "'key':" up to the next top-level
// comma or closing brace.
std::optional<std::string> headerValue(std::string_view header, std::string_view key) {
  std::string quoted = fmt::format("'{}'", key);
  size_t at = header.find(quoted);
  if (at == std::string_view::npos) return std::nullopt;
  size_t colon = header.find(':', at + quoted.size());
  if (colon == std::string_view::npos) return std::nullopt;
  size_t i = colon + 1;
  while (i < header.size() && header[i] == ' ') ++i;
  size_t start = i;
  int depth = 0;
  for (; i < header.size(); ++i) {
    char c = header[i];
    if (c == '(' || c == '[')
      ++depth;
    else if (c == ')' || c == ']')
      --depth;
    else if ((c == ',' || c == '}') && depth == 0)
      break;
  }
  std::string v(header.substr(start, i - start));
  while (!v.empty() && v.back() == ' ') v.pop_back();
  return v;
}

}  // namespace

Expected<Tensor> parseNpy(std::string_view bytes, const std::string& name) {
  auto bad = [&](const std::string& why) { return fail(fmt::format("{}: not a readable .npy file: {}", name, why)); };
  if (bytes.size() < 10 || bytes.substr(0, 6) != "\x93NUMPY") return bad("bad magic");
  int major = static_cast<unsigned char>(bytes[6]);
  size_t headerLen = 0, offset = 0;
  if (major == 1) {
    headerLen = size_t(static_cast<unsigned char>(bytes[8])) | size_t(static_cast<unsigned char>(bytes[9])) << 8;
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return bad("truncated header");
    for (int i = 0; i < 4; ++i) headerLen |= size_t(static_cast<unsigned char>(bytes[size_t(8 + i)])) << (8 * i);
    offset = 12;
  } else {
    return bad(fmt::format("format version {}", major));
  }
  if (bytes.size() < offset + headerLen) return bad("truncated header");
  std::string_view header = bytes.substr(offset, headerLen);
  auto descr = headerValue(header, "descr");
  auto order = headerValue(header, "fortran_order");
  auto shapeText = headerValue(header, "shape");
  if (!descr || !order || !shapeText) return bad("the header lacks descr, fortran_order or shape");
  if (*order != "False") return bad("Fortran order (save C-ordered arrays: np.ascontiguousarray)");
  std::string d = *descr;
  if (d.size() < 2 || (d.front() != '\'' && d.front() != '"')) return bad("descr " + d);
  d = d.substr(1, d.size() - 2);
  std::optional<DType> found;
  for (DType t : kAllDTypes)
    if (npyDescr(t) == d) found = t;
  if (!found)
    return fail(fmt::format("{}: .npy element type '{}' is not one shoal reads (f2, f4, f8, i1, i2, i4, i8, u1, u2, "
                            "u4, u8, b1)",
                            name, d));
  const DType dtype = *found;
  Shape shape;
  std::string s = *shapeText;
  if (s.size() < 2 || s.front() != '(' || s.back() != ')') return bad("shape " + s);
  size_t i = 1;
  while (i < s.size() - 1) {
    while (i < s.size() - 1 && (s[i] == ' ' || s[i] == ',')) ++i;
    if (i >= s.size() - 1) break;
    size_t end = i;
    while (end < s.size() - 1 && s[end] >= '0' && s[end] <= '9') ++end;
    if (end == i || end - i > 15) return bad("shape " + s);
    shape.push_back(std::stoll(s.substr(i, end - i)));
    i = end;
  }
  if (std::string problem = tensorSizeProblem(TensorType{dtype, shape}); !problem.empty())
    return bad(fmt::format("shape {}: {}", shapeString(shape), problem));
  size_t data = offset + headerLen;
  auto need = checkedByteSize(TensorType{dtype, shape});
  if (!need || bytes.size() - data != size_t(*need))
    return bad(fmt::format("{} bytes of data, shape {} of {} needs {}", bytes.size() - data, shapeString(shape), d,
                           need.value_or(-1)));
  Tensor t(dtype, shape);
  if (t.byteSize()) std::memcpy(t.raw(), bytes.data() + data, t.byteSize());
  if (dtype == DType::Bool)
    for (size_t k = 0; k < t.byteSize(); ++k)
      if (static_cast<const unsigned char*>(t.raw())[k] > 1)
        return bad(fmt::format("bool element {} is byte {}, not 0 or 1", k,
                               int(static_cast<const unsigned char*>(t.raw())[k])));
  return t;
}

Expected<Tensor> readNpy(const std::string& path) {
  auto bytes = readFileBytes(path, kTensorFileLimit);
  if (!bytes) return Unexpected(bytes.error());
  return parseNpy(*bytes, path);
}

std::string encodeNpy(const Tensor& given) {
  // NumPy has no bfloat16: such a tensor is written as the f32 values it holds (exactly).
  const Tensor t = npyDescr(given.dtype()).empty() ? given.cast(DType::F32) : given;
  const std::string_view descr = npyDescr(t.dtype());
  std::string shape = "(";
  for (size_t i = 0; i < t.shape().size(); ++i)
    shape += std::to_string(t.shape()[i]) + (t.shape().size() == 1 ? "," : i + 1 < t.shape().size() ? ", " : "");
  shape += ")";
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr, shape);
  // Magic (6) + version (2) + length (2) + header + newline, padded to a multiple of 64.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += char(1);
  out += char(0);
  out += char(header.size() & 0xff);
  out += char(header.size() >> 8);
  out += header;
  out.append(static_cast<const char*>(t.raw()), t.byteSize());
  return out;
}

}  // namespace shoal
