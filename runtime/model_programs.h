// The programs of one model on one device: inference programs and training steps per batch
// size (the learning rate is an input of the step), compiled on first use and cached, all
// sharing one set of parameters and optimizer state. Sessions, trainers and the pipeline trainer run
// through it, so a model answers at any batch size.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ir/pipeline.h"
#include "runtime/backend.h"

namespace shoal {

struct ModelProgramsOptions {
  ExecutableOptions exec;
  CompileOptions compile;  ///< disabled passes, memory limit (train is set per program)
  bool profile = false;    ///< time every op of the training steps (or, inference only, the inference programs)
  /// Data parallelism: the ranks this process trains with. With more than one, the training
  /// steps average their gradients over them (all_reduce); inference programs never talk.
  std::shared_ptr<Communicator> comm;
};

class ModelPrograms {
 public:
  /// Inference only: compiles `model` at the batch size it was built with (so errors show
  /// now). Parameters are zero until initialize().
  static Expected<std::unique_ptr<ModelPrograms>> create(std::shared_ptr<const Graph> model,
                                                         const DeviceSelection& device,
                                                         const ModelProgramsOptions& opts = {});
  /// Training: the training step of `cfg` over the output `output`, compiled first at
  /// `batch` (it owns the parameters and the optimizer state the other programs share).
  static Expected<std::unique_ptr<ModelPrograms>> createTraining(std::shared_ptr<const Graph> model,
                                                                 const TrainConfig& cfg, const std::string& output,
                                                                 int64_t batch, const DeviceSelection& device,
                                                                 const ModelProgramsOptions& opts = {});

  const Graph& model() const { return *model_; }
  /// The model's input nodes, in order (kept: the training loop asks every step).
  const std::vector<Node*>& inputs() const { return inputs_; }
  const DeviceSelection& device() const { return device_; }
  bool trains() const { return train_.has_value(); }
  /// The training configuration (trains() only); its lr is the current base learning rate.
  const TrainConfig& trainConfig() const { return *train_; }
  /// The output the loss reads ("logits" unless told otherwise).
  const std::string& trainedOutput() const { return output_; }
  bool crossEntropy() const { return train_ && train_->loss == "softmax_cross_entropy"; }
  /// The training step reads class labels ("labels"; it then also reports accuracy).
  bool readsLabels() const { return train_ && (crossEntropy() || train_->oneHotTargets); }
  /// True when the training step has a `step` input to feed (Adam's count; dropout's masks).
  bool readsStep() const { return readsStep_; }

  /// Initialises every parameter by its init attribute (seeded), or from the value the model
  /// carries for it (Graph::parameterValues), and every state to zero.
  void initialize(uint64_t seed);

  /// The batch size of `feed`: the leading extent its tensors for the model's (non-scalar)
  /// inputs agree on. Fails naming a missing input, a shape that differs from the model's
  /// beyond the batch, or inputs that disagree on the batch.
  Expected<int64_t> batchOf(const TensorMap& feed) const;
  /// The inference program for `batch` rows (compiled on first use).
  Expected<Executable*> inference(int64_t batch);
  /// Compiles what the inference program for `batch` rows needs and no device: on a GPU its
  /// kernels, NVRTC into the on-disk kernel cache, so inference(batch) later only reads the
  /// cache. Reads nothing inference()/trainingStep() change: safe on another thread while
  /// this one trains. Nothing to do on the CPU.
  Expected<void> precompileInference(int64_t batch) const;
  /// The training step for `batch` rows (compiled on first use).
  Expected<Executable*> trainingStep(int64_t batch);
  /// Every training step compiled so far (to collect what they accumulated).
  std::vector<Executable*> trainingSteps();
  /// The program that owns the parameters (the first one compiled).
  Executable& owner() { return *owner_; }

  /// Runs the model on `inputs` at their batch size.
  Expected<TensorMap> run(const TensorMap& inputs);

  /// The base learning rate (the schedule's input).
  double learningRate() const { return train_ ? train_->lr : 0.0; }
  void setLearningRate(double lr);

  /// Parameters by name (host copies), in the model's order.
  TensorMap parameters();
  /// Parameters and optimizer state by name (host copies).
  TensorMap persistent() { return owner_->readPersistent(); }
  /// Overwrites parameters (all must be in `values`, shapes checked; `what` prefixes errors)
  /// and any optimizer state `values` holds.
  Expected<void> setPersistent(const TensorMap& values, const std::string& what);
  /// Names and types of the parameters, and of the optimizer state, in program order.
  std::vector<std::pair<std::string, TensorType>> parameterTypes() const;
  std::vector<std::pair<std::string, TensorType>> stateTypes() const;

  bool profiling() const { return opts_.profile; }
  /// The profiled programs' time per op (Executable::profileSummary); with more than one
  /// (several batch sizes, or a training step and inference) each under its own heading.
  std::string profileSummary() const;
  /// The data-parallel ranks (null: this process alone).
  Communicator* communicator() const { return opts_.comm.get(); }
  /// How many programs are compiled (each batch size, each training step).
  int64_t programCount() const { return int64_t(inference_.size() + steps_.size()); }
  int64_t inferenceCount() const { return int64_t(inference_.size()); }
  /// Serialises run() / compile calls of sessions and trainers sharing these programs.
  std::recursive_mutex& mutex() { return mutex_; }

 private:
  ModelPrograms() = default;
  /// The model at `batch` rows through the passes (the training step of `train` when given).
  Expected<Program> program(int64_t batch, const TrainConfig* train) const;
  Expected<std::unique_ptr<Executable>> compile(int64_t batch, const TrainConfig* train);
  Expected<void> adopt(Executable& exe);

  std::shared_ptr<const Graph> model_;
  std::vector<Node*> inputs_;
  DeviceSelection device_;
  ModelProgramsOptions opts_;
  std::optional<TrainConfig> train_;
  std::string output_ = "logits";
  Executable* owner_ = nullptr;
  std::map<int64_t, std::unique_ptr<Executable>> inference_;
  std::map<int64_t, std::unique_ptr<Executable>> steps_;
  std::recursive_mutex mutex_;
  bool readsStep_ = false;
};

}  // namespace shoal
