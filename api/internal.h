// What the public API's implementation files share (not installed).
#pragma once

#include <shoal/shoal.h>

#include "runtime/backend.h"
#include "runtime/model_programs.h"

namespace shoal {

/// The device SessionOptions asks for, after checking the options (threads); the error
/// names the option.
Expected<DeviceSelection> sessionDevice(const SessionOptions& opts);

/// The runtime's name for a Precision.
TensorCoreMath precisionMath(Precision p);
/// A precision other than Fp32 on the CPU is an error that says so.
Expected<void> checkPrecisionOn(const SessionOptions& opts, const DeviceSelection& device);
/// Checks SessionOptions' values (threads >= 1 when set; tf32 not beside bf16 or fp16).
Expected<void> checkSessionOptions(const SessionOptions& opts);

/// Compile and execution options from SessionOptions.
ModelProgramsOptions sessionProgramOptions(const SessionOptions& opts);

}  // namespace shoal
