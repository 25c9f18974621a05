// The training step the autodiff pass builds for the train family's settings: AdamW, SGD with
// Nesterov momentum, gradient clipping by global norm, one-hot and float targets, label
// smoothing; each step's arithmetic checked against PyTorch's update rules worked by hand, and
// a graph after fusion trained exactly like the graph before it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <regex>
#include <sstream>

#include "frontend/pipeline_loader.h"
#include "ir/parser.h"
#include "ir/printer.h"  // grad_cases.h uses printGraph without including it
#include "passes/grad_cases.h"
#include "test_util.h"

namespace shoal {
namespace {

using test::countOps;
using test::inputNamed;
using test::TestGraph;
using test::verifyMessage;

TrainConfig config(const std::string& loss, const std::string& optimizer) {
  TrainConfig c;
  c.loss = loss;
  c.optimizer = optimizer;
  c.loc = Location{"t.mmd", 5, 3, "t"};
  return c;
}

// logits = scale(w, 1) for a param w with the given values: the loss's gradient is the
// update's input directly.
std::unique_ptr<TestGraph> identityModel(const std::vector<double>& w) {
  auto t = std::make_unique<TestGraph>(DType::F64);
  Value* p = t->param("w", {int64_t(w.size())});
  t->params["w"] = Tensor::fromDoubles(DType::F64, {int64_t(w.size())}, w);
  t->output(t->op(OpKind::Scale, {p}, test::attrs({{"scale", 1.0}}), "y"), "logits");
  return t;
}

// Compiles the training step of `t` and runs `steps` steps on `feed` (plus step and lr); the
// params afterwards.
TensorMap train(TestGraph& t, const TrainConfig& cfg, TensorMap feed, int steps) {
  CompileOptions opts;
  opts.train = &cfg;
  opts.verifyEach = true;
  auto program = compileProgram(t.g.clone(), opts);
  EXPECT_TRUE(program) << program.error().str();
  if (!program) return {};
  auto exe = CpuExecutable::create(std::move(*program));
  EXPECT_TRUE(exe);
  (*exe)->initializeParameters(1);
  EXPECT_TRUE((*exe)->writePersistent(t.params));
  for (int s = 1; s <= steps; ++s) {
    feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(s)});
    feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{cfg.lr});
    auto out = (*exe)->run(feed);
    EXPECT_TRUE(out) << out.error().str();
  }
  return (*exe)->readPersistent();
}

void expectValues(const Tensor& t, const std::vector<double>& want, double rtol = 1e-12) {
  ASSERT_EQ(size_t(t.numElements()), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(t.at(int64_t(i)), want[i], rtol * std::max(1.0, std::abs(want[i]))) << "element " << i;
}

TEST(TrainStep, AdamWStepsMatchPyTorch) {
  // torch.optim.AdamW(lr=0.1, weight_decay=0.1, eps=1e-8) on w = [1, -1] with loss
  // mse(w, [0.5, 0.5]) (gradient w - 0.5), two steps, worked in float64 as PyTorch orders it.
  auto t = identityModel({1, -1});
  TrainConfig cfg = config("mse", "adamw");
  cfg.lr = 0.1, cfg.weightDecay = 0.1, cfg.eps = 1e-8;
  TensorMap feed{{"targets", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{0.5, 0.5})}};
  expectValues(train(*t, cfg, feed, 1).at("w"), {0.890000002, -0.8900000006666666});
  expectValues(train(*t, cfg, feed, 2).at("w"), {0.7824947411234726, -0.7813706462795685});
}

TEST(TrainStep, NesterovStepsMatchPyTorch) {
  // torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), same loss.
  auto t = identityModel({1, -1});
  TrainConfig cfg = config("mse", "sgd");
  cfg.lr = 0.1, cfg.momentum = 0.9, cfg.nesterov = true, cfg.weightDecay = 0.01;
  TensorMap feed{{"targets", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{0.5, 0.5})}};
  expectValues(train(*t, cfg, feed, 1).at("w"), {0.9031, -0.7131000000000001});
  expectValues(train(*t, cfg, feed, 2).at("w"), {0.78348511, -0.35894611});
}

