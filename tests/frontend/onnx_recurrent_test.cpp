// ONNX's RNN, GRU and LSTM, imported as unrolled graphs: every attribute the conformance
// suite's cases leave at its default (reverse and bidirectional passes, batch-major layout,
// linear_before_reset, clip, the other activations with their alpha and beta, peepholes,
// input_forget, sequences that end early) checked against a direct float64 implementation of
// the formulas in ONNX's operator documentation, written here loop by loop; the gradients of
// the unrolled graphs against central differences.
#include <gtest/gtest.h>
#include <shoal/shoal.h>

#include <cmath>
#include <optional>

#include "frontend/onnx/onnx_import.h"
#include "onnx_test_models.h"
#include "passes/grad_cases.h"
#include "test_util.h"

namespace {

using namespace shoal;
using namespace shoal::test;

#if SHOAL_HAVE_ONNX

struct RecurrentCase {
  std::string label;
  std::string op;  // RNN, GRU, LSTM
  int64_t T = 3, B = 2, I = 3, H = 4;
  std::string direction = "forward";
  int64_t layout = 0;
  bool bias = true, initialH = false, initialC = false, peepholes = false;
  bool linearBeforeReset = false, inputForget = false;
  std::optional<float> clip{};
  std::vector<std::string> activations{};  // empty: the defaults
  std::vector<float> alphas{}, betas{};
  std::vector<int32_t> lengths{};  // empty: no sequence_lens
  DType dtype = DType::F64;
  double tolerance = 1e-11;
};

int64_t gatesOf(const std::string& op) { return op == "RNN" ? 1 : op == "GRU" ? 3 : 4; }
int64_t dirsOf(const RecurrentCase& k) { return k.direction == "bidirectional" ? 2 : 1; }

// Deterministic values in (-0.9, 0.9), different per seed.
std::vector<double> values(int64_t n, double seed) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = 0.9 * std::sin(seed * 1.37 + double(i) * 0.61 + 0.3);
  return v;
}

struct Inputs {
  Tensor x, w, r, b, p, h0, c0, lens;
};

Inputs makeInputs(const RecurrentCase& k) {
  int64_t D = dirsOf(k), G = gatesOf(k.op);
  Inputs in;
  Shape xs = k.layout == 0 ? Shape{k.T, k.B, k.I} : Shape{k.B, k.T, k.I};
  Shape ss = k.layout == 0 ? Shape{D, k.B, k.H} : Shape{k.B, D, k.H};
  auto make = [&](Shape s, double seed) { return Tensor::fromDoubles(k.dtype, s, values(numElements(s), seed)); };
  in.x = make(xs, 1);
  in.w = make({D, G * k.H, k.I}, 2);
  in.r = make({D, G * k.H, k.H}, 3);
  in.b = make({D, 2 * G * k.H}, 4);
  in.p = make({D, 3 * k.H}, 5);
  in.h0 = make(ss, 6);
  in.c0 = make(ss, 7);
  if (!k.lengths.empty()) {
    in.lens = Tensor(DType::I32, {k.B});
    for (int64_t b = 0; b < k.B; ++b) in.lens.set(b, k.lengths[size_t(b)]);
  }
  return in;
}

struct Act {
  std::string name;
  double alpha = 0, beta = 0;
};

double activate(const Act& f, double x) {
  const std::string& n = f.name;
  if (n == "Sigmoid") return 1 / (1 + std::exp(-x));
  if (n == "Tanh") return std::tanh(x);
  if (n == "Relu") return std::max(0.0, x);
  if (n == "HardSigmoid") return std::min(std::max(f.alpha * x + f.beta, 0.0), 1.0);
  if (n == "Softsign") return x / (1 + std::abs(x));
  if (n == "Softplus") return std::log(1 + std::exp(x));
  if (n == "Elu") return x >= 0 ? x : f.alpha * (std::exp(x) - 1);
  if (n == "ScaledTanh") return f.alpha * std::tanh(f.beta * x);
  if (n == "LeakyRelu") return x >= 0 ? x : f.alpha * x;
  if (n == "ThresholdedRelu") return x > f.alpha ? x : 0;
  if (n == "Affine") return f.alpha * x + f.beta;
  ADD_FAILURE() << "no reference for " << n;
  return 0;
}

