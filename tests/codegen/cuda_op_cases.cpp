// The CUDA codegen and executor test cases of the core ops (see SHOAL_CUDA_CASE in
// cuda_test_graphs.h): each op in a few shapes (strides, padding, broadcasting, long
// reductions, label types).
#include "codegen/cuda_test_graphs.h"

namespace shoal::test {
namespace {

SHOAL_CUDA_CASE(Input, OpKind::Input) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.output(b.input("x", Shape{2, 3}));
  return true;
  return false;
}

SHOAL_CUDA_CASE(Param, OpKind::Param) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.output(b.param("w", {3, 4}));
  return true;
  return false;
}

SHOAL_CUDA_CASE(State, OpKind::State) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.output(b.state("m", {3, 4}));
  return true;
  return false;
}

SHOAL_CUDA_CASE(Output, OpKind::Output) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.output(b.input("x", Shape{5}));
  return true;
  return false;
}

SHOAL_CUDA_CASE(Constant, OpKind::Constant) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  {
    Value* k =
        b.op(OpKind::Constant, {}, attrs({{"value", TensorLiteral{{2, 3}, {1.0, 2.5, -3.0, 0.1, 7, -0.25}}}}), "k");
    b.op(OpKind::Add, {k, b.input("x", Shape{2, 3})}, {}, "kx");
    return true;
  }
  return false;
}

SHOAL_CUDA_CASE(Cast, OpKind::Cast) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::Cast, {b.input("pixels", TensorType{DType::U8, {2, 3, 5}})},
       attrs({{"dtype", std::string(dtypeName(dt))}}), "y");
  b.op(OpKind::Cast, {b.input("ids", TensorType{DType::I64, {7}})}, attrs({{"dtype", std::string(dtypeName(dt))}}),
       "ids_f");
  // To every storage type and back: values in [-2, 2) (float16's and bfloat16's rounding),
  // and scaled to [-80000, 80000) (past float16's, int8's, int16's and uint16's range: inf
  // and saturation; negative values saturate to 0 in the unsigned types).
  Value* x = b.input("x", Shape{4, 9});
  Value* big = b.op(OpKind::Scale, {x}, attrs({{"scale", 40000.0}, {"shift", 0.0}}), "big");
  for (DType st : {DType::F16, DType::BF16, DType::I8, DType::I16, DType::U16, DType::U32, DType::U64}) {
    const std::string name(dtypeName(st));
    for (auto [v, range] : {std::pair{x, "small"}, std::pair{big, "big"}}) {
      Value* s = b.op(OpKind::Cast, {v}, attrs({{"dtype", name}}), std::string(range) + "_to_" + name);
      b.op(OpKind::Cast, {s}, attrs({{"dtype", std::string(dtypeName(dt))}}), std::string(range) + "_from_" + name);
    }
  }
  return true;
  return false;
}

SHOAL_CUDA_CASE(Scale, OpKind::Scale) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::Scale, {b.input("x", Shape{3, 4, 5})}, attrs({{"scale", 0.5}, {"shift", -1.0}}), "y");
  return true;
  return false;
}

SHOAL_CUDA_CASE(Normalize, OpKind::Normalize) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  {
    Value* x = b.input("x", Shape{2, 3, 4, 4});
    b.op(OpKind::Normalize, {x},
         attrs({{"mean", std::vector<double>{0.1, -0.2, 0.3}}, {"std", std::vector<double>{0.5, 2.0, 1.5}}}),
         "per_channel");
    b.op(OpKind::Normalize, {x}, attrs({{"mean", std::vector<double>{0.1307}}, {"std", std::vector<double>{0.3081}}}),
         "global");
    return true;
  }
  return false;
}

SHOAL_CUDA_CASE(Flatten, OpKind::Flatten) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::Flatten, {b.input("x", Shape{2, 3, 4})}, {}, "f");
  return true;
  return false;
}

SHOAL_CUDA_CASE(Reshape, OpKind::Reshape) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::Reshape, {b.input("x", Shape{2, 12})}, attrs({{"shape", Ints{-1, 3, 4}}}), "r");
  return true;
  return false;
}