TEST(TrainStep, ClippingScalesEveryGradientByOneGlobalFactor) {
  // logits = w + u (u broadcast), targets 0: loss (9 + 16)/2 with w = [1,2], u = [2]; gradients
  // w: [3,4], u: 7, norm sqrt(74); clip_grad_norm_(max_norm=2) scales both by 2/(norm + 1e-6),
  // then SGD lr 0.1.
  TestGraph t(DType::F64);
  Value* w = t.param("w", {2});
  Value* u = t.param("u", {1});
  t.params["w"] = Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{1, 2});
  t.params["u"] = Tensor::fromDoubles(DType::F64, {1}, std::vector<double>{2});
  t.output(t.op(OpKind::Add, {w, u}, {}, "y"), "logits");
  TrainConfig cfg = config("mse", "sgd");
  cfg.lr = 0.1, cfg.clipNorm = 2;
  {
    auto g = t.g.clone();
    ASSERT_TRUE(appendTrainingStep(*g, cfg));
    ASSERT_EQ(verifyMessage(*g), "");
    EXPECT_EQ(countOps(*g, OpKind::GlobalSumSquares), 1);
    const Value* coef = g->findValue("grads.clip_coef");
    ASSERT_NE(coef, nullptr);
    EXPECT_EQ(coef->def()->attrs().getFloat("max_norm"), 2.0);
    for (Node* n : g->nodes())
      if (n->kind() == OpKind::SgdUpdate) EXPECT_EQ(n->input(3), coef);  // (w, g, lr, grad_scale)
  }
  const double c = 2 / (std::sqrt(74.0) + 1e-6);
  TensorMap after = train(t, cfg, {{"targets", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{0, 0})}}, 1);
  expectValues(after.at("w"), {1 - 0.3 * c, 2 - 0.4 * c});
  expectValues(after.at("u"), {2 - 0.7 * c});
  // A norm below max_norm leaves the gradients as they are (factor 1): plain SGD.
  cfg.clipNorm = 100;
  after = train(t, cfg, {{"targets", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{0, 0})}}, 1);
  expectValues(after.at("w"), {1 - 0.3, 2 - 0.4});
}

TEST(TrainStep, ClippingSumsManyGradientsInGroupsOf64) {
  // 70 params: two global_sum_squares (64 + 6 gradients) added, one factor for all updates.
  TestGraph t(DType::F64);
  Value* sum = t.param("p0", {3});
  for (int i = 1; i < 70; ++i) sum = t.op(OpKind::Add, {sum, t.param("p" + std::to_string(i), {3})}, {}, "s");
  t.output(sum, "logits");
  TrainConfig cfg = config("mse", "adam");
  cfg.clipNorm = 1;
  ASSERT_TRUE(appendTrainingStep(t.g, cfg));
  ASSERT_EQ(verifyMessage(t.g), "");
  EXPECT_EQ(countOps(t.g, OpKind::GlobalSumSquares), 2);
  int clipped = 0;
  for (Node* n : t.g.nodes())
    if (n->kind() == OpKind::AdamUpdate) clipped += n->numInputs() == 7 && n->input(6)->name() == "grads.clip_coef";
  EXPECT_EQ(clipped, 70);
}

TEST(TrainStep, UpdatesReadTheRateAndAdamWFlag) {
  auto t = identityModel({1, 2});
  TrainConfig cfg = config("mse", "adamw");
  cfg.weightDecay = 0.01;
  ASSERT_TRUE(appendTrainingStep(t->g, cfg));
  const Node* lr = inputNamed(t->g, "lr");
  ASSERT_NE(lr, nullptr);
  EXPECT_EQ(lr->result()->type(), (TensorType{DType::F64, {}}));
  for (Node* n : t->g.nodes()) {
    if (n->kind() != OpKind::AdamUpdate) continue;
    EXPECT_EQ(n->input(5), lr->result());
    EXPECT_EQ(n->attrs().getInt("decoupled_weight_decay"), 1);
    EXPECT_EQ(n->attrs().getFloat("weight_decay"), 0.01);
  }
  // Plain SGD: no state, the rate as operand 2.
  auto s = identityModel({1, 2});
  ASSERT_TRUE(appendTrainingStep(s->g, config("mse", "sgd")));
  EXPECT_EQ(countOps(s->g, OpKind::State), 0);
  EXPECT_EQ(inputNamed(s->g, "step"), nullptr);
  for (Node* n : s->g.nodes())
    if (n->kind() == OpKind::SgdUpdate) EXPECT_EQ(n->input(2)->name(), "lr");
}

// logits [4,3] = x w^T for an input x: a classifier head.
std::unique_ptr<TestGraph> classifier() {
  auto t = std::make_unique<TestGraph>(DType::F64);
  Value* x = t->input("x", TensorType{DType::F64, {4, 5}}, t->draw(20, test::Fill::Uniform));
  t->output(t->op(OpKind::Dense, {x, t->param("w", {3, 5})}, {}, "d"), "logits");
  return t;
}

