// IR text parser: reads what ir/printer.h writes (and hand-written IR in the same syntax).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "support/diagnostics.h"
#include "ir/graph.h"

namespace shoal {

/// Parses IR text. Errors go to `diags` as `file:line:col: error: ...`; after an error the
/// parser skips to the next line, so one run reports several. Returns nullptr on any error.
/// Checks syntax, op names, operands defined before use, no redefinition, attribute value
/// syntax, the result count and operand count against the op table, one type per result.
/// It does not infer shapes or verify attributes against the schema (the verifier does),
/// except that an int written for a float (or floats) schema attribute is read as a float,
/// so `lr=1` and `std=[]` mean what the schema says.
std::unique_ptr<Graph> parseGraph(std::string_view text, const std::string& file, DiagnosticEngine& diags);

/// True if `text` looks like IR text rather than a Mermaid pipeline: its first line that is
/// neither blank nor a `//` comment is `graph NAME {`.
bool looksLikeIrText(std::string_view text);

}  // namespace shoal
