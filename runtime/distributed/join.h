// Joining a multi-process data-parallel run from this process's environment.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "runtime/backend.h"
#include "runtime/distributed/tcp_group.h"

namespace shoal {

/// This process's communicator in the run `opts` describes: NCCL (with the TCP group under
/// it) on a GPU, the TCP group itself on the CPU. The watchdog is running when this returns;
/// `onFailure` hears, once and from its thread, why another rank failed or vanished.
Expected<std::shared_ptr<Communicator>> joinDataParallelRun(const RendezvousOptions& opts, DeviceKind device,
                                                             std::function<void(const std::string&)> onFailure);

}  // namespace shoal
