// Test graphs for the CUDA codegen and executor tests: for every OpKind, a small graph holding
// that op in a few shapes (strides, padding, broadcasting, long reductions, label types),
// in f32 or f64, with an output on every result; and seeded random inputs for them.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "codegen/cuda_codegen.h"
#include "ir/graph.h"
#include "ir/shape_inference.h"
#include "ir_builders.h"
#include "op_case_registry.h"
#include "passes/program.h"
#include "runtime/executable.h"
#include "test_util.h"

namespace shoal::test {

/// Builds graphs node by node with result types from the shape rules.
class OpGraphBuilder {
 public:
  OpGraphBuilder(std::string name, DType dt) : g_(std::make_unique<Graph>(std::move(name))), dt_(dt) {}

  DType dt() const { return dt_; }
  /// Prefixed to every name from now on ("relu__x"), so several cases share one graph.
  void setPrefix(std::string prefix) { prefix_ = std::move(prefix); }
  Graph& graph() { return *g_; }
  std::unique_ptr<Graph> take() { return std::move(g_); }

  /// An input of type `type`; names starting with "q" get small integer values (ties for
  /// max/argmax), "labels" class ids, "step" the step count (see randomInputs).
  Value* input(const std::string& base, TensorType type) {
    const std::string name = prefix_ + base;
    Attrs a;
    a.set("name", name);
    return g_->addNode(OpKind::Input, {}, a, {{name, std::move(type)}}, loc(name))->result();
  }
  Value* input(const std::string& name, Shape s) { return input(name, TensorType{dt_, std::move(s)}); }
  Value* param(const std::string& base, Shape s) {
    const std::string name = prefix_ + base;
    Attrs a;
    a.set("init", std::string("glorot_uniform"));
    return g_->addNode(OpKind::Param, {}, a, {{name, {dt_, std::move(s)}}}, loc(name))->result();
  }
  Value* state(const std::string& base, Shape s) {
    const std::string name = prefix_ + base;
    Attrs a;
    a.set("init", std::string("zeros"));
    return g_->addNode(OpKind::State, {}, a, {{name, {dt_, std::move(s)}}}, loc(name))->result();
  }
  /// Adds `kind` over `ins`; its results get the types its shape rule gives, and an output
  /// each (named after the result). Returns the first result (nullptr for updates).
  Value* op(OpKind kind, std::vector<Value*> ins, Attrs attrs, const std::string& base) {
    const std::string name = prefix_ + base;
    const int results = opInfo(kind).numResults;
    std::vector<ResultSpec> specs;
    for (int r = 0; r < results; ++r) specs.push_back({r ? name + "." + std::to_string(r) : name, {dt_, {}}});
    Node* n = g_->addNode(kind, std::move(ins), std::move(attrs), specs, loc(name));
    fillDefaultAttrs(*n);
    auto types = inferResultTypes(*n);
    EXPECT_TRUE(types.has_value()) << name << ": " << (types ? "" : types.error().message());
    if (!types) return nullptr;
    for (size_t r = 0; r < n->numResults(); ++r) n->result(r)->setType((*types)[r]);
    for (size_t r = 0; r < n->numResults(); ++r) output(n->result(r));
    return n->numResults() ? n->result() : nullptr;
  }
  void output(Value* v) {
    Attrs a;
    a.set("name", v->name());
    g_->addNode(OpKind::Output, {v}, a, {}, loc(v->name()));
  }

