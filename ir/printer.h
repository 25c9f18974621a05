// IR text printer: the textual form of a Graph that ir/parser.h reads back.
#pragma once

#include <string>
#include <string_view>

#include "ir/graph.h"

namespace shoal {

/// The IR text of a graph: a `// shoal IR` line, `graph NAME {`, one op per line (two-space
/// indent), `}`. Deterministic; parseGraph(printGraph(g)) prints back byte for byte.
std::string printGraph(const Graph& g);

/// One op line without indent or newline, e.g.
/// `%c1 = conv2d(%x, %c1.weight) {stride=[1,1]} : f32[64,32,26,26] loc("m.mmd":5:3 node="c1")`.
/// A missing (null) operand prints as `<null>`, so a half-built graph can still be dumped.
std::string printNode(const Node& n);

/// `%name` for plain names ([A-Za-z0-9_.-]+), `%"name"` (escaped like a string attribute)
/// for any other name, e.g. UTF-8 node ids or names with spaces.
std::string printValueName(std::string_view name);

/// True if a name prints bare: non-empty and only [A-Za-z0-9_.-].
bool isPlainIrName(std::string_view name);

/// `loc("file":line:col node="id")`, `loc("file" node="id")` when the line is unknown,
/// `loc(node="id")` when only the node id is known, "" when nothing is.
std::string printLocation(const Location& loc);

}  // namespace shoal
