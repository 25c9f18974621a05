// The shape family's pipeline spellings: operands by numbered and named edge labels, split
// parts, permute, embedding, scaled dot-product attention and multi-head attention (against an
// independent float64 implementation of PyTorch's nn.MultiheadAttention), and their errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "frontend/pipeline_loader.h"
#include "runtime/cpu/interpreter.h"

namespace shoal {
namespace {

struct Loaded {
  std::optional<Pipeline> pipeline;
  std::string diagnostics;
};

Loaded loadFamily(const std::string& text) {
  DiagnosticEngine diags;
  diags.addSource("shape.mmd", text);
  Loaded l;
  l.pipeline = loadPipelineText(text, "shape.mmd", diags);
  l.diagnostics = diags.render();
  return l;
}

// Runs the pipeline's model on the interpreter and returns output `name` as doubles.
std::vector<double> runOutput(const Pipeline& p, const TensorMap& inputs, TensorMap persistent, const std::string& name) {
  auto out = evaluateGraph(*p.model, inputs, persistent);
  EXPECT_TRUE(out.has_value()) << (out ? "" : out.error().str());
  if (!out) return {};
  std::vector<double> v;
  const Tensor& t = out->at(name);
  for (int64_t i = 0; i < t.numElements(); ++i) v.push_back(t.at(i));
  return v;
}

std::vector<double> uniform(size_t n, uint32_t seed, double lo = -1, double hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(n);
  for (double& x : v) x = u(rng);
  return v;
}

void expectFamilyNear(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol * (1 + std::abs(want[i]))) << "element " << i;
}

// ---- operands by edge label ---------------------------------------------------------------

TEST(ShapePipelines, NumberedEdgeLabelsOrderConcatOperands) {
  auto l = loadFamily(
      "flowchart LR\n"
      "  a[\"constant: value=[[1,2]]\"] -->|2| k[concat: axis=1]\n"
      "  b[\"constant: value=[[3]]\"] -->|0| k\n"
      "  c[\"constant: value=[[4,5,6]]\"] -->|1| k\n"
      "  k --> out[output]\n");
  ASSERT_TRUE(l.pipeline) << l.diagnostics;
  EXPECT_EQ(runOutput(*l.pipeline, {}, {}, "out"), (std::vector<double>{3, 4, 5, 6, 1, 2}));
}

TEST(ShapePipelines, OneValueTwiceUnderTwoLabels) {
  auto l = loadFamily(
      "flowchart LR\n"
      "  a[\"constant: value=[1,2]\"] -->|0| k[concat]\n"
      "  a -->|1| k\n"
      "  k --> out[output]\n");
  ASSERT_TRUE(l.pipeline) << l.diagnostics;
  EXPECT_EQ(runOutput(*l.pipeline, {}, {}, "out"), (std::vector<double>{1, 2, 1, 2}));
}

TEST(ShapePipelines, NumberOneIsTheSecondOperandNow) {
  // "1" and "2" used to be aliases of lhs and rhs; numbers are 0-based slots.
  auto l = loadFamily(
      "flowchart LR\n"
      "  a[\"constant: value=[[1,2],[3,4]]\"] -->|1| m[matmul]\n"
      "  b[\"constant: value=[[0,1],[1,0]]\"] -->|0| m\n"
      "  m --> out[output]\n");
  ASSERT_TRUE(l.pipeline) << l.diagnostics;
  // b·a swaps a's rows.
  EXPECT_EQ(runOutput(*l.pipeline, {}, {}, "out"), (std::vector<double>{3, 4, 1, 2}));
}

TEST(ShapePipelines, TwoEdgesNamingOneOperandIsAnError) {
  auto l = loadFamily(
      "flowchart LR\n"
      "  a[\"constant: value=[1]\"] -->|0| k[concat]\n"
      "  b[\"constant: value=[2]\"] -->|lhs| k\n"
      "  k --> out[output]\n");
  EXPECT_FALSE(l.pipeline);
  EXPECT_NE(l.diagnostics.find("shape.mmd:3:32: error: two edges into 'k' name operand 0 ('a' and 'b')"),
            std::string::npos)
      << l.diagnostics;
}

// ---- split ----------------------------------------------------------------------------------

TEST(ShapePipelines, SplitPartsByEdgeLabel) {
  auto l = loadFamily(
      "flowchart LR\n"
      "  x[\"constant: value=[[1,2,3],[4,5,6]]\"] --> s[split: axis=1 sizes=1,2]\n"
      "  s -->|part 1| t[permute: perm=1,0]\n"
      "  t -->|lhs| m[matmul]\n"
      "  s -->|part 0 as rhs| m\n"
      "  s -->|part 0| o0[output: name=first]\n"
      "  m --> out[output]\n");
  ASSERT_TRUE(l.pipeline) << l.diagnostics;
  // part 1 = [[2,3],[5,6]], transposed [[2,5],[3,6]], times part 0 = [[1],[4]].
  EXPECT_EQ(runOutput(*l.pipeline, {}, {}, "out"), (std::vector<double>{22, 27}));
  EXPECT_EQ(runOutput(*l.pipeline, {}, {}, "first"), (std::vector<double>{1, 4}));
  EXPECT_NE(l.pipeline->model->findValue("s.1"), nullptr);
}

TEST(ShapePipelines, SplitIntoEqualParts) {
  auto l = loadFamily(
      "flowchart LR\n"
      "  x[\"constant: value=[1,2,3,4,5,6]\"] --> s[split: parts=3]\n"
      "  s -->|part 2| out[output]\n");
  ASSERT_TRUE(l.pipeline) << l.diagnostics;
  EXPECT_EQ(runOutput(*l.pipeline, {}, {}, "out"), (std::vector<double>{5, 6}));
}

TEST(ShapePipelines, SplitErrors) {
  const std::string head = "flowchart LR\n  x[\"constant: value=[1,2,3,4,5,6]\"] --> s[split: ";
  struct Case {
    std::string tail, message;
  };
  const std::vector<Case> cases = {
      {"parts=4]\n  s -->|part 0| out[output]\n",
       "shape.mmd:2:44: error: split 's': axis 0 of f32[6] has 6 elements, not a multiple of 4 parts (give sizes=...)"},
      {"sizes=2,3]\n  s -->|part 0| out[output]\n",
       "shape.mmd:2:44: error: split 's': sizes add up to 5, but axis 0 of f32[6] has 6"},
      {"parts=2]\n  s --> out[output]\n",
       "shape.mmd:3:5: error: an edge out of split 's' must say which of its 2 parts it carries: -->|part 0| ... "
       "-->|part 1| (then optionally 'as' an operand: -->|part 0 as rhs|)"},
      {"parts=2]\n  s -->|part 2| out[output]\n", "shape.mmd:3:9: error: an edge out of split 's'"},
      {"parts=2]\n  s -->|part 1| r[relu]\n  r -->|part 0| out[output]\n",
       "shape.mmd:4:9: error: 'r' has one output; only an edge out of a split picks a part"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tail);
    auto l = loadFamily(head + c.tail);
    EXPECT_FALSE(l.pipeline);
    EXPECT_NE(l.diagnostics.find(c.message), std::string::npos) << l.diagnostics;
  }
}

// ---- embedding ------------------------------------------------------------------------------

TEST(ShapePipelines, EmbeddingLooksUpRowsOfItsWeight) {
  auto l = loadFamily(
      "flowchart LR\n"
      "  ids[input: shape=2x3 dtype=i64] --> e[embedding: vocab=4 dim=2]\n"
      "  e --> out[output]\n");
  ASSERT_TRUE(l.pipeline) << l.diagnostics;
  const Value* w = l.pipeline->model->findValue("e.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->type(), (TensorType{DType::F32, {4, 2}}));
  EXPECT_EQ(w->def()->attrs().getString("init"), "uniform");
  TensorMap weights{{"e.weight", Tensor::fromDoubles(DType::F32, {4, 2}, std::vector<double>{0, 1, 10, 11, 20, 21, 30, 31})}};
  TensorMap ids{{"ids", Tensor::fromDoubles(DType::I64, {2, 3}, std::vector<double>{3, 0, 1, 1, 2, -1})}};
  EXPECT_EQ(runOutput(*l.pipeline, ids, weights, "out"),
            (std::vector<double>{30, 31, 0, 1, 10, 11, 10, 11, 20, 21, 30, 31}));
  // An id outside the vocabulary is the caller's error, named at the layer.
  TensorMap bad{{"ids", Tensor::fromDoubles(DType::I64, {2, 3}, std::vector<double>{0, 1, 2, 3, 4, 0})}};
  TensorMap persistent = weights;
  auto out = evaluateGraph(*l.pipeline->model, bad, persistent);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().message(), "gather 'e': index 4 at position 4 is outside [-4, 4)");
  EXPECT_EQ(out.error().location().str(), "shape.mmd:2:41");
}

TEST(ShapePipelines, EmbeddingNeedsIntegerIds) {
  auto l = loadFamily(
      "flowchart LR\n"
      "  ids[input: shape=2x3] --> e[embedding: vocab=4 dim=2]\n"
      "  e --> out[output]\n");
  EXPECT_FALSE(l.pipeline);
  EXPECT_NE(l.diagnostics.find("shape.mmd:2:31: error: embedding 'e': ids must be integers (i64, i32 or u8), got f32[2,3]"),
            std::string::npos)
      << l.diagnostics;
}

// ---- dense over tokens, learned positions ------------------------------------------------------

TEST(ShapePipelines, DenseOverTokensAppliesToTheLastAxis) {
  auto l = loadFamily(
      "flowchart LR\n"
      "  x[input: shape=2x3x4] --> d[dense: units=2 activation=relu]\n"
      "  d --> out[output]\n");
  ASSERT_TRUE(l.pipeline) << l.diagnostics;
  const Graph& g = *l.pipeline->model;
  EXPECT_EQ(g.findValue("d.weight")->type().shape, (Shape{2, 4}));
  EXPECT_EQ(g.findValue("d.bias")->type().shape, (Shape{2}));
  EXPECT_EQ(g.outputValue("out")->type(), (TensorType{DType::F32, {2, 3, 2}}));
  const std::vector<double> x = uniform(24, 3), w = uniform(8, 4), b = {0.25, -0.5};
  TensorMap in{{"x", Tensor::fromDoubles(DType::F32, {2, 3, 4}, x)}};
  TensorMap weights{{"d.weight", Tensor::fromDoubles(DType::F32, {2, 4}, w)},
                    {"d.bias", Tensor::fromDoubles(DType::F32, {2}, b)}};
  // relu(x W^T + b) row by row: torch.nn.Linear over the last axis.
  std::vector<double> want;
  for (int r = 0; r < 6; ++r)
    for (int u = 0; u < 2; ++u) {
      double s = b[size_t(u)];
      for (int i = 0; i < 4; ++i) s += x[size_t(r * 4 + i)] * w[size_t(u * 4 + i)];
      want.push_back(std::max(s, 0.0));
    }
  expectFamilyNear(runOutput(*l.pipeline, in, weights, "out"), want, 1e-6);
  auto rebatched = rebatchGraph(g, 5);
  ASSERT_TRUE(rebatched.has_value()) << rebatched.error().str();
  EXPECT_EQ((*rebatched)->outputValue("out")->type().shape, (Shape{5, 3, 2}));
}

TEST(ShapePipelines, DenseOverAnImageAsksForAFlatten) {
  auto l = loadFamily(
      "flowchart LR\n"
      "  x[input: shape=2x1x3x4] --> d[dense: units=2]\n"
      "  d --> out[output]\n");
  EXPECT_FALSE(l.pipeline);
  EXPECT_NE(l.diagnostics.find("shape.mmd:2:33: error: dense 'd': input must be [batch, features] or [batch, tokens, "
                               "features], got f32[2,1,3,4] (add a flatten before it)"),
            std::string::npos)
      << l.diagnostics;
}

TEST(ShapePipelines, PositionEmbeddingAddsALearnedRowPerToken) {
  auto l = loadFamily(
      "flowchart LR\n"
      "  x[input: shape=2x3x2] --> pos[position_embedding: tokens=3 dim=2]\n"
      "  pos --> out[output]\n");
  ASSERT_TRUE(l.pipeline) << l.diagnostics;
  const Value* w = l.pipeline->model->findValue("pos.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->type(), (TensorType{DType::F32, {3, 2}}));
  EXPECT_EQ(w->def()->attrs().getString("init"), "uniform");
  TensorMap in{
      {"x", Tensor::fromDoubles(DType::F32, {2, 3, 2}, std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})}};
  TensorMap weights{
      {"pos.weight", Tensor::fromDoubles(DType::F32, {3, 2}, std::vector<double>{100, 200, 300, 400, 500, 600})}};
  EXPECT_EQ(runOutput(*l.pipeline, in, weights, "out"),
            (std::vector<double>{101, 202, 303, 404, 505, 606, 107, 208, 309, 410, 511, 612}));
  // Without tokens= and dim= the shape comes from the input.
  auto bare = loadFamily("flowchart LR\n  x[input: shape=4x5x6] --> p[position_embedding] --> out[output]\n");
  ASSERT_TRUE(bare.pipeline) << bare.diagnostics;
  EXPECT_EQ(bare.pipeline->model->findValue("p.weight")->type().shape, (Shape{5, 6}));
}

TEST(ShapePipelines, PositionEmbeddingErrorsNameTheNode) {
  struct Case {
    std::string text, message;
  };
  const std::vector<Case> cases = {
      {"flowchart TD\n  x[input: shape=2x3x4] --> pos[position_embedding: tokens=16 dim=4]\n  pos --> out[output]\n",
       "shape.mmd:2:33: error: position_embedding 'pos': tokens=16 dim=4 do not match the input f32[2,3,4]"},
      {"flowchart TD\n  x[input: shape=2x3x4] --> pos[position_embedding: dim=8]\n  pos --> out[output]\n",
       "shape.mmd:2:33: error: position_embedding 'pos': tokens=3 dim=8 do not match the input f32[2,3,4]"},
      {"flowchart TD\n  x[input: shape=2x12] --> pos[position_embedding]\n  pos --> out[output]\n",
       "shape.mmd:2:32: error: position_embedding 'pos': input must be float [batch, tokens, dim], got f32[2,12]"},
      {"flowchart TD\n  x[input: shape=2x3x4] --> pos[position_embedding: tokens=0]\n  pos --> out[output]\n",
       "shape.mmd:2:60: error: 'tokens' must be a positive integer, got 0"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    auto l = loadFamily(c.text);
    EXPECT_FALSE(l.pipeline);
    EXPECT_NE(l.diagnostics.find(c.message), std::string::npos) << l.diagnostics;
  }
}

// ---- attention: an independent float64 reference ---------------------------------------------

// torch.nn.MultiheadAttention(E, heads, batch_first=True)(q, k, v) written out: in-projection
// rows [0,E) for q, [E,2E) for k, [2E,3E) for v; head h uses features [hD, (h+1)D); softmax of
// q·k/sqrt(D) (key j hidden from query i when causal and j > i); out-projection.
std::vector<double> referenceMha(const std::vector<double>& xq, const std::vector<double>& xk, const std::vector<double>& xv,
                                 int64_t batch, int64_t tq, int64_t tk, int64_t e, int64_t heads,
                                 const std::vector<double>& inW, const std::vector<double>& inB,
                                 const std::vector<double>& outW, const std::vector<double>& outB, bool causal) {
  const int64_t d = e / heads;
  auto project = [&](const std::vector<double>& x, int64_t tokens, int64_t part) {
    std::vector<double> y(size_t(batch * tokens * e));
    for (int64_t r = 0; r < batch * tokens; ++r)
      for (int64_t j = 0; j < e; ++j) {
        double s = inB.empty() ? 0 : inB[size_t(part * e + j)];
        for (int64_t i = 0; i < e; ++i) s += x[size_t(r * e + i)] * inW[size_t((part * e + j) * e + i)];
        y[size_t(r * e + j)] = s;
      }
    return y;
  };
  const std::vector<double> q = project(xq, tq, 0), k = project(xk, tk, 1), v = project(xv, tk, 2);
  std::vector<double> o(size_t(batch * tq * e), 0.0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < tq; ++i) {
        std::vector<double> p(static_cast<size_t>(tk));
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < tk; ++j) {
          double s = 0;
          for (int64_t c = 0; c < d; ++c) s += q[size_t((b * tq + i) * e + h * d + c)] * k[size_t((b * tk + j) * e + h * d + c)];
          p[size_t(j)] = causal && j > i ? -std::numeric_limits<double>::infinity() : s / std::sqrt(double(d));
          m = std::max(m, p[size_t(j)]);
        }
        double z = 0;
        for (double& x : p) z += (x = std::exp(x - m));
        for (int64_t j = 0; j < tk; ++j)
          for (int64_t c = 0; c < d; ++c)
            o[size_t((b * tq + i) * e + h * d + c)] += p[size_t(j)] / z * v[size_t((b * tk + j) * e + h * d + c)];
      }
  std::vector<double> y(size_t(batch * tq * e));
  for (int64_t r = 0; r < batch * tq; ++r)
    for (int64_t j = 0; j < e; ++j) {
      double s = outB.empty() ? 0 : outB[size_t(j)];
      for (int64_t i = 0; i < e; ++i) s += o[size_t(r * e + i)] * outW[size_t(j * e + i)];
      y[size_t(r * e + j)] = s;
    }
  return y;
}

struct MhaWeights {
  std::vector<double> inW, inB, outW, outB;
  TensorMap persistent(const std::string& id, int64_t e, bool bias) const {
    TensorMap m;
    m[id + ".in_proj_weight"] = Tensor::fromDoubles(DType::F32, {3 * e, e}, inW);
    m[id + ".out_proj.weight"] = Tensor::fromDoubles(DType::F32, {e, e}, outW);
    if (bias) {
      m[id + ".in_proj_bias"] = Tensor::fromDoubles(DType::F32, {3 * e}, inB);
      m[id + ".out_proj.bias"] = Tensor::fromDoubles(DType::F32, {e}, outB);
    }
    return m;
  }
};

MhaWeights mhaWeights(int64_t e, bool bias, uint32_t seed) {
  MhaWeights w;
  w.inW = uniform(size_t(3 * e * e), seed, -0.6, 0.6);
  w.outW = uniform(size_t(e * e), seed + 1, -0.6, 0.6);
  if (bias) {
    w.inB = uniform(size_t(3 * e), seed + 2, -0.3, 0.3);
    w.outB = uniform(size_t(e), seed + 3, -0.3, 0.3);
  }
  return w;
}

TEST(ShapePipelines, SelfAttentionMatchesPyTorchMultiheadAttention) {
  for (bool causal : {false, true})
    for (bool bias : {true, false}) {
      SCOPED_TRACE(std::string(causal ? "causal" : "full") + (bias ? ", bias" : ", no bias"));
      auto l = loadFamily(std::string("flowchart TD\n"
                                "  x[input: shape=2x3x8] --> a[attention: heads=2") +
                    (causal ? " causal=true" : "") + (bias ? "" : " bias=false") +
                    "]\n"
                    "  a --> out[output]\n");
      ASSERT_TRUE(l.pipeline) << l.diagnostics;
      const Graph& g = *l.pipeline->model;
      ASSERT_NE(g.findValue("a.in_proj_weight"), nullptr);
      EXPECT_EQ(g.findValue("a.in_proj_weight")->type().shape, (Shape{24, 8}));
      EXPECT_EQ(g.findValue("a.out_proj.weight")->type().shape, (Shape{8, 8}));
      EXPECT_EQ(g.findValue("a.in_proj_bias") != nullptr, bias);
      EXPECT_EQ(g.findValue("a.out_proj.bias") != nullptr, bias);
      const MhaWeights w = mhaWeights(8, bias, 11);
      const std::vector<double> x = uniform(2 * 3 * 8, 5);
      TensorMap in{{"x", Tensor::fromDoubles(DType::F32, {2, 3, 8}, x)}};
      expectFamilyNear(runOutput(*l.pipeline, in, w.persistent("a", 8, bias), "out"),
                 referenceMha(x, x, x, 2, 3, 3, 8, 2, w.inW, w.inB, w.outW, w.outB, causal), 2e-5);
    }
}

TEST(ShapePipelines, CrossAttentionWithLabelledQueryKeyValue) {
  auto l = loadFamily(
      "flowchart TD\n"
      "  q[input: shape=2x3x4] -->|q| a[attention: heads=4 causal=true]\n"
      "  m[input: shape=2x5x4] -->|k| a\n"
      "  m -->|v| a\n"
      "  a --> out[output]\n");
  ASSERT_TRUE(l.pipeline) << l.diagnostics;
  const MhaWeights w = mhaWeights(4, true, 21);
  const std::vector<double> xq = uniform(2 * 3 * 4, 7), xm = uniform(2 * 5 * 4, 8);
  TensorMap in{{"q", Tensor::fromDoubles(DType::F32, {2, 3, 4}, xq)}, {"m", Tensor::fromDoubles(DType::F32, {2, 5, 4}, xm)}};
  expectFamilyNear(runOutput(*l.pipeline, in, w.persistent("a", 4, true), "out"),
             referenceMha(xq, xm, xm, 2, 3, 5, 4, 4, w.inW, w.inB, w.outW, w.outB, true), 2e-5);
}

TEST(ShapePipelines, ScaledDotProductAttentionLayer) {
  auto l = loadFamily(
      "flowchart TD\n"
      "  v[input: shape=1x2x3x2] -->|v| s[sdpa: causal=true scale=0.5]\n"
      "  q[input: shape=1x2x3x2] -->|q| s\n"
      "  k[input: shape=1x2x3x2] -->|k| s\n"
      "  s --> out[output]\n");
  ASSERT_TRUE(l.pipeline) << l.diagnostics;
  const std::vector<double> q = uniform(12, 1), k = uniform(12, 2), v = uniform(12, 3);
  TensorMap in{{"q", Tensor::fromDoubles(DType::F32, {1, 2, 3, 2}, q)},
               {"k", Tensor::fromDoubles(DType::F32, {1, 2, 3, 2}, k)},
               {"v", Tensor::fromDoubles(DType::F32, {1, 2, 3, 2}, v)}};
  std::vector<double> want(12, 0.0);
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 3; ++i) {
      double p[3], z = 0;
      for (int j = 0; j <= i; ++j) {
        double s = 0;
        for (int c = 0; c < 2; ++c) s += q[size_t((h * 3 + i) * 2 + c)] * k[size_t((h * 3 + j) * 2 + c)];
        z += (p[j] = std::exp(0.5 * s));
      }
      for (int j = 0; j <= i; ++j)
        for (int c = 0; c < 2; ++c) want[size_t((h * 3 + i) * 2 + c)] += p[j] / z * v[size_t((h * 3 + j) * 2 + c)];
    }
  expectFamilyNear(runOutput(*l.pipeline, in, {}, "out"), want, 1e-5);
}