SHOAL_CUDA_CASE(Dense, OpKind::Dense) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::Dense, {b.input("x", Shape{5, 7}), b.param("d.weight", {3, 7}), b.param("d.bias", {3})}, {}, "d");
  b.op(OpKind::Dense, {b.input("x2", Shape{4, 300}), b.param("e.weight", {6, 300})}, {}, "e");
  return true;
  return false;
}

SHOAL_CUDA_CASE(MatMul, OpKind::MatMul) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  {
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
  return false;
}

SHOAL_CUDA_CASE(Relu, OpKind::Relu, OpKind::Sigmoid, OpKind::Tanh, OpKind::Softplus, OpKind::Neg) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(kind, {b.input("x", Shape{3, 50})}, {}, "y");
  return true;
  return false;
}

SHOAL_CUDA_CASE(ReluGrad, OpKind::ReluGrad, OpKind::SigmoidGrad, OpKind::TanhGrad) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(kind, {b.input("u", Shape{3, 50}), b.input("dy", Shape{3, 50})}, {}, "dx");
  return true;
  return false;
}

SHOAL_CUDA_CASE(Add, OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(kind, {b.input("a", Shape{3, 4}), b.input("b", Shape{3, 4})}, {}, "same");
  b.op(kind, {b.input("c", Shape{2, 3, 4}), b.input("d", Shape{3, 1})}, {}, "rows");
  b.op(kind, {b.input("s", Shape{}), b.input("e", Shape{2, 3})}, {}, "scalar");
  b.op(kind, {b.input("f", Shape{4, 1, 5}), b.input("g", Shape{1, 3, 1})}, {}, "outer");
  // Integer operands (the interpreter's runIntegerArithmetic: through double, truncated toward
  // zero, wrapped): i64 and i32 in [-100, 100], u8 in [0, 255] (200 + 100 wraps to 44), bool.
  // Divisors are made nonzero with maximum(·, step = 1); negative quotients truncate.
  const TensorType i64{DType::I64, {3, 4}}, i32{DType::I32, {2, 3}}, u8{DType::U8, {2, 5}};
  Value* one = b.input("step", TensorType{DType::I64, {}});
  Value* ia = b.input("ia", i64);
  Value* ib = b.input("ib", i64);
  b.op(kind, {ia, kind == OpKind::Div ? b.op(OpKind::Maximum, {ib, one}, {}, "i64_divisor") : ib}, {}, "i64");
  b.op(kind, {b.input("ja", i32), b.input("jb", TensorType{DType::I32, {3}})}, {}, "i32");
  Value* ua = b.input("ua", u8);
  Value* ub = b.input("ub", TensorType{DType::U8, {1, 5}});
  if (kind == OpKind::Div) ub = b.op(OpKind::Maximum, {ub, b.op(OpKind::Cast, {one}, attrs({{"dtype", std::string("u8")}}), "one_u8")}, {},
                   "u8_divisor");
  b.op(kind, {ua, ub}, {}, "u8");
  if (kind != OpKind::Div)
    b.op(kind, {b.input("ba", TensorType{DType::Bool, {3, 1}}), b.input("bb", TensorType{DType::Bool, {1, 4}})}, {},
         "bool");
  return true;
  return false;
}

SHOAL_CUDA_CASE(SumTo, OpKind::SumTo) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::SumTo, {b.input("a", Shape{3, 4, 5})}, attrs({{"shape", Ints{4, 1}}}), "short");
  b.op(OpKind::SumTo, {b.input("b", Shape{64, 10})}, attrs({{"shape", Ints{10}}}), "rows");
  b.op(OpKind::SumTo, {b.input("c", Shape{16, 8, 20, 20})}, attrs({{"shape", Ints{1, 8, 1, 1}}}), "long");
  b.op(OpKind::SumTo, {b.input("d", Shape{6, 40})}, attrs({{"shape", Ints{40}}}), "few");
  b.op(OpKind::SumTo, {b.input("e", Shape{2, 3})}, attrs({{"shape", Ints{}}}), "all");
  // Contiguous runs reduced a warp each: 20 of 49 per output (not in fours; a warp takes
  // several), 40 of 36 (in fours), one of 432 per output, one of 210 for a single output.
  b.op(OpKind::SumTo, {b.input("f", Shape{20, 3, 7, 7})}, attrs({{"shape", Ints{1, 3, 1, 1}}}), "runs");
  b.op(OpKind::SumTo, {b.input("f4", Shape{40, 16, 36})}, attrs({{"shape", Ints{1, 16, 1}}}), "runs4");
  b.op(OpKind::SumTo, {b.input("g", Shape{5, 12, 36})}, attrs({{"shape", Ints{5, 1, 1}}}), "inner");
  b.op(OpKind::SumTo, {b.input("h", Shape{3, 70})}, attrs({{"shape", Ints{}}}), "whole");
  return true;
  return false;
}

