// Small string helpers shared by the layers.
#include "support/strings.h"

#include <cstdlib>
#include <cstring>

namespace shoal {

std::string escapeQuoted(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

bool envFlag(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return false;
  for (const char* off : {"0", "false", "off", "no", "FALSE", "OFF", "NO", "False", "Off", "No"})
    if (std::strcmp(v, off) == 0) return false;
  return true;
}

bool envFlagDefaultOn(const char* name) { return !std::getenv(name) || envFlag(name); }

}  // namespace shoal
