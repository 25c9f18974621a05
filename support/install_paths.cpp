// Run-time lookup of the installed library and its data folder.
#include "support/install_paths.h"

#include <dlfcn.h>

#include <filesystem>

namespace fs = std::filesystem;

namespace shoal {

std::string libraryPath() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&libraryPath), &info) == 0 || !info.dli_fname) return "";
  std::error_code ec;
  fs::path p = fs::canonical(info.dli_fname, ec);
  return ec ? std::string(info.dli_fname) : p.string();
}

std::optional<std::string> installedDataDir() {
#ifdef SHOAL_LIBDIR_TO_DATADIR
  std::string lib = libraryPath();
  if (lib.empty()) return std::nullopt;
  fs::path dir = fs::path(lib).parent_path() / SHOAL_LIBDIR_TO_DATADIR;
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return fs::weakly_canonical(dir, ec).string();
#endif
  return std::nullopt;
}

}  // namespace shoal