TEST(TrainStep, OneHotTargetsReadLabels) {
  for (const char* loss : {"mse", "bce_with_logits"}) {
    SCOPED_TRACE(loss);
    auto t = classifier();
    TrainConfig cfg = config(loss, "sgd");
    cfg.oneHotTargets = true;
    ASSERT_TRUE(appendTrainingStep(t->g, cfg));
    ASSERT_EQ(verifyMessage(t->g), "");
    EXPECT_EQ(inputNamed(t->g, "targets"), nullptr);
    ASSERT_NE(inputNamed(t->g, "labels"), nullptr);
    const Value* targets = t->g.findValue("targets");
    ASSERT_NE(targets, nullptr);
    EXPECT_EQ(targets->def()->kind(), OpKind::OneHot);
    EXPECT_EQ(targets->type(), (TensorType{DType::F64, {4, 3}}));
    EXPECT_EQ(t->g.outputValue("loss")->def()->kind(),
              std::string(loss) == "mse" ? OpKind::Mse : OpKind::BceWithLogits);
    EXPECT_NE(t->g.outputValue("accuracy"), nullptr);  // labels: accuracy comes for free
  }
  // Float targets for BCE: an input shaped like the logits, no accuracy.
  auto t = classifier();
  ASSERT_TRUE(appendTrainingStep(t->g, config("bce_with_logits", "adam")));
  ASSERT_NE(inputNamed(t->g, "targets"), nullptr);
  EXPECT_EQ(inputNamed(t->g, "targets")->result()->type(), (TensorType{DType::F64, {4, 3}}));
  EXPECT_EQ(t->g.outputValue("accuracy"), nullptr);
}

TEST(TrainStep, LabelSmoothingReachesTheLossAndItsGradient) {
  auto t = classifier();
  TrainConfig cfg = config("softmax_cross_entropy", "adam");
  cfg.labelSmoothing = 0.1;
  ASSERT_TRUE(appendTrainingStep(t->g, cfg));
  EXPECT_EQ(t->g.outputValue("loss")->def()->attrs().getFloat("label_smoothing"), 0.1);
  for (Node* n : t->g.nodes())
    if (n->kind() == OpKind::SoftmaxCrossEntropyGrad) EXPECT_EQ(n->attrs().getFloat("label_smoothing"), 0.1);
}

TEST(TrainStep, SettingsThatDoNotFitAreErrors) {
  auto expectError = [](TrainConfig cfg, const std::string& message) {
    auto t = classifier();
    auto ok = appendTrainingStep(t->g, cfg);
    ASSERT_FALSE(ok.has_value()) << message;
    EXPECT_EQ(ok.error().str(), "t.mmd:5:3: error: " + message);
  };
  TrainConfig smoothMse = config("mse", "adam");
  smoothMse.labelSmoothing = 0.1;
  expectError(smoothMse, "label smoothing applies to the cross-entropy loss, not mse");
  TrainConfig nesterov = config("softmax_cross_entropy", "sgd");
  nesterov.nesterov = true;
  expectError(nesterov, "Nesterov momentum needs optimizer sgd with a positive momentum");
  TrainConfig clip = config("softmax_cross_entropy", "sgd");
  clip.clipNorm = -1;
  expectError(clip, "clip norm must be 0 (off) or positive, got -1");
  TrainConfig hot = config("softmax_cross_entropy", "sgd");
  hot.oneHotTargets = true;
  expectError(hot, "one-hot targets are for mse and bce_with_logits (cross-entropy reads the labels)");
}

std::string trainWithoutLocations(const std::string& ir) {
  return std::regex_replace(ir, std::regex(R"( loc\([^\n]*\))"), "");
}

// The lines of an IR text, sorted, with the value the expanded input_expr of a fused
// conv-pool gets named as the pipeline names the chain it came from (`pre`).
std::vector<std::string> sortedLines(std::string ir) {
  ir = std::regex_replace(ir, std::regex(R"(%p1\.input\.e1\b)"), "%pre");
  std::vector<std::string> lines;
  std::istringstream in(ir);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  return lines;
}

