// shoal's public API: build a model with named layers (or load a pipeline), open a Session
// on a device to run it at any batch size, or give it a loss and an optimizer in a Trainer
// and train it on the app's own tensors. An embedding app includes this header and nothing
// else. docs/API.md has a tour and the ONNX Runtime / LibTorch correspondence.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data.h"
#include "error.h"
#include "tensor.h"
#include "train.h"
#include "types.h"

namespace shoal {

class Graph;          // the IR (internal)
class ModelPrograms;  // a model's compiled programs on a device (internal)
struct Pipeline;      // a loaded pipeline (internal)
struct TrainerState;  // a Trainer's state (internal)

enum class Activation { None, Relu, Sigmoid, Tanh, Softmax };

/// A value being built: returned by GraphBuilder methods, passed back into them.
class Var {
 public:
  Var() = default;
  bool valid() const { return id_ >= 0; }

 private:
  friend class GraphBuilder;
  explicit Var(int id) : id_(id) {}
  int id_ = -1;
};

// Every layer takes a `name`: its parameters are `<name>.weight` and `<name>.bias` (the
// names checkpoints use, as in a pipeline, where the node id is the name). Left empty, the
// name is `<kind>_<k>`, k counting the unnamed layers of that kind from 0 (conv2d_0,
// conv2d_1, dense_0, maxpool2d_0, ...). Name the layers whose weights you save: a default
// name moves when an unnamed layer of the same kind is inserted before it.

struct Conv2dOptions {
  int64_t strideH = 1, strideW = 1;
  std::string padding = "valid";  ///< "valid" or "same"
  int64_t dilationH = 1, dilationW = 1;
  int64_t groups = 1;  ///< channel groups: weight [filters, C/groups, kh, kw]; groups = C is depthwise
  bool bias = true;
  Activation activation = Activation::None;
  std::string name{};
};

struct DenseOptions {
  Activation activation = Activation::None;
  bool bias = true;
  std::string name{};
};

struct Pool2dOptions {
  int64_t strideH = 0, strideW = 0;  ///< 0: the window size (Keras and PyTorch)
  std::string name{};
};

/// A built model: an IR graph with named inputs and outputs. The leading extent of each
/// (non-scalar) input is its batch: a Session runs the model at any batch size.
class Model {
 public:
  /// The IR text of the model.
  std::string ir() const;
  /// Names and types of the inputs the model expects (at the batch size it was built with).
  std::vector<std::pair<std::string, TensorType>> inputs() const;
  /// Names of the outputs.
  std::vector<std::string> outputs() const;
  /// Names and types of the parameters, in program order ("conv2d_0.weight", ...).
  std::vector<std::pair<std::string, TensorType>> parameters() const;

 private:
  friend class GraphBuilder;
  friend class Session;
  friend class Trainer;
  friend class LoadedPipeline;
  std::shared_ptr<const Graph> graph_;
};

/// Builds a model layer by layer. Errors (bad shapes, bad arguments, a name used twice) are
/// recorded and returned by build(), which names the layer; calls after an error are ignored.
class GraphBuilder {
 public:
  explicit GraphBuilder(std::string name = "model");
  ~GraphBuilder();
  GraphBuilder(const GraphBuilder&) = delete;
  GraphBuilder& operator=(const GraphBuilder&) = delete;

  /// A model input fed by the caller; the leading extent is the batch the model is built
  /// for (a Session accepts any other).
  Var input(const std::string& name, TensorType type);
  /// A literal tensor.
  Var constant(const std::string& name, const Tensor& value);
  /// conv2d with its own weight ([filters, C, kh, kw], Glorot-uniform) and bias (zeros).
  Var conv2d(Var x, int64_t filters, int64_t kernelH, int64_t kernelW, const Conv2dOptions& opts = {});
  /// dense with its own weight ([units, in], Glorot-uniform) and bias (zeros), over [batch, in]
  /// or [batch, tokens, in] (the last axis, as torch.nn.Linear).
  Var dense(Var x, int64_t units, const DenseOptions& opts = {});
  Var dense(Var x, int64_t units, Activation act, bool bias = true, const std::string& name = "");
  Var maxPool2d(Var x, int64_t kernelH, int64_t kernelW, const Pool2dOptions& opts = {});
  Var maxPool2d(Var x, int64_t kernelH, int64_t kernelW, int64_t strideH, int64_t strideW = 0);
  Var avgPool2d(Var x, int64_t kernelH, int64_t kernelW, const Pool2dOptions& opts = {});
  Var avgPool2d(Var x, int64_t kernelH, int64_t kernelW, int64_t strideH, int64_t strideW = 0);
  Var flatten(Var x, const std::string& name = "");
  /// A reshape; a leading extent equal to the batch follows the batch when it changes.
  Var reshape(Var x, Shape shape, const std::string& name = "");
  Var activation(Var x, Activation act, const std::string& name = "");
  Var relu(Var x, const std::string& name = "") { return activation(x, Activation::Relu, name); }
  Var add(Var a, Var b, const std::string& name = "");
  Var sub(Var a, Var b, const std::string& name = "");
  Var mul(Var a, Var b, const std::string& name = "");
  Var div(Var a, Var b, const std::string& name = "");
  Var matmul(Var a, Var b, bool transposeA = false, bool transposeB = false, const std::string& name = "");
  /// y = x * scale + shift.
  Var scale(Var x, double scale, double shift = 0.0, const std::string& name = "");
  /// y = (x - mean[c]) / std[c] per channel c (dimension 1), or with one value for all.
  Var normalize(Var x, std::vector<double> mean, std::vector<double> std, const std::string& name = "");
  /// Converts to another element type (e.g. u8 pixels to f32).
  Var cast(Var x, DType dtype, const std::string& name = "");
  void output(const std::string& name, Var v);

