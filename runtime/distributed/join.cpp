// Joining a data-parallel run: the TCP group on the CPU, NCCL over it on a GPU.
#include "runtime/distributed/join.h"

#include "runtime/cuda/nccl_communicator.h"

namespace shoal {

Expected<std::shared_ptr<Communicator>> joinDataParallelRun(const RendezvousOptions& opts, DeviceKind device,
                                                             std::function<void(const std::string&)> onFailure) {
  if (device == DeviceKind::Cuda) return createNcclCommunicator(opts, std::move(onFailure));
  auto tcp = TcpGroup::join(opts);
  if (!tcp) return Unexpected(tcp.error());
  (*tcp)->watch(std::move(onFailure));
  return std::shared_ptr<Communicator>(std::move(*tcp));
}

}  // namespace shoal
