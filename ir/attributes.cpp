// Op attributes.
#include "ir/attributes.h"

#include <cassert>
#include <charconv>
#include <cmath>

#include "support/strings.h"

namespace shoal {

std::string_view attrKindName(AttrKind k) {
  switch (k) {
    case AttrKind::Int: return "int";
    case AttrKind::Float: return "float";
    case AttrKind::String: return "string";
    case AttrKind::Ints: return "ints";
    case AttrKind::Floats: return "floats";
    case AttrKind::Tensor: return "tensor";
  }
  return "?";
}

AttrKind attrKindOf(const AttrValue& v) { return static_cast<AttrKind>(v.index()); }

std::string formatDouble(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, res.ptr);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string attrValueString(const AttrValue& v) {
  switch (attrKindOf(v)) {
    case AttrKind::Int: return std::to_string(std::get<int64_t>(v));
    case AttrKind::Float: return formatDouble(std::get<double>(v));
    case AttrKind::String: return "\"" + escapeQuoted(std::get<std::string>(v)) + "\"";
    case AttrKind::Ints: {
      std::string out = "[";
      const auto& xs = std::get<std::vector<int64_t>>(v);
      for (size_t i = 0; i < xs.size(); ++i) out += (i ? "," : "") + std::to_string(xs[i]);
      return out + "]";
    }
    case AttrKind::Floats: {
      std::string out = "[";
      const auto& xs = std::get<std::vector<double>>(v);
      for (size_t i = 0; i < xs.size(); ++i) out += (i ? "," : "") + formatDouble(xs[i]);
      return out + "]";
    }
    case AttrKind::Tensor: {
      const auto& t = std::get<TensorLiteral>(v);
      std::string out = "tensor<" + shapeString(t.shape) + ">[";
      for (size_t i = 0; i < t.values.size(); ++i) out += (i ? "," : "") + formatDouble(t.values[i]);
      return out + "]";
    }
  }
  return "?";
}

const AttrValue* Attrs::find(const std::string& key) const {
  auto it = map_.find(key);
  return it == map_.end() ? nullptr : &it->second;
}

int64_t Attrs::getInt(const std::string& key) const {
  const AttrValue* v = find(key);
  assert(v && std::holds_alternative<int64_t>(*v) && "int attribute expected");
  return std::get<int64_t>(*v);
}

double Attrs::getFloat(const std::string& key) const {
  const AttrValue* v = find(key);
  assert(v && "float attribute expected");
  if (auto* i = std::get_if<int64_t>(v)) return double(*i);
  assert(std::holds_alternative<double>(*v) && "float attribute expected");
  return std::get<double>(*v);
}

const std::string& Attrs::getString(const std::string& key) const {
  const AttrValue* v = find(key);
  assert(v && std::holds_alternative<std::string>(*v) && "string attribute expected");
  return std::get<std::string>(*v);
}

const std::vector<int64_t>& Attrs::getInts(const std::string& key) const {
  const AttrValue* v = find(key);
  assert(v && std::holds_alternative<std::vector<int64_t>>(*v) && "ints attribute expected");
  return std::get<std::vector<int64_t>>(*v);
}

std::vector<double> Attrs::getFloats(const std::string& key) const {
  const AttrValue* v = find(key);
  assert(v && "floats attribute expected");
  if (auto* i = std::get_if<std::vector<int64_t>>(v)) return std::vector<double>(i->begin(), i->end());
  return std::get<std::vector<double>>(*v);
}

const TensorLiteral& Attrs::getTensor(const std::string& key) const {
  const AttrValue* v = find(key);
  assert(v && std::holds_alternative<TensorLiteral>(*v) && "tensor attribute expected");
  return std::get<TensorLiteral>(*v);
}

}  // namespace shoal
