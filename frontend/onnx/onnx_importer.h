// Private to frontend/onnx: the importer's state, the context an op's lowering sees, and the
// op table's interface. Only the files of frontend/onnx include the ONNX protobuf headers.
//
// Errors inside the importer are thrown as ImportFailure and caught at its entry points
// (importOnnxFile, importOnnxInto), which return them as values: nothing throws across the API.
// That keeps each op's lowering a straight line of checks and emits.
#pragma once

#include <onnx/onnx_pb.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/onnx/onnx_import.h"
#include "ir/graph.h"

namespace shoal::onnx_import {

/// An import error: a feature shoal lacks (`unsupported`) or a malformed model.
struct ImportFailure {
  std::string message;
  bool unsupported = false;
};

[[noreturn]] void throwUnsupported(std::string message);
[[noreturn]] void throwInvalid(std::string message);

// ---- tensors (onnx_tensor.cpp) -----------------------------------------------------------

/// The shoal element type of an ONNX TensorProto data type; nullopt when shoal has none.
std::optional<DType> dtypeFromOnnx(int32_t elemType);
/// The ONNX data type of a shoal element type.
int32_t onnxFromDtype(DType t);
/// "float", "int64", "float16", ... (ONNX's spelling, for messages).
std::string onnxTypeName(int32_t elemType);
/// The tensor a TensorProto holds (raw_data, typed fields, or external data relative to
/// `baseDir`). Throws ImportFailure (unsupported for element types shoal lacks).
Tensor tensorFromProto(const onnx::TensorProto& t, const std::string& baseDir);
/// Fills `out` with `t` (raw_data, little-endian).
void tensorToProto(const Tensor& t, const std::string& name, onnx::TensorProto* out);

// ---- the importer --------------------------------------------------------------------------

/// An ONNX value during import: an IR value, a tensor known at import time, or both.
struct Slot {
  TensorType type;
  Value* value = nullptr;       ///< the IR value, once materialised
  std::optional<Tensor> known;  ///< the value itself, when known at import time
  /// A float initializer: a trainable parameter, materialised as a param under its ONNX name,
  /// and never folded into a constant (it would stop being trained).
  bool parameter = false;
  /// A graph input's value given at import (OnnxImportOptions::inputValues): what
  /// NodeContext::constant reads when an op needs the input at import time.
  std::optional<Tensor> fed;
  /// A sequence (SequenceConstruct, SplitToSequence, ...): a list known at import of IR values,
  /// which sequence ops rearrange and SequenceAt reads; never a tensor itself.
  std::optional<std::vector<Value*>> sequence;
  /// The ONNX element type when it is one shoal only stores (float16, int8, uint32, ...; see
  /// storageOnly): `type`, `value` and `known` hold computeDType of it instead, and only the
  /// ops whose mapping keeps values within the type (OpMapping::storage) may read it.
  std::optional<DType> storage;

  /// The element type ONNX gives the value.
  DType onnxDType() const { return storage ? *storage : type.dtype; }
};

/// A slot holding `t`, widened to its compute type when `t` is of a storage type.
Slot knownSlot(Tensor t);

class Importer;

/// The ONNX node being lowered, as its lowering function sees it. Inputs and outputs are by
/// ONNX position; an absent optional input has an empty name.
class NodeContext {
 public:
  NodeContext(Importer& imp, const onnx::NodeProto& node, int64_t opset);

  const onnx::NodeProto& proto() const { return node_; }
  const std::string& opType() const { return node_.op_type(); }
  int64_t opset() const { return opset_; }

  // -- inputs
  size_t numInputs() const { return size_t(node_.input_size()); }
  /// Input i is given (present and named).
  bool has(size_t i) const { return i < numInputs() && !node_.input(int(i)).empty(); }
  const Slot& slot(size_t i) const;
  const TensorType& type(size_t i) const { return slot(i).type; }
  const Shape& shape(size_t i) const { return slot(i).type.shape; }
  DType dtype(size_t i) const { return slot(i).type.dtype; }
  int64_t rank(size_t i) const { return slot(i).type.rank(); }
  /// The IR value of input i (a constant or param is materialised on first use).
  Value* value(size_t i);
  /// Input i as persistent non-trainable state when it is a float initializer (a batch
  /// norm's running statistics: updated by the training form, never by gradients); else value(i).
  Value* stateValue(size_t i);
  /// Input i's tensor when known at import time (and not a parameter); else null.
  const Tensor* known(size_t i) const;
  /// Input i's tensor, which the lowering needs at import time (a shape, axes, pads): known
  /// values and initializers qualify; anything computed at run time is unsupported.
  const Tensor& constant(size_t i, std::string_view what) const;
  std::vector<int64_t> constantInts(size_t i, std::string_view what) const;
  std::vector<double> constantFloats(size_t i, std::string_view what) const;
  /// Every given input is known at import time (so the node may be folded).
  bool allInputsKnown() const;

