// ONNX import: an ONNX model (ModelProto) becomes shoal IR. Initializers become parameters
// under their ONNX names (their values travel in Graph::parameterValues); shapes are static,
// so symbolic dimensions are bound at import and shape computations (Shape, Gather, Concat,
// ...) are folded. This header carries no protobuf type: without libonnx-dev the functions
// exist and fail with onnxUnavailableMessage().
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/pipeline.h"

namespace shoal {

/// True when shoal was built with ONNX support (libonnx-dev and libprotobuf-dev).
bool onnxAvailable();
/// What a build without ONNX says instead of importing.
std::string onnxUnavailableMessage();

/// True for a path that names an ONNX model (`.onnx`).
bool isOnnxPath(const std::string& path);

struct OnnxImportOptions {
  /// Shapes for graph inputs by name (the tensors a run feeds): they bind the inputs'
  /// symbolic dimensions and must agree with their fixed ones.
  std::map<std::string, Shape> inputShapes;
  /// Extents for named symbolic dimensions ("batch" -> 32).
  std::map<std::string, int64_t> dims;
  /// The extent of a symbolic dimension bound by neither (the batch a model is built for; a
  /// Session runs other batch sizes by rebatching).
  int64_t defaultDim = 1;
  /// Values of graph inputs for inputs that the import needs as constants (a Reshape's
  /// shape, an Expand's target, axes): the graph is then specialised to them, as it is to the
  /// input shapes. Inputs read as data stay inputs; their values here are not used.
  TensorMap inputValues;
  /// Run the ONNX checker over the model first (its message becomes the error).
  bool check = true;
};

/// Why an import failed: the error (naming the ONNX node, op type, domain and opset where
/// there is one) and whether it is a feature shoal lacks (an op, an element type, an
/// attribute value) rather than a malformed model. Conformance reports the first as a skip.
struct OnnxImportError {
  Error error;
  bool unsupported = false;
};

template <typename T>
using OnnxExpected = BasicExpected<T, OnnxImportError>;

/// What the model file says about itself.
struct OnnxModelInfo {
  int64_t irVersion = 0;
  std::map<std::string, int64_t> opsets;  ///< domain ("" for ai.onnx) -> version
  std::string producer;                   ///< "pytorch 2.11.0"
  std::vector<std::string> inputs;        ///< graph inputs that are not initializers, in order
  std::vector<std::string> outputs;
  /// The element types the model declares for them (nullopt: not declared, or not a tensor of
  /// a type shoal has), in the same order.
  std::vector<std::optional<DType>> inputTypes, outputTypes;
  /// The op types the graph uses ("Conv", or "com.example:Foo" outside ai.onnx), sorted.
  std::vector<std::string> opTypes;
  /// Every one of them has a mapping in shoal's op table (it may still be unsupported for
  /// some attribute values or element types).
  bool allOpsMapped = false;
  /// Why an input cannot be fed (a sequence, an element type shoal lacks), one message per
  /// such input; empty when every input is a tensor shoal has.
  std::vector<std::string> inputProblems;
};

/// Reads what a model file says about itself (names of its inputs and outputs, opsets)
/// without importing it.
OnnxExpected<OnnxModelInfo> readOnnxModelInfo(const std::string& path);

/// Imports an ONNX model file as a pipeline with only a model: inputs and outputs under the
/// ONNX names, parameters under the initializers' names with their values.
OnnxExpected<Pipeline> importOnnxFile(const std::string& path, const OnnxImportOptions& opts = {},
                                      OnnxModelInfo* info = nullptr);

/// Imports an ONNX model into `g` as one pipeline node: `inputs` feed the model's inputs in
/// order (their types bind its symbolic dimensions), value names are prefixed with
/// `prefix` + "/", parameters keep the initializers' names, and every op carries `loc`
/// (the pipeline node). Returns the values of the model's outputs, in order.
OnnxExpected<std::vector<Value*>> importOnnxInto(Graph& g, const std::string& path, const std::vector<Value*>& inputs,
                                                 const std::string& prefix, const Location& loc,
                                                 const OnnxImportOptions& opts = {}, OnnxModelInfo* info = nullptr);

/// A tensor file as in ONNX's test data (a serialized TensorProto, `.pb`).
struct NamedTensor {
  std::string name;  ///< the TensorProto's name ("" when it has none)
  Tensor tensor;
};
OnnxExpected<NamedTensor> readOnnxTensorFile(const std::string& path);
/// Writes a tensor as a serialized TensorProto.
Expected<void> writeOnnxTensorFile(const std::string& path, const std::string& name, const Tensor& t);

}  // namespace shoal
