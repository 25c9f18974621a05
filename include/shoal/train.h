// Public training vocabulary: devices, losses, optimizers, fit settings, per-step and
// per-epoch figures, and the report of a run.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "tensor.h"

namespace shoal {

class Dataset;

/// Where a program runs. Auto picks the GPU when one is usable, else the CPU interpreter.
/// Gpu and Cuda are one device kind (pipelines say gpu, the CLI accepts both).
enum class DeviceKind { Auto, Cpu, Cuda, Gpu = Cuda };

/// The precision of the GPU's matrix products (convolutions, GEMMs): operands rounded to
/// TF32, bfloat16 or float16 on tensor cores, fp32 accumulation. Tensors, parameters, gradients
/// and optimizer state stay fp32 (the master weights), so it changes the products' rounding,
/// not the model's memory. Fp32: fp32 products, no TF32 (on a GPU the larger 3 x 3 stride-1
/// convolutions sum in Winograd's F(4 x 4, 3 x 3), within fp32's rounding of the transforms;
/// SHOAL_CUDA_WINOGRAD=0 keeps the direct sums). The CPU computes Fp32 only.
enum class Precision { Fp32, Tf32, Bf16, Fp16 };

/// The loss a Trainer minimises, over the model output TrainingOptions::output.
enum class Loss {
  /// Softmax cross-entropy of logits [batch, classes] against "labels" (class indices, [batch]),
  /// averaged over the batch: torch::nn::CrossEntropyLoss (with
  /// TrainingOptions::labelSmoothing, its label_smoothing). Also reports accuracy.
  CrossEntropy,
  /// Mean of (output - targets)^2 over all elements, "targets" shaped like the output:
  /// torch::nn::MSELoss. With TrainingOptions::oneHotLabels the targets are the one-hot rows
  /// of "labels" instead (and accuracy is reported).
  MeanSquaredError,
  /// Binary cross-entropy of sigmoid(output) against float "targets" in [0, 1] shaped like
  /// the output, averaged over all elements, computed from the logits without overflow:
  /// torch::nn::BCEWithLogitsLoss. oneHotLabels works as for MeanSquaredError.
  BinaryCrossEntropyWithLogits,
};

/// Optimizers. Adam keeps the seed's Keras default eps 1e-7 (PyTorch's is 1e-8); AdamW has
/// PyTorch's defaults.
namespace optim {
/// Adam (torch::optim::Adam); weightDecay adds weightDecay * w to the gradient (L2).
struct Adam {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-7;
  double weightDecay = 0;
};
/// AdamW (torch::optim::AdamW): Adam with decoupled weight decay, w *= 1 - lr * weightDecay
/// before the Adam step.
struct AdamW {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weightDecay = 1e-2;
};
/// Stochastic gradient descent with optional momentum (torch::optim::SGD, dampening 0);
/// nesterov needs a positive momentum.
struct SGD {
  double lr = 0.01;
  double momentum = 0;
  double weightDecay = 0;
  bool nesterov = false;
};
}  // namespace optim

using Optimizer = std::variant<optim::Adam, optim::AdamW, optim::SGD>;

/// The kinds of learning-rate schedule (PyTorch's schedulers).
enum class ScheduleKind {
  Constant,  ///< the base rate
  Step,      ///< StepLR: base · gamma^floor(t / stepSize)
  Cosine,    ///< CosineAnnealingLR: etaMin + (base - etaMin)(1 + cos(pi t / tMax)) / 2
};

/// A learning-rate schedule, evaluated before every optimizer step t (0 for the first step
/// the trainer ever takes; checkpoints keep the count, so a resumed run continues the
/// schedule): PyTorch's semantics with scheduler.step() called after every optimizer.step(),
/// so every length counts optimizer steps. The rate is an input of the compiled training
/// step: changing it never recompiles.
///
/// With warmup W > 0 the first W steps ramp linearly to the base rate, base · (t + 1) / W
/// (PyTorch's LinearLR(start_factor=1/W, total_iters=W-1)), and the schedule then starts at
/// its own step 0 (SequentialLR with milestone W).
struct LrSchedule {
  ScheduleKind kind = ScheduleKind::Constant;
  int64_t stepSize = 0;  ///< Step: steps between decays (positive)
  double gamma = 0.1;    ///< Step: the decay factor
  /// Cosine: the half period in steps; 0 (a fit only): the fit's steps after the warm-up, so
  /// the rate reaches etaMin as the fit ends. The rate rises again past tMax, as PyTorch's.
  int64_t tMax = 0;
  double etaMin = 0;   ///< Cosine: the lowest rate
  int64_t warmup = 0;  ///< linear warm-up steps before the schedule (0: none)

