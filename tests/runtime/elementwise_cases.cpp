// Interpreter cases of the elementwise family (see SHOAL_INTERPRETER_CASES): activations and
// math against values computed independently (mpmath, 40 digits, or by hand), their gradient
// rows against the forward's derivative, comparisons, where and the reductions.
#include "runtime/interpreter_cases.h"

namespace shoal::test {
namespace {

// A unary op (with attributes `a`) over x, expecting `want`.
void unary(OpKind kind, DType dt, const std::function<void(CaseBuilder&)>& add, const std::string& label,
           const std::vector<double>& x, const std::vector<double>& want, Attrs a = {}) {
  CaseBuilder b(std::string(opName(kind)) + " " + label, dt);
  const Shape s{int64_t(x.size())};
  b.output(b.op(kind, {b.fin("x", s, x)}, std::move(a)));
  b.expect("y", s, want);
  add(b);
}

// A gradient row (operand, dy) -> dx, expecting `want`.
void gradRow(OpKind kind, DType dt, const std::function<void(CaseBuilder&)>& add, const std::string& label,
             const std::vector<double>& x, const std::vector<double>& dy, const std::vector<double>& want,
             Attrs a = {}) {
  CaseBuilder b(std::string(opName(kind)) + " " + label, dt);
  const Shape s{int64_t(x.size())};
  b.output(b.op(kind, {b.fin("x", s, x), b.fin("dy", s, dy)}, std::move(a), "dx"), "dx");
  b.expect("dx", s, want);
  add(b);
}

// ---- activations ------------------------------------------------------------------------

SHOAL_INTERPRETER_CASES(Gelu, OpKind::Gelu) {
  // x Phi(x): Phi(1) = 0.841344746..., so gelu(1) = 0.8413447460685429 and gelu(-1) = 1 - that - 1.
  unary(kind, dt, add, "erf form", {-2, -1, 0, 0.5, 1, 2},
        {-0.045500263896358414, -0.15865525393145705, 0, 0.34573123063700655, 0.84134474606854295, 1.9544997361036416});
}

SHOAL_INTERPRETER_CASES(GeluGrad, OpKind::GeluGrad) {
  // dy * d/dx gelu (mpmath's numerical derivative of x Phi(x)): 1/2 at 0.
  gradRow(kind, dt, add, "from x", {-1, 0, 1}, {1, 2, 3}, {-0.083315470587686298, 1.0, 3.2499464117630589});
}

SHOAL_INTERPRETER_CASES(GeluTanh, OpKind::GeluTanh) {
  unary(kind, dt, add, "tanh form", {-2, -1, 0, 0.5, 1, 2},
        {-0.045402305912224981, -0.1588080093917233, 0, 0.34571400982514392, 0.8411919906082767, 1.954597694087775});
}

SHOAL_INTERPRETER_CASES(GeluTanhGrad, OpKind::GeluTanhGrad) {
  gradRow(kind, dt, add, "from x", {-1, 0, 1}, {1, 2, 3}, {-0.082964083845782555, 1.0, 3.2488922515373477});
}

SHOAL_INTERPRETER_CASES(Silu, OpKind::Silu) {
  unary(kind, dt, add, "x sigmoid(x)", {-1, 0, 1, 2},
        {-0.26894142136999512, 0, 0.73105857863000488, 1.7615941559557649});
}

SHOAL_INTERPRETER_CASES(SiluGrad, OpKind::SiluGrad) {
  gradRow(kind, dt, add, "from x", {-1, 0, 2}, {1, 2, 3}, {0.072329488128513268, 1.0, 3.2723527463546864});
}

SHOAL_INTERPRETER_CASES(Hardswish, OpKind::Hardswish) {
  // x (x+3)/6 on [-3, 3]: -1 -> -1/3, 1 -> 2/3; 0 below -3, x above 3.
  unary(kind, dt, add, "pieces", {-4, -3, -1, 0, 1, 3, 4}, {0, 0, -1.0 / 3, 0, 2.0 / 3, 3, 4});
}

SHOAL_INTERPRETER_CASES(HardswishGrad, OpKind::HardswishGrad) {
  // dy (x/3 + 1/2) on [-3, 3] (both ends, PyTorch's choice), 0 below, dy above; dy = 2.
  gradRow(kind, dt, add, "pieces and kinks", {-4, -3, -1, 0, 3, 4}, {2, 2, 2, 2, 2, 2}, {0, -1, 1.0 / 3, 1, 3, 2});
}

SHOAL_INTERPRETER_CASES(Hardsigmoid, OpKind::Hardsigmoid) {
  // PyTorch's relu6(x + 3) / 6 by default.
  unary(kind, dt, add, "PyTorch defaults", {-4, -3, -1, 0, 1.5, 3, 4}, {0, 0, 1.0 / 3, 0.5, 0.75, 1, 1});
  // ONNX HardSigmoid's alpha 0.2, beta 0.5: clip(0.2 x + 0.5, 0, 1).
  unary(kind, dt, add, "ONNX alpha", {-3, -2.5, 0, 1, 3}, {0, 0, 0.5, 0.7, 1}, attrs({{"alpha", 0.2}, {"beta", 0.5}}));
}

SHOAL_INTERPRETER_CASES(HardsigmoidGrad, OpKind::HardsigmoidGrad) {
  // dy / 6 strictly inside (-3, 3), 0 at and beyond the kinks (hardsigmoid_backward).
  gradRow(kind, dt, add, "inside only", {-4, -3, 0, 2.5, 3}, {6, 6, 6, 6, 6}, {0, 0, 1, 1, 0},
          attrs({{"alpha", 1.0 / 6}, {"beta", 0.5}}));
}

SHOAL_INTERPRETER_CASES(Relu6, OpKind::Relu6) {
  unary(kind, dt, add, "clamped to [0, 6]", {-1, 0, 3, 6, 7.5}, {0, 0, 3, 6, 6});
}

SHOAL_INTERPRETER_CASES(Relu6Grad, OpKind::Relu6Grad) {
  // From the output: dy strictly between 0 and 6 (hardtanh_backward).
  gradRow(kind, dt, add, "from y", {0, 3, 6, 5.5}, {1, 2, 3, 4}, {0, 2, 0, 4});
}

SHOAL_INTERPRETER_CASES(Clip, OpKind::Clip) {
  unary(kind, dt, add, "[-1, 1]", {-2, -0.5, 0, 0.5, 2}, {-1, -0.5, 0, 0.5, 1}, attrs({{"min", -1.0}, {"max", 1.0}}));
  unary(kind, dt, add, "unbounded by default", {-1e30, 3, 1e30}, {-1e30, 3, 1e30});
  unary(kind, dt, add, "max only", {-5, 2, 8}, {-5, 2, 6}, attrs({{"max", 6.0}}));
  // torch.clamp with min > max gives max everywhere.
  unary(kind, dt, add, "min above max", {-1, 0.5, 3}, {0, 0, 0}, attrs({{"min", 1.0}, {"max", 0.0}}));
}

SHOAL_INTERPRETER_CASES(ClipGrad, OpKind::ClipGrad) {
  // dy where min <= x <= max, bounds included (torch.clamp's backward).
  gradRow(kind, dt, add, "bounds included", {-1, -2, 0.25, 1, 2}, {1, 2, 3, 4, 5}, {1, 0, 3, 4, 0},
          attrs({{"min", -1.0}, {"max", 1.0}}));
}

SHOAL_INTERPRETER_CASES(LeakyRelu, OpKind::LeakyRelu) {
  unary(kind, dt, add, "default slope", {-2, 0, 3}, {-0.02, 0, 3});
  unary(kind, dt, add, "slope 0.25", {-2, -0.5, 1}, {-0.5, -0.125, 1}, attrs({{"alpha", 0.25}}));
}

SHOAL_INTERPRETER_CASES(LeakyReluGrad, OpKind::LeakyReluGrad) {
  // The slope at 0, as PyTorch (x > 0 ? dy : slope dy).
  gradRow(kind, dt, add, "slope at 0", {-2, 0, 3}, {1, 2, 3}, {0.25, 0.5, 3}, attrs({{"alpha", 0.25}}));
}

// ---- math ---------------------------------------------------------------------------------

SHOAL_INTERPRETER_CASES(Exp, OpKind::Exp) {
  unary(kind, dt, add, "e^x", {0, 1, -1, ln2}, {1, 2.7182818284590452, 0.36787944117144232, 2});
}

SHOAL_INTERPRETER_CASES(Log, OpKind::Log) {
  unary(kind, dt, add, "ln", {1, 0.5, 4, 2.7182818284590452}, {0, -ln2, 2 * ln2, 1});
}

SHOAL_INTERPRETER_CASES(Sqrt, OpKind::Sqrt) {
  unary(kind, dt, add, "roots", {0, 0.25, 4, 2}, {0, 0.5, 2, std::sqrt(2.0)});
}

SHOAL_INTERPRETER_CASES(Rsqrt, OpKind::Rsqrt) {
  unary(kind, dt, add, "inverse roots", {0.25, 4, 2}, {2, 0.5, 1 / std::sqrt(2.0)});
}

SHOAL_INTERPRETER_CASES(RsqrtGrad, OpKind::RsqrtGrad) {
  // -dy y^3 / 2 from the output: y = 2 (x = 1/4), y = 1/2 (x = 4).
  gradRow(kind, dt, add, "from y", {2, 0.5}, {1, 4}, {-4, -0.25});
}

SHOAL_INTERPRETER_CASES(Reciprocal, OpKind::Reciprocal) { unary(kind, dt, add, "1/x", {2, -0.5, 4}, {0.5, -2, 0.25}); }

SHOAL_INTERPRETER_CASES(ReciprocalGrad, OpKind::ReciprocalGrad) {
  // -dy y^2 from the output.
  gradRow(kind, dt, add, "from y", {0.5, -2}, {4, 1}, {-1, -4});
}

SHOAL_INTERPRETER_CASES(Erf, OpKind::Erf) {
  unary(kind, dt, add, "values", {0, 0.5, -1, 2}, {0, 0.52049987781304654, -0.84270079294971487, 0.99532226501895273});
}

SHOAL_INTERPRETER_CASES(ErfGrad, OpKind::ErfGrad) {
  // 2/sqrt(pi) e^(-x^2) dy.
  gradRow(kind, dt, add, "from x", {0, 1, -0.5}, {1, 2, 3},
          {1.1283791670955126, 0.83021499484118941, 2.6363477368063344});
}

// Trigonometric and hyperbolic values at points where they are known exactly: sin(pi/6) =
// 1/2, tan(pi/4) = 1, cos(pi/3) = 1/2; sinh(ln 2) = 3/4, cosh(ln 2) = 5/4; the inverses back.
constexpr double kPi = 3.14159265358979323846, kLn2 = 0.69314718055994530942;
SHOAL_INTERPRETER_CASES(Sin, OpKind::Sin) { unary(kind, dt, add, "values", {0, kPi / 6, -kPi / 2}, {0, 0.5, -1}); }
SHOAL_INTERPRETER_CASES(Cos, OpKind::Cos) { unary(kind, dt, add, "values", {0, kPi / 3, kPi}, {1, 0.5, -1}); }
SHOAL_INTERPRETER_CASES(Tan, OpKind::Tan) { unary(kind, dt, add, "values", {0, kPi / 4, -kPi / 4}, {0, 1, -1}); }
SHOAL_INTERPRETER_CASES(Asin, OpKind::Asin) { unary(kind, dt, add, "values", {0, 0.5, -1}, {0, kPi / 6, -kPi / 2}); }
SHOAL_INTERPRETER_CASES(Acos, OpKind::Acos) { unary(kind, dt, add, "values", {1, 0.5, -1}, {0, kPi / 3, kPi}); }
SHOAL_INTERPRETER_CASES(Atan, OpKind::Atan) { unary(kind, dt, add, "values", {0, 1, -1}, {0, kPi / 4, -kPi / 4}); }
SHOAL_INTERPRETER_CASES(Sinh, OpKind::Sinh) { unary(kind, dt, add, "values", {0, kLn2, -kLn2}, {0, 0.75, -0.75}); }
SHOAL_INTERPRETER_CASES(Cosh, OpKind::Cosh) { unary(kind, dt, add, "values", {0, kLn2, -kLn2}, {1, 1.25, 1.25}); }
SHOAL_INTERPRETER_CASES(Asinh, OpKind::Asinh) { unary(kind, dt, add, "values", {0, 0.75, -0.75}, {0, kLn2, -kLn2}); }
SHOAL_INTERPRETER_CASES(Acosh, OpKind::Acosh) { unary(kind, dt, add, "values", {1, 1.25}, {0, kLn2}); }
SHOAL_INTERPRETER_CASES(Atanh, OpKind::Atanh) { unary(kind, dt, add, "values", {0, 0.6, -0.6}, {0, kLn2, -kLn2}); }

SHOAL_INTERPRETER_CASES(Abs, OpKind::Abs) { unary(kind, dt, add, "values", {-2, 0, 3.5}, {2, 0, 3.5}); }

SHOAL_INTERPRETER_CASES(AbsGrad, OpKind::AbsGrad) {
  // dy sign(x): no gradient at 0 (PyTorch).
  gradRow(kind, dt, add, "sign, 0 at 0", {-2, 0, 3}, {5, 6, 7}, {-5, 0, 7});
}

SHOAL_INTERPRETER_CASES(Pow, OpKind::Pow) {
  // A^R, A^C, A^2, 2^A, a^b (outer), A^A2; see binaryCases.
  out = binaryCases(kind, dt,
                    {{1, 4, 81, 4, 25, 1296},
                     {1, 4, 9, 256, 625, 1296},
                     {1, 4, 9, 16, 25, 36},
                     {2, 4, 8, 16, 32, 64},
                     {1, 1, 1, 2, 4, 16},
                     {1, 32, 81, 64, 25, 6}});
  CaseBuilder b("pow special values", dt);
  // 0^0 = 1, (-2)^3 = -8, 4^0.5 = 2, 2^-1 = 1/2, (-1)^0 = 1.
  b.output(b.op(kind, {b.fin("a", {5}, {0, -2, 4, 2, -1}), b.fin("b", {5}, {0, 3, 0.5, -1, 0})}));
  b.expect("y", {5}, {1, -8, 2, 0.5, 1});
  add(b);
}

SHOAL_INTERPRETER_CASES(PowGradBase, OpKind::PowGradBase) {
  // dy b a^(b-1): 1*3*2^2 = 12; 0 where b = 0 (even at a = 0); 2*0.5*4^-0.5 = 1/2;
  // 1*2*(-2) = -4; 3*2*0 = 0.
  CaseBuilder b("pow_grad_base", dt);
  b.output(
      b.op(kind,
           {b.fin("a", {5}, {2, 0, 4, -2, 0}), b.fin("b", {5}, {3, 0, 0.5, 2, 2}), b.fin("dy", {5}, {1, 5, 2, 1, 3})},
           {}, "da"),
      "da");
  b.expect("da", {5}, {12, 0, 0.5, -4, 0});
  add(b);
  // Broadcast: a [2,1] = [[2],[3]], b [2] = [1, 2], dy = 1: [[1, 4], [1, 6]].
  CaseBuilder c("pow_grad_base broadcast", dt);
  c.output(
      c.op(kind, {c.fin("a", {2, 1}, {2, 3}), c.fin("b", {2}, {1, 2}), c.fin("dy", {2, 2}, {1, 1, 1, 1})}, {}, "da"),
      "da");
  c.expect("da", {2, 2}, {1, 4, 1, 6});
  add(c);
}

SHOAL_INTERPRETER_CASES(PowGradExponent, OpKind::PowGradExponent) {
  // dy a^b ln a: 1*8*ln2; 0 where a = 0 and b >= 0; 2*2*ln4 = 8 ln2; ln 1 = 0.
  CaseBuilder b("pow_grad_exponent", dt);
  b.output(b.op(kind, {b.fin("a", {4}, {2, 0, 4, 1}), b.fin("b", {4}, {3, 2, 0.5, 5}), b.fin("dy", {4}, {1, 7, 2, 3})},
                {}, "db"),
           "db");
  b.expect("db", {4}, {8 * ln2, 0, 8 * ln2, 0});
  add(b);
}

SHOAL_INTERPRETER_CASES(Minimum, OpKind::Minimum) {
  out = binaryCases(kind, dt,
                    {{1, 2, 3, 1, 2, 4},
                     {1, 2, 2, 4, 4, 4},
                     {1, 2, 2, 2, 2, 2},
                     {1, 2, 2, 2, 2, 2},
                     {1, 1, 1, 1, 2, 2},
                     {1, 2, 3, 3, 2, 1}});
  CaseBuilder b("i64 operands", dt);
  b.output(b.op(kind, {b.input("a", {DType::I64, {3}}, {-5, 7, 2}), b.input("b", {DType::I64, {}}, {3})}));
  b.expect("y", {3}, {-5, 3, 2});
  add(b);
}

SHOAL_INTERPRETER_CASES(Fmod, OpKind::Fmod) {
  // The remainder takes the dividend's sign; every value here is exact in binary.
  CaseBuilder b("fmod signs", dt);
  b.output(b.op(kind, {b.fin("a", {6}, {5.5, -5.5, 5.5, -5.5, 7, 0.75}), b.fin("b", {6}, {2, 2, -2, -2, 7, 0.5})}));
  b.expect("y", {6}, {1.5, -1.5, 1.5, -1.5, 0, 0.25});
  add(b);
  CaseBuilder c("fmod broadcast", dt);
  c.output(c.op(kind, {c.fin("a", {2, 1}, {7, -7}), c.fin("b", {3}, {2, 3, 4})}));
  c.expect("y", {2, 3}, {1, 1, 3, -1, -1, -3});
  add(c);
  CaseBuilder i("i64 operands", dt);
  i.output(i.op(kind, {i.input("a", {DType::I64, {4}}, {-7, 7, -7, 9}), i.input("b", {DType::I64, {4}}, {3, -3, -3, 4})}));
  i.expect("y", {4}, {-1, 1, -1, 1});
  add(i);
}

SHOAL_INTERPRETER_CASES(Maximum, OpKind::Maximum) {
  out = binaryCases(kind, dt,
                    {{1, 2, 4, 4, 5, 6},
                     {2, 2, 3, 4, 5, 6},
                     {2, 2, 3, 4, 5, 6},
                     {2, 2, 3, 4, 5, 6},
                     {1, 2, 4, 2, 2, 4},
                     {6, 5, 4, 4, 5, 6}});
}

SHOAL_INTERPRETER_CASES(MinimumGrad, OpKind::MinimumGrad) {
  // (x, other, dy): dy where x < other, dy/2 on a tie, 0 where x > other.
  CaseBuilder b("minimum_grad", dt);
  b.output(
      b.op(kind, {b.fin("x", {3}, {1, 2, 3}), b.fin("other", {3}, {2, 2, 1}), b.fin("dy", {3}, {4, 6, 8})}, {}, "dx"),
      "dx");
  b.expect("dx", {3}, {4, 3, 0});
  add(b);
}

SHOAL_INTERPRETER_CASES(MaximumGrad, OpKind::MaximumGrad) {
  CaseBuilder b("maximum_grad", dt);
  b.output(
      b.op(kind, {b.fin("x", {3}, {1, 2, 3}), b.fin("other", {3}, {2, 2, 1}), b.fin("dy", {3}, {4, 6, 8})}, {}, "dx"),
      "dx");
  b.expect("dx", {3}, {0, 3, 8});
  add(b);
  // other broadcast: x [2,2] against a scalar 2.
  CaseBuilder c("maximum_grad broadcast", dt);
  c.output(c.op(kind, {c.fin("x", {2, 2}, {1, 2, 3, 2}), c.fin("other", {}, {2}), c.fin("dy", {2, 2}, {1, 2, 3, 4})},
                {}, "dx"),
           "dx");
  c.expect("dx", {2, 2}, {0, 1, 3, 2});
  add(c);
}

// ---- comparisons and where -------------------------------------------------------------

// A = [[1,2,3],[4,5,6]] against the row [3, 2, 6]; i64 against a scalar; bool operands.
SHOAL_INTERPRETER_CASES(Compare, OpKind::Equal, OpKind::NotEqual, OpKind::Less, OpKind::LessEqual, OpKind::Greater,
                        OpKind::GreaterEqual) {
  const std::map<OpKind, std::vector<std::vector<double>>> want = {
      {OpKind::Equal, {{0, 1, 0, 0, 0, 1}, {0, 1, 0}, {1, 0, 0, 1}}},
      {OpKind::NotEqual, {{1, 0, 1, 1, 1, 0}, {1, 0, 1}, {0, 1, 1, 0}}},
      {OpKind::Less, {{1, 0, 1, 0, 0, 0}, {1, 0, 0}, {0, 1, 0, 0}}},
      {OpKind::LessEqual, {{1, 1, 1, 0, 0, 1}, {1, 1, 0}, {1, 1, 0, 1}}},
      {OpKind::Greater, {{0, 0, 0, 1, 1, 0}, {0, 0, 1}, {0, 0, 1, 0}}},
      {OpKind::GreaterEqual, {{0, 1, 0, 1, 1, 1}, {0, 1, 1}, {1, 0, 1, 1}}},
  };
  const auto& w = want.at(kind);
  CaseBuilder b(std::string(opName(kind)) + " broadcast row", dt);
  b.output(b.op(kind, {b.fin("a", {2, 3}, ramp(6)), b.fin("b", {3}, {3, 2, 6})}));
  b.expect("y", {2, 3}, w[0]);
  add(b);
  CaseBuilder c(std::string(opName(kind)) + " i64 against a scalar", dt);
  c.output(c.op(kind, {c.input("a", {DType::I64, {3}}, {-1, 4, 9}), c.input("b", {DType::I64, {}}, {4})}));
  c.expect("y", {3}, w[1]);
  add(c);
  // Bool operands, outer [2,1] x [1,2]: (0,0), (0,1), (1,0), (1,1).
  CaseBuilder d(std::string(opName(kind)) + " bool outer", dt);
  d.output(d.op(kind, {d.input("a", {DType::Bool, {2, 1}}, {0, 1}), d.input("b", {DType::Bool, {1, 2}}, {0, 1})}));
  d.expect("y", {2, 2}, w[2]);
  add(d);
}

SHOAL_INTERPRETER_CASES(Where, OpKind::Where) {
  {
    CaseBuilder b("where, same shapes", dt);
    b.output(b.op(kind, {b.input("c", {DType::Bool, {4}}, {1, 0, 0, 1}), b.fin("a", {4}, {1, 2, 3, 4}),
                         b.fin("b", {4}, {-1, -2, -3, -4})}));
    b.expect("y", {4}, {1, -2, -3, 4});
    add(b);
  }
  {
    // cond [2,1] picks rows; a [3] broadcast; b a scalar.
    CaseBuilder b("where, all three broadcast", dt);
    b.output(
        b.op(kind, {b.input("c", {DType::Bool, {2, 1}}, {0, 1}), b.fin("a", {3}, {7, 8, 9}), b.fin("b", {}, {0})}));
    b.expect("y", {2, 3}, {0, 0, 0, 7, 8, 9});
    add(b);
  }
  {
    // The condition from a comparison: relu by selection.
    CaseBuilder b("where over a comparison", dt);
    Value* x = b.fin("x", {4}, {-2, 3, -0.5, 1});
    Value* zero = b.fin("zero", {}, {0});
    b.output(b.op(kind, {b.op(OpKind::Greater, {x, zero}, {}, "pos"), x, zero}));
    b.expect("y", {4}, {0, 3, 0, 1});
    add(b);
  }
  {
    CaseBuilder b("where over i64 values", dt);
    b.output(b.op(kind, {b.input("c", {DType::Bool, {3}}, {1, 0, 1}), b.input("a", {DType::I64, {3}}, {10, 20, 30}),
                         b.input("b", {DType::I64, {1}}, {-1})}));
    b.expect("y", {3}, {10, -1, 30});
    add(b);
  }
}

// ---- reductions ---------------------------------------------------------------------------

// x [2,3,4] = 1..24 (x[i,j,k] = 12 i + 4 j + k + 1).
SHOAL_INTERPRETER_CASES(ReduceSum, OpKind::ReduceSum) {
  auto reduce = [&](const std::string& label, std::vector<int64_t> axes, int64_t keep, Shape s,
                    std::vector<double> want) {
    CaseBuilder b("reduce_sum " + label, dt);
    b.output(b.op(kind, {b.fin("x", {2, 3, 4}, ramp(24))}, attrs({{"axes", axes}, {"keepdim", keep}})));
    b.expect("y", s, std::move(want));
    add(b);
  };
  reduce("all", {}, 0, {}, {300});
  reduce("all, kept", {}, 1, {1, 1, 1}, {300});
  reduce("middle axis", {1}, 0, {2, 4}, {15, 18, 21, 24, 51, 54, 57, 60});
  reduce("last axis, negative, kept", {-1}, 1, {2, 3, 1}, {10, 26, 42, 58, 74, 90});
  reduce("outer axes", {0, 2}, 0, {3}, {68, 100, 132});
}

SHOAL_INTERPRETER_CASES(ReduceMean, OpKind::ReduceMean) {
  auto reduce = [&](const std::string& label, std::vector<int64_t> axes, int64_t keep, Shape s,
                    std::vector<double> want) {
    CaseBuilder b("reduce_mean " + label, dt);
    b.output(b.op(kind, {b.fin("x", {2, 3, 4}, ramp(24))}, attrs({{"axes", axes}, {"keepdim", keep}})));
    b.expect("y", s, std::move(want));
    add(b);
  };
  reduce("all", {}, 0, {}, {12.5});
  reduce("middle axis, kept", {1}, 1, {2, 1, 4}, {5, 6, 7, 8, 17, 18, 19, 20});
  reduce("two axes", {-1, 0}, 0, {3}, {8.5, 12.5, 16.5});
}

SHOAL_INTERPRETER_CASES(ReduceMax, OpKind::ReduceMax) {
  CaseBuilder b("reduce_max over rows and all", dt);
  Value* x = b.fin("x", {2, 3}, {3, -1, 7, -4, 0, -2});
  b.output(b.op(kind, {x}, attrs({{"axes", std::vector<int64_t>{1}}})), "rows");
  b.output(b.op(kind, {x}, attrs({{"axes", std::vector<int64_t>{0}}, {"keepdim", int64_t(1)}}), "cols"), "cols");
  b.output(b.op(kind, {x}, {}, "all"), "all");
  b.expect("rows", {2}, {7, 0});
  b.expect("cols", {1, 3}, {3, 0, 7});
  b.expect("all", {}, {7});
  add(b);
}

SHOAL_INTERPRETER_CASES(ReduceProd, OpKind::ReduceProd) {
  CaseBuilder b("reduce_prod over rows, columns and all", dt);
  Value* x = b.fin("x", {2, 3}, {3, -1, 7, -4, 0.5, -2});
  b.output(b.op(kind, {x}, attrs({{"axes", std::vector<int64_t>{1}}})), "rows");
  b.output(b.op(kind, {x}, attrs({{"axes", std::vector<int64_t>{0}}, {"keepdim", int64_t(1)}}), "cols"), "cols");
  b.output(b.op(kind, {x}, {}, "all"), "all");
  b.expect("rows", {2}, {-21, 4});
  b.expect("cols", {1, 3}, {-12, -0.5, -14});
  b.expect("all", {}, {-84});
  add(b);
}

SHOAL_INTERPRETER_CASES(ReduceMin, OpKind::ReduceMin) {
  CaseBuilder b("reduce_min over rows and all", dt);
  Value* x = b.fin("x", {2, 3}, {3, -1, 7, -4, 0, -2});
  b.output(b.op(kind, {x}, attrs({{"axes", std::vector<int64_t>{-1}}})), "rows");
  b.output(b.op(kind, {x}, attrs({{"axes", std::vector<int64_t>{0}}, {"keepdim", int64_t(1)}}), "cols"), "cols");
  b.output(b.op(kind, {x}, {}, "all"), "all");
  b.expect("rows", {2}, {-1, -4});
  b.expect("cols", {1, 3}, {-4, -1, -2});
  b.expect("all", {}, {-4});
  add(b);
}

}  // namespace
}  // namespace shoal::test
