// CUDA codegen (placeholder until the GPU path lands).
#include "codegen/cuda_codegen.h"

namespace shoal {

Expected<CudaModuleSource> generateCudaSource(const Program&) { return fail("CUDA codegen is not implemented yet"); }

Expected<std::string> compileCudaProgram(const Program&, const std::string&, bool) {
  return fail("CUDA codegen is not implemented yet");
}

}  // namespace shoal
