// Training and evaluation: one loop over a batch source (an app's tensors, an app's own
// source, or a pipeline's IDX data set), metrics, evaluation, checkpoints, reports.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ir/pipeline.h"
#include <shoal/data.h>
#include <shoal/train.h>
#include "runtime/backend.h"
#include "runtime/model_programs.h"

namespace shoal {

/// One fit, its settings resolved.
struct FitPlan {
  int64_t epochs = 1;
  int64_t stepsPerEpoch = 0;  ///< 0: until the source's epoch ends
  Dataset* validation = nullptr;
  int64_t evalBatch = 500;
  std::function<double(int64_t)> learningRate;
  std::function<void(const StepProgress&)> onStep;
  std::function<void(const EpochStats&)> onEpoch;
  /// With onStep: read the accumulated loss at most this often (seconds) to report a running
  /// loss; 0: once per epoch.
  double lossReadSeconds = 0;
  Location loc;  ///< where divergence is reported (a pipeline's train stage)
};

/// The training loop shared by pipelines and apps: for every epoch, the learning rate of the
/// schedule, the source's batches through the training step for their batch size (metrics
/// summed on the device, read once per epoch), the first non-finite loss reported with its
/// step, validation, callbacks. `step` is the optimizer's step count (Adam's t), advanced by
/// every step. The report holds the trained parameters.
Expected<TrainReport> fitPrograms(ModelPrograms& m, BatchSource& batches, const FitPlan& plan, int64_t& step);

/// One synchronous training step on `batch` (model inputs plus labels/targets) at the rate
/// the trainer's schedule gives step `step` (a cosine schedule needs its tMax here).
Expected<StepStats> trainStep(ModelPrograms& m, const TensorMap& batch, int64_t& step);

/// How evaluate scores: the output read, and the loss the trainer minimises (recomputed on
/// the host in double), against "labels" or "targets" as the loss reads them.
struct EvalSpec {
  std::string output = "logits";
  std::string loss = "softmax_cross_entropy";  ///< or "mse", "bce_with_logits"
  double labelSmoothing = 0;                   ///< softmax_cross_entropy
  bool oneHotTargets = false;                  ///< mse, bce_with_logits against one-hot labels
  bool wantLoss = true;  ///< also compute the loss (needs labels or targets)

  /// Scores class labels (accuracy too).
  bool readsLabels() const { return loss == "softmax_cross_entropy" || oneHotTargets; }
  /// The training configuration's loss over `output`.
  static EvalSpec of(const TrainConfig& cfg, const std::string& output, bool wantLoss);
  /// Accuracy only, against "labels" (the test set of a pipeline, a model without a loss).
  static EvalSpec accuracyOnly(const std::string& output);
};

/// Loss and accuracy of the model over `data`, through inference programs of `batch` rows
/// (the remainder batch has its own); loss in double on the host.
Expected<EvalStats> evaluateDataset(ModelPrograms& m, Dataset& data, int64_t batch, const EvalSpec& spec);

/// Saves parameters (program order) and, with `withState`, the optimizer state and step count.
Expected<void> saveCheckpoint(ModelPrograms& m, const std::string& path, int64_t step, bool withState);

/// Loads a checkpoint: every parameter must be there (shapes checked); optimizer state is
/// loaded when present, else zeroed. Returns the step to resume from (0 without state).
/// `onNote`, when set, hears which of the file's tensors the model does not have (optimizer
/// state of its own params only when `verbose`).
Expected<int64_t> loadCheckpoint(ModelPrograms& m, const std::string& path,
                                 const std::function<void(const std::string&)>& onNote = {}, bool verbose = false);

struct TrainOptions {
  DeviceKind device = DeviceKind::Auto;
  std::optional<int64_t> epochs;   ///< overrides the pipeline's
  std::optional<uint64_t> seed;    ///< overrides the pipeline's (initialisation and shuffling)
  std::optional<uint64_t> shuffleSeed;  ///< the shuffling alone (public Trainer::fit)
  std::optional<int64_t> batch;    ///< overrides the train stage's batch size
  std::optional<bool> shuffle;     ///< overrides the train stage's shuffle
  std::string weights;             ///< safetensors to load before training (resume) or inference
  int64_t stepsPerEpoch = 0;       ///< 0: the whole training set
  std::function<double(int64_t)> learningRate;
  ExecutableOptions exec;
  bool profile = false;            ///< time every op of the training step (report.profile)
  CompileOptions compile;          ///< disabled passes etc. (train is set by the trainer)
  std::function<void(const std::string&)> onNote;       ///< device choice and other notes
  std::function<void(const Error&)> onWarning;          ///< suspicious settings, with their place
  std::function<void(const StepProgress&)> onStep;
  std::function<void(const EpochStats&)> onEpoch;
  /// Data parallelism: this process is one rank of comm. The pipeline's batch is the global
  /// batch (it must split evenly over the ranks): each rank trains on its share of every
  /// batch, the gradients are averaged, the epoch's loss and accuracy are over every rank's
  /// rows, rank 0 alone writes the checkpoint. Null: a run on its own.
  std::shared_ptr<Communicator> comm;
  double lossReadSeconds = 0;  ///< FitPlan::lossReadSeconds
};

/// The device a pipeline runs on: `requested`, or the pipeline's decision node under auto.
Expected<DeviceSelection> pipelineDevice(const Pipeline& p, DeviceKind requested);

/// The training programs of a pipeline's model (its train stage), initialised from the seed
/// (opts.seed, else the train stage's), with opts.weights or the input's weights= loaded.
/// `step` is set to the step a loaded checkpoint resumes from.
Expected<std::unique_ptr<ModelPrograms>> createPipelineTrainer(const Pipeline& p, const DeviceSelection& device,
                                                               const TrainOptions& opts, int64_t& step);

/// Trains `m` (made by createPipelineTrainer) on the pipeline's data set with its settings
/// (opts override epochs and seed), evaluates the test set, saves the output stage's
/// checkpoint.
Expected<TrainReport> fitPipeline(ModelPrograms& m, const Pipeline& p, const TrainOptions& opts, int64_t& step);

/// createPipelineTrainer + fitPipeline: what `shoal run` does with a training pipeline.
Expected<TrainReport> trainPipeline(const Pipeline& pipeline, const TrainOptions& opts);

/// Scores a model over the pipeline's test set without training: weights from opts.weights,
/// else the input's weights=, else the output stage's checkpoint when that file exists.
Expected<TrainReport> evaluatePipeline(const Pipeline& pipeline, const TrainOptions& opts);

/// Resolves a data folder named in a pipeline: as given (relative to the working directory),
/// then relative to the pipeline file's folder and its parents, then in the installed data
/// (share/shoal next to the library's lib/ folder, found from the library's own location).
std::string resolveDataPath(const std::string& path, const std::string& pipelineFile);

/// A warning when the preprocessing maps the data input's 0..255 pixels far outside a unit
/// range (mean/std without scale=1/255, say), at the preprocess node; nullopt otherwise.
std::optional<Error> checkPreprocessing(const Pipeline& p);

/// The report as JSON (the CLI contract: device, epochs[], test_accuracy, train_seconds,
/// step_ms_median).
std::string trainReportJson(const TrainReport& r);

/// An SVG chart of loss (left axis) and training / validation accuracy (right axis, scaled to
/// the accuracies' range) per epoch, the legend above the plot.
std::string trainCurveSvg(const TrainReport& r);

}  // namespace shoal
