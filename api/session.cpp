// The public API (include/shoal/shoal.h) over the frontend, passes and runtime.
#include <shoal/shoal.h>

#include <fmt/format.h>

#include "frontend/layers.h"
#include "frontend/pipeline_loader.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "runtime/backend.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/trainer.h"

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

// ---- GraphBuilder -----------------------------------------------------------------------

struct GraphBuilder::Impl {
  std::unique_ptr<Graph> graph;
  std::vector<Value*> values;
  std::optional<Error> error;
  int layer = 0;

  std::string nextId(const std::string& kind) { return kind + std::to_string(++layer); }
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
  if (impl_->graph->findValue(name)) return Var(impl_->put(fail(fmt::format("input '{}': the name is taken", name))));
  return Var(impl_->put(layers::input(*impl_->graph, name, type, impl_->at(name))));
}

Var GraphBuilder::constant(const std::string& name, const Tensor& value) {
  if (impl_->error) return Var();
  TensorLiteral lit{value.shape(), value.toDoubles()};
  return Var(impl_->put(layers::constant(*impl_->graph, name, value.dtype(), std::move(lit), impl_->at(name))));
}

Var GraphBuilder::conv2d(Var x, int64_t filters, int64_t kernelH, int64_t kernelW, const Conv2dOptions& o) {
  Value* in = impl_->get(x, "conv2d");
  if (!in) return Var();
  layers::Conv2dSpec s;
  s.filters = filters, s.kernelH = kernelH, s.kernelW = kernelW;
  s.strideH = o.strideH, s.strideW = o.strideW, s.dilationH = o.dilationH, s.dilationW = o.dilationW;
  s.padding = o.padding, s.bias = o.bias, s.activation = activationName(o.activation), s.groups = o.groups;
  std::string id = impl_->nextId("conv");
  return Var(impl_->put(layers::conv2d(*impl_->graph, in, id, s, impl_->at(id))));
}

Var GraphBuilder::dense(Var x, int64_t units, Activation act, bool bias) {
  Value* in = impl_->get(x, "dense");
  if (!in) return Var();
  std::string id = impl_->nextId("dense");
  return Var(impl_->put(layers::dense(*impl_->graph, in, id, units, bias, activationName(act), impl_->at(id))));
}

Var GraphBuilder::maxPool2d(Var x, int64_t kh, int64_t kw, int64_t sh, int64_t sw) {
  Value* in = impl_->get(x, "maxpool2d");
  if (!in) return Var();
  std::string id = impl_->nextId("maxpool");
  std::vector<int64_t> stride = sh > 0 ? std::vector<int64_t>{sh, sw > 0 ? sw : sh} : std::vector<int64_t>{};
  return Var(impl_->put(layers::pool2d(*impl_->graph, OpKind::MaxPool2d, in, id, {kh, kw}, stride, {}, impl_->at(id))));
}

Var GraphBuilder::avgPool2d(Var x, int64_t kh, int64_t kw, int64_t sh, int64_t sw) {
  Value* in = impl_->get(x, "avgpool2d");
  if (!in) return Var();
  std::string id = impl_->nextId("avgpool");
  std::vector<int64_t> stride = sh > 0 ? std::vector<int64_t>{sh, sw > 0 ? sw : sh} : std::vector<int64_t>{};
  return Var(impl_->put(layers::pool2d(*impl_->graph, OpKind::AvgPool2d, in, id, {kh, kw}, stride, {}, impl_->at(id))));
}

Var GraphBuilder::flatten(Var x) {
  Value* in = impl_->get(x, "flatten");
  if (!in) return Var();
  std::string id = impl_->nextId("flatten");
  return Var(impl_->put(layers::addOp(*impl_->graph, OpKind::Flatten, {in}, Attrs{}, id, impl_->at(id))));
}

Var GraphBuilder::reshape(Var x, Shape shape) {
  Value* in = impl_->get(x, "reshape");
  if (!in) return Var();
  std::string id = impl_->nextId("reshape");
  Attrs a;
  a.set("shape", std::vector<int64_t>(shape.begin(), shape.end()));
  return Var(impl_->put(layers::addOp(*impl_->graph, OpKind::Reshape, {in}, a, id, impl_->at(id))));
}

Var GraphBuilder::activation(Var x, Activation act) {
  Value* in = impl_->get(x, "activation");
  if (!in) return Var();
  if (act == Activation::None) return x;
  std::string id = impl_->nextId(activationName(act));
  return Var(impl_->put(layers::activation(*impl_->graph, in, activationName(act), id, impl_->at(id))));
}

Var GraphBuilder::add(Var a, Var b) { return binary(int(OpKind::Add), a, b, false, false); }
Var GraphBuilder::sub(Var a, Var b) { return binary(int(OpKind::Sub), a, b, false, false); }
Var GraphBuilder::mul(Var a, Var b) { return binary(int(OpKind::Mul), a, b, false, false); }
Var GraphBuilder::div(Var a, Var b) { return binary(int(OpKind::Div), a, b, false, false); }
Var GraphBuilder::matmul(Var a, Var b, bool ta, bool tb) { return binary(int(OpKind::MatMul), a, b, ta, tb); }