 private:
  static Location loc(const std::string& node) { return Location{"ops.mmd", 1, 1, node}; }
  std::unique_ptr<Graph> g_;
  DType dt_;
  std::string prefix_;
};

/// A training pipeline whose 16-bit channels-last convolutions share what they read
/// (CudaCodegenOptions::shareConvertedCopies): a 64-filter stem pooled by `pool`, then a 3 x 3
/// convolution and a strided 1 x 1 one reading the pool's output, a strided 3 x 3 after the
/// first (both of `filters` filters), their sum into a classifier; MNIST batches of `batch`.
inline std::string sharedCopiesPipeline(int batch, int pool, int filters) {
  const std::string f = std::to_string(filters), p = std::to_string(pool);
  return "flowchart TD\n  x[input: mnist path=" + sourcePath("data/mnist-10k") + " batch=" + std::to_string(batch) +
         "] --> pre[preprocess: scale=1/255]\n"
         "  pre --> stem[conv2d: filters=64 kernel=3x3 padding=1] --> r0[relu] --> p0[maxpool: size=" +
         p + "x" + p +
         "]\n"
         "  p0 --> a[conv2d: filters=64 kernel=3x3 padding=1 bias=false] --> ra[relu]\n"
         "  p0 --> b[conv2d: filters=" +
         f +
         " kernel=1x1 stride=2 bias=false]\n"
         "  ra --> c[conv2d: filters=" +
         f +
         " kernel=3x3 stride=2 padding=1 bias=false]\n"
         "  c -->|lhs| s[add]\n"
         "  b -->|rhs| s\n"
         "  s --> r[relu] --> f[flatten] --> fc[dense: units=10]\n"
         "  fc --> t[train: loss=softmax_cross_entropy optimizer=sgd lr=0.5]\n"
         "  t --> out[output]\n";
}

/// A training pipeline whose tensor-core forwards' outputs 16-bit channels-last convolutions read
/// (CudaCodegenOptions::halfCopyInProducer): a 64-filter stem pooled 2 x 2, a relu'd 3 x 3, a
/// second whose sum with the pool's output is relu'd (a residual block: fuse-conv-epilogue's
/// program), a strided 3 x 3 reading that, a classifier; MNIST batches of `batch`.
inline std::string producerCopiesPipeline(int batch) {
  return "flowchart TD\n  x[input: mnist path=" + sourcePath("data/mnist-10k") + " batch=" + std::to_string(batch) +
         "] --> pre[preprocess: scale=1/255]\n"
         "  pre --> stem[conv2d: filters=64 kernel=3x3 padding=1] --> r0[relu] --> p0[maxpool: size=2x2]\n"
         "  p0 --> a[conv2d: filters=64 kernel=3x3 padding=1 bias=false] --> ra[relu]\n"
         "  ra --> b[conv2d: filters=64 kernel=3x3 padding=1]\n"
         "  b -->|lhs| s[add]\n"
         "  p0 -->|rhs| s\n"
         "  s --> rs[relu] --> c[conv2d: filters=64 kernel=3x3 stride=2 padding=1] --> rc[relu]\n"
         "  rc --> f[flatten] --> fc[dense: units=10]\n"
         "  fc --> t[train: loss=softmax_cross_entropy optimizer=sgd lr=0.5]\n"
         "  t --> out[output]\n";
}

/// Every kernel step of `m` in launch order, a grouped launch's parts in its place (what each
/// node's kernels are, whichever launch runs them).
inline std::vector<const CudaStep*> kernelSteps(const CudaModuleSource& m) {
  std::vector<const CudaStep*> out;
  for (const CudaStep& s : m.steps) {
    if (s.kind != CudaStepKind::Kernel) continue;
    if (s.parts.empty()) out.push_back(&s);
    for (const CudaStep& part : s.parts) out.push_back(&part);
  }
  return out;
}

using Ints = std::vector<int64_t>;

struct CudaCaseTag {};
/// Adds nodes exercising `kind` (a few variants) to the builder, in its float type.
using CudaCaseRegistry = OpCaseRegistry<CudaCaseTag, bool(OpKind kind, OpGraphBuilder& b)>;

/// Registers the following body as the CUDA test case of the listed ops: it sees `kind`, the
/// builder `b`, its float type `dt` and the label types labels64/32/8, and returns true.
#define SHOAL_CUDA_CASE(id, ...)                                                             \
  static bool shoalCudaCase_##id(OpKind kind, ::shoal::test::OpGraphBuilder& b);             \
  SHOAL_OP_CASES_REGISTER(::shoal::test::CudaCaseRegistry, shoalCudaCase_##id, __VA_ARGS__); \
  static bool shoalCudaCase_##id([[maybe_unused]] OpKind kind, [[maybe_unused]] ::shoal::test::OpGraphBuilder& b)

/// Adds nodes exercising `kind`: its registered case (tests/codegen/cuda_op_cases.cpp and the
/// op families' files), else, for an elementwise op, its operands at [3,50] (and, binary ops,
/// broadcast [2,3,4] with [3,1]) with float attributes at their default or 0.75; false for
/// any other op without a case.
inline bool addCudaOpCase(OpGraphBuilder& b, OpKind kind) {
  if (auto* fn = CudaCaseRegistry::find(kind)) return fn(kind, b);
  if (!isElementwise(kind)) return false;
  const OpInfo& info = opInfo(kind);
  Attrs a;
  for (const AttrSpec& spec : info.attrs) a.set(spec.name, spec.defaultValue ? *spec.defaultValue : AttrValue(0.75));
  const char* names[] = {"a", "b", "c"};
  std::vector<Value*> same;
  for (int i = 0; i < info.minInputs; ++i) same.push_back(b.input(names[i], Shape{3, 50}));
  b.op(kind, same, a, "y");
  if (info.minInputs == 2) b.op(kind, {b.input("wide", Shape{2, 3, 4}), b.input("col", Shape{3, 1})}, a, "broadcast");
  return true;
}

/// A graph exercising `kind` in float type `dt`; nullptr for an op without a case.
inline std::unique_ptr<Graph> buildCudaOpGraph(OpKind kind, DType dt) {
  OpGraphBuilder b("op_" + std::string(opName(kind)) + "_" + std::string(dtypeName(dt)), dt);
  if (!addCudaOpCase(b, kind)) return nullptr;
  return b.take();
}

/// Every op's case in one graph (names prefixed "<op>__"), for one NVRTC compile of them all.
inline std::unique_ptr<Graph> buildAllOpsGraph(DType dt) {
  OpGraphBuilder b("all_ops_" + std::string(dtypeName(dt)), dt);
  for (OpKind kind : allOps()) {
    b.setPrefix(std::string(opName(kind)) + "__");
    if (!addCudaOpCase(b, kind)) return nullptr;
  }
  return b.take();
}

/// A value computed inside the graph with no output of its own, so the memory planner may
/// let a later op overwrite it in place: add(x, y).
inline Value* transientSum(OpGraphBuilder& b, Value* x, Value* y, const std::string& name) {
  Attrs none;
  return b.graph().addNode(OpKind::Add, {x, y}, none, {{name, x->type()}})->result();
}

/// fused_elementwise nodes whose result the planner puts in an operand's buffer (operand 0 in
/// "inplace0", operand 1 in "inplace1"), and a relu over a dying value ("inplace_relu"; compile
/// with inPlaceCompileOptions, or fuse-elementwise folds the add into it).
inline std::unique_ptr<Graph> buildInPlaceGraph(DType dt) {
  OpGraphBuilder b("in_place_" + std::string(dtypeName(dt)), dt);
  Value* x = b.input("x", Shape{4, 33});
  Value* y = b.input("y", Shape{4, 33});
  Value* z = b.input("z", Shape{4, 33});
  Value* t = transientSum(b, x, y, "t");
  b.op(OpKind::FusedElementwise, {t, z}, attrs({{"expr", std::string("a0 a1 mul a0 add a1 sigmoid sub")}}), "inplace0");
  Value* u = transientSum(b, x, z, "u");
  b.op(OpKind::FusedElementwise, {y, u}, attrs({{"expr", std::string("a0 a1 sub a1 mul a1 relu add")}}), "inplace1");
  Value* r = transientSum(b, y, z, "r");
  b.op(OpKind::Relu, {r}, {}, "inplace_relu");
  return b.take();
}

/// Optimizer updates in runs the codegen fuses horizontally: Adam over five params of mixed
/// sizes (one of a single element) sharing one step and learning rate, then SGD with momentum
/// over three sharing a gradient-clipping factor, then one SGD update with other
/// hyperparameters (a run of one: its own kernel).
inline std::unique_ptr<Graph> buildUpdateGroupGraph(DType dt) {
  OpGraphBuilder b("update_groups_" + std::string(dtypeName(dt)), dt);
  Value* step = b.input("step", TensorType{DType::F32, {}});
  Value* lr = b.input("lr", TensorType{DType::F64, {}});
  Value* scale = b.input("scale", Shape{});
  const std::vector<Shape> shapes = {{3, 8}, {1}, {300}, {2, 2}, {17, 33}};
  for (size_t k = 0; k < shapes.size(); ++k) {
    const std::string p = "p" + std::to_string(k);
    b.op(OpKind::AdamUpdate,
         {b.param(p, shapes[k]), b.input("g" + std::to_string(k), shapes[k]), b.state(p + ".m", shapes[k]),
          b.state(p + ".v", shapes[k]), step, lr},
         attrs({{"weight_decay", 0.001}}), "adam" + std::to_string(k));
  }
  for (size_t k = 0; k < 3; ++k) {
    const std::string p = "s" + std::to_string(k);
    const Shape shape = {int64_t(5 + 40 * k)};
    b.op(OpKind::SgdMomentumUpdate,
         {b.param(p, shape), b.input("h" + std::to_string(k), shape), b.state(p + ".velocity", shape), lr, scale},
         attrs({{"momentum", 0.9}, {"weight_decay", 1e-3}, {"nesterov", int64_t(1)}}), "sgd" + std::to_string(k));
  }
  b.op(OpKind::SgdUpdate, {b.param("lone", {7}), b.input("hl", Shape{7}), lr}, attrs({{"weight_decay", 0.1}}), "sgd_lone");
  return b.take();
}

/// Seeded inputs for every input node of `g` (by the name after any "<op>__" prefix): uniform
/// in [-2, 2); integers in [-2, 2] for names starting with "q"; class ids in [0, 7) for
/// "labels*"; `step` for "step"; a learning rate in (0, 0.04] for "lr"; u8 pixels, 0/1 for
/// bool and small integer ids for other integer inputs.
inline TensorMap randomInputs(const Graph& g, uint64_t seed, double step = 1) {
  std::mt19937_64 rng(seed);
  TensorMap out;
  for (Node* n : g.inputNodes()) {
    const std::string& name = n->attrs().getString("name");
    if (out.count(name)) continue;
    const size_t cut = name.rfind("__");
    const std::string base = cut == std::string::npos ? name : name.substr(cut + 2);
    Tensor t(n->result()->type());
    for (int64_t i = 0; i < t.numElements(); ++i) {
      double v;
      if (base == "step")
        v = step;
      else if (base == "lr")
        v = 0.005 * double(1 + rng() % 8);
      else if (base.rfind("labels", 0) == 0)
        v = double(rng() % 7);
      else if (t.dtype() == DType::U8)
        v = double(rng() % 256);
      else if (t.dtype() == DType::Bool)
        v = double(rng() % 2);
      else if (!isFloat(t.dtype()))
        v = double(int64_t(rng() % 201) - 100);
      else if (base[0] == 'q')
        v = double(int64_t(rng() % 5) - 2);
      else
        v = std::uniform_real_distribution<double>(-2.0, 2.0)(rng);
      t.set(i, v);
    }
    out[name] = t;
  }
  return out;
}

/// The options the op tests compile with: every node kept (no folding, no DCE), verified.
inline CompileOptions opTestCompileOptions() {
  CompileOptions o;
  o.disabledPasses = {"fold-constants", "dce"};
  o.verifyEach = true;
  return o;
}

/// opTestCompileOptions without elementwise fusion, for buildInPlaceGraph.
inline CompileOptions inPlaceCompileOptions() {
  CompileOptions o = opTestCompileOptions();
  o.disabledPasses.insert("fuse-elementwise");
  return o;
}

}  // namespace shoal::test
