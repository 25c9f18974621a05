// File utilities every layer may use: whole-file reads, atomic writes, ~ expansion.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "support/diagnostics.h"

namespace shoal {

/// Reads a whole file into memory. Errors name the path and the reason:
/// "cannot open 'X': No such file or directory", "cannot open 'X': Is a directory",
/// "cannot read 'X': <errno text>".
Expected<std::string> readFileBytes(const std::string& path);

/// Writes `bytes` to `path` atomically: the data goes to a temporary file in the same
/// directory ("<path>.tmp.<pid>.<random>"), is fsync'ed, then renamed over `path`. On any
/// failure the temporary file is removed and `path` is left as it was (old content or
/// absent), never half-written. Errors name the path and the errno text.
Expected<void> writeFileAtomic(const std::string& path, std::string_view bytes);

/// Expands a leading "~" or "~/" to $HOME (or the password database's home directory when
/// HOME is unset). Other paths, including "~user/...", are returned unchanged.
std::string expandUser(const std::string& path);

}  // namespace shoal
