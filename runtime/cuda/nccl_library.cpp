// Loading NCCL at run time.
#include "runtime/cuda/nccl_library.h"

#if SHOAL_HAVE_NCCL_HEADER

#include "support/dynamic_library.h"

namespace shoal::cudaimpl {

const Expected<NcclLibrary>& ncclLibrary() {
  static const Expected<NcclLibrary> lib = []() -> Expected<NcclLibrary> {
    auto dl = DynamicLibrary::open("NCCL", {"libnccl.so.2", "libnccl.so"}, cudaLibraryDirs());
    if (!dl) return Unexpected(dl.error());
    NcclLibrary nc;
    nc.path = dl->path();
#define SHOAL_NCCL_LOAD(name)                                                   \
  nc.name = reinterpret_cast<decltype(&::name)>(dl->symbol(#name));             \
  if (!nc.name) return fail("cannot load NCCL: " + dl->path() + " has no " #name);
    SHOAL_NCCL_FUNCTIONS(SHOAL_NCCL_LOAD)
#undef SHOAL_NCCL_LOAD
    if (nc.ncclGetVersion(&nc.version) != ncclSuccess) return fail("cannot load NCCL: ncclGetVersion failed");
    return nc;
  }();
  return lib;
}

}  // namespace shoal::cudaimpl

#endif  // SHOAL_HAVE_NCCL_HEADER
