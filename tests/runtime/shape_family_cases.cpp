// Interpreter cases of the shape family (SHOAL_INTERPRETER_CASES, interpreter_cases.h): small
// graphs around each op with hand-computed values, run in float64 and float32 by
// tests/runtime/interpreter_test.cpp.
#include "runtime/interpreter_cases.h"

namespace shoal::test {
namespace {

using Ints = std::vector<int64_t>;

SHOAL_INTERPRETER_CASES(Concat, OpKind::Concat) {
  {
    CaseBuilder b("axis 1", dt);
    b.output(b.op(kind, {b.fin("a", {2, 2}, {1, 2, 3, 4}), b.fin("b", {2, 1}, {5, 6})}, attrs({{"axis", int64_t(1)}})));
    b.expect("y", {2, 3}, {1, 2, 5, 3, 4, 6});
    add(b);
  }
  {
    CaseBuilder b("axis 0 (the default)", dt);
    b.output(b.op(kind, {b.fin("a", {1, 3}, {1, 2, 3}), b.fin("b", {2, 3}, {4, 5, 6, 7, 8, 9})}));
    b.expect("y", {3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
    add(b);
  }
  {
    // Rows of [1,2,w]: x gives one column, y two, z one.
    CaseBuilder b("three operands, axis -1", dt);
    b.output(b.op(kind,
                  {b.fin("x", {1, 2, 1}, {1, 2}), b.fin("y", {1, 2, 2}, {3, 4, 5, 6}), b.fin("z", {1, 2, 1}, {7, 8})},
                  attrs({{"axis", int64_t(-1)}})));
    b.expect("y", {1, 2, 4}, {1, 3, 4, 7, 2, 5, 6, 8});
    add(b);
  }
  {
    CaseBuilder b("i64 elements", dt);
    b.output(b.op(kind, {b.input("a", {DType::I64, {2}}, {-5, 7}), b.input("b", {DType::I64, {1}}, {double(1LL << 40)})}));
    b.expect("y", {3}, {-5, 7, double(1LL << 40)});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(Slice, OpKind::Slice) {
  const std::vector<double> x = ramp(12);  // [3,4]: rows 1..4, 5..8, 9..12
  {
    CaseBuilder b("columns 1..2", dt);
    b.output(b.op(kind, {b.fin("x", {3, 4}, x)}, attrs({{"starts", Ints{1}}, {"ends", Ints{3}}, {"axes", Ints{1}}})));
    b.expect("y", {3, 2}, {2, 3, 6, 7, 10, 11});
    add(b);
  }
  {
    // x[::-1, ::-2]: rows 2, 1, 0; columns 3, 1.
    CaseBuilder b("negative steps to the front", dt);
    b.output(b.op(kind, {b.fin("x", {3, 4}, x)},
                  attrs({{"starts", Ints{-1, -1}}, {"ends", Ints{-100, -100}}, {"steps", Ints{-1, -2}}})));
    b.expect("y", {3, 2}, {12, 10, 8, 6, 4, 2});
    add(b);
  }
  {
    CaseBuilder b("end clamped, step 2", dt);
    b.output(b.op(kind, {b.fin("x", {3, 4}, x)},
                  attrs({{"starts", Ints{0}}, {"ends", Ints{1000}}, {"axes", Ints{0}}, {"steps", Ints{2}}})));
    b.expect("y", {2, 4}, {1, 2, 3, 4, 9, 10, 11, 12});
    add(b);
  }
  {
    CaseBuilder b("u8 elements, backwards by 3", dt);
    b.output(b.op(kind, {b.input("u", {DType::U8, {7}}, {10, 11, 12, 13, 14, 15, 16})},
                  attrs({{"starts", Ints{6}}, {"ends", Ints{0}}, {"steps", Ints{-3}}})));
    b.expect("y", {2}, {16, 13});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(SliceGrad, OpKind::SliceGrad) {
  {
    // The slice read elements 1 and 3 of 6.
    CaseBuilder b("step 2", dt);
    b.output(b.op(kind, {b.fin("dy", {2}, {5, 7})},
                  attrs({{"starts", Ints{1}},
                         {"ends", Ints{5}},
                         {"axes", Ints{}},
                         {"steps", Ints{2}},
                         {"input_shape", Ints{6}}}),
                  "dx"),
             "dx");
    b.expect("dx", {6}, {0, 5, 0, 7, 0, 0});
    add(b);
  }
  {
    // Rows 2 then 0 of [3,2]: dy's first row goes to row 2.
    CaseBuilder b("rows backwards", dt);
    b.output(b.op(kind, {b.fin("dy", {2, 2}, {1, 2, 3, 4})},
                  attrs({{"starts", Ints{-1}},
                         {"ends", Ints{-100}},
                         {"axes", Ints{0}},
                         {"steps", Ints{-2}},
                         {"input_shape", Ints{3, 2}}}),
                  "dx"),
             "dx");
    b.expect("dx", {3, 2}, {3, 4, 0, 0, 1, 2});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(Transpose, OpKind::Transpose) {
  {
    CaseBuilder b("rank 2, perm reversed by default", dt);
    b.output(b.op(kind, {b.fin("x", {2, 3}, ramp(6))}));
    b.expect("y", {3, 2}, {1, 4, 2, 5, 3, 6});
    add(b);
  }
  {
    // x[i,j,k] = 1 + 6i + 2j + k; y[j,i,k].
    CaseBuilder b("rank 3, the first two axes swapped", dt);
    b.output(b.op(kind, {b.fin("x", {2, 3, 2}, ramp(12))}, attrs({{"perm", Ints{1, 0, 2}}})));
    b.expect("y", {3, 2, 2}, {1, 2, 7, 8, 3, 4, 9, 10, 5, 6, 11, 12});
    add(b);
  }
  {
    CaseBuilder b("i32 elements, negative perm axes", dt);
    b.output(b.op(kind, {b.input("x", {DType::I32, {2, 2}}, {1, -2, 3, -4})}, attrs({{"perm", Ints{-1, -2}}})));
    b.expect("y", {2, 2}, {1, 3, -2, -4});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(Pad, OpKind::Pad) {
  const std::vector<double> x = {1, 2, 3, 4};
  {
    CaseBuilder b("constant: a row before, a column after", dt);
    b.output(b.op(kind, {b.fin("x", {2, 2}, x)}, attrs({{"pads", Ints{1, 0, 0, 1}}, {"value", 9.0}})));
    b.expect("y", {3, 3}, {9, 9, 9, 1, 2, 9, 3, 4, 9});
    add(b);
  }
  {
    CaseBuilder b("reflect", dt);
    b.output(b.op(kind, {b.fin("x", {1, 4}, x)},
                  attrs({{"pads", Ints{0, 2, 0, 1}}, {"mode", std::string("reflect")}})));
    b.expect("y", {1, 7}, {3, 2, 1, 2, 3, 4, 3});
    add(b);
  }
  {
    CaseBuilder b("edge", dt);
    b.output(b.op(kind, {b.fin("x", {2, 2}, x)}, attrs({{"pads", Ints{1, 1, 0, 2}}, {"mode", std::string("edge")}})));
    b.expect("y", {3, 5}, {1, 1, 2, 2, 2, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4});
    add(b);
  }
  {
    CaseBuilder b("i64 elements, constant", dt);
    b.output(b.op(kind, {b.input("x", {DType::I64, {2}}, {5, 6})}, attrs({{"pads", Ints{2, 1}}, {"value", -7.0}})));
    b.expect("y", {5}, {-7, -7, 5, 6, -7});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(PadGrad, OpKind::PadGrad) {
  {
    // The reflect pad above copied x[2] to positions 0, 4, 6 and x[1] to 1, 3.
    CaseBuilder b("reflect folds back", dt);
    b.output(b.op(kind, {b.fin("dy", {1, 7}, ramp(7))},
                  attrs({{"pads", Ints{0, 2, 0, 1}}, {"mode", std::string("reflect")}}), "dx"),
             "dx");
    b.expect("dx", {1, 4}, {3, 2 + 4, 1 + 5 + 7, 6});
    add(b);
  }
  {
    // Rows 0,1 of dy came from row 0, row 2 from row 1; columns 0,1 from 0, 2..4 from 1.
    CaseBuilder b("edge sums the border", dt);
    b.output(b.op(kind, {b.fin("dy", {3, 5}, ramp(15))},
                  attrs({{"pads", Ints{1, 1, 0, 2}}, {"mode", std::string("edge")}}), "dx"),
             "dx");
    b.expect("dx", {2, 2}, {1 + 2 + 6 + 7, 3 + 4 + 5 + 8 + 9 + 10, 11 + 12, 13 + 14 + 15});
    add(b);
  }
  {
    CaseBuilder b("constant keeps the interior", dt);
    b.output(b.op(kind, {b.fin("dy", {3, 3}, ramp(9))},
                  attrs({{"pads", Ints{1, 0, 0, 1}}, {"mode", std::string("constant")}}), "dx"),
             "dx");
    b.expect("dx", {2, 2}, {4, 5, 7, 8});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(Gather, OpKind::Gather) {
  {
    CaseBuilder b("rows of a table, a negative index", dt);
    b.output(b.op(kind, {b.fin("table", {3, 2}, ramp(6)), b.input("ids", {DType::I64, {2, 2}}, {2, 0, -1, 1})}));
    b.expect("y", {2, 2, 2}, {5, 6, 1, 2, 5, 6, 3, 4});
    add(b);
  }
  {
    CaseBuilder b("axis 1, i32 indices", dt);
    b.output(b.op(kind, {b.fin("x", {2, 3}, ramp(6)), b.input("ids", {DType::I32, {2}}, {2, 0})},
                  attrs({{"axis", int64_t(1)}})));
    b.expect("y", {2, 2}, {3, 1, 6, 4});
    add(b);
  }
  {
    CaseBuilder b("scalar index drops the axis, u8 index, i64 data", dt);
    b.output(b.op(kind, {b.input("x", {DType::I64, {3}}, {-4, 8, 15}), b.input("i", {DType::U8, {}}, {2})}));
    b.expect("y", {}, {15});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(GatherGrad, OpKind::GatherGrad) {
  {
    // Index 1 twice (rows 0 and 1 of dy add up), -3 is row 0.
    CaseBuilder b("repeated indices add up", dt);
    b.output(b.op(kind, {b.fin("dy", {3, 2}, ramp(6)), b.input("ids", {DType::I64, {3}}, {1, 1, -3})},
                  attrs({{"axis", int64_t(0)}, {"input_shape", Ints{3, 2}}}), "dx"),
             "dx");
    b.expect("dx", {3, 2}, {5, 6, 1 + 3, 2 + 4, 0, 0});
    add(b);
  }
  {
    CaseBuilder b("axis 1", dt);
    b.output(b.op(kind, {b.fin("dy", {2, 2}, {1, 2, 3, 4}), b.input("ids", {DType::I32, {2}}, {0, 0})},
                  attrs({{"axis", int64_t(1)}, {"input_shape", Ints{2, 3}}}), "dx"),
             "dx");
    b.expect("dx", {2, 3}, {3, 0, 0, 7, 0, 0});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(Expand, OpKind::Expand) {
  {
    CaseBuilder b("a column to [2,3,2]", dt);
    b.output(b.op(kind, {b.fin("x", {3, 1}, {1, 2, 3})}, attrs({{"shape", Ints{2, -1, 2}}})));
    b.expect("y", {2, 3, 2}, {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3});
    add(b);
  }
  {
    CaseBuilder b("a scalar", dt);
    b.output(b.op(kind, {b.fin("x", {}, {-2.5})}, attrs({{"shape", Ints{2, 2}}})));
    b.expect("y", {2, 2}, {-2.5, -2.5, -2.5, -2.5});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(Squeeze, OpKind::Squeeze) {
  {
    CaseBuilder b("every extent-1 axis", dt);
    b.output(b.op(kind, {b.fin("x", {1, 3, 1}, {1, -2, 3})}));
    b.expect("y", {3}, {1, -2, 3});
    add(b);
  }
  {
    // A view: the tanh after it reads the same bytes.
    CaseBuilder b("one axis, then an op", dt);
    Value* s = b.op(kind, {b.fin("x", {2, 1}, {0, 0})}, attrs({{"axes", Ints{1}}}), "s");
    b.output(b.op(OpKind::Tanh, {s}));
    b.expect("y", {2}, {0, 0});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(Unsqueeze, OpKind::Unsqueeze) {
  {
    CaseBuilder b("front and back", dt);
    b.output(b.op(kind, {b.fin("x", {2}, {4, 5})}, attrs({{"axes", Ints{0, -1}}})));
    b.expect("y", {1, 2, 1}, {4, 5});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(BatchMatMul, OpKind::BatchMatMul) {
  {
    // [[1,2],[3,4]]·B = [[1,5],[3,11]]; [[5,6],[7,8]]·B = [[5,17],[7,23]], B = [[1,1],[0,2]].
    CaseBuilder b("a batch times one matrix", dt);
    b.output(b.op(kind, {b.fin("a", {2, 2, 2}, ramp(8)), b.fin("b", {2, 2}, {1, 1, 0, 2})}));
    b.expect("y", {2, 2, 2}, {1, 5, 3, 11, 5, 17, 7, 23});
    add(b);
  }
  {
    // Aᵀ = [[1,4],[2,5],[3,6]] times [1,1]ᵀ and [1,-1]ᵀ.
    CaseBuilder b("transposed shared left operand", dt);
    b.output(b.op(kind, {b.fin("a", {2, 3}, ramp(6)), b.fin("b", {2, 2, 1}, {1, 1, 1, -1})},
                  attrs({{"transpose_a", int64_t(1)}})));
    b.expect("y", {2, 3, 1}, {5, 7, 9, -3, -3, -3});
    add(b);
  }
  {
    // Row vectors [1,2], [3,4] against rows [1,0], [0,1], [1,1] (transposed): every pair.
    CaseBuilder b("batch axes broadcast both ways", dt);
    b.output(b.op(kind, {b.fin("a", {2, 1, 1, 2}, {1, 2, 3, 4}), b.fin("b", {1, 3, 1, 2}, {1, 0, 0, 1, 1, 1})},
                  attrs({{"transpose_b", int64_t(1)}})));
    b.expect("y", {2, 3, 1, 1}, {1, 2, 3, 3, 4, 7});
    add(b);
  }
  {
    // alpha scales the product: 0.25 · [1,2]·[3,4]ᵀ = 0.25 · 11.
    CaseBuilder b("alpha", dt);
    b.output(b.op(kind, {b.fin("a", {1, 1, 2}, {1, 2}), b.fin("b", {1, 2, 1}, {3, 4})}, attrs({{"alpha", 0.25}})));
    b.expect("y", {1, 1, 1}, {2.75});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(CausalMask, OpKind::CausalMask) {
  {
    CaseBuilder b("a finite fill above the diagonal", dt);
    b.output(b.op(kind, {b.fin("x", {2, 3}, ramp(6))}, attrs({{"value", -1000.0}})));
    b.expect("y", {2, 3}, {1, -1000, -1000, 4, 5, -1000});
    add(b);
  }
  {
    // The default -inf, then softmax: masked entries get exactly 0.
    CaseBuilder b("-inf then softmax", dt);
    Value* m = b.op(kind, {b.fin("x", {2, 2, 2}, {0, 5, ln3, 0, 7, 7, 0, 0})}, {}, "m");
    b.output(b.op(OpKind::Softmax, {m}));
    b.expect("y", {2, 2, 2}, {1, 0, 0.75, 0.25, 1, 0, 0.5, 0.5});
    add(b);
  }
}

}  // namespace
}  // namespace shoal::test