// A graph after the fuse-* passes (what `shoal dump` prints) trains as the pipeline does: its
// fused ops are expanded before the backward pass, and the training step is the same program
// (the same nodes; the seed CNN's input decode, folded into its conv at inference, comes back
// under another name and after the conv's parameters' declarations), bit for bit the same
// numbers.
TEST(TrainStep, FusedGraphTrainsLikeThePipeline) {
  for (const char* example : {"examples/mnist_cnn.mmd", "examples/mlp.mmd"}) {
    SCOPED_TRACE(example);
    DiagnosticEngine diags;
    auto p = loadPipelineFile(test::sourcePath(example), diags);
    ASSERT_TRUE(p.has_value()) << diags.render();
    auto inference = compileProgram(p->model->clone(), {});
    ASSERT_TRUE(inference.has_value());
    // Both heads are dense -> relu -> dense: one fused_mlp, whose node makes the logits.
    ASSERT_GT(countOps(*inference->graph, OpKind::FusedMlp), 0);  // else this tests nothing
    CompileOptions opts;
    opts.train = &*p->train;
    auto fromPipeline = compileProgram(p->model->clone(), opts);
    auto fromFused = compileProgram(inference->graph->clone(), opts);
    ASSERT_TRUE(fromPipeline && fromFused) << (fromFused ? "" : fromFused.error().str());
    EXPECT_EQ(sortedLines(trainWithoutLocations(printGraph(*fromFused->graph))),
              sortedLines(trainWithoutLocations(printGraph(*fromPipeline->graph))));
    auto a = CpuExecutable::create(std::move(*fromPipeline));
    auto b = CpuExecutable::create(std::move(*fromFused));
    ASSERT_TRUE(a && b);
    (*a)->initializeParameters(5);
    (*b)->initializeParameters(5);
    const int64_t batch = p->model->inputNodes().front()->result()->type().shape[0];
    TensorMap feed;
    feed["x"] = Tensor(DType::U8, {batch, 1, 28, 28});
    feed["labels"] = Tensor(DType::I64, {batch});
    for (int64_t i = 0; i < feed["x"].numElements(); ++i) feed["x"].set(i, double((i * 7919) % 256));
    for (int64_t i = 0; i < batch; ++i) feed["labels"].set(i, double(i % 10));
    feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{p->train->lr});
    for (int step = 1; step <= 2; ++step) {
      feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(step)});
      auto ra = (*a)->run(feed), rb = (*b)->run(feed);
      ASSERT_TRUE(ra && rb);
      EXPECT_EQ(ra->at("loss").at(0), rb->at("loss").at(0)) << "step " << step;
    }
  }
}

// A residual block fused for inference (fuse-conv-epilogue: the conv's stores compute the add
// and relu) trains as the graph before fusion: its fused_conv2d is expanded back into conv2d
// and the program's ops (the conv's groups kept), the same numbers step for step.
TEST(TrainStep, ResidualEpilogueGraphTrainsLikeTheUnfusedGraph) {
  const char* text = R"(graph res {
  %x = input() {name="x"} : f32[4,2,6,6]
  %c.weight = param() {fan_in=18, fan_out=18, init="glorot_uniform"} : f32[2,2,3,3]
  %c.bias = param() {fan_in=0, fan_out=0, init="zeros"} : f32[2]
  %c = conv2d(%x, %c.weight, %c.bias) {padding=[1,1,1,1]} : f32[4,2,6,6]
  %s = add(%c, %x) : f32[4,2,6,6]
  %r = relu(%s) : f32[4,2,6,6]
  %f = flatten(%r) : f32[4,72]
  %fc.weight = param() {fan_in=72, fan_out=3, init="glorot_uniform"} : f32[3,72]
  %fc.bias = param() {fan_in=0, fan_out=0, init="zeros"} : f32[3]
  %logits = dense(%f, %fc.weight, %fc.bias) : f32[4,3]
  output(%logits) {name="logits"}
})";
  DiagnosticEngine diags;
  auto g = parseGraph(text, "res.ir", diags);
  ASSERT_NE(g, nullptr) << diags.render();
  auto inference = compileProgram(g->clone(), {});
  ASSERT_TRUE(inference.has_value()) << inference.error().str();
  int epilogues = 0;
  for (const Node* n : inference->graph->nodes())
    epilogues += n->kind() == OpKind::FusedConv2d && !n->attrs().getString("output_expr", "").empty();
  ASSERT_EQ(epilogues, 1);  // else this tests nothing
  TrainConfig train;
  CompileOptions opts;
  opts.train = &train;
  auto fromGraph = compileProgram(g->clone(), opts);
  auto fromFused = compileProgram(inference->graph->clone(), opts);
  ASSERT_TRUE(fromGraph && fromFused) << (fromFused ? "" : fromFused.error().str());
  auto a = CpuExecutable::create(std::move(*fromGraph));
  auto b = CpuExecutable::create(std::move(*fromFused));
  ASSERT_TRUE(a && b);
  (*a)->initializeParameters(5);
  (*b)->initializeParameters(5);
  TensorMap feed;
  feed["x"] = Tensor(DType::F32, {4, 2, 6, 6});
  for (int64_t i = 0; i < feed["x"].numElements(); ++i) feed["x"].set(i, std::sin(0.7 * double(i)));
  feed["labels"] = Tensor::fromDoubles(DType::I64, {4}, std::vector<double>{0, 2, 1, 2});
  feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{train.lr});
  for (int step = 1; step <= 3; ++step) {
    feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(step)});
    auto ra = (*a)->run(feed), rb = (*b)->run(feed);
    ASSERT_TRUE(ra && rb) << (rb ? "" : rb.error().str());
    EXPECT_EQ(ra->at("loss").at(0), rb->at("loss").at(0)) << "step " << step;
  }
  const TensorMap pa = (*a)->readPersistent(), pb = (*b)->readPersistent();
  for (const auto& [name, t] : pa) EXPECT_EQ(t.toDoubles(), pb.at(name).toDoubles()) << name;
}

}  // namespace
}  // namespace shoal
