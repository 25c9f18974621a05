// IR text parser: reads what ir/printer.h writes (and hand-written IR in the same syntax).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/diagnostics.h"
#include "ir/graph.h"
#include "ir/pipeline.h"

namespace shoal {

/// Parses IR text. Errors go to `diags` as `file:line:col: error: ...`; after an error the
/// parser skips to the next line, so one run reports several. Returns nullptr on any error.
/// Checks syntax, op names, operands defined before use, no redefinition, attribute value
/// syntax, the result count and operand count against the op table, one type per result.
/// It does not infer shapes or verify attributes against the schema (the verifier does),
/// except that an int written for a float (or floats) schema attribute is read as a float,
/// so `lr=1` and `std=[]` mean what the schema says.
/// A `pipeline { ... }` settings block after the graph (printPipelineSettings) is checked and
/// dropped; parsePipelineText keeps it.
std::unique_ptr<Graph> parseGraph(std::string_view text, const std::string& file, DiagnosticEngine& diags);

/// IR text as a pipeline: the graph as parseGraph reads it (file = `file`), plus the data,
/// training, output and model settings of its settings block (see printPipelineSettings),
/// each located at its line of `file`. nullopt on any error.
std::optional<Pipeline> parsePipelineText(std::string_view text, const std::string& file, DiagnosticEngine& diags);

/// One op line of IR text written somewhere other than an IR file, and where its text starts.
struct IrLine {
  std::string text;
  Location loc;
};

/// The graph `name` from op lines in program order (as the body of `graph name { ... }`), each
/// checked as parseGraph checks a line; errors are reported at each line's location plus the
/// column within it. An op line without loc(...) is located at its IrLine's location. nullptr
/// on any error.
std::unique_ptr<Graph> parseGraphLines(const std::string& name, const std::vector<IrLine>& lines, DiagnosticEngine& diags);

/// True if `text` looks like IR text rather than a Mermaid pipeline: its first line that is
/// neither blank nor a `//` comment is `graph NAME {`.
bool looksLikeIrText(std::string_view text);

}  // namespace shoal
