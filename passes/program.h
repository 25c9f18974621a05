// A Program: a scheduled, memory-planned graph, ready for the CPU interpreter or codegen.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <unordered_set>

#include "ir/pipeline.h"
#include "passes/memory_plan.h"
#include "passes/pass.h"

namespace shoal {

struct Program {
  std::unique_ptr<Graph> graph;  ///< nodes in execution order
  MemoryPlan plan;
};

/// How to compile a graph into a Program.
struct CompileOptions {
  const TrainConfig* train = nullptr;   ///< set: build the training step (autodiff + optimizer)
  /// Data-parallel ranks: with more than 1, the training step averages every gradient over
  /// them (an all_reduce after the backward pass, before clipping and the updates).
  int ranks = 1;
  /// The schedule pass moves each collective (a gradient's all_reduce) to just after its
  /// operand is computed, grouped in buckets of about this many bytes that go out together,
  /// so communication overlaps the rest of the backward pass (DDP's bucket_cap_mb).
  int64_t collectiveBucketBytes = int64_t(1) << 20;
  std::set<std::string> disabledPasses;
  std::string stopAfter;                ///< stop the pipeline after this pass (dumps)
  bool verifyEach = verifyEachDefault();
  bool checkUnchanged = false;
  PassObserver observer;                ///< sees the IR after every pass
  DiagnosticEngine* diags = nullptr;
  PlannerOptions planner;               ///< what the memory planner may share
  /// Bytes (arena + persistent) the plan may need; over it, compiling fails. 0: no limit. The
  /// default is what this machine and process can allocate (defaultMemoryLimit()).
  int64_t memoryLimit = defaultMemoryLimit();
};

/// Runs the pass pipeline (inference or training) on `g` and plans memory (planMemory). Fails,
/// before anything runs, when the plan needs more than `opts.memoryLimit` bytes, naming the
/// op where the most memory is live.
Expected<Program> compileProgram(std::unique_ptr<Graph> g, const CompileOptions& opts = {});

/// Fails when `plan` needs more than `limit` bytes (arena + persistent; limit <= 0: never),
/// with a message naming the total, the limit and the op where the most memory is live.
Expected<void> checkMemoryLimit(const Graph& g, const MemoryPlan& plan, int64_t limit);

/// Builds the pipeline `compileProgram` runs, for the given options (for listing pass names).
void buildPipeline(PassManager& pm, const CompileOptions& opts);

/// Whether the program updates operands in place (an optimizer step writing its parameters and
/// state): a training step. Inference and evaluation programs read their parameters only.
bool updatesParameters(const Program& p);

/// The nodes whose results are functions of the parameters, state and literals alone, in a
/// program that never writes them (!updatesParameters): every operand a param's, state's or
/// constant's result or another such node's, the op neither a source (inputs, literals
/// themselves), nor an in-place update, nor a collective. A folded batch norm's weights and
/// bias, say, or a weight times a literal: computed once per set of parameters they give the
/// same values every run. Empty for a program that updates its parameters.
std::unordered_set<const Node*> parameterDerivedNodes(const Program& p);

/// A deep copy of `p`: the graph cloned (same names, same order) and the plan's assignments
/// moved onto the clone's values.
Program cloneProgram(const Program& p);

}  // namespace shoal

namespace shoal {

/// A copy of `g` whose inputs have leading (batch) extent `batch`, shapes re-inferred (or the
/// graph its frontend builds anew for that batch, Graph::batchRebuilder); at the batch it was
/// built for, a plain copy (its inputs' leading extents need not agree). Fails when an op
/// fixes the batch size (a reshape to an explicit batch, say).
Expected<std::unique_ptr<Graph>> rebatchGraph(const Graph& g, int64_t batch);

}  // namespace shoal
