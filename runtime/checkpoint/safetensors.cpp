// Reading and writing safetensors checkpoints, with validation that names file and tensor.
#include "runtime/checkpoint/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "support/file_util.h"

namespace shoal {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; add byte swapping");

namespace {

using OrderedJson = nlohmann::ordered_json;

constexpr std::string_view kMetadataKey = "__metadata__";

std::string_view safetensorsDTypeName(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
    case DType::Bool: return "BOOL";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I8: return "I8";
    case DType::I16: return "I16";
    case DType::U16: return "U16";
    case DType::U32: return "U32";
    case DType::U64: return "U64";
  }
  return "?";
}

std::optional<DType> parseSafetensorsDType(std::string_view name) {
  for (DType t : kAllDTypes)
    if (safetensorsDTypeName(t) == name) return t;
  return std::nullopt;
}

// Dtypes of the safetensors spec that shoal does not load (told apart from typos).
bool isKnownUnsupportedDType(std::string_view name) {
  static constexpr std::string_view kOthers[] = {"F8_E5M2", "F8_E4M3", "F8_E8M0", "E8M0",
                                                 "F4",      "F6_E2M3", "F6_E3M2", "C64"};
  return std::find(std::begin(kOthers), std::end(kOthers), name) != std::end(kOthers);
}

// "[32,1,3,3]" ("[]" for a scalar).
std::string bracketShape(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(s[i]);
  }
  return out + "]";
}

std::string range(uint64_t begin, uint64_t end) {
  // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict, a false positive) on the
  // inlined `"[" + std::to_string(...)` chain.
  std::string out = "[";
  out += std::to_string(begin);
  out += ',';
  out += std::to_string(end);
  out += ')';
  return out;
}

void appendLittleEndian64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out += char(uint8_t(v >> (8 * i)));
}

uint64_t readLittleEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | uint8_t(p[i]);
  return v;
}

// The header may nest JSON at most this deep (a real header nests 3 deep: object, entry,
// shape list). Checked before parsing, so nothing later (parsing, dump(), destruction) can
// recurse deeper than this.
constexpr int kMaxJsonDepth = 64;
// The reference implementation refuses headers over 100 MB; so does shoal.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// True when `text` nests arrays and objects at most `limit` deep (brackets inside strings do
// not count; the text need not be valid JSON, the parser says what else is wrong with it).
bool jsonDepthAtMost(std::string_view text, int limit) {
  int depth = 0;
  bool inString = false, escaped = false;
  for (char c : text) {
    if (inString) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') inString = false;
      continue;
    }
    if (c == '"') inString = true;
    else if (c == '[' || c == '{') {
      if (++depth > limit) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

// A JSON value for an error message: compact, and cut after 80 characters.
std::string brief(const OrderedJson& v) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

// nlohmann's messages start with "[json.exception.parse_error.101] "; keep the rest.
std::string jsonMessage(const std::exception& e) {
  std::string msg = e.what();
  if (msg.starts_with("[json.exception.")) {
    size_t close = msg.find("] ");
    if (close != std::string::npos) msg = msg.substr(close + 2);
  }
  return msg;
}

// One parsed header entry, before its data is copied.
struct Entry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

// Parses one tensor entry of the header; `where` is "FILE: tensor 'NAME'".
Expected<Entry> parseEntry(const std::string& where, const std::string& tensorName, const OrderedJson& info) {
  if (!info.is_object()) return fail(where + ": entry is not a JSON object");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!info.contains(field)) return fail(where + ": missing field '" + field + "'");

  Entry e;
  e.name = tensorName;
  const OrderedJson& dtype = info["dtype"];
  if (!dtype.is_string()) return fail(where + ": 'dtype' must be a string, got " + brief(dtype));
  std::string dtypeName = dtype.get<std::string>();
  auto parsed = parseSafetensorsDType(dtypeName);
  if (!parsed) {
    if (isKnownUnsupportedDType(dtypeName))
      return fail(where + ": dtype '" + dtypeName +
                  "' is not supported (shoal reads F32, F64, I32, I64, U8, BOOL, F16, BF16, I8, I16, U16, U32, U64)");
    return fail(where + ": unknown dtype '" + dtypeName + "'");
  }
  e.dtype = *parsed;

  const OrderedJson& shape = info["shape"];
  if (!shape.is_array()) return fail(where + ": 'shape' must be a list of non-negative integers, got " + brief(shape));
  uint64_t count = 1;
  for (const OrderedJson& d : shape) {
    if (!d.is_number_unsigned())
      return fail(where + ": 'shape' must be a list of non-negative integers, got " + brief(shape));
    uint64_t v = d.get<uint64_t>();
    if (v > (uint64_t(1) << 48) || (v != 0 && count > (uint64_t(1) << 48) / v))
      return fail(where + ": shape " + brief(shape) + " is too large");
    count *= v;
    e.shape.push_back(int64_t(v));
  }

  const OrderedJson& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    return fail(where + ": 'data_offsets' must be [begin, end] (non-negative integers), got " + brief(offsets));
  e.begin = offsets[0].get<uint64_t>();
  e.end = offsets[1].get<uint64_t>();
  if (e.begin > e.end) return fail(where + ": data_offsets " + range(e.begin, e.end) + " begin after they end");
  uint64_t need = count * dtypeSize(e.dtype);
  if (e.end - e.begin != need)
    return fail(where + ": data_offsets " + range(e.begin, e.end) + " hold " + std::to_string(e.end - e.begin) +
                " bytes, shape " + bracketShape(e.shape) + " " + dtypeName + " needs " + std::to_string(need));
  return e;
}

}  // namespace

