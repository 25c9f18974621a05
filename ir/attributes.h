// Op attributes: typed key/value pairs attached to IR nodes (and parsed from pipeline labels).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <shoal/types.h>

namespace shoal {

/// A literal tensor written in a pipeline label or IR text: `[[1,2],[3,4]]`.
struct TensorLiteral {
  Shape shape;
  std::vector<double> values;  ///< row-major
  bool operator==(const TensorLiteral&) const = default;
};

/// One attribute value. Identifiers and quoted strings are both strings.
using AttrValue = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>, TensorLiteral>;

/// The kinds an op's attribute schema can ask for.
enum class AttrKind { Int, Float, String, Ints, Floats, Tensor };

std::string_view attrKindName(AttrKind k);
/// The kind of a value as stored.
AttrKind attrKindOf(const AttrValue& v);

/// IR spelling of a value: `3`, `0.001`, `1.0`, `"valid"`, `[3,3]`, `[0.5,1.0]`,
/// `tensor<2x2>[1.0,2.0,3.0,4.0]`. Floats always carry a '.' or exponent so they parse back
/// as floats; printing uses the shortest text that round-trips.
std::string attrValueString(const AttrValue& v);
/// Shortest round-trip text for a double, with ".0" added to integral values.
std::string formatDouble(double v);

/// Ordered attribute map (ordered so the IR text is deterministic).
class Attrs {
 public:
  bool has(const std::string& key) const { return map_.count(key) != 0; }
  const AttrValue* find(const std::string& key) const;
  void set(const std::string& key, AttrValue v) { map_[key] = std::move(v); }
  void erase(const std::string& key) { map_.erase(key); }

  /// Typed getters: assert the attribute exists with that kind (the verifier guarantees it).
  int64_t getInt(const std::string& key) const;
  /// A float attribute; an int attribute is converted.
  double getFloat(const std::string& key) const;
  const std::string& getString(const std::string& key) const;
  const std::vector<int64_t>& getInts(const std::string& key) const;
  std::vector<double> getFloats(const std::string& key) const;
  const TensorLiteral& getTensor(const std::string& key) const;

  /// With defaults, for optional attributes.
  int64_t getInt(const std::string& key, int64_t dflt) const { return has(key) ? getInt(key) : dflt; }
  double getFloat(const std::string& key, double dflt) const { return has(key) ? getFloat(key) : dflt; }
  std::string getString(const std::string& key, const std::string& dflt) const { return has(key) ? getString(key) : dflt; }

  const std::map<std::string, AttrValue>& entries() const { return map_; }
  bool empty() const { return map_.empty(); }
  bool operator==(const Attrs&) const = default;

 private:
  std::map<std::string, AttrValue> map_;
};

}  // namespace shoal