// The activations of direction d: the list (or the defaults), alpha and beta given in the
// order of the functions that take them.
std::vector<Act> activationsOf(const RecurrentCase& k, int64_t d) {
  std::vector<std::string> names = k.activations;
  if (names.empty()) {
    if (k.op == "RNN") names = {"Tanh"};
    if (k.op == "GRU") names = {"Sigmoid", "Tanh"};
    if (k.op == "LSTM") names = {"Sigmoid", "Tanh", "Tanh"};
  }
  size_t per = size_t(gatesOf(k.op) == 1 ? 1 : gatesOf(k.op) == 3 ? 2 : 3);
  size_t ai = 0, bi = 0;
  std::vector<Act> all;
  for (size_t i = 0; i < names.size(); ++i) {
    Act a{names[i]};
    const std::string& n = a.name;
    bool takesAlpha = n == "HardSigmoid" || n == "Elu" || n == "ScaledTanh" || n == "LeakyRelu" ||
                      n == "ThresholdedRelu" || n == "Affine";
    bool takesBeta = n == "HardSigmoid" || n == "ScaledTanh" || n == "Affine";
    if (takesAlpha) a.alpha = k.alphas.at(ai++);
    if (takesBeta) a.beta = k.betas.at(bi++);
    all.push_back(a);
  }
  if (all.size() == per) return all;  // one list for both directions
  return {all.begin() + long(per * size_t(d)), all.begin() + long(per * size_t(d + 1))};
}

struct Outputs {
  std::vector<double> y, yh, yc;  // in the case's layout
};

