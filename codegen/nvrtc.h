// Run-time compilation of generated CUDA C++ with NVRTC, to cubin, cached and in parallel.
#pragma once

// Needs no CUDA headers; without CUDA built in, or without a loadable libnvrtc, every
// compile returns an error.

#include <string>
#include <vector>

#include "support/diagnostics.h"

namespace shoal {

class KernelCache;

/// One kernel to compile: its entry point's name and its whole translation unit. The entry
/// point must be declared `extern "C" __global__` so its symbol is its name.
struct KernelSource {
  std::string name;
  std::string source;
};

/// A compiled kernel: the cubin (an ELF image for one sm_XX) ready for CudaModule::load.
struct CompiledKernel {
  std::string name;
  std::string cubin;
  double compileMs = 0;  ///< NVRTC time; 0 for a cache hit
  bool cacheHit = false;
  std::string log;       ///< NVRTC's warnings, if any (empty for a cache hit)
};

/// Whether NVRTC can be used: libnvrtc (of the CUDA major version shoal was built with) is
/// loaded on first use with dlopen, never linked; the error says why it cannot be.
Expected<void> nvrtcAvailable();
/// NVRTC's version, "13.0" (empty without CUDA or when libnvrtc cannot be loaded).
std::string nvrtcVersion();
/// The folder of the CUDA headers NVRTC compiles against: the include/ beside the loaded
/// libnvrtc's lib folder, else the toolkit shoal was built with; "" when neither exists.
std::string cudaIncludeDir();
/// What the cache key records of the compiler: the version plus the size of the loaded
/// libnvrtc, so two patch releases of one version never share entries.
std::string nvrtcCacheTag();
/// The real architectures this NVRTC can emit cubin for: "sm_75", ..., "sm_90", ...
std::vector<std::string> nvrtcSupportedArchs();

/// The full NVRTC option list for `arch` ("sm_90"): -arch=sm_90, --std=c++17,
/// -default-device, then `extraOptions`. No --use_fast_math: fp32 math stays exact
/// (IEEE division and sqrt, denormals kept; NVRTC's default FMA contraction stays on).
std::vector<std::string> nvrtcOptions(const std::string& arch, const std::vector<std::string>& extraOptions);

/// Compiles `source` (kernel `name`, used to name the program "<name>.cu" in messages) to a
/// cubin for `arch`. On failure the Error holds NVRTC's log, with each "name.cu(12): error:"
/// line followed by line 12 of the generated source, quoted.
Expected<std::string> compileCuda(const std::string& source, const std::string& name, const std::string& arch,
                                  const std::vector<std::string>& extraOptions = {});
/// The same, to PTX text for the virtual architecture of `arch` (compute_90), for dumps.
Expected<std::string> compileCudaToPtx(const std::string& source, const std::string& name,
                                       const std::string& arch, const std::vector<std::string>& extraOptions = {});

/// Compiles one kernel through `cache` (may be null: no caching). A corrupt cache entry is
/// rebuilt and overwritten; a cache that cannot be written is counted, not an error.
Expected<CompiledKernel> compileKernel(const KernelSource& kernel, const std::string& arch,
                                       const std::vector<std::string>& extraOptions, KernelCache* cache);

/// Compiles every kernel on a pool of `threads` std::threads (<= 0: one per hardware
/// thread), through `cache`. Results are in the order of `kernels`; one kernel's failure
/// does not stop the others.
std::vector<Expected<CompiledKernel>> compileAll(const std::vector<KernelSource>& kernels, const std::string& arch,
                                                 const std::vector<std::string>& extraOptions, KernelCache* cache,
                                                 int threads = 0);

}  // namespace shoal
