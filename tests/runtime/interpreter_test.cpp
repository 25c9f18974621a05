// CPU interpreter tests: every op of ir/ops.def run through evaluateGraph against hand-computed
// values, in float64 and float32, with float32 checked against float64 (rtol 1e-5).
#include "runtime/cpu/interpreter.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "frontend/layers.h"
#include "frontend/pipeline_loader.h"
#include "ir/graph.h"
#include "runtime/interpreter_cases.h"
#include "test_util.h"

namespace shoal {
namespace {

using namespace shoal::test;

// ---- the cases, one registration per op (or group of ops sharing a body) ----------------

SHOAL_INTERPRETER_CASES(Input, OpKind::Input) {
  {
    CaseBuilder b("input fed and passed to an output", dt);
    b.output(b.fin("x", {2, 2}, {1, -2, 3.5, 4}));
    b.expect("y", {2, 2}, {1, -2, 3.5, 4});
    add(b);
    CaseBuilder u("u8 input passed through", dt);
    u.output(u.input("pixels", {DType::U8, {4}}, {0, 1, 128, 255}), "pixels");
    u.expect("pixels", {4}, {0, 1, 128, 255});
    add(u);
    // A float64 tensor fed to an input declared in the case's type is converted.
    CaseBuilder c("input fed another dtype is converted", dt);
    c.output(c.inputFed("x", {dt, {3}}, Tensor::fromDoubles(DType::I64, {3}, std::vector<double>{7, -1, 0})));
    c.expect("y", {3}, {7, -1, 0});
    add(c);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Param, OpKind::Param) {
  {
    CaseBuilder b("param read from the persistent map", dt);
    b.output(b.param("d.weight", {3}, {0.5, -1, 2}), "w");
    b.expect("w", {3}, {0.5, -1, 2});
    b.expect("d.weight", {3}, {0.5, -1, 2});  // written back unchanged
    add(b);
    CaseBuilder c("param missing from the map is initialised (ones)", dt);
    c.output(c.paramInit("d.bias", {2, 2}, "ones"), "b");
    c.expect("b", {2, 2}, {1, 1, 1, 1});
    c.expect("d.bias", {2, 2}, {1, 1, 1, 1});  // and appears in the map afterwards
    add(c);
    return;
  }
}

SHOAL_INTERPRETER_CASES(State, OpKind::State) {
  {
    CaseBuilder b("state read from the persistent map", dt);
    const std::vector<double> s = {7, -3};
    b.output(b.state("opt.m", {2}, &s), "m");
    b.expect("m", {2}, {7, -3});
    add(b);
    CaseBuilder c("state missing from the map starts at zero", dt);
    c.output(c.state("opt.v", {3}), "v");
    c.expect("v", {3}, {0, 0, 0});
    c.expect("opt.v", {3}, {0, 0, 0});
    add(c);
    // input + param + state + constant in one graph: 1+10+100+1000 per element.
    CaseBuilder d("all four sources added", dt);
    const std::vector<double> st = {100, 200};
    Value* sum1 = d.op(OpKind::Add, {d.fin("x", {2}, {1, 2}), d.param("p", {2}, {10, 20})}, {}, "s1");
    Value* sum2 = d.op(OpKind::Add, {sum1, d.state("st", {2}, &st)}, {}, "s2");
    d.output(d.op(OpKind::Add, {sum2, d.constant("k", dt, {2}, {1000, 2000})}, {}, "s3"));
    d.expect("y", {2}, {1111, 2222});
    add(d);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Constant, OpKind::Constant) {
  {
    CaseBuilder b("float constant", dt);
    b.output(b.constant("k", dt, {2, 2}, {1, 2.5, -3, 0.125}));
    b.expect("y", {2, 2}, {1, 2.5, -3, 0.125});
    add(b);
    CaseBuilder c("i64 constant", dt);
    c.output(c.constant("k", DType::I64, {2}, {5, -6}));
    c.expect("y", {2}, {5, -6});
    add(c);
    CaseBuilder d("scalar constant", dt);
    d.output(d.constant("k", dt, {}, {-0.75}));
    d.expect("y", {}, {-0.75});
    add(d);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Output, OpKind::Output) {
  {
    CaseBuilder b("one value, two outputs", dt);
    Value* x = b.fin("x", {3}, {1, 2, 3});
    b.output(x, "first");
    b.output(x, "second");
    b.expect("first", {3}, {1, 2, 3});
    b.expect("second", {3}, {1, 2, 3});
    add(b);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Cast, OpKind::Cast) {
  {
    const std::string target(dtypeName(dt));
    CaseBuilder b("u8 pixels to float", dt);
    b.output(b.op(kind, {b.input("x", {DType::U8, {4}}, {0, 1, 128, 255})}, attrs({{"dtype", target}})));
    b.expect("y", {4}, {0, 1, 128, 255});
    add(b);
    // Float to integer truncates toward zero (C++ conversion): 2.7 -> 2, -2.7 -> -2, ±0.5 -> 0.
    CaseBuilder c("float to i64 truncates", dt);
    c.output(c.op(kind, {c.fin("x", {5}, {2.7, -2.7, 0.5, -0.5, 3})}, attrs({{"dtype", std::string("i64")}})));
    c.expect("y", {5}, {2, -2, 0, 0, 3});
    add(c);
    CaseBuilder d("i64 to float", dt);
    d.output(d.op(kind, {d.input("x", {DType::I64, {2}}, {3, -4})}, attrs({{"dtype", target}})));
    d.expect("y", {2}, {3, -4});
    add(d);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Scale, OpKind::Scale) {
  {
    CaseBuilder b("scale and shift", dt);
    // y = x * 0.5 - 1: 0 -> -1, 1 -> -0.5, 2 -> 0, 255 -> 126.5.
    b.output(b.op(kind, {b.fin("x", {2, 2}, {0, 1, 2, 255})}, attrs({{"scale", 0.5}, {"shift", -1.0}})));
    b.expect("y", {2, 2}, {-1, -0.5, 0, 126.5});
    add(b);
    CaseBuilder c("scale 1/255, no shift", dt);
    c.output(c.op(kind, {c.fin("x", {3}, {0, 51, 255})}, attrs({{"scale", 1.0 / 255.0}})));
    c.expect("y", {3}, {0, 0.2, 1});
    add(c);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Normalize, OpKind::Normalize) {
  {
    CaseBuilder b("one mean/std for all", dt);
    // (x - 1) / 2
    b.output(b.op(kind, {b.fin("x", {1, 1, 2, 2}, {0, 1, 2, 3})},
                  attrs({{"mean", std::vector<double>{1}}, {"std", std::vector<double>{2}}})));
    b.expect("y", {1, 1, 2, 2}, {-0.5, 0, 0.5, 1});
    add(b);
    // x [2,2,1,2] = 0..7; channel 0 uses (x-1)/2, channel 1 (x-10)/4:
    // n0c0 [0,1] -> [-0.5,0]; n0c1 [2,3] -> [-2,-1.75]; n1c0 [4,5] -> [1.5,2]; n1c1 [6,7] -> [-1,-0.75].
    CaseBuilder c("per channel", dt);
    c.output(c.op(kind, {c.fin("x", {2, 2, 1, 2}, ramp(8, 0))},
                  attrs({{"mean", std::vector<double>{1, 10}}, {"std", std::vector<double>{2, 4}}})));
    c.expect("y", {2, 2, 1, 2}, {-0.5, 0, -2, -1.75, 1.5, 2, -1, -0.75});
    add(c);
    // Rank 2 [N,C]: the channel is the column.
    CaseBuilder d("per column of a matrix", dt);
    d.output(d.op(kind, {d.fin("x", {2, 2}, {1, 1, 3, 3})},
                  attrs({{"mean", std::vector<double>{1, 3}}, {"std", std::vector<double>{2, 0.5}}})));
    d.expect("y", {2, 2}, {0, -4, 1, 0});
    add(d);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Flatten, OpKind::Flatten) {
  {
    CaseBuilder b("axis 1", dt);
    b.output(b.op(kind, {b.fin("x", {2, 2, 1, 3}, ramp(12))}));
    b.expect("y", {2, 6}, ramp(12));
    add(b);
    CaseBuilder c("axis 2", dt);
    c.output(c.op(kind, {c.fin("x", {2, 2, 1, 3}, ramp(12))}, attrs({{"axis", int64_t{2}}})));
    c.expect("y", {4, 3}, ramp(12));
    add(c);
    CaseBuilder d("axis 0", dt);
    d.output(d.op(kind, {d.fin("x", {2, 3}, ramp(6))}, attrs({{"axis", int64_t{0}}})));
    d.expect("y", {1, 6}, ramp(6));
    add(d);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Reshape, OpKind::Reshape) {
  {
    CaseBuilder b("-1 extent inferred", dt);
    b.output(b.op(kind, {b.fin("x", {2, 6}, ramp(12))}, attrs({{"shape", Shape{3, -1}}})));
    b.expect("y", {3, 4}, ramp(12));
    add(b);
    CaseBuilder c("to rank 4", dt);
    c.output(c.op(kind, {c.fin("x", {2, 6}, ramp(12))}, attrs({{"shape", Shape{-1, 1, 2, 3}}})));
    c.expect("y", {2, 1, 2, 3}, ramp(12));
    add(c);
    CaseBuilder d("one element to a scalar", dt);
    d.output(d.op(kind, {d.fin("x", {1, 1}, {4.5})}, attrs({{"shape", Shape{}}})));
    d.expect("y", {}, {4.5});
    add(d);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Dense, OpKind::Dense) {
  {
    // x = [[1,2,3],[4,5,6]], w = [[1,0,-1],[0.5,0.5,0.5]]: x wᵀ = [[1-3, 3], [4-6, 7.5]].
    CaseBuilder b("with bias", dt);
    b.output(b.op(kind, {b.fin("x", {2, 3}, ramp(6)), b.param("w", {2, 3}, {1, 0, -1, 0.5, 0.5, 0.5}),
                         b.param("b", {2}, {10, -1})}));
    b.expect("y", {2, 2}, {8, 2, 8, 6.5});
    add(b);
    CaseBuilder c("without bias", dt);
    c.output(c.op(kind, {c.fin("x", {2, 3}, ramp(6)), c.param("w", {2, 3}, {1, 0, -1, 0.5, 0.5, 0.5})}));
    c.expect("y", {2, 2}, {-2, 3, -2, 7.5});
    add(c);
    return;
  }
}

SHOAL_INTERPRETER_CASES(FusedDense, OpKind::FusedDense) {
  {
    // As dense above with bias [-9,-1]: x wᵀ + b = [[-11, 2], [-11, 6.5]] -> relu [[0,2],[0,6.5]].
    CaseBuilder b("bias and relu", dt);
    b.output(b.op(
        kind,
        {b.fin("x", {2, 3}, ramp(6)), b.param("w", {2, 3}, {1, 0, -1, 0.5, 0.5, 0.5}), b.param("b", {2}, {-9, -1})},
        attrs({{"activation", std::string("relu")}})));
    b.expect("y", {2, 2}, {0, 2, 0, 6.5});
    add(b);
    CaseBuilder c("tanh", dt);
    c.output(c.op(kind, {c.fin("x", {1, 2}, {1, -1}), c.param("w", {1, 2}, {1, 1})},
                  attrs({{"activation", std::string("tanh")}})));
    c.expect("y", {1, 1}, {0});  // tanh(1 - 1) = 0
    add(c);
    return;
  }
}

SHOAL_INTERPRETER_CASES(FusedMlp, OpKind::FusedMlp) {
  {
    // The hidden layer as in fused_dense's case above: relu([[-11, 2], [-11, 6.5]]) = [[0, 2], [0, 6.5]];
    // then w2 = [[1, 2], [-1, 0.5]], b2 = [0.5, -3]: [[0 + 4 + 0.5, 0 + 1 - 3], [13 + 0.5, 3.25 - 3]].
    CaseBuilder b("relu between", dt);
    b.output(b.op(kind,
                  {b.fin("x", {2, 3}, ramp(6)), b.param("w1", {2, 3}, {1, 0, -1, 0.5, 0.5, 0.5}),
                   b.param("b1", {2}, {-9, -1}), b.param("w2", {2, 2}, {1, 2, -1, 0.5}), b.param("b2", {2}, {0.5, -3})},
                  attrs({{"activation", std::string("relu")}})));
    b.expect("y", {2, 2}, {4.5, -2, 13.5, 0.25});
    add(b);
    // tanh(1 - 1 + 0) = 0, then 3 * 0 + 1 = 1 and -2 * 0 - 0.5.
    CaseBuilder c("tanh between", dt);
    c.output(c.op(kind,
                  {c.fin("x", {1, 2}, {1, -1}), c.param("w1", {1, 2}, {1, 1}), c.param("b1", {1}, {0}),
                   c.param("w2", {2, 1}, {3, -2}), c.param("b2", {2}, {1, -0.5})},
                  attrs({{"activation", std::string("tanh")}})));
    c.expect("y", {1, 2}, {1, -0.5});
    add(c);
    return;
  }
}

SHOAL_INTERPRETER_CASES(FusedElementwise, OpKind::FusedElementwise) {
  {
    auto fe = [&](const char* label, const char* expr, std::vector<std::pair<const char*, std::vector<double>>> ins,
                  std::vector<double> want) {
      CaseBuilder b(label, dt);
      std::vector<Value*> vs;
      Shape shape{int64_t(want.size())};
      for (auto& [name, v] : ins) vs.push_back(b.fin(name, shape, v));
      b.output(b.op(kind, vs, attrs({{"expr", std::string(expr)}})));
      b.expect("y", shape, std::move(want));
      add(b);
    };
    // relu(a*b + 0.5): [1*.5+.5, -2*.5+.5, 3*2+.5, -4*2+.5] = [1, -0.5, 6.5, -7.5] -> [1, 0, 6.5, 0].
    fe("scale-add-relu chain", "a0 a1 mul 0.5 add relu", {{"a", {1, -2, 3, -4}}, {"b", {0.5, 0.5, 2, 2}}},
       {1, 0, 6.5, 0});
    fe("relu_grad", "a0 a1 relu_grad", {{"y", {1, 0, 2, -1}}, {"dy", {5, 6, 7, 8}}}, {5, 0, 7, 0});
    // dy·y·(1-y): 2·.5·.5 = .5, 4·.25·.75 = .75
    fe("sigmoid_grad", "a0 a1 sigmoid_grad", {{"y", {0.5, 0.25}}, {"dy", {2, 4}}}, {0.5, 0.75});
    // dy·(1-y²): 2·(1-.25) = 1.5
    fe("tanh_grad", "a0 a1 tanh_grad", {{"y", {0.5}}, {"dy", {2}}}, {1.5});
    // -((3-2)/2) = -0.5; sigmoid(0) = 0.5; tanh(0) = 0
    fe("sub div neg", "a0 a1 sub a1 div neg", {{"a", {3}}, {"b", {2}}}, {-0.5});
    fe("sigmoid and tanh", "a0 sigmoid a0 tanh add", {{"a", {0}}}, {0.5});
    return;
  }
}

SHOAL_INTERPRETER_CASES(MatMul, OpKind::MatMul) {
  {
    // The design's example: A·B = [[1·8+2·4+3·2, 1·4+2·9+3·2], ...] = [[22,28],[64,73],[106,118]].
    const std::vector<double> A = ramp(9), B = {8, 4, 4, 9, 2, 2};
    const std::vector<double> At = {1, 4, 7, 2, 5, 8, 3, 6, 9}, Bt = {8, 4, 2, 4, 9, 2};
    const std::vector<double> AB = {22, 28, 64, 73, 106, 118};
    auto mm = [&](const char* label, Shape as, const std::vector<double>& a, Shape bs, const std::vector<double>& bv,
                  int64_t ta, int64_t tb, Shape os, std::vector<double> want) {
      CaseBuilder b(label, dt);
      b.output(b.op(kind, {b.fin("a", as, a), b.fin("b", bs, bv)}, attrs({{"transpose_a", ta}, {"transpose_b", tb}})));
      b.expect("y", os, std::move(want));
      add(b);
    };
    mm("design example", {3, 3}, A, {3, 2}, B, 0, 0, {3, 2}, AB);
    mm("design example, A transposed", {3, 3}, At, {3, 2}, B, 1, 0, {3, 2}, AB);
    mm("design example, B transposed", {3, 3}, A, {2, 3}, Bt, 0, 1, {3, 2}, AB);
    mm("design example, both transposed", {3, 3}, At, {2, 3}, Bt, 1, 1, {3, 2}, AB);
    // aᵀ b, a = [[1,2],[3,4],[5,6]], b = [[1,0],[0,1],[1,1]]: [[1+5, 3+5], [2+6, 4+6]].
    mm("non-square, transpose_a", {3, 2}, {1, 2, 3, 4, 5, 6}, {3, 2}, {1, 0, 0, 1, 1, 1}, 1, 0, {2, 2}, {6, 8, 8, 10});
    // a bᵀ, a = [[1,2,3],[4,5,6]], b = [[1,1,1],[0,1,-1]]: [[6, 2-3], [15, 5-6]].
    mm("non-square, transpose_b", {2, 3}, ramp(6), {2, 3}, {1, 1, 1, 0, 1, -1}, 0, 1, {2, 2}, {6, -1, 15, -1});
    // aᵀ bᵀ with the same a [3,2] and b [2,3]: [[1+3+5, 3-5], [2+4+6, 4-6]].
    mm("non-square, both transposed", {3, 2}, {1, 2, 3, 4, 5, 6}, {2, 3}, {1, 1, 1, 0, 1, -1}, 1, 1, {2, 2},
       {9, -2, 12, -2});
    return;
  }
}

SHOAL_INTERPRETER_CASES(Relu, OpKind::Relu) {
  {
    CaseBuilder b("relu", dt);
    b.output(b.op(kind, {b.fin("x", {5}, {-2, -0.5, 0, 0.5, 3})}));
    b.expect("y", {5}, {0, 0, 0, 0.5, 3});
    add(b);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Softplus, OpKind::Softplus) {
  {
    // log(1 + e^x): ln 2 at 0; ln(1 + 3) at ln 3; ln(4/3) at -ln 3; x itself above 20.
    CaseBuilder b("softplus", dt);
    b.output(b.op(kind, {b.fin("x", {5}, {0, ln3, -ln3, 25, -30})}));
    b.expect("y", {5}, {ln2, std::log(4.0), std::log(4.0 / 3.0), 25, std::exp(-30.0)});
    add(b);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Neg, OpKind::Neg) {
  {
    CaseBuilder b("neg", dt);
    b.output(b.op(kind, {b.fin("x", {4}, {-2, 0, 0.5, 3})}));
    b.expect("y", {4}, {2, 0, -0.5, -3});
    add(b);
    return;
  }
}

SHOAL_INTERPRETER_CASES(ReluGrad, OpKind::ReluGrad) {
  {
    CaseBuilder b("relu_grad passes dy where x > 0 (not at 0)", dt);
    b.output(b.op(kind, {b.fin("x", {2, 2}, {-2, 0, 1, 3}), b.fin("dy", {2, 2}, {1, 2, 3, 4})}));
    b.expect("y", {2, 2}, {0, 0, 3, 4});
    add(b);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Sigmoid, OpKind::Sigmoid) {
  {
    // σ(0) = 1/2, σ(ln 3) = 1/(1 + 1/3) = 3/4, σ(-ln 3) = 1/4, σ(-20) = e^-20/(1+e^-20), σ(40) ≈ 1.
    CaseBuilder b("sigmoid", dt);
    b.output(b.op(kind, {b.fin("x", {5}, {0, ln3, -ln3, -20, 40})}));
    b.expect("y", {5}, {0.5, 0.75, 0.25, std::exp(-20.0) / (1 + std::exp(-20.0)), 1});
    add(b);
    return;
  }
}

SHOAL_INTERPRETER_CASES(SigmoidGrad, OpKind::SigmoidGrad) {
  {
    // dy·y·(1-y): 4·0.5·0.5 = 1, 16·0.75·0.25 = 3, 8·0.25·0.75 = 1.5, 2·1·0 = 0.
    CaseBuilder b("sigmoid_grad from the output", dt);
    b.output(b.op(kind, {b.fin("y", {4}, {0.5, 0.75, 0.25, 1}), b.fin("dy", {4}, {4, 16, 8, 2})}, {}, "dx"), "dx");
    b.expect("dx", {4}, {1, 3, 1.5, 0});
    add(b);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Tanh, OpKind::Tanh) {
  {
    // tanh(ln 2) = (2 - 1/2)/(2 + 1/2) = 0.6.
    CaseBuilder b("tanh", dt);
    b.output(b.op(kind, {b.fin("x", {3}, {0, ln2, -ln2})}));
    b.expect("y", {3}, {0, 0.6, -0.6});
    add(b);
    return;
  }
}

SHOAL_INTERPRETER_CASES(TanhGrad, OpKind::TanhGrad) {
  {
    // dy·(1-y²): 2·1 = 2, 5·0.64 = 3.2, 4·0.75 = 3.
    CaseBuilder b("tanh_grad from the output", dt);
    b.output(b.op(kind, {b.fin("y", {3}, {0, 0.6, -0.5}), b.fin("dy", {3}, {2, 5, 4})}, {}, "dx"), "dx");
    b.expect("dx", {3}, {2, 3.2, 3});
    add(b);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Add, OpKind::Add) {
  // A op R | A op C | A op S | S op A | a op b (outer) | A op A2; see binaryCases.
  out = binaryCases(kind, dt,
                    {{2, 4, 7, 5, 7, 10},
                     {3, 4, 5, 8, 9, 10},
                     {3, 4, 5, 6, 7, 8},
                     {3, 4, 5, 6, 7, 8},
                     {2, 3, 5, 3, 4, 6},
                     {7, 7, 7, 7, 7, 7}});
  {
    // A middle-axis broadcast: x[2,2,2] = 0..7 plus b[2,1] (aligned as [1,2,1]) = [10,20]
    // adds 10 to rows j=0 and 20 to rows j=1.
    CaseBuilder b("middle axis broadcast", dt);
    b.output(b.op(kind, {b.fin("x", {2, 2, 2}, ramp(8, 0)), b.fin("b", {2, 1}, {10, 20})}));
    b.expect("y", {2, 2, 2}, {10, 11, 22, 23, 14, 15, 26, 27});
    add(b);
  }
  {
    // Integer operands stay integers: i64 [1,2,3] + [10,20,30]; u8 wraps (200 + 100 = 300 - 256).
    CaseBuilder b("i64 operands", dt);
    b.output(b.op(kind, {b.input("a", {DType::I64, {3}}, {1, 2, 3}), b.input("b", {DType::I64, {3}}, {10, 20, 30})}));
    b.expect("y", {3}, {11, 22, 33});
    add(b);
    CaseBuilder c("u8 operands wrap", dt);
    c.output(c.op(kind, {c.input("a", {DType::U8, {2}}, {200, 1}), c.input("b", {DType::U8, {}}, {100})}));
    c.expect("y", {2}, {44, 101});
    add(c);
  }
  return;
}

SHOAL_INTERPRETER_CASES(Sub, OpKind::Sub) {
  {
    out = binaryCases(kind, dt,
                      {{0, 0, -1, 3, 3, 2},
                       {-1, 0, 1, 0, 1, 2},
                       {-1, 0, 1, 2, 3, 4},
                       {1, 0, -1, -2, -3, -4},
                       {0, -1, -3, 1, 0, -2},
                       {-5, -3, -1, 1, 3, 5}});
    CaseBuilder b("i32 operands", dt);
    b.output(b.op(kind, {b.input("a", {DType::I32, {2}}, {5, -3}), b.input("b", {DType::I32, {1}}, {7})}));
    b.expect("y", {2}, {-2, -10});
    add(b);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Mul, OpKind::Mul) {
  {
    out = binaryCases(kind, dt,
                      {{1, 4, 12, 4, 10, 24},
                       {2, 4, 6, 16, 20, 24},
                       {2, 4, 6, 8, 10, 12},
                       {2, 4, 6, 8, 10, 12},
                       {1, 2, 4, 2, 4, 8},
                       {6, 10, 12, 12, 10, 6}});
    CaseBuilder b("i64 operands", dt);
    b.output(b.op(kind, {b.input("a", {DType::I64, {2, 1}}, {3, -4}), b.input("b", {DType::I64, {2}}, {5, 6})}));
    b.expect("y", {2, 2}, {15, 18, -20, -24});
    add(b);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Div, OpKind::Div) {
  {
    // Integer division truncates toward zero: 7/2 = 3, -7/2 = -3.
    CaseBuilder b("i64 operands truncate", dt);
    b.output(b.op(kind, {b.input("a", {DType::I64, {3}}, {7, -7, 6}), b.input("b", {DType::I64, {}}, {2})}));
    b.expect("y", {3}, {3, -3, 3});
    add(b);
    Cases more = binaryCases(kind, dt,
                             {{1, 1, 0.75, 4, 2.5, 1.5},
                              {0.5, 1, 1.5, 1, 1.25, 1.5},
                              {0.5, 1, 1.5, 2, 2.5, 3},
                              {2, 1, 2.0 / 3, 0.5, 0.4, 1.0 / 3},
                              {1, 0.5, 0.25, 2, 1, 0.5},
                              {1.0 / 6, 0.4, 0.75, 4.0 / 3, 2.5, 6}});
    for (OpCase& c : more) out.push_back(std::move(c));
    return;
  }
}

SHOAL_INTERPRETER_CASES(SumTo, OpKind::SumTo) {
  {
    // x = [[1,2,3],[4,5,6]].
    auto sumTo = [&](const char* label, Shape target, std::vector<double> want) {
      CaseBuilder b(label, dt);
      b.output(b.op(kind, {b.fin("x", {2, 3}, ramp(6))}, attrs({{"shape", target}})));
      b.expect("y", target, std::move(want));
      add(b);
    };
    sumTo("to a row [3]", {3}, {5, 7, 9});
    sumTo("to [1,3]", {1, 3}, {5, 7, 9});
    sumTo("to a column [2,1]", {2, 1}, {6, 15});
    sumTo("to a scalar", {}, {21});
    sumTo("to the same shape", {2, 3}, ramp(6));
    // x[2,3,2] = 1..12 (x[i,j,k] = 6i+2j+k+1) to [3,1]: j=0: 1+2+7+8 = 18, j=1: 3+4+9+10 = 26,
    // j=2: 5+6+11+12 = 34.
    CaseBuilder b("outer and inner axes at once", dt);
    b.output(b.op(kind, {b.fin("x", {2, 3, 2}, ramp(12))}, attrs({{"shape", Shape{3, 1}}})));
    b.expect("y", {3, 1}, {18, 26, 34});
    add(b);
    CaseBuilder c("i64 input", dt);
    c.output(c.op(kind, {c.input("x", {DType::I64, {2, 2}}, {1, 2, 3, 4})}, attrs({{"shape", Shape{2}}})));
    c.expect("y", {2}, {4, 6});
    add(c);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Softmax, OpKind::Softmax) {
  {
    // Row [0, ln 2, ln 3] -> [1,2,3]/6; row [1000,1000,1000] -> 1/3 each (no overflow).
    CaseBuilder b("rows, large logits", dt);
    b.output(b.op(kind, {b.fin("x", {2, 3}, {0, ln2, ln3, 1000, 1000, 1000})}));
    b.expect("y", {2, 3}, {1.0 / 6, 1.0 / 3, 0.5, 1.0 / 3, 1.0 / 3, 1.0 / 3});
    add(b);
    // Rank 3, the last axis (the default). [0,0] -> [1/2,1/2]; [ln 3, 0] -> [3/4, 1/4].
    CaseBuilder c("rank 3", dt);
    c.output(c.op(kind, {c.fin("x", {1, 2, 2}, {0, 0, ln3, 0})}));
    c.expect("y", {1, 2, 2}, {0.5, 0.5, 0.75, 0.25});
    add(c);
    // Axis 0: over the columns. [0, 0] -> [1/2, 1/2]; [ln 3, 0] -> [3/4, 1/4].
    CaseBuilder d("axis 0", dt);
    d.output(d.op(kind, {d.fin("x", {2, 2}, {0, ln3, 0, 0})}, attrs({{"axis", int64_t(0)}})));
    d.expect("y", {2, 2}, {0.5, 0.75, 0.5, 0.25});
    add(d);
    return;
  }
}

SHOAL_INTERPRETER_CASES(LogSoftmax, OpKind::LogSoftmax) {
  {
    // log([1,2,3]/6) = [-ln 6, -ln 3, -ln 2]; [1000,1000,1000] -> -ln 3 each.
    CaseBuilder b("rows, large logits", dt);
    b.output(b.op(kind, {b.fin("x", {2, 3}, {0, ln2, ln3, 1000, 1000, 1000})}));
    b.expect("y", {2, 3}, {-std::log(6.0), -ln3, -ln2, -ln3, -ln3, -ln3});
    add(b);
    CaseBuilder c("axis -2 of a column", dt);
    c.output(c.op(kind, {c.fin("x", {3, 1}, {0, ln2, ln3})}, attrs({{"axis", int64_t(-2)}})));
    c.expect("y", {3, 1}, {-std::log(6.0), -ln3, -ln2});
    add(c);
    return;
  }
}

SHOAL_INTERPRETER_CASES(SoftmaxGrad, OpKind::SoftmaxGrad) {
  {
    // y·(dy - Σ dy·y): row 1 Σ = 0.5+0.5+0.75 = 1.75 -> [0.5·-0.75, 0.25·0.25, 0.25·1.25];
    // row 2 Σ = 0.7 -> [0.1·-0.7, 0.2·-0.7, 0.7·0.3].
    CaseBuilder b("softmax_grad", dt);
    b.output(b.op(kind, {b.fin("y", {2, 3}, {0.5, 0.25, 0.25, 0.1, 0.2, 0.7}), b.fin("dy", {2, 3}, {1, 2, 3, 0, 0, 1})},
                  {}, "dx"),
             "dx");
    b.expect("dx", {2, 3}, {-0.375, 0.0625, 0.3125, -0.07, -0.14, 0.21});
    add(b);
    // The same rows as columns, axis 0.
    CaseBuilder c("softmax_grad, axis 0", dt);
    c.output(c.op(kind, {c.fin("y", {3, 2}, {0.5, 0.1, 0.25, 0.2, 0.25, 0.7}), c.fin("dy", {3, 2}, {1, 0, 2, 0, 3, 1})},
                  attrs({{"axis", int64_t(0)}}), "dx"),
             "dx");
    c.expect("dx", {3, 2}, {-0.375, -0.07, 0.0625, -0.14, 0.3125, 0.21});
    add(c);
    return;
  }
}

SHOAL_INTERPRETER_CASES(LogSoftmaxGrad, OpKind::LogSoftmaxGrad) {
  {
    // dy - exp(y)·Σ dy: y = log [0.5,0.25,0.25], Σ dy = 6 -> [1-3, 2-1.5, 3-1.5].
    CaseBuilder b("log_softmax_grad", dt);
    b.output(b.op(kind,
                  {b.fin("y", {1, 3}, {std::log(0.5), std::log(0.25), std::log(0.25)}), b.fin("dy", {1, 3}, {1, 2, 3})},
                  {}, "dx"),
             "dx");
    b.expect("dx", {1, 3}, {-2, 0.5, 1.5});
    add(b);
    CaseBuilder c("log_softmax_grad, axis 0", dt);
    c.output(c.op(kind,
                  {c.fin("y", {3, 1}, {std::log(0.5), std::log(0.25), std::log(0.25)}), c.fin("dy", {3, 1}, {1, 2, 3})},
                  attrs({{"axis", int64_t(0)}}), "dx"),
             "dx");
    c.expect("dx", {3, 1}, {-2, 0.5, 1.5});
    add(c);
    return;
  }
}

SHOAL_INTERPRETER_CASES(ArgMax, OpKind::ArgMax) {
  {
    // Ties: the first maximum wins ([1,3,3,2] -> 1, [5,5,5,5] -> 0).
    CaseBuilder b("rows with ties", dt);
    b.output(b.op(kind, {b.fin("x", {3, 4}, {1, 3, 3, 2, 5, 5, 5, 5, -1, -3, 0, -0.5})}));
    b.expect("y", {3}, {1, 0, 2});
    add(b);
    CaseBuilder c("rank 3", dt);
    c.output(c.op(kind, {c.fin("x", {2, 1, 3}, {0, 9, 9, 7, 1, 7})}));
    c.expect("y", {2, 1}, {1, 0});
    add(c);
    CaseBuilder d("integer input", dt);
    d.output(d.op(kind, {d.input("x", {DType::I64, {2, 3}}, {3, 7, 7, -1, -5, -2})}));
    d.expect("y", {2}, {1, 0});
    add(d);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Accuracy, OpKind::Accuracy) {
  {
    // argmax rows: [1,2,3] -> 2, [3,2,1] -> 0, [5,5,0] -> 0 (tie), [0,1,0] -> 1.
    const std::vector<double> logits = {1, 2, 3, 3, 2, 1, 5, 5, 0, 0, 1, 0};
    CaseBuilder b("i64 labels", dt);
    // labels [2,0,1,1]: right, right, wrong (0 != 1), right -> 3/4.
    b.output(b.op(kind, {b.fin("logits", {4, 3}, logits), b.input("labels", {DType::I64, {4}}, {2, 0, 1, 1})}));
    b.expect("y", {}, {0.75});
    add(b);
    CaseBuilder c("i32 labels", dt);
    c.output(c.op(kind, {c.fin("logits", {4, 3}, logits), c.input("labels", {DType::I32, {4}}, {0, 0, 0, 0})}));
    c.expect("y", {}, {0.5});
    add(c);
    // An out-of-range label is simply never right (no error for accuracy): [2,1,0,200] -> right,
    // wrong, right, wrong.
    CaseBuilder d("u8 labels, one out of range", dt);
    d.output(d.op(kind, {d.fin("logits", {4, 3}, logits), d.input("labels", {DType::U8, {4}}, {2, 1, 0, 200})}));
    d.expect("y", {}, {0.5});
    add(d);
    return;
  }
}

SHOAL_INTERPRETER_CASES(SoftmaxCrossEntropy, OpKind::SoftmaxCrossEntropy) {
  {
    // Row 1: softmax [1,2,3]/6, label 2 -> -log(1/2) = ln 2; row 2: uniform, label 0 -> ln 3.
    // Mean: (ln 2 + ln 3)/2 = ln(6)/2.
    CaseBuilder b("mean over rows", dt);
    b.output(
        b.op(kind,
             {b.fin("logits", {2, 3}, {0, ln2, ln3, 1000, 1000, 1000}), b.input("labels", {DType::I64, {2}}, {2, 0})},
             {}, "loss"),
        "loss");
    b.expect("loss", {}, {std::log(6.0) / 2});
    add(b);
    // u8 labels; one row: logits [0,0] label 1 -> ln 2.
    CaseBuilder c("u8 labels", dt);
    c.output(c.op(kind, {c.fin("logits", {1, 2}, {0, 0}), c.input("labels", {DType::U8, {1}}, {1})}, {}, "loss"),
             "loss");
    c.expect("loss", {}, {ln2});
    add(c);
    // PyTorch's label_smoothing e = 0.3 over 3 classes: p = [1/6,1/3,1/2], label 2, target
    // [0.1, 0.1, 0.8]: 0.7·ln 2 + 0.3·(ln 6 + ln 3 + ln 2)/3 = 0.9 ln 2 + 0.2 ln 3.
    CaseBuilder d("label smoothing", dt);
    d.output(d.op(kind, {d.fin("logits", {1, 3}, {0, ln2, ln3}), d.input("labels", {DType::I64, {1}}, {2})},
                  attrs({{"label_smoothing", 0.3}}), "loss"),
             "loss");
    d.expect("loss", {}, {0.9 * ln2 + 0.2 * ln3});
    add(d);
    return;
  }
}

SHOAL_INTERPRETER_CASES(SoftmaxCrossEntropyGrad, OpKind::SoftmaxCrossEntropyGrad) {
  {
    // dloss·(softmax - onehot)/rows with dloss = 2, rows = 2 (scale 1):
    // row 1 p = [1/6,1/3,1/2], label 2 -> [1/6, 1/3, -1/2]; row 2 p = 1/3 each, label 0 -> [-2/3, 1/3, 1/3].
    CaseBuilder b("softmax minus one-hot", dt);
    b.output(b.op(kind,
                  {b.fin("logits", {2, 3}, {0, ln2, ln3, 0, 0, 0}), b.input("labels", {DType::I64, {2}}, {2, 0}),
                   b.fin("dloss", {}, {2})},
                  {}, "dlogits"),
             "dlogits");
    b.expect("dlogits", {2, 3}, {1.0 / 6, 1.0 / 3, -0.5, -2.0 / 3, 1.0 / 3, 1.0 / 3});
    add(b);
    // Label smoothing 0.3: softmax minus the target [0.1, 0.1, 0.8], dloss 1, one row.
    CaseBuilder c("softmax minus the smoothed target", dt);
    c.output(c.op(kind,
                  {c.fin("logits", {1, 3}, {0, ln2, ln3}), c.input("labels", {DType::I64, {1}}, {2}),
                   c.fin("dloss", {}, {1})},
                  attrs({{"label_smoothing", 0.3}}), "dlogits"),
             "dlogits");
    c.expect("dlogits", {1, 3}, {1.0 / 6 - 0.1, 1.0 / 3 - 0.1, -0.3});
    add(c);
    return;
  }
}

SHOAL_INTERPRETER_CASES(Mse, OpKind::Mse) {
  {
    // (pred - target) = [-0.5, 0, 2, -2]; squares sum to 0.25 + 0 + 4 + 4 = 8.25; mean 2.0625.
    CaseBuilder b("mean of squares", dt);
    b.output(b.op(kind, {b.fin("pred", {2, 2}, {1, 2, 3, 4}), b.fin("target", {2, 2}, {1.5, 2, 1, 6})}, {}, "loss"),
             "loss");
    b.expect("loss", {}, {2.0625});
    add(b);
    return;
  }
}

SHOAL_INTERPRETER_CASES(MseGrad, OpKind::MseGrad) {
  {
    // dloss·2·(pred - target)/count = 4·2·[-0.5, 0, 2, -2]/4 = [-1, 0, 4, -4].
    CaseBuilder b("2 (pred - target) / count", dt);
    b.output(
        b.op(kind,
             {b.fin("pred", {2, 2}, {1, 2, 3, 4}), b.fin("target", {2, 2}, {1.5, 2, 1, 6}), b.fin("dloss", {}, {4})},
             {}, "dpred"),
        "dpred");
    b.expect("dpred", {2, 2}, {-1, 0, 4, -4});
    add(b);
    return;
  }
}

// ---- running and comparing ---------------------------------------------------------------

// Every registered case of `kind` (none: the test fails naming the op).
Cases interpreterCasesFor(OpKind kind, DType dt) {
  auto* fn = InterpreterCaseRegistry::find(kind);
  return fn ? fn(kind, dt) : Cases{};
}

std::string dtypeLabel(DType dt) { return std::string(dtypeName(dt)); }

// The value `name` after a run: a graph output, else a param/state.
const Tensor* findResult(const TensorMap& outputs, const TensorMap& persistent, const std::string& name) {
  auto it = outputs.find(name);
  if (it != outputs.end()) return &it->second;
  it = persistent.find(name);
  return it != persistent.end() ? &it->second : nullptr;
}

// Hand values: float64 to 1e-12, float32 to 2e-6 relative (plus 1e-7 absolute for zeros).
bool closeToHand(double got, double want, DType dt) {
  double rtol = dt == DType::F32 ? 2e-6 : 1e-12;
  double atol = dt == DType::F32 ? 1e-7 : 1e-14;
  return std::abs(got - want) <= atol + rtol * std::abs(want);
}

struct CaseResult {
  std::vector<TensorMap> outputs;     ///< per run
  std::vector<TensorMap> persistent;  ///< per run, after it
};

// Runs every run of `c` with evaluateGraph; failures are reported to gtest.
CaseResult runInterpreterCase(OpCase& c) {
  CaseResult r;
  TensorMap persistent;
  for (auto& [k, t] : c.persistent) persistent[k] = t.clone();
  for (size_t i = 0; i < c.runs.size(); ++i) {
    SCOPED_TRACE("run " + std::to_string(i + 1));
    auto out = evaluateGraph(*c.graph, c.runs[i].inputs, persistent);
    if (!out) {
      ADD_FAILURE() << "evaluateGraph failed: " << out.error().str();
      return r;
    }
    r.outputs.push_back(*out);
    TensorMap snapshot;
    for (auto& [k, t] : persistent) snapshot[k] = t.clone();
    r.persistent.push_back(std::move(snapshot));
  }
  return r;
}

class InterpreterOp : public ::testing::TestWithParam<OpKind> {};

// Every op, every case, in float64 and float32, against the values written in interpreterCasesFor.
TEST_P(InterpreterOp, MatchesHandComputedValues) {
  for (DType dt : {DType::F64, DType::F32}) {
    Cases cases = interpreterCasesFor(GetParam(), dt);
    ASSERT_FALSE(cases.empty()) << "no interpreter test case for op " << opName(GetParam());
    for (OpCase& c : cases) {
      SCOPED_TRACE(c.label + " (" + dtypeLabel(dt) + ")");
      if (c.broken) continue;
      CaseResult r = runInterpreterCase(c);
      ASSERT_EQ(r.outputs.size(), c.runs.size());
      for (size_t i = 0; i < c.runs.size(); ++i) {
        SCOPED_TRACE("after run " + std::to_string(i + 1));
        ASSERT_FALSE(c.runs[i].expect.empty()) << "a run with nothing to check";
        for (const Expect& e : c.runs[i].expect) {
          SCOPED_TRACE(e.name);
          const Tensor* t = findResult(r.outputs[i], r.persistent[i], e.name);
          ASSERT_NE(t, nullptr) << "no output or param named " << e.name;
          EXPECT_EQ(t->shape(), e.shape);
          ASSERT_EQ(size_t(t->numElements()), e.values.size());
          for (size_t j = 0; j < e.values.size(); ++j)
            EXPECT_TRUE(closeToHand(t->at(int64_t(j)), e.values[j], dt))
                << "element " << j << ": got " << t->at(int64_t(j)) << ", expected " << e.values[j];
        }
      }
    }
  }
}

// Each case built once in float64 and once in float32: every output and every param/state
// after every run agrees within rtol 1e-5 (atol 1e-7 for values that are 0 in float64).
TEST_P(InterpreterOp, Float32MatchesFloat64) {
  Cases c64 = interpreterCasesFor(GetParam(), DType::F64);
  Cases c32 = interpreterCasesFor(GetParam(), DType::F32);
  ASSERT_FALSE(c64.empty()) << "no interpreter test case for op " << opName(GetParam());
  ASSERT_EQ(c64.size(), c32.size());
  for (size_t k = 0; k < c64.size(); ++k) {
    SCOPED_TRACE(c64[k].label);
    if (c64[k].broken || c32[k].broken) continue;
    CaseResult r64 = runInterpreterCase(c64[k]);
    CaseResult r32 = runInterpreterCase(c32[k]);
    ASSERT_EQ(r64.outputs.size(), c64[k].runs.size());
    ASSERT_EQ(r32.outputs.size(), c32[k].runs.size());
    for (size_t i = 0; i < r64.outputs.size(); ++i) {
      auto compare = [&](const TensorMap& want, const TensorMap& got) {
        EXPECT_EQ(want.size(), got.size());
        for (const auto& [name, t64] : want) {
          SCOPED_TRACE(name);
          auto it = got.find(name);
          ASSERT_NE(it, got.end());
          const Tensor& t32 = it->second;
          ASSERT_EQ(t32.shape(), t64.shape());
          // A float result is f32 in the f32 graph (integer results keep their type).
          if (t64.dtype() == DType::F64) {
            EXPECT_EQ(t32.dtype(), DType::F32);
          }
          for (int64_t j = 0; j < t64.numElements(); ++j)
            EXPECT_LE(std::abs(t32.at(j) - t64.at(j)), 1e-7 + 1e-5 * std::abs(t64.at(j)))
                << "element " << j << ": f32 " << t32.at(j) << " vs f64 " << t64.at(j);
        }
      };
      compare(r64.outputs[i], r32.outputs[i]);
      compare(r64.persistent[i], r32.persistent[i]);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Interpreter, InterpreterOp, ::testing::ValuesIn(allOps()),
                         [](const ::testing::TestParamInfo<OpKind>& info) { return std::string(opName(info.param)); });

// ---- errors the interpreter reports (user data, not shapes) ------------------------------

// logits [2,3] and labels fed at run time -> softmax_cross_entropy (or its gradient).
std::unique_ptr<Graph> crossEntropyGraph(OpKind kind, DType labelType) {
  auto g = std::make_unique<Graph>("sce");
  Value* logits = layers::input(*g, "logits", {DType::F32, {2, 3}}, at(2, "x"));
  Value* labels = layers::input(*g, "labels", {labelType, {2}}, at(3, "labels"));
  std::vector<Value*> ins = {logits, labels};
  if (kind == OpKind::SoftmaxCrossEntropyGrad)
    ins.push_back(layers::input(*g, "dloss", {DType::F32, {}}, at(4, "dloss")));
  auto loss = layers::addOp(*g, kind, ins, {}, "loss", at(9, "t"));
  EXPECT_TRUE(loss.has_value());
  if (loss) layers::output(*g, *loss, "loss", at(10, "out"));
  return g;
}

TensorMap crossEntropyInputs(DType labelType, std::vector<double> labels) {
  return {{"logits", Tensor::fromDoubles(DType::F32, {2, 3}, std::vector<double>{1, 2, 3, 4, 5, 6})},
          {"labels", Tensor::fromDoubles(labelType, {2}, labels)},
          {"dloss", Tensor::fromDoubles(DType::F32, {}, std::vector<double>{1})}};
}

// The profile's op table: rows by time, the first column as wide as the longest name (a
// grouped launch's "grouped: a + b + c"), so every row's figures line up.
TEST(Profile, OpTableWidensItsFirstColumnForLongNames) {
  const std::string longName = "grouped: softmax_cross_entropy + accuracy + softmax_cross_entropy_grad";
  std::map<std::string, std::pair<double, int64_t>> byOp = {
      {"conv2d", {0.002, 10}}, {longName, {0.001, 10}}, {"relu", {0.0005, 10}}};
  const std::string table = Executable::profileTable(byOp, 3, "note");
  std::vector<std::string> lines;
  for (size_t at = 0, end; at < table.size(); at = end + 1) {
    end = table.find('\n', at);
    lines.push_back(table.substr(at, end - at));
  }
  ASSERT_EQ(lines.size(), 4u) << table;
  EXPECT_EQ(lines[0].rfind("  conv2d ", 0), 0u) << table;  // the slowest first
  EXPECT_EQ(lines[1].rfind("  " + longName + " ", 0), 0u) << table;
  EXPECT_NE(lines[3].find("total in ops"), std::string::npos);
  EXPECT_NE(lines[3].find("3.500 ms  note"), std::string::npos) << table;
  const size_t ms = lines[0].find(" ms ");
  ASSERT_NE(ms, std::string::npos);
  for (size_t i = 1; i < 3; ++i) EXPECT_EQ(lines[i].find(" ms "), ms) << table;
  EXPECT_EQ(lines[3].find(" ms"), ms) << table;
  EXPECT_EQ(lines[0].find("2.000 ms  57.1%"), ms - 5) << table;
}

TEST(InterpreterErrors, CrossEntropyBadLabelNamesLabelAndRow) {
  auto g = crossEntropyGraph(OpKind::SoftmaxCrossEntropy, DType::I64);
  TensorMap persistent;
  auto out = evaluateGraph(*g, crossEntropyInputs(DType::I64, {0, 3}), persistent);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().message(), "softmax_cross_entropy 't': label 3 in row 1 is outside [0, 3)");
  EXPECT_EQ(out.error().str(), "interp.mmd:9:3: error: softmax_cross_entropy 't': label 3 in row 1 is outside [0, 3)");
  // A negative label in the first row.
  out = evaluateGraph(*g, crossEntropyInputs(DType::I64, {-1, 0}), persistent);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().message(), "softmax_cross_entropy 't': label -1 in row 0 is outside [0, 3)");
  // The same graph runs once the labels are valid: mean of (lse - x[label]) over the rows,
  // lse = 3 + ln(1 + e^-1 + e^-2) (row 1) and 6 + the same (row 2); labels 2, 0:
  // ((3 + L) - 3 + (6 + L) - 4) / 2 = L + 1.
  out = evaluateGraph(*g, crossEntropyInputs(DType::I64, {2, 0}), persistent);
  ASSERT_TRUE(out.has_value()) << out.error().str();
  double L = std::log(1 + std::exp(-1.0) + std::exp(-2.0));
  EXPECT_NEAR(out->at("loss").at(0), L + 1, 1e-6);
}

TEST(InterpreterErrors, CrossEntropyBadU8AndI32Labels) {
  auto g = crossEntropyGraph(OpKind::SoftmaxCrossEntropy, DType::U8);
  TensorMap persistent;
  auto out = evaluateGraph(*g, crossEntropyInputs(DType::U8, {255, 1}), persistent);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().message(), "softmax_cross_entropy 't': label 255 in row 0 is outside [0, 3)");
  auto g32 = crossEntropyGraph(OpKind::SoftmaxCrossEntropy, DType::I32);
  out = evaluateGraph(*g32, crossEntropyInputs(DType::I32, {1, 7}), persistent);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().message(), "softmax_cross_entropy 't': label 7 in row 1 is outside [0, 3)");
}

TEST(InterpreterErrors, CrossEntropyGradBadLabel) {
  auto g = crossEntropyGraph(OpKind::SoftmaxCrossEntropyGrad, DType::I64);
  TensorMap persistent;
  auto out = evaluateGraph(*g, crossEntropyInputs(DType::I64, {1, 3}), persistent);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().str(),
            "interp.mmd:9:3: error: softmax_cross_entropy_grad 't': label 3 in row 1 is outside [0, 3)");
}

TEST(InterpreterErrors, IntegerDivisionByZero) {
  Graph g("g");
  Value* a = layers::input(g, "a", {DType::I64, {2}}, at(1, "a"));
  Value* b = layers::input(g, "b", {DType::I64, {2}}, at(2, "b"));
  auto q = layers::addOp(g, OpKind::Div, {a, b}, {}, "q", at(3, "q"));
  ASSERT_TRUE(q.has_value());
  layers::output(g, *q, "q", at(4, "out"));
  TensorMap persistent;
  TensorMap inputs = {{"a", Tensor::fromDoubles(DType::I64, {2}, std::vector<double>{1, 2})},
                      {"b", Tensor::fromDoubles(DType::I64, {2}, std::vector<double>{1, 0})}};
  auto out = evaluateGraph(g, inputs, persistent);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().str(), "interp.mmd:3:3: error: div 'q': integer division by zero");
}

TEST(InterpreterErrors, MissingAndMisshapenInputs) {
  Graph g("g");
  Value* x = layers::input(g, "x", {DType::F32, {2, 2}}, at(1, "x"));
  layers::output(g, *layers::addOp(g, OpKind::Relu, {x}, {}, "r", at(2, "r")), "r", at(3, "out"));
  TensorMap persistent;
  auto out = evaluateGraph(g, {}, persistent);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().str(), "interp.mmd:1:3: error: missing input 'x' (f32[2,2])");
  out = evaluateGraph(g, {{"x", Tensor(DType::F32, {4})}}, persistent);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().message(), "input 'x' expects f32[2,2], got f32[4]");
}

TEST(InterpreterErrors, PersistentValueOfTheWrongShape) {
  Graph g("g");
  layers::output(g, layers::param(g, "d.weight", {DType::F32, {2, 3}}, "zeros", at(1, "d")), "w", at(2, "out"));
  TensorMap persistent = {{"d.weight", Tensor(DType::F32, {3, 2})}};
  auto out = evaluateGraph(g, {}, persistent);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().message(), "tensor 'd.weight' has shape 3x2, the model expects 2x3");
}

// An inference program computes its folded batch norms once per set of parameters, in buffers
// of their own (CpuExecutable::preparedNodes), not every run: a run after one that computed them
// reads them as they are (a value planted there shows in the output), and every change of the
// parameters -- writePersistent, initializeParameters, a step of a training program sharing them
// -- has the next run compute them again: bit for bit what a program computing them every run
// (SHOAL_CPU_PREPARE=0) answers.
TEST(InterpreterPrepared, ParameterDerivedValuesFollowEveryChangeOfTheParameters) {
  DiagnosticEngine diags;
  auto pipeline = loadPipelineFile(test::sourcePath("examples/resnet_mnist.mmd"), diags);
  ASSERT_TRUE(pipeline.has_value()) << diags.render();
  auto g = rebatchGraph(*pipeline->model, 2);
  ASSERT_TRUE(g.has_value());
  auto make = [&](bool prepared) -> std::unique_ptr<CpuExecutable> {
    const char* saved = std::getenv("SHOAL_CPU_PREPARE");
    const std::optional<std::string> keep = saved ? std::optional<std::string>(saved) : std::nullopt;
    if (prepared)
      unsetenv("SHOAL_CPU_PREPARE");
    else
      setenv("SHOAL_CPU_PREPARE", "0", 1);
    auto program = compileProgram((*g)->clone());
    auto exe = program ? CpuExecutable::create(std::move(*program)) : Unexpected(program.error());
    keep ? setenv("SHOAL_CPU_PREPARE", keep->c_str(), 1) : unsetenv("SHOAL_CPU_PREPARE");
    EXPECT_TRUE(exe) << exe.error().str();
    return exe ? std::move(*exe) : nullptr;
  };
  auto prepared = make(true), everyRun = make(false);
  ASSERT_TRUE(prepared && everyRun);
  EXPECT_EQ(prepared->preparedNodes().size(), 24u);  // six folded batch norms
  EXPECT_TRUE(everyRun->preparedNodes().empty());
  CompileOptions trainOpts;
  trainOpts.train = &*pipeline->train;
  auto trainProgram = compileProgram((*g)->clone(), trainOpts);
  ASSERT_TRUE(trainProgram);
  auto trainer = CpuExecutable::create(std::move(*trainProgram));
  ASSERT_TRUE(trainer);
  ASSERT_TRUE(prepared->shareParameters(**trainer));
  ASSERT_TRUE(everyRun->shareParameters(**trainer));
  (*trainer)->initializeParameters(4);

  TensorMap feed;
  feed["x"] = Tensor(DType::U8, {2, 1, 28, 28});
  for (int64_t i = 0; i < feed["x"].numElements(); ++i) feed["x"].set(i, double((i * 37) % 256));
  auto logits = [&](CpuExecutable& e) {
    auto out = e.run(feed);
    EXPECT_TRUE(out) << out.error().str();
    return out ? out->begin()->second.toDoubles() : std::vector<double>{};
  };
  auto expectSame = [&](const char* what) {
    SCOPED_TRACE(what);
    const std::vector<double> want = logits(*everyRun);
    ASSERT_FALSE(want.empty());
    EXPECT_EQ(logits(*prepared), want);
    EXPECT_EQ(logits(*prepared), want);  // again, from the buffers as they are
  };
  expectSame("initialised");
  // Not computed again while the parameters stand: a value planted in a folded bias shows.
  const Value* bias = prepared->graph().findValue("b2n2.fold_bias");
  ASSERT_NE(bias, nullptr);
  ASSERT_TRUE(prepared->preparedNodes().contains(bias->def()));
  const std::vector<double> before = logits(*prepared);
  Tensor planted = prepared->valueView(bias);
  for (int64_t i = 0; i < planted.numElements(); ++i) planted.set(i, planted.at(i) + 1.0);
  EXPECT_NE(logits(*prepared), before);
  // A step of the trainer sharing the parameters, then a write, then initialisation.
  TensorMap trainFeed = feed;
  trainFeed["labels"] = Tensor::fromDoubles(DType::I64, {2}, std::vector<double>{3, 7});
  for (Node* n : (*trainer)->graph().inputNodes()) {
    const std::string& name = n->attrs().getString("name");
    if (name == "step") trainFeed[name] = Tensor::fromDoubles(n->result()->type().dtype, {}, std::vector<double>{1});
    if (name == "lr") trainFeed[name] = Tensor::fromDoubles(n->result()->type().dtype, {}, std::vector<double>{0.01});
  }
  ASSERT_TRUE((*trainer)->run(trainFeed));
  expectSame("after a training step");
  TensorMap params = (*trainer)->readPersistent();
  for (auto& [name, t] : params)
    if (name.find("running_var") != std::string::npos)
      for (int64_t i = 0; i < t.numElements(); ++i) t.set(i, 0.5 + 0.01 * double(i));
  ASSERT_TRUE(prepared->writePersistent(params));
  expectSame("after a write");
  prepared->initializeParameters(9);
  expectSame("initialised again");
}

}  // namespace
}  // namespace shoal