Expected<std::string> encodeSafetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                        const std::map<std::string, std::string>& metadata) {
  OrderedJson header = OrderedJson::object();
  if (!metadata.empty()) {
    OrderedJson meta = OrderedJson::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header[std::string(kMetadataKey)] = std::move(meta);
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name.empty()) return fail("cannot save a tensor with an empty name");
    if (name == kMetadataKey) return fail("cannot save a tensor named '__metadata__' (reserved by the format)");
    if (!seen.insert(name).second) return fail("cannot save two tensors named '" + name + "'");
    if (!t.defined()) return fail("cannot save tensor '" + name + "': it holds no data");
    OrderedJson info = OrderedJson::object();
    info["dtype"] = std::string(safetensorsDTypeName(t.dtype()));
    info["shape"] = t.shape();
    info["data_offsets"] = {offset, offset + t.byteSize()};
    header[name] = std::move(info);
    offset += t.byteSize();
  }

  std::string json;
  try {
    json = header.dump();
  } catch (const nlohmann::json::exception& e) {  // only for names or metadata that are not UTF-8
    return fail("cannot save checkpoint: a tensor name or metadata string is not valid UTF-8 (" + jsonMessage(e) + ")");
  }
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  json.append((8 - json.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + json.size() + offset);
  appendLittleEndian64(out, json.size());
  out += json;
  for (const auto& [name, t] : tensors) out.append(static_cast<const char*>(t.raw()), t.byteSize());
  return out;
}

Expected<void> saveSafetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  auto bytes = encodeSafetensors(tensors, metadata);
  if (!bytes) return fail(path + ": " + bytes.error().message());
  return writeFileAtomic(path, *bytes);
}

