// Where the installed library lives and the resources installed next to it, found at run time
// (from the library's own location), so an install can be moved to another prefix.
#pragma once

#include <optional>
#include <string>

namespace shoal {

/// The path of the loaded libshoal (via dladdr on one of its functions), or "" when unknown.
std::string libraryPath();

/// `<prefix>/share/shoal` for the libshoal in `<prefix>/lib`, when that folder exists (the
/// relative path from the library folder to the data folder is fixed at configure time;
/// nothing absolute is compiled in). nullopt for a library that is not installed (a build tree).
std::optional<std::string> installedDataDir();

}  // namespace shoal