  /// The rate of step t (0-based) from base rate `base`. tMax must be resolved (> 0) for
  /// Cosine.
  double rate(double base, int64_t t) const;
};

/// What turns a model into a trainable program: the loss, the optimizer, the output trained,
/// gradient clipping and the learning-rate schedule.
struct TrainingOptions {
  Loss loss = Loss::CrossEntropy;
  Optimizer optimizer = optim::Adam{};
  std::string output = "logits";  ///< the model output the loss reads
  /// CrossEntropy: the weight e of the uniform distribution mixed into the one-hot target,
  /// (1 - e)·onehot + e/classes, in [0, 1] (PyTorch's label_smoothing).
  double labelSmoothing = 0;
  /// MeanSquaredError, BinaryCrossEntropyWithLogits: the batch gives "labels" (class indices,
  /// [batch]) and the targets are their one-hot rows of the output's width.
  bool oneHotLabels = false;
  /// Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_, 2-norm): every gradient
  /// is scaled by min(1, clipNorm / (norm + 1e-6)), norm over all parameters' gradients
  /// together, inside the training step. 0: no clipping.
  double clipNorm = 0;
  /// Dynamic loss scaling (PyTorch's GradScaler, for fp16 compute): the backward pass starts
  /// from loss · scale; the updates unscale the gradients, and skip a step whose scaled
  /// gradients overflowed (weights and optimizer state unchanged), halving the scale; after
  /// lossScaleInterval good steps in a row the scale doubles. The value is the initial scale
  /// (a power of two, such as 65536, keeps a step that does not overflow exactly the unscaled
  /// step); 0: off. Unset: 65536 with Precision::Fp16, off otherwise. Adam's step count (fed by
  /// the host) still advances on a skipped step.
  std::optional<double> lossScale{};
  int64_t lossScaleInterval = 2000;
  /// The learning-rate schedule over the optimizer's rate (the base; see
  /// FitOptions::learningRate and Trainer::setLearningRate).
  LrSchedule schedule{};
};

/// Progress within an epoch, for progress bars.
struct StepProgress {
  int64_t epoch = 0, epochs = 0;
  int64_t step = 0, steps = 0;  ///< 1-based step within the epoch; steps is 0 when unknown
  /// The mean loss over the steps since the previous read of the device's sums (see
  /// FitOptions::lossReadSeconds); NaN until the first read of the fit.
  double runningLoss = 0;
  int64_t examples = 0;  ///< examples of the epoch so far (this step's batch included)
};

/// One training step's figures (Trainer::step).
struct StepStats {
  double loss = 0;
  std::optional<double> accuracy{};  ///< when the loss reads class labels
  int64_t step = 0;                ///< the optimizer's step count after this step (1-based)
  double learningRate = 0;         ///< the rate this step used (the schedule's)
};

/// One epoch's figures.
struct EpochStats {
  int64_t epoch = 0;  ///< 1-based
  double loss = 0;    ///< mean training loss over the epoch (weighted by batch size)
  double accuracy = 0;  ///< mean training accuracy (when the loss reads class labels; 0 otherwise)
  std::optional<double> validationAccuracy{};
  std::optional<double> validationLoss{};
  double learningRate = 0;  ///< the learning rate of the epoch's last step
  double seconds = 0;
};

/// A model's figures over a dataset (Trainer::evaluate). The loss is recomputed on the host
/// in double precision from the outputs.
struct EvalStats {
  double loss = 0;
  std::optional<double> accuracy{};  ///< cross-entropy only: argmax of the output == label
  int64_t examples = 0;
};

/// How Trainer::fit runs. Unset values take the trainer's defaults: a pipeline's train stage,
/// or for a builder model epochs 1, batch size 64, shuffled, seed 0.
struct FitOptions {
  std::optional<int64_t> epochs{};     ///< 0 trains nothing (a pipeline is still evaluated)
  std::optional<int64_t> batchSize{};  ///< when fitting a Dataset
  std::optional<bool> shuffle{};       ///< when fitting a Dataset
  /// Of the shuffling; each fit() starts its permutations afresh from it (initialisation is
  /// SessionOptions::seed).
  std::optional<uint64_t> seed{};
  int64_t stepsPerEpoch = 0;         ///< stop an epoch after this many steps (0: the whole data)
  Dataset* validation = nullptr;     ///< evaluated after every epoch (must outlive fit)
  /// The base learning rate of each epoch (1-based), e.g. a step decay
  /// `[](int64_t e) { return e <= 3 ? 1e-3 : 1e-4; }`; TrainingOptions::schedule applies on
  /// top of it (with the default constant schedule, it is the rate). The rate is an input of
  /// the training step, so any number of distinct rates costs nothing.
  std::function<double(int64_t epoch)> learningRate{};
  std::function<void(const StepProgress&)> onStep{};
  std::function<void(const EpochStats&)> onEpoch{};
  /// With onStep: read the loss the device has summed at most this often (seconds), so
  /// StepProgress::runningLoss follows the training. 0: only at the end of each epoch (a GPU
  /// then never waits inside an epoch). Each read waits for the queued steps.
  double lossReadSeconds = 0;
  std::string weights{};  ///< a checkpoint to load first, to resume (as Trainer::loadCheckpoint)
};

/// The old name of FitOptions (Session::train took it).
using TrainSettings = FitOptions;

/// What a training (or evaluation) run reports.
struct TrainReport {
  std::string device{};  ///< "cpu" or "cuda:0 NVIDIA H100 80GB HBM3"
  std::vector<EpochStats> epochs;
  std::optional<double> testAccuracy{};  ///< pipelines: on their test set
  double trainSeconds = 0;
  double stepMsMedian = 0;
  int64_t steps = 0;       ///< optimizer steps this run took
  std::string checkpoint{};  ///< where parameters were saved, if anywhere
  std::string profile{};     ///< per-op time of the training step, when profiling was asked for
  /// On a GPU: whether the training step ran as a captured CUDA graph, and if not, why.
  std::optional<bool> cudaGraph{};
  std::string cudaGraphError{};
  std::map<std::string, Tensor> parameters;  ///< the trained parameters by name (host copies)
};

}  // namespace shoal
