// The GPU communicator of a data-parallel run: NCCL for the gradients (on the step's stream,
// inside its CUDA graph), the TCP group for the rendezvous, host collectives and the watchdog.
#pragma once

// Needs no CUDA or NCCL headers; without them create() returns an error.

#include <functional>
#include <memory>
#include <string>

#include "runtime/distributed/tcp_group.h"

namespace shoal {

/// Joins the run described by `opts` on the GPU this process sees as device 0: the TCP
/// rendezvous (rank 0 draws NCCL's unique id and hands it out), the watchdog (started before
/// NCCL so a rank that never arrives is noticed; it also polls ncclCommGetAsyncError every
/// beat), then ncclCommInitRank. `onFailure` hears the watchdog's reason once.
Expected<std::shared_ptr<Communicator>> createNcclCommunicator(const RendezvousOptions& opts,
                                                                std::function<void(const std::string&)> onFailure);

/// The NCCL version as "2.28.5", or why NCCL cannot be loaded.
Expected<std::string> ncclVersion();

}  // namespace shoal
