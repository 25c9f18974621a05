// Graph drawings: Graphviz DOT and Mermaid flowcharts of an IR graph (`shoal dump --format`).
#pragma once

#include <string>

#include "ir/graph.h"

namespace shoal {

/// Graphviz DOT: nodes n0, n1, ... in program order; one box per op labelled with the op
/// name, the node id (the pipeline node id, or the value name for sources, or the output
/// name) and the result types; input as an ellipse, param/state/constant as notes; one
/// edge per operand, labelled with the value name and type. Deterministic.
std::string toDot(const Graph& g);

/// A Mermaid flowchart (`flowchart TD`) that Mermaid itself parses and shoal loads back into
/// the same graph (frontend/ir_flowchart.h): nodes n0, n1, ... in program order, each labelled
/// with the IR text of its ops without locations (`%y = op(%a)`, `{attrs}` and `: types` on
/// lines of their own, joined by `<br/>`), quoted, with `"`, `#`, `<`, `>`, `&`, `%`, `|` and
/// backticks written as entity codes (`#quot;` ...). A param or state is folded into the label
/// of the op right after it when that op reads every param and state waiting to be drawn (so
/// program order is kept), else drawn as a node of its own; inputs and constants are stadiums,
/// outputs rounded. One edge per value a node reads from another, labelled with its type. The
/// first comment, `%% shoal IR graph NAME: ...`, marks the file as such a drawing.
std::string toMermaid(const Graph& g);

}  // namespace shoal
