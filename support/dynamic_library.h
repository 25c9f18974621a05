// Shared libraries opened at run time (dlopen): how shoal uses NVRTC and cuBLAS without
// making them link-time dependencies, so a CPU-only deployment needs no CUDA library.
#pragma once

#include <string>
#include <vector>

#include "support/diagnostics.h"

namespace shoal {

/// A library opened with dlopen and never closed (handles and code from it may be used until
/// the process exits).
class DynamicLibrary {
 public:
  /// Opens the first of `names` that loads: each by name as dlopen searches (LD_LIBRARY_PATH,
  /// the ld.so cache, the system folders), then each in every folder of `dirs` in order.
  /// The error names `what`, dlopen's message for the first name and everything tried.
  static Expected<DynamicLibrary> open(const std::string& what, const std::vector<std::string>& names,
                                       const std::vector<std::string>& dirs = {});

  /// The address of `name`, or nullptr.
  void* symbol(const char* name) const;
  /// The file that was loaded (as dlopen reports it).
  const std::string& path() const { return path_; }

 private:
  void* handle_ = nullptr;
  std::string path_;
};

/// Folders that may hold the CUDA toolkit's libraries, most specific first: $CUDA_HOME and
/// $CUDA_PATH (lib64, lib), the toolkit shoal was built with, /usr/local/cuda/lib64.
std::vector<std::string> cudaLibraryDirs();

}  // namespace shoal
