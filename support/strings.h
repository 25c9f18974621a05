// Small string helpers shared by the layers: escaping for double-quoted strings, and reading
// on/off switches from the environment.
#pragma once

#include <string>
#include <string_view>

namespace shoal {

/// The body of a double-quoted string holding `s`: `"` and `\` escaped with a backslash, a
/// newline written `\n` (the IR text's string attributes and Graphviz DOT labels alike).
std::string escapeQuoted(std::string_view s);

/// True when env var `name` is set to something other than "", "0", "false", "off", "no".
bool envFlag(const char* name);
/// A switch that is on unless env var `name` is set to "", "0", "false", "off" or "no"
/// (SHOAL_CUDA_GRAPHS, SHOAL_RESIDENT_DATA, SHOAL_CPU_PREPARE, ...).
bool envFlagDefaultOn(const char* name);

}  // namespace shoal
