// The op table built from ir/ops.def, and the IR-text attribute value parser.
#include "ir/ops.h"

#include <cassert>
#include <charconv>
#include <cmath>
#include <unordered_map>

namespace shoal {

namespace {

struct RawRow {
  OpKind kind;
  std::string_view name;
  int minInputs, maxInputs, numResults;
  std::string_view schema;
  OpTraits traits;
  std::string_view grad;
  std::string_view doc;
  std::string_view formula;
};

constexpr RawRow kRows[] = {
#define SHOAL_OP(kind, text, minIn, maxIn, results, schema, shapeRule, traits, grad, doc) \
  {OpKind::kind, text, minIn, maxIn, results, schema, traits, grad, doc, ""},
#define SHOAL_ELEMENTWISE(kind, text, arity, schema, shapeRule, traits, formula, grad, doc) \
  {OpKind::kind, text, arity, arity, 1, schema, traits.elementwise(), grad, doc, #formula},
#include "ir/ops.def"
#undef SHOAL_ELEMENTWISE
#undef SHOAL_OP
};

// Row order is enum order: opInfo and opTraits index the table by kind.
constexpr bool rowsInEnumOrder() {
  for (size_t i = 0; i < std::size(kRows); ++i)
    if (size_t(kRows[i].kind) != i) return false;
  return true;
}
static_assert(rowsInEnumOrder());

std::optional<AttrKind> attrKindFromName(std::string_view s) {
  for (AttrKind k : {AttrKind::Int, AttrKind::Float, AttrKind::String, AttrKind::Ints, AttrKind::Floats, AttrKind::Tensor})
    if (attrKindName(k) == s) return k;
  return std::nullopt;
}

// Parses "name:kind" / "name:kind=default" entries; a malformed schema is a bug in ops.def.
std::vector<AttrSpec> parseSchema(std::string_view schema) {
  std::vector<AttrSpec> out;
  size_t i = 0;
  while (i < schema.size()) {
    while (i < schema.size() && schema[i] == ' ') ++i;
    if (i >= schema.size()) break;
    size_t colon = schema.find(':', i);
    assert(colon != std::string_view::npos && "attribute schema entry needs name:kind");
    AttrSpec spec;
    spec.name = std::string(schema.substr(i, colon - i));
    size_t kindEnd = colon + 1;
    while (kindEnd < schema.size() && schema[kindEnd] != '=' && schema[kindEnd] != ' ') ++kindEnd;
    auto kind = attrKindFromName(schema.substr(colon + 1, kindEnd - colon - 1));
    assert(kind && "unknown attribute kind in ops.def");
    spec.kind = *kind;
    i = kindEnd;
    if (i < schema.size() && schema[i] == '=') {
      size_t end = ++i;
      bool inQuote = false;
      while (end < schema.size() && (inQuote || schema[end] != ' ')) {
        if (schema[end] == '"') inQuote = !inQuote;
        ++end;
      }
      auto value = parseAttrValue(schema.substr(i, end - i));
      assert(value && "bad default in ops.def");
      // A float attribute's default written as an integer is still a float.
      if (spec.kind == AttrKind::Float && std::holds_alternative<int64_t>(*value))
        value = double(std::get<int64_t>(*value));
      spec.defaultValue = *value;
      i = end;
    }
    out.push_back(std::move(spec));
  }
  return out;
}

struct Table {
  std::vector<OpInfo> infos;
  std::vector<OpKind> kinds;
  std::unordered_map<std::string_view, OpKind> byName;
  Table() {
    for (const RawRow& r : kRows) {
      OpInfo info{r.kind, r.name, r.minInputs, r.maxInputs, r.numResults, parseSchema(r.schema), r.traits, r.grad,
                  r.doc, r.formula, {}};
      if (r.traits.isElementwise)
        for (const AttrSpec& a : info.attrs)
          if (a.kind == AttrKind::Float) info.formulaParams.push_back(a.name);
      infos.push_back(std::move(info));
      kinds.push_back(r.kind);
      byName[r.name] = r.kind;
    }
  }
};

const Table& table() {
  static const Table t;
  return t;
}

// --- attribute value parsing -------------------------------------------------------------

struct Cursor {
  std::string_view s;
  size_t i = 0;
  void skipSpace() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  }
  bool eat(char c) {
    skipSpace();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  bool done() {
    skipSpace();
    return i >= s.size();
  }
};

// A number token: returns it as int64 (if integral syntax) or double.
std::optional<std::variant<int64_t, double>> parseNumber(Cursor& c) {
  c.skipSpace();
  size_t start = c.i;
  if (c.s.substr(c.i, 3) == "nan") {
    c.i += 3;
    return std::variant<int64_t, double>(std::nan(""));
  }
  if (c.s.substr(c.i, 3) == "inf" || c.s.substr(c.i, 4) == "-inf") {
    bool neg = c.s[c.i] == '-';
    c.i += neg ? 4 : 3;
    return std::variant<int64_t, double>(neg ? -INFINITY : INFINITY);
  }
  size_t j = c.i;
  if (j < c.s.size() && (c.s[j] == '-' || c.s[j] == '+')) ++j;
  bool isFloat = false;
  while (j < c.s.size() && (std::isdigit(static_cast<unsigned char>(c.s[j])) || c.s[j] == '.' || c.s[j] == 'e' ||
                            c.s[j] == 'E' || ((c.s[j] == '-' || c.s[j] == '+') && (c.s[j - 1] == 'e' || c.s[j - 1] == 'E')))) {
    if (c.s[j] == '.' || c.s[j] == 'e' || c.s[j] == 'E') isFloat = true;
    ++j;
  }
  std::string_view tok = c.s.substr(start, j - start);
  if (!tok.empty() && tok[0] == '+') tok.remove_prefix(1);
  if (tok.empty()) return std::nullopt;
  if (!isFloat) {
    int64_t v = 0;
    auto r = std::from_chars(tok.data(), tok.data() + tok.size(), v);
    if (r.ec != std::errc() || r.ptr != tok.data() + tok.size()) return std::nullopt;
    c.i = j;
    return std::variant<int64_t, double>(v);
  }
  double d = 0;
  auto r = std::from_chars(tok.data(), tok.data() + tok.size(), d);
  if (r.ec != std::errc() || r.ptr != tok.data() + tok.size()) return std::nullopt;
  c.i = j;
  return std::variant<int64_t, double>(d);
}

std::optional<std::string> parseQuoted(Cursor& c) {
  if (!c.eat('"')) return std::nullopt;
  std::string out;
  while (c.i < c.s.size() && c.s[c.i] != '"') {
    char ch = c.s[c.i++];
    if (ch == '\\' && c.i < c.s.size()) {
      char e = c.s[c.i++];
      out += e == 'n' ? '\n' : e;
    } else {
      out += ch;
    }
  }
  if (c.i >= c.s.size()) return std::nullopt;
  ++c.i;
  return out;
}

}  // namespace

const AttrSpec* OpInfo::findAttr(std::string_view attr) const {
  for (const AttrSpec& a : attrs)
    if (a.name == attr) return &a;
  return nullptr;
}

const OpInfo& opInfo(OpKind kind) { return table().infos[size_t(kind)]; }
std::string_view opName(OpKind kind) { return kRows[size_t(kind)].name; }

std::optional<OpKind> opKindFromName(std::string_view name) {
  auto it = table().byName.find(name);
  if (it == table().byName.end()) return std::nullopt;
  return it->second;
}

const std::vector<OpKind>& allOps() { return table().kinds; }

const OpTraits& opTraits(OpKind kind) { return kRows[size_t(kind)].traits; }

std::vector<int> mutatedOperands(OpKind kind) {
  const OpTraits& t = opTraits(kind);
  return std::vector<int>(t.mutatedOperands.begin(), t.mutatedOperands.begin() + t.numMutated);
}

bool isPersistentSource(OpKind kind) { return opTraits(kind).isPersistent; }

bool isSource(OpKind kind) { return opTraits(kind).isSource; }

bool isElementwise(OpKind kind) { return opTraits(kind).isElementwise; }

std::optional<AttrValue> parseAttrValue(std::string_view text) {
  Cursor c{text};
  c.skipSpace();
  if (c.i >= text.size()) return std::nullopt;
  char ch = text[c.i];
  std::optional<AttrValue> result;
  if (ch == '"') {
    auto s = parseQuoted(c);
    if (!s) return std::nullopt;
    result = *s;
  } else if (ch == '[') {
    ++c.i;
    std::vector<int64_t> ints;
    std::vector<double> floats;
    bool anyFloat = false;
    if (!c.eat(']')) {
      do {
        auto n = parseNumber(c);
        if (!n) return std::nullopt;
        if (std::holds_alternative<double>(*n)) anyFloat = true;
        double d = std::holds_alternative<double>(*n) ? std::get<double>(*n) : double(std::get<int64_t>(*n));
        ints.push_back(std::holds_alternative<int64_t>(*n) ? std::get<int64_t>(*n) : 0);
        floats.push_back(d);
      } while (c.eat(','));
      if (!c.eat(']')) return std::nullopt;
    }
    if (anyFloat) result = floats;
    else result = ints;
  } else if (text.substr(c.i, 7) == "tensor<") {
    c.i += 7;
    TensorLiteral t;
    size_t close = text.find('>', c.i);
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view dims = text.substr(c.i, close - c.i);
    if (dims != "scalar") {
      size_t p = 0;
      while (p <= dims.size()) {
        size_t x = dims.find('x', p);
        std::string_view d = dims.substr(p, x == std::string_view::npos ? std::string_view::npos : x - p);
        int64_t v = 0;
        auto r = std::from_chars(d.data(), d.data() + d.size(), v);
        if (r.ec != std::errc() || r.ptr != d.data() + d.size() || v < 0) return std::nullopt;
        t.shape.push_back(v);
        if (x == std::string_view::npos) break;
        p = x + 1;
      }
    }
    c.i = close + 1;
    if (!c.eat('[')) return std::nullopt;
    if (!c.eat(']')) {
      do {
        auto n = parseNumber(c);
        if (!n) return std::nullopt;
        t.values.push_back(std::holds_alternative<double>(*n) ? std::get<double>(*n) : double(std::get<int64_t>(*n)));
      } while (c.eat(','));
      if (!c.eat(']')) return std::nullopt;
    }
    if (int64_t(t.values.size()) != numElements(t.shape)) return std::nullopt;
    result = t;
  } else if (std::isdigit(static_cast<unsigned char>(ch)) || ch == '-' || ch == '+' || ch == '.' ||
             text.substr(c.i, 3) == "nan" || text.substr(c.i, 3) == "inf") {
    auto n = parseNumber(c);
    if (!n) return std::nullopt;
    if (std::holds_alternative<int64_t>(*n)) result = std::get<int64_t>(*n);
    else result = std::get<double>(*n);
  } else {
    // A bare identifier is a string.
    size_t j = c.i;
    while (j < text.size() && (std::isalnum(static_cast<unsigned char>(text[j])) || text[j] == '_' || text[j] == '.' ||
                               text[j] == '-' || text[j] == '/'))
      ++j;
    if (j == c.i) return std::nullopt;
    result = std::string(text.substr(c.i, j - c.i));
    c.i = j;
  }
  if (!c.done()) return std::nullopt;
  return result;
}

}  // namespace shoal
