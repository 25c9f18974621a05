// CUDA codegen: one CUDA C++ translation unit per Program (one extern "C" kernel per
// scheduled kernel), plus the launch plan the CUDA runtime follows (kernels and cuBLAS calls).
#pragma once

#include <string>
#include <vector>

#include "passes/program.h"

namespace shoal {

/// The generated source of a Program and what each kernel implements.
struct CudaModuleSource {
  std::string source;                  ///< deterministic: the same Program gives the same bytes
  std::vector<std::string> kernelNames;
};

/// Emits CUDA C++ for every kernel of `program` (matrix products go to cuBLAS and emit none).
Expected<CudaModuleSource> generateCudaSource(const Program& program);

/// NVRTC-compiles the generated source for `arch` (through the kernel cache); needs no GPU.
/// Returns a summary: kernel count, cubin bytes, compile ms, cache hits/misses.
Expected<std::string> compileCudaProgram(const Program& program, const std::string& arch, bool verbose);

}  // namespace shoal
