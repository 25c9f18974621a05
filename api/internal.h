// What the public API's implementation files share (not installed).
#pragma once

#include <shoal/shoal.h>

#include "runtime/backend.h"
#include "runtime/model_programs.h"

namespace shoal {

/// The device SessionOptions asks for, after checking the options (threads); the error
/// names the option.
Expected<DeviceSelection> sessionDevice(const SessionOptions& opts);

/// Checks SessionOptions' values (threads >= 1 when set).
Expected<void> checkSessionOptions(const SessionOptions& opts);

/// Compile and execution options from SessionOptions.
ModelProgramsOptions sessionProgramOptions(const SessionOptions& opts);

}  // namespace shoal
