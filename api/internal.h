// What the public API's implementation files share (not installed).
#pragma once

#include <shoal/shoal.h>

#include "runtime/backend.h"
#include "runtime/model_programs.h"

namespace shoal {

/// The device SessionOptions asks for; the error names the option.
Expected<DeviceSelection> sessionDevice(const SessionOptions& opts);

/// Compile and execution options from SessionOptions.
ModelProgramsOptions sessionProgramOptions(const SessionOptions& opts);

}  // namespace shoal
