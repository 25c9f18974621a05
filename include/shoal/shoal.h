// shoal's public API: build a model (or load a pipeline), compile it for a device, feed named
// tensors, read named outputs, train. An embedding app includes this header and nothing else.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "error.h"
#include "tensor.h"
#include "train.h"
#include "types.h"

namespace shoal {

class Graph;       // the IR (internal)
class Executable;  // a compiled program (internal)
struct Pipeline;   // a loaded pipeline (internal)

/// Shorthand for tensor types: `shoal::f32({64, 784})`.
inline TensorType f32(Shape shape) { return {DType::F32, std::move(shape)}; }
inline TensorType f64(Shape shape) { return {DType::F64, std::move(shape)}; }

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

struct Conv2dOptions {
  int64_t strideH = 1, strideW = 1;
  std::string padding = "valid";  ///< "valid" or "same"
  int64_t dilationH = 1, dilationW = 1;
  int64_t groups = 1;  ///< channel groups: weight [filters, C/groups, kh, kw]; groups = C is depthwise
  bool bias = true;
  Activation activation = Activation::None;
};

/// A built model: an IR graph with named inputs and outputs.
class Model {
 public:
  /// The IR text of the model.
  std::string ir() const;
  /// Names and types of the inputs the model expects.
  std::vector<std::pair<std::string, TensorType>> inputs() const;
  /// Names of the outputs.
  std::vector<std::string> outputs() const;

 private:
  friend class GraphBuilder;
  friend class Session;
  friend class LoadedPipeline;
  std::shared_ptr<const Graph> graph_;
};

/// Builds a model layer by layer. Errors (bad shapes, bad arguments) are recorded and
/// returned by build(), which names the layer; calls after an error are ignored.
class GraphBuilder {
 public:
  explicit GraphBuilder(std::string name = "model");
  ~GraphBuilder();
  GraphBuilder(const GraphBuilder&) = delete;
  GraphBuilder& operator=(const GraphBuilder&) = delete;

  Var input(const std::string& name, TensorType type);
  /// A literal tensor.
  Var constant(const std::string& name, const Tensor& value);
  /// conv2d with its own weight ([filters, C, kh, kw], Glorot-uniform) and bias.
  Var conv2d(Var x, int64_t filters, int64_t kernelH, int64_t kernelW, const Conv2dOptions& opts = {});
  /// dense with its own weight ([units, in]) and bias.
  Var dense(Var x, int64_t units, Activation act = Activation::None, bool bias = true);
  Var maxPool2d(Var x, int64_t kernelH, int64_t kernelW, int64_t strideH = 0, int64_t strideW = 0);
  Var avgPool2d(Var x, int64_t kernelH, int64_t kernelW, int64_t strideH = 0, int64_t strideW = 0);
  Var flatten(Var x);
  Var reshape(Var x, Shape shape);
  Var activation(Var x, Activation act);
  Var relu(Var x) { return activation(x, Activation::Relu); }
  Var add(Var a, Var b);
  Var sub(Var a, Var b);
  Var mul(Var a, Var b);
  Var div(Var a, Var b);
  Var matmul(Var a, Var b, bool transposeA = false, bool transposeB = false);
  /// y = x * scale + shift.
  Var scale(Var x, double scale, double shift = 0.0);
  void output(const std::string& name, Var v);

  /// The model, or the first error met while building.
  Expected<Model> build();

 private:
  struct Impl;
  Var binary(int kind, Var a, Var b, bool transposeA, bool transposeB);
  std::unique_ptr<Impl> impl_;
};

/// A model compiled for a device, with its parameters.
class CompiledModel {
 public:
  /// "cpu" or "cuda:0 NVIDIA H100 80GB HBM3".
  std::string device() const;
  /// Feeds named inputs, returns named outputs.
  Expected<std::map<std::string, Tensor>> run(const std::map<std::string, Tensor>& inputs);
  /// Parameters by name (c1.weight, ...): host copies.
  std::map<std::string, Tensor> parameters();
  /// Loads parameters from a safetensors checkpoint (names and shapes must match).
  Expected<void> loadWeights(const std::string& path);
  /// Saves parameters to a safetensors checkpoint (written atomically).
  Expected<void> saveWeights(const std::string& path);

 private:
  friend class Session;
  std::shared_ptr<Executable> exe_;
};

/// A pipeline loaded from a .mmd file: model, data, training and output settings.
class LoadedPipeline {
 public:
  /// The model part (what compile() takes).
  Model model() const;
  bool trains() const;

 private:
  friend class Session;
  friend Expected<LoadedPipeline> loadPipeline(const std::string& path);
  std::shared_ptr<const Pipeline> pipeline_;
};

/// Loads a pipeline; the error's message holds every diagnostic, rendered clang-style.
Expected<LoadedPipeline> loadPipeline(const std::string& path);

struct SessionOptions {
  DeviceKind device = DeviceKind::Auto;
  bool tf32 = false;     ///< allow TF32 GEMMs on the GPU
  bool verbose = false;  ///< kernel-cache and compile reports on stderr
  uint64_t seed = 0;     ///< parameter initialisation
};

struct TrainSettings {
  std::optional<int64_t> epochs;  ///< overrides the pipeline's
  std::optional<uint64_t> seed;
  std::function<void(const EpochStats&)> onEpoch;
};

/// Compiles models and trains pipelines on one device.
class Session {
 public:
  explicit Session(SessionOptions opts = {});
  /// The device this session chose (auto resolves once, on first use).
  Expected<std::string> device();
  /// Runs the passes and builds the program for the device; parameters initialised from the seed.
  Expected<CompiledModel> compile(const Model& model);
  /// Trains a pipeline on its data and evaluates it on the test set.
  Expected<TrainReport> train(const LoadedPipeline& pipeline, const TrainSettings& settings = {});

 private:
  SessionOptions opts_;
};

}  // namespace shoal