const Tensor* SafetensorsFile::find(std::string_view name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

Expected<SafetensorsFile> decodeSafetensors(std::string_view bytes, const std::string& name) {
  if (bytes.size() < 8)
    return fail(name + ": truncated file: " + std::to_string(bytes.size()) +
                " bytes, a safetensors file starts with an 8-byte header length");
  uint64_t headerLen = readLittleEndian64(bytes.data());
  if (headerLen > bytes.size() - 8)
    return fail(name + ": header length " + std::to_string(headerLen) + " is larger than the file (" +
                std::to_string(bytes.size()) + " bytes)");
  if (headerLen > kMaxHeaderBytes)
    return fail(name + ": header length " + std::to_string(headerLen) + " is over the format's limit of " +
                std::to_string(kMaxHeaderBytes) + " bytes");
  std::string_view headerText = bytes.substr(8, size_t(headerLen));
  std::string_view data = bytes.substr(8 + size_t(headerLen));

  if (!jsonDepthAtMost(headerText, kMaxJsonDepth))
    return fail(name + ": header nests JSON more than " + std::to_string(kMaxJsonDepth) + " levels deep");
  OrderedJson header;
  try {
    header = OrderedJson::parse(headerText);
  } catch (const nlohmann::json::exception& e) {
    return fail(name + ": header is not JSON: " + jsonMessage(e));
  }
  if (!header.is_object()) return fail(name + ": header is not a JSON object");

  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object()) return fail(name + ": __metadata__ must map strings to strings");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) return fail(name + ": __metadata__ must map strings to strings ('" + k + "' is " + brief(v) + ")");
        file.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    auto entry = parseEntry(name + ": tensor '" + key + "'", key, value);
    if (!entry) return Unexpected(entry.error());
    entries.push_back(std::move(*entry));
  }

  // The tensors must tile the data section exactly: in range, no overlaps, no unused bytes.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.end > data.size())
      return fail(name + ": truncated file: tensor '" + e.name + "' has data_offsets " + range(e.begin, e.end) +
                  " but the data section holds " + std::to_string(data.size()) + " bytes");
    if (e.begin < pos)
      return fail(name + ": tensor '" + e.name + "': data_offsets " + range(e.begin, e.end) + " overlap tensor '" +
                  previous->name + "' " + range(previous->begin, previous->end));
    if (e.begin > pos)
      return fail(name + ": bytes " + range(pos, e.begin) + " of the data section belong to no tensor");
    pos = e.end;
    previous = &e;
  }
  if (pos < data.size())
    return fail(name + ": bytes " + range(pos, data.size()) + " of the data section belong to no tensor");

  for (const Entry& e : entries) {
    // A BOOL byte other than 0 or 1 is no bool (reading it as one would be undefined).
    if (e.dtype == DType::Bool)
      for (uint64_t i = e.begin; i < e.end; ++i)
        if (uint8_t(data[size_t(i)]) > 1)
          return fail(name + ": tensor '" + e.name + "': BOOL element " + std::to_string(i - e.begin) + " is " +
                      std::to_string(int(uint8_t(data[size_t(i)]))) + ", not 0 or 1");
    Tensor t(e.dtype, e.shape);
    if (t.byteSize()) std::memcpy(t.raw(), data.data() + e.begin, t.byteSize());
    file.tensors.emplace_back(e.name, std::move(t));
  }
  return file;
}

Expected<SafetensorsFile> loadSafetensors(const std::string& path) {
  auto bytes = readFileBytes(path, kCheckpointFileLimit);
  if (!bytes) return Unexpected(bytes.error());
  return decodeSafetensors(*bytes, path);
}

std::string unusedTensorsNote(const std::string& path, const SafetensorsFile& file,
                              const std::set<std::string>& modelTensors, bool verbose) {
  // Optimizer state the model's params had in training; an inference program has no use for it.
  auto isStateOfModelParam = [&](const std::string& name) {
    for (std::string_view suffix : {".m", ".v", ".velocity"})
      if (name.size() > suffix.size() && name.ends_with(suffix) &&
          modelTensors.count(name.substr(0, name.size() - suffix.size())))
        return true;
    return false;
  };
  std::vector<std::string> unused;
  for (const auto& [name, t] : file.tensors)
    if (!modelTensors.count(name) && (verbose || !isStateOfModelParam(name))) unused.push_back(name);
  if (unused.empty()) return "";
  std::string list;
  for (size_t i = 0; i < unused.size() && i < 8; ++i) list += (i ? ", " : "") + unused[i];
  if (unused.size() > 8) list += ", and " + std::to_string(unused.size() - 8) + " more";
  return "note: " + path + ": ignored " + std::to_string(unused.size()) + " tensor" + (unused.size() == 1 ? "" : "s") +
         " the model does not have: " + list;
}

Expected<void> checkTensorMatches(const std::string& name, const Tensor& got, const TensorType& want) {
  if (got.shape() != want.shape)
    return fail("checkpoint tensor '" + name + "' has shape " + bracketShape(got.shape()) + ", the model expects " +
                bracketShape(want.shape));
  if (got.dtype() != want.dtype)
    return fail("checkpoint tensor '" + name + "' has dtype " + std::string(dtypeName(got.dtype())) +
                ", the model expects " + std::string(dtypeName(want.dtype)));
  return {};
}

}  // namespace shoal