// ONNX's equations, element by element (docs/Operators.md: RNN, GRU, LSTM).
Outputs reference(const RecurrentCase& k, const Inputs& in) {
  const int64_t T = k.T, B = k.B, I = k.I, H = k.H, D = dirsOf(k), G = gatesOf(k.op);
  auto xv = in.x.toDoubles(), wv = in.w.toDoubles(), rv = in.r.toDoubles(), bv = in.b.toDoubles(),
       pv = in.p.toDoubles(), h0v = in.h0.toDoubles(), c0v = in.c0.toDoubles();
  auto X = [&](int64_t t, int64_t b, int64_t i) {
    return xv[size_t(k.layout == 0 ? (t * B + b) * I + i : (b * T + t) * I + i)];
  };
  auto W = [&](int64_t d, int64_t row, int64_t i) { return wv[size_t((d * G * H + row) * I + i)]; };
  auto R = [&](int64_t d, int64_t row, int64_t j) { return rv[size_t((d * G * H + row) * H + j)]; };
  auto Wb = [&](int64_t d, int64_t row) { return k.bias ? bv[size_t(d * 2 * G * H + row)] : 0.0; };
  auto Rb = [&](int64_t d, int64_t row) { return k.bias ? bv[size_t(d * 2 * G * H + G * H + row)] : 0.0; };
  auto P = [&](int64_t d, int64_t g, int64_t j) { return k.peepholes ? pv[size_t(d * 3 * H + g * H + j)] : 0.0; };
  auto state = [&](const std::vector<double>& v, bool given, int64_t d, int64_t b, int64_t j) {
    if (!given) return 0.0;
    return v[size_t(k.layout == 0 ? (d * B + b) * H + j : (b * D + d) * H + j)];
  };
  auto clip = [&](double v) { return k.clip ? std::min(std::max(v, -double(*k.clip)), double(*k.clip)) : v; };
  // x_t W_row^T + h R_row^T for one row (gate g, unit j).
  auto xw = [&](int64_t d, int64_t t, int64_t b, int64_t row) {
    double s = 0;
    for (int64_t i = 0; i < I; ++i) s += X(t, b, i) * W(d, row, i);
    return s;
  };
  auto hr = [&](int64_t d, const std::vector<double>& h, int64_t row) {
    double s = 0;
    for (int64_t j = 0; j < H; ++j) s += h[size_t(j)] * R(d, row, j);
    return s;
  };

  std::vector<double> Y(size_t(T * D * B * H)), Yh(size_t(D * B * H)), Yc(size_t(D * B * H));
  for (int64_t d = 0; d < D; ++d) {
    bool reverse = k.direction == "reverse" || d == 1;
    std::vector<Act> fs = activationsOf(k, d);
    for (int64_t b = 0; b < B; ++b) {
      std::vector<double> h(static_cast<size_t>(H)), c(static_cast<size_t>(H));
      for (int64_t j = 0; j < H; ++j) {
        h[size_t(j)] = state(h0v, k.initialH, d, b, j);
        c[size_t(j)] = state(c0v, k.initialC, d, b, j);
      }
      int64_t len = k.lengths.empty() ? T : k.lengths[size_t(b)];
      for (int64_t s = 0; s < T; ++s) {
        int64_t t = reverse ? T - 1 - s : s;
        std::vector<double> hn(static_cast<size_t>(H)), cn(static_cast<size_t>(H));
        if (t >= len) {  // past the sequence's end: state kept, zeros out
          for (int64_t j = 0; j < H; ++j) Y[size_t(((t * D + d) * B + b) * H + j)] = 0;
          continue;
        }
        for (int64_t j = 0; j < H; ++j) {
          if (k.op == "RNN") {
            hn[size_t(j)] = activate(fs[0], clip(xw(d, t, b, j) + hr(d, h, j) + Wb(d, j) + Rb(d, j)));
          } else if (k.op == "GRU") {
            double z = activate(fs[0], clip(xw(d, t, b, j) + hr(d, h, j) + Wb(d, j) + Rb(d, j)));
            auto rGate = [&](int64_t u) {
              return activate(fs[0], clip(xw(d, t, b, H + u) + hr(d, h, H + u) + Wb(d, H + u) + Rb(d, H + u)));
            };
            double pre;
            if (k.linearBeforeReset) {
              pre = xw(d, t, b, 2 * H + j) + rGate(j) * (hr(d, h, 2 * H + j) + Rb(d, 2 * H + j)) + Wb(d, 2 * H + j);
            } else {
              double s = 0;  // (r ⊙ h) R_h^T
              for (int64_t u = 0; u < H; ++u) s += rGate(u) * h[size_t(u)] * R(d, 2 * H + j, u);
              pre = xw(d, t, b, 2 * H + j) + s + Rb(d, 2 * H + j) + Wb(d, 2 * H + j);
            }
            double hh = activate(fs[1], clip(pre));
            hn[size_t(j)] = (1 - z) * hh + z * h[size_t(j)];
          } else {  // LSTM, gates i, o, f, c; peepholes i, o, f
            auto gate = [&](int64_t g) { return xw(d, t, b, g * H + j) + hr(d, h, g * H + j) + Wb(d, g * H + j) + Rb(d, g * H + j); };
            double cp = c[size_t(j)];
            double i = activate(fs[0], clip(gate(0) + P(d, 0, j) * cp));
            double f = k.inputForget ? 1 - i : activate(fs[0], clip(gate(2) + P(d, 2, j) * cp));
            double cc = activate(fs[1], clip(gate(3)));
            double C = f * cp + i * cc;
            double o = activate(fs[0], clip(gate(1) + P(d, 1, j) * C));
            cn[size_t(j)] = C;
            hn[size_t(j)] = o * activate(fs[2], clip(C));
          }
        }
        h = hn;
        if (k.op == "LSTM") c = cn;
        for (int64_t j = 0; j < H; ++j) Y[size_t(((t * D + d) * B + b) * H + j)] = h[size_t(j)];
      }
      for (int64_t j = 0; j < H; ++j) {
        Yh[size_t((d * B + b) * H + j)] = len == 0 ? 0 : h[size_t(j)];
        Yc[size_t((d * B + b) * H + j)] = len == 0 ? 0 : c[size_t(j)];
      }
    }
  }
  if (k.layout == 0) return {Y, Yh, Yc};
  // Batch-major: Y [B, T, D, H], Y_h and Y_c [B, D, H].
  Outputs o{std::vector<double>(Y.size()), std::vector<double>(Yh.size()), std::vector<double>(Yc.size())};
  for (int64_t t = 0; t < T; ++t)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < H; ++j)
          o.y[size_t(((b * T + t) * D + d) * H + j)] = Y[size_t(((t * D + d) * B + b) * H + j)];
  for (int64_t d = 0; d < D; ++d)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < H; ++j) {
        o.yh[size_t((b * D + d) * H + j)] = Yh[size_t((d * B + b) * H + j)];
        o.yc[size_t((b * D + d) * H + j)] = Yc[size_t((d * B + b) * H + j)];
      }
  return o;
}