  // -- outputs
  size_t numOutputs() const { return size_t(node_.output_size()); }
  bool hasOutput(size_t i) const { return i < numOutputs() && !node_.output(int(i)).empty(); }
  /// Output i is read by a later node or is a graph output.
  bool outputUsed(size_t i) const;
  void setOutput(size_t i, Value* v);
  void setKnownOutput(size_t i, Tensor t);
  /// Input i as a sequence (invalid when it is a tensor).
  const std::vector<Value*>& sequence(size_t i) const;
  void setSequenceOutput(size_t i, std::vector<Value*> elements);
  /// Output i is the value a subgraph computed (If, Loop, Scan), whatever it holds.
  void setSlotOutput(size_t i, const Slot& s);

  // -- attributes (each one a lowering reads is marked; an attribute no lowering read makes
  //    the node unsupported, so an attribute is never silently ignored)
  bool hasAttr(const std::string& name) const;
  int64_t attrInt(const std::string& name, std::optional<int64_t> dflt = std::nullopt);
  double attrFloat(const std::string& name, std::optional<double> dflt = std::nullopt);
  std::string attrString(const std::string& name, std::optional<std::string> dflt = std::nullopt);
  std::vector<int64_t> attrInts(const std::string& name, std::optional<std::vector<int64_t>> dflt = std::nullopt);
  std::vector<double> attrFloats(const std::string& name, std::optional<std::vector<double>> dflt = std::nullopt);
  std::vector<std::string> attrStrings(const std::string& name,
                                       std::optional<std::vector<std::string>> dflt = std::nullopt);
  Tensor attrTensor(const std::string& name);
  /// A subgraph attribute (If's branches, Loop's and Scan's body).
  const onnx::GraphProto& attrGraph(const std::string& name);
  /// Marks an attribute read without using it (documented as having no effect here).
  void ignoreAttr(const std::string& name);
  /// The attributes present that no lowering read.
  std::vector<std::string> unreadAttrs() const;

  // -- emitting IR
  /// Adds an op, its result named after output 0 (+ `suffix` for intermediates), shapes
  /// inferred. A shape error is the model's (or the mapping's) fault: invalid.
  Value* emit(OpKind kind, std::vector<Value*> inputs, Attrs attrs = {}, const std::string& suffix = "");
  /// x with a new shape (a view), or x itself when the shape is the same.
  Value* reshape(Value* x, const Shape& shape, const std::string& suffix = "reshape");
  /// A literal tensor in the graph.
  Value* constantValue(const Tensor& t, const std::string& suffix = "const");
  /// A scalar literal of `dtype`.
  Value* scalar(double v, DType dtype, const std::string& suffix = "const");

  // -- errors
  [[noreturn]] void unsupported(const std::string& what) const;
  [[noreturn]] void invalid(const std::string& what) const;
  /// Unsupported unless input i is f32 or f64.
  void requireFloat(size_t i) const;
  /// Normalises an axis against a rank (negative counts from the back); invalid when out of range.
  int64_t axis(int64_t a, int64_t rank) const;

  Importer& importer() { return imp_; }
  const Location& loc() const { return loc_; }

 private:
  friend class Importer;
  Importer& imp_;
  const onnx::NodeProto& node_;
  int64_t opset_;
  Location loc_;
  std::set<std::string> read_;
  const onnx::AttributeProto* findAttr(const std::string& name) const;
  const onnx::AttributeProto& needAttr(const std::string& name, int type);
};

/// What an op mapping does with inputs of a storage type (float16, int8, ...), which the
/// importer widens to their compute type (f32, i32, ...; computeDType).
enum class StorageUse : uint8_t {
  None,       ///< refused: the op could leave the type's range or precision (Add on int8 wraps)
  Preserves,  ///< the result is an operand value or lies between them (Min, Max, Clip, MaxPool,
              ///< Mod): exact in the wider type, and the outputs keep the input's storage type
  Passes,     ///< Identity: the output is the input itself
  Converts,   ///< Cast and CastLike: any input; the output's type is the target's
  Exponent,   ///< Pow: the exponent only (converted to the base's type)
};

/// How an ONNX op becomes shoal IR.
struct OpMapping {
  std::string_view opType;
  /// Emits the IR for the node (or defines its outputs as known tensors).
  void (*lower)(NodeContext&);
  /// Computes the outputs at import time when every input is known (shape arithmetic);
  /// returns false to leave the node to `lower`. May be null.
  bool (*fold)(NodeContext&) = nullptr;
  /// Only folded: shoal has no op for the values at run time (so a model using it on run-time
  /// values is unsupported).
  bool foldOnly = false;
  /// Inputs of a storage type: see StorageUse.
  StorageUse storage = StorageUse::None;
};

/// The op table (onnx_ops.cpp), by ONNX op type (domain ai.onnx).
const OpMapping* findOpMapping(std::string_view opType);
/// Every ONNX op type the table maps.
std::vector<std::string> mappedOpTypes();

/// The model-level state of one import.
class Importer {
 public:
  Importer(Graph& g, const onnx::ModelProto& model, std::string modelPath, const OnnxImportOptions& opts);

