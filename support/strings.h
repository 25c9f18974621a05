// Small string helpers shared by the layers: escaping for double-quoted strings.
#pragma once

#include <string>
#include <string_view>

namespace shoal {

/// The body of a double-quoted string holding `s`: `"` and `\` escaped with a backslash, a
/// newline written `\n` (the IR text's string attributes and Graphviz DOT labels alike).
std::string escapeQuoted(std::string_view s);

}  // namespace shoal
