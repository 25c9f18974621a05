// The dataflow IR: a Graph of Nodes (ops in program order) producing SSA Values.
#pragma once

#include <shoal/tensor.h>
#include <shoal/types.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ir/attributes.h"
#include "ir/ops.h"
#include "support/diagnostics.h"

namespace shoal {

class Node;

/// An SSA value: one result of one node, with a unique name and a static type.
class Value {
 public:
  const std::string& name() const { return name_; }
  const TensorType& type() const { return type_; }
  void setType(TensorType t) { type_ = std::move(t); }
  /// The node that defines this value.
  Node* def() const { return def_; }
  /// Which result of def() this is.
  int resultIndex() const { return resultIndex_; }

 private:
  friend class Graph;
  std::string name_;
  TensorType type_;
  Node* def_ = nullptr;
  int resultIndex_ = 0;
};

/// One op instance: operands, attributes, results and the pipeline location it came from.
class Node {
 public:
  OpKind kind() const { return kind_; }
  const OpInfo& info() const { return opInfo(kind_); }
  std::string_view opName() const { return shoal::opName(kind_); }

  const std::vector<Value*>& inputs() const { return inputs_; }
  Value* input(size_t i) const { return inputs_.at(i); }
  size_t numInputs() const { return inputs_.size(); }
  void setInput(size_t i, Value* v) { inputs_.at(i) = v; }

  size_t numResults() const { return results_.size(); }
  Value* result(size_t i = 0) const { return results_.at(i).get(); }

  Attrs& attrs() { return attrs_; }
  const Attrs& attrs() const { return attrs_; }
  const Location& loc() const { return loc_; }
  void setLoc(Location loc) { loc_ = std::move(loc); }

  /// A short description for diagnostics: "conv2d 'c1'" (the pipeline node id when known,
  /// else the first result's name).
  std::string describe() const;

 private:
  friend class Graph;
  OpKind kind_ = OpKind::Input;
  std::vector<Value*> inputs_;
  std::vector<std::unique_ptr<Value>> results_;
  Attrs attrs_;
  Location loc_;
};

/// A result to create: its name (made unique by the graph) and type.
struct ResultSpec {
  std::string name;
  TensorType type;
};

/// A dataflow graph: nodes in program order (a valid graph is topologically ordered), values
/// named uniquely. Nodes own their result values.
class Graph {
 public:
  explicit Graph(std::string name = "main") : name_(std::move(name)) {}
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  const std::string& name() const { return name_; }
  void setName(std::string name) { name_ = std::move(name); }

  /// Appends a node. Result names are made unique ("x", "x.1", ...). Attributes are taken as
  /// given; call fillDefaultAttrs() to complete them from the op schema.
  Node* addNode(OpKind kind, std::vector<Value*> inputs, Attrs attrs, std::vector<ResultSpec> results,
                Location loc = {});
  /// Like addNode, but inserted just before `pos` in program order.
  Node* insertNodeBefore(Node* pos, OpKind kind, std::vector<Value*> inputs, Attrs attrs,
                         std::vector<ResultSpec> results, Location loc = {});
  /// Removes a node whose results have no users.
  void eraseNode(Node* node);
  /// Removes several nodes at once (one pass over the graph, not one per node); their results
  /// must be used by no node that stays.
  void eraseNodes(const std::vector<Node*>& nodes);
  /// Points every use of `from` at `to`.
  void replaceAllUsesWith(Value* from, Value* to);
  /// Renames a value (made unique); returns the name it got.
  std::string renameValue(Value* v, std::string_view name);

  const std::vector<Node*>& nodes() const { return order_; }
  size_t size() const { return order_.size(); }
  /// Position of a node in program order (O(1)).
  size_t indexOf(const Node* node) const;
  /// Moves nodes into a new program order (must be a permutation of nodes()).
  void setOrder(std::vector<Node*> order);

  Value* findValue(std::string_view name) const;
  /// Nodes that use `v`, in program order (a node appears once per use).
  std::vector<Node*> users(const Value* v) const;
  /// A name not yet taken, derived from `base`.
  std::string uniqueName(std::string_view base) const;

  /// The `input` nodes and `output` nodes, in program order.
  std::vector<Node*> inputNodes() const;
  std::vector<Node*> outputNodes() const;
  /// The value fed to the output named `name`, or nullptr.
  Value* outputValue(std::string_view name) const;

  /// A deep copy (same names, same order, the same parameter values).
  std::unique_ptr<Graph> clone() const;

  /// Values some parameters (or state) start from, by value name, set by a frontend that reads
  /// trained weights (an ONNX model's initializers). A program initialises them from these
  /// instead of by their `init` rule. Not part of the IR text (like a checkpoint).
  const TensorMap& parameterValues() const;
  void setParameterValue(const std::string& name, Tensor value);

  /// Builds this graph again for another batch size, for a frontend that can (an ONNX model is
  /// imported again with its batch dimension bound to the new size, every shape it folded
  /// recomputed); rebatchGraph calls it instead of rewriting shapes. Empty for most graphs.
  using BatchRebuilder = std::function<Expected<std::unique_ptr<Graph>>(int64_t batch)>;
  const BatchRebuilder& batchRebuilder() const { return batchRebuilder_; }
  void setBatchRebuilder(BatchRebuilder rebuild) { batchRebuilder_ = std::move(rebuild); }

 private:
  Node* createNode(OpKind kind, std::vector<Value*> inputs, Attrs attrs, std::vector<ResultSpec> results, Location loc);
  void reindex();

  std::string name_;
  std::vector<std::unique_ptr<Node>> owned_;
  std::vector<Node*> order_;
  std::unordered_map<const Node*, size_t> index_;
  std::unordered_map<std::string, Value*> byName_;
  std::shared_ptr<TensorMap> parameterValues_;  // shared by clones until one is changed
  BatchRebuilder batchRebuilder_;
};

/// Fills every schema attribute the node lacks with its default (required ones stay missing
/// for the verifier to report).
void fillDefaultAttrs(Node& node);

/// The floating-point type a node computes in, for every backend: its result's when a `dtype`
/// attribute names a float result type (fused_elementwise over operands of other types, cast,
/// one_hot), else its first float operand's, else its first float result's, else f32.
DType computeType(const Node& n);

}  // namespace shoal