// The model: X (and initial_h, initial_c, sequence_lens) fed; W, R, B, P initializers.
OnnxModelBuilder model(const RecurrentCase& k, const Inputs& in) {
  int64_t D = dirsOf(k);
  OnnxModelBuilder m(14);
  auto dims = [](const Shape& s) { return std::vector<OnnxDim>(s.begin(), s.end()); };
  m.input("X", k.dtype, dims(in.x.shape()));
  m.initializer("W", in.w);
  m.initializer("R", in.r);
  if (k.bias) m.initializer("B", in.b);
  if (k.peepholes) m.initializer("P", in.p);
  if (!k.lengths.empty()) m.input("sequence_lens", DType::I32, dims(in.lens.shape()));
  if (k.initialH) m.input("initial_h", k.dtype, dims(in.h0.shape()));
  if (k.initialC) m.input("initial_c", k.dtype, dims(in.c0.shape()));
  Shape ys = k.layout == 0 ? Shape{k.T, D, k.B, k.H} : Shape{k.B, k.T, D, k.H};
  m.output("Y", k.dtype, dims(ys));
  m.output("Y_h", k.dtype, dims(in.h0.shape()));
  std::vector<std::string> outs = {"Y", "Y_h"};
  if (k.op == "LSTM") {
    m.output("Y_c", k.dtype, dims(in.c0.shape()));
    outs.push_back("Y_c");
  }
  std::vector<std::string> ins = {"X", "W", "R", k.bias ? "B" : "", k.lengths.empty() ? "" : "sequence_lens",
                                  k.initialH ? "initial_h" : ""};
  if (k.op == "LSTM") {
    ins.push_back(k.initialC ? "initial_c" : "");
    ins.push_back(k.peepholes ? "P" : "");
  }
  while (ins.back().empty()) ins.pop_back();
  auto& n = m.node(k.op, ins, outs, "cell");
  attrInt(n, "hidden_size", k.H);
  if (k.direction != "forward") attrString(n, "direction", k.direction);
  if (k.layout != 0) attrInt(n, "layout", k.layout);
  if (k.linearBeforeReset) attrInt(n, "linear_before_reset", 1);
  if (k.inputForget) attrInt(n, "input_forget", 1);
  if (k.clip) attrFloat(n, "clip", *k.clip);
  if (!k.activations.empty()) attrStrings(n, "activations", k.activations);
  if (!k.alphas.empty()) attrFloats(n, "activation_alpha", k.alphas);
  if (!k.betas.empty()) attrFloats(n, "activation_beta", k.betas);
  return m;
}

TensorMap feeds(const RecurrentCase& k, const Inputs& in) {
  TensorMap f{{"X", in.x}};
  if (k.initialH) f["initial_h"] = in.h0;
  if (k.initialC) f["initial_c"] = in.c0;
  if (!k.lengths.empty()) f["sequence_lens"] = in.lens;
  return f;
}