Var GraphBuilder::binary(int kindIndex, Var a, Var b, bool ta, bool tb) {
  OpKind kind = OpKind(kindIndex);
  Value* va = impl_->get(a, "binary op");
  Value* vb = impl_->get(b, "binary op");
  if (!va || !vb) return Var();
  std::string id = impl_->nextId(std::string(opName(kind)));
  Attrs attrs;
  if (kind == OpKind::MatMul) {
    attrs.set("transpose_a", int64_t(ta));
    attrs.set("transpose_b", int64_t(tb));
  }
  return Var(impl_->put(layers::addOp(*impl_->graph, kind, {va, vb}, attrs, id, impl_->at(id))));
}

Var GraphBuilder::scale(Var x, double factor, double shift) {
  Value* in = impl_->get(x, "scale");
  if (!in) return Var();
  std::string id = impl_->nextId("scale");
  Attrs a;
  a.set("scale", factor);
  a.set("shift", shift);
  return Var(impl_->put(layers::addOp(*impl_->graph, OpKind::Scale, {in}, a, id, impl_->at(id))));
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

// ---- CompiledModel ----------------------------------------------------------------------

std::string CompiledModel::device() const { return exe_ ? exe_->deviceName() : ""; }

Expected<std::map<std::string, Tensor>> CompiledModel::run(const std::map<std::string, Tensor>& inputs) {
  if (!exe_) return fail("this CompiledModel is empty");
  return exe_->run(inputs);
}

std::map<std::string, Tensor> CompiledModel::parameters() {
  std::map<std::string, Tensor> out;
  if (!exe_) return out;
  TensorMap all = exe_->readPersistent();
  for (Node* n : exe_->graph().nodes())
    if (n->kind() == OpKind::Param) out[n->result()->name()] = all.at(n->result()->name());
  return out;
}

Expected<void> CompiledModel::loadWeights(const std::string& path) {
  if (!exe_) return fail("this CompiledModel is empty");
  auto file = loadSafetensors(path);
  if (!file) return Unexpected(file.error());
  TensorMap values;
  for (auto& [name, t] : file->tensors) values[name] = t;
  for (Node* n : exe_->graph().nodes()) {
    if (n->kind() != OpKind::Param) continue;
    auto it = values.find(n->result()->name());
    if (it == values.end()) return fail(fmt::format("{}: checkpoint has no tensor '{}'", path, n->result()->name()));
    auto ok = checkTensorMatches(it->first, it->second, n->result()->type());
    if (!ok) return fail(path + ": " + ok.error().message());
  }
  return exe_->writePersistent(values);
}

Expected<void> CompiledModel::saveWeights(const std::string& path) {
  if (!exe_) return fail("this CompiledModel is empty");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& [name, t] : parameters()) tensors.push_back({name, t});
  return saveSafetensors(path, tensors, {{"format", "pt"}, {"producer", "shoal"}});
}

// ---- pipelines and sessions -------------------------------------------------------------

Model LoadedPipeline::model() const {
  Model m;
  if (pipeline_) m.graph_ = std::shared_ptr<const Graph>(pipeline_->model->clone());
  return m;
}

bool LoadedPipeline::trains() const { return pipeline_ && pipeline_->train.has_value(); }

Expected<LoadedPipeline> loadPipeline(const std::string& path) {
  DiagnosticEngine diags;
  auto p = loadPipelineFile(path, diags);
  if (!p || diags.hasErrors()) {
    Error first = diags.firstError();
    return Unexpected(Error(diags.render(), first.location()));
  }
  LoadedPipeline lp;
  lp.pipeline_ = std::make_shared<const Pipeline>(std::move(*p));
  return lp;
}

Session::Session(SessionOptions opts) : opts_(opts) {}

Expected<std::string> Session::device() {
  auto sel = selectDevice(opts_.device);
  if (!sel) return Unexpected(sel.error());
  return sel->description;
}

Expected<CompiledModel> Session::compile(const Model& model) {
  if (!model.graph_) return fail("compile: the model is empty");
  auto sel = selectDevice(opts_.device);
  if (!sel) return Unexpected(sel.error());
  auto program = compileProgram(model.graph_->clone());
  if (!program) return Unexpected(program.error());
  ExecutableOptions eo;
  eo.tf32 = opts_.tf32;
  eo.verbose = opts_.verbose;
  auto exe = createExecutable(std::move(*program), *sel, eo);
  if (!exe) return Unexpected(exe.error());
  (*exe)->initializeParameters(opts_.seed);
  CompiledModel cm;
  cm.exe_ = std::shared_ptr<Executable>(std::move(*exe));
  return cm;
}

Expected<TrainReport> Session::train(const LoadedPipeline& pipeline, const TrainSettings& settings) {
  if (!pipeline.pipeline_) return fail("train: the pipeline is empty");
  TrainOptions t;
  t.device = opts_.device;
  t.epochs = settings.epochs;
  t.seed = settings.seed;
  t.exec.tf32 = opts_.tf32;
  t.exec.verbose = opts_.verbose;
  t.onEpoch = settings.onEpoch;
  return trainPipeline(*pipeline.pipeline_, t);
}

}  // namespace shoal
