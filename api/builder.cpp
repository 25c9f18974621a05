// The public model builder (GraphBuilder) and Model, over the frontend's layer constructors.
#include <shoal/shoal.h>

#include <fmt/format.h>

#include "frontend/layers.h"
#include "ir/printer.h"
#include "ir/verifier.h"

namespace shoal {

// ---- Model ------------------------------------------------------------------------------

std::string Model::ir() const { return graph_ ? printGraph(*graph_) : std::string(); }

std::vector<std::pair<std::string, TensorType>> Model::inputs() const {
  std::vector<std::pair<std::string, TensorType>> out;
  if (graph_)
    for (Node* n : graph_->inputNodes()) out.push_back({n->attrs().getString("name"), n->result()->type()});
  return out;
}

std::vector<std::string> Model::outputs() const {
  std::vector<std::string> out;
  if (graph_)
    for (Node* n : graph_->outputNodes()) out.push_back(n->attrs().getString("name"));
  return out;
}

std::vector<std::pair<std::string, TensorType>> Model::parameters() const {
  std::vector<std::pair<std::string, TensorType>> out;
  if (graph_)
    for (Node* n : graph_->nodes())
      if (n->kind() == OpKind::Param) out.push_back({n->result()->name(), n->result()->type()});
  return out;
}

// ---- GraphBuilder -----------------------------------------------------------------------

struct GraphBuilder::Impl {
  std::unique_ptr<Graph> graph;
  std::vector<Value*> values;
  std::optional<Error> error;
  std::map<std::string, int> unnamed;  ///< per layer kind: how many took a default name

  Value* get(Var v, const char* what) {
    if (error) return nullptr;
    int id = v.id_;
    if (id < 0 || size_t(id) >= values.size()) {
      error = Error(std::string(what) + ": operand is not a value of this builder");
      return nullptr;
    }
    return values[size_t(id)];
  }
  /// Records a layer's result (or its error); returns the value's id, -1 after an error.
  int put(Expected<Value*> r) {
    if (error) return -1;
    if (!r) {
      error = r.error();
      return -1;
    }
    values.push_back(*r);
    return int(values.size()) - 1;
  }
  bool taken(const std::string& name) const {
    return graph->findValue(name) || graph->findValue(name + ".weight") || graph->findValue(name + ".bias");
  }
  /// The layer's name: the caller's (checked: well-formed, unused), or `<kind>_<k>` with k
  /// counting this kind's unnamed layers. Empty after an error.
  std::string name(const std::string& given, const std::string& kind) {
    if (error) return "";
    if (given.empty()) {
      std::string id;
      do id = fmt::format("{}_{}", kind, unnamed[kind]++);
      while (taken(id));
      return id;
    }
    for (char c : given)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' || c == '/')) {
        error = Error(fmt::format("{} '{}': a layer name holds letters, digits and _ . - / only", kind, given));
        return "";
      }
    if (taken(given)) {
      error = Error(fmt::format("{} '{}': the name is taken by another layer or value", kind, given));
      return "";
    }
    return given;
  }
  Location at(const std::string& id) const {
    Location loc;
    loc.node = id;
    return loc;
  }
};

namespace {
std::string activationName(Activation a) {
  switch (a) {
    case Activation::None: return "";
    case Activation::Relu: return "relu";
    case Activation::Sigmoid: return "sigmoid";
    case Activation::Tanh: return "tanh";
    case Activation::Softmax: return "softmax";
  }
  return "";
}
}  // namespace

GraphBuilder::GraphBuilder(std::string name) : impl_(std::make_unique<Impl>()) {
  impl_->graph = std::make_unique<Graph>(std::move(name));
}
GraphBuilder::~GraphBuilder() = default;

Var GraphBuilder::input(const std::string& name, TensorType type) {
  if (impl_->error) return Var();
  for (int64_t d : type.shape)
    if (d <= 0) return Var(impl_->put(fail(fmt::format("input '{}': extents must be positive, got {}", name, type.str()))));
  std::string id = impl_->name(name, "input");
  if (id.empty()) return Var();
  return Var(impl_->put(layers::input(*impl_->graph, id, type, impl_->at(id))));
}

