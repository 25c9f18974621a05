// Lowering Mermaid pipelines to IR: stages (data, preprocessing, device decision, training,
// output) configure the Pipeline; layer nodes become IR ops, shapes inferred as we go.
#include "frontend/pipeline_loader.h"
#include "frontend/pipeline_lowering.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <queue>
#include <set>
#include <unordered_map>

#include "frontend/ir_flowchart.h"
#include "frontend/label.h"
#include "frontend/layers.h"
#include "frontend/layers_conv.h"
#include "frontend/layers_shape.h"
#include "frontend/onnx/onnx_import.h"
#include "ir/parser.h"
#include "ir/shape_inference.h"
#include "ir/verifier.h"
#include "support/file_util.h"

namespace shoal {

const std::vector<StageAlias>& stageAliases() {
  static const std::vector<StageAlias> aliases = {
      {"数据输入", "data input", "input"},
      {"数据预处理", "data preprocessing", "preprocess"},
      {"是否使用GPU", "use GPU?", "decision"},
      {"加载到GPU内存", "load into GPU memory", "place_gpu"},
      {"加载到CPU内存", "load into CPU memory", "place_cpu"},
      {"执行卷积操作", "run convolution", "conv_stage"},
      {"执行矩阵乘法", "run matrix multiplication", "matmul_stage"},
      {"模型推断或训练", "inference or training", "train"},
      {"结果输出", "result output", "output"},
  };
  return aliases;
}

namespace pipeline_lowering {


std::optional<int64_t> Lowering::intArg(PNode& p, const char* key, int64_t dflt, bool positive) {
  const LabelArg* a = arg(p, key);
  if (!a) return dflt;
  auto* v = std::get_if<int64_t>(&a->value);
  if (!v || (positive && *v <= 0)) {
    badArg(*a, positive ? "a positive integer" : "an integer");
    return std::nullopt;
  }
  return *v;
}

std::optional<double> Lowering::floatArg(PNode& p, const char* key, double dflt) {
  const LabelArg* a = arg(p, key);
  if (!a) return dflt;
  if (auto* i = std::get_if<int64_t>(&a->value)) return double(*i);
  if (auto* d = std::get_if<double>(&a->value)) return *d;
  badArg(*a, "a number");
  return std::nullopt;
}

std::optional<std::string> Lowering::stringArg(PNode& p, const char* key, const std::string& dflt) {
  const LabelArg* a = arg(p, key);
  if (!a) return dflt;
  if (auto* s = std::get_if<std::string>(&a->value)) return *s;
  badArg(*a, "a name");
  return std::nullopt;
}

std::optional<std::vector<int64_t>> Lowering::pairArg(PNode& p, const char* key, std::vector<int64_t> dflt) {
  const LabelArg* a = arg(p, key);
  if (!a) return dflt;
  std::vector<int64_t> v;
  if (auto* i = std::get_if<int64_t>(&a->value)) v = {*i, *i};
  else if (auto* is = std::get_if<std::vector<int64_t>>(&a->value)) v = *is;
  if (v.size() != 2 || v[0] <= 0 || v[1] <= 0) {
    badArg(*a, "a positive size like 3 or 3x3");
    return std::nullopt;
  }
  return v;
}

std::optional<bool> Lowering::boolArg(PNode& p, const char* key, bool dflt) {
  const LabelArg* a = arg(p, key);
  if (!a) return dflt;
  if (auto* i = std::get_if<int64_t>(&a->value); i && (*i == 0 || *i == 1)) return *i == 1;
  if (auto* s = std::get_if<std::string>(&a->value); s && (*s == "true" || *s == "false")) return *s == "true";
  badArg(*a, "true or false");
  return std::nullopt;
}

std::optional<std::vector<double>> Lowering::floatsArg(PNode& p, const char* key) {
  const LabelArg* a = arg(p, key);
  if (!a) return std::vector<double>{};
  if (auto* i = std::get_if<int64_t>(&a->value)) return std::vector<double>{double(*i)};
  if (auto* d = std::get_if<double>(&a->value)) return std::vector<double>{*d};
  if (auto* is = std::get_if<std::vector<int64_t>>(&a->value)) return std::vector<double>(is->begin(), is->end());
  if (auto* ds = std::get_if<std::vector<double>>(&a->value)) return *ds;
  badArg(*a, "a number or a list of numbers");
  return std::nullopt;
}

void Lowering::classify(PNode& p) {
  const mermaid::NodeDecl& d = *p.decl;
  std::string text = d.hasLabel ? d.label : d.id;
  Location textLoc = d.hasLabel ? d.labelLoc : d.loc;
  textLoc.node = d.id;
  p.loc = textLoc;
  p.loc.node = d.id;
  // The seed's stage names: the whole label, or the part before a colon.
  std::string head = text;
  size_t colon = text.find(':');
  size_t wide = text.find("：");
  size_t cut = std::min(colon, wide);
  if (cut != std::string::npos) head = text.substr(0, cut);
  std::string headTrim = trim(head);
  for (const StageAlias& a : stageAliases()) {
    if (headTrim == a.chinese || lower(headTrim) == lower(a.english)) {
      std::string stage(a.stage);
      // Parse the arguments after the alias, if any, with a placeholder op word.
      std::string rest = cut == std::string::npos ? "" : text.substr(cut + (cut == wide ? 3 : 1));
      Location restLoc = textLoc;
      restLoc.col += int(text.size() - rest.size()) - 2;
      auto parsed = mermaid::parseLabel("_ " + rest, restLoc, diags_);
      if (!parsed) {
        p.labelOk = false;
        return;
      }
      p.label = *parsed;
      p.label.op = headTrim;
      p.label.opLoc = textLoc;
      const char* name = stage == "input"                                 ? "input"
                         : stage == "preprocess"                          ? "preprocess"
                         : stage == "decision" || stage == "place_gpu" || stage == "place_cpu" ? "device"
                         : stage == "conv_stage"                          ? "conv_stage"
                         : stage == "matmul_stage"                        ? "matmul_stage"
                         : stage == "train"                               ? "train"
                                                                          : "output";
      p.spec = findLayerSpec(name);
      p.role = stage == "decision" ? Role::Decision : p.spec->role;
      // Messages name the layer a seed stage stands for.
      p.op = p.role == Role::ConvStage ? "conv2d" : p.role == Role::MatmulStage ? "dense" : std::string(name);
      return;
    }
  }
  auto parsed = mermaid::parseLabel(text, textLoc, diags_);
  if (!parsed) {
    p.labelOk = false;
    return;
  }
  p.label = *parsed;
  p.op = canonicalOp(lower(p.label.op));
  if (d.shape == mermaid::NodeShape::Decision) {
    if (p.op != "device") {
      error(p.label.opLoc, fmt::format("a decision node must be {{device: auto|cpu|gpu}} or {{是否使用GPU}}, got {}",
                                       mermaid::text::quoteToken(p.label.op)));
      p.labelOk = false;
      return;
    }
    p.role = Role::Decision;
    p.spec = findLayerSpec("device");
    return;
  }
  p.spec = findLayerSpec(p.op);
  if (p.spec) {
    p.role = p.spec->role;
    return;
  }
  p.role = Role::Layer;
  if (plainOp(p.op)) return;
  std::vector<std::string> names;
  for (const LayerSpec& l : layerSpecs())
    if (l.role != Role::ConvStage && l.role != Role::MatmulStage) names.emplace_back(l.name);
  for (OpKind k : allOps())
    if (plainOp(opName(k))) names.emplace_back(opName(k));
  if (opKindFromName(p.op))
    error(p.label.opLoc, fmt::format("op '{}' is internal to shoal and cannot be written in a pipeline", p.label.op));
  else
    error(p.label.opLoc, fmt::format("unknown op {}{}", mermaid::text::quoteToken(p.label.op), suggestion(p.op, names)));
  p.labelOk = false;
}

bool Lowering::checkArgs(PNode& p) {
  // A layer's own argument list, or a plain op's attributes.
  std::vector<std::string> accepted;
  if (p.spec) {
    for (std::string_view a : p.spec->args) accepted.emplace_back(a);
  } else if (auto kind = plainOp(p.op)) {
    for (const AttrSpec& a : opInfo(*kind).attrs) accepted.push_back(a.name);
  }
  bool ok = true;
  for (const LabelArg& a : p.label.args) {
    if (std::find(accepted.begin(), accepted.end(), a.key) != accepted.end()) continue;
    std::string hint = suggestion(a.key, accepted);
    error(a.loc, fmt::format("{} does not take '{}'{}", p.op, a.key, hint));
    ok = false;
  }
  // Positional words: `input: mnist`, `{device: auto}`; nowhere else.
  for (const LabelArg& a : p.label.positional) {
    bool allowed = p.spec && p.spec->positional && std::holds_alternative<std::string>(a.value) &&
                   p.label.positional.size() == 1;
    if (!allowed) {
      error(a.valueLoc, fmt::format("unexpected {} in a {} label: arguments are written key=value",
                                    attrValueString(a.value), p.op));
      ok = false;
    }
  }
  return ok;
}

// The operand slot an edge label names: a 0-based number, or a name (lhs/rhs, a/b, x/y,
// q/k/v, data/indices, ...); nullopt for any other label.
std::optional<int> operandSlot(const std::string& label) {
  if (!label.empty() && label.size() <= 3 && std::all_of(label.begin(), label.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::stoi(label);
  static const std::map<std::string, int> named = {
      {"lhs", 0},     {"a", 0},     {"x", 0},      {"left", 0},   {"input", 0}, {"q", 0},       {"query", 0},
      {"data", 0},    {"rhs", 1},   {"b", 1},      {"y", 1},      {"right", 1}, {"weight", 1},  {"w", 1},
      {"kernel", 1},  {"k", 1},     {"key", 1},    {"indices", 1}, {"ids", 1},  {"v", 2},       {"value", 2}};
  auto it = named.find(label);
  if (it == named.end()) return std::nullopt;
  return it->second;
}

std::vector<Value*> Lowering::operands(PNode& p) {
  // Operands come in edge order, unless an edge label names the operand's slot (see
  // operandSlot). An edge out of a node with parts (split) says which part it carries:
  // `part K`, or `part K as SLOT`.
  struct Operand {
    int slot;
    bool labelled;
    Value* value;
    const mermaid::Edge* edge;
  };
  std::vector<Operand> ordered;
  int next = 1000;  // unlabelled edges go after every labelled slot, in edge order
  for (const mermaid::Edge* e : p.inEdges) {
    PNode& src = nodes_[e->from];
    if (src.poisoned || !src.labelOk) {
      p.poisoned = true;
      return {};
    }
    const bool ownLabels = p.spec && p.spec->ownsEdgeLabels;
    std::string label = e->hasLabel && src.role != Role::Decision && !ownLabels ? lower(trim(e->label)) : "";
    const Location& labelLoc = e->hasLabel ? e->labelLoc : e->loc;
    Value* value = src.value;
    if (!src.parts.empty()) {
      // "part K" [ "as" SLOT ]
      size_t k = std::string::npos;
      std::string rest;
      if (label.rfind("part ", 0) == 0) {
        std::string tail = trim(label.substr(5));
        size_t end = 0;
        while (end < tail.size() && tail[end] >= '0' && tail[end] <= '9') ++end;
        if (end > 0 && end <= 6) k = std::stoul(tail.substr(0, end));
        rest = trim(tail.substr(end));
        if (rest.rfind("as ", 0) == 0) rest = trim(rest.substr(3));
        else if (!rest.empty()) k = std::string::npos;
      }
      if (k == std::string::npos || k >= src.parts.size()) {
        error(labelLoc, fmt::format("an edge out of {} '{}' must say which of its {} parts it carries: -->|part 0| ... "
                                    "-->|part {}| (then optionally 'as' an operand: -->|part 0 as rhs|)",
                                    src.op, e->from, src.parts.size(), src.parts.size() - 1));
        p.poisoned = true;
        return {};
      }
      value = src.parts[k];
      label = rest;
    } else if (label.rfind("part ", 0) == 0) {
      error(labelLoc, fmt::format("'{}' has one output; only an edge out of a split picks a part", e->from));
      p.poisoned = true;
      return {};
    }
    if (!value) continue;
    std::optional<int> slot = label.empty() ? std::nullopt : operandSlot(label);
    Operand op{slot ? *slot : next++, slot.has_value(), value, e};
    bool dup = false;
    for (const Operand& o : ordered) {
      if (o.value == value && (!o.labelled || !op.labelled || o.slot == op.slot)) dup = true;  // a repeated edge
      else if (o.labelled && op.labelled && o.slot == op.slot) {
        error(labelLoc, fmt::format("two edges into '{}' name operand {} ('{}' and '{}')", p.decl->id, o.slot,
                                    o.edge->from, e->from));
        p.poisoned = true;
        return {};
      }
    }
    if (!dup) ordered.push_back(op);
  }
  std::stable_sort(ordered.begin(), ordered.end(), [](const Operand& a, const Operand& b) { return a.slot < b.slot; });
  std::vector<Value*> out;
  for (const Operand& o : ordered) out.push_back(o.value);
  return out;
}

void Lowering::lowerInput(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  const std::string& id = p.decl->id;
  if (!ins.empty()) {
    error(p.loc, fmt::format("input '{}' cannot have incoming edges", id));
    p.poisoned = true;
    return;
  }
  std::string dataset = "mnist";
  if (!p.label.positional.empty()) dataset = std::get<std::string>(p.label.positional[0].value);
  auto ds = stringArg(p, "dataset", dataset);
  auto shape = arg(p, "shape");
  if (!ds) return void(p.poisoned = true);
  if (shape && !arg(p, "dataset") && p.label.positional.empty()) {
    // A plain tensor input fed by the caller.
    Shape s;
    if (auto* is = std::get_if<std::vector<int64_t>>(&shape->value)) s = *is;
    else if (auto* i = std::get_if<int64_t>(&shape->value)) s = {*i};
    bool ok = !s.empty() && std::all_of(s.begin(), s.end(), [](int64_t d) { return d > 0; });
    if (!ok) return badArg(*shape, "a shape like 64x784"), void(p.poisoned = true);
    auto dt = stringArg(p, "dtype", "f32");
    if (!dt) return void(p.poisoned = true);
    auto dtype = parseDType(*dt);
    if (!dtype) return badArg(*arg(p, "dtype"), kDTypeChoices), void(p.poisoned = true);
    auto name = stringArg(p, "name", id);
    if (!name) return void(p.poisoned = true);
    p.value = layers::input(g, *name, {*dtype, s}, p.loc);
    return;
  }
  if (*ds != "mnist") {
    error(p.label.positional.empty() ? arg(p, "dataset")->valueLoc : p.label.positional[0].valueLoc,
          fmt::format("unknown dataset '{}' (shoal reads mnist-style IDX files; or give shape= for a tensor input)", *ds));
    p.poisoned = true;
    return;
  }
  if (sawInput_) {
    error(p.loc, "a pipeline has one data input; this is the second");
    p.poisoned = true;
    return;
  }
  sawInput_ = true;
  DataSpec data;
  auto path = stringArg(p, "path", data.path);
  auto batch = intArg(p, "batch", batch_);
  auto weights = stringArg(p, "weights", "");
  if (!path || !batch || !weights) return void(p.poisoned = true);
  data.path = *path;
  data.batch = *batch;
  data.weights = *weights;
  data.loc = p.loc;
  if (!pipe_.train) batch_ = *batch;
  data.batch = batch_;
  pipe_.data = data;
  pipe_.inputName = id;
  Value* x = layers::input(g, id, {DType::U8, {batch_, 1, 28, 28}}, p.loc);
  Attrs a;
  a.set("dtype", std::string("f32"));
  p.value = fromResult(p, layers::addOp(g, OpKind::Cast, {x}, a, id + ".f32", p.loc));
  return;
}

void Lowering::lowerPreprocess(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  const std::string& id = p.decl->id;
  Value* x = needOne(p, ins);
  if (!x) return;
  bool any = arg(p, "scale") || arg(p, "mean") || arg(p, "std") || arg(p, "shift");
  auto scale = floatArg(p, "scale", any ? 1.0 : 1.0 / 255.0);
  auto shift = floatArg(p, "shift", 0.0);
  auto mean = floatsArg(p, "mean");
  auto stdv = floatsArg(p, "std");
  if (!scale || !shift || !mean || !stdv) return void(p.poisoned = true);
  Value* v = x;
  bool norm = !mean->empty() || !stdv->empty();
  if (*scale != 1.0 || *shift != 0.0 || !norm) {
    Attrs a;
    a.set("scale", *scale);
    a.set("shift", *shift);
    v = fromResult(p, layers::addOp(g, OpKind::Scale, {v}, a, norm ? id + ".scaled" : id, p.loc));
    if (!v) return;
  }
  if (norm) {
    if (mean->empty()) mean->push_back(0.0);
    if (stdv->empty()) stdv->push_back(1.0);
    Attrs a;
    a.set("mean", *mean);
    a.set("std", *stdv);
    v = fromResult(p, layers::addOp(g, OpKind::Normalize, {v}, a, id, p.loc));
  }
  p.value = v;
  return;
}

void Lowering::lowerDevice(PNode& p, std::vector<Value*>& ins) {
  if (p.role == Role::Decision) {
    std::string dev = "auto";
    if (!p.label.positional.empty()) dev = lower(std::get<std::string>(p.label.positional[0].value));
    if (dev == "gpu") dev = "cuda";
    if (dev != "auto" && dev != "cpu" && dev != "cuda") {
      error(p.label.positional[0].valueLoc, fmt::format("device must be auto, cpu or gpu, got '{}'", dev));
      return void(p.poisoned = true);
    }
    pipe_.device = dev;
  }
  p.value = needOne(p, ins);
  return;
}

void Lowering::lowerConvStage(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  const std::string& id = p.decl->id;
  // The seed's convolution stage: Conv2D(32, 3x3, ReLU) then MaxPool 2x2.
  Value* x = needOne(p, ins);
  if (!x) return;
  layers::Conv2dSpec spec;
  spec.filters = 32;
  spec.activation = "relu";
  Value* c = fromResult(p, layers::conv2d(g, x, id, spec, p.loc));
  if (!c) return;
  p.value = fromResult(p, layers::pool2d(g, OpKind::MaxPool2d, c, id + ".pool", {2, 2}, {}, {}, p.loc));
  return;
}

void Lowering::lowerMatmulStage(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  const std::string& id = p.decl->id;
  // The seed's matrix-multiplication stage: Flatten, Dense(64, ReLU), Dense(10).
  Value* x = needOne(p, ins);
  if (!x) return;
  Value* f = fromResult(p, layers::addOp(g, OpKind::Flatten, {x}, {}, id + ".flatten", p.loc));
  if (!f) return;
  Value* h = fromResult(p, layers::dense(g, f, id + ".hidden", 64, true, "relu", p.loc));
  if (!h) return;
  p.value = fromResult(p, layers::dense(g, h, id + ".out", 10, true, "", p.loc));
  return;
}

void Lowering::lowerTrain(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  if (pipe_.train) {
    error(p.loc, "a pipeline has one train stage; this is the second");
    return void(p.poisoned = true);
  }
  TrainConfig t;
  auto loss = stringArg(p, "loss", t.loss);
  auto smoothing = floatArg(p, "label_smoothing", 0.0);
  auto opt = stringArg(p, "optimizer", t.optimizer);
  auto lr = floatArg(p, "lr", t.lr);
  auto epochs = intArg(p, "epochs", t.epochs);
  auto batch = intArg(p, "batch", batch_);
  auto validation = floatArg(p, "validation", 0.0);
  auto momentum = floatArg(p, "momentum", 0.0);
  auto nesterov = boolArg(p, "nesterov", false);
  auto b1 = floatArg(p, "beta1", t.beta1);
  auto b2 = floatArg(p, "beta2", t.beta2);
  auto clip = floatArg(p, "clip_norm", 0.0);
  auto lossScale = floatArg(p, "loss_scale", 0.0);
  auto lossScaleInterval = intArg(p, "loss_scale_interval", t.lossScaleInterval);
  auto schedule = stringArg(p, "schedule", "constant");
  auto stepSize = intArg(p, "step_size", 1);
  auto gamma = floatArg(p, "gamma", 0.1);
  auto tMax = intArg(p, "t_max", 0, /*positive=*/false);
  auto etaMin = floatArg(p, "eta_min", 0.0);
  auto warmup = intArg(p, "warmup", 0, /*positive=*/false);
  auto seed = intArg(p, "seed", 0, false);
  auto shuffle = boolArg(p, "shuffle", true);
  if (!loss || !smoothing || !opt || !lr || !epochs || !batch || !validation || !momentum || !nesterov || !b1 || !b2 ||
      !clip || !lossScale || !lossScaleInterval || !schedule || !stepSize || !gamma || !tMax || !etaMin || !warmup ||
      !seed || !shuffle)
    return void(p.poisoned = true);
  // Every check reports at the argument it is about.
  auto bad = [&](const char* key, const std::string& msg) {
    error(arg(p, key)->valueLoc, msg);
    p.poisoned = true;
  };
  if (*loss == "cross_entropy") *loss = "softmax_cross_entropy";
  if (*loss != "softmax_cross_entropy" && *loss != "mse" && *loss != "bce_with_logits")
    return bad("loss", fmt::format("unknown loss '{}' (cross_entropy (or softmax_cross_entropy), mse or bce_with_logits)", *loss));
  if (*opt != "adam" && *opt != "adamw" && *opt != "sgd")
    return bad("optimizer", fmt::format("unknown optimizer '{}' (adam, adamw or sgd)", *opt));
  const bool adam = *opt != "sgd";
  // The optimizer's own defaults: AdamW's are PyTorch's, Adam keeps the seed's Keras eps.
  auto eps = floatArg(p, "eps", *opt == "adamw" ? 1e-8 : 1e-7);
  auto wd = floatArg(p, "weight_decay", *opt == "adamw" ? 1e-2 : 0.0);
  if (!eps || !wd) return void(p.poisoned = true);
  if (*lr <= 0) return badArg(*arg(p, "lr"), "a positive number"), void(p.poisoned = true);
  if (*validation < 0 || *validation >= 1)
    return badArg(*arg(p, "validation"), "a fraction in [0, 1)"), void(p.poisoned = true);
  if (arg(p, "label_smoothing") && *loss != "softmax_cross_entropy")
    return bad("label_smoothing", fmt::format("label_smoothing applies to loss=cross_entropy, not {}", *loss));
  if (*smoothing < 0 || *smoothing > 1) return badArg(*arg(p, "label_smoothing"), "in [0, 1]"), void(p.poisoned = true);
  for (const char* key : {"momentum", "nesterov"})
    if (arg(p, key) && adam) return bad(key, fmt::format("{} applies to optimizer=sgd, not {}", key, *opt));
  for (const char* key : {"beta1", "beta2", "eps"})
    if (arg(p, key) && !adam) return bad(key, fmt::format("{} applies to optimizer=adam or adamw, not sgd", key));
  if (*momentum < 0) return badArg(*arg(p, "momentum"), "0 or more"), void(p.poisoned = true);
  if (*nesterov && *momentum <= 0) return bad("nesterov", "nesterov=true needs a positive momentum");
  if (!(*b1 >= 0 && *b1 < 1)) return badArg(*arg(p, "beta1"), "in [0, 1)"), void(p.poisoned = true);
  if (!(*b2 >= 0 && *b2 < 1)) return badArg(*arg(p, "beta2"), "in [0, 1)"), void(p.poisoned = true);
  if (*eps <= 0) return badArg(*arg(p, "eps"), "a positive number"), void(p.poisoned = true);
  if (*wd < 0) return badArg(*arg(p, "weight_decay"), "0 or more"), void(p.poisoned = true);
  if (*clip < 0) return badArg(*arg(p, "clip_norm"), "0 (no clipping) or a positive number"), void(p.poisoned = true);
  if (!(*lossScale >= 0) || !std::isfinite(*lossScale))
    return badArg(*arg(p, "loss_scale"), "0 (off) or a positive initial scale such as 65536"), void(p.poisoned = true);
  LrSchedule sched;
  if (*schedule == "constant") {
    sched.kind = ScheduleKind::Constant;
  } else if (*schedule == "step") {
    sched.kind = ScheduleKind::Step;
    if (!arg(p, "step_size")) return bad("schedule", "schedule=step needs step_size= (steps between decays)");
  } else if (*schedule == "cosine") {
    sched.kind = ScheduleKind::Cosine;
  } else {
    return bad("schedule", fmt::format("unknown schedule '{}' (constant, step or cosine)", *schedule));
  }
  for (const char* key : {"step_size", "gamma"})
    if (arg(p, key) && sched.kind != ScheduleKind::Step) return bad(key, fmt::format("{} applies to schedule=step", key));
  for (const char* key : {"t_max", "eta_min"})
    if (arg(p, key) && sched.kind != ScheduleKind::Cosine) return bad(key, fmt::format("{} applies to schedule=cosine", key));
  if (*gamma <= 0) return badArg(*arg(p, "gamma"), "a positive number"), void(p.poisoned = true);
  if (*tMax < 0) return badArg(*arg(p, "t_max"), "0 (the whole run) or a positive number of steps"), void(p.poisoned = true);
  if (*etaMin < 0) return badArg(*arg(p, "eta_min"), "0 or more"), void(p.poisoned = true);
  if (*warmup < 0) return badArg(*arg(p, "warmup"), "0 or more steps"), void(p.poisoned = true);
  sched.stepSize = sched.kind == ScheduleKind::Step ? *stepSize : 0;
  sched.gamma = *gamma;
  sched.tMax = *tMax;
  sched.etaMin = *etaMin;
  sched.warmup = *warmup;
  t.loss = *loss, t.labelSmoothing = *smoothing, t.optimizer = *opt, t.lr = *lr, t.epochs = *epochs, t.batch = *batch;
  // The data sets a pipeline reads give class labels: mse and bce train against their one-hot rows.
  t.oneHotTargets = *loss != "softmax_cross_entropy";
  t.validation = *validation, t.momentum = *momentum, t.nesterov = *nesterov, t.weightDecay = *wd;
  t.beta1 = *b1, t.beta2 = *b2, t.eps = *eps, t.clipNorm = *clip, t.schedule = sched;
  if (arg(p, "loss_scale")) t.lossScale = *lossScale;
  t.lossScaleInterval = *lossScaleInterval;
  t.seed = uint64_t(*seed), t.shuffle = *shuffle;
  t.loc = p.loc;
  pipe_.train = t;
  if (p.poisoned) return;  // the model above it failed; its settings were still checked
  Value* x = needOne(p, ins);
  if (!x) return;
  layers::output(g, x, pipe_.logitsName, p.loc);
  p.value = x;
  return;
}

void Lowering::lowerOutput(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  const std::string& id = p.decl->id;
  sawOutput_ = true;
  Value* x = needOne(p, ins);
  if (!x) return;
  auto metrics = stringArg(p, "metrics", "");
  auto plot = stringArg(p, "plot", "");
  auto ckpt = stringArg(p, "checkpoint", "");
  auto name = stringArg(p, "name", pipe_.train ? pipe_.logitsName : id);
  if (!metrics || !plot || !ckpt || !name) return void(p.poisoned = true);
  size_t start = 0;
  while (start < metrics->size()) {
    size_t comma = metrics->find(',', start);
    std::string m = metrics->substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (m != "accuracy" && m != "loss")
      return error(arg(p, "metrics")->valueLoc, fmt::format("unknown metric '{}' (accuracy, loss)", m)),
             void(p.poisoned = true);
    pipe_.output.metrics.push_back(m);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (!pipe_.train) pipe_.logitsName = *name;  // an evaluation pipeline scores this output
  pipe_.output.plot = *plot;
  pipe_.output.checkpoint = *ckpt;
  pipe_.output.loc = p.loc;
  if (!g.outputValue(*name)) layers::output(g, x, *name, p.loc);
  else if (g.outputValue(*name) != x) {
    error(p.loc, fmt::format("output name '{}' is already used", *name));
    return void(p.poisoned = true);
  }
  p.value = x;
  return;
}

void Lowering::lowerConstant(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  const std::string& id = p.decl->id;
  if (!ins.empty()) return error(p.loc, "constant takes no inputs"), void(p.poisoned = true);
  const LabelArg* v = arg(p, "value");
  if (!v) return error(p.label.opLoc, "constant needs value=[...] (in a quoted label: id[\"constant: value=[[1,2]]\"])"),
                void(p.poisoned = true);
  TensorLiteral lit;
  if (auto* t = std::get_if<TensorLiteral>(&v->value)) lit = *t;
  else if (auto* i = std::get_if<int64_t>(&v->value)) lit = {{}, {double(*i)}};
  else if (auto* d = std::get_if<double>(&v->value)) lit = {{}, {*d}};
  else return badArg(*v, "a number or a tensor literal like [[1,2],[3,4]]"), void(p.poisoned = true);
  auto dt = stringArg(p, "dtype", "f32");
  if (!dt) return void(p.poisoned = true);
  auto dtype = parseDType(*dt);
  if (!dtype) return badArg(*arg(p, "dtype"), kDTypeChoices), void(p.poisoned = true);
  p.value = layers::constant(g, id, *dtype, lit, p.loc);
}

void Lowering::lowerConv2d(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  const std::string& id = p.decl->id;
  if (ins.size() == 2) {
    // A convolution with a given kernel (an edge labelled weight), no parameters.
    auto stride = pairArg(p, "stride", {1, 1});
    auto dil = pairArg(p, "dilation", {1, 1});
    auto groups = intArg(p, "groups", 1);
    if (!stride || !dil || !groups) return void(p.poisoned = true);
    if (arg(p, "filters") || arg(p, "kernel") || arg(p, "activation"))
      return error(p.label.opLoc,
                   fmt::format("conv2d '{}' with a weight input takes only stride, padding, dilation and groups", id)),
             void(p.poisoned = true);
    std::vector<int64_t> pad = {0, 0, 0, 0};
    if (const LabelArg* pa = arg(p, "padding")) {
      auto* i = std::get_if<int64_t>(&pa->value);
      auto* str = std::get_if<std::string>(&pa->value);
      if (i && *i >= 0) pad = {*i, *i, *i, *i};
      else if (!(str && *str == "valid")) return badArg(*pa, "valid or N"), void(p.poisoned = true);
    }
    Attrs a;
    a.set("stride", *stride);
    a.set("padding", pad);
    a.set("dilation", *dil);
    a.set("groups", *groups);
    p.value = fromResult(p, layers::addOp(g, OpKind::Conv2d, ins, a, id, p.loc));
    return;
  }
  Value* x = needOne(p, ins);
  if (!x) return;
  layers::Conv2dSpec s;
  const LabelArg* f = arg(p, "filters");
  if (!f) return error(p.label.opLoc, fmt::format("conv2d '{}' needs filters=N", id)), void(p.poisoned = true);
  auto filters = intArg(p, "filters", 0);
  auto kernel = pairArg(p, "kernel", {3, 3});
  auto stride = pairArg(p, "stride", {1, 1});
  auto dil = pairArg(p, "dilation", {1, 1});
  auto act = stringArg(p, "activation", "");
  auto bias = boolArg(p, "bias", true);
  auto groups = intArg(p, "groups", 1);
  if (!filters || !kernel || !stride || !dil || !act || !bias || !groups) return void(p.poisoned = true);
  s.filters = *filters, s.kernelH = (*kernel)[0], s.kernelW = (*kernel)[1];
  s.strideH = (*stride)[0], s.strideW = (*stride)[1], s.dilationH = (*dil)[0], s.dilationW = (*dil)[1];
  s.activation = *act, s.bias = *bias, s.groups = *groups;
  if (const LabelArg* pad = arg(p, "padding")) {
    if (auto* str = std::get_if<std::string>(&pad->value); str && (*str == "valid" || *str == "same")) {
      s.padding = *str;
    } else if (auto* i = std::get_if<int64_t>(&pad->value); i && *i >= 0) {
      s.padding = "explicit", s.explicitPadding = {*i, *i, *i, *i};
    } else if (auto* is = std::get_if<std::vector<int64_t>>(&pad->value);
               is && (is->size() == 2 || is->size() == 4) && std::all_of(is->begin(), is->end(), [](int64_t v) { return v >= 0; })) {
      s.padding = "explicit";
      s.explicitPadding = is->size() == 2 ? std::vector<int64_t>{(*is)[0], (*is)[1], (*is)[0], (*is)[1]} : *is;
    } else {
      return badArg(*pad, "valid, same, N, HxW or top,left,bottom,right"), void(p.poisoned = true);
    }
  }
  p.value = fromResult(p, layers::conv2d(g, x, id, s, p.loc));
}

void Lowering::lowerDense(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  const std::string& id = p.decl->id;
  Value* x = needOne(p, ins);
  if (!x) return;
  if (!arg(p, "units")) return error(p.label.opLoc, fmt::format("dense '{}' needs units=N", id)), void(p.poisoned = true);
  auto units = intArg(p, "units", 0);
  auto act = stringArg(p, "activation", "");
  auto bias = boolArg(p, "bias", true);
  if (!units || !act || !bias) return void(p.poisoned = true);
  p.value = fromResult(p, layers::dense(g, x, id, *units, *bias, *act, p.loc));
}

void Lowering::lowerPool(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  const std::string& id = p.decl->id;
  Value* x = needOne(p, ins);
  if (!x) return;
  auto size = pairArg(p, "size", {2, 2});
  auto stride = pairArg(p, "stride", {});
  if (!size || !stride) return void(p.poisoned = true);
  std::vector<int64_t> pad = {0, 0, 0, 0};
  if (const LabelArg* pa = arg(p, "padding")) {
    auto* str = std::get_if<std::string>(&pa->value);
    auto* i = std::get_if<int64_t>(&pa->value);
    if (str && *str == "valid") pad = {0, 0, 0, 0};
    else if (str && *str == "same" && x->type().rank() == 4)
      pad = samePadding(x->type().shape[2], x->type().shape[3], (*size)[0], (*size)[1],
                        stride->empty() ? (*size)[0] : (*stride)[0], stride->empty() ? (*size)[1] : (*stride)[1], 1, 1);
    else if (i && *i >= 0) pad = {*i, *i, *i, *i};
    else return badArg(*pa, "valid, same or N"), void(p.poisoned = true);
  }
  auto ceilMode = boolArg(p, "ceil_mode", false);
  auto countPad = boolArg(p, "count_include_pad", true);
  if (!ceilMode || !countPad) return void(p.poisoned = true);
  p.value = fromResult(p, layers::pool2d(g, p.op == "maxpool" ? OpKind::MaxPool2d : OpKind::AvgPool2d, x, id, *size,
                                         *stride, pad, p.loc, *ceilMode, *countPad));
}

// An imported ONNX model as one node: the edges feed its inputs in order, the node's value is
// its output (the first, or the one output= names); its initializers become parameters under
// their ONNX names, with the model's values (so a train stage fine-tunes it).
void Lowering::lowerOnnx(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  const std::string& id = p.decl->id;
  const LabelArg* pathArg = arg(p, "path");
  if (!pathArg)
    return error(p.label.opLoc, fmt::format("onnx '{}' needs path=model.onnx", id)), void(p.poisoned = true);
  auto path = stringArg(p, "path", "");
  auto output = stringArg(p, "output", "");
  if (!path || !output) return void(p.poisoned = true);
  if (ins.empty())
    return error(p.loc, fmt::format("onnx '{}' has no input: draw an edge into it", id)), void(p.poisoned = true);
  // A relative path is the working directory's, else the pipeline file's folder's.
  namespace fs = std::filesystem;
  std::string file = *path;
  std::error_code ec;
  if (fs::path(file).is_relative() && !fs::exists(file, ec)) {
    fs::path besides = fs::path(doc_.file).parent_path() / file;
    if (fs::exists(besides, ec)) file = besides.string();
  }
  OnnxModelInfo info;
  auto outs = importOnnxInto(g, file, ins, id, p.loc, {}, &info);
  if (!outs) {
    error(pathArg->valueLoc, outs.error().error.message());
    return void(p.poisoned = true);
  }
  if (outs->empty())
    return error(pathArg->valueLoc, fmt::format("onnx '{}': the model has no outputs", id)), void(p.poisoned = true);
  Value* v = outs->front();
  if (!output->empty()) {
    auto it = std::find(info.outputs.begin(), info.outputs.end(), *output);
    if (it == info.outputs.end()) {
      std::string names;
      for (const std::string& o : info.outputs) names += (names.empty() ? "" : ", ") + o;
      error(arg(p, "output")->valueLoc, fmt::format("the model has no output '{}' (its outputs: {})", *output, names));
      return void(p.poisoned = true);
    }
    v = (*outs)[size_t(it - info.outputs.begin())];
  }
  p.value = v;
}

std::optional<AttrValue> Lowering::attrFromArg(const LabelArg& a, const AttrSpec& spec) {
  const AttrValue& v = a.value;
  switch (spec.kind) {
    case AttrKind::Int:
      if (auto* i = std::get_if<int64_t>(&v)) return *i;
      if (auto* s = std::get_if<std::string>(&v); s && (*s == "true" || *s == "false")) return int64_t(*s == "true");
      badArg(a, "an integer");
      return std::nullopt;
    case AttrKind::Float:
      if (auto* i = std::get_if<int64_t>(&v)) return double(*i);
      if (auto* d = std::get_if<double>(&v)) return *d;
      badArg(a, "a number");
      return std::nullopt;
    case AttrKind::String:
      if (auto* s = std::get_if<std::string>(&v)) return *s;
      badArg(a, "a name");
      return std::nullopt;
    case AttrKind::Ints:
      if (auto* i = std::get_if<int64_t>(&v)) return std::vector<int64_t>{*i};
      if (auto* is = std::get_if<std::vector<int64_t>>(&v)) return *is;
      badArg(a, "a list of integers like 64x784 or 64,-1");
      return std::nullopt;
    case AttrKind::Floats:
      if (auto* i = std::get_if<int64_t>(&v)) return std::vector<double>{double(*i)};
      if (auto* d = std::get_if<double>(&v)) return std::vector<double>{*d};
      if (auto* is = std::get_if<std::vector<int64_t>>(&v)) return std::vector<double>(is->begin(), is->end());
      if (auto* ds = std::get_if<std::vector<double>>(&v)) return *ds;
      badArg(a, "a number or a list of numbers");
      return std::nullopt;
    case AttrKind::Tensor:
      if (auto* t = std::get_if<TensorLiteral>(&v)) return *t;
      badArg(a, "a tensor literal like [[1,2],[3,4]]");
      return std::nullopt;
  }
  return std::nullopt;
}

// A plain IR op: operands from the edges, attributes from the label by the op's schema.
void Lowering::lowerOp(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  const std::string& id = p.decl->id;
  const OpInfo& info = opInfo(*plainOp(p.op));
  if (info.minInputs == 1 && info.maxInputs == 1) {
    if (!needOne(p, ins)) return;
  } else if (int(ins.size()) < info.minInputs || int(ins.size()) > info.maxInputs) {
    if (info.minInputs == 2 && info.maxInputs == 2)
      error(p.loc, fmt::format("{} '{}' takes two inputs (label the edges lhs and rhs), got {}", p.op, id, ins.size()));
    else
      error(p.loc, fmt::format("{} '{}' takes {} to {} inputs, got {}", p.op, id, info.minInputs, info.maxInputs,
                               ins.size()));
    return void(p.poisoned = true);
  }
  Attrs attrs;
  bool ok = true;
  for (const AttrSpec& spec : info.attrs) {
    const LabelArg* a = arg(p, spec.name.c_str());
    if (!a) {
      if (!spec.defaultValue) {
        error(p.label.opLoc, fmt::format("{} '{}' needs {}=...", p.op, id, spec.name));
        ok = false;
      }
      continue;
    }
    auto value = attrFromArg(*a, spec);
    if (!value) ok = false;
    else attrs.set(spec.name, *value);
  }
  if (!ok) return void(p.poisoned = true);
  p.value = fromResult(p, layers::addOp(g, info.kind, ins, attrs, id, p.loc));
}

Value* Lowering::needOne(PNode& p, const std::vector<Value*>& ins) {
  if (ins.size() == 1) return ins[0];
  if (ins.empty()) error(p.loc, fmt::format("{} '{}' has no input: draw an edge into it", p.op, p.decl->id));
  else error(p.loc, fmt::format("{} '{}' takes one input, got {} (from different nodes)", p.op, p.decl->id, ins.size()));
  p.poisoned = true;
  return nullptr;
}

void Lowering::lowerNode(PNode& p) {
  if (!checkArgs(p)) {
    p.poisoned = true;
    return;
  }
  std::vector<Value*> ins = operands(p);
  if (p.poisoned && p.role != Role::Train) return;
  if (p.spec) (this->*(p.spec->lower))(p, ins);
  else lowerOp(p, ins);
}

const std::vector<LayerSpec>& layerSpecs() {
  static const std::vector<LayerSpec> specs = {
      // stages
      {"input",
       Role::Input,
       {"path", "batch", "shape", "dtype", "name", "dataset", "weights"},
       &Lowering::lowerInput,
       /*positional=*/true},
      {"preprocess", Role::Preprocess, {"scale", "shift", "mean", "std"}, &Lowering::lowerPreprocess},
      {"device", Role::Placement, {}, &Lowering::lowerDevice, /*positional=*/true},
      {"train",
       Role::Train,
       {"loss",     "label_smoothing", "optimizer", "lr",     "epochs", "batch",     "validation", "momentum",
        "nesterov", "weight_decay",    "beta1",     "beta2",  "eps",    "clip_norm", "schedule",   "step_size",
        "gamma",    "t_max",           "eta_min",   "warmup", "seed",   "shuffle",   "loss_scale", "loss_scale_interval"},
       &Lowering::lowerTrain},
      {"output", Role::Output, {"metrics", "plot", "checkpoint", "name"}, &Lowering::lowerOutput},
      // the seed's stages (reached through their aliases only)
      {"conv_stage", Role::ConvStage, {}, &Lowering::lowerConvStage},
      {"matmul_stage", Role::MatmulStage, {}, &Lowering::lowerMatmulStage},
      // layers (that own parameters, or take arguments beyond their op's attributes)
      {"constant", Role::Layer, {"value", "dtype"}, &Lowering::lowerConstant},
      {"conv2d",
       Role::Layer,
       {"filters", "kernel", "stride", "padding", "dilation", "groups", "activation", "bias"},
       &Lowering::lowerConv2d},
      {"dense", Role::Layer, {"units", "activation", "bias"}, &Lowering::lowerDense},
      {"maxpool", Role::Layer, {"size", "stride", "padding", "ceil_mode"}, &Lowering::lowerPool},
      {"avgpool", Role::Layer, {"size", "stride", "padding", "ceil_mode", "count_include_pad"}, &Lowering::lowerPool},
      {"onnx", Role::Layer, {"path", "output"}, &Lowering::lowerOnnx},
      // ==== family elementwise: elementwise math, comparisons, where, reductions ====
      {"gelu", Role::Layer, {"approximate"}, &Lowering::lowerGelu},
      {"where", Role::Layer, {}, &Lowering::lowerWhere, /*positional=*/false, /*ownsEdgeLabels=*/true},
      // (end of family elementwise)

      // ==== family norm: normalisation, dropout ====
      // (dropout is a plain op: x[dropout: rate=0.1])
      {"batchnorm", Role::Layer, {"momentum", "eps", "affine"}, &Lowering::lowerBatchNorm},
      {"layernorm", Role::Layer, {"dims", "shape", "eps", "affine"}, &Lowering::lowerLayerNorm},
      {"groupnorm", Role::Layer, {"groups", "eps", "affine"}, &Lowering::lowerGroupNorm},
      // (end of family norm)

      // ==== family conv: convolution and pooling ====
      {"conv_transpose2d",
       Role::Layer,
       {"filters", "kernel", "stride", "padding", "output_padding", "dilation", "groups", "activation", "bias"},
       &Lowering::lowerConvTranspose2d},
      {"adaptive_avgpool", Role::Layer, {"size"}, &Lowering::lowerAdaptiveAvgPool},
      // (end of family conv)

      // ==== family shape: shape and data movement, batched matmul, attention ====
      {"split", Role::Layer, {"axis", "sizes", "parts"}, &Lowering::lowerSplit},
      {"permute", Role::Layer, {"perm"}, &Lowering::lowerPermute},
      {"embedding", Role::Layer, {"vocab", "dim"}, &Lowering::lowerEmbedding},
      {"position_embedding", Role::Layer, {"tokens", "dim"}, &Lowering::lowerPositionEmbedding},
      {"scaled_dot_product_attention", Role::Layer, {"causal", "scale"}, &Lowering::lowerScaledDotProductAttention},
      {"sdpa", Role::Layer, {"causal", "scale"}, &Lowering::lowerScaledDotProductAttention},
      {"attention", Role::Layer, {"heads", "causal", "bias"}, &Lowering::lowerMultiHeadAttention},
      // (end of family shape)

      // ==== family train: losses and optimizers ====
      // (end of family train)

  };
  return specs;
}

const LayerSpec* findLayerSpec(std::string_view name) {
  for (const LayerSpec& l : layerSpecs())
    if (l.name == name) return &l;
  return nullptr;
}

std::optional<Pipeline> Lowering::run() {
  int before = diags_.errorCount();
  pipe_.file = doc_.file;
  std::string name = doc_.file;
  size_t slash = name.find_last_of('/');
  if (slash != std::string::npos) name = name.substr(slash + 1);
  if (name.size() > 4 && name.substr(name.size() - 4) == ".mmd") name.resize(name.size() - 4);
  pipe_.model = std::make_unique<Graph>(name.empty() ? "main" : name);
  if (doc_.nodes.empty()) {
    error({doc_.file, 1, 1, ""}, "the pipeline has no nodes");
    return std::nullopt;
  }
  std::vector<std::string> order;
  for (const mermaid::NodeDecl& d : doc_.nodes) {
    PNode& p = nodes_[d.id];
    p.decl = &d;
    order.push_back(d.id);
    classify(p);
    if (p.role == Role::Train && p.labelOk)
      if (const LabelArg* b = arg(p, "batch"))
        if (auto* i = std::get_if<int64_t>(&b->value); i && *i > 0) batch_ = *i;
  }
  for (const mermaid::Edge& e : doc_.edges) {
    if (e.from == e.to) {
      error(e.loc, fmt::format("edge from '{}' to itself: a cycle", e.from));
      return std::nullopt;
    }
    nodes_[e.to].inEdges.push_back(&e);
  }
  // Topological order, stable in document order (the ready node that comes first in the
  // file goes next), in O((nodes + edges) log nodes); a cycle is an error at one of its edges.
  std::unordered_map<std::string_view, size_t> indexOf;
  for (size_t i = 0; i < order.size(); ++i) indexOf[order[i]] = i;
  std::vector<std::vector<size_t>> successors(order.size());
  std::vector<size_t> pending(order.size(), 0);
  for (const mermaid::Edge& e : doc_.edges) {
    size_t from = indexOf.at(e.from), to = indexOf.at(e.to);
    successors[from].push_back(to);
    ++pending[to];
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<size_t>> ready;
  for (size_t i = 0; i < order.size(); ++i)
    if (pending[i] == 0) ready.push(i);
  std::vector<std::string> topo;
  std::vector<bool> done(order.size(), false);
  while (!ready.empty()) {
    size_t i = ready.top();
    ready.pop();
    done[i] = true;
    topo.push_back(order[i]);
    for (size_t next : successors[i])
      if (--pending[next] == 0) ready.push(next);
  }
  if (topo.size() < order.size()) {
    for (const mermaid::Edge& e : doc_.edges)
      if (!done[indexOf.at(e.from)] && !done[indexOf.at(e.to)]) {
        error(e.loc, fmt::format("the pipeline has a cycle through '{}' --> '{}': data must flow one way", e.from, e.to));
        return std::nullopt;
      }
    return std::nullopt;
  }
  for (auto& id : topo) {
    PNode& p = nodes_[id];
    if (!p.labelOk) {
      p.poisoned = true;
      continue;
    }
    lowerNode(p);
  }
  if (diags_.errorCount() != before) return std::nullopt;
  if (!pipe_.train && !sawOutput_) {
    error({doc_.file, 1, 1, ""}, "the pipeline has no output stage and no train stage: nothing to compute");
    return std::nullopt;
  }
  if (pipe_.train && !pipe_.data) {
    error(pipe_.train->loc, "a train stage needs a data input (input: mnist path=...)");
    return std::nullopt;
  }
  auto ok = verifyGraph(*pipe_.model);
  if (!ok) {
    diags_.report(ok.error());
    return std::nullopt;
  }
  return std::move(pipe_);
}

}  // namespace pipeline_lowering

std::optional<Pipeline> lowerDocument(const mermaid::Document& doc, DiagnosticEngine& diags) {
  if (isIrFlowchart(doc)) return loadIrFlowchart(doc, diags);  // `shoal dump --format mermaid` output
  return pipeline_lowering::Lowering(doc, diags).run();
}

std::optional<Pipeline> loadPipelineText(std::string_view text, const std::string& file, DiagnosticEngine& diags) {
  bool isMmd = file.size() >= 4 && file.substr(file.size() - 4) == ".mmd";
  if (!isMmd && looksLikeIrText(text)) {
    auto p = parsePipelineText(text, file, diags);
    if (!p) return std::nullopt;
    if (!verifyGraph(*p->model, diags)) return std::nullopt;
    return p;
  }
  auto doc = mermaid::parse(text, file, diags);
  if (!doc) return std::nullopt;
  return lowerDocument(*doc, diags);
}

std::optional<Pipeline> loadPipelineFile(const std::string& path, DiagnosticEngine& diags) {
  if (isOnnxPath(path)) {
    auto p = importOnnxFile(path);
    if (!p) {
      diags.report(p.error().error);
      return std::nullopt;
    }
    return std::move(*p);
  }
  auto bytes = readFileBytes(path, kPipelineFileLimit);
  if (!bytes) {
    diags.error({}, bytes.error().message());
    return std::nullopt;
  }
  return loadPipelineText(*bytes, path, diags);
}

}  // namespace shoal
