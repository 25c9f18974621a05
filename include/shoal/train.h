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

/// The loss a Trainer minimises, over the model output TrainingOptions::output.
enum class Loss {
  /// Softmax cross-entropy of logits [batch, classes] against "labels" (class indices, [batch]),
  /// averaged over the batch: torch::nn::CrossEntropyLoss. Also reports accuracy.
  CrossEntropy,
  /// Mean of (output - targets)^2 over all elements, "targets" shaped like the output:
  /// torch::nn::MSELoss.
  MeanSquaredError,
};

/// Optimizers, with the defaults of the seed's Keras model (Adam eps 1e-7; PyTorch uses 1e-8).
namespace optim {
/// Adam (torch::optim::Adam); weightDecay adds weightDecay * w to the gradient.
struct Adam {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-7;
  double weightDecay = 0;
};
/// Stochastic gradient descent with optional momentum (torch::optim::SGD).
struct SGD {
  double lr = 0.01;
  double momentum = 0;
  double weightDecay = 0;
};
}  // namespace optim

using Optimizer = std::variant<optim::Adam, optim::SGD>;

/// What turns a model into a trainable program: the loss, the optimizer, the output trained.
struct TrainingOptions {
  Loss loss = Loss::CrossEntropy;
  Optimizer optimizer = optim::Adam{};
  std::string output = "logits";  ///< the model output the loss reads
};

/// Progress within an epoch, for progress bars.
struct StepProgress {
  int64_t epoch = 0, epochs = 0;
  int64_t step = 0, steps = 0;  ///< 1-based step within the epoch; steps is 0 when unknown
  double runningLoss = 0;  ///< NaN when the device has not reported it yet (read once per epoch)
};

/// One training step's figures (Trainer::step).
struct StepStats {
  double loss = 0;
  std::optional<double> accuracy{};  ///< cross-entropy only
  int64_t step = 0;                ///< the optimizer's step count after this step (1-based)
};

/// One epoch's figures.
struct EpochStats {
  int64_t epoch = 0;  ///< 1-based
  double loss = 0;    ///< mean training loss over the epoch (weighted by batch size)
  double accuracy = 0;  ///< mean training accuracy (cross-entropy; 0 otherwise)
  std::optional<double> validationAccuracy{};
  std::optional<double> validationLoss{};
  double learningRate = 0;  ///< the learning rate this epoch trained with
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
  /// Learning-rate schedule: the rate for each epoch (1-based), e.g. a step decay
  /// `[](int64_t e) { return e <= 3 ? 1e-3 : 1e-4; }`. Each distinct rate compiles its own
  /// training step once (cached), so keep the number of distinct values small.
  std::function<double(int64_t epoch)> learningRate{};
  std::function<void(const StepProgress&)> onStep{};
  std::function<void(const EpochStats&)> onEpoch{};
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
  std::map<std::string, Tensor> parameters;  ///< the trained parameters by name (host copies)
};

}  // namespace shoal
