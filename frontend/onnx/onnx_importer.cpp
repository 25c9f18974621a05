// ONNX import: reading and checking the model, binding its inputs, walking its nodes through
// the op table (onnx_ops.cpp), and the entry points of onnx_import.h.
#include "frontend/onnx/onnx_importer.h"

#include <fmt/format.h>
#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include <filesystem>

#include "ir/shape_inference.h"
#include "ir/verifier.h"
#include "support/file_util.h"

namespace shoal {
namespace onnx_import {

namespace fs = std::filesystem;

// The ai.onnx opsets whose semantics the op table knows (older ones lower through the same
// table where an op's meaning did not change; each lowering checks the versions it reads).
// Opsets 18-21, by ONNX's list of the ops each one changed (onnx/defs/operator_sets.h): 18
// gave the reductions and Pad an axes input and Split num_outputs, which their lowerings read;
// 19 gave AveragePool dilations (read, refused unless 1) and Pad a wrap mode, Resize a
// coordinate mode, Cast/Q/DQ float8 types (each refused by name); 20 added Gelu (mapped) and
// renamed GridSample's modes linear/cubic (read); 21 gave Q/DQ block_size and 4-bit types
// (refused). Every other change is a new op, an element type shoal lacks, or an attribute
// that a lowering which does not read it refuses.
constexpr int64_t kMaxOpset = 21;

namespace {

bool isOnnxDomain(const std::string& d) { return d.empty() || d == "ai.onnx"; }

// The newest ai.onnx opset the linked libonnx knows (17 for Debian 12's 1.12). Its checker and
// shape inference judge a newer model by older schemas (a reduction's axes input is "too
// many inputs" to opset 13's ReduceMax), so for such a model both are skipped and shoal's own
// checks stand alone.
int64_t libonnxMaxOpset() {
  const auto& ranges = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  auto it = ranges.find(onnx::ONNX_DOMAIN);
  return it == ranges.end() ? 0 : it->second.second;
}

int64_t modelOpset(const onnx::ModelProto& model) {
  int64_t opset = -1;
  for (const auto& o : model.opset_import())
    if (isOnnxDomain(o.domain())) opset = o.version();
  return opset;
}

std::string joinNames(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out;
}

TensorLiteral literalOf(const Tensor& t) {
  TensorLiteral lit;
  lit.shape = t.shape();
  lit.values = t.toDoubles();
  return lit;
}

}  // namespace

// ---- NodeContext ---------------------------------------------------------------------------

NodeContext::NodeContext(Importer& imp, const onnx::NodeProto& node, int64_t opset)
    : imp_(imp), node_(node), opset_(opset) {}

const Slot& NodeContext::slot(size_t i) const {
  if (!has(i)) invalid(fmt::format("input {} is missing", i));
  return imp_.slot(node_.input(int(i)), &node_);
}

Value* NodeContext::value(size_t i) {
  if (!has(i)) invalid(fmt::format("input {} is missing", i));
  const std::string& name = node_.input(int(i));
  return imp_.materialize(name, imp_.slot(name, &node_));
}

Value* NodeContext::stateValue(size_t i) {
  if (!has(i)) invalid(fmt::format("input {} is missing", i));
  const std::string& name = node_.input(int(i));
  return imp_.materialize(name, imp_.slot(name, &node_), /*asState=*/true);
}

const Tensor* NodeContext::known(size_t i) const {
  const Slot& s = slot(i);
  return s.known && !s.parameter ? &*s.known : nullptr;
}

const Tensor& NodeContext::constant(size_t i, std::string_view what) const {
  const Slot& s = slot(i);
  if (!s.known && s.fed) return *s.fed;
  if (!s.known) {
    std::string origin = imp_.runTimeOrigin(node_.input(int(i)));
    unsupported(fmt::format("{} ('{}') is computed at run time; shoal needs it at import time (static shapes){}", what,
                            node_.input(int(i)), origin.empty() ? "" : ": " + origin));
  }
  return *s.known;
}

std::vector<int64_t> NodeContext::constantInts(size_t i, std::string_view what) const {
  const Tensor& t = constant(i, what);
  if (isFloat(t.dtype())) invalid(fmt::format("{} must be integers, got {}", what, t.type().str()));
  std::vector<int64_t> out(size_t(t.numElements()));
  for (int64_t k = 0; k < t.numElements(); ++k)
    out[size_t(k)] = t.dtype() == DType::I64 ? t.data<int64_t>()[k] : int64_t(t.at(k));
  return out;
}

std::vector<double> NodeContext::constantFloats(size_t i, std::string_view what) const {
  return constant(i, what).toDoubles();
}

bool NodeContext::allInputsKnown() const {
  for (size_t i = 0; i < numInputs(); ++i)
    if (has(i) && !known(i)) return false;
  return true;
}

bool NodeContext::outputUsed(size_t i) const { return hasOutput(i) && imp_.isUsed(node_.output(int(i))); }

void NodeContext::setOutput(size_t i, Value* v) {
  if (!hasOutput(i)) return;
  const std::string& name = node_.output(int(i));
  // A value this node made takes the ONNX name (so dumps read like the model).
  if (v->def() && v->def()->kind() != OpKind::Param && v->name() != imp_.valueName(name) &&
      v->def()->loc().node == loc_.node && !imp_.graph().findValue(imp_.valueName(name)))
    imp_.graph().renameValue(v, imp_.valueName(name));
  Slot s;
  if (DType dt = v->type().dtype; storageOnly(dt)) {
    // A cast to a storage type (float16, int8): later ops read it in its compute type.
    s.storage = dt;
    if (computeDType(dt) != dt) {
      Attrs a;
      a.set("dtype", std::string(dtypeName(computeDType(dt))));
      v = emit(OpKind::Cast, {v}, std::move(a), "wide");
    }
  }
  s.type = v->type();
  s.value = v;
  imp_.define(name, std::move(s));
}

Slot knownSlot(Tensor t) {
  Slot s;
  if (storageOnly(t.dtype())) {
    s.storage = t.dtype();
    if (computeDType(t.dtype()) != t.dtype()) t = t.cast(computeDType(t.dtype()));
  }
  s.type = t.type();
  s.known = std::move(t);
  return s;
}

void NodeContext::setSlotOutput(size_t i, const Slot& s) {
  if (!hasOutput(i)) return;
  imp_.define(node_.output(int(i)), s);
}

const onnx::GraphProto& NodeContext::attrGraph(const std::string& name) {
  if (!hasAttr(name)) invalid(fmt::format("the subgraph attribute '{}' is missing", name));
  const onnx::AttributeProto& a = needAttr(name, onnx::AttributeProto::GRAPH);
  return a.g();
}

void NodeContext::setKnownOutput(size_t i, Tensor t) {
  if (!hasOutput(i)) return;
  imp_.define(node_.output(int(i)), knownSlot(std::move(t)));
}

const std::vector<Value*>& NodeContext::sequence(size_t i) const {
  const Slot& s = slot(i);
  if (!s.sequence) invalid(fmt::format("input '{}' is a tensor where a sequence is expected", node_.input(int(i))));
  return *s.sequence;
}

void NodeContext::setSequenceOutput(size_t i, std::vector<Value*> elements) {
  if (!hasOutput(i)) return;
  Slot s;
  s.sequence = std::move(elements);
  imp_.define(node_.output(int(i)), std::move(s));
}

const onnx::AttributeProto* NodeContext::findAttr(const std::string& name) const {
  for (const auto& a : node_.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

bool NodeContext::hasAttr(const std::string& name) const { return findAttr(name) != nullptr; }

const onnx::AttributeProto& NodeContext::needAttr(const std::string& name, int type) {
  const onnx::AttributeProto* a = findAttr(name);
  read_.insert(name);
  if (!a->ref_attr_name().empty())
    invalid(fmt::format("attribute '{}' refers to '{}' outside a function", name, a->ref_attr_name()));
  // Old exporters leave the type unset; trust the field that is filled then.
  if (a->type() != onnx::AttributeProto::UNDEFINED && a->type() != type)
    invalid(fmt::format("attribute '{}' has the wrong type ({})", name, int(a->type())));
  return *a;
}

int64_t NodeContext::attrInt(const std::string& name, std::optional<int64_t> dflt) {
  if (!hasAttr(name)) {
    if (!dflt) invalid(fmt::format("needs attribute '{}'", name));
    return *dflt;
  }
  return needAttr(name, onnx::AttributeProto::INT).i();
}

double NodeContext::attrFloat(const std::string& name, std::optional<double> dflt) {
  if (!hasAttr(name)) {
    if (!dflt) invalid(fmt::format("needs attribute '{}'", name));
    return *dflt;
  }
  return needAttr(name, onnx::AttributeProto::FLOAT).f();
}

std::string NodeContext::attrString(const std::string& name, std::optional<std::string> dflt) {
  if (!hasAttr(name)) {
    if (!dflt) invalid(fmt::format("needs attribute '{}'", name));
    return *dflt;
  }
  return needAttr(name, onnx::AttributeProto::STRING).s();
}

std::vector<int64_t> NodeContext::attrInts(const std::string& name, std::optional<std::vector<int64_t>> dflt) {
  if (!hasAttr(name)) {
    if (!dflt) invalid(fmt::format("needs attribute '{}'", name));
    return *dflt;
  }
  const auto& a = needAttr(name, onnx::AttributeProto::INTS);
  return {a.ints().begin(), a.ints().end()};
}

std::vector<double> NodeContext::attrFloats(const std::string& name, std::optional<std::vector<double>> dflt) {
  if (!hasAttr(name)) {
    if (!dflt) invalid(fmt::format("needs attribute '{}'", name));
    return *dflt;
  }
  const auto& a = needAttr(name, onnx::AttributeProto::FLOATS);
  return {a.floats().begin(), a.floats().end()};
}

std::vector<std::string> NodeContext::attrStrings(const std::string& name,
                                                  std::optional<std::vector<std::string>> dflt) {
  if (!hasAttr(name)) {
    if (!dflt) invalid(fmt::format("needs attribute '{}'", name));
    return *dflt;
  }
  const auto& a = needAttr(name, onnx::AttributeProto::STRINGS);
  return {a.strings().begin(), a.strings().end()};
}

Tensor NodeContext::attrTensor(const std::string& name) {
  if (!hasAttr(name)) invalid(fmt::format("needs attribute '{}'", name));
  const auto& a = needAttr(name, onnx::AttributeProto::TENSOR);
  try {
    return tensorFromProto(a.t(), imp_.modelDir());
  } catch (const ImportFailure& f) {
    if (f.unsupported) unsupported(fmt::format("attribute '{}': {}", name, f.message));
    invalid(fmt::format("attribute '{}': {}", name, f.message));
  }
}

void NodeContext::ignoreAttr(const std::string& name) { read_.insert(name); }

std::vector<std::string> NodeContext::unreadAttrs() const {
  std::vector<std::string> out;
  for (const auto& a : node_.attribute())
    if (!read_.count(a.name())) out.push_back(a.name());
  return out;
}

Value* NodeContext::emit(OpKind kind, std::vector<Value*> inputs, Attrs attrs, const std::string& suffix) {
  Graph& g = imp_.graph();
  std::string base = imp_.valueName(hasOutput(0) ? node_.output(0) : loc_.node);
  std::string name = base + "." + (suffix.empty() ? std::string(opName(kind)) : suffix);
  std::vector<ResultSpec> results;
  for (int i = 0; i < opInfo(kind).numResults; ++i) results.push_back({name, TensorType{}});
  Node* n = g.addNode(kind, std::move(inputs), std::move(attrs), std::move(results), loc_);
  fillDefaultAttrs(*n);
  DiagnosticEngine diags;
  if (!verifyNodeStructure(*n, diags)) {
    std::string msg = diags.firstError().message();
    g.eraseNode(n);
    invalid(fmt::format("shoal's {}: {}", opName(kind), msg));
  }
  auto types = inferResultTypes(*n);
  if (!types) {
    std::string msg = types.error().message();
    g.eraseNode(n);
    invalid(msg);
  }
  for (size_t i = 0; i < n->numResults(); ++i) n->result(i)->setType((*types)[i]);
  return n->numResults() ? n->result() : nullptr;
}

Value* NodeContext::reshape(Value* x, const Shape& shape, const std::string& suffix) {
  // One extent may be -1 (what the others leave): the same reshape at another batch size.
  Shape resolved = shape;
  int64_t known = 1, count = x->type().numElements();
  for (int64_t d : shape) known *= d == -1 ? 1 : d;
  for (int64_t& d : resolved)
    if (d == -1) d = known ? count / known : 0;
  if (x->type().shape == resolved) return x;
  Attrs a;
  a.set("shape", shape);
  return emit(OpKind::Reshape, {x}, a, suffix);
}

Value* NodeContext::constantValue(const Tensor& t, const std::string& suffix) {
  Graph& g = imp_.graph();
  std::string base = imp_.valueName(hasOutput(0) ? node_.output(0) : loc_.node);
  Attrs a;
  a.set("value", literalOf(t));
  return g.addNode(OpKind::Constant, {}, std::move(a), {{base + "." + suffix, t.type()}}, loc_)->result();
}

Value* NodeContext::scalar(double v, DType dtype, const std::string& suffix) {
  Tensor t(dtype, {});
  t.set(0, v);
  return constantValue(t, suffix);
}

void NodeContext::unsupported(const std::string& what) const {
  throw ImportFailure{imp_.describe(node_, opset_) + ": unsupported: " + what, true};
}

void NodeContext::invalid(const std::string& what) const {
  throw ImportFailure{imp_.describe(node_, opset_) + ": " + what, false};
}

void NodeContext::requireFloat(size_t i) const {
  if (!isFloat(dtype(i)))
    unsupported(fmt::format("input '{}' has element type {}; shoal's op needs f32 or f64", node_.input(int(i)),
                            dtypeName(dtype(i))));
}

int64_t NodeContext::axis(int64_t a, int64_t rank) const {
  int64_t r = a < 0 ? a + rank : a;
  if (r < 0 || r >= std::max<int64_t>(rank, 1)) invalid(fmt::format("axis {} is out of range for rank {}", a, rank));
  return r;
}

// ---- Importer ------------------------------------------------------------------------------

Importer::Importer(Graph& g, const onnx::ModelProto& model, std::string modelPath, const OnnxImportOptions& opts)
    : g_(g), model_(model), path_(std::move(modelPath)), opts_(opts) {
  dir_ = fs::path(path_).parent_path().string();
  for (const auto& o : model.opset_import())
    if (isOnnxDomain(o.domain())) opset_ = o.version();
  const onnx::GraphProto& graph = model.graph();
  if (graph.sparse_initializer_size() > 0) throwUnsupported("sparse initializers are not supported");
  for (const auto& init : graph.initializer()) {
    initializers_[init.name()] = &init;
    Slot s;
    try {
      s = knownSlot(tensorFromProto(init, dir_));
    } catch (const ImportFailure& f) {
      throw ImportFailure{"initializer '" + init.name() + "': " + f.message, f.unsupported};
    }
    s.parameter = isFloat(s.type.dtype);
    slots_[init.name()] = std::move(s);
  }
  for (const auto& n : graph.node())
    for (const auto& in : n.input())
      if (!in.empty()) ++uses_[in];
  for (const auto& out : graph.output()) ++uses_[out.name()];
}

Location Importer::nodeLocation(const onnx::NodeProto& n, int index) const {
  std::string name = !n.name().empty() ? n.name() : n.output_size() > 0 ? n.output(0) : fmt::format("#{}", index);
  if (pipelineLoc_) {
    Location loc = *pipelineLoc_;
    loc.node = pipelineLoc_->node.empty() ? name : pipelineLoc_->node + "/" + name;
    return loc;
  }
  return Location{path_, 0, 0, name};
}

std::string Importer::describe(const onnx::NodeProto& n, int64_t opset) const {
  std::string domain = isOnnxDomain(n.domain()) ? "ai.onnx" : n.domain();
  std::string who = "node";
  if (!n.name().empty())
    who = fmt::format("node '{}'", n.name());
  else
    for (const auto& o : n.output())
      if (!o.empty()) {
        who = fmt::format("node for '{}'", o);
        break;
      }
  return fmt::format("{} ({}, domain {}, opset {})", who, n.op_type(), domain, opset);
}

Slot& Importer::slot(const std::string& name, const onnx::NodeProto* user) {
  auto it = slots_.find(name);
  if (it == slots_.end()) {
    if (user) throwInvalid(fmt::format("input '{}' is not defined before it is used", name));
    throwInvalid(fmt::format("'{}' is not defined", name));
  }
  return it->second;
}

void Importer::define(const std::string& name, Slot s) {
  if (slots_.count(name) && initializers_.count(name) == 0)
    throwInvalid(fmt::format("'{}' is defined twice (ONNX graphs are SSA)", name));
  if (!slots_.count(name)) definedLog_.push_back(name);
  slots_[name] = std::move(s);
}

void Importer::rollback(const Mark& m) {
  while (g_.size() > m.nodes) g_.eraseNode(g_.nodes().back());
  while (materializedLog_.size() > m.materialized) {
    slots_[materializedLog_.back()].value = nullptr;
    materializedLog_.pop_back();
  }
  while (definedLog_.size() > m.defined) {
    slots_.erase(definedLog_.back());
    definedLog_.pop_back();
  }
}

Value* Importer::materialize(const std::string& name, Slot& s, bool asState) {
  if (s.value) return s.value;
  if (s.sequence)
    throwUnsupported(fmt::format("sequence '{}' used as a tensor (shoal's sequences live at import only)", name));
  assert(s.known && "a slot without an IR value holds a known tensor");
  if (s.known->numElements() == 0)
    throwUnsupported(fmt::format("'{}' is an empty tensor {} used at run time (shoal's tensors are non-empty; "
                                 "empty values exist only in shape arithmetic at import)",
                                 name, s.known->type().str()));
  materializedLog_.push_back(name);
  Location loc = pipelineLoc_ ? *pipelineLoc_ : Location{path_, 0, 0, name};
  if (s.parameter) {
    // Parameters (and state) keep the initializer's name: it is their checkpoint name.
    if (Value* taken = g_.findValue(name)) {
      if (isPersistentSource(taken->def()->kind()))
        throwInvalid(
            fmt::format("parameter '{}' is already defined in the pipeline (two models share its name)", name));
      g_.renameValue(taken, name + ".renamed");
    }
    Attrs a;
    a.set("init", std::string("zeros"));
    Node* n = g_.addNode(asState ? OpKind::State : OpKind::Param, {}, std::move(a), {{name, s.type}}, loc);
    fillDefaultAttrs(*n);
    g_.setParameterValue(name, *s.known);
    s.value = n->result();
  } else {
    Attrs a;
    a.set("value", literalOf(*s.known));
    s.value = g_.addNode(OpKind::Constant, {}, std::move(a), {{valueName(name), s.type}}, loc)->result();
  }
  return s.value;
}

TensorType Importer::inputType(const onnx::ValueInfoProto& vi) {
  const std::string& name = vi.name();
  if (!vi.type().has_tensor_type())
    throwUnsupported(fmt::format("input '{}' is not a tensor (sequences, maps and optionals are not supported)", name));
  const auto& tt = vi.type().tensor_type();
  auto dtype = dtypeFromOnnx(tt.elem_type());
  if (!dtype)
    throwUnsupported(fmt::format("input '{}' has element type {}, which shoal does not support", name,
                                 onnxTypeName(tt.elem_type())));
  auto given = opts_.inputShapes.find(name);
  if (!tt.has_shape()) {
    if (given == opts_.inputShapes.end())
      throwUnsupported(fmt::format("input '{}' has no shape in the model; give one (shoal run --input)", name));
    return {*dtype, given->second};
  }
  Shape shape;
  const auto& dims = tt.shape().dim();
  if (given != opts_.inputShapes.end() && int64_t(given->second.size()) != dims.size())
    throwInvalid(fmt::format("input '{}' has rank {} in the model, the given tensor {} ({})", name, dims.size(),
                             given->second.size(), shapeString(given->second)));
  for (int i = 0; i < dims.size(); ++i) {
    const auto& d = dims[i];
    int64_t extent = 0;
    if (given != opts_.inputShapes.end()) {
      extent = given->second[size_t(i)];
      if (d.has_dim_value() && d.dim_value() != extent)
        throwInvalid(fmt::format("input '{}' has extent {} in dimension {} in the model, the given tensor {}", name,
                                 d.dim_value(), i, extent));
    } else if (d.has_dim_value()) {
      extent = d.dim_value();
    } else if (d.has_dim_param() && opts_.dims.count(d.dim_param())) {
      extent = opts_.dims.at(d.dim_param());
    } else {
      extent = opts_.defaultDim;
    }
    if (extent <= 0)
      throwUnsupported(
          fmt::format("input '{}' has extent {} in dimension {}: shoal needs non-empty tensors", name, extent, i));
    shape.push_back(extent);
  }
  return {*dtype, shape};
}

Value* Importer::widen(const std::string& name, Value* v, Slot& s) {
  const DType dt = v->type().dtype;
  if (!storageOnly(dt)) return v;
  s.storage = dt;
  if (computeDType(dt) == dt) return v;
  Attrs a;
  a.set("dtype", std::string(dtypeName(computeDType(dt))));
  return g_.addNode(OpKind::Cast, {v}, std::move(a), {{valueName(name) + ".wide", {computeDType(dt), v->type().shape}}},
                    pipelineLoc_ ? *pipelineLoc_ : Location{path_, 0, 0, name})
      ->result();
}

void Importer::declareInputs() {
  for (const auto& vi : model_.graph().input()) {
    if (initializers_.count(vi.name())) continue;  // IR < 4 lists initializers as inputs too
    Slot s;
    s.type = inputType(vi);
    Attrs a;
    a.set("name", vi.name());
    s.value = g_.addNode(OpKind::Input, {}, std::move(a), {{valueName(vi.name()), s.type}},
                         pipelineLoc_ ? *pipelineLoc_ : Location{path_, 0, 0, vi.name()})
                  ->result();
    s.value = widen(vi.name(), s.value, s);
    s.type = s.value->type();
    if (auto it = opts_.inputValues.find(vi.name()); it != opts_.inputValues.end()) {
      if (it->second.shape() != s.type.shape)
        throwInvalid(
            fmt::format("input '{}' is {}, its given value {}", vi.name(), s.type.str(), it->second.type().str()));
      s.fed = it->second.cast(s.type.dtype);
    }
    define(vi.name(), std::move(s));
  }
}

void Importer::bindInputs(const std::vector<Value*>& values) {
  std::vector<const onnx::ValueInfoProto*> inputs;
  for (const auto& vi : model_.graph().input())
    if (!initializers_.count(vi.name())) inputs.push_back(&vi);
  if (inputs.size() != values.size()) {
    std::vector<std::string> names;
    for (auto* vi : inputs) names.push_back(vi->name());
    throwInvalid(fmt::format("the model has {} input{} ({}), the node is fed {}", inputs.size(),
                             inputs.size() == 1 ? "" : "s", joinNames(names), values.size()));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const onnx::ValueInfoProto& vi = *inputs[i];
    Value* v = values[i];
    opts_.inputShapes[vi.name()] = v->type().shape;
    TensorType want = inputType(vi);
    // A storage-type input (float16) may also be fed in its compute type (f32).
    if (want.dtype != v->type().dtype && !(storageOnly(want.dtype) && computeDType(want.dtype) == v->type().dtype))
      throwInvalid(fmt::format("model input '{}' is {}, the pipeline feeds {}", vi.name(), dtypeName(want.dtype),
                               v->type().str()));
    Slot s;
    if (storageOnly(want.dtype)) s.storage = want.dtype;
    v = widen(vi.name(), v, s);
    s.type = v->type();
    s.value = v;
    define(vi.name(), std::move(s));
  }
}

std::map<std::string, Shape> Importer::boundInputShapes() const {
  std::map<std::string, Shape> out;
  for (const auto& vi : model_.graph().input())
    if (!initializers_.count(vi.name()))
      if (auto it = slots_.find(vi.name()); it != slots_.end()) out[vi.name()] = it->second.type.shape;
  return out;
}

void Importer::crossCheck(const onnx::NodeProto& n, int64_t opset, const std::string& name, const Slot& s) {
  auto it = inferred_.find(name);
  if (it == inferred_.end() || !it->second.has_tensor_type()) return;
  const auto& tt = it->second.tensor_type();
  std::string what;
  if (tt.elem_type() != onnx::TensorProto::UNDEFINED) {
    auto dt = dtypeFromOnnx(tt.elem_type());
    if (!dt || *dt != s.onnxDType()) what = fmt::format("element type {}", onnxTypeName(tt.elem_type()));
  }
  if (what.empty() && tt.has_shape()) {
    bool staticShape = true;
    Shape shape;
    for (const auto& d : tt.shape().dim()) {
      staticShape &= d.has_dim_value();
      shape.push_back(d.dim_value());
    }
    if (staticShape && shape != s.type.shape) what = fmt::format("shape {}", shapeString(shape));
  }
  if (!what.empty())
    throwInvalid(
        fmt::format("{}: shoal computes {} for '{}' where ONNX's shape inference has {} (a bug in shoal's "
                    "ONNX import)",
                    describe(n, opset), TensorType{s.onnxDType(), s.type.shape}.str(), name, what));
}

void Importer::checkStorageInputs(const onnx::NodeProto& n, int64_t opset, const OpMapping& m) {
  for (int i = 0; i < n.input_size(); ++i) {
    if (n.input(i).empty()) continue;
    auto it = slots_.find(n.input(i));
    if (it == slots_.end() || !it->second.storage) continue;
    const DType st = *it->second.storage;
    const bool widened = computeDType(st) != st;
    const bool ok = m.storage == StorageUse::Converts || m.storage == StorageUse::Passes ||
                    (m.storage == StorageUse::Preserves && widened) || (m.storage == StorageUse::Exponent && i == 1);
    if (ok) continue;
    // The ops that read it, from the op table.
    std::vector<std::string> readers;
    for (const std::string& op : mappedOpTypes()) {
      const StorageUse use = findOpMapping(op)->storage;
      if (use == StorageUse::Exponent)
        readers.push_back(op + "'s exponent");
      else if (use == StorageUse::Converts || use == StorageUse::Passes || (use == StorageUse::Preserves && widened))
        readers.push_back(op);
    }
    throwUnsupported(fmt::format("{}: unsupported: input '{}' has element type {}, which shoal stores and {} (only {} "
                                 "read it)",
                                 describe(n, opset), n.input(i), onnxTypeName(onnxFromDtype(st)),
                                 widened ? fmt::format("computes in {}", dtypeName(computeDType(st)))
                                         : std::string("only converts"),
                                 joinNames(readers)));
  }
}

void Importer::propagateStorage(const onnx::NodeProto& n, const OpMapping& m) {
  if (m.storage != StorageUse::Preserves && m.storage != StorageUse::Passes) return;
  std::optional<DType> st;
  for (const auto& in : n.input())
    if (auto it = slots_.find(in); !in.empty() && it != slots_.end() && it->second.storage) st = it->second.storage;
  if (!st) return;
  for (const auto& out : n.output())
    if (auto it = slots_.find(out); !out.empty() && it != slots_.end() && !it->second.storage &&
                                    !it->second.sequence && it->second.type.dtype == computeDType(*st))
      it->second.storage = st;
}

void Importer::lowerNode(const onnx::NodeProto& n, int index, int64_t opset, int depth) {
  if (!isOnnxDomain(n.domain()))
    throwUnsupported(
        fmt::format("{}: unsupported: domain '{}' (shoal imports ai.onnx ops)", describe(n, opset), n.domain()));
  // Subgraphs are inlined by If, Loop and Scan (onnx_ops_control.cpp); no other op has one.
  const bool controlFlow = n.op_type() == "If" || n.op_type() == "Loop" || n.op_type() == "Scan";
  for (const auto& a : n.attribute())
    if (!controlFlow && (a.type() == onnx::AttributeProto::GRAPH || a.type() == onnx::AttributeProto::GRAPHS))
      throwUnsupported(
          fmt::format("{}: unsupported: subgraph attribute '{}' (control flow)", describe(n, opset), a.name()));
  const OpMapping* m = findOpMapping(n.op_type());
  Mark before = mark();
  try {
    if (!m)
      throwUnsupported(fmt::format("{}: unsupported: shoal has no mapping for op {}", describe(n, opset), n.op_type()));
    checkStorageInputs(n, opset, *m);
    NodeContext ctx(*this, n, opset);
    ctx.loc_ = nodeLocation(n, index);
    try {
      bool folded = m->fold && n.input_size() > 0 && ctx.allInputsKnown() && m->fold(ctx);
      if (!folded) m->lower(ctx);
      propagateStorage(n, *m);
    } catch (const ImportFailure& f) {
      // Failures from helpers that do not know the node get its description.
      if (f.message.rfind("node", 0) == 0) throw;
      throw ImportFailure{describe(n, opset) + ": " + (f.unsupported ? "unsupported: " : "") + f.message,
                          f.unsupported};
    }
    if (auto unread = ctx.unreadAttrs(); !unread.empty())
      ctx.unsupported(fmt::format("attribute{} {} (not implemented by this mapping)", unread.size() > 1 ? "s" : "",
                                  joinNames(unread)));
    for (size_t i = 0; i < ctx.numOutputs(); ++i)
      if (ctx.hasOutput(i) && !slots_.count(n.output(int(i))) && ctx.outputUsed(i))
        ctx.unsupported(fmt::format("output {} ('{}') is not produced by shoal's mapping", i, n.output(int(i))));
  } catch (const ImportFailure& f) {
    // What shoal cannot lower directly may still lower through the op's ONNX function body.
    if (!f.unsupported) throw;
    ImportFailure original = f;
    rollback(before);
    bool expanded = false;
    try {
      expanded = expandFunction(n, opset, depth);
    } catch (const ImportFailure& inner) {
      rollback(before);
      throw ImportFailure{fmt::format("{}; its ONNX function body has {}", original.message, inner.message),
                          inner.unsupported};
    }
    if (!expanded) throw original;
  }
  for (const auto& out : n.output())
    if (!out.empty()) {
      if (auto it = slots_.find(out); it != slots_.end()) crossCheck(n, opset, out, it->second);
      producers_[out] = Producer{n.op_type(), n.name(), {n.input().begin(), n.input().end()}};
    }
}

std::string Importer::runTimeOrigin(const std::string& name) const {
  auto isKnown = [&](const std::string& v) {
    auto it = slots_.find(v);
    // A fed graph input is read by the op that needs it, but nothing computed from it is folded.
    return v.empty() || (it != slots_.end() && it->second.known && !it->second.parameter);
  };
  std::set<std::string> seen;
  std::vector<std::string> todo{name};
  while (!todo.empty()) {
    std::string v = todo.back();
    todo.pop_back();
    if (isKnown(v) || !seen.insert(v).second) continue;
    auto p = producers_.find(v);
    if (p == producers_.end()) {
      auto it = slots_.find(v);
      if (it != slots_.end() && it->second.parameter)
        return fmt::format("it depends on the trainable initializer '{}'", v);
      return fmt::format("it depends on the graph input '{}'", v);
    }
    std::vector<std::string> unknown;
    for (const std::string& in : p->second.inputs)
      if (!isKnown(in)) unknown.push_back(in);
    if (unknown.empty())
      return fmt::format("node '{}' ({}) computes it from values known at import, which shoal does not fold",
                         p->second.node, p->second.opType);
    for (auto it = unknown.rbegin(); it != unknown.rend(); ++it) todo.push_back(*it);
  }
  return "";
}

namespace {

// The names a graph defines: its inputs, initializers and node outputs.
std::set<std::string> localNames(const onnx::GraphProto& g) {
  std::set<std::string> out;
  for (const auto& i : g.input()) out.insert(i.name());
  for (const auto& i : g.initializer()) out.insert(i.name());
  for (const auto& n : g.node())
    for (const auto& o : n.output())
      if (!o.empty()) out.insert(o);
  return out;
}

// In a subgraph nested inside an inlined one, the references to the inlined graph's values
// (`outer`, which the inlining renames) take the prefix; the nested graph's own names do not.
void renameOuterReferences(onnx::GraphProto& g, const std::set<std::string>& outer, const std::string& prefix) {
  std::set<std::string> own = localNames(g);
  auto fix = [&](std::string* name) {
    if (!name->empty() && !own.count(*name) && outer.count(*name)) *name = prefix + *name;
  };
  for (auto& n : *g.mutable_node()) {
    for (auto& in : *n.mutable_input()) fix(&in);
    for (auto& a : *n.mutable_attribute()) {
      if (a.has_g()) renameOuterReferences(*a.mutable_g(), outer, prefix);
      for (auto& sub : *a.mutable_graphs()) renameOuterReferences(sub, outer, prefix);
    }
  }
  for (auto& o : *g.mutable_output()) fix(o.mutable_name());
}

}  // namespace

std::string Importer::uniquePrefix(const onnx::NodeProto& n) {
  return fmt::format("{}::{}{}::", n.output_size() ? n.output(0) : n.name(), n.op_type(), functionCount_++);
}

std::vector<std::string> Importer::inlineGraph(const onnx::GraphProto& body, const std::vector<Slot>& inputs,
                                               const std::string& prefix, int64_t opset) {
  if (inlineDepth_ >= 8) throwUnsupported("control flow nested more than 8 deep");
  if (int(inputs.size()) != body.input_size())
    throwInvalid(fmt::format("the subgraph '{}' takes {} inputs, {} given", body.name(), body.input_size(), inputs.size()));
  if (body.sparse_initializer_size() > 0) throwUnsupported("sparse initializers are not supported");
  // Unrolled loops (nested ones multiply) could build graphs without bound.
  constexpr int64_t kMaxInlinedNodes = int64_t(1) << 20;
  inlinedNodes_ += body.node_size();
  if (inlinedNodes_ > kMaxInlinedNodes)
    throwUnsupported(fmt::format("control flow that unrolls to more than {} nodes", kMaxInlinedNodes));
  std::set<std::string> locals = localNames(body);
  auto rename = [&](const std::string& name) { return name.empty() || !locals.count(name) ? name : prefix + name; };
  for (int i = 0; i < body.input_size(); ++i) define(prefix + body.input(i).name(), inputs[size_t(i)]);
  for (const auto& init : body.initializer()) {
    try {
      define(prefix + init.name(), knownSlot(tensorFromProto(init, dir_)));
    } catch (const ImportFailure& f) {
      throw ImportFailure{"initializer '" + init.name() + "' of subgraph '" + body.name() + "': " + f.message,
                          f.unsupported};
    }
  }
  std::vector<onnx::NodeProto> nodes;
  for (const auto& n : body.node()) {
    onnx::NodeProto copy = n;
    for (auto& in : *copy.mutable_input()) in = rename(in);
    for (auto& out : *copy.mutable_output()) out = rename(out);
    for (auto& a : *copy.mutable_attribute()) {
      if (a.has_g()) renameOuterReferences(*a.mutable_g(), locals, prefix);
      for (auto& sub : *a.mutable_graphs()) renameOuterReferences(sub, locals, prefix);
    }
    copy.set_name(prefix + (n.name().empty() ? n.op_type() : n.name()));
    nodes.push_back(std::move(copy));
  }
  for (const auto& node : nodes)
    for (const auto& in : node.input())
      if (!in.empty()) ++uses_[in];
  std::vector<std::string> outs;
  for (const auto& o : body.output()) {
    outs.push_back(rename(o.name()));
    ++uses_[outs.back()];
  }
  ++inlineDepth_;
  try {
    for (size_t i = 0; i < nodes.size(); ++i) lowerNode(nodes[i], int(i), opset, 0);
  } catch (...) {
    --inlineDepth_;
    throw;
  }
  --inlineDepth_;
  for (const auto& o : outs) {
    auto it = slots_.find(o);
    if (it == slots_.end()) throwInvalid(fmt::format("the subgraph '{}' does not define its output '{}'", body.name(), o));
    // An output that is an enclosing graph's parameter itself: materialised under its own name,
    // so what the control-flow node passes on is that parameter, not a copy of its value.
    if (it->second.parameter && !it->second.value) materialize(o, it->second);
  }
  return outs;
}

bool Importer::expandFunction(const onnx::NodeProto& n, int64_t opset, int depth) {
  if (depth > 8) return false;
  const onnx::OpSchema* schema = onnx::OpSchemaRegistry::Schema(n.op_type(), int(opset), "");
  if (!schema) return false;
  onnx::FunctionProto built;
  const onnx::FunctionProto* fn = nullptr;
  if (schema->HasFunction()) {
    fn = schema->GetFunction();
  } else if (schema->HasContextDependentFunction()) {
    std::vector<onnx::TypeProto> types(size_t(n.input_size()));
    for (int i = 0; i < n.input_size(); ++i) {
      if (n.input(i).empty() || !slots_.count(n.input(i))) continue;
      const TensorType& t = slots_.at(n.input(i)).type;
      auto* tt = types[size_t(i)].mutable_tensor_type();
      tt->set_elem_type(onnxFromDtype(slots_.at(n.input(i)).onnxDType()));
      for (int64_t d : t.shape) tt->mutable_shape()->add_dim()->set_dim_value(d);
    }
    onnx::FunctionBodyBuildContextImpl ctx(n, types);
    try {
      if (!schema->BuildContextDependentFunction(ctx, built)) return false;
    } catch (const std::exception&) {
      return false;
    }
    fn = &built;
  }
  if (!fn || fn->node_size() == 0) return false;
  int64_t fnOpset = opset;
  for (const auto& o : fn->opset_import())
    if (isOnnxDomain(o.domain())) fnOpset = o.version();
  // Formal names -> the caller's; the body's own values get a prefix no model name has.
  std::map<std::string, std::string> rename;
  for (int i = 0; i < fn->input_size(); ++i) rename[fn->input(i)] = i < n.input_size() ? n.input(i) : "";
  for (int i = 0; i < fn->output_size(); ++i) rename[fn->output(i)] = i < n.output_size() ? n.output(i) : "";
  std::string prefix = uniquePrefix(n);
  auto mapName = [&](const std::string& name) {
    if (name.empty()) return name;
    auto it = rename.find(name);
    return it != rename.end() ? it->second : prefix + name;
  };
  std::map<std::string, const onnx::AttributeProto*> callerAttrs;
  for (const auto& a : n.attribute()) callerAttrs[a.name()] = &a;
  std::vector<onnx::NodeProto> body;
  for (const auto& inner : fn->node()) {
    onnx::NodeProto copy = inner;
    for (auto& in : *copy.mutable_input()) in = mapName(in);
    for (auto& out : *copy.mutable_output()) out = mapName(out);
    copy.clear_attribute();
    for (const auto& a : inner.attribute()) {
      if (a.ref_attr_name().empty()) {
        *copy.add_attribute() = a;
        continue;
      }
      onnx::AttributeProto value;
      if (auto it = callerAttrs.find(a.ref_attr_name()); it != callerAttrs.end())
        value = *it->second;
      else if (auto d = schema->attributes().find(a.ref_attr_name());
               d != schema->attributes().end() && d->second.default_value.type() != onnx::AttributeProto::UNDEFINED)
        value = d->second.default_value;
      else
        continue;
      value.set_name(a.name());
      *copy.add_attribute() = value;
    }
    if (copy.name().empty()) copy.set_name(prefix + inner.op_type());
    body.push_back(std::move(copy));
  }
  for (const auto& node : body)
    for (const auto& in : node.input())
      if (!in.empty()) ++uses_[in];
  for (size_t i = 0; i < body.size(); ++i) lowerNode(body[i], int(i), fnOpset, depth + 1);
  return true;
}

void Importer::lowerNodes() {
  const auto& nodes = model_.graph().node();
  for (int i = 0; i < nodes.size(); ++i) lowerNode(nodes[i], i, opset_, 0);
}

void Importer::declareOutputs() {
  for (const auto& vi : model_.graph().output()) {
    Slot& s = slot(vi.name(), nullptr);
    Value* v = materialize(vi.name(), s);
    if (s.storage && v->type().dtype != *s.storage) {
      // A float16 (int8, ...) output: computed in f32 (i32), stored back as the model says.
      Attrs c;
      c.set("dtype", std::string(dtypeName(*s.storage)));
      v = g_.addNode(OpKind::Cast, {v}, std::move(c), {{valueName(vi.name()) + ".stored", {*s.storage, v->type().shape}}},
                     pipelineLoc_ ? *pipelineLoc_ : Location{path_, 0, 0, vi.name()})
              ->result();
    }
    Attrs a;
    a.set("name", vi.name());
    g_.addNode(OpKind::Output, {v}, std::move(a), {}, pipelineLoc_ ? *pipelineLoc_ : Location{path_, 0, 0, vi.name()});
  }
}

std::vector<Value*> Importer::outputValues() {
  std::vector<Value*> out;
  for (const auto& vi : model_.graph().output()) out.push_back(materialize(vi.name(), slot(vi.name(), nullptr)));
  return out;
}

// ---- reading and checking a model -------------------------------------------------------------

namespace {

onnx::ModelProto readModel(const std::string& path) {
  auto bytes = readFileBytes(path, kOnnxModelFileLimit);
  if (!bytes) throwInvalid(bytes.error().message());
  onnx::ModelProto model;
  if (!model.ParseFromString(*bytes)) throwInvalid("not an ONNX model (the file does not parse as a ModelProto)");
  return model;
}

// Opsets, then ONNX's own checker.
void checkModel(const onnx::ModelProto& model, const std::string& path, bool runChecker) {
  int64_t opset = modelOpset(model);
  if (opset < 0) {
    if (model.opset_import_size() == 0) throwInvalid("the model imports no opset");
    throwUnsupported(fmt::format("the model imports no ai.onnx opset, only domain '{}' (shoal imports ai.onnx ops)",
                                 model.opset_import(0).domain()));
  }
  if (opset > kMaxOpset)
    throwUnsupported(
        fmt::format("the model uses opset {}; shoal imports ai.onnx opsets up to {} (export with "
                    "opset_version={})",
                    opset, kMaxOpset, kMaxOpset));
  if (!runChecker || opset > libonnxMaxOpset()) return;
  try {
    onnx::checker::CheckerContext ctx;
    ctx.set_ir_version(int(model.ir_version()));
    std::unordered_map<std::string, int> opsets;
    for (const auto& o : model.opset_import()) opsets[o.domain()] = int(o.version());
    ctx.set_opset_imports(opsets);
    ctx.set_model_dir(fs::path(path).parent_path().string());
    onnx::checker::LexicalScopeContext lex;
    onnx::checker::check_graph(model.graph(), ctx, lex);
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (size_t cut = what.find("\n\n==> Context:"); cut != std::string::npos) what.resize(cut);
    throwInvalid("the ONNX checker rejects the model: " + what);
  }
}

// Whether ONNX's shape inference can run over the graph: libonnx divides by strides,
// dilations, kernel extents, groups and block sizes without checking them (a zero stride is
// SIGFPE inside convPoolShapeInference, found by the onnx fuzzer). With such a value the
// cross-check is skipped and shoal's own lowering reports the attribute.
bool safeForOnnxInference(const onnx::GraphProto& g) {
  for (const auto& n : g.node())
    for (const auto& a : n.attribute()) {
      const std::string& name = a.name();
      if (name == "strides" || name == "dilations" || name == "kernel_shape") {
        for (int64_t v : a.ints())
          if (v <= 0) return false;
      } else if ((name == "group" || name == "blocksize") && a.type() == onnx::AttributeProto::INT && a.i() <= 0) {
        return false;
      }
    }
  return true;
}

// ONNX's shape inference over the model with its inputs bound as shoal bound them: the types
// it finds are checked against shoal's at every node (a mismatch is a bug, never silent).
std::map<std::string, onnx::TypeProto> inferTypes(onnx::ModelProto& model, const std::map<std::string, Shape>& bound) {
  std::map<std::string, onnx::TypeProto> out;
  if (!safeForOnnxInference(model.graph()) || modelOpset(model) > libonnxMaxOpset()) return out;
  for (auto& vi : *model.mutable_graph()->mutable_input()) {
    auto it = bound.find(vi.name());
    if (it == bound.end() || !vi.type().has_tensor_type()) continue;
    auto* shape = vi.mutable_type()->mutable_tensor_type()->mutable_shape();
    shape->clear_dim();
    for (int64_t d : it->second) shape->add_dim()->set_dim_value(d);
  }
  try {
    onnx::shape_inference::InferShapes(model);
  } catch (const std::exception&) {
    return out;  // inference is only a cross-check; the import stands on shoal's shape rules
  }
  for (const auto& vi : model.graph().value_info()) out[vi.name()] = vi.type();
  for (const auto& vi : model.graph().output()) out[vi.name()] = vi.type();
  return out;
}

OnnxImportError toError(const ImportFailure& f, Location loc) {
  return {Error(f.message, std::move(loc)), f.unsupported};
}

void fillInfo(const onnx::ModelProto& model, OnnxModelInfo* info) {
  if (!info) return;
  info->irVersion = model.ir_version();
  for (const auto& o : model.opset_import()) info->opsets[o.domain() == "ai.onnx" ? "" : o.domain()] = o.version();
  info->producer = model.producer_name() + (model.producer_version().empty() ? "" : " " + model.producer_version());
  std::set<std::string> inits;
  for (const auto& i : model.graph().initializer()) inits.insert(i.name());
  info->inputs.clear();
  info->outputs.clear();
  info->inputTypes.clear();
  info->outputTypes.clear();
  info->inputProblems.clear();
  auto declared = [](const onnx::ValueInfoProto& vi) -> std::optional<DType> {
    if (!vi.type().has_tensor_type()) return std::nullopt;
    return dtypeFromOnnx(vi.type().tensor_type().elem_type());
  };
  for (const auto& vi : model.graph().input()) {
    if (inits.count(vi.name())) continue;
    info->inputs.push_back(vi.name());
    info->inputTypes.push_back(declared(vi));
    if (!vi.type().has_tensor_type())
      info->inputProblems.push_back(
          fmt::format("input '{}' is not a tensor (sequences, maps and optionals are not supported)", vi.name()));
    else if (!dtypeFromOnnx(vi.type().tensor_type().elem_type()))
      info->inputProblems.push_back(fmt::format("input '{}' has element type {}, which shoal does not support",
                                                vi.name(), onnxTypeName(vi.type().tensor_type().elem_type())));
  }
  for (const auto& vi : model.graph().output()) {
    info->outputs.push_back(vi.name());
    info->outputTypes.push_back(declared(vi));
  }
  std::set<std::string> ops;
  info->allOpsMapped = true;
  for (const auto& n : model.graph().node()) {
    bool onnxOp = isOnnxDomain(n.domain());
    ops.insert(onnxOp ? n.op_type() : n.domain() + ":" + n.op_type());
    const OpMapping* m = onnxOp ? findOpMapping(n.op_type()) : nullptr;
    if (!m || m->foldOnly) info->allOpsMapped = false;
  }
  info->opTypes.assign(ops.begin(), ops.end());
}

}  // namespace

}  // namespace onnx_import

using namespace onnx_import;

bool onnxAvailable() { return true; }

std::string onnxUnavailableMessage() { return ""; }

bool isOnnxPath(const std::string& path) { return path.size() >= 5 && path.substr(path.size() - 5) == ".onnx"; }

OnnxExpected<OnnxModelInfo> readOnnxModelInfo(const std::string& path) {
  try {
    onnx::ModelProto model = readModel(path);
    OnnxModelInfo info;
    fillInfo(model, &info);
    return info;
  } catch (const ImportFailure& f) {
    return Unexpected(toError(f, Location{path, 0, 0, ""}));
  }
}

OnnxExpected<Pipeline> importOnnxFile(const std::string& path, const OnnxImportOptions& opts, OnnxModelInfo* info) {
  Location fileLoc{path, 0, 0, ""};
  try {
    onnx::ModelProto model = readModel(path);
    fillInfo(model, info);
    checkModel(model, path, opts.check);
    std::string name = model.graph().name();
    if (name.empty()) name = fs::path(path).stem().string();
    auto g = std::make_unique<Graph>(name);
    std::vector<std::string> batched;  // inputs whose leading extent is symbolic (the batch)
    for (const auto& vi : model.graph().input()) {
      if (!vi.type().has_tensor_type() || !vi.type().tensor_type().has_shape()) continue;
      const auto& dims = vi.type().tensor_type().shape().dim();
      if (dims.size() > 0 && !dims[0].has_dim_value() && !opts.inputShapes.count(vi.name()))
        batched.push_back(vi.name());
    }
    Importer imp(*g, model, path, opts);
    imp.declareInputs();
    imp.setInferredTypes(inferTypes(model, imp.boundInputShapes()));
    imp.lowerNodes();
    imp.declareOutputs();
    if (auto ok = verifyGraph(*g); !ok)
      throwInvalid("the imported graph does not verify (a bug in shoal's ONNX import): " + ok.error().message());
    // A batch dimension (a symbolic leading extent) is bound afresh for each batch size a
    // Session runs: the model is imported again, so every shape it folded follows.
    if (!batched.empty()) {
      std::map<std::string, Shape> bound = imp.boundInputShapes();
      g->setBatchRebuilder([path, opts, batched, bound](int64_t batch) -> Expected<std::unique_ptr<Graph>> {
        OnnxImportOptions again = opts;
        for (const auto& name : batched) {
          Shape s = bound.at(name);
          s[0] = batch;
          again.inputShapes[name] = s;
        }
        auto p = importOnnxFile(path, again);
        if (!p) return Unexpected(p.error().error);
        p->model->setBatchRebuilder({});
        return std::move(p->model);
      });
    }
    Pipeline p;
    p.file = path;
    p.model = std::move(g);
    if (model.graph().input_size() > 0 && !p.model->inputNodes().empty())
      p.inputName = p.model->inputNodes().front()->attrs().getString("name");
    if (model.graph().output_size() > 0) p.logitsName = model.graph().output(0).name();
    return p;
  } catch (const ImportFailure& f) {
    return Unexpected(toError(f, fileLoc));
  } catch (const std::bad_alloc&) {
    return Unexpected(OnnxImportError{Error("out of memory while importing the model", fileLoc), false});
  }
}

OnnxExpected<std::vector<Value*>> importOnnxInto(Graph& g, const std::string& path, const std::vector<Value*>& inputs,
                                                 const std::string& prefix, const Location& loc,
                                                 const OnnxImportOptions& opts, OnnxModelInfo* info) {
  try {
    onnx::ModelProto model = readModel(path);
    fillInfo(model, info);
    checkModel(model, path, opts.check);
    Importer imp(g, model, path, opts);
    imp.setPrefix(prefix.empty() ? "" : prefix + "/", loc);
    imp.bindInputs(inputs);
    imp.setInferredTypes(inferTypes(model, imp.boundInputShapes()));
    imp.lowerNodes();
    return imp.outputValues();
  } catch (const ImportFailure& f) {
    return Unexpected(OnnxImportError{Error(fmt::format("ONNX model '{}': {}", path, f.message), loc), f.unsupported});
  } catch (const std::bad_alloc&) {
    return Unexpected(
        OnnxImportError{Error(fmt::format("ONNX model '{}': out of memory while importing", path), loc), false});
  }
}

}  // namespace shoal