  /// The model, or the first error met while building.
  Expected<Model> build();

 private:
  struct Impl;
  Var binary(int kind, Var a, Var b, bool transposeA, bool transposeB, const std::string& name);
  std::unique_ptr<Impl> impl_;
};

/// How a Session or a Trainer compiles and runs (ONNX Runtime's SessionOptions).
struct SessionOptions {
  DeviceKind device = DeviceKind::Auto;
  bool tf32 = false;     ///< allow TF32 GEMMs on the GPU (the convolutions stay fp32; see precision)
  /// The matrix products' precision on the GPU (Precision); anything but Fp32 on the CPU is an
  /// error, and so is tf32 beside Bf16 or Fp16.
  Precision precision = Precision::Fp32;
  /// GPU: each implicit-GEMM convolution's tile and reduction slices (on the tensor cores, or in
  /// fp32 those large enough to run as GEMMs on the CUDA cores) timed on the device instead of
  /// taken from the cost model. The first compile of a model for a device times a few variants
  /// of it (seconds to a minute); the choice is kept in the kernel cache, so later ones only read
  /// it. On the CPU: an error.
  bool autotune = false;
  bool verbose = false;  ///< kernel-cache and compile reports on stderr
  /// CPU threads for the CPU backend's kernels and BLAS (1 or more; unset: the cores this
  /// process may run on), as PyTorch's torch::set_num_threads. Process-wide while a program
  /// runs: the last session to run sets it. Results do not depend on it.
  std::optional<int> threads{};
  /// Parameter initialisation (Glorot-uniform weights, zero biases); unset: 0, or for a
  /// pipeline's Trainer the seed of its train stage.
  std::optional<uint64_t> seed{};
  /// Time every op of every run or step (Session::profile(), Trainer::profile()). On a GPU
  /// each launch is timed with CUDA events: steps then launch one by one, without a CUDA graph,
  /// and each is waited for -- slower; for seeing where the time goes, not for production.
  bool profile = false;
};

/// A model compiled for a device, with its parameters: what ONNX Runtime calls a session.
/// run() takes named inputs at any batch size (the leading extent of every non-scalar
/// input; all inputs agree on it): the program for the batch the model was built with is
/// compiled up front, the program for any other batch size on first use, then cached; all
/// share one set of parameters. Copies of a Session share the model and its parameters.
class Session {
 public:
  Session() = default;
  /// Compiles `model` for opts.device (passes, then NVRTC or the CPU interpreter) and
  /// initialises its parameters from opts.seed.
  static Expected<Session> create(const Model& model, const SessionOptions& opts = {});
  /// The same for a model file: a .mmd pipeline (its model part) or IR text.
  static Expected<Session> create(const std::string& path, const SessionOptions& opts = {});

  /// "cpu" or "cuda:0 NVIDIA H100 80GB HBM3".
  std::string device() const;
  /// Names and types of the inputs (at the batch size the model was built with).
  std::vector<std::pair<std::string, TensorType>> inputs() const;
  std::vector<std::string> outputs() const;
  /// Feeds named inputs (host tensors, converted to the declared element types), returns
  /// named outputs (host copies).
  Expected<TensorMap> run(const TensorMap& inputs);
  /// Parameters by name ("conv2d_0.weight", ...): host copies.
  std::map<std::string, Tensor> parameters();
  /// Overwrites parameters by name; every parameter must be given, with its shape.
  Expected<void> setParameters(const TensorMap& values);
  /// Loads parameters from a safetensors checkpoint (names and shapes must match; extra
  /// tensors such as optimizer state are ignored).
  Expected<void> loadWeights(const std::string& path);
  /// Saves parameters to a safetensors checkpoint (written atomically), PyTorch layouts.
  Expected<void> saveWeights(const std::string& path);
  /// How many programs (batch sizes) this session has compiled so far.
  int64_t compiledBatchSizes() const;
  /// With SessionOptions::profile: the time per op kind of the runs so far, slowest first
  /// (on a GPU also the slowest launches with their nodes and kernels); "" otherwise.
  std::string profile() const;

