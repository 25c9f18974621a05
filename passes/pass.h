// The pass interface, the pass manager, and the pass pipelines (as data).
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "support/diagnostics.h"
#include "ir/graph.h"

namespace shoal {

struct TrainConfig;

/// What a pass may look at besides the graph.
struct PassContext {
  DiagnosticEngine* diags = nullptr;     ///< where passes report user errors (may be null)
  const TrainConfig* train = nullptr;    ///< set when compiling a training step
  int ranks = 1;                         ///< data-parallel ranks the training step's gradients are averaged over
  int64_t collectiveBucketBytes = int64_t(1) << 20;  ///< schedule: collectives issued together, about this many bytes
};

/// A graph-to-graph transformation with a name and a one-line summary.
class Pass {
 public:
  virtual ~Pass() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view summary() const = 0;
  /// Runs the pass; returns whether it changed the graph (honestly: the pass manager checks
  /// in tests that "unchanged" means the IR text is unchanged).
  virtual Expected<bool> run(Graph& g, PassContext& ctx) = 0;
};

/// Called after each pass with its name and whether it changed the graph.
using PassObserver = std::function<void(std::string_view pass, bool changed, const Graph& g)>;

/// An ordered list of passes, run with verification and observation hooks.
class PassManager {
 public:
  void add(std::unique_ptr<Pass> pass) { passes_.push_back(std::move(pass)); }
  /// Skips the named pass, or a group: "fuse" names every "fuse-*" pass (unknown names are
  /// an error at run()).
  void disable(std::string name) { disabled_.insert(std::move(name)); }
  /// Verify the IR after every pass (on in debug builds and tests).
  void setVerifyEach(bool on) { verifyEach_ = on; }
  /// Check that a pass reporting "unchanged" left the IR text unchanged (tests).
  void setCheckUnchanged(bool on) { checkUnchanged_ = on; }
  void setObserver(PassObserver obs) { observer_ = std::move(obs); }
  /// Stop after the named pass, or after the last pass of a group (`shoal dump --after fuse`).
  void stopAfter(std::string name) { stopAfter_ = std::move(name); }

  std::vector<std::string> passNames() const;
  Expected<void> run(Graph& g, PassContext& ctx);

 private:
  std::vector<std::unique_ptr<Pass>> passes_;
  std::set<std::string> disabled_;
  std::string stopAfter_;
  bool verifyEach_ = false;
  bool checkUnchanged_ = false;
  PassObserver observer_;
};

/// Verification after each pass defaults on in debug builds (and when SHOAL_VERIFY_EACH=1).
bool verifyEachDefault();

// ---- the passes (each in its own file under passes/) ------------------------------------
/// Computes every result type from the op shape rules; errors name the node and the shapes.
std::unique_ptr<Pass> createInferShapesPass();
/// Fills default attributes and removes identities (cast to the same type, reshape to the
/// same shape, scale by 1 with shift 0).
std::unique_ptr<Pass> createCanonicalizePass();
/// Removes nodes whose results nobody uses (outputs and in-place updates are roots).
std::unique_ptr<Pass> createDeadCodeEliminationPass();
/// Evaluates small ops whose operands are all constants into constants.
std::unique_ptr<Pass> createFoldConstantsPass();
/// conv2d (+ bias) followed by relu/sigmoid/tanh becomes one fused_conv2d when the conv's
/// result has no other reader.
std::unique_ptr<Pass> createFuseConvActivationPass();
/// fused_conv2d followed by maxpool2d becomes one fused_conv2d_pool when the conv's result has
/// no other reader (inference graphs; training keeps the pair for maxpool2d_grad).
std::unique_ptr<Pass> createFuseConvPoolPass();
/// relu_grad(x, maxpool2d_grad(x, dy)) becomes one maxpool2d_grad with relu_mask 1 when the
/// pool gradient has no other reader (what training graphs of conv -> relu -> maxpool hold).
std::unique_ptr<Pass> createFusePoolReluGradPass();
/// dense (+ bias) followed by relu/sigmoid/tanh becomes one fused_dense (GEMM + epilogue).
std::unique_ptr<Pass> createFuseDenseActivationPass();
/// fused_dense (+ bias) read only by a dense (+ bias) becomes one fused_mlp (inference heads).
std::unique_ptr<Pass> createFuseDensePairPass();
/// Chains of same-shape elementwise ops (intermediates read once) become one fused_elementwise.
std::unique_ptr<Pass> createFuseElementwisePass();
/// A one-operand elementwise chain read only by a fused_conv2d_pool becomes its input_expr.
std::unique_ptr<Pass> createFuseConvProloguePass();
/// A conv2d (+ bias) read only by a fused_elementwise computes its program as it stores
/// (fused_conv2d's output_expr: a residual add and relu).
std::unique_ptr<Pass> createFuseConvEpiloguePass();
/// Orders nodes for execution: a topological order with in-place updates after every reader.
std::unique_ptr<Pass> createSchedulePass();

// ---- the registry (passes/pass_registry.cpp) ----------------------------------------------

/// One registered pass.
struct PassRegistration {
  std::string_view name;
  std::unique_ptr<Pass> (*create)();
  bool trainingOnly = false;   ///< only training pipelines run it (autodiff)
  bool inferenceOnly = false;  ///< only pipelines without a training step run it (fold-batchnorm)
};
/// Every pass, in the order of the default pipeline (compileProgram builds it from this list).
const std::vector<PassRegistration>& passRegistry();
/// A new instance of the named pass; null for an unknown name.
std::unique_ptr<Pass> createPass(std::string_view name);
/// Every registered pass name, in pipeline order (for --after, --disable-pass and messages).
std::vector<std::string> knownPassNames();
/// Pass groups: a name prefix before '-' shared by two or more passes ("fuse": every fuse-*).
std::vector<std::string> passGroups();
/// True for a registered pass name or a group.
bool isKnownPassSelector(std::string_view selector);
/// "unknown pass 'x' (passes: infer-shapes, ...; groups: fuse)".
std::string unknownPassMessage(std::string_view selector);

}  // namespace shoal
