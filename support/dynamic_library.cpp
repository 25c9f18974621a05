// dlopen with a search list, for the CUDA libraries shoal loads at run time.
#include "support/dynamic_library.h"

#include <dlfcn.h>
#include <link.h>

#include <cstdlib>

namespace shoal {

Expected<DynamicLibrary> DynamicLibrary::open(const std::string& what, const std::vector<std::string>& names,
                                              const std::vector<std::string>& dirs) {
  std::vector<std::string> candidates = names;
  for (const std::string& dir : dirs)
    for (const std::string& name : names) candidates.push_back(dir + "/" + name);
  std::string firstError;
  for (const std::string& candidate : candidates) {
    void* handle = ::dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      if (const char* e = ::dlerror(); e && firstError.empty()) firstError = e;
      continue;
    }
    DynamicLibrary lib;
    lib.handle_ = handle;
    lib.path_ = candidate;
    struct link_map* map = nullptr;
    if (::dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name && *map->l_name) lib.path_ = map->l_name;
    return lib;
  }
  std::string tried;
  for (const std::string& name : names) tried += (tried.empty() ? "" : ", ") + name;
  std::string where = dirs.empty() ? "" : " and in";
  for (const std::string& dir : dirs) where += " " + dir;
  return fail("cannot load " + what + ": " + (firstError.empty() ? "not found" : firstError) + " (tried " + tried +
              " by name" + where + ")");
}

void* DynamicLibrary::symbol(const char* name) const { return handle_ ? ::dlsym(handle_, name) : nullptr; }

std::vector<std::string> cudaLibraryDirs() {
  std::vector<std::string> dirs;
  for (const char* env : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* root = std::getenv(env); root && *root) {
      dirs.push_back(std::string(root) + "/lib64");
      dirs.push_back(std::string(root) + "/lib");
    }
#ifdef SHOAL_CUDA_LIBRARY_DIR
  dirs.push_back(SHOAL_CUDA_LIBRARY_DIR);
#endif
  dirs.push_back("/usr/local/cuda/lib64");
  return dirs;
}

}  // namespace shoal
