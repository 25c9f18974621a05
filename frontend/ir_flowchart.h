// Loading back the Mermaid flowchart of an IR graph that `shoal dump --format mermaid` writes
// (ir/export.h's toMermaid): each node's label is the IR text of its ops, so the drawing is a
// program too.
#pragma once

#include <optional>

#include "frontend/mermaid.h"
#include "ir/pipeline.h"

namespace shoal {

/// True when `doc`'s first comment is the `shoal IR graph NAME: ...` line toMermaid writes.
bool isIrFlowchart(const mermaid::Document& doc);

/// The graph an exported flowchart draws, as a pipeline with no settings: its nodes' label
/// lines, `<br/>`-separated (a line starting with '{' or ':' continues the op before it), are
/// the op lines of the graph in node order, parsed as IR text (errors at the label), each op
/// located at its node's label; the edges must be exactly those its ops' operands make (one
/// per pair of nodes, an error at the edge or node otherwise); then the graph is verified.
std::optional<Pipeline> loadIrFlowchart(const mermaid::Document& doc, DiagnosticEngine& diags);

}  // namespace shoal