 private:
  friend class Trainer;
  std::shared_ptr<ModelPrograms> programs_;
};

/// The old name of Session.
using CompiledModel = Session;

/// A pipeline loaded from a .mmd file: model, data, training and output settings.
class LoadedPipeline {
 public:
  /// The model part (what Session::create takes).
  Model model() const;
  bool trains() const;
  /// The pipeline's loss and optimizer (its train stage; defaults without one).
  TrainingOptions trainingOptions() const;

 private:
  friend class Trainer;
  friend Expected<LoadedPipeline> loadPipeline(const std::string& path);
  std::shared_ptr<const Pipeline> pipeline_;
};

/// Loads a pipeline; the error's message holds every diagnostic, rendered clang-style.
Expected<LoadedPipeline> loadPipeline(const std::string& path);

/// A copy of host tensor `t` in the memory of GPU `device`, owned by the returned tensor (freed
/// with its last copy): an input Session::run() / Trainer::step() then copy on the device, for
/// apps without CUDA code of their own (those use Tensor::onDevice on their memory). Fails for
/// a tensor already on a GPU, or without a usable GPU.
Expected<Tensor> toDevice(const Tensor& t, int device = 0);

/// A model with a loss and an optimizer, compiled into one training step (forward, loss,
/// backward, update) on a device: torch's module + loss + optimizer in one object. Feed it
/// batches one at a time (step) or let fit() run epochs over a Dataset or a BatchSource;
/// evaluate() scores it; parameters(), saveWeights() and session() hand the trained model on.
/// The pipeline trainer of `shoal run` is this same loop over its IDX data set.
class Trainer {
 public:
  /// A trainer for a built model; parameters initialised from opts.seed.
  static Expected<Trainer> create(const Model& model, const TrainingOptions& training,
                                  const SessionOptions& opts = {});
  /// A trainer for a pipeline's model, loss and optimizer; fit() with no data then trains
  /// on the pipeline's data set with its settings and scores its test set.
  static Expected<Trainer> create(const LoadedPipeline& pipeline, const SessionOptions& opts = {});

  std::string device() const;
  /// With SessionOptions::profile: the time per op kind of the training steps so far (as
  /// Session::profile()); "" otherwise.
  std::string profile() const;

  /// One optimizer step on one batch: the model inputs plus "labels" (cross-entropy, or
  /// oneHotLabels) or "targets" (mean squared error, binary cross-entropy), any batch size,
  /// at the rate the schedule gives this step. Reads the loss back, so it waits for the
  /// device; fit() reads it once per epoch.
  Expected<StepStats> step(const TensorMap& batch);
  /// Epochs over `data` in shuffled batches (FitOptions: epochs, batch size, ...).
  Expected<TrainReport> fit(Dataset& data, const FitOptions& opts = {});
  /// Epochs over the batches an app's source yields.
  Expected<TrainReport> fit(BatchSource& batches, const FitOptions& opts = {});
  /// A pipeline's trainer: epochs over its data set, then its test set scored and its
  /// checkpoint written, as `shoal run` does.
  Expected<TrainReport> fit(const FitOptions& opts = {});
  /// Loss (and accuracy) of the current parameters over `data`, in batches of batchSize.
  Expected<EvalStats> evaluate(Dataset& data, int64_t batchSize = 500);

  /// The trained parameters by name (host copies).
  std::map<std::string, Tensor> parameters();
  /// Saves the parameters only (what Session::loadWeights and PyTorch's load_state_dict read).
  Expected<void> saveWeights(const std::string& path);
  /// Loads parameters (every one must be there); optimizer state is kept.
  Expected<void> loadWeights(const std::string& path);
  /// Saves parameters, optimizer state and the step count, to resume training.
  Expected<void> saveCheckpoint(const std::string& path);
  /// Loads what saveCheckpoint wrote (or parameters only: the optimizer then restarts).
  Expected<void> loadCheckpoint(const std::string& path);
  /// An inference Session over this trainer's parameters (shared: later steps show in it).
  Session session() const;

  /// The base learning rate (the optimizer's, or the last setLearningRate): the schedule's input.
  double learningRate() const;
  /// Changes the base learning rate from the next step on (free: the rate is an input of the
  /// compiled step). Fails for a rate that is not positive.
  Expected<void> setLearningRate(double lr);
  /// Optimizer steps taken so far (Adam's step count; restored by loadCheckpoint).
  int64_t steps() const;

 private:
  std::shared_ptr<TrainerState> state_;
};

}  // namespace shoal