Var GraphBuilder::constant(const std::string& name, const Tensor& value) {
  if (impl_->error) return Var();
  std::string id = impl_->name(name, "constant");
  if (id.empty()) return Var();
  TensorLiteral lit{value.shape(), value.toDoubles()};
  return Var(impl_->put(layers::constant(*impl_->graph, id, value.dtype(), std::move(lit), impl_->at(id))));
}

Var GraphBuilder::conv2d(Var x, int64_t filters, int64_t kernelH, int64_t kernelW, const Conv2dOptions& o) {
  Value* in = impl_->get(x, "conv2d");
  if (!in) return Var();
  std::string id = impl_->name(o.name, "conv2d");
  if (id.empty()) return Var();
  layers::Conv2dSpec s;
  s.filters = filters, s.kernelH = kernelH, s.kernelW = kernelW;
  s.strideH = o.strideH, s.strideW = o.strideW, s.dilationH = o.dilationH, s.dilationW = o.dilationW;
  s.padding = o.padding, s.bias = o.bias, s.activation = activationName(o.activation), s.groups = o.groups;
  return Var(impl_->put(layers::conv2d(*impl_->graph, in, id, s, impl_->at(id))));
}

Var GraphBuilder::dense(Var x, int64_t units, const DenseOptions& o) {
  Value* in = impl_->get(x, "dense");
  if (!in) return Var();
  std::string id = impl_->name(o.name, "dense");
  if (id.empty()) return Var();
  return Var(impl_->put(layers::dense(*impl_->graph, in, id, units, o.bias, activationName(o.activation), impl_->at(id))));
}

Var GraphBuilder::dense(Var x, int64_t units, Activation act, bool bias, const std::string& name) {
  return dense(x, units, DenseOptions{.activation = act, .bias = bias, .name = name});
}

namespace {
std::vector<int64_t> poolStride(int64_t sh, int64_t sw) {
  return sh > 0 ? std::vector<int64_t>{sh, sw > 0 ? sw : sh} : std::vector<int64_t>{};
}
}  // namespace

Var GraphBuilder::maxPool2d(Var x, int64_t kh, int64_t kw, const Pool2dOptions& o) {
  Value* in = impl_->get(x, "maxpool2d");
  if (!in) return Var();
  std::string id = impl_->name(o.name, "maxpool2d");
  if (id.empty()) return Var();
  return Var(impl_->put(layers::pool2d(*impl_->graph, OpKind::MaxPool2d, in, id, {kh, kw}, poolStride(o.strideH, o.strideW),
                                       {}, impl_->at(id))));
}

Var GraphBuilder::maxPool2d(Var x, int64_t kh, int64_t kw, int64_t sh, int64_t sw) {
  return maxPool2d(x, kh, kw, Pool2dOptions{.strideH = sh, .strideW = sw});
}

Var GraphBuilder::avgPool2d(Var x, int64_t kh, int64_t kw, const Pool2dOptions& o) {
  Value* in = impl_->get(x, "avgpool2d");
  if (!in) return Var();
  std::string id = impl_->name(o.name, "avgpool2d");
  if (id.empty()) return Var();
  return Var(impl_->put(layers::pool2d(*impl_->graph, OpKind::AvgPool2d, in, id, {kh, kw}, poolStride(o.strideH, o.strideW),
                                       {}, impl_->at(id))));
}

Var GraphBuilder::avgPool2d(Var x, int64_t kh, int64_t kw, int64_t sh, int64_t sw) {
  return avgPool2d(x, kh, kw, Pool2dOptions{.strideH = sh, .strideW = sw});
}

Var GraphBuilder::flatten(Var x, const std::string& name) {
  Value* in = impl_->get(x, "flatten");
  if (!in) return Var();
  std::string id = impl_->name(name, "flatten");
  if (id.empty()) return Var();
  return Var(impl_->put(layers::addOp(*impl_->graph, OpKind::Flatten, {in}, Attrs{}, id, impl_->at(id))));
}

Var GraphBuilder::reshape(Var x, Shape shape, const std::string& name) {
  Value* in = impl_->get(x, "reshape");
  if (!in) return Var();
  std::string id = impl_->name(name, "reshape");
  if (id.empty()) return Var();
  Attrs a;
  a.set("shape", std::vector<int64_t>(shape.begin(), shape.end()));
  return Var(impl_->put(layers::addOp(*impl_->graph, OpKind::Reshape, {in}, a, id, impl_->at(id))));
}

