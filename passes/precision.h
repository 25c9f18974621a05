// Precision changes of whole graphs: the float64 twin of a program (the differential check's
// reference).
#pragma once

#include <memory>

#include "ir/graph.h"
#include "support/diagnostics.h"

namespace shoal {

/// A copy of `g` (same nodes, same order, same value names) computing in float64: every f32
/// input, param, state and constant becomes f64, every cast to f32 a cast to f64, and every
/// other result type is inferred again from the op's shape rule (so what an op fixes, such as
/// accuracy's f32 or argmax's i64, stays). Fails when a shape rule rejects the promoted node.
Expected<std::unique_ptr<Graph>> promoteFloatsToF64(const Graph& g);

}  // namespace shoal
