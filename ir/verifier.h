// The IR verifier: structural invariants and types, checked after every pass in tests/debug.
#pragma once

#include "support/diagnostics.h"
#include "ir/graph.h"

namespace shoal {

/// Checks every node (arity, attributes against the op schema, operands defined before use,
/// result types equal to the shape rule's, unique input/output names, in-place updates only on
/// params/state and after their last reader). Reports every problem to `diags`; true if none.
bool verifyGraph(const Graph& g, DiagnosticEngine& diags);
/// The same, returning the first problem.
Expected<void> verifyGraph(const Graph& g);

/// Checks one node's arity and attributes against its schema (no types).
bool verifyNodeStructure(const Node& n, DiagnosticEngine& diags);

}  // namespace shoal
