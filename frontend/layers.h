// Layer constructors shared by the pipeline lowering and the C++ builder: each adds the
// params and ops of one layer to a graph, with shapes inferred as it goes.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace shoal::layers {

/// Adds one op, fills its default attributes and infers its result type. On a shape or
/// attribute error the node is removed again and the error (at `loc`) returned.
Expected<Value*> addOp(Graph& g, OpKind kind, std::vector<Value*> inputs, Attrs attrs, const std::string& name,
                       const Location& loc);

/// A graph input fed by the caller.
Value* input(Graph& g, const std::string& name, TensorType type, const Location& loc);
/// A trainable parameter named `name` ("c1.weight").
Value* param(Graph& g, const std::string& name, TensorType type, const std::string& init, const Location& loc);
/// A literal tensor.
Value* constant(Graph& g, const std::string& name, DType dtype, TensorLiteral value, const Location& loc);
/// Marks `v` as the graph output `name`.
void output(Graph& g, Value* v, const std::string& name, const Location& loc);

/// "relu", "sigmoid", "tanh", "softmax", "log_softmax", or "" / "none" / "linear" for none.
bool isActivationName(const std::string& name);
/// Applies an activation by name (none: returns x).
Expected<Value*> activation(Graph& g, Value* x, const std::string& act, const std::string& name, const Location& loc);

struct Conv2dSpec {
  int64_t filters = 0;
  int64_t kernelH = 3, kernelW = 3;
  int64_t strideH = 1, strideW = 1;
  int64_t dilationH = 1, dilationW = 1;
  int64_t groups = 1;                   ///< channel groups (filters and channels divisible by it)
  std::string padding = "valid";        ///< valid | same | explicit
  std::vector<int64_t> explicitPadding; ///< [top,left,bottom,right] when padding == "explicit"
  bool bias = true;
  std::string activation;               ///< applied after the conv ("" for none)
};
/// The checks conv2d and conv_transpose2d share, for the layer `who`: positive filters,
/// kernel, stride, dilation and groups; an NCHW input whose channels, like the filters, the
/// groups divide.
Expected<void> checkConvSpec(const std::string& who, const Conv2dSpec& s, const Value* x, const Location& loc);
/// conv2d with params `<id>.weight` ([filters, C/groups, kh, kw], Glorot-uniform) and
/// `<id>.bias` (zeros); the layer's final value is named `id`.
Expected<Value*> conv2d(Graph& g, Value* x, const std::string& id, const Conv2dSpec& spec, const Location& loc);

/// dense with params `<id>.weight` ([units, in], Glorot-uniform) and `<id>.bias` (zeros), over
/// [batch, in] or, like torch.nn.Linear over the last axis, [batch, tokens, in] (lowered to
/// reshape -> dense -> reshape: the op itself is rank 2).
Expected<Value*> dense(Graph& g, Value* x, const std::string& id, int64_t units, bool bias, const std::string& act,
                       const Location& loc);

/// maxpool2d / avgpool2d; stride defaults to the window (Keras and PyTorch); ceilMode and (the
/// average only) countIncludePad as PyTorch's ceil_mode and count_include_pad.
Expected<Value*> pool2d(Graph& g, OpKind kind, Value* x, const std::string& id, std::vector<int64_t> kernel,
                        std::vector<int64_t> stride, std::vector<int64_t> padding, const Location& loc,
                        bool ceilMode = false, bool countIncludePad = true);

}  // namespace shoal::layers
