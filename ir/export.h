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

/// A Mermaid flowchart (`flowchart TD`) that Mermaid itself parses. Nodes n0, n1, ... in
/// program order, labels quoted with `"`, `#`, `<`, `>`, `&`, `%`, `|` and backticks written as
/// entity codes (`#quot;` ...). Params and state that have users are folded into each
/// consumer's label (one `param NAME: TYPE` line each) instead of drawn as nodes, so training
/// graphs stay readable; a comment in the output says so. One line per edge, labelled with
/// the value's type.
std::string toMermaid(const Graph& g);

}  // namespace shoal