TEST(ShapePipelines, AttentionErrors) {
  struct Case {
    std::string text, message;
  };
  const std::vector<Case> cases = {
      {"flowchart TD\n  x[input: shape=2x3x6] --> a[attention: heads=4]\n  a --> out[output]\n",
       "shape.mmd:2:31: error: attention 'a': heads=4 must divide the embedding width 6"},
      {"flowchart TD\n  x[input: shape=2x6] --> a[attention: heads=2]\n  a --> out[output]\n",
       "shape.mmd:2:29: error: attention 'a': inputs must be float [batch, tokens, embed], got f32[2,6]"},
      {"flowchart TD\n  x[input: shape=2x3x6] --> a[attention]\n  a --> out[output]\n",
       "shape.mmd:2:31: error: attention 'a' needs heads=N"},
      {"flowchart TD\n  x[input: shape=2x3x6] -->|q| a[sdpa]\n  x -->|k| a\n  a --> out[output]\n",
       "shape.mmd:2:34: error: sdpa 'a' takes q, k and v (label the edges q, k, v), got 2 inputs"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    auto l = loadFamily(c.text);
    EXPECT_FALSE(l.pipeline);
    EXPECT_NE(l.diagnostics.find(c.message), std::string::npos) << l.diagnostics;
  }
}

TEST(ShapePipelines, AttentionModelFollowsANewBatchSize) {
  auto l = loadFamily(
      "flowchart TD\n"
      "  x[input: shape=2x3x8] --> a[attention: heads=2]\n"
      "  a --> out[output]\n");
  ASSERT_TRUE(l.pipeline) << l.diagnostics;
  auto g = rebatchGraph(*l.pipeline->model, 5);
  ASSERT_TRUE(g.has_value()) << g.error().str();
  EXPECT_EQ((*g)->outputValue("out")->type().shape, (Shape{5, 3, 8}));
}

}  // namespace
}  // namespace shoal
