// Tests for the node-label mini-language: op names, every value kind, locations, diagnostics.
#include "frontend/label.h"

#include <gtest/gtest.h>

namespace shoal::mermaid {
namespace {

const Location kBase{"f.mmd", 3, 10, {}};

ParsedLabel parseLabelOk(std::string_view text) {
  DiagnosticEngine diags;
  auto label = parseLabel(text, kBase, diags);
  EXPECT_TRUE(label.has_value()) << diags.render();
  EXPECT_EQ(diags.errorCount(), 0) << diags.render();
  return label ? *label : ParsedLabel{};
}

// The value of key `key` in `text`'s label.
AttrValue valueOf(std::string_view text, const std::string& key) {
  ParsedLabel l = parseLabelOk(text);
  const LabelArg* a = l.find(key);
  EXPECT_NE(a, nullptr) << text;
  return a ? a->value : AttrValue(std::string("<missing>"));
}

// `file:line:col: error: message` of the first diagnostic.
std::string firstLabelError(std::string_view text, DiagnosticEngine* out = nullptr) {
  DiagnosticEngine local;
  DiagnosticEngine& diags = out ? *out : local;
  auto label = parseLabel(text, kBase, diags);
  EXPECT_FALSE(label.has_value()) << text;
  if (diags.diagnostics().empty()) return "<no diagnostic>";
  std::string r = diags.render(diags.diagnostics().front());
  return r.substr(0, r.find('\n'));
}

using Ints = std::vector<int64_t>;
using Doubles = std::vector<double>;

TEST(LabelParse, OpOnly) {
  ParsedLabel l = parseLabelOk("flatten");
  EXPECT_EQ(l.op, "flatten");
  EXPECT_TRUE(l.args.empty());
  EXPECT_TRUE(l.positional.empty());
  EXPECT_EQ(l.opLoc.file, "f.mmd");
  EXPECT_EQ(l.opLoc.line, 3);
  EXPECT_EQ(l.opLoc.col, 10);
  EXPECT_EQ(parseLabelOk("  relu  ").opLoc.col, 12);
  EXPECT_EQ(parseLabelOk("flatten:").op, "flatten");
}

TEST(LabelParse, ChineseStageNames) {
  for (std::string_view stage : {"数据输入", "数据预处理", "是否使用GPU", "加载到GPU内存", "加载到CPU内存", "执行卷积操作",
                                 "执行矩阵乘法", "模型推断或训练", "结果输出"}) {
    ParsedLabel l = parseLabelOk(stage);
    EXPECT_EQ(l.op, stage);
    EXPECT_TRUE(l.args.empty());
    EXPECT_TRUE(l.positional.empty());
  }
  // A full-width colon separates the op like ':' does.
  ParsedLabel l = parseLabelOk("数据输入：path=data/mnist-10k");
  EXPECT_EQ(l.op, "数据输入");
  ASSERT_EQ(l.args.size(), 1u);
  EXPECT_EQ(l.args[0].key, "path");
  EXPECT_EQ(l.args[0].loc.col, 10 + 15);  // 12 bytes of op, 3 of '：'
}

TEST(LabelParse, ColonIsOptional) {
  ParsedLabel a = parseLabelOk("dense units=64");
  ParsedLabel b = parseLabelOk("dense: units=64");
  ParsedLabel c = parseLabelOk("dense : units=64");
  ParsedLabel d = parseLabelOk("dense:units=64");
  for (const ParsedLabel* l : {&a, &b, &c, &d}) {
    EXPECT_EQ(l->op, "dense");
    ASSERT_EQ(l->args.size(), 1u);
    EXPECT_EQ(l->args[0].key, "units");
    EXPECT_EQ(l->args[0].value, AttrValue(int64_t(64)));
  }
  EXPECT_EQ(valueOf("dense units = 64", "units"), AttrValue(int64_t(64)));
}

TEST(LabelParse, Integers) {
  EXPECT_EQ(valueOf("dense: units=64", "units"), AttrValue(int64_t(64)));
  EXPECT_EQ(valueOf("x: a=-7", "a"), AttrValue(int64_t(-7)));
  EXPECT_EQ(valueOf("x: a=0", "a"), AttrValue(int64_t(0)));
  EXPECT_EQ(valueOf("x: a=9223372036854775807", "a"), AttrValue(int64_t(9223372036854775807LL)));
}

TEST(LabelParse, Floats) {
  EXPECT_EQ(valueOf("adam: lr=0.001", "lr"), AttrValue(0.001));
  EXPECT_EQ(valueOf("adam: eps=1e-3", "eps"), AttrValue(1e-3));
  EXPECT_EQ(valueOf("x: v=-2.5", "v"), AttrValue(-2.5));
  EXPECT_EQ(valueOf("x: v=1E+2", "v"), AttrValue(100.0));
  EXPECT_EQ(valueOf("x: v=.5", "v"), AttrValue(0.5));
  EXPECT_EQ(valueOf("x: v=-.25", "v"), AttrValue(-0.25));
  EXPECT_EQ(valueOf("x: v=2.", "v"), AttrValue(2.0));
  EXPECT_EQ(valueOf("x: v=1.0", "v"), AttrValue(1.0));  // a float even when integral
}

TEST(LabelParse, Fractions) {
  EXPECT_EQ(valueOf("preprocess: scale=1/255", "scale"), AttrValue(1.0 / 255.0));
  EXPECT_EQ(valueOf("x: v=-3/4", "v"), AttrValue(-0.75));
  EXPECT_EQ(valueOf("x: v=1.5/0.5", "v"), AttrValue(3.0));
  EXPECT_EQ(valueOf("x: v=4/2", "v"), AttrValue(2.0));  // a fraction is always a float
}

TEST(LabelParse, Shapes) {
  EXPECT_EQ(valueOf("maxpool: size=2x2", "size"), AttrValue(Ints{2, 2}));
  EXPECT_EQ(valueOf("conv2d: kernel=3x3", "kernel"), AttrValue(Ints{3, 3}));
  EXPECT_EQ(valueOf("reshape: shape=1x28x28", "shape"), AttrValue(Ints{1, 28, 28}));
  EXPECT_EQ(valueOf("x: s=64x1x28x28", "s"), AttrValue(Ints{64, 1, 28, 28}));
}

TEST(LabelParse, Lists) {
  EXPECT_EQ(valueOf("x: v=1,2,3", "v"), AttrValue(Ints{1, 2, 3}));
  EXPECT_EQ(valueOf("x: v=-1,0", "v"), AttrValue(Ints{-1, 0}));
  EXPECT_EQ(valueOf("normalize: mean=0.5,1,2", "mean"), AttrValue(Doubles{0.5, 1.0, 2.0}));
  EXPECT_EQ(valueOf("x: v=1/2,1/4", "v"), AttrValue(Doubles{0.5, 0.25}));
  EXPECT_EQ(valueOf("x: v=1e1,2", "v"), AttrValue(Doubles{10.0, 2.0}));
  // A list of words stays one string; the lowering splits it where an op wants names.
  EXPECT_EQ(valueOf("output: metrics=accuracy,loss", "metrics"), AttrValue(std::string("accuracy,loss")));
}

TEST(LabelParse, Words) {
  EXPECT_EQ(valueOf("conv2d: activation=relu", "activation"), AttrValue(std::string("relu")));
  EXPECT_EQ(valueOf("train: loss=softmax_cross_entropy", "loss"), AttrValue(std::string("softmax_cross_entropy")));
  EXPECT_EQ(valueOf("input: path=data/mnist-10k", "path"), AttrValue(std::string("data/mnist-10k")));
  EXPECT_EQ(valueOf("input: path=../shared/data/x.bin", "path"), AttrValue(std::string("../shared/data/x.bin")));
  EXPECT_EQ(valueOf("x: device=显卡", "device"), AttrValue(std::string("显卡")));
  EXPECT_EQ(valueOf("x: v=nan", "v"), AttrValue(std::string("nan")));  // words, not numbers
}

TEST(LabelParse, QuotedStrings) {
  EXPECT_EQ(valueOf("x: name=\"a b\"", "name"), AttrValue(std::string("a b")));
  EXPECT_EQ(valueOf("x: name='c  d'", "name"), AttrValue(std::string("c  d")));
  EXPECT_EQ(valueOf("x: name=\"say \\\"hi\\\" \\\\ there\"", "name"), AttrValue(std::string("say \"hi\" \\ there")));
  EXPECT_EQ(valueOf("x: name=\"it's [1,2] = ok\"", "name"), AttrValue(std::string("it's [1,2] = ok")));
  EXPECT_EQ(valueOf("x: name=\"\"", "name"), AttrValue(std::string("")));
}

TEST(LabelParse, TensorLiterals) {
  EXPECT_EQ(valueOf("constant: value=[[1,2],[3,4]]", "value"), AttrValue(TensorLiteral{{2, 2}, {1, 2, 3, 4}}));
  EXPECT_EQ(valueOf("constant: value=[1,2,3]", "value"), AttrValue(TensorLiteral{{3}, {1, 2, 3}}));
  EXPECT_EQ(valueOf("constant: value=[ [1, 2] ,\n [3, 4] ]", "value"), AttrValue(TensorLiteral{{2, 2}, {1, 2, 3, 4}}));
  EXPECT_EQ(valueOf("constant: value=[[[1],[2]],[[3],[4]]]", "value"),
            AttrValue(TensorLiteral{{2, 2, 1}, {1, 2, 3, 4}}));
  EXPECT_EQ(valueOf("constant: value=[-1.5,2e3,1/4]", "value"), AttrValue(TensorLiteral{{3}, {-1.5, 2000, 0.25}}));
  EXPECT_EQ(valueOf("constant: value=[]", "value"), AttrValue(TensorLiteral{{0}, {}}));
  EXPECT_EQ(valueOf("constant: value=[[],[]]", "value"), AttrValue(TensorLiteral{{2, 0}, {}}));
  // The seed's worked example A (3x2) as a literal.
  EXPECT_EQ(valueOf("constant: value=[[1,2],[3,4],[5,6]] dtype=f32", "value"),
            AttrValue(TensorLiteral{{3, 2}, {1, 2, 3, 4, 5, 6}}));
}

TEST(LabelParse, PositionalValues) {
  ParsedLabel l = parseLabelOk("input: mnist path=data/mnist-10k batch=64");
  EXPECT_EQ(l.op, "input");
  ASSERT_EQ(l.positional.size(), 1u);
  EXPECT_EQ(l.positional[0].key, "");
  EXPECT_EQ(l.positional[0].value, AttrValue(std::string("mnist")));
  EXPECT_EQ(l.positional[0].loc.col, 10 + 7);
  ASSERT_EQ(l.args.size(), 2u);
  EXPECT_EQ(l.args[0].key, "path");
  EXPECT_EQ(l.args[1].key, "batch");
  EXPECT_EQ(l.args[1].value, AttrValue(int64_t(64)));
  ParsedLabel d = parseLabelOk("device: auto");
  ASSERT_EQ(d.positional.size(), 1u);
  EXPECT_EQ(d.positional[0].value, AttrValue(std::string("auto")));
  ParsedLabel r = parseLabelOk("reshape 1x784");
  ASSERT_EQ(r.positional.size(), 1u);
  EXPECT_EQ(r.positional[0].value, AttrValue(Ints{1, 784}));
}

TEST(LabelParse, Locations) {
  // "conv2d: filters=32 kernel=3x3" starting at column 10.
  ParsedLabel l = parseLabelOk("conv2d: filters=32 kernel=3x3");
  ASSERT_EQ(l.args.size(), 2u);
  EXPECT_EQ(l.args[0].loc.col, 18);
  EXPECT_EQ(l.args[0].valueLoc.col, 26);
  EXPECT_EQ(l.args[1].loc.col, 29);
  EXPECT_EQ(l.args[1].valueLoc.col, 36);
  EXPECT_EQ(l.args[1].loc.line, 3);
  // A newline in the text moves to column 1 of the next line.
  ParsedLabel m = parseLabelOk("dense\n  units=64");
  EXPECT_EQ(m.args[0].loc.line, 4);
  EXPECT_EQ(m.args[0].loc.col, 3);
}

TEST(LabelParse, FromAMermaidNode) {
  // The label location of a node plus byte offsets lands on the character in the source line.
  ParsedLabel l = parseLabelOk("数据输入 path=x");
  EXPECT_EQ(l.args[0].loc.col, 10 + 13);
}

// --- malformed labels: exact first diagnostic -----------------------------------------------------

TEST(LabelErrors, Fractions) {
  EXPECT_EQ(firstLabelError("preprocess: scale=1/0"), "f.mmd:3:28: error: division by zero in fraction '1/0'");
  EXPECT_EQ(firstLabelError("x: v=1/0.0"), "f.mmd:3:15: error: division by zero in fraction '1/0.0'");
  EXPECT_EQ(firstLabelError("x: v=1/2/3"), "f.mmd:3:15: error: malformed fraction '1/2/3'");
  EXPECT_EQ(firstLabelError("x: v=1/"), "f.mmd:3:15: error: malformed fraction '1/'");
  EXPECT_EQ(firstLabelError("x: v=1,1/0"), "f.mmd:3:17: error: division by zero in fraction '1/0'");
}

TEST(LabelErrors, Tensors) {
  EXPECT_EQ(firstLabelError("constant: value=[[1,2],[3,4,5]]"),
            "f.mmd:3:33: error: ragged tensor literal: row 2 has 3 elements, expected 2");
  EXPECT_EQ(firstLabelError("constant: value=[[1,2],[3,4],[5]]"),
            "f.mmd:3:39: error: ragged tensor literal: row 3 has 1 elements, expected 2");
  EXPECT_EQ(firstLabelError("constant: value=[[[1,2],[3,4]],[[1,2,3],[4,5,6]]]"),
            "f.mmd:3:41: error: ragged tensor literal: row 2 has shape 2x3, expected 2x2");
  EXPECT_EQ(firstLabelError("constant: value=[[1,2],3]"), "f.mmd:3:33: error: tensor literal mixes numbers and lists");
  EXPECT_EQ(firstLabelError("constant: value=[1,[2]]"), "f.mmd:3:29: error: tensor literal mixes numbers and lists");
  EXPECT_EQ(firstLabelError("constant: value=[[1,2],[3,4]"),
            "f.mmd:3:38: error: expected ']' to close tensor literal, got end of label");
  EXPECT_EQ(firstLabelError("constant: value=[1,a]"), "f.mmd:3:29: error: expected a number in tensor literal, got 'a'");
  EXPECT_EQ(firstLabelError("constant: value=[1,,2]"), "f.mmd:3:29: error: expected a number or '[' in tensor literal, got ','");
  EXPECT_EQ(firstLabelError("constant: value=[1,2,]"), "f.mmd:3:31: error: expected a number or '[' in tensor literal, got ']'");
  EXPECT_EQ(firstLabelError("constant: value=[1 2]"), "f.mmd:3:29: error: expected ',' or ']' in tensor literal, got '2'");
  EXPECT_EQ(firstLabelError("constant: value=[1,2]x"), "f.mmd:3:31: error: expected a space after tensor literal, got 'x'");
  EXPECT_EQ(firstLabelError("constant: value=[1,2e]"), "f.mmd:3:29: error: malformed number '2e'");
  EXPECT_EQ(firstLabelError("constant: value=[1,1/0]"), "f.mmd:3:29: error: division by zero in fraction '1/0'");
}

TEST(LabelErrors, TensorNestedTooDeeply) {
  std::string deep = "constant: value=" + std::string(10 * 1024 * 1024, '[');
  std::string first;
  first = firstLabelError(deep);
  EXPECT_EQ(first, "f.mmd:3:58: error: tensor literal is nested too deeply (more than 32 levels)");
}

TEST(LabelErrors, DuplicateKey) {
  DiagnosticEngine diags;
  EXPECT_EQ(firstLabelError("dense: units=64 units=32", &diags), "f.mmd:3:26: error: duplicate key 'units'");
  ASSERT_EQ(diags.diagnostics().size(), 2u);
  EXPECT_EQ(diags.diagnostics()[1].severity, Severity::Note);
  EXPECT_EQ(diags.diagnostics()[1].loc.col, 17);
  EXPECT_EQ(diags.diagnostics()[1].message, "'units' was first given here");
}

TEST(LabelErrors, ManyDuplicateKeysKeepFewNotes) {
  std::string text = "x:";
  for (int i = 0; i < 100000; ++i) text += " k=1";
  DiagnosticEngine diags;
  EXPECT_FALSE(parseLabel(text, kBase, diags));
  EXPECT_EQ(diags.errorCount(), 99999);
  EXPECT_EQ(diags.diagnostics().size(), size_t(2 * DiagnosticEngine::kMaxErrors));  // each kept error, its note
}

TEST(LabelErrors, Numbers) {
  EXPECT_EQ(firstLabelError("dense: units=64k"), "f.mmd:3:23: error: malformed number '64k'");
  EXPECT_EQ(firstLabelError("x: lr=1e"), "f.mmd:3:16: error: malformed number '1e'");
  EXPECT_EQ(firstLabelError("x: lr=1.2.3"), "f.mmd:3:16: error: malformed number '1.2.3'");
  EXPECT_EQ(firstLabelError("x: n=99999999999999999999"), "f.mmd:3:15: error: integer '99999999999999999999' is out of range");
  EXPECT_EQ(firstLabelError("x: v=1e999"), "f.mmd:3:15: error: number '1e999' is out of range");
  EXPECT_EQ(firstLabelError("maxpool: size=3x"), "f.mmd:3:24: error: malformed shape '3x' (write extents as 3x3 or 1x28x28)");
  EXPECT_EQ(firstLabelError("maxpool: size=3x-1"), "f.mmd:3:24: error: malformed shape '3x-1' (write extents as 3x3 or 1x28x28)");
}

TEST(LabelErrors, Lists) {
  EXPECT_EQ(firstLabelError("x: v=1,,2"), "f.mmd:3:17: error: empty element in list '1,,2'");
  EXPECT_EQ(firstLabelError("x: v=1,2,"), "f.mmd:3:19: error: empty element in list '1,2,'");
  EXPECT_EQ(firstLabelError("x: v=1,a"), "f.mmd:3:17: error: expected a number in list '1,a', got 'a'");
  EXPECT_EQ(firstLabelError("x: v=a,b;c"), "f.mmd:3:18: error: unexpected character ';' in value 'b;c'");
}

TEST(LabelErrors, Structure) {
  EXPECT_EQ(firstLabelError(""), "f.mmd:3:10: error: expected an op name, got end of label");
  EXPECT_EQ(firstLabelError("   "), "f.mmd:3:13: error: expected an op name, got end of label");
  EXPECT_EQ(firstLabelError(": x=1"), "f.mmd:3:10: error: expected an op name, got ':'");
  EXPECT_EQ(firstLabelError("units=64"), "f.mmd:3:10: error: expected an op name, got argument 'units='");
  EXPECT_EQ(firstLabelError("conv2d(x)"), "f.mmd:3:16: error: expected ':' or a space after op name 'conv2d', got '('");
  EXPECT_EQ(firstLabelError("dense: units="), "f.mmd:3:23: error: expected a value after 'units='");
  EXPECT_EQ(firstLabelError("dense: units= activation=relu"), "f.mmd:3:24: error: expected a value after 'units='");
  EXPECT_EQ(firstLabelError("dense: =64"), "f.mmd:3:17: error: expected a key before '='");
  EXPECT_EQ(firstLabelError("maxpool size: 2x2"), "f.mmd:3:22: error: expected '=' after 'size', got ':'");
  EXPECT_EQ(firstLabelError("x: name=\"abc"), "f.mmd:3:18: error: unterminated quoted string");
  EXPECT_EQ(firstLabelError("x: name=\"abc\"def"), "f.mmd:3:23: error: expected a space after quoted string, got 'def'");
  EXPECT_EQ(firstLabelError("x: act=re;lu"), "f.mmd:3:19: error: unexpected character ';' in value 're;lu'");
  EXPECT_EQ(firstLabelError("x: act=(relu)"), "f.mmd:3:17: error: unexpected character '(' in value '(relu)'");
}

TEST(LabelErrors, ReportsEveryBadArgument) {
  DiagnosticEngine diags;
  EXPECT_FALSE(parseLabel("dense: units=64k act=re;lu units=3 lr=1/0", kBase, diags));
  std::vector<std::string> got;
  for (const Diagnostic& d : diags.diagnostics()) got.push_back(std::to_string(d.loc.col) + " " + d.message);
  EXPECT_EQ(got, (std::vector<std::string>{"23 malformed number '64k'", "33 unexpected character ';' in value 're;lu'",
                                           "48 division by zero in fraction '1/0'"}));
}

}  // namespace
}  // namespace shoal::mermaid
