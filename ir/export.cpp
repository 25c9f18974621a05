// Graphviz DOT and Mermaid export of IR graphs.
#include "ir/export.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "ir/printer.h"

#include "support/strings.h"

namespace shoal {

namespace {

// The one-word identity shown under the op name: the value name for sources (a param's
// checkpoint name), the output name for outputs, else the pipeline node id or result name.
std::string nodeIdentity(const Node& n) {
  if (isSource(n.kind())) return n.result(0)->name();
  if (n.kind() == OpKind::Output) {
    const AttrValue* name = n.attrs().find("name");
    if (name && std::holds_alternative<std::string>(*name)) return std::get<std::string>(*name);
  }
  if (!n.loc().node.empty()) return n.loc().node;
  return n.numResults() > 0 ? n.result(0)->name() : std::string();
}

std::string resultTypes(const Node& n) {
  std::string out;
  for (size_t i = 0; i < n.numResults(); ++i) out += (i ? ", " : "") + n.result(i)->type().str();
  return out;
}

// A DOT double-quoted string body.
std::string dotEscape(std::string_view s) { return escapeQuoted(s); }

// Text for inside a quoted Mermaid label: characters Mermaid treats specially become entity
// codes, newlines become spaces.
std::string mermaidEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "#quot;"; break;
      case '#': out += "#35;"; break;
      case '<': out += "#lt;"; break;
      case '>': out += "#gt;"; break;
      case '&': out += "#amp;"; break;
      case '%': out += "#37;"; break;
      case '|': out += "#124;"; break;
      case '`': out += "#96;"; break;
      case '\n':
      case '\r': out += ' '; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

std::string toDot(const Graph& g) {
  std::unordered_map<const Node*, std::string> ids;
  std::string out = "digraph \"" + dotEscape(g.name()) + "\" {\n";
  out += "  node [fontname=\"Helvetica\", fontsize=10];\n";
  out += "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  for (const Node* n : g.nodes()) {
    std::string id = "n" + std::to_string(ids.size());
    ids[n] = id;
    const char* shape = "box";
    if (n->kind() == OpKind::Input)
      shape = "ellipse";
    else if (isSource(n->kind()))
      shape = "note";
    std::string label = dotEscape(n->opName());
    std::string who = nodeIdentity(*n);
    if (!who.empty()) label += "\\n" + dotEscape(who);
    if (n->numResults() > 0) label += "\\n" + dotEscape(resultTypes(*n));
    out += "  " + id + " [shape=" + shape + ", label=\"" + label + "\"];\n";
  }
  for (const Node* n : g.nodes()) {
    for (const Value* v : n->inputs()) {
      if (!v || !ids.count(v->def())) continue;
      out += "  " + ids[v->def()] + " -> " + ids[n] + " [label=\"" + dotEscape(v->name()) + "\\n" +
             dotEscape(v->type().str()) + "\"];\n";
    }
  }
  out += "}\n";
  return out;
}

namespace {

// The display lines of one op's IR text (printNode without its location): the head
// (`%y = op(%a, %b)`), then `{attrs}` and `: types` on lines of their own when the op has them.
// A line starting with '{' or ':' continues the op before it, so joining the lines with single
// spaces gives the op line back (the flowchart loader does that).
std::vector<std::string> opTextLines(const Node& n) {
  std::string text = printNode(n);
  const std::string loc = printLocation(n.loc());
  if (!loc.empty() && text.size() > loc.size() && text.ends_with(" " + loc)) text.resize(text.size() - loc.size() - 1);
  std::string types;
  for (size_t i = 0; i < n.numResults(); ++i) types += (i ? ", " : " : ") + n.result(i)->type().str();
  std::string attrs;
  if (!n.attrs().empty()) {
    attrs = " {";
    bool first = true;
    for (const auto& [key, value] : n.attrs().entries()) {
      attrs += (first ? "" : ", ") + (isPlainIrName(key) ? key : attrValueString(key)) + "=" + attrValueString(value);
      first = false;
    }
    attrs += "}";
  }
  std::vector<std::string> tail;
  for (const std::string* part : {&types, &attrs}) {
    if (part->empty() || !text.ends_with(*part)) continue;
    text.resize(text.size() - part->size());
    tail.insert(tail.begin(), part->substr(1));  // without the separating space
  }
  std::vector<std::string> lines{text};
  lines.insert(lines.end(), tail.begin(), tail.end());
  return lines;
}

}  // namespace

std::string toMermaid(const Graph& g) {
  std::unordered_map<const Value*, int> uses;
  for (const Node* n : g.nodes())
    for (const Value* v : n->inputs())
      if (v) ++uses[v];
  // The flowchart's nodes in program order, each a group of ops: a param or state is folded
  // into the op right after it when that op reads every source waiting to be drawn (so the
  // order of the IR text is kept), else drawn as a node of its own.
  std::vector<std::vector<const Node*>> groups;
  std::vector<const Node*> pending;
  auto flush = [&] {
    for (const Node* p : pending) groups.push_back({p});
    pending.clear();
  };
  for (const Node* n : g.nodes()) {
    if (isPersistentSource(n->kind()) && uses[n->result(0)] > 0) {
      pending.push_back(n);
      continue;
    }
    bool readsAll = !isSource(n->kind()) && !pending.empty();
    for (const Node* p : pending)
      readsAll = readsAll && std::find(n->inputs().begin(), n->inputs().end(), p->result(0)) != n->inputs().end();
    if (!readsAll) flush();
    pending.push_back(n);
    groups.push_back(std::move(pending));
    pending.clear();
  }
  flush();

  std::unordered_map<const Node*, size_t> groupOf;
  for (size_t k = 0; k < groups.size(); ++k)
    for (const Node* n : groups[k]) groupOf[n] = k;
  const std::string name = isPlainIrName(g.name()) ? g.name() : attrValueString(g.name());
  std::string out = "flowchart TD\n";
  out += "  %% shoal IR graph " + name +
         ": each node holds IR ops (a param or state folded into the op that reads it), edges carry values; shoal "
         "loads this file back\n";
  for (size_t k = 0; k < groups.size(); ++k) {
    std::string label;
    for (const Node* n : groups[k])
      for (const std::string& line : opTextLines(*n)) label += (label.empty() ? "" : "<br/>") + mermaidEscape(line);
    const Node& main = *groups[k].back();
    std::string open = "[\"", close = "\"]";
    if (main.kind() == OpKind::Input || main.kind() == OpKind::Constant)
      open = "([\"", close = "\"])";
    else if (main.kind() == OpKind::Output)
      open = "(\"", close = "\")";
    else if (isPersistentSource(main.kind()))
      open = "[(\"", close = "\")]";  // an unused param/state, or one drawn apart to keep the order
    out += "  n" + std::to_string(k) + open + label + close + "\n";
  }
  for (size_t k = 0; k < groups.size(); ++k) {
    std::vector<const Value*> drawn;
    for (const Node* n : groups[k])
      for (const Value* v : n->inputs()) {
        if (!v || !v->def() || !groupOf.count(v->def()) || groupOf[v->def()] == k) continue;
        if (std::find(drawn.begin(), drawn.end(), v) != drawn.end()) continue;
        drawn.push_back(v);
        out += "  n" + std::to_string(groupOf[v->def()]) + " -->|\"" + mermaidEscape(v->type().str()) + "\"| n" +
               std::to_string(k) + "\n";
      }
  }
  return out;
}

}  // namespace shoal
