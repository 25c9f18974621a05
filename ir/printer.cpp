// IR text printer.
#include "ir/printer.h"

namespace shoal {

namespace {

// A quoted string with the same escapes as a string attribute (so one lexer reads both).
std::string quoteString(std::string_view s) { return attrValueString(AttrValue(std::string(s))); }

// Graph names and attribute keys follow the value-name rule, without the '%'.
std::string printPlainOrQuoted(std::string_view s) { return isPlainIrName(s) ? std::string(s) : quoteString(s); }

// An empty string attribute whose op declares "" its default: an optional one left unset
// (fused_conv2d_pool's input_expr), not printed; reading the text back fills it in again.
bool unsetOptionalString(const Node& n, const std::string& key, const AttrValue& value) {
  const auto* text = std::get_if<std::string>(&value);
  if (!text || !text->empty()) return false;
  for (const AttrSpec& spec : n.info().attrs)
    if (spec.name == key)
      return spec.defaultValue && std::holds_alternative<std::string>(*spec.defaultValue) &&
             std::get<std::string>(*spec.defaultValue).empty();
  return false;
}

}  // namespace

bool isPlainIrName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool plain =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!plain) return false;
  }
  return true;
}

std::string printValueName(std::string_view name) { return "%" + printPlainOrQuoted(name); }

std::string printLocation(const Location& loc) {
  std::string inner;
  if (loc.line > 0) {
    inner = quoteString(loc.file) + ":" + std::to_string(loc.line) + ":" + std::to_string(loc.col);
  } else if (!loc.file.empty()) {
    inner = quoteString(loc.file);
  }
  if (!loc.node.empty()) {
    if (!inner.empty()) inner += " ";
    inner += "node=" + quoteString(loc.node);
  }
  return inner.empty() ? std::string() : "loc(" + inner + ")";
}

std::string printNode(const Node& n) {
  std::string out;
  for (size_t i = 0; i < n.numResults(); ++i) out += (i ? ", " : "") + printValueName(n.result(i)->name());
  if (n.numResults() > 0) out += " = ";
  out += n.opName();
  out += "(";
  for (size_t i = 0; i < n.numInputs(); ++i) {
    if (i) out += ", ";
    const Value* v = n.input(i);
    out += v ? printValueName(v->name()) : std::string("<null>");
  }
  out += ")";
  bool anyAttr = false;
  for (const auto& [key, value] : n.attrs().entries()) anyAttr = anyAttr || !unsetOptionalString(n, key, value);
  if (anyAttr) {
    out += " {";
    bool first = true;
    for (const auto& [key, value] : n.attrs().entries()) {
      if (unsetOptionalString(n, key, value)) continue;
      if (!first) out += ", ";
      first = false;
      out += printPlainOrQuoted(key) + "=" + attrValueString(value);
    }
    out += "}";
  }
  for (size_t i = 0; i < n.numResults(); ++i) out += (i ? ", " : " : ") + n.result(i)->type().str();
  std::string loc = printLocation(n.loc());
  if (!loc.empty()) out += " " + loc;
  return out;
}

std::string printGraph(const Graph& g) {
  std::string out = "// shoal IR\ngraph " + printPlainOrQuoted(g.name()) + " {\n";
  for (const Node* n : g.nodes()) out += "  " + printNode(*n) + "\n";
  out += "}\n";
  return out;
}

}  // namespace shoal