SHOAL_CUDA_CASE(Softmax, OpKind::Softmax, OpKind::LogSoftmax) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(kind, {b.input("x", Shape{5, 7})}, {}, "y");
  b.op(kind, {b.input("w", Shape{3, 100})}, {}, "wide");
  // Other axes: one thread per column.
  b.op(kind, {b.input("m", Shape{3, 6, 4})}, attrs({{"axis", int64_t(1)}}), "middle");
  b.op(kind, {b.input("f", Shape{5, 33})}, attrs({{"axis", int64_t(-2)}}), "first");
  return true;
  return false;
}

SHOAL_CUDA_CASE(SoftmaxGrad, OpKind::SoftmaxGrad, OpKind::LogSoftmaxGrad) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(kind, {b.input("y", Shape{5, 7}), b.input("dy", Shape{5, 7})}, {}, "dx");
  b.op(kind, {b.input("yw", Shape{3, 100}), b.input("dyw", Shape{3, 100})}, {}, "dxw");
  b.op(kind, {b.input("ym", Shape{3, 6, 4}), b.input("dym", Shape{3, 6, 4})}, attrs({{"axis", int64_t(1)}}), "dxm");
  return true;
  return false;
}

SHOAL_CUDA_CASE(ArgMax, OpKind::ArgMax) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::ArgMax, {b.input("qx", Shape{6, 7})}, {}, "cls");
  b.op(OpKind::ArgMax, {b.input("w", Shape{3, 100})}, {}, "wide");
  return true;
  return false;
}

SHOAL_CUDA_CASE(Accuracy, OpKind::Accuracy) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::Accuracy, {b.input("qx", Shape{8, 7}), b.input("labels", labels64)}, {}, "acc64");
  b.op(OpKind::Accuracy, {b.input("qy", Shape{8, 7}), b.input("labels32", labels32)}, {}, "acc32");
  b.op(OpKind::Accuracy, {b.input("qz", Shape{8, 7}), b.input("labels8", labels8)}, {}, "acc8");
  return true;
  return false;
}

SHOAL_CUDA_CASE(SoftmaxCrossEntropy, OpKind::SoftmaxCrossEntropy) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::SoftmaxCrossEntropy, {b.input("x", Shape{8, 7}), b.input("labels", labels64)}, {}, "loss64");
  b.op(OpKind::SoftmaxCrossEntropy, {b.input("y", Shape{8, 7}), b.input("labels32", labels32)}, {}, "loss32");
  b.op(OpKind::SoftmaxCrossEntropy, {b.input("z", Shape{8, 7}), b.input("labels8", labels8)}, {}, "loss8");
  b.op(OpKind::SoftmaxCrossEntropy, {b.input("s", Shape{8, 7}), b.input("labels_s", labels64)},
       attrs({{"label_smoothing", 0.1}}), "smoothed");
  return true;
  return false;
}

SHOAL_CUDA_CASE(SoftmaxCrossEntropyGrad, OpKind::SoftmaxCrossEntropyGrad) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::SoftmaxCrossEntropyGrad,
       {b.input("x", Shape{8, 7}), b.input("labels", labels64), b.input("dloss", Shape{})}, {}, "dx");
  b.op(OpKind::SoftmaxCrossEntropyGrad,
       {b.input("y", Shape{8, 7}), b.input("labels8", labels8), b.input("dloss8", Shape{})}, {}, "dy");
  b.op(OpKind::SoftmaxCrossEntropyGrad,
       {b.input("s", Shape{8, 7}), b.input("labels_s", labels64), b.input("dloss_s", Shape{})},
       attrs({{"label_smoothing", 0.25}}), "smoothed");
  return true;
  return false;
}

