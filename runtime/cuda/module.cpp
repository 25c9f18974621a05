// Cubin → cudaLibrary_t → cudaKernel_t → cudaLaunchKernel, every step checked.
#include "runtime/cuda/module.h"

#include <utility>

#if SHOAL_HAVE_CUDA
#include "runtime/cuda/cuda_check.h"
#endif

namespace shoal {

std::string LaunchDims::str() const { return std::to_string(x) + "x" + std::to_string(y) + "x" + std::to_string(z); }

CudaModule::CudaModule(CudaModule&& other) noexcept
    : name_(std::move(other.name_)), library_(std::exchange(other.library_, nullptr)) {}

CudaModule& CudaModule::operator=(CudaModule&& other) noexcept {
  if (this != &other) {
    reset();
    name_ = std::move(other.name_);
    library_ = std::exchange(other.library_, nullptr);
  }
  return *this;
}

CudaModule::~CudaModule() { reset(); }

#if SHOAL_HAVE_CUDA

using cudaimpl::cudaFail;

Expected<CudaModule> CudaModule::load(std::string_view image, std::string name) {
  CudaModule module;
  module.name_ = std::move(name);
  if (image.empty()) return fail("cudaLibraryLoadData(module '" + module.name_ + "'): empty image");
  // The driver keeps its own copy of the image (no CU_LIBRARY_BINARY_IS_PRESERVED), so the
  // caller's bytes may go away after this call.
  if (cudaError_t e = cudaLibraryLoadData(&module.library_, image.data(), nullptr, nullptr, 0, nullptr, nullptr, 0);
      e != cudaSuccess) {
    module.library_ = nullptr;
    return cudaFail(e, "cudaLibraryLoadData", "module '" + module.name_ + "'");
  }
  return module;
}

void CudaModule::reset() {
  if (library_) (void)cudaLibraryUnload(library_);
  library_ = nullptr;
}

Expected<CudaKernel> CudaModule::kernel(const std::string& kernelName) const {
  if (!library_) return fail("cudaLibraryGetKernel(kernel '" + kernelName + "'): module not loaded");
  CudaKernel k;
  k.name_ = kernelName;
  if (cudaError_t e = cudaLibraryGetKernel(&k.kernel_, library_, kernelName.c_str()); e != cudaSuccess)
    return cudaFail(e, "cudaLibraryGetKernel", "kernel '" + kernelName + "' in module '" + name_ + "'");
  return k;
}

Expected<void> CudaKernel::launch(LaunchDims grid, LaunchDims block, void** args, size_t sharedBytes,
                                  CudaStream stream) const {
  if (!kernel_) return fail("cudaLaunchKernel: kernel '" + name_ + "' was not loaded");
  // A cudaKernel_t passed where the runtime takes a `const void* func` is launched as that
  // kernel (see the runtime API's note on cudaKernel_t), in the current device's context.
  cudaError_t e = cudaLaunchKernel(reinterpret_cast<const void*>(kernel_), dim3(grid.x, grid.y, grid.z),
                                   dim3(block.x, block.y, block.z), args, sharedBytes, stream);
  if (e != cudaSuccess)
    return cudaFail(e, "cudaLaunchKernel",
                    "kernel '" + name_ + "', grid " + grid.str() + ", block " + block.str() + ", " +
                        std::to_string(sharedBytes) + " B shared");
  return {};
}

Expected<void> CudaKernel::launchAfterPrevious(LaunchDims grid, LaunchDims block, void** args, size_t sharedBytes,
                                               CudaStream stream) const {
  if (!kernel_) return fail("cudaLaunchKernelExC: kernel '" + name_ + "' was not loaded");
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(grid.x, grid.y, grid.z);
  config.blockDim = dim3(block.x, block.y, block.z);
  config.dynamicSmemBytes = sharedBytes;
  config.stream = stream;
  config.attrs = &attr;
  config.numAttrs = 1;
  cudaError_t e = cudaLaunchKernelExC(&config, reinterpret_cast<const void*>(kernel_), args);
  if (e != cudaSuccess)
    return cudaFail(e, "cudaLaunchKernelExC",
                    "kernel '" + name_ + "' (after the previous kernel), grid " + grid.str() + ", block " + block.str() +
                        ", " + std::to_string(sharedBytes) + " B shared");
  return {};
}

Expected<void> CudaKernel::setMaxDynamicSharedMemory(int bytes, int device) const {
  if (!kernel_) return fail("cudaKernelSetAttributeForDevice: kernel '" + name_ + "' was not loaded");
  if (cudaError_t e =
          cudaKernelSetAttributeForDevice(kernel_, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes, device);
      e != cudaSuccess)
    return cudaFail(e, "cudaKernelSetAttributeForDevice",
                    "kernel '" + name_ + "', max dynamic shared memory " + std::to_string(bytes) + " B");
  return {};
}

#else  // !SHOAL_HAVE_CUDA

Expected<CudaModule> CudaModule::load(std::string_view, std::string) {
  return fail("shoal was built without CUDA support (SHOAL_HAVE_CUDA=0): cannot load CUDA modules");
}
void CudaModule::reset() { library_ = nullptr; }
Expected<CudaKernel> CudaModule::kernel(const std::string& kernelName) const {
  return fail("shoal was built without CUDA support: no kernel '" + kernelName + "'");
}
Expected<void> CudaKernel::launch(LaunchDims, LaunchDims, void**, size_t, CudaStream) const {
  return fail("shoal was built without CUDA support: cannot launch '" + name_ + "'");
}
Expected<void> CudaKernel::launchAfterPrevious(LaunchDims, LaunchDims, void**, size_t, CudaStream) const {
  return fail("shoal was built without CUDA support: cannot launch '" + name_ + "'");
}
Expected<void> CudaKernel::setMaxDynamicSharedMemory(int, int) const {
  return fail("shoal was built without CUDA support");
}

#endif  // SHOAL_HAVE_CUDA

}  // namespace shoal
