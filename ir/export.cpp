// Graphviz DOT and Mermaid export of IR graphs.
#include "ir/export.h"

#include <unordered_map>

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

std::string toMermaid(const Graph& g) {
  std::unordered_map<const Value*, int> uses;
  for (const Node* n : g.nodes())
    for (const Value* v : n->inputs())
      if (v) ++uses[v];
  auto folded = [&](const Node* n) { return isPersistentSource(n->kind()) && uses[n->result(0)] > 0; };

  std::string name = g.name();
  for (char& c : name)
    if (c == '\n' || c == '\r') c = ' ';
  std::string out = "flowchart TD\n";
  out += "  %% shoal IR graph " + name + "; param and state operands are folded into their consumers' labels\n";
  std::unordered_map<const Node*, std::string> ids;
  for (const Node* n : g.nodes()) {
    if (folded(n)) continue;
    std::string id = "n" + std::to_string(ids.size());
    ids[n] = id;
    std::string label = mermaidEscape(n->opName());
    std::string who = nodeIdentity(*n);
    if (!who.empty()) label += " " + mermaidEscape(who);
    if (n->numResults() > 0) label += "<br/>" + mermaidEscape(resultTypes(*n));
    for (const Value* v : n->inputs())
      if (v && v->def() && folded(v->def()))
        label += "<br/>" + mermaidEscape(std::string(v->def()->opName()) + " " + v->name() + ": " + v->type().str());
    std::string open = "[\"", close = "\"]";
    if (n->kind() == OpKind::Input || n->kind() == OpKind::Constant)
      open = "([\"", close = "\"])";
    else if (n->kind() == OpKind::Output)
      open = "[/\"", close = "\"/]";
    else if (isPersistentSource(n->kind()))
      open = "[(\"", close = "\")]";  // an unused param/state
    out += "  " + id + open + label + close + "\n";
  }
  for (const Node* n : g.nodes()) {
    if (!ids.count(n)) continue;
    for (const Value* v : n->inputs()) {
      if (!v || !ids.count(v->def())) continue;
      out += "  " + ids[v->def()] + " -->|\"" + mermaidEscape(v->type().str()) + "\"| " + ids[n] + "\n";
    }
  }
  return out;
}

}  // namespace shoal
