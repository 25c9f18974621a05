// The CUDA executor.
#include "runtime/cuda/cuda_executable.h"

namespace shoal {

Expected<std::unique_ptr<Executable>> createCudaExecutable(Program, bool, bool, const std::string&) {
  return fail("the CUDA executor is not available in this build yet; use --device cpu");
}

}  // namespace shoal
