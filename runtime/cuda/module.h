// Loading cubins as CUDA libraries and launching their kernels, with checked errors.
#pragma once

// Needs no CUDA headers; without CUDA built in, load() returns an error.

#include <string>
#include <string_view>

#include "support/diagnostics.h"
#include "runtime/cuda/device.h"

struct CUlib_st;
struct CUkern_st;

namespace shoal {

/// Grid or block dimensions of a launch.
struct LaunchDims {
  unsigned x = 1, y = 1, z = 1;
  /// "256x1x1"
  std::string str() const;
};

/// A kernel of a loaded CudaModule (a cudaKernel_t). Valid while its module is alive.
class CudaKernel {
 public:
  CudaKernel() = default;
  const std::string& name() const { return name_; }
  CUkern_st* handle() const { return kernel_; }
  bool valid() const { return kernel_ != nullptr; }

  /// cudaLaunchKernel on `stream`. `args` holds one pointer per kernel parameter, each
  /// pointing at the argument's value (the CUDA convention). Errors name the kernel and
  /// the launch shape: "cudaLaunchKernel(kernel 'saxpy', grid 4x1x1, block 2048x1x1, 0 B
  /// shared): invalid argument (cudaErrorInvalidValue)". Asynchronous faults surface at
  /// the next synchronize.
  Expected<void> launch(LaunchDims grid, LaunchDims block, void** args, size_t sharedBytes, CudaStream stream) const;
  /// The same launch with programmatic stream serialization (cudaLaunchKernelExC, sm_90 and
  /// up): the kernel may be scheduled while the previous kernel in the stream still runs, and
  /// must wait for it (griddepcontrol.wait) before touching memory -- every kernel shoal
  /// generates does so first. Hides the launch latency between dependent kernels.
  Expected<void> launchAfterPrevious(LaunchDims grid, LaunchDims block, void** args, size_t sharedBytes,
                                     CudaStream stream) const;
  /// Allows `bytes` of dynamic shared memory (needed above 48 KiB) on device `device`.
  Expected<void> setMaxDynamicSharedMemory(int bytes, int device = 0) const;

 private:
  friend class CudaModule;
  std::string name_;
  CUkern_st* kernel_ = nullptr;
};

/// A cubin loaded into a cudaLibrary_t (cudaLibraryLoadData). Unloaded on destruction.
/// Move-only.
class CudaModule {
 public:
  /// Loads `image` (a cubin, fatbin, or NUL-terminated PTX). `name` names the module in
  /// errors: "cudaLibraryLoadData(module 'mnist_cnn'): no kernel image is available for
  /// execution on the device (cudaErrorNoKernelImageForDevice)".
  static Expected<CudaModule> load(std::string_view image, std::string name);

  CudaModule() = default;
  CudaModule(CudaModule&& other) noexcept;
  CudaModule& operator=(CudaModule&& other) noexcept;
  CudaModule(const CudaModule&) = delete;
  CudaModule& operator=(const CudaModule&) = delete;
  ~CudaModule();

  const std::string& name() const { return name_; }
  bool valid() const { return library_ != nullptr; }
  /// The kernel named `kernelName` (an extern "C" symbol) via cudaLibraryGetKernel.
  Expected<CudaKernel> kernel(const std::string& kernelName) const;

 private:
  void reset();
  std::string name_;
  CUlib_st* library_ = nullptr;
};

}  // namespace shoal