Var GraphBuilder::activation(Var x, Activation act, const std::string& name) {
  Value* in = impl_->get(x, "activation");
  if (!in) return Var();
  if (act == Activation::None) return x;
  std::string id = impl_->name(name, activationName(act));
  if (id.empty()) return Var();
  return Var(impl_->put(layers::activation(*impl_->graph, in, activationName(act), id, impl_->at(id))));
}

Var GraphBuilder::add(Var a, Var b, const std::string& name) { return binary(int(OpKind::Add), a, b, false, false, name); }
Var GraphBuilder::sub(Var a, Var b, const std::string& name) { return binary(int(OpKind::Sub), a, b, false, false, name); }
Var GraphBuilder::mul(Var a, Var b, const std::string& name) { return binary(int(OpKind::Mul), a, b, false, false, name); }
Var GraphBuilder::div(Var a, Var b, const std::string& name) { return binary(int(OpKind::Div), a, b, false, false, name); }
Var GraphBuilder::matmul(Var a, Var b, bool ta, bool tb, const std::string& name) {
  return binary(int(OpKind::MatMul), a, b, ta, tb, name);
}

Var GraphBuilder::binary(int kindIndex, Var a, Var b, bool ta, bool tb, const std::string& name) {
  OpKind kind = OpKind(kindIndex);
  Value* va = impl_->get(a, "binary op");
  Value* vb = impl_->get(b, "binary op");
  if (!va || !vb) return Var();
  std::string id = impl_->name(name, std::string(opName(kind)));
  if (id.empty()) return Var();
  Attrs attrs;
  if (kind == OpKind::MatMul) {
    attrs.set("transpose_a", int64_t(ta));
    attrs.set("transpose_b", int64_t(tb));
  }
  return Var(impl_->put(layers::addOp(*impl_->graph, kind, {va, vb}, attrs, id, impl_->at(id))));
}

Var GraphBuilder::scale(Var x, double factor, double shift, const std::string& name) {
  Value* in = impl_->get(x, "scale");
  if (!in) return Var();
  std::string id = impl_->name(name, "scale");
  if (id.empty()) return Var();
  Attrs a;
  a.set("scale", factor);
  a.set("shift", shift);
  return Var(impl_->put(layers::addOp(*impl_->graph, OpKind::Scale, {in}, a, id, impl_->at(id))));
}

Var GraphBuilder::normalize(Var x, std::vector<double> mean, std::vector<double> std, const std::string& name) {
  Value* in = impl_->get(x, "normalize");
  if (!in) return Var();
  std::string id = impl_->name(name, "normalize");
  if (id.empty()) return Var();
  Attrs a;
  a.set("mean", std::move(mean));
  a.set("std", std::move(std));
  return Var(impl_->put(layers::addOp(*impl_->graph, OpKind::Normalize, {in}, a, id, impl_->at(id))));
}

Var GraphBuilder::cast(Var x, DType dtype, const std::string& name) {
  Value* in = impl_->get(x, "cast");
  if (!in) return Var();
  std::string id = impl_->name(name, "cast");
  if (id.empty()) return Var();
  Attrs a;
  a.set("dtype", std::string(dtypeName(dtype)));
  return Var(impl_->put(layers::addOp(*impl_->graph, OpKind::Cast, {in}, a, id, impl_->at(id))));
}

void GraphBuilder::output(const std::string& name, Var v) {
  Value* in = impl_->get(v, "output");
  if (!in) return;
  if (impl_->graph->outputValue(name)) {
    impl_->error = Error(fmt::format("output '{}' is defined twice", name));
    return;
  }
  layers::output(*impl_->graph, in, name, impl_->at(name));
}

Expected<Model> GraphBuilder::build() {
  if (impl_->error) return Unexpected(*impl_->error);
  if (impl_->graph->outputNodes().empty()) return fail("the model has no outputs: call output(name, value)");
  auto ok = verifyGraph(*impl_->graph);
  if (!ok) return Unexpected(ok.error());
  Model m;
  m.graph_ = std::shared_ptr<const Graph>(impl_->graph->clone());
  return m;
}

}  // namespace shoal
