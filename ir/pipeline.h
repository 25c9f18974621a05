// A whole pipeline: the model graph plus where its data comes from and how it is trained.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <shoal/train.h>

#include "support/diagnostics.h"
#include "ir/graph.h"

namespace shoal {

/// Where batches come from (`input: mnist path=... batch=64`).
struct DataSpec {
  std::string kind = "mnist";          ///< the only dataset reader so far: IDX files, MNIST names
  std::string path = "data/mnist-10k"; ///< folder with train-*/t10k-* IDX files (resolved at run time)
  int64_t batch = 64;
  std::string weights;                 ///< a safetensors checkpoint to load before running, if any
  Location loc;
};

/// How the model is trained (`train: loss=... optimizer=... lr=... epochs=...`). The
/// optimizer's defaults (AdamW's eps 1e-8 and weight decay 1e-2, say) are resolved where the
/// configuration is made (the train stage, the C++ API): these fields hold the values used.
struct TrainConfig {
  std::string loss = "softmax_cross_entropy";  ///< or "mse", "bce_with_logits"
  double labelSmoothing = 0.0;                 ///< softmax_cross_entropy
  /// mse, bce_with_logits: the targets are the one-hot rows of the input "labels" (class ids)
  /// instead of an input "targets" (a pipeline's data set gives labels).
  bool oneHotTargets = false;
  std::string optimizer = "adam";              ///< or "adamw", "sgd"
  double lr = 1e-3;                            ///< the base learning rate
  int64_t epochs = 5;
  int64_t batch = 64;
  double validation = 0.0;   ///< fraction of the training set held out for validation
  double momentum = 0.0;     ///< sgd
  bool nesterov = false;     ///< sgd with momentum
  double weightDecay = 0.0;  ///< adam, sgd: L2 (added to the gradient); adamw: decoupled
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-7;  ///< adam (Keras defaults), adamw
  double clipNorm = 0.0;     ///< gradient clipping by global norm (0: none)
  /// Dynamic loss scaling (for fp16 compute): the initial scale (PyTorch GradScaler's
  /// init_scale; a power of two keeps the scaled step exact); 0: off. Unset: 65536 when the
  /// training runs at Precision::Fp16, else off (ModelPrograms decides).
  std::optional<double> lossScale;
  int64_t lossScaleInterval = 2000;  ///< good steps in a row before the scale doubles
  LrSchedule schedule;       ///< over lr, evaluated every step (tMax 0: the fit's length)
  uint64_t seed = 0;
  bool shuffle = true;
  Location loc;
};

/// What to do with results (`output: metrics=accuracy plot=curve.svg checkpoint=model.safetensors`).
struct OutputSpec {
  std::vector<std::string> metrics;
  std::string plot;        ///< SVG of loss/accuracy per epoch
  std::string checkpoint;  ///< safetensors written after training
  Location loc;
};

/// The result of loading a pipeline file (or wrapping a built graph): the model as IR, plus
/// data, training and output settings when the pipeline names them.
struct Pipeline {
  std::string file;
  std::unique_ptr<Graph> model;       ///< inference graph: inputs -> ... -> output "logits"
  std::optional<DataSpec> data;       ///< absent for pipelines with literal inputs only
  std::optional<TrainConfig> train;   ///< present when the pipeline has a train stage
  OutputSpec output;
  std::string device = "auto";        ///< from a decision node: auto | cpu | cuda
  std::string inputName = "x";        ///< the model input the data source feeds
  std::string logitsName = "logits";  ///< the model output training and metrics use
};

/// The settings block IR text carries after the graph, so a dumped pipeline runs from its IR
/// (`shoal dump a.mmd > a.ir && shoal run a.ir`), one line per section with the attribute
/// syntax of op lines; sections a pipeline does not have are left out:
///
///   pipeline {
///     data {batch=32, kind="mnist", path="data/mnist-10k", weights=""}
///     train {batch=32, beta1=0.9, ..., loss="softmax_cross_entropy", lr=0.05, ...}
///     output {checkpoint="", metrics="accuracy", plot=""}
///     model {device="auto", input="x", output="logits"}
///   }
///
/// "" (no block at all) for a pipeline with no data, training or output settings and the
/// default model settings. Locations are not written: a section read back is located at its
/// line of the IR file, so errors about the data or the training name the IR file.
std::string printPipelineSettings(const Pipeline& p);

/// Sets section `section` of `p` from its attributes (as printPipelineSettings writes them;
/// keys left out keep their defaults), located at `loc`. Errors name the unknown section or
/// key, or the value of the wrong kind.
Expected<void> setPipelineSection(Pipeline& p, std::string_view section, const Attrs& attrs, const Location& loc);

}  // namespace shoal
