// The conv family's pipeline spellings: grouped/depthwise conv2d, conv_transpose2d, the pools'
// ceil_mode and count_include_pad, global and adaptive average pooling, and their errors.
#include <gtest/gtest.h>

#include <string>

#include "frontend/layers_conv.h"
#include "frontend/pipeline_loader.h"
#include "ir/graph.h"

namespace shoal {
namespace {

// The pipeline `x[input: shape=<shape>] --> <layer> --> o[output]`, lowered.
std::optional<Pipeline> lowerLayer(const std::string& shape, const std::string& layer, DiagnosticEngine& diags) {
  std::string text = "flowchart TD\n  x[input: shape=" + shape + "] --> " + layer + "\n  l --> o[output]\n";
  return loadPipelineText(text, "t.mmd", diags);
}

// The lowered pipeline's graph; fails the test (with the diagnostics) when lowering fails.
const Graph* lowered(const std::optional<Pipeline>& p, const DiagnosticEngine& diags) {
  EXPECT_TRUE(p.has_value()) << diags.render();
  return p ? p->model.get() : nullptr;
}

// The first line of the first diagnostic of lowering `layer`.
std::string firstConvError(const std::string& shape, const std::string& layer) {
  DiagnosticEngine diags;
  auto p = lowerLayer(shape, layer, diags);
  EXPECT_FALSE(p.has_value());
  if (diags.diagnostics().empty()) return "<no diagnostic>";
  std::string r = diags.render(diags.diagnostics().front());
  return r.substr(0, r.find('\n'));
}

const Node* defOf(const Graph& g, const std::string& value) {
  const Value* v = g.findValue(value);
  return v ? v->def() : nullptr;
}

TEST(ConvPipeline, DepthwiseDilatedConvWithSamePadding) {
  DiagnosticEngine diags;
  auto p = lowerLayer("2x32x14x14", "l[conv2d: filters=32 kernel=3x3 groups=32 dilation=2 padding=same]", diags);
  const Graph* g = lowered(p, diags);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->findValue("l.weight")->type().str(), "f32[32,1,3,3]");
  const Node* conv = defOf(*g, "l");
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->kind(), OpKind::Conv2d);
  EXPECT_EQ(conv->attrs().getInt("groups"), 32);
  // Dilation 2 spans 5 pixels: "same" pads 2 on every side and keeps 14x14.
  EXPECT_EQ(conv->attrs().getInts("padding"), (std::vector<int64_t>{2, 2, 2, 2}));
  EXPECT_EQ(conv->result()->type().str(), "f32[2,32,14,14]");
}

TEST(ConvPipeline, GroupedConvWithActivation) {
  DiagnosticEngine diags;
  auto p = lowerLayer("1x6x8x8", "l[conv2d: filters=4 kernel=3 groups=2 activation=relu bias=false]", diags);
  const Graph* g = lowered(p, diags);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->findValue("l.weight")->type().str(), "f32[4,3,3,3]");
  EXPECT_EQ(g->findValue("l.bias"), nullptr);
  EXPECT_EQ(defOf(*g, "l.conv")->attrs().getInt("groups"), 2);
  EXPECT_EQ(defOf(*g, "l")->kind(), OpKind::Relu);
}

TEST(ConvPipeline, GroupsMustDivideChannelsAndFilters) {
  EXPECT_EQ(firstConvError("1x6x8x8", "l[conv2d: filters=4 groups=4]"),
            "t.mmd:2:33: error: conv2d 'l': groups=4 must divide the input's 6 channels and the 4 filters");
  EXPECT_EQ(firstConvError("1x6x8x8", "l[conv2d: filters=4 groups=0]"),
            "t.mmd:2:58: error: 'groups' must be a positive integer, got 0");
}

TEST(ConvPipeline, ConvTransposeUpsamples) {
  DiagnosticEngine diags;
  auto p = lowerLayer("2x8x7x7", "l[conv_transpose2d: filters=16 kernel=2x2 stride=2]", diags);
  const Graph* g = lowered(p, diags);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->findValue("l.weight")->type().str(), "f32[8,16,2,2]");  // PyTorch's [C_in, C_out/groups, kh, kw]
  EXPECT_EQ(g->findValue("l.bias")->type().str(), "f32[16]");
  const Node* up = defOf(*g, "l");
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->kind(), OpKind::ConvTranspose2d);
  EXPECT_EQ(up->result()->type().str(), "f32[2,16,14,14]");
}

TEST(ConvPipeline, ConvTransposeSamePaddingMultipliesByTheStride) {
  // kernel 3 stride 2: crop 1 (after); kernel 1 stride 2: output_padding 1; kernel 4 stride 2:
  // crop 2 (one each side).
  for (const char* kernel : {"3", "1", "4", "2"}) {
    SCOPED_TRACE(kernel);
    DiagnosticEngine diags;
    auto p = lowerLayer("1x3x7x5", std::string("l[conv_transpose2d: filters=2 kernel=") + kernel + " stride=2 padding=same]",
                        diags);
    const Graph* g = lowered(p, diags);
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(defOf(*g, "l")->result()->type().str(), "f32[1,2,14,10]");
  }
  auto [pad, outPad] = layers::transposeSamePadding(3, 1, 2, 2, 1, 1);
  EXPECT_EQ(pad, (std::vector<int64_t>{0, 0, 1, 0}));
  EXPECT_EQ(outPad, (std::vector<int64_t>{0, 1}));
  std::tie(pad, outPad) = layers::transposeSamePadding(4, 5, 2, 1, 1, 2);
  EXPECT_EQ(pad, (std::vector<int64_t>{1, 4, 1, 4}));
  EXPECT_EQ(outPad, (std::vector<int64_t>{0, 0}));
}