SHOAL_CUDA_CASE(Mse, OpKind::Mse) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::Mse, {b.input("p", Shape{3, 5}), b.input("t", Shape{3, 5})}, {}, "loss");
  return true;
  return false;
}

SHOAL_CUDA_CASE(MseGrad, OpKind::MseGrad) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::MseGrad, {b.input("p", Shape{3, 5}), b.input("t", Shape{3, 5}), b.input("dloss", Shape{})}, {}, "dp");
  return true;
  return false;
}

SHOAL_CUDA_CASE(FusedDense, OpKind::FusedDense) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::FusedDense, {b.input("x", Shape{5, 7}), b.param("d.weight", {3, 7}), b.param("d.bias", {3})},
       attrs({{"activation", std::string("relu")}}), "d");
  b.op(OpKind::FusedDense, {b.input("x2", Shape{4, 300}), b.param("e.weight", {6, 300})},
       attrs({{"activation", std::string("sigmoid")}}), "e");
  b.op(OpKind::FusedDense, {b.input("x3", Shape{3, 4}), b.param("f.weight", {5, 4}), b.param("f.bias", {5})},
       attrs({{"activation", std::string("tanh")}}), "f");
  return true;
  return false;
}

SHOAL_CUDA_CASE(FusedMlp, OpKind::FusedMlp) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  auto mlp = [&](const std::string& name, int64_t rows, int64_t in, int64_t hidden, int64_t outs, const char* act) {
    b.op(OpKind::FusedMlp,
         {b.input(name + ".x", Shape{rows, in}), b.param(name + ".w1", {hidden, in}), b.param(name + ".b1", {hidden}),
          b.param(name + ".w2", {outs, hidden}), b.param(name + ".b2", {outs})},
         attrs({{"activation", std::string(act)}}), name);
  };
  // Unsplit small products: the two layers' kernels, the hidden layer in scratch.
  mlp("m", 5, 7, 3, 4, "relu");
  mlp("t", 3, 40, 33, 2, "tanh");
  // A split first product (f32: 40 x 48 outputs, more than a warp per output takes, in four
  // 32-tiles and 16 slices of 64 terms): the tiles, then a block a row (a hidden width not a
  // multiple of 32, more outputs than warps).
  mlp("rows", 40, 1024, 48, 11, "relu");
  // First products of a block per output (at least 1024 terms, few outputs: batch-1
  // inference) into scratch, then a warp per output (one row; two rows and a hidden width not
  // a multiple of 32).
  mlp("one", 1, 1100, 40, 11, "sigmoid");
  mlp("two", 2, 1024, 33, 5, "relu");
  return true;
  return false;
}

SHOAL_CUDA_CASE(FusedElementwise, OpKind::FusedElementwise) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  {
    Value* a = b.input("a", Shape{3, 50});
    Value* c = b.input("c", Shape{3, 50});
    Value* d = b.input("d", Shape{3, 50});
    b.op(OpKind::FusedElementwise, {a, c, d}, attrs({{"expr", std::string("a0 a1 mul 0.5 add relu a2 sub")}}), "chain");
    b.op(OpKind::FusedElementwise, {a, c}, attrs({{"expr", std::string("a0 sigmoid a1 tanh add a0 neg 2.5 sub div")}}),
         "acts");
    b.op(OpKind::FusedElementwise, {a, c, d},
         attrs({{"expr", std::string("a0 a1 relu_grad a2 a1 sigmoid_grad mul a2 a0 tanh_grad add -0.25 mul")}}),
         "grads");
    // Small integers: relu and relu_grad meet exact zeros.
    b.op(OpKind::FusedElementwise, {b.input("qu", Shape{2, 9}), b.input("qd", Shape{2, 9})},
         attrs({{"expr", std::string("a0 relu a1 a0 relu_grad add a1 1 add mul")}}), "ties");
    b.op(OpKind::FusedElementwise, {b.input("s", Shape{})}, attrs({{"expr", std::string("a0 a0 mul 3 div")}}),
         "scalar");
    return true;
  }
  return false;
}

}  // namespace
}  // namespace shoal::test