  /// Declares the graph's inputs as IR inputs (standalone import) ...
  void declareInputs();
  /// ... or binds them to values of a pipeline (importOnnxInto).
  void bindInputs(const std::vector<Value*>& values);
  /// Lowers every node in order.
  void lowerNodes();
  /// Marks the graph outputs (standalone import).
  void declareOutputs();
  /// The IR values of the graph outputs, in order.
  std::vector<Value*> outputValues();

  Graph& graph() { return g_; }
  Slot& slot(const std::string& name, const onnx::NodeProto* user);
  /// Materialises a slot as an IR value (a param for a parameter, `state` when asked, else a
  /// constant).
  Value* materialize(const std::string& name, Slot& s, bool asState = false);
  void define(const std::string& name, Slot s);
  bool isUsed(const std::string& name) const { return uses_.count(name) != 0; }
  std::string valueName(const std::string& onnxName) const { return prefix_ + onnxName; }
  const std::string& modelPath() const { return path_; }
  const std::string& modelDir() const { return dir_; }
  Location nodeLocation(const onnx::NodeProto& n, int index) const;
  /// "node 'conv1' (Conv, domain ai.onnx, opset 11)".
  std::string describe(const onnx::NodeProto& n, int64_t opset) const;
  void setPrefix(std::string prefix, Location loc) {
    prefix_ = std::move(prefix);
    pipelineLoc_ = std::move(loc);
  }
  /// The shapes the graph inputs are bound to, by ONNX name.
  std::map<std::string, Shape> boundInputShapes() const;
  /// Lowers a subgraph's nodes into the graph (If's branch, one step of an unrolled Loop or
  /// Scan): its formal inputs bound to `inputs`, its own values renamed with `prefix` (so each
  /// step's are distinct), the enclosing graphs' values read as they are. Returns the names
  /// its outputs have in the importer.
  std::vector<std::string> inlineGraph(const onnx::GraphProto& body, const std::vector<Slot>& inputs,
                                       const std::string& prefix, int64_t opset);
  /// A prefix no other value has, for a node's inlined subgraph.
  std::string uniquePrefix(const onnx::NodeProto& n);
  /// Why a value needed at import time is not known then: the first node on its way back that
  /// shoal computes only at run time from values it knows ("'/Sqrt' (Sqrt) computes it from
  /// values known at import, which shoal does not fold"), or the graph input it depends on.
  std::string runTimeOrigin(const std::string& name) const;
  /// Shapes ONNX's shape inference found (to cross-check shoal's); empty when it failed.
  void setInferredTypes(std::map<std::string, onnx::TypeProto> types) { inferred_ = std::move(types); }

 private:
  TensorType inputType(const onnx::ValueInfoProto& vi);
  void lowerNode(const onnx::NodeProto& n, int index, int64_t opset, int depth);
  /// Lowers an op through the function body ONNX defines for it (LayerNormalization, the
  /// losses, ...), its nodes renamed into the graph. False when the op has none.
  bool expandFunction(const onnx::NodeProto& n, int64_t opset, int depth);

  /// What a failed lowering attempt added (IR nodes, materialised and defined slots), to
  /// undo before trying the op's function body instead.
  struct Mark {
    size_t nodes, materialized, defined;
  };
  Mark mark() const { return {g_.size(), materializedLog_.size(), definedLog_.size()}; }
  void rollback(const Mark& m);
  void crossCheck(const onnx::NodeProto& n, int64_t opset, const std::string& name, const Slot& s);
  /// Unsupported when an input of a storage type reaches a mapping that does not take it.
  void checkStorageInputs(const onnx::NodeProto& n, int64_t opset, const OpMapping& m);
  /// The outputs of a mapping that preserves values keep its inputs' storage type.
  void propagateStorage(const onnx::NodeProto& n, const OpMapping& m);
  /// `v` in its compute type when it is of a storage type (a cast), recording that in `s`.
  Value* widen(const std::string& name, Value* v, Slot& s);

  Graph& g_;
  const onnx::ModelProto& model_;
  std::string path_, dir_;
  OnnxImportOptions opts_;
  std::string prefix_;
  std::optional<Location> pipelineLoc_;
  int64_t opset_ = 0;
  std::map<std::string, Slot> slots_;
  std::map<std::string, int> uses_;  // how many node inputs or graph outputs read a value
  std::map<std::string, onnx::TypeProto> inferred_;
  std::map<std::string, const onnx::TensorProto*> initializers_;
  std::vector<std::string> materializedLog_, definedLog_;
  /// The node that defined each value (for runTimeOrigin).
  struct Producer {
    std::string opType, node;
    std::vector<std::string> inputs;
  };
  std::map<std::string, Producer> producers_;
  int functionCount_ = 0;
  int inlineDepth_ = 0;       // subgraphs being inlined (nested control flow)
  int64_t inlinedNodes_ = 0;  // nodes inlined by control flow so far (bounded)
};

}  // namespace shoal::onnx_import
