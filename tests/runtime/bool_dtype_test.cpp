// The bool element type end to end: its names, host tensors, IR text, safetensors BOOL, casts
// on the interpreter and constant folding.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "frontend/layers.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/cpu/interpreter.h"

namespace shoal {
namespace {

TEST(BoolDType, NamesSizeAndKind) {
  EXPECT_EQ(dtypeName(DType::Bool), "bool");
  EXPECT_EQ(parseDType("bool"), DType::Bool);
  EXPECT_EQ(parseDType("b8"), DType::Bool);
  EXPECT_EQ(parseDType("bool8"), std::nullopt);
  EXPECT_EQ(dtypeSize(DType::Bool), 1u);
  EXPECT_FALSE(isFloat(DType::Bool));
  EXPECT_EQ((TensorType{DType::Bool, {2, 3}}).str(), "bool[2,3]");
}

TEST(BoolDType, TensorsConvertLikeCxxAndPyTorch) {
  // Nonzero (NaN and -0.5 included) is true; reading gives 0 or 1.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor t = Tensor::fromDoubles(DType::Bool, {6}, std::vector<double>{0, 1, -0.5, 7, nan, -0.0});
  EXPECT_EQ(t.byteSize(), 6u);
  EXPECT_EQ(t.toDoubles(), (std::vector<double>{0, 1, 1, 1, 1, 0}));
  const uint8_t* bytes = static_cast<const uint8_t*>(t.raw());
  for (int i = 0; i < 6; ++i) EXPECT_LE(bytes[i], 1) << i;
  EXPECT_EQ(t.cast(DType::F32).toDoubles(), (std::vector<double>{0, 1, 1, 1, 1, 0}));
  EXPECT_EQ(Tensor::fromDoubles(DType::I64, {3}, std::vector<double>{0, -3, 2}).cast(DType::Bool).toDoubles(),
            (std::vector<double>{0, 1, 1}));
}

TEST(BoolDType, IrTextPrintsBoolAndReadsB8) {
  const std::string text =
      "graph g {\n"
      "  %m = input() {name=\"m\"} : b8[2]\n"
      "  %f = cast(%m) {dtype=\"f32\"} : f32[2]\n"
      "  %b = cast(%f) {dtype=\"bool\"} : bool[2]\n"
      "  output(%b) {name=\"b\"}\n"
      "}\n";
  DiagnosticEngine diags;
  auto g = parseGraph(text, "t.ir", diags);
  ASSERT_NE(g, nullptr) << diags.render();
  EXPECT_EQ(g->nodes()[0]->result()->type(), (TensorType{DType::Bool, {2}}));
  const std::string printed = printGraph(*g);
  EXPECT_NE(printed.find("%m = input() {name=\"m\"} : bool[2]"), std::string::npos) << printed;
  auto again = parseGraph(printed, "t2.ir", diags);
  ASSERT_NE(again, nullptr) << diags.render();
  EXPECT_EQ(printGraph(*again), printed);
}

TEST(BoolDType, SafetensorsRoundTripAndRejectNonBooleanBytes) {
  Tensor mask = Tensor::fromDoubles(DType::Bool, {2, 2}, std::vector<double>{1, 0, 0, 1});
  auto bytes = encodeSafetensors({{"mask", mask}});
  ASSERT_TRUE(bytes.has_value()) << bytes.error().message();
  EXPECT_NE(bytes->find("\"dtype\":\"BOOL\""), std::string::npos);
  auto file = decodeSafetensors(*bytes, "m.safetensors");
  ASSERT_TRUE(file.has_value()) << file.error().message();
  const Tensor* back = file->find("mask");
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->type(), mask.type());
  EXPECT_EQ(back->toDoubles(), mask.toDoubles());
  // Corrupt the last data byte into 2: not a bool.
  std::string bad = *bytes;
  bad.back() = char(2);
  auto rejected = decodeSafetensors(bad, "m.safetensors");
  ASSERT_FALSE(rejected.has_value());
  EXPECT_EQ(rejected.error().message(), "m.safetensors: tensor 'mask': BOOL element 3 is 2, not 0 or 1");
}

TEST(BoolDType, InterpreterCastsAndFoldsThroughBool) {
  // cast f32 -> bool -> f32 on the interpreter, and the same over a constant (folded).
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Graph g("g");
  Location loc{"b.mmd", 1, 1, "x"};
  Value* x = layers::input(g, "x", {DType::F32, {4}}, loc);
  Attrs toBool, toF32;
  toBool.set("dtype", std::string("bool"));
  toF32.set("dtype", std::string("f32"));
  auto b = layers::addOp(g, OpKind::Cast, {x}, toBool, "b", loc);
  ASSERT_TRUE(b.has_value()) << b.error().str();
  EXPECT_EQ((*b)->type(), (TensorType{DType::Bool, {4}}));
  auto f = layers::addOp(g, OpKind::Cast, {*b}, toF32, "f", loc);
  ASSERT_TRUE(f.has_value());
  layers::output(g, *f, "f", loc);
  Value* k = layers::constant(g, "k", DType::F32, TensorLiteral{{3}, {0.0, -2.5, nan}}, loc);
  auto kb = layers::addOp(g, OpKind::Cast, {k}, toBool, "kb", loc);
  ASSERT_TRUE(kb.has_value());
  layers::output(g, *kb, "kb", loc);
  TensorMap persistent;
  auto out = evaluateGraph(g, {{"x", Tensor::fromDoubles(DType::F32, {4}, std::vector<double>{0, 2, -0.25, nan})}},
                           persistent);
  ASSERT_TRUE(out.has_value()) << out.error().str();
  EXPECT_EQ(out->at("f").toDoubles(), (std::vector<double>{0, 1, 1, 1}));
  EXPECT_EQ(out->at("kb").dtype(), DType::Bool);
  EXPECT_EQ(out->at("kb").toDoubles(), (std::vector<double>{0, 1, 1}));

  // With constant folding on, kb becomes a bool constant holding the same values.
  auto program = compileProgram(g.clone(), CompileOptions{});
  ASSERT_TRUE(program.has_value()) << program.error().str();
  auto exe = CpuExecutable::create(std::move(*program));
  ASSERT_TRUE(exe.has_value());
  auto folded = (*exe)->run({{"x", Tensor::fromDoubles(DType::F32, {4}, std::vector<double>{0, 0, 0, 0})}});
  ASSERT_TRUE(folded.has_value()) << folded.error().str();
  EXPECT_EQ(folded->at("kb").toDoubles(), (std::vector<double>{0, 1, 1}));
}

TEST(BoolDType, BoolLabelsAreNotClassIds) {
  Graph g("g");
  Location loc{"b.mmd", 2, 3, "t"};
  Value* logits = layers::input(g, "logits", {DType::F32, {2, 3}}, loc);
  Value* labels = layers::input(g, "labels", {DType::Bool, {2}}, loc);
  auto loss = layers::addOp(g, OpKind::SoftmaxCrossEntropy, {logits, labels}, {}, "loss", loc);
  ASSERT_FALSE(loss.has_value());
  EXPECT_EQ(loss.error().message(), "softmax_cross_entropy 't': labels must be integer class ids, got bool[2]");
}

}  // namespace
}  // namespace shoal