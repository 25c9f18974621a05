// Private to runtime/cuda/*.cpp: the NCCL functions shoal calls, loaded from libnccl.so.2 at
// run time (dlopen, like cuBLAS), so machines without NCCL still run everything else.
#pragma once

#if SHOAL_HAVE_CUDA && __has_include(<nccl.h>)
#define SHOAL_HAVE_NCCL_HEADER 1

#include <nccl.h>

#include <string>

#include "support/diagnostics.h"

namespace shoal::cudaimpl {

#define SHOAL_NCCL_FUNCTIONS(X)                                                                   \
  X(ncclGetVersion) X(ncclGetUniqueId) X(ncclCommInitRank) X(ncclCommAbort) X(ncclCommDestroy)    \
  X(ncclCommGetAsyncError) X(ncclGetErrorString) X(ncclAllReduce) X(ncclGroupStart) X(ncclGroupEnd)

struct NcclLibrary {
#define SHOAL_NCCL_MEMBER(name) decltype(&::name) name = nullptr;
  SHOAL_NCCL_FUNCTIONS(SHOAL_NCCL_MEMBER)
#undef SHOAL_NCCL_MEMBER
  std::string path;
  int version = 0;  ///< e.g. 22805 for 2.28.5
};

/// libnccl.so.2, loaded on first use; the error says why it cannot be.
const Expected<NcclLibrary>& ncclLibrary();

}  // namespace shoal::cudaimpl

#else
#define SHOAL_HAVE_NCCL_HEADER 0
#endif
