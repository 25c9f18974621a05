// Reverse-mode autodiff: turns an inference graph into one training step (loss, backward, update).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "support/diagnostics.h"
#include "ir/graph.h"
#include "ir/pipeline.h"
#include "passes/pass.h"

namespace shoal {

/// A parameter and the value holding the gradient of the loss with respect to it.
struct ParamGradient {
  Value* param = nullptr;
  Value* grad = nullptr;
};

/// Emits the backward pass of the scalar float `loss` at the end of `g`: seeds
/// `%<loss>.grad = constant 1`, walks the nodes in reverse program order and applies each
/// differentiable op's gradient rule (ir/ops.def) to the operands that depend on a param.
/// The gradient of `%v` is named `%v.grad`; contributions of several uses are summed with
/// `add`. Gradient ops carry their forward op's location. Returns the params that received a
/// gradient, in program order (params with no path to the loss are left out). Fails, with
/// the node's location, when a non-differentiable op lies between a param and the loss.
Expected<std::vector<ParamGradient>> appendBackward(Graph& g, Value* loss);

/// appendBackward for the value of the output named `lossOutput`, plus one
/// `output(%p.grad) {name="grad:<param name>"}` per param that got a gradient, so tests and
/// tools read the gradients directly. Fails when there is no such output, it is not a float
/// scalar, or no param reaches it.
Expected<void> appendGradients(Graph& g, const std::string& lossOutput = "loss");

/// Turns an inference graph (shape-inferred, canonicalized, with an output named
/// `logitsOutput`) into one training step:
///  - fused ops (a graph after the fuse-* passes) expanded into the ops they fuse, which
///    have gradient rules;
///  - new inputs: `labels` (i64[N]; softmax_cross_entropy, or one-hot targets) or `targets`
///    (the logits' type; mse, bce_with_logits), `step` (f32[], the 1-based step count; adam and
///    adamw; reused when an earlier training pass declared it) and `lr` (f64[], the step's learning rate, so a schedule never recompiles);
///  - the loss head (softmax_cross_entropy with the label smoothing, mse, or
///    bce_with_logits, over `targets = one_hot(labels)` when cfg.oneHotTargets) and
///    `output(%loss) {name="loss"}`; with labels also `output(%accuracy) {name="accuracy"}`
///    (the logits output stays);
///  - the backward pass (appendBackward), from `%loss.scaled = mul(%loss, %loss_scale)` with
///    dynamic loss scaling (cfg.lossScale > 0: states `loss_scale.exponent` and
///    `loss_scale.good_steps`, `%loss_scale = loss_scale(%loss_scale.exponent) {init_scale}`);
///  - with cfg.clipNorm > 0 or loss scaling: `global_sum_squares` of every gradient (summed per
///    64) and `%grads.clip_coef = clip_grad_coef(...) {max_norm}`, or with loss scaling
///    `%grads.unscale_coef = unscale_coef(..., %loss_scale) {max_norm}`, the factor every update
///    applies (0 skips them);
///  - per trained param, in program order: `adam_update(%p, %p.grad, %p.m, %p.v, %step, %lr
///    [, %grads.clip_coef])` (adamw: decoupled_weight_decay=1), `sgd_momentum_update(%p,
///    %p.grad, %p.velocity, %lr [, ...])` or `sgd_update(%p, %p.grad, %lr [, ...])`, with the
///    optimizer state declared right after the last param or state. The updates come last,
///    then with loss scaling `loss_scale_update(%loss_scale.exponent, %loss_scale.good_steps,
///    %grads.sum_squares) {growth_interval}`.
/// Errors (with the location of the train stage or the offending node): no such output,
/// logits not rank 2 where labels are read, unknown loss or optimizer, settings that do not
/// fit them (label smoothing without cross-entropy, Nesterov without momentum), a name clash
/// with an existing input/output, no params to train.
///
/// With `ranks` > 1 (data parallelism) every gradient is averaged over the ranks right after
/// the backward pass: `%p.grad.all_reduce = all_reduce(%p.grad) {op="mean", ranks=N}`, one per
/// gradient, adjacent (the GPU sends them as one bucket); clipping and the updates read the
/// averages. Each rank's loss is the mean over its rows, so the average over equal shards is
/// the gradient of the mean over all of them: one step of the whole batch.
Expected<void> appendTrainingStep(Graph& g, const TrainConfig& cfg, const std::string& logitsOutput = "logits",
                                  int ranks = 1);

/// The "autodiff" pass: appendTrainingStep with ctx.train and the output "logits". Without a
/// training configuration (ctx.train null) it leaves the graph unchanged.
std::unique_ptr<Pass> createAutodiffPass();

}  // namespace shoal
