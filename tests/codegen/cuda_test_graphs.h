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

#include "ir/graph.h"
#include "ir/shape_inference.h"
#include "passes/program.h"
#include "runtime/executable.h"

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

inline Attrs attrs(std::initializer_list<std::pair<std::string, AttrValue>> kv) {
  Attrs a;
  for (auto& [k, v] : kv) a.set(k, v);
  return a;
}
using Ints = std::vector<int64_t>;

/// Adds nodes exercising `kind` (a few variants) in the builder's float type; false for an
/// op without a case (every case returns: no default, so a new op in ops.def is flagged).
inline bool addCudaOpCase(OpGraphBuilder& b, OpKind kind) {
  const DType dt = b.dt();
  const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  switch (kind) {
    case OpKind::Input: b.output(b.input("x", Shape{2, 3})); return true;
    case OpKind::Param: b.output(b.param("w", {3, 4})); return true;
    case OpKind::State: b.output(b.state("m", {3, 4})); return true;
    case OpKind::Output: b.output(b.input("x", Shape{5})); return true;
    case OpKind::Constant: {
      Value* k = b.op(OpKind::Constant, {}, attrs({{"value", TensorLiteral{{2, 3}, {1.0, 2.5, -3.0, 0.1, 7, -0.25}}}}), "k");
      b.op(OpKind::Add, {k, b.input("x", Shape{2, 3})}, {}, "kx");
      return true;
    }
    case OpKind::Cast:
      b.op(OpKind::Cast, {b.input("pixels", TensorType{DType::U8, {2, 3, 5}})},
           attrs({{"dtype", std::string(dtypeName(dt))}}), "y");
      b.op(OpKind::Cast, {b.input("ids", TensorType{DType::I64, {7}})}, attrs({{"dtype", std::string(dtypeName(dt))}}),
           "ids_f");
      return true;
    case OpKind::Scale:
      b.op(OpKind::Scale, {b.input("x", Shape{3, 4, 5})}, attrs({{"scale", 0.5}, {"shift", -1.0}}), "y");
      return true;
    case OpKind::Normalize: {
      Value* x = b.input("x", Shape{2, 3, 4, 4});
      b.op(OpKind::Normalize, {x}, attrs({{"mean", std::vector<double>{0.1, -0.2, 0.3}}, {"std", std::vector<double>{0.5, 2.0, 1.5}}}),
           "per_channel");
      b.op(OpKind::Normalize, {x}, attrs({{"mean", std::vector<double>{0.1307}}, {"std", std::vector<double>{0.3081}}}), "global");
      return true;
    }
    case OpKind::Conv2d:
      b.op(OpKind::Conv2d, {b.input("x", Shape{2, 3, 9, 8}), b.param("a.weight", {4, 3, 3, 2}), b.param("a.bias", {4})},
           attrs({{"stride", Ints{2, 1}}, {"padding", Ints{1, 0, 2, 1}}, {"dilation", Ints{1, 2}}}), "a");
      b.op(OpKind::Conv2d, {b.input("m", Shape{3, 1, 12, 12}), b.param("b.weight", {5, 1, 3, 3}), b.param("b.bias", {5})},
           {}, "b");
      b.op(OpKind::Conv2d, {b.input("p", Shape{2, 6, 5, 5}), b.param("c.weight", {3, 6, 1, 1})}, {}, "c");
      return true;
    case OpKind::Conv2dBackwardData:
      b.op(OpKind::Conv2dBackwardData, {b.input("dy", Shape{2, 4, 5, 7}), b.param("a.weight", {4, 3, 3, 2})},
           attrs({{"stride", Ints{2, 1}}, {"padding", Ints{1, 0, 2, 1}}, {"dilation", Ints{1, 2}}, {"input_shape", Ints{2, 3, 9, 8}}}),
           "dx");
      b.op(OpKind::Conv2dBackwardData, {b.input("dyb", Shape{3, 5, 10, 10}), b.param("b.weight", {5, 1, 3, 3})},
           attrs({{"stride", Ints{1, 1}}, {"padding", Ints{0, 0, 0, 0}}, {"dilation", Ints{1, 1}}, {"input_shape", Ints{3, 1, 12, 12}}}),
           "dxb");
      return true;
    case OpKind::Conv2dBackwardWeight:
      b.op(OpKind::Conv2dBackwardWeight, {b.input("x", Shape{2, 3, 9, 8}), b.input("dy", Shape{2, 4, 5, 7})},
           attrs({{"stride", Ints{2, 1}}, {"padding", Ints{1, 0, 2, 1}}, {"dilation", Ints{1, 2}}, {"weight_shape", Ints{4, 3, 3, 2}}}),
           "dw");
      // A long reduction (16·18·18 terms per weight) over few weights: the split kernel.
      b.op(OpKind::Conv2dBackwardWeight, {b.input("xl", Shape{16, 2, 20, 20}), b.input("dyl", Shape{16, 3, 18, 18})},
           attrs({{"stride", Ints{1, 1}}, {"padding", Ints{0, 0, 0, 0}}, {"dilation", Ints{1, 1}}, {"weight_shape", Ints{3, 2, 3, 3}}}),
           "dwl");
      return true;
    case OpKind::MaxPool2d:
      b.op(OpKind::MaxPool2d, {b.input("qx", Shape{2, 3, 7, 7})},
           attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}}), "overlap");
      b.op(OpKind::MaxPool2d, {b.input("qy", Shape{2, 2, 6, 6})}, attrs({{"kernel", Ints{2, 2}}, {"stride", Ints{2, 2}}}),
           "plain");
      return true;
    case OpKind::MaxPool2dGrad:
      b.op(OpKind::MaxPool2dGrad, {b.input("qx", Shape{2, 3, 7, 7}), b.input("dy", Shape{2, 3, 4, 4})},
           attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}}), "dx");
      b.op(OpKind::MaxPool2dGrad, {b.input("qy", Shape{2, 2, 6, 6}), b.input("dyp", Shape{2, 2, 3, 3})},
           attrs({{"kernel", Ints{2, 2}}, {"stride", Ints{2, 2}}, {"padding", Ints{0, 0, 0, 0}}}), "dxp");
      return true;
    case OpKind::AvgPool2d:
      b.op(OpKind::AvgPool2d, {b.input("x", Shape{2, 3, 7, 7})},
           attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}}), "y");
      return true;
    case OpKind::AvgPool2dGrad:
      b.op(OpKind::AvgPool2dGrad, {b.input("dy", Shape{2, 3, 4, 4})},
           attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}, {"input_shape", Ints{2, 3, 7, 7}}}),
           "dx");
      return true;
    case OpKind::Flatten: b.op(OpKind::Flatten, {b.input("x", Shape{2, 3, 4})}, {}, "f"); return true;
    case OpKind::Reshape:
      b.op(OpKind::Reshape, {b.input("x", Shape{2, 12})}, attrs({{"shape", Ints{-1, 3, 4}}}), "r");
      return true;
    case OpKind::Dense:
      b.op(OpKind::Dense, {b.input("x", Shape{5, 7}), b.param("d.weight", {3, 7}), b.param("d.bias", {3})}, {}, "d");
      b.op(OpKind::Dense, {b.input("x2", Shape{4, 300}), b.param("e.weight", {6, 300})}, {}, "e");
      return true;
    case OpKind::MatMul: {
      Value* a = b.input("a", Shape{4, 6});
      Value* at = b.input("at", Shape{6, 4});
      Value* m = b.input("m", Shape{6, 5});
      Value* mt = b.input("mt", Shape{5, 6});
      b.op(OpKind::MatMul, {a, m}, {}, "nn");
      b.op(OpKind::MatMul, {at, m}, attrs({{"transpose_a", int64_t(1)}}), "tn");
      b.op(OpKind::MatMul, {a, mt}, attrs({{"transpose_b", int64_t(1)}}), "nt");
      b.op(OpKind::MatMul, {at, mt}, attrs({{"transpose_a", int64_t(1)}, {"transpose_b", int64_t(1)}}), "tt");
      return true;
    }
    case OpKind::Relu:
    case OpKind::Sigmoid:
    case OpKind::Tanh:
    case OpKind::Softplus:
    case OpKind::Neg: b.op(kind, {b.input("x", Shape{3, 50})}, {}, "y"); return true;
    case OpKind::ReluGrad:
    case OpKind::SigmoidGrad:
    case OpKind::TanhGrad: b.op(kind, {b.input("u", Shape{3, 50}), b.input("dy", Shape{3, 50})}, {}, "dx"); return true;
    case OpKind::Add:
    case OpKind::Sub:
    case OpKind::Mul:
    case OpKind::Div:
      b.op(kind, {b.input("a", Shape{3, 4}), b.input("b", Shape{3, 4})}, {}, "same");
      b.op(kind, {b.input("c", Shape{2, 3, 4}), b.input("d", Shape{3, 1})}, {}, "rows");
      b.op(kind, {b.input("s", Shape{}), b.input("e", Shape{2, 3})}, {}, "scalar");
      b.op(kind, {b.input("f", Shape{4, 1, 5}), b.input("g", Shape{1, 3, 1})}, {}, "outer");
      return true;
    case OpKind::SumTo:
      b.op(OpKind::SumTo, {b.input("a", Shape{3, 4, 5})}, attrs({{"shape", Ints{4, 1}}}), "short");
      b.op(OpKind::SumTo, {b.input("b", Shape{64, 10})}, attrs({{"shape", Ints{10}}}), "rows");
      b.op(OpKind::SumTo, {b.input("c", Shape{16, 8, 20, 20})}, attrs({{"shape", Ints{1, 8, 1, 1}}}), "long");
      b.op(OpKind::SumTo, {b.input("d", Shape{6, 40})}, attrs({{"shape", Ints{40}}}), "few");
      b.op(OpKind::SumTo, {b.input("e", Shape{2, 3})}, attrs({{"shape", Ints{}}}), "all");
      return true;
    case OpKind::Softmax:
    case OpKind::LogSoftmax:
      b.op(kind, {b.input("x", Shape{5, 7})}, {}, "y");
      b.op(kind, {b.input("w", Shape{3, 100})}, {}, "wide");
      return true;
    case OpKind::SoftmaxGrad:
    case OpKind::LogSoftmaxGrad:
      b.op(kind, {b.input("y", Shape{5, 7}), b.input("dy", Shape{5, 7})}, {}, "dx");
      b.op(kind, {b.input("yw", Shape{3, 100}), b.input("dyw", Shape{3, 100})}, {}, "dxw");
      return true;
    case OpKind::ArgMax:
      b.op(OpKind::ArgMax, {b.input("qx", Shape{6, 7})}, {}, "cls");
      b.op(OpKind::ArgMax, {b.input("w", Shape{3, 100})}, {}, "wide");
      return true;
    case OpKind::Accuracy:
      b.op(OpKind::Accuracy, {b.input("qx", Shape{8, 7}), b.input("labels", labels64)}, {}, "acc64");
      b.op(OpKind::Accuracy, {b.input("qy", Shape{8, 7}), b.input("labels32", labels32)}, {}, "acc32");
      b.op(OpKind::Accuracy, {b.input("qz", Shape{8, 7}), b.input("labels8", labels8)}, {}, "acc8");
      return true;
    case OpKind::SoftmaxCrossEntropy:
      b.op(OpKind::SoftmaxCrossEntropy, {b.input("x", Shape{8, 7}), b.input("labels", labels64)}, {}, "loss64");
      b.op(OpKind::SoftmaxCrossEntropy, {b.input("y", Shape{8, 7}), b.input("labels32", labels32)}, {}, "loss32");
      b.op(OpKind::SoftmaxCrossEntropy, {b.input("z", Shape{8, 7}), b.input("labels8", labels8)}, {}, "loss8");
      return true;
    case OpKind::SoftmaxCrossEntropyGrad:
      b.op(OpKind::SoftmaxCrossEntropyGrad, {b.input("x", Shape{8, 7}), b.input("labels", labels64), b.input("dloss", Shape{})},
           {}, "dx");
      b.op(OpKind::SoftmaxCrossEntropyGrad, {b.input("y", Shape{8, 7}), b.input("labels8", labels8), b.input("dloss8", Shape{})},
           {}, "dy");
      return true;
    case OpKind::Mse: b.op(OpKind::Mse, {b.input("p", Shape{3, 5}), b.input("t", Shape{3, 5})}, {}, "loss"); return true;
    case OpKind::MseGrad:
      b.op(OpKind::MseGrad, {b.input("p", Shape{3, 5}), b.input("t", Shape{3, 5}), b.input("dloss", Shape{})}, {}, "dp");
      return true;
    case OpKind::SgdUpdate:
      b.op(OpKind::SgdUpdate, {b.param("w", {3, 8}), b.input("g", Shape{3, 8}), b.state("w.velocity", {3, 8})},
           attrs({{"lr", 0.01}, {"momentum", 0.9}, {"weight_decay", 1e-3}}), "sgd");
      b.op(OpKind::SgdUpdate, {b.param("u", {5}), b.input("gu", Shape{5})}, attrs({{"lr", 0.1}}), "plain");
      return true;
    case OpKind::FusedConv2d:
      b.op(OpKind::FusedConv2d, {b.input("x", Shape{2, 3, 9, 8}), b.param("a.weight", {4, 3, 3, 2}), b.param("a.bias", {4})},
           attrs({{"stride", Ints{2, 1}}, {"padding", Ints{1, 0, 2, 1}}, {"dilation", Ints{1, 2}},
                  {"activation", std::string("relu")}}),
           "a");
      b.op(OpKind::FusedConv2d, {b.input("m", Shape{3, 1, 12, 12}), b.param("b.weight", {5, 1, 3, 3}), b.param("b.bias", {5})},
           attrs({{"activation", std::string("sigmoid")}}), "b");
      b.op(OpKind::FusedConv2d, {b.input("p", Shape{2, 6, 5, 5}), b.param("c.weight", {3, 6, 1, 1})},
           attrs({{"activation", std::string("tanh")}}), "c");
      return true;
    case OpKind::FusedConv2dPool:
      // Strided, padded, dilated conv; a 3x2 pool window, stride 1x2 (overlapping rows).
      b.op(OpKind::FusedConv2dPool, {b.input("x", Shape{2, 3, 9, 8}), b.param("a.weight", {4, 3, 3, 2}), b.param("a.bias", {4})},
           attrs({{"stride", Ints{2, 1}}, {"padding", Ints{1, 0, 2, 1}}, {"dilation", Ints{1, 2}},
                  {"activation", std::string("sigmoid")}, {"pool_kernel", Ints{3, 2}}, {"pool_stride", Ints{1, 2}}}),
           "a");
      // MNIST's shape: 3x3 conv, relu, 2x2 pool stride 2 over an odd conv output (floor mode).
      b.op(OpKind::FusedConv2dPool, {b.input("m", Shape{3, 1, 13, 13}), b.param("b.weight", {5, 1, 3, 3}), b.param("b.bias", {5})},
           attrs({{"activation", std::string("relu")}, {"pool_kernel", Ints{2, 2}}, {"pool_stride", Ints{2, 2}}}), "b");
      // Small integer inputs (ties), no bias, a padded 3x3 pool stride 2.
      b.op(OpKind::FusedConv2dPool, {b.input("q", Shape{2, 6, 5, 5}), b.param("c.weight", {3, 6, 1, 1})},
           attrs({{"activation", std::string("tanh")}, {"pool_kernel", Ints{3, 3}}, {"pool_stride", Ints{2, 2}},
                  {"pool_padding", Ints{1, 1, 1, 1}}}),
           "c");
      // Relu of a padded conv: whole windows of zeros (ties), first maximum kept.
      b.op(OpKind::FusedConv2dPool, {b.input("qr", Shape{1, 2, 6, 6}), b.param("d.weight", {2, 2, 3, 3})},
           attrs({{"padding", Ints{1, 1, 1, 1}}, {"activation", std::string("relu")}, {"pool_kernel", Ints{2, 2}},
                  {"pool_stride", Ints{2, 2}}}),
           "d");
      return true;
    case OpKind::FusedDense:
      b.op(OpKind::FusedDense, {b.input("x", Shape{5, 7}), b.param("d.weight", {3, 7}), b.param("d.bias", {3})},
           attrs({{"activation", std::string("relu")}}), "d");
      b.op(OpKind::FusedDense, {b.input("x2", Shape{4, 300}), b.param("e.weight", {6, 300})},
           attrs({{"activation", std::string("sigmoid")}}), "e");
      b.op(OpKind::FusedDense, {b.input("x3", Shape{3, 4}), b.param("f.weight", {5, 4}), b.param("f.bias", {5})},
           attrs({{"activation", std::string("tanh")}}), "f");
      return true;
    case OpKind::FusedElementwise: {
      Value* a = b.input("a", Shape{3, 50});
      Value* c = b.input("c", Shape{3, 50});
      Value* d = b.input("d", Shape{3, 50});
      b.op(OpKind::FusedElementwise, {a, c, d}, attrs({{"expr", std::string("a0 a1 mul 0.5 add relu a2 sub")}}), "chain");
      b.op(OpKind::FusedElementwise, {a, c}, attrs({{"expr", std::string("a0 sigmoid a1 tanh add a0 neg 2.5 sub div")}}),
           "acts");
      b.op(OpKind::FusedElementwise, {a, c, d},
           attrs({{"expr", std::string("a0 a1 relu_grad a2 a1 sigmoid_grad mul a2 a0 tanh_grad add -0.25 mul")}}), "grads");
      // Small integers: relu and relu_grad meet exact zeros.
      b.op(OpKind::FusedElementwise, {b.input("qu", Shape{2, 9}), b.input("qd", Shape{2, 9})},
           attrs({{"expr", std::string("a0 relu a1 a0 relu_grad add a1 1 add mul")}}), "ties");
      b.op(OpKind::FusedElementwise, {b.input("s", Shape{})}, attrs({{"expr", std::string("a0 a0 mul 3 div")}}), "scalar");
      return true;
    }
    case OpKind::AdamUpdate: {
      Value* step = b.input("step", TensorType{DType::F32, {}});
      b.op(OpKind::AdamUpdate, {b.param("w", {3, 8}), b.input("g", Shape{3, 8}), b.state("w.m", {3, 8}), b.state("w.v", {3, 8}), step},
           attrs({{"lr", 0.001}}), "adam");
      b.op(OpKind::AdamUpdate, {b.param("u", {300}), b.input("gu", Shape{300}), b.state("u.m", {300}), b.state("u.v", {300}), step},
           attrs({{"lr", 0.01}, {"weight_decay", 0.01}}), "adam_wd");
      return true;
    }
  }
  return false;
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
/// sizes (one of a single element) sharing one step, then SGD with momentum over three,
/// then one SGD update with other hyperparameters (a run of one: its own kernel).
inline std::unique_ptr<Graph> buildUpdateGroupGraph(DType dt) {
  OpGraphBuilder b("update_groups_" + std::string(dtypeName(dt)), dt);
  Value* step = b.input("step", TensorType{DType::F32, {}});
  const std::vector<Shape> shapes = {{3, 8}, {1}, {300}, {2, 2}, {17, 33}};
  for (size_t k = 0; k < shapes.size(); ++k) {
    const std::string p = "p" + std::to_string(k);
    b.op(OpKind::AdamUpdate,
         {b.param(p, shapes[k]), b.input("g" + std::to_string(k), shapes[k]), b.state(p + ".m", shapes[k]),
          b.state(p + ".v", shapes[k]), step},
         attrs({{"lr", 0.01}, {"weight_decay", 0.001}}), "adam" + std::to_string(k));
  }
  for (size_t k = 0; k < 3; ++k) {
    const std::string p = "s" + std::to_string(k);
    const Shape shape = {int64_t(5 + 40 * k)};
    b.op(OpKind::SgdUpdate, {b.param(p, shape), b.input("h" + std::to_string(k), shape), b.state(p + ".velocity", shape)},
         attrs({{"lr", 0.05}, {"momentum", 0.9}, {"weight_decay", 1e-3}}), "sgd" + std::to_string(k));
  }
  b.op(OpKind::SgdUpdate, {b.param("lone", {7}), b.input("hl", Shape{7})}, attrs({{"lr", 0.1}}), "sgd_lone");
  return b.take();
}

/// Seeded inputs for every input node of `g` (by the name after any "<op>__" prefix): uniform
/// in [-2, 2); integers in [-2, 2] for names starting with "q"; class ids in [0, 7) for
/// "labels*"; `step` for "step"; u8 pixels and small integer ids for integer inputs.
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
      if (base == "step") v = step;
      else if (base.rfind("labels", 0) == 0) v = double(rng() % 7);
      else if (t.dtype() == DType::U8) v = double(rng() % 256);
      else if (!isFloat(t.dtype())) v = double(int64_t(rng() % 201) - 100);
      else if (base[0] == 'q') v = double(int64_t(rng() % 5) - 2);
      else v = std::uniform_real_distribution<double>(-2.0, 2.0)(rng);
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
