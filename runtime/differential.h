// The differential check (`shoal run --check`): a program runs on a device, and every node's
// output is compared with the float64 interpreter's on the same operands.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/pipeline.h"
#include "runtime/backend.h"
#include "runtime/cpu/interpreter.h"
#include <shoal/train.h>

namespace shoal {

/// Tolerances of the comparison: numpy.allclose's rule, element by element,
///   |got - want| <= atol + rtol·|want|             (elementwise ops)
///   |got - want| <= atol + rtol·max(|want|, rms)   (ops that sum several terms per element)
/// where `want` is the float64 result and rms the root mean square of the whole float64
/// value. An op that sums terms (dense, matmul, conv and its gradients, sum_to, average
/// pooling, softmax rows, the losses) can cancel them to an element near zero whose fp32
/// rounding error is relative to the terms, not to that element; the value's RMS stands for
/// the terms' magnitude. (An fp32 sum of K terms is off by about sqrt(K)·6e-8 of it: below
/// rtol up to K ~ 10^6.) NaN matches only NaN, an infinity only itself; integer results
/// (argmax) must be equal.
struct DifferentialTolerance {
  double rtol = 1e-4;
  double atol = 1e-5;
};

/// How many terms `n`'s op sums into one element of its result (1 for elementwise ops): the
/// reduced extent of dense, matmul, conv and its gradients, sum_to, average pooling windows,
/// softmax rows and the losses. Its result's element count times this is the op's work.
int64_t termsPerElement(const Node& n);

/// Where a device's output first left the tolerance.
struct Divergence {
  int64_t step = 0;         ///< 1-based run (training step) it happened in
  std::string node;         ///< "relu 'h'": the op and the pipeline node (Node::describe)
  std::string op;           ///< "relu"
  std::string value;        ///< the value compared ("h"); for an in-place update, the param
  Location loc;             ///< the pipeline location of the node
  int64_t badElements = 0;  ///< elements beyond tolerance
  int64_t elements = 0;     ///< elements compared
  std::string index;        ///< the worst element, "[3,17]"
  double got = 0, want = 0, error = 0, tolerance = 0;

  /// "step 1: relu 'h' (m.mmd:5:3), value %h: 12 of 4096 elements beyond tolerance; worst at
  /// [3,17]: device 0.51234, float64 0.51183 (error 5.1e-04, tolerance 6.1e-05)" (without the
  /// parenthesised location when `withLocation` is false).
  std::string describe(bool withLocation = true) const;
};

/// Compares runs of a device executable with a float64 reference, node by node. Each node is
/// recomputed in float64 (CpuExecutable::runNode) from the device's own values of its
/// operands (converted to f64, params and state as they were before the run), so an error is
/// pinned on the node that made it, not smeared downstream; an in-place update is judged by
/// the params and state it leaves. The device's program must have been planned with
/// PlannerOptions{.inPlace = false, .reuse = false}, so every value can be read back.
class DifferentialChecker {
 public:
  /// Builds the reference (promoteFloatsToF64 of the device program's graph, planned with
  /// nothing shared) for `device`.
  static Expected<std::unique_ptr<DifferentialChecker>> create(Executable& device, DifferentialTolerance tol = {});

  /// Runs `inputs` on the device (one step), then checks every node. Returns the first
  /// divergence in program order, or nullopt. `step` numbers the run in reports.
  Expected<std::optional<Divergence>> runAndCheck(const TensorMap& inputs, int64_t step);

  /// Nodes checked per run (those that compute something).
  int64_t nodesChecked() const { return nodesChecked_; }
  /// The closest call so far: the largest error/tolerance ratio of any passing element, and
  /// the node it was in.
  double worstRatio() const { return worstRatio_; }
  const std::string& worstNode() const { return worstNode_; }

 private:
  DifferentialChecker(Executable& device, DifferentialTolerance tol) : device_(device), tol_(tol) {}

  Executable& device_;
  DifferentialTolerance tol_;
  std::unique_ptr<CpuExecutable> reference_;
  int64_t nodesChecked_ = 0;
  double worstRatio_ = 0;
  std::string worstNode_;
};

/// What `shoal run --check` runs.
struct DifferentialOptions {
  DeviceKind device = DeviceKind::Auto;
  int64_t steps = 3;                ///< training steps (or inference batches) compared
  DifferentialTolerance tolerance;
  std::optional<uint64_t> seed;     ///< overrides the pipeline's
  std::string weights;              ///< safetensors to load first
  ExecutableOptions exec;
  CompileOptions compile;           ///< disabled passes, memory limit (the planner is overridden)
  std::function<void(const std::string&)> onNote;
};

/// The outcome of a differential check.
struct DifferentialReport {
  std::string device;                    ///< the device checked
  int64_t steps = 0;                     ///< runs compared
  int64_t nodesPerStep = 0;
  bool training = false;
  std::optional<Divergence> divergence;  ///< the first one, when there is one
  double worstRatio = 0;                 ///< the closest call among passing elements
  std::string worstNode;
};

/// Compiles `pipeline` with nothing shared in memory and checks it against the float64
/// interpreter: a training pipeline's first `steps` training steps on the first batches of its
/// training data (in file order), one after the other from the same initial weights; a
/// pipeline with data and no training its first `steps` test batches; a pipeline of literal
/// inputs its one run. Stops at the first step with a divergence.
Expected<DifferentialReport> checkPipelineAgainstReference(const Pipeline& pipeline, const DifferentialOptions& opts);

}  // namespace shoal
