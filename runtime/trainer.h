// Training and evaluating a pipeline on its data: the loop, metrics, checkpoints, reports.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ir/pipeline.h"
#include <shoal/train.h>
#include "runtime/backend.h"

namespace shoal {

struct TrainOptions {
  DeviceKind device = DeviceKind::Auto;
  std::optional<int64_t> epochs;   ///< overrides the pipeline's
  std::optional<uint64_t> seed;    ///< overrides the pipeline's
  std::string weights;             ///< safetensors to load before training (resume) or inference
  ExecutableOptions exec;
  bool profile = false;            ///< time every op of the training step (report.profile)
  CompileOptions compile;          ///< disabled passes etc. (train is set by the trainer)
  std::function<void(const std::string&)> onNote;       ///< device choice and other notes
  std::function<void(const StepProgress&)> onStep;
  std::function<void(const EpochStats&)> onEpoch;
};

/// Trains `pipeline` (it must have data and a train stage) and evaluates it on the test set;
/// saves a checkpoint when the output stage asks for one.
Expected<TrainReport> trainPipeline(const Pipeline& pipeline, const TrainOptions& opts);

/// Runs a trained model (weights from opts.weights or the input's weights=) over the test set.
Expected<TrainReport> evaluatePipeline(const Pipeline& pipeline, const TrainOptions& opts);

/// Resolves a data folder named in a pipeline: as given (relative to the working directory),
/// then relative to the pipeline file's folder and its parents, then the installed data.
std::string resolveDataPath(const std::string& path, const std::string& pipelineFile);

/// The report as JSON (the CLI contract: device, epochs[], test_accuracy, train_seconds,
/// step_ms_median).
std::string trainReportJson(const TrainReport& r);

/// An SVG chart of loss and accuracy per epoch.
std::string trainCurveSvg(const TrainReport& r);

}  // namespace shoal
