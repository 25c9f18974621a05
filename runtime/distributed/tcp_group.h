// The TCP rendezvous of a multi-process data-parallel run, the host collectives over it, and
// the watchdog that makes every rank stop when one dies.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "runtime/distributed/communicator.h"

namespace shoal {

/// Where and who: the torchrun variables, read by DistributedEnv::fromEnvironment.
struct RendezvousOptions {
  std::string address = "127.0.0.1";  ///< rank 0's host (MASTER_ADDR)
  int port = 29500;                   ///< (MASTER_PORT)
  int rank = 0;                       ///< (RANK)
  int size = 1;                       ///< (WORLD_SIZE)
  int localRank = 0;                  ///< (LOCAL_RANK): the GPU of this host
  double timeoutSeconds = 60;         ///< joining: how long rank 0 waits for the others, and they retry it
  double heartbeatSeconds = 1;        ///< the watchdog's beat
  double deadAfterSeconds = 10;       ///< a rank silent this long counts as gone
};

/// The rendezvous settings from RANK, WORLD_SIZE, LOCAL_RANK (default: RANK), MASTER_ADDR
/// (default 127.0.0.1), MASTER_PORT (default 29500) and SHOAL_RENDEZVOUS_TIMEOUT (seconds,
/// default 60). nullopt when neither RANK nor WORLD_SIZE is set (a run on its own); an error
/// naming the variable when one is missing or not a number in range.
Expected<std::optional<RendezvousOptions>> rendezvousFromEnvironment();

/// The ranks of one run connected through rank 0 (a star): rank 0 listens on address:port;
/// every other rank connects (retrying until the timeout) twice, once for collectives and
/// once for the watchdog, and says its rank and the world size it was started with, which
/// must be rank 0's. Rank 0 answers every rank with `payload` (NCCL's unique id). Host
/// collectives go through rank 0, which combines the ranks' values in rank order, so every
/// rank gets the same bits.
class TcpGroup final : public Communicator {
 public:
  /// Joins the group. Rank 0 calls makePayload once every rank has joined.
  static Expected<std::unique_ptr<TcpGroup>> join(const RendezvousOptions& opts,
                                                  const std::function<Expected<std::string>()>& makePayload = {});
  ~TcpGroup() override;

  int rank() const override { return opts_.rank; }
  int size() const override { return opts_.size; }
  std::string kind() const override { return "tcp"; }
  const RendezvousOptions& options() const { return opts_; }
  /// What rank 0's makePayload returned.
  const std::string& payload() const { return payload_; }

  Expected<void> allReduceHost(void* data, DType dtype, int64_t count, ReduceKind op) override;
  Expected<void> broadcastHost(void* data, size_t bytes, int root) override;
  Expected<void> barrier() override;
  /// Tells the other ranks (through rank 0) that this one gives up, with `why`.
  void abort(const std::string& why) override;

  /// Starts the watchdog thread: heartbeats with the other ranks; `onFailure` is called once,
  /// from that thread, when a rank's connection closes or falls silent for deadAfterSeconds
  /// before it said it finished, when a rank aborts, or when `poll` (called every beat: an
  /// NCCL error, say) returns a reason. The reason names the rank.
  void watch(std::function<void(const std::string&)> onFailure,
             std::function<std::optional<std::string>()> poll = {});
  /// Says this rank finished normally (its connection closing is then no failure) and stops
  /// the watchdog.
  void finish() override;

 private:
  TcpGroup() = default;
  Expected<void> exchange(uint32_t tag, const void* in, size_t bytes, void* out, DType dtype, int64_t count,
                          ReduceKind op, int root);
  void watchLoop();

  RendezvousOptions opts_;
  std::string payload_;
  std::vector<int> data_, control_;  ///< rank 0: per rank (index = rank; [0] unused); others: [0] to rank 0
  std::thread watchdog_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::function<void(const std::string&)> onFailure_;
  std::function<std::optional<std::string>()> poll_;
};

}  // namespace shoal
