// The CPU interpreter: runs a Program's nodes in order over one planned arena. It is the
// numerical reference every GPU kernel and every gradient is checked against.
#pragma once

#include <shoal/tensor.h>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "passes/program.h"
#include "runtime/executable.h"

namespace shoal {

/// A compiled program bound to host memory: a transient arena plus a persistent region for
/// params and state, both sized by the memory plan.
///
/// In a program that writes no parameter (inference, evaluation), the values computed from
/// parameters, state and literals alone (parameterDerivedNodes: a folded batch norm's weights
/// and bias, say) live in buffers of their own and are computed again only when the parameters
/// changed since they last were -- initializeParameters, writePersistent, or a run of a program
/// sharing them (adoptPersistent) that updates them -- not every run. SHOAL_CPU_PREPARE=0
/// computes them every run.
class CpuExecutable : public Executable {
 public:
  /// `threads`: the CPU threads its runs use (shoal's kernels and BLAS; 0: every core
  /// available), applied at the start of every run().
  static Expected<std::unique_ptr<CpuExecutable>> create(Program program, int threads = 0);

  std::string deviceName() const override { return "cpu"; }
  const Program& program() const override { return program_; }
  void initializeParameters(uint64_t seed) override;
  TensorMap readPersistent() override;
  Expected<void> writePersistent(const TensorMap& values) override;
  Expected<TensorMap> run(const TensorMap& inputs) override;
  Expected<Tensor> readValue(const Value* v) override { return valueView(v).clone(); }
  void setProfiling(bool on) override { profiling_ = on; }

  /// Runs one node of this program's graph over the buffers as they are: what run() does for
  /// each node, without feeding inputs. The differential check drives its float64 reference
  /// node by node through this, after writing the operands it wants into valueView()s.
  Expected<void> runNode(const Node& n);

  /// Test-only fault injection: after run() computes a node whose op is named `opName`, every
  /// floating-point element y of its results (and of the params and state it updates in
  /// place) becomes y·(1 + amount) + amount. runNode() is
  /// never perturbed. CpuExecutable::create() sets it from SHOAL_TEST_PERTURB_OP=NAME[:AMOUNT]
  /// (amount 1e-3 by default), so the CLI tests can plant a wrong kernel.
  void setPerturbation(std::string opName, double amount) {
    perturbOp_ = std::move(opName);
    perturbAmount_ = amount;
  }
  std::string profileSummary() const override;

  /// Params and state by value name: views into the persistent region (for reading, and for
  /// writePersistent, which tells the values computed from them to follow).
  TensorMap persistentViews();
  /// A view of any value's buffer after run() (for tests and debugging): a value computed from
  /// the parameters alone in its own buffer, anything else where the plan put it.
  Tensor valueView(const Value* v);
  /// The nodes whose results run() computes only when the parameters changed (see above).
  const std::unordered_set<const Node*>& preparedNodes() const { return preparedNodes_; }

 protected:
  Expected<void> adoptPersistent(Executable& other) override;

 private:
  CpuExecutable(Program p, int threads) : program_(std::move(p)), threads_(threads) {}
  void perturbResults(const Node& n);
  Program program_;
  std::shared_ptr<void> arena_, persistentRegion_;
  /// Moved on by every change of the persistent region's values; shared with it.
  std::shared_ptr<uint64_t> generation_ = std::make_shared<uint64_t>(1);
  bool writesParameters_ = false;
  std::unordered_set<const Node*> preparedNodes_;
  std::unordered_map<const Value*, Tensor> prepared_;  ///< their results' own buffers
  const void* preparedFor_ = nullptr;                  ///< the region and generation they were computed for
  uint64_t preparedGeneration_ = 0;
  int threads_ = 0;
  bool profiling_ = false;
  std::string perturbOp_;
  double perturbAmount_ = 0;
  std::map<std::string, std::pair<double, int64_t>> profile_;  ///< op name -> (seconds, calls)
};

/// Convenience for tests and tools: compiles `g` (a clone; shapes inferred, scheduled, no
/// folding) and runs it once. Params/state are read from `persistent` by name (missing ones
/// are initialised with `seed`) and written back after the run (so updates are visible).
Expected<TensorMap> evaluateGraph(const Graph& g, const TensorMap& inputs, TensorMap& persistent, uint64_t seed = 0);

}  // namespace shoal
