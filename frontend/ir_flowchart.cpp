// Exported IR flowcharts loaded back (see ir_flowchart.h).
#include "frontend/ir_flowchart.h"

#include <fmt/format.h>

#include <map>
#include <set>
#include <utility>

#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"

namespace shoal {

namespace {

constexpr std::string_view kMarker = "shoal IR graph ";

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The graph name after the marker: a quoted string (with attrValueString's escapes) or a plain
// run of IR name characters.
std::optional<std::string> graphName(std::string_view rest) {
  if (rest.starts_with('"')) {
    std::string out;
    for (size_t i = 1; i < rest.size(); ++i) {
      if (rest[i] == '"') return out;
      if (rest[i] == '\\' && i + 1 < rest.size()) {
        ++i;
        out += rest[i] == 'n' ? '\n' : rest[i];
      } else {
        out += rest[i];
      }
    }
    return std::nullopt;
  }
  size_t end = 0;
  while (end < rest.size() && isPlainIrName(rest.substr(end, 1))) ++end;
  if (end == 0) return std::nullopt;
  return std::string(rest.substr(0, end));
}

std::vector<std::string> splitLabel(const std::string& label) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t br; (br = label.find("<br/>", start)) != std::string::npos; start = br + 5)
    parts.push_back(label.substr(start, br - start));
  parts.push_back(label.substr(start));
  return parts;
}

}  // namespace

bool isIrFlowchart(const mermaid::Document& doc) {
  return !doc.comments.empty() && trimmed(doc.comments.front().text).starts_with(kMarker);
}

std::optional<Pipeline> loadIrFlowchart(const mermaid::Document& doc, DiagnosticEngine& diags) {
  const mermaid::Comment& header = doc.comments.front();
  auto name = graphName(trimmed(header.text).substr(kMarker.size()));
  if (!name) {
    diags.error(header.loc, "expected a graph name after '%% shoal IR graph'");
    return std::nullopt;
  }
  // Every op line of every node, in node order; owner[i]: the flowchart node of line i.
  std::vector<IrLine> lines;
  std::vector<const mermaid::NodeDecl*> owner;
  const int before = diags.errorCount();
  for (const mermaid::NodeDecl& d : doc.nodes) {
    if (!d.hasLabel) {
      diags.error(
          d.loc,
          fmt::format("node '{}' has no label: each node of an exported IR graph holds the IR text of its ops", d.id));
      continue;
    }
    size_t first = lines.size();
    for (const std::string& part : splitLabel(d.label)) {
      std::string_view text = trimmed(part);
      if (text.empty()) continue;
      if (text.front() == '{' || text.front() == ':') {
        if (lines.size() == first) {
          diags.error(d.labelLoc, fmt::format("node '{}': '{}' continues no op", d.id, text.substr(0, 1)));
          break;
        }
        lines.back().text += " " + std::string(text);
        continue;
      }
      lines.push_back({std::string(text), d.labelLoc});
      owner.push_back(&d);
    }
    if (lines.size() == first && d.hasLabel) diags.error(d.labelLoc, fmt::format("node '{}' holds no op", d.id));
  }
  if (diags.errorCount() != before) return std::nullopt;
  auto graph = parseGraphLines(*name, lines, diags);
  if (!graph) return std::nullopt;

  // The edges the operands make (one per pair of nodes) against the edges drawn.
  std::map<const Node*, const mermaid::NodeDecl*> nodeOf;
  for (size_t i = 0; i < graph->nodes().size(); ++i) nodeOf[graph->nodes()[i]] = owner[i];
  std::map<std::pair<std::string, std::string>, const Value*> expected;
  for (const Node* n : graph->nodes())
    for (const Value* v : n->inputs()) {
      const mermaid::NodeDecl* from = nodeOf.at(v->def());
      const mermaid::NodeDecl* to = nodeOf.at(n);
      if (from != to) expected.emplace(std::make_pair(from->id, to->id), v);
    }
  std::set<std::pair<std::string, std::string>> drawn;
  for (const mermaid::Edge& e : doc.edges) {
    drawn.insert({e.from, e.to});
    if (!expected.count({e.from, e.to}))
      diags.error(e.loc,
                  fmt::format("edge {} --> {}: no op of '{}' reads a value of '{}'", e.from, e.to, e.to, e.from));
  }
  for (const auto& [edge, value] : expected)
    if (!drawn.count(edge))
      diags.error(doc.findNode(edge.second)->labelLoc,
                  fmt::format("'{}' reads {} of '{}', but no edge {} --> {} is drawn", edge.second,
                              printValueName(value->name()), edge.first, edge.first, edge.second));
  if (diags.errorCount() != before) return std::nullopt;
  if (!verifyGraph(*graph, diags)) return std::nullopt;
  Pipeline p;
  p.file = doc.file;
  p.model = std::move(graph);
  return p;
}

}  // namespace shoal
