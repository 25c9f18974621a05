// Device selection and executable creation.
#include "runtime/backend.h"

#include <fmt/format.h>

#include <future>

#include "codegen/nvrtc.h"
#include "runtime/cpu/interpreter.h"
#include "runtime/cuda/cuda_executable.h"
#include "runtime/cuda/device.h"
#include "support/phase_times.h"

namespace shoal {

std::optional<DeviceKind> parseDeviceKind(std::string_view s) {
  if (s == "auto") return DeviceKind::Auto;
  if (s == "cpu") return DeviceKind::Cpu;
  if (s == "cuda" || s == "gpu") return DeviceKind::Cuda;
  return std::nullopt;
}

bool serialStartup() { return envFlag("SHOAL_SERIAL_STARTUP"); }

Expected<DeviceSelection> selectDevice(DeviceKind requested) {
  DeviceSelection sel;
  if (requested == DeviceKind::Cpu) {
    sel.description = "cpu";
    return sel;
  }
  // Where a CUDA driver is installed, NVRTC (which every GPU program needs: its version keys
  // the kernel cache) loads on another thread while the driver initialises for the probe;
  // without one nothing is loaded. cuBLAS and cuBLASLt (hundreds of MB) load only for a
  // program with cuBLAS steps, when its executable is made (CudaContext::enableBlas).
  std::future<Expected<void>> libraries;
  if (cudaDriverInstalled() && !serialStartup())
    libraries = std::async(std::launch::async, [] {
      PhaseTimer timer("NVRTC library (dlopen)");
      if (envFlag("SHOAL_EAGER_BLAS")) preloadBlasLibraries();  // the old start-up, for measuring
      return nvrtcAvailable();
    });
  auto gpu = [] {
    PhaseTimer timer("CUDA driver init + device probe");
    return probeCudaDevice(0);
  }();
  // The device's primary context is made by the first CUDA context (on the trainer's start-up
  // thread while this one compiles the step: cudaFree(0) here would hold this thread 0.12 s on
  // an H200 before NVRTC could start).
  if (gpu) {
    // A GPU without NVRTC cannot run shoal's programs: say so (a program that needs cuBLAS
    // and cannot load it fails when its executable is made, naming the library).
    if (auto libs = libraries.valid() ? libraries.get() : nvrtcAvailable(); !libs) {
      if (requested == DeviceKind::Cuda) return fail("no usable GPU (" + libs.error().message() + ")");
      sel.kind = DeviceKind::Cpu;
      sel.description = "cpu";
      sel.note = "no usable GPU (" + gpu->describe() + " found, but " + libs.error().message() +
                 "); running on the CPU interpreter";
      return sel;
    }
    sel.kind = DeviceKind::Cuda;
    sel.description = gpu->describe();
    return sel;
  }
  if (requested == DeviceKind::Cuda)
    return fail("no usable GPU (" + gpu.error().message() + ")");
  sel.kind = DeviceKind::Cpu;
  sel.description = "cpu";
  sel.note = "no usable GPU (" + gpu.error().message() + "); running on the CPU interpreter";
  return sel;
}

Expected<void> precompileExecutable(const Program& program, const DeviceSelection& device,
                                    const ExecutableOptions& opts) {
  if (device.kind != DeviceKind::Cuda) return {};
  return compileCudaIntoCache(program, opts.arch, opts.precision, opts.autotune);
}

Expected<std::unique_ptr<Executable>> createExecutable(Program program, const DeviceSelection& device,
                                                       const ExecutableOptions& opts) {
  if (device.kind == DeviceKind::Cuda)
    return createCudaExecutable(std::move(program), opts.tf32, opts.verbose, opts.arch, opts.precision, opts.autotune);
  if (opts.precision != TensorCoreMath::Off)
    return fail(fmt::format("precision {} is for the GPU's tensor cores; the CPU computes in fp32 (precision fp32)",
                            tensorCoreMathName(opts.precision)));
  if (opts.autotune)
    return fail("autotune times the GPU's convolution tiles; the CPU has none to time (leave it off there)");
  PhaseTimer timer("CPU executable (memory)");
  auto exe = CpuExecutable::create(std::move(program), opts.threads);
  if (!exe) return Unexpected(exe.error());
  return std::unique_ptr<Executable>(std::move(*exe));
}

}  // namespace shoal
