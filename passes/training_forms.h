// Training forms, registered per op like gradient rules: an op that computes differently while
// a model trains (batchnorm normalises with the batch's statistics and updates its running
// ones; dropout drops elements) is written in pipelines in its evaluation form, and the
// training-forms pass, run only when a training step is compiled (before autodiff), replaces
// it by what its registered rule builds. Inference, evaluation and the trainer never ask.
//
//   SHOAL_TRAINING_FORM(Dropout) {  // f: TrainingFormArgs
//     auto step = f.step();
//     if (!step) return step;
//     return f.emit(OpKind::DropoutTrain, {f.node.input(0), *step}, attrs, ".train");
//   }
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/pipeline.h"
#include "passes/pass.h"
#include "support/diagnostics.h"

namespace shoal {

/// What a training-form rule sees: the evaluation-form node, the training configuration, and
/// helpers that insert nodes just before that node (so every operand is defined already).
class TrainingFormArgs {
 public:
  TrainingFormArgs(Graph& g, Node& node, const TrainConfig& train) : graph(g), node(node), train(train) {}

  Graph& graph;
  Node& node;
  const TrainConfig& train;

  /// Inserts `kind(inputs) {attrs}` before the node, its result named `<node's result><suffix>`,
  /// typed by the op's shape rule (errors carry the node's location).
  Expected<Value*> emit(OpKind kind, std::vector<Value*> inputs, Attrs attrs, const std::string& suffix) const;
  /// Inserts a node with no result (an in-place update) before the node, checked by its shape rule.
  Expected<void> emitSink(OpKind kind, std::vector<Value*> inputs, Attrs attrs) const;
  /// The training step's `step` input (f32[], the 1-based step count the trainer feeds every
  /// training step), declared after the graph's other inputs on first use.
  Expected<Value*> step() const;
};

/// Builds the training form of `f.node` and returns the value that replaces its result (the
/// pass then erases the node and gives the value the node's result name).
using TrainingFormRule = Expected<Value*> (*)(const TrainingFormArgs& f);

/// The registered rule of `kind`, or null when the op trains as it infers.
TrainingFormRule findTrainingFormRule(OpKind kind);

/// Registers a rule at static initialization (use SHOAL_TRAINING_FORM).
struct TrainingFormRegistration {
  TrainingFormRegistration(OpKind kind, TrainingFormRule rule);
};

#define SHOAL_TRAINING_FORM(kind)                                                                                      \
  static Expected<Value*> shoalTrainingForm_##kind(const TrainingFormArgs& f);                                         \
  static const TrainingFormRegistration shoalTrainingFormRegistration_##kind(OpKind::kind, &shoalTrainingForm_##kind); \
  static Expected<Value*> shoalTrainingForm_##kind(const TrainingFormArgs& f)

/// The "training-forms" pass: every node whose op has a training form is replaced by it. Without
/// a training configuration (ctx.train null) it leaves the graph unchanged.
std::unique_ptr<Pass> createTrainingFormsPass();

}  // namespace shoal
