// The device-neutral face of a compiled program: the CPU interpreter and the CUDA runtime
// both implement it, so the trainer, the CLI and the Session API never care which runs.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "passes/program.h"
#include "runtime/distributed/communicator.h"
#include <shoal/tensor.h>

namespace shoal {

/// A data set's tensors copied into a device's memory once, and the current epoch's row
/// order beside them, so that training steps gather their batches on the device
/// (Executable::runAccumulateRows) instead of uploading each one. Made by makeResident().
class ResidentData {
 public:
  virtual ~ResidentData() = default;
  /// Rows of the tensors (their dimension 0).
  virtual int64_t rows() const = 0;
  /// Sets the order the steps read their rows in (each in [0, rows()), else an error naming
  /// the row). The steps queued before keep reading the order they were queued with.
  virtual Expected<void> setOrder(std::span<const int64_t> order) = 0;
};

class Executable {
 public:
  virtual ~Executable() = default;
  /// "cpu" or "cuda:0 NVIDIA H100 80GB HBM3".
  virtual std::string deviceName() const = 0;
  virtual const Program& program() const = 0;
  const Graph& graph() const { return *program().graph; }

  /// Initializes every param by its `init` attribute, seeded and deterministic, and every
  /// state to zero.
  virtual void initializeParameters(uint64_t seed) = 0;
  /// Host copies of params and state, by value name.
  virtual TensorMap readPersistent() = 0;
  /// Overwrites the params/state named in `values` (unknown names ignored; shapes checked).
  virtual Expected<void> writePersistent(const TensorMap& values) = 0;
  /// Makes this executable use `other`'s params and state (same names, types and offsets in
  /// the persistent region, else an internal error), so a training step, a remainder-batch
  /// step and an evaluation program train one model.
  Expected<void> shareParameters(Executable& other);

  /// Feeds the named inputs, runs every node, returns the named outputs (host copies).
  virtual Expected<TensorMap> run(const TensorMap& inputs) = 0;

  /// A host copy of the buffer of `v` (a value of this program's graph) as the last run left
  /// it. Every value keeps its own result only when the memory plan shares nothing
  /// (PlannerOptions{.inPlace = false, .reuse = false}, as the differential check compiles);
  /// otherwise a later value may have overwritten it. Params and state hold their updated
  /// values after a training step.
  virtual Expected<Tensor> readValue(const Value* v) = 0;

  /// What runAccumulate() gathered since the last takeAccumulated().
  struct Accumulated {
    std::map<std::string, double> sums;        ///< weighted sums of the accumulated scalar outputs
    double weight = 0;                         ///< sum of the weights
    std::optional<int64_t> firstNonFinite;     ///< first step whose `loss` output was NaN or Inf
    double nonFiniteValue = 0;                 ///< that loss
  };
  /// The training-step form of run(): feeds `inputs` and runs the program without waiting
  /// for the device to finish; the scalar outputs named in `names` are summed (times
  /// `weight`) where the program runs, and the first step whose output `loss` is not finite
  /// is remembered. Nothing comes back to the host until takeAccumulated(), so a GPU step
  /// needs no host synchronisation. The default runs synchronously through run().
  virtual Expected<void> runAccumulate(const TensorMap& inputs, const std::vector<std::string>& names, double weight,
                                       int64_t step);
  /// Waits for the queued steps and returns (and resets) what they accumulated.
  virtual Expected<Accumulated> takeAccumulated();

  /// Copies `tensors` (dimension 0 indexing the same rows in each) into this executable's
  /// device memory for runAccumulateRows(); nullptr where the backend reads host memory
  /// anyway (the CPU), or when the copy would take more than a quarter of the device's free
  /// memory, or a tensor's element type does not convert exactly into the input it feeds
  /// (the steps then take their batches through runAccumulate()).
  virtual Expected<std::shared_ptr<ResidentData>> makeResident(const TensorMap& tensors);
  /// runAccumulate() on the batch of rows order[first .. first + rows) of `data`: the inputs
  /// named like `data`'s tensors are gathered from them on the device (converted to the
  /// input's element type as a host upload converts them), every other input is a scalar
  /// given in `scalars` (the step count, the learning rate).
  virtual Expected<void> runAccumulateRows(ResidentData& data, int64_t first, int64_t rows, const TensorMap& scalars,
                                           const std::vector<std::string>& names, double weight, int64_t step);

  /// The ranks this program's all_reduce ops combine over (a data-parallel training step);
  /// set before the first run. Without one, all_reduce over 1 rank is the identity and over
  /// more an error.
  void setCommunicator(std::shared_ptr<Communicator> comm) { comm_ = std::move(comm); }
  Communicator* communicator() const { return comm_.get(); }

  /// The GPU runtime: whether the step now replays a captured CUDA graph (it captures after
  /// the first run), and why not when capturing failed; nullopt / "" elsewhere.
  virtual std::optional<bool> replaysCudaGraph() const { return std::nullopt; }
  virtual std::string cudaGraphError() const { return ""; }

  /// Turns per-op timing on or off (off by default: it adds a clock read per op).
  virtual void setProfiling(bool on) { (void)on; }
  /// Time per op kind since profiling was turned on, one line each, slowest first; "" when
  /// the executable does not profile.
  virtual std::string profileSummary() const { return ""; }
  /// Time per op kind, (seconds, calls) by op name: one line each, slowest first, with its
  /// share, then the total (`decimals` digits of milliseconds, `totalNote` after it). The
  /// backends' profileSummary() tables.
  static std::string profileTable(const std::map<std::string, std::pair<double, int64_t>>& byOp, int decimals,
                                  std::string_view totalNote = "");

 protected:
  /// shareParameters after the layouts were checked: take over `other`'s persistent region
  /// (`other` is of the same device kind, or an internal error).
  virtual Expected<void> adoptPersistent(Executable& other) = 0;

  Accumulated accumulated_;
  std::shared_ptr<Communicator> comm_;
};

}  // namespace shoal