TEST(ConvPipeline, ConvTransposeWithAllItsArguments) {
  DiagnosticEngine diags;
  auto p = lowerLayer("1x4x5x6",
                      "l[conv_transpose2d: filters=6 kernel=3x2 stride=2x1 padding=1,0,0,1 output_padding=1x0 "
                      "dilation=1x2 groups=2 activation=tanh]",
                      diags);
  const Graph* g = lowered(p, diags);
  ASSERT_NE(g, nullptr);
  const Node* up = defOf(*g, "l.conv");
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->attrs().getInts("output_padding"), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(up->attrs().getInts("padding"), (std::vector<int64_t>{1, 0, 0, 1}));
  EXPECT_EQ(g->findValue("l.weight")->type().str(), "f32[4,3,3,2]");
  EXPECT_EQ(up->result()->type().str(), "f32[1,6,11,7]");
  EXPECT_EQ(defOf(*g, "l")->kind(), OpKind::Tanh);
}

TEST(ConvPipeline, ConvTransposeErrors) {
  EXPECT_EQ(firstConvError("1x4x5x5", "l[conv_transpose2d: kernel=2]"),
            "t.mmd:2:33: error: conv_transpose2d 'l' needs filters=N");
  EXPECT_EQ(firstConvError("1x4x5x5", "l[conv_transpose2d: filters=2 stride=2 output_padding=2]"),
            "t.mmd:2:33: error: conv_transpose2d 'l': output_padding 2x2 must be non-negative and smaller than the stride "
            "2x2");
  EXPECT_EQ(firstConvError("1x4x5x5", "l[conv_transpose2d: filters=3 groups=2]"),
            "t.mmd:2:33: error: conv_transpose2d 'l': groups=2 must divide the input's 4 channels and the 3 filters");
  EXPECT_EQ(firstConvError("1x4x5x5", "l[conv_transpose2d: filters=2 padding=same output_padding=1]"),
            "t.mmd:2:33: error: conv_transpose2d 'l': padding=same sets the output padding itself; drop output_padding");
}

TEST(ConvPipeline, PoolsTakeCeilModeAndCountIncludePad) {
  DiagnosticEngine diags;
  auto p = lowerLayer("1x3x6x6", "l[maxpool: size=3x3 stride=2 padding=1 ceil_mode=true]", diags);
  const Graph* g = lowered(p, diags);
  ASSERT_NE(g, nullptr);
  const Node* pool = defOf(*g, "l");
  EXPECT_EQ(pool->kind(), OpKind::MaxPool2d);
  EXPECT_EQ(pool->attrs().getInt("ceil_mode"), 1);
  EXPECT_EQ(pool->result()->type().str(), "f32[1,3,4,4]");  // floor mode: 3x3

  DiagnosticEngine diags2;
  auto q = lowerLayer("1x3x6x6", "l[avgpool: size=3x3 stride=2 padding=1 count_include_pad=false]", diags2);
  g = lowered(q, diags2);
  ASSERT_NE(g, nullptr);
  pool = defOf(*g, "l");
  EXPECT_EQ(pool->kind(), OpKind::AvgPool2d);
  EXPECT_EQ(pool->attrs().getInt("count_include_pad"), 0);
  EXPECT_EQ(pool->attrs().getInt("ceil_mode"), 0);
  EXPECT_EQ(pool->result()->type().str(), "f32[1,3,3,3]");

  EXPECT_EQ(firstConvError("1x3x6x6", "l[maxpool: size=2 count_include_pad=false]"),
            "t.mmd:2:49: error: maxpool does not take 'count_include_pad'");
  EXPECT_EQ(firstConvError("1x3x6x6", "l[avgpool: size=2 ceil_mode=2]"),
            "t.mmd:2:59: error: 'ceil_mode' must be true or false, got 2");
}

TEST(ConvPipeline, GlobalAndAdaptiveAveragePooling) {
  DiagnosticEngine diags;
  auto p = lowerLayer("2x5x7x3", "l[global_avgpool]", diags);
  const Graph* g = lowered(p, diags);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(defOf(*g, "l")->kind(), OpKind::GlobalAvgPool);
  EXPECT_EQ(defOf(*g, "l")->result()->type().str(), "f32[2,5,1,1]");

  DiagnosticEngine diags2;
  auto q = lowerLayer("2x5x7x3", "l[adaptive_avgpool: size=1]", diags2);
  g = lowered(q, diags2);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(defOf(*g, "l")->kind(), OpKind::GlobalAvgPool);

  // A size that divides the input: PyTorch's windows are then one size, kernel = stride.
  DiagnosticEngine diags3;
  auto r = lowerLayer("2x5x6x9", "l[adaptive_avgpool: size=2x3]", diags3);
  g = lowered(r, diags3);
  ASSERT_NE(g, nullptr);
  const Node* pool = defOf(*g, "l");
  EXPECT_EQ(pool->kind(), OpKind::AvgPool2d);
  EXPECT_EQ(pool->attrs().getInts("kernel"), (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(pool->attrs().getInts("stride"), (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(pool->result()->type().str(), "f32[2,5,2,3]");

  EXPECT_EQ(firstConvError("2x5x7x3", "l[adaptive_avgpool: size=2]"),
            "t.mmd:2:33: error: adaptive_avgpool 'l': size 2x2 must divide the input's 7x3 plane (windows of one size); "
            "use size=1 for global average pooling");
}

}  // namespace
}  // namespace shoal
