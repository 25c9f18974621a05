// Data-parallel collectives: the Communicator a training step's all_reduce ops and the
// trainer's metric reductions go through, and its in-process implementation (threads).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/diagnostics.h"
#include <shoal/tensor.h>

namespace shoal {

/// How a collective combines the ranks' values.
enum class ReduceKind {
  Sum,
  Mean,  ///< the sum divided by the number of ranks
  Min,
  Max,
};

/// The ranks of one data-parallel run. Every rank calls the same collectives in the same
/// order with the same sizes; each call returns when this rank has its result. Host results
/// are identical on every rank (the ranks' values are combined in rank order).
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// "in-process", "tcp", "nccl": for messages.
  virtual std::string kind() const = 0;

  /// Combines `count` elements of host memory over every rank, in place.
  virtual Expected<void> allReduceHost(void* data, DType dtype, int64_t count, ReduceKind op) = 0;
  /// Rank `root`'s `bytes` of host memory, on every rank.
  virtual Expected<void> broadcastHost(void* data, size_t bytes, int root) = 0;
  /// Returns once every rank has called it.
  virtual Expected<void> barrier() = 0;

  /// Combines `count` elements of device memory on the CUDA stream `stream`, in place
  /// (queued, not waited for; capturable in a CUDA graph). Only a device communicator
  /// (NCCL) has it.
  virtual bool hasDeviceCollectives() const { return false; }
  virtual Expected<void> allReduceDevice(void* data, DType dtype, int64_t count, ReduceKind op, void* stream);
  /// Brackets several allReduceDevice calls into one launch (ncclGroupStart/End): a bucket.
  virtual Expected<void> groupStart() { return {}; }
  virtual Expected<void> groupEnd() { return {}; }
  /// A device-side error raised asynchronously (NCCL's), checked after a step's results are
  /// read back; nothing by default.
  virtual Expected<void> checkAsyncError() { return {}; }
  /// Gives up: every pending and later collective of every rank fails (when the
  /// implementation can reach them) with `why`. For a rank that fails while the others may
  /// be waiting for it.
  virtual void abort(const std::string& why) { (void)why; }
  /// Says this rank finished normally (its going away is then no failure for the others).
  virtual void finish() {}
};

/// "sum", "mean", "min", "max"; nullopt otherwise.
std::optional<ReduceKind> parseReduceKind(std::string_view s);
std::string_view reduceKindName(ReduceKind k);

/// Combines `count` elements of each of `parts` (host buffers of `dtype`, in rank order) into
/// `out` (which may be one of them): the host reduction every implementation uses, so every
/// rank gets the same bits.
void reduceInto(void* out, const std::vector<const void*>& parts, DType dtype, int64_t count, ReduceKind op);

/// `size` communicators for `size` threads of one process (tests, CPU data parallelism):
/// communicator r belongs to the thread that plays rank r. A collective waits for every
/// rank; `abort()` on any of them makes every pending and later call fail with its reason
/// (so a failing thread does not leave the others waiting).
class InProcessGroup {
 public:
  static std::vector<std::shared_ptr<Communicator>> create(int size);
};

}  // namespace shoal
