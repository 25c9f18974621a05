// CUDA codegen and executor cases of the elementwise family (see SHOAL_CUDA_CASE): inputs
// named q* hold small integers in [-2, 2] so kinks, ties, zeros and (through log) -inf and
// NaN are met; long reductions take the block-per-output and split paths.
#include "codegen/cuda_test_graphs.h"

namespace shoal::test {
namespace {

Attrs scaleBy(double scale, double shift) { return attrs({{"scale", scale}, {"shift", shift}}); }

// Gradient rows (x, dy) of unary ops, at random points and at q points scaled onto the kinks
// (x in {-3, -1.5, 0, 1.5, 3}, and 6 through the second scale).
SHOAL_CUDA_CASE(UnaryGrads, OpKind::GeluGrad, OpKind::GeluTanhGrad, OpKind::SiluGrad, OpKind::HardswishGrad,
                OpKind::HardsigmoidGrad, OpKind::Relu6Grad, OpKind::ClipGrad, OpKind::LeakyReluGrad, OpKind::RsqrtGrad,
                OpKind::ReciprocalGrad, OpKind::ErfGrad, OpKind::AbsGrad) {
  Attrs a;
  if (kind == OpKind::HardsigmoidGrad) a = attrs({{"alpha", 1.0 / 6}, {"beta", 0.5}});
  if (kind == OpKind::ClipGrad) a = attrs({{"min", -1.5}, {"max", 3.0}});
  if (kind == OpKind::LeakyReluGrad) a = attrs({{"alpha", 0.01}});
  b.op(kind, {b.input("x", Shape{3, 50}), b.input("dy", Shape{3, 50})}, a, "y");
  Value* q = b.input("qx", Shape{4, 9});
  Value* dq = b.input("qdy", Shape{4, 9});
  b.op(kind, {b.op(OpKind::Scale, {q}, scaleBy(1.5, 0), "kinks"), dq}, a, "at_kinks");
  b.op(kind, {b.op(OpKind::Scale, {q}, scaleBy(3, 0), "kinks6"), dq}, a, "at_kinks6");
  return true;
}

// Trigonometric and hyperbolic functions: random values in [-1.4, 1.4) (away from tan's poles,
// past the ends of asin's domain: NaN alike), and shifted to [0.6, 3.4) (acosh's domain and
// below it).
SHOAL_CUDA_CASE(Trig, OpKind::Sin, OpKind::Cos, OpKind::Tan, OpKind::Asin, OpKind::Acos, OpKind::Atan, OpKind::Sinh,
                OpKind::Cosh, OpKind::Asinh, OpKind::Acosh, OpKind::Atanh) {
  b.op(kind, {b.op(OpKind::Scale, {b.input("a", Shape{3, 50})}, scaleBy(0.7, 0), "near")}, {}, "y");
  b.op(kind, {b.op(OpKind::Scale, {b.input("s", Shape{4, 9})}, scaleBy(0.7, 2), "shifted")}, {}, "y_shifted");
  return true;
}

// Unary math over random values (negative ones give NaN for log/sqrt/rsqrt) and over exact
// zeros and kinks (log 0 = -inf, 1/0 = inf, rsqrt 0 = inf).
SHOAL_CUDA_CASE(UnaryMath, OpKind::Log, OpKind::Sqrt, OpKind::Rsqrt, OpKind::Reciprocal, OpKind::Abs, OpKind::Relu6,
                OpKind::Hardswish, OpKind::Hardsigmoid, OpKind::LeakyRelu, OpKind::Erf, OpKind::Exp, OpKind::Gelu,
                OpKind::GeluTanh, OpKind::Silu) {
  b.op(kind, {b.input("a", Shape{3, 50})}, {}, "y");
  b.op(kind, {b.op(OpKind::Scale, {b.input("q", Shape{4, 9})}, scaleBy(1.5, 0), "kinks")}, {}, "at_kinks");
  b.op(kind, {b.op(OpKind::Scale, {b.input("wide", Shape{2, 40})}, scaleBy(40, 0), "far")}, {}, "far_out");
  if (kind == OpKind::Hardsigmoid)
    b.op(kind, {b.input("onnx", Shape{5, 7})}, attrs({{"alpha", 0.2}, {"beta", 0.5}}), "onnx_alpha");
  if (kind == OpKind::LeakyRelu) b.op(kind, {b.input("s", Shape{5, 7})}, attrs({{"alpha", 0.2}}), "slope");
  return true;
}

SHOAL_CUDA_CASE(Clip, OpKind::Clip) {
  Value* x = b.input("qx", Shape{4, 9});
  b.op(kind, {x}, attrs({{"min", -1.0}, {"max", 1.5}}), "bounded");
  b.op(kind, {x}, {}, "unbounded");
  b.op(kind, {x}, attrs({{"min", 1.0}, {"max", -1.0}}), "crossed");
  b.op(kind, {b.input("a", Shape{3, 50})}, attrs({{"max", 0.5}}), "max_only");
  return true;
}

SHOAL_CUDA_CASE(Pow, OpKind::Pow) {
  // Positive bases to any exponent; small integers (0^0, 0^-2 = inf, (-2)^-1, (-1)^2); a
  // negative base to a fractional exponent (NaN); broadcasting.
  Value* pos = b.op(OpKind::Exp, {b.input("la", Shape{3, 50})}, {}, "base");
  b.op(kind, {pos, b.input("e", Shape{3, 50})}, {}, "y");
  b.op(kind, {b.input("qa", Shape{5, 5}), b.input("qb", Shape{5, 5})}, {}, "integers");
  b.op(kind, {b.input("neg", Shape{3, 4}), b.input("frac", Shape{4})}, {}, "broadcast");
  return true;
}

SHOAL_CUDA_CASE(PowGrads, OpKind::PowGradBase, OpKind::PowGradExponent) {
  b.op(kind,
       {b.op(OpKind::Exp, {b.input("la", Shape{3, 50})}, {}, "base"), b.input("e", Shape{3, 50}),
        b.input("dy", Shape{3, 50})},
       {}, "y");
  b.op(kind, {b.input("qa", Shape{5, 5}), b.input("qb", Shape{5, 5}), b.input("qdy", Shape{5, 5})}, {}, "integers");
  b.op(kind, {b.input("ba", Shape{3, 1}), b.input("bb", Shape{4}), b.input("bdy", Shape{3, 4})}, {}, "broadcast");
  return true;
}

SHOAL_CUDA_CASE(MinMax, OpKind::Minimum, OpKind::Maximum) {
  b.op(kind, {b.input("a", Shape{3, 50}), b.input("b", Shape{3, 50})}, {}, "y");
  // Ties, and NaN (log of a negative q) against numbers on either side.
  Value* qa = b.input("qa", Shape{4, 9});
  Value* qb = b.input("qb", Shape{4, 9});
  b.op(kind, {qa, qb}, {}, "ties");
  Value* nan = b.op(OpKind::Log, {qa}, {}, "log_q");
  b.op(kind, {nan, qb}, {}, "nan_left");
  b.op(kind, {qb, nan}, {}, "nan_right");
  b.op(kind, {b.input("wide", Shape{2, 3, 4}), b.input("col", Shape{3, 1})}, {}, "broadcast");
  return true;
}

SHOAL_CUDA_CASE(MinMaxGrads, OpKind::MinimumGrad, OpKind::MaximumGrad) {
  b.op(kind, {b.input("qx", Shape{4, 9}), b.input("qo", Shape{4, 9}), b.input("dy", Shape{4, 9})}, {}, "ties");
  b.op(kind, {b.input("x", Shape{2, 3, 4}), b.input("qs", Shape{3, 1}), b.input("bdy", Shape{2, 3, 4})}, {},
       "broadcast");
  return true;
}

// Comparisons of floats (ties and NaN), of i64, u8 and bool, broadcast; the bool result cast
// back to the float type (cast from bool on the GPU).
SHOAL_CUDA_CASE(Compare, OpKind::Equal, OpKind::NotEqual, OpKind::Less, OpKind::LessEqual, OpKind::Greater,
                OpKind::GreaterEqual) {
  Value* qa = b.input("qa", Shape{4, 9});
  Value* qb = b.input("qb", Shape{9});
  Value* mask = b.op(kind, {qa, qb}, {}, "ties");
  b.op(OpKind::Cast, {mask}, attrs({{"dtype", std::string(dtypeName(b.dt()))}}), "as_float");
  b.op(kind, {b.op(OpKind::Log, {qa}, {}, "log_q"), qa}, {}, "with_nan");
  b.op(kind, {b.input("ia", TensorType{DType::I64, {2, 1, 5}}), b.input("ib", TensorType{DType::I64, {3, 1}})}, {},
       "i64");
  b.op(kind, {b.input("ua", TensorType{DType::U8, {6}}), b.input("ub", TensorType{DType::U8, {}})}, {}, "u8");
  b.op(kind, {b.input("ba", TensorType{DType::Bool, {3, 1}}), b.input("bb", TensorType{DType::Bool, {1, 4}})}, {},
       "bool");
  return true;
}

SHOAL_CUDA_CASE(Where, OpKind::Where) {
  Value* x = b.input("x", Shape{3, 50});
  Value* zero = b.input("z", Shape{});
  Value* cond = b.op(OpKind::Greater, {x, zero}, {}, "pos");
  b.op(kind, {cond, x, b.input("other", Shape{3, 50})}, {}, "y");
  b.op(kind, {b.input("c", TensorType{DType::Bool, {2, 1, 4}}), b.input("a", Shape{3, 1}), zero}, {}, "broadcast");
  b.op(kind,
       {b.input("ci", TensorType{DType::Bool, {5}}), b.input("ia", TensorType{DType::I64, {5}}),
        b.input("ib", TensorType{DType::I64, {1}})},
       {}, "i64");
  b.op(kind,
       {b.input("cb", TensorType{DType::Bool, {4}}), b.input("ba", TensorType{DType::Bool, {4}}),
        b.input("bb", TensorType{DType::Bool, {4}})},
       {}, "bool");
  return true;
}

// Products: of terms near 1 (0.99-1.01: long products neither overflow nor underflow), short
// and long as the other reductions, and of rows holding zeros (relu of negative values).
SHOAL_CUDA_CASE(ReduceProd, OpKind::ReduceProd) {
  auto ax = [](std::vector<int64_t> axes, int64_t keep = 0) { return attrs({{"axes", axes}, {"keepdim", keep}}); };
  auto nearOne = [&](Value* v, const std::string& name) {
    return b.op(OpKind::Scale, {v}, attrs({{"scale", 0.01}, {"shift", 1.0}}), name);
  };
  Value* x = b.input("x", Shape{2, 3, 4, 5});
  b.op(kind, {x}, ax({1}), "middle");
  b.op(kind, {x}, ax({0, 2}, 1), "outer_kept");
  b.op(kind, {nearOne(x, "x_near_one")}, ax({}), "all");
  b.op(kind, {nearOne(b.input("rows", Shape{3, 4500}), "rows_near_one")}, ax({1}), "long_rows");
  b.op(kind, {nearOne(b.input("cols", Shape{2100, 3}), "cols_near_one")}, ax({0}, 1), "long_cols");
  b.op(kind, {nearOne(b.input("flat", Shape{9000}), "flat_near_one")}, ax({0}), "long_split");
  b.op(kind, {b.op(OpKind::Relu, {b.input("z", Shape{6, 4})}, {}, "z_relu")}, ax({1}), "with_zeros");
  return true;
}

// Short reductions (a thread per output) and long ones: a block per output, split when there
// are few outputs; ties and NaN (through log) for max and min.
SHOAL_CUDA_CASE(Reduce, OpKind::ReduceSum, OpKind::ReduceMean, OpKind::ReduceMax, OpKind::ReduceMin) {
  auto ax = [](std::vector<int64_t> axes, int64_t keep = 0) { return attrs({{"axes", axes}, {"keepdim", keep}}); };
  Value* x = b.input("x", Shape{2, 3, 4, 5});
  b.op(kind, {x}, ax({}), "all");
  b.op(kind, {x}, ax({1}), "middle");
  b.op(kind, {x}, ax({0, 2}, 1), "outer_kept");
  b.op(kind, {x}, ax({-1, 1}), "inner");
  b.op(kind, {b.input("rows", Shape{3, 4500})}, ax({1}), "long_rows");
  b.op(kind, {b.input("cols", Shape{2100, 3})}, ax({0}, 1), "long_cols");
  b.op(kind, {b.input("flat", Shape{9000})}, ax({0}), "long_split");
  Value* q = b.input("q", Shape{5, 40});
  b.op(kind, {q}, ax({1}), "ties");
  b.op(kind, {b.op(OpKind::Log, {q}, {}, "log_q")}, ax({1}), "with_nan");
  return true;
}

}  // namespace
}  // namespace shoal::test
