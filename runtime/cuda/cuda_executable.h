// The CUDA executor: runs a Program on the GPU (codegen'd kernels compiled by NVRTC, cuBLAS
// GEMMs, one arena from the memory plan, the step captured as a CUDA graph).
#pragma once

#include <memory>
#include <string>

#include "runtime/executable.h"

namespace shoal {

/// Compiles every kernel of `program` (through the on-disk cache) and binds it to device 0.
/// Errors name the kernel and the call that failed.
Expected<std::unique_ptr<Executable>> createCudaExecutable(Program program, bool tf32, bool verbose,
                                                           const std::string& arch);

}  // namespace shoal
