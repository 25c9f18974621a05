// Choosing a device (auto / cpu / cuda) and creating the executable that runs a Program there.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <shoal/train.h>
#include "codegen/cuda_codegen.h"
#include "runtime/executable.h"

namespace shoal {

/// "auto", "cpu", "cuda" (and "gpu" for cuda); nullopt otherwise.
std::optional<DeviceKind> parseDeviceKind(std::string_view s);

/// The device a run will use, and why.
struct DeviceSelection {
  DeviceKind kind = DeviceKind::Cpu;  ///< Cpu or Cuda, never Auto
  std::string description;            ///< "cpu" or "cuda:0 NVIDIA H100 80GB HBM3"
  std::string note;                   ///< e.g. "no usable GPU (no CUDA driver: ...); using the CPU interpreter"
};

/// Resolves a request: auto picks the GPU when one is usable and otherwise the CPU (saying
/// why in `note`); cuda with no usable GPU is an error, "no usable GPU (reason)", that the
/// caller prefixes with where the request came from.
Expected<DeviceSelection> selectDevice(DeviceKind requested);

/// True when $SHOAL_SERIAL_STARTUP is set: a run then does its start-up one thing after the
/// other (no library loading, context creation, data loading or NVRTC on other threads), to
/// measure what the overlap buys or to rule it out.
bool serialStartup();

/// Options for creating executables.
struct ExecutableOptions {
  bool tf32 = false;     ///< allow TF32 in cuBLAS GEMMs (GPU only; off = exact fp32)
  /// The GPU's matrix products (convolutions on tensor cores, cuBLAS GEMMs) with operands in
  /// TF32, bfloat16 or float16 and fp32 accumulation; tensors, parameters and optimizer state
  /// stay fp32 (master weights). Off: exact fp32 (or what tf32 says). The CPU backend refuses
  /// anything but Off: it computes in fp32 and float64.
  TensorCoreMath precision = TensorCoreMath::Off;
  bool verbose = false;  ///< report kernel-cache hits/misses and compile times on stderr
  std::string arch;      ///< NVRTC target override (default: the device's)
  /// GPU: the tensor-core convolutions' tiles timed on the device once per module and device,
  /// the choice kept in the kernel cache (CudaExecutableOptions::autotune); on the CPU, an error.
  bool autotune = false;
  /// CPU threads for shoal's kernels and BLAS (0: the cores this process may use). The CPU
  /// backend applies it when a program runs; the GPU backend ignores it.
  int threads = 0;
};

/// What of creating `program`'s executable needs no device, done ahead (on another thread,
/// say): on a GPU, the CUDA source NVRTC-compiled into the on-disk kernel cache, which the
/// executable then reads; nothing on the CPU.
Expected<void> precompileExecutable(const Program& program, const DeviceSelection& device,
                                    const ExecutableOptions& opts = {});

/// Creates the executable for `program` on the selected device.
Expected<std::unique_ptr<Executable>> createExecutable(Program program, const DeviceSelection& device,
                                                       const ExecutableOptions& opts = {});

}  // namespace shoal
