// CUDA test graphs of the shape family (see SHOAL_CUDA_CASE in cuda_test_graphs.h): each op in
// the layouts its kernel distinguishes (strides, negative steps, broadcast batches, integer
// element types, every pad mode), checked against the interpreter on the emulator in CI and
// on the GPU by the executor tests.
#include "codegen/cuda_test_graphs.h"

namespace shoal::test {
namespace {

// An i64 constant (OpGraphBuilder::op would type a constant in the case's float type).
Value* indexConstant(OpGraphBuilder& b, const std::string& name, Shape shape, std::vector<double> values) {
  Attrs a;
  a.set("value", TensorLiteral{shape, std::move(values)});
  return b.graph().addNode(OpKind::Constant, {}, a, {{name, {DType::I64, shape}}})->result();
}

SHOAL_CUDA_CASE(Concat, OpKind::Concat) {
  b.op(OpKind::Concat, {b.input("a", Shape{2, 3, 4}), b.input("b", Shape{2, 1, 4}), b.input("c", Shape{2, 5, 4})},
       attrs({{"axis", int64_t(1)}}), "mid");
  b.op(OpKind::Concat, {b.input("d", Shape{3, 2}), b.input("e", Shape{3, 7})}, attrs({{"axis", int64_t(-1)}}), "last");
  b.op(OpKind::Concat, {b.input("f", Shape{1, 5}), b.input("g", Shape{4, 5})}, {}, "first");
  // Integer elements move as they are.
  b.op(OpKind::Concat, {b.input("i", TensorType{DType::I64, {2, 2}}), b.input("j", TensorType{DType::I64, {2, 3}})},
       attrs({{"axis", int64_t(1)}}), "ints");
  return true;
}

SHOAL_CUDA_CASE(Slice, OpKind::Slice) {
  Value* x = b.input("x", Shape{4, 7, 6});
  b.op(OpKind::Slice, {x}, attrs({{"starts", Ints{1, 2}}, {"ends", Ints{3, -1}}, {"axes", Ints{0, 2}}}), "plain");
  b.op(OpKind::Slice, {x},
       attrs({{"starts", Ints{-1, 0}}, {"ends", Ints{-100, 7}}, {"axes", Ints{1, 0}}, {"steps", Ints{-2, 3}}}),
       "backwards");
  b.op(OpKind::Slice, {b.input("u", TensorType{DType::U8, {9}})},
       attrs({{"starts", Ints{8}}, {"ends", Ints{0}}, {"steps", Ints{-3}}}), "bytes");
  return true;
}

SHOAL_CUDA_CASE(SliceGrad, OpKind::SliceGrad) {
  b.op(OpKind::SliceGrad, {b.input("dy", Shape{4, 3, 2})},
       attrs({{"starts", Ints{-1, 0}},
              {"ends", Ints{-100, 7}},
              {"axes", Ints{1, 2}},
              {"steps", Ints{-3, 4}},
              {"input_shape", Ints{4, 7, 6}}}),
       "back");
  b.op(OpKind::SliceGrad, {b.input("dz", Shape{2, 5})},
       attrs({{"starts", Ints{1}}, {"ends", Ints{3}}, {"axes", Ints{}}, {"steps", Ints{}}, {"input_shape", Ints{4, 5}}}),
       "rows");
  return true;
}

SHOAL_CUDA_CASE(Transpose, OpKind::Transpose) {
  b.op(OpKind::Transpose, {b.input("x", Shape{2, 3, 4, 5})}, attrs({{"perm", Ints{0, 2, 3, 1}}}), "nchw_nhwc");
  b.op(OpKind::Transpose, {b.input("m", Shape{33, 7})}, {}, "reversed");
  b.op(OpKind::Transpose, {b.input("k", TensorType{DType::I32, {2, 3, 4}})}, attrs({{"perm", Ints{2, 0, 1}}}), "ints");
  return true;
}

SHOAL_CUDA_CASE(Pad, OpKind::Pad) {
  Value* x = b.input("x", Shape{2, 3, 5});
  b.op(OpKind::Pad, {x}, attrs({{"pads", Ints{0, 1, 2, 0, 2, 1}}, {"value", -1.5}}), "constant");
  b.op(OpKind::Pad, {x}, attrs({{"pads", Ints{1, 2, 4, 1, 0, 3}}, {"mode", std::string("reflect")}}), "reflect");
  b.op(OpKind::Pad, {x}, attrs({{"pads", Ints{0, 3, 1, 2, 0, 6}}, {"mode", std::string("edge")}}), "edge");
  b.op(OpKind::Pad, {b.input("i", TensorType{DType::I64, {3, 2}})}, attrs({{"pads", Ints{1, 1, 0, 2}}, {"value", 7.0}}),
       "ints");
  return true;
}

SHOAL_CUDA_CASE(PadGrad, OpKind::PadGrad) {
  b.op(OpKind::PadGrad, {b.input("dr", Shape{4, 7, 12})},
       attrs({{"pads", Ints{1, 2, 4, 1, 0, 3}}, {"mode", std::string("reflect")}}), "reflect");
  b.op(OpKind::PadGrad, {b.input("de", Shape{3, 7, 12})},
       attrs({{"pads", Ints{0, 3, 1, 1, 1, 6}}, {"mode", std::string("edge")}}), "edge");
  // Edge padding of an axis of extent 1: every border element copies it.
  b.op(OpKind::PadGrad, {b.input("d1", Shape{5, 4})}, attrs({{"pads", Ints{2, 0, 2, 3}}, {"mode", std::string("edge")}}),
       "edge_single");
  b.op(OpKind::PadGrad, {b.input("dc", Shape{4, 6})},
       attrs({{"pads", Ints{1, 2, 0, 1}}, {"mode", std::string("constant")}}), "constant");
  return true;
}

SHOAL_CUDA_CASE(Gather, OpKind::Gather) {
  // Inputs named labels* hold ids in [0, 7) (randomInputs).
  b.op(OpKind::Gather, {b.input("table", Shape{9, 5}), b.input("labels", TensorType{DType::I64, {2, 3}})}, {}, "rows");
  b.op(OpKind::Gather, {b.input("x", Shape{2, 8, 3}), b.input("labels32", TensorType{DType::I32, {4}})},
       attrs({{"axis", int64_t(1)}}), "middle");
  b.op(OpKind::Gather, {b.input("w", Shape{3, 7}), indexConstant(b, "neg", {3}, {-1, 0, -7})},
       attrs({{"axis", int64_t(-1)}}), "negative");
  b.op(OpKind::Gather, {b.input("ids", TensorType{DType::I64, {7, 2}}), b.input("labels8", TensorType{DType::U8, {5}})},
       {}, "ints");
  return true;
}

SHOAL_CUDA_CASE(GatherGrad, OpKind::GatherGrad) {
  // Repeated ids: their rows add up.
  b.op(OpKind::GatherGrad, {b.input("dy", Shape{2, 6, 5}), b.input("labels", TensorType{DType::I64, {2, 6}})},
       attrs({{"axis", int64_t(0)}, {"input_shape", Ints{9, 5}}}), "rows");
  b.op(OpKind::GatherGrad, {b.input("dm", Shape{2, 4, 3}), indexConstant(b, "neg", {4}, {-1, 2, 7, -1})},
       attrs({{"axis", int64_t(1)}, {"input_shape", Ints{2, 8, 3}}}), "middle");
  return true;
}

SHOAL_CUDA_CASE(Expand, OpKind::Expand) {
  b.op(OpKind::Expand, {b.input("x", Shape{3, 1})}, attrs({{"shape", Ints{2, -1, 4}}}), "y");
  b.op(OpKind::Expand, {b.input("r", Shape{1, 5})}, attrs({{"shape", Ints{6, 5}}}), "rows");
  return true;
}

SHOAL_CUDA_CASE(Squeeze, OpKind::Squeeze, OpKind::Unsqueeze) {
  if (kind == OpKind::Squeeze) {
    b.op(kind, {b.input("x", Shape{2, 1, 3, 1})}, attrs({{"axes", Ints{-1}}}), "one");
    b.op(kind, {b.input("z", Shape{1, 4, 1})}, {}, "all");
  } else {
    b.op(kind, {b.input("x", Shape{2, 3})}, attrs({{"axes", Ints{0, -1}}}), "y");
  }
  return true;
}

SHOAL_CUDA_CASE(BatchMatMul, OpKind::BatchMatMul) {
  // One strided-batched call: both dense over [2,3].
  b.op(OpKind::BatchMatMul, {b.input("q", Shape{2, 3, 4, 5}), b.input("k", Shape{2, 3, 6, 5})},
       attrs({{"transpose_b", int64_t(1)}, {"alpha", 0.125}}), "scores");
  // A shared right operand (stride 0), transposed left.
  b.op(OpKind::BatchMatMul, {b.input("a", Shape{3, 5, 4}), b.input("w", Shape{5, 2})},
       attrs({{"transpose_a", int64_t(1)}}), "shared");
  // Batch axes broadcast both ways: [2,1] with [1,3] -> one call per outer index.
  b.op(OpKind::BatchMatMul, {b.input("l", Shape{2, 1, 3, 4}), b.input("r", Shape{1, 3, 2, 3})},
       attrs({{"transpose_a", int64_t(1)}, {"transpose_b", int64_t(1)}}), "outer");
  b.op(OpKind::BatchMatMul, {b.input("m", Shape{4, 6}), b.input("n", Shape{6, 3})}, {}, "plain");
  return true;
}

SHOAL_CUDA_CASE(CausalMask, OpKind::CausalMask) {
  b.op(OpKind::CausalMask, {b.input("s", Shape{2, 3, 4, 4})}, {}, "square");
  b.op(OpKind::CausalMask, {b.input("w", Shape{3, 5})}, attrs({{"value", -1e9}}), "wide");
  return true;
}

}  // namespace
}  // namespace shoal::test