void expectClose(const Tensor& got, const std::vector<double>& want, double tol, const std::string& what) {
  auto g = got.toDoubles();
  ASSERT_EQ(g.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < g.size(); ++i)
    if (!(std::abs(g[i] - want[i]) <= tol * (1 + std::abs(want[i]))) && ++bad <= 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << g[i] << ", expected " << want[i];
}

std::vector<RecurrentCase> cases() {
  std::vector<RecurrentCase> v;
  {
    RecurrentCase k{"GRU bidirectional, linear_before_reset (PyTorch's export)", "GRU"};
    k.direction = "bidirectional";
    k.linearBeforeReset = true;
    k.initialH = true;
    v.push_back(k);
  }
  {
    RecurrentCase k{"GRU reverse, batch-major, clip, HardSigmoid and Softsign, no bias", "GRU"};
    k.direction = "reverse";
    k.layout = 1;
    k.bias = false;
    k.clip = 0.7f;
    k.activations = {"HardSigmoid", "Softsign"};
    k.alphas = {0.3f};
    k.betas = {0.4f};
    k.T = 4;
    v.push_back(k);
  }
  {
    RecurrentCase k{"LSTM bidirectional, batch-major, peepholes, initial states, other activations", "LSTM"};
    k.direction = "bidirectional";
    k.layout = 1;
    k.peepholes = k.initialH = k.initialC = true;
    k.activations = {"Sigmoid", "Tanh", "Tanh", "HardSigmoid", "Elu", "ScaledTanh"};
    k.alphas = {0.25f, 0.9f, 1.2f};
    k.betas = {0.45f, 0.8f};
    v.push_back(k);
  }
  {
    RecurrentCase k{"LSTM input_forget and clip, sequences of 3, 1 and 0 steps, f32", "LSTM"};
    k.B = 3;
    k.inputForget = true;
    k.clip = 0.5f;
    k.initialH = k.initialC = true;
    k.lengths = {3, 1, 0};
    k.dtype = DType::F32;
    k.tolerance = 2e-6;
    v.push_back(k);
  }
  {
    RecurrentCase k{"RNN bidirectional, one Relu for both directions", "RNN"};
    k.direction = "bidirectional";
    k.activations = {"Relu"};
    k.initialH = true;
    v.push_back(k);
  }
  {
    RecurrentCase k{"RNN reverse, Affine", "RNN"};
    k.direction = "reverse";
    k.activations = {"Affine"};
    k.alphas = {0.5f};
    k.betas = {0.1f};
    v.push_back(k);
  }
  {
    RecurrentCase k{"RNN bidirectional, ThresholdedRelu forward and LeakyRelu backward", "RNN"};
    k.direction = "bidirectional";
    k.activations = {"ThresholdedRelu", "LeakyRelu"};
    k.alphas = {0.1f, 0.2f};
    k.T = 2;
    v.push_back(k);
  }
  {
    RecurrentCase k{"GRU forward, Softplus candidate, sequences of 2 and 3 steps", "GRU"};
    k.activations = {"Sigmoid", "Softplus"};
    k.lengths = {2, 3};
    v.push_back(k);
  }
  return v;
}

TEST(OnnxRecurrent, UnrolledCellsComputeOnnxsEquations) {
  for (const RecurrentCase& k : cases()) {
    SCOPED_TRACE(k.label);
    Inputs in = makeInputs(k);
    auto session = Session::create(model(k, in).save(tempDir()), {.device = DeviceKind::Cpu});
    ASSERT_TRUE(session) << session.error().str();
    auto out = session->run(feeds(k, in));
    ASSERT_TRUE(out) << out.error().str();
    Outputs want = reference(k, in);
    expectClose(out->at("Y"), want.y, k.tolerance, "Y");
    expectClose(out->at("Y_h"), want.yh, k.tolerance, "Y_h");
    if (k.op == "LSTM") expectClose(out->at("Y_c"), want.yc, k.tolerance, "Y_c");
  }
}

// Training through the unrolled cells: the gradients of every weight (W, R, B, P) of a GRU and
// an LSTM against central differences of an mse loss on Y and Y_h.
TEST(OnnxRecurrent, GradientsOfTheUnrolledCellsMatchCentralDifferences) {
  for (RecurrentCase k : cases()) {
    if (k.dtype != DType::F64 || k.op == "RNN" || !k.lengths.empty()) continue;
    SCOPED_TRACE(k.label);
    k.T = 2;  // fewer steps: the check runs the graph twice per weight
    Inputs in = makeInputs(k);
    std::string path = model(k, in).save(tempDir());
    TestGraph t(DType::F64);
    std::vector<Value*> ins = {t.input("X", {DType::F64, in.x.shape()}, in.x.toDoubles())};
    if (k.initialH) ins.push_back(t.input("initial_h", {DType::F64, in.h0.shape()}, in.h0.toDoubles()));
    if (k.initialC) ins.push_back(t.input("initial_c", {DType::F64, in.c0.shape()}, in.c0.toDoubles()));
    auto outs = importOnnxInto(t.g, path, ins, "cell", Location{path, 0, 0, "cell"});
    ASSERT_TRUE(outs) << outs.error().error.str();
    t.params = {{"W", in.w}, {"R", in.r}};
    if (k.bias) t.params["B"] = in.b;
    if (k.peepholes) t.params["P"] = in.p;
    Value* both = t.op(OpKind::Add, {t.op(OpKind::ReduceSum, {(*outs)[0]}, attrs({{"axes", std::vector<int64_t>{0}}})),
                                     (*outs)[1]});
    t.mseLoss(both);
    checkGradients(t, 1e-6, 1e-5);
  }
}

TEST(OnnxRecurrent, WhatTheUnrollingCannotDoIsRefusedByName) {
  auto importError = [](RecurrentCase k, const std::function<void(onnx::NodeProto&)>& edit = {}) {
    Inputs in = makeInputs(k);
    OnnxModelBuilder m = model(k, in);
    if (edit) edit(*m.proto().mutable_graph()->mutable_node(0));
    auto p = importOnnxFile(m.save(tempDir()));
    return p ? std::string("imported") : p.error().error.message();
  };
  RecurrentCase reverse{"", "RNN"};
  reverse.direction = "reverse";
  reverse.lengths = {3, 2};
  EXPECT_NE(importError(reverse).find(
                "unsupported: sequence_lens shorter than the sequence in a reverse or bidirectional pass"),
            std::string::npos)
      << importError(reverse);
  RecurrentCase swish{"", "GRU"};
  swish.activations = {"Sigmoid", "Swish"};
  EXPECT_NE(importError(swish).find("unsupported: activation 'Swish'"), std::string::npos) << importError(swish);
  RecurrentCase badAlpha{"", "RNN"};
  badAlpha.activations = {"Tanh"};
  badAlpha.alphas = {0.5f};
  EXPECT_NE(importError(badAlpha).find("activation_alpha/activation_beta have 1/0 values, the activations take 0/0"),
            std::string::npos)
      << importError(badAlpha);
  RecurrentCase longSequence{"", "RNN"};
  longSequence.T = 1025;
  longSequence.B = longSequence.I = longSequence.H = 1;
  EXPECT_NE(importError(longSequence).find("unsupported: a sequence of 1025 steps (shoal unrolls recurrent layers, at most 1024 steps)"),
            std::string::npos)
      << importError(longSequence);
  // hidden_size disagreeing with R: the weights' shapes are named.
  RecurrentCase lstm{"", "LSTM"};
  std::string msg = importError(lstm, [](onnx::NodeProto& n) {
    for (auto& a : *n.mutable_attribute())
      if (a.name() == "hidden_size") a.set_i(5);
  });
  EXPECT_NE(msg.find("node 'cell' (LSTM"), std::string::npos) << msg;
  EXPECT_NE(msg.find("W is f64[1,16,3], expected f64[1,20,3]"), std::string::npos) << msg;
}

#endif  // SHOAL_HAVE_ONNX

}  // namespace
