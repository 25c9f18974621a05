// Tests for the autodiff pass: training-graph structure, errors, and finite-difference checks
// of every differentiable op's gradient rule on the CPU interpreter (float64).
#include "passes/autodiff.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <random>

#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/shape_inference.h"
#include "ir/verifier.h"
#include "passes/grad_cases.h"
#include "passes/gradients.h"
#include "passes/program.h"
#include "runtime/cpu/interpreter.h"
#include "test_util.h"

namespace shoal {
namespace {

using namespace shoal::test;

// ---- the models ------------------------------------------------------------------------

Location at(int line, const char* node) { return Location{"mlp.mmd", line, 3, node}; }

// x[4,6] -> dense(5) -> relu -> dense(3) -> logits.
std::unique_ptr<TestGraph> buildMlp(DType dtype = DType::F32) {
  auto t = std::make_unique<TestGraph>(dtype, 7);
  t->g.setName("mlp");
  Value* x = t->input("x", {dtype, {4, 6}}, at(2, "x"));
  Value* w1 = t->param("d1.weight", {5, 6}, Fill::Uniform, at(3, "d1"));
  Value* b1 = t->param("d1.bias", {5}, Fill::Uniform, at(3, "d1"));
  Value* d1 = t->op(OpKind::Dense, {x, w1, b1}, {}, "d1", at(3, "d1"));
  Value* r1 = t->op(OpKind::Relu, {d1}, {}, "d1.relu", at(3, "d1"));
  Value* w2 = t->param("d2.weight", {3, 5}, Fill::Uniform, at(4, "d2"));
  Value* b2 = t->param("d2.bias", {3}, Fill::Uniform, at(4, "d2"));
  Value* d2 = t->op(OpKind::Dense, {r1, w2, b2}, {}, "d2", at(4, "d2"));
  t->output(d2, "logits", at(4, "d2"));
  t->inputs["x"] = Tensor::fromDoubles(dtype, {4, 6}, t->draw(24, Fill::Uniform));
  return t;
}

TrainConfig trainConfig(std::string loss, std::string optimizer) {
  TrainConfig cfg;
  cfg.loss = std::move(loss);
  cfg.optimizer = std::move(optimizer);
  cfg.loc = Location{"mlp.mmd", 5, 3, "t"};
  return cfg;
}

// x[2,1,8,8] -> conv2d(4, 3x3, bias) -> relu -> maxpool 2x2 -> flatten -> dense(10) -> logits.
std::unique_ptr<TestGraph> buildCnn(DType dtype = DType::F32) {
  auto t = std::make_unique<TestGraph>(dtype, 11);
  Value* x = t->input("x", {dtype, {2, 1, 8, 8}});
  Value* w = t->param("c1.weight", {4, 1, 3, 3});
  Value* b = t->param("c1.bias", {4});
  Value* c1 = t->op(OpKind::Conv2d, {x, w, b}, {}, "c1");
  Value* r = t->op(OpKind::Relu, {c1}, {}, "c1.relu");
  Value* p = t->op(OpKind::MaxPool2d, {r}, attrs({{"kernel", Shape{2, 2}}, {"stride", Shape{2, 2}}}), "p1");
  Value* f = t->op(OpKind::Flatten, {p}, {}, "f");
  Value* dw = t->param("d1.weight", {10, 36});
  Value* db = t->param("d1.bias", {10});
  t->output(t->op(OpKind::Dense, {f, dw, db}, {}, "d1"), "logits");
  t->inputs["x"] = Tensor::fromDoubles(dtype, {2, 1, 8, 8}, t->draw(128, Fill::Uniform));
  return t;
}

// Many op kinds in one chain ending in logits [2,5]; trained with mse.
std::unique_ptr<TestGraph> buildMixed(DType dtype) {
  auto t = std::make_unique<TestGraph>(dtype, 5);
  Value* x = t->input("x", {dtype, {2, 3, 4, 4}});
  t->inputs["x"] = Tensor::fromDoubles(dtype, {2, 3, 4, 4}, t->draw(96, Fill::Uniform));
  Value* n = t->op(OpKind::Normalize, {x},
                   attrs({{"mean", std::vector<double>{0.1, 0.2, 0.3}}, {"std", std::vector<double>{0.5, 1.0, 2.0}}}));
  Value* s = t->op(OpKind::Scale, {n}, attrs({{"scale", 2.0}, {"shift", 1.0}}));
  Value* p1 = t->param("p1", {1, 3, 1, 1});
  Value* m = t->op(OpKind::Mul, {s, p1});
  Value* p2 = t->param("p2", {3, 1, 1});
  Value* a = t->op(OpKind::Add, {m, p2});
  Value* sg = t->op(OpKind::Sigmoid, {a});
  Value* ap = t->op(OpKind::AvgPool2d, {sg}, attrs({{"kernel", Shape{2, 2}}, {"stride", Shape{2, 2}}}));
  Value* p3 = t->param("p3", {1});
  Value* sb = t->op(OpKind::Sub, {ap, p3});
  Value* th = t->op(OpKind::Tanh, {sb});
  Value* f = t->op(OpKind::Flatten, {th});
  Value* p4 = t->param("p4", {5, 12});
  Value* mm = t->op(OpKind::MatMul, {f, p4}, attrs({{"transpose_b", int64_t(1)}}));
  Value* p5 = t->param("p5", {5}, Fill::AwayFromZero);
  Value* dv = t->op(OpKind::Div, {mm, p5});
  Value* sm = t->op(OpKind::Softmax, {dv});
  Value* ls = t->op(OpKind::LogSoftmax, {sm});
  t->output(ls, "logits");
  return t;
}

// ---- structure of the training graph ---------------------------------------------------

TEST(Autodiff, MlpAdamMatchesGolden) {
  auto t = buildMlp();
  ASSERT_EQ(verifyMessage(t->g), "");
  auto ok = appendTrainingStep(t->g, trainConfig("softmax_cross_entropy", "adam"));
  ASSERT_TRUE(ok) << ok.error().str();
  ASSERT_EQ(verifyMessage(t->g), "");
  std::string text = printGraph(t->g);
  std::string path = test::sourcePath("tests/passes/golden/mlp_train.ir");
  if (const char* update = std::getenv("SHOAL_UPDATE_GOLDEN"); update && std::string(update) == "1")
    test::writeFile(path, text);
  EXPECT_EQ(text, test::readFile(path)) << "golden file: " << path << " (SHOAL_UPDATE_GOLDEN=1 rewrites it)";
  // The training graph is ordinary IR: it parses back to the same text.
  DiagnosticEngine diags;
  auto parsed = parseGraph(text, "mlp_train.ir", diags);
  ASSERT_TRUE(parsed) << diags.render();
  EXPECT_EQ(printGraph(*parsed), text);
}

TEST(Autodiff, MlpAdamStructure) {
  auto t = buildMlp();
  ASSERT_TRUE(appendTrainingStep(t->g, trainConfig("softmax_cross_entropy", "adam")));
  const Graph& g = t->g;
  const Node* labels = inputNamed(g, "labels");
  ASSERT_NE(labels, nullptr);
  EXPECT_EQ(labels->result()->type(), (TensorType{DType::I64, {4}}));
  const Node* step = inputNamed(g, "step");
  ASSERT_NE(step, nullptr);
  EXPECT_EQ(step->result()->type(), (TensorType{DType::F32, {}}));
  ASSERT_NE(g.outputValue("logits"), nullptr);
  ASSERT_NE(g.outputValue("loss"), nullptr);
  EXPECT_EQ(g.outputValue("loss")->def()->kind(), OpKind::SoftmaxCrossEntropy);
  ASSERT_NE(g.outputValue("accuracy"), nullptr);
  EXPECT_EQ(g.outputValue("accuracy")->def()->kind(), OpKind::Accuracy);
  EXPECT_EQ(countOps(g, OpKind::State), 8);
  EXPECT_EQ(countOps(g, OpKind::AdamUpdate), 4);
  // The updates come last, in param order, each reading its own gradient and moments.
  const auto& nodes = g.nodes();
  std::vector<std::string> order;
  for (size_t i = nodes.size() - 4; i < nodes.size(); ++i) {
    const Node* n = nodes[i];
    ASSERT_EQ(n->kind(), OpKind::AdamUpdate);
    std::string p = n->input(0)->name();
    order.push_back(p);
    EXPECT_EQ(n->input(1)->name(), p + ".grad");
    EXPECT_EQ(n->input(2)->name(), p + ".m");
    EXPECT_EQ(n->input(3)->name(), p + ".v");
    EXPECT_EQ(n->input(4), step->result());
    EXPECT_EQ(n->attrs().getFloat("eps"), 1e-7);
    EXPECT_EQ(n->loc().node, p.substr(0, 2));  // the layer the param belongs to
  }
  EXPECT_EQ(order, (std::vector<std::string>{"d1.weight", "d1.bias", "d2.weight", "d2.bias"}));
  // No gradient for the input, dense rules as in the op table.
  EXPECT_EQ(g.findValue("x.grad"), nullptr);
  const Value* dw1 = g.findValue("d1.weight.grad");
  ASSERT_NE(dw1, nullptr);
  EXPECT_EQ(dw1->def()->kind(), OpKind::MatMul);
  EXPECT_EQ(dw1->def()->attrs().getInt("transpose_a"), 1);
  EXPECT_EQ(dw1->type(), (TensorType{DType::F32, {5, 6}}));
  EXPECT_EQ(dw1->def()->loc().node, "d1");
  const Value* db1 = g.findValue("d1.bias.grad");
  ASSERT_NE(db1, nullptr);
  EXPECT_EQ(db1->def()->kind(), OpKind::SumTo);
  EXPECT_EQ(g.findValue("d1.relu.grad")->def()->kind(), OpKind::MatMul);
  EXPECT_EQ(g.findValue("d1.grad")->def()->kind(), OpKind::ReluGrad);
  const Value* seed = g.findValue("loss.grad");
  ASSERT_NE(seed, nullptr);
  EXPECT_EQ(seed->def()->attrs().getTensor("value"), (TensorLiteral{{}, {1.0}}));
  // The state block follows the last param directly: d1.weight.m, d1.weight.v, d1.bias.m, ...
  size_t lastParam = g.indexOf(g.findValue("d2.bias")->def());
  std::vector<std::string> states;
  for (size_t i = lastParam + 1; i < nodes.size() && nodes[i]->kind() == OpKind::State; ++i)
    states.push_back(nodes[i]->result()->name());
  EXPECT_EQ(states, (std::vector<std::string>{"d1.weight.m", "d1.weight.v", "d1.bias.m", "d1.bias.v", "d2.weight.m",
                                              "d2.weight.v", "d2.bias.m", "d2.bias.v"}));
}

TEST(Autodiff, PassUsesTrainConfigAndIsANoOpWithoutOne) {
  auto pass = createAutodiffPass();
  EXPECT_EQ(pass->name(), "autodiff");
  auto t = buildMlp();
  std::string before = printGraph(t->g);
  PassContext none;
  auto unchanged = pass->run(t->g, none);
  ASSERT_TRUE(unchanged);
  EXPECT_FALSE(*unchanged);
  EXPECT_EQ(printGraph(t->g), before);

  TrainConfig cfg = trainConfig("mse", "sgd");
  PassContext ctx;
  ctx.train = &cfg;
  auto changed = pass->run(t->g, ctx);
  ASSERT_TRUE(changed) << changed.error().str();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(verifyMessage(t->g), "");
  const Node* targets = inputNamed(t->g, "targets");
  ASSERT_NE(targets, nullptr);
  EXPECT_EQ(targets->result()->type(), (TensorType{DType::F32, {4, 3}}));
  EXPECT_EQ(inputNamed(t->g, "step"), nullptr);
  EXPECT_EQ(t->g.outputValue("accuracy"), nullptr);
  EXPECT_EQ(t->g.outputValue("loss")->def()->kind(), OpKind::Mse);
  EXPECT_EQ(countOps(t->g, OpKind::State), 0);  // plain SGD keeps no state
  EXPECT_EQ(countOps(t->g, OpKind::SgdUpdate), 4);
}

TEST(Autodiff, CnnSgdMomentum) {
  auto t = buildCnn();
  TrainConfig cfg = trainConfig("softmax_cross_entropy", "sgd");
  cfg.momentum = 0.9;
  cfg.lr = 0.01;
  auto ok = appendTrainingStep(t->g, cfg);
  ASSERT_TRUE(ok) << ok.error().str();
  ASSERT_EQ(verifyMessage(t->g), "");
  const Graph& g = t->g;
  EXPECT_EQ(countOps(g, OpKind::State), 4);
  EXPECT_EQ(countOps(g, OpKind::SgdUpdate), 0);
  EXPECT_EQ(countOps(g, OpKind::SgdMomentumUpdate), 4);
  const Node* lr = inputNamed(g, "lr");
  ASSERT_NE(lr, nullptr);
  EXPECT_EQ(lr->result()->type(), (TensorType{DType::F64, {}}));
  for (Node* n : g.nodes()) {
    if (n->kind() != OpKind::SgdMomentumUpdate) continue;
    ASSERT_EQ(n->numInputs(), 4u);
    EXPECT_EQ(n->input(2)->name(), n->input(0)->name() + ".velocity");
    EXPECT_EQ(n->input(3), lr->result());  // the rate is fed each step, not a literal
    EXPECT_EQ(n->attrs().getFloat("momentum"), 0.9);
    EXPECT_EQ(n->attrs().getInt("nesterov"), 0);
  }
  // Conv bias: sum_to [1,O,1,1], reshape [O].
  const Value* db = g.findValue("c1.bias.grad");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->def()->kind(), OpKind::Reshape);
  EXPECT_EQ(db->def()->input(0)->def()->kind(), OpKind::SumTo);
  EXPECT_EQ(db->def()->input(0)->def()->attrs().getInts("shape"), (Shape{1, 4, 1, 1}));
  const Value* dw = g.findValue("c1.weight.grad");
  ASSERT_NE(dw, nullptr);
  EXPECT_EQ(dw->def()->kind(), OpKind::Conv2dBackwardWeight);
  EXPECT_EQ(dw->def()->attrs().getInts("weight_shape"), (Shape{4, 1, 3, 3}));
  // The image needs no gradient: no conv2d_backward_data.
  EXPECT_EQ(countOps(g, OpKind::Conv2dBackwardData), 0);
  EXPECT_EQ(g.findValue("p1.grad")->def()->kind(), OpKind::Reshape);
  EXPECT_EQ(g.findValue("c1.relu.grad")->def()->kind(), OpKind::MaxPool2dGrad);
}

TEST(Autodiff, MixedOpsWithMse) {
  auto t = buildMixed(DType::F32);
  ASSERT_EQ(verifyMessage(t->g), "");
  auto ok = appendTrainingStep(t->g, trainConfig("mse", "adam"));
  ASSERT_TRUE(ok) << ok.error().str();
  ASSERT_EQ(verifyMessage(t->g), "");
  EXPECT_EQ(countOps(t->g, OpKind::AdamUpdate), 5);
  EXPECT_EQ(countOps(t->g, OpKind::SoftmaxGrad), 1);
  EXPECT_EQ(countOps(t->g, OpKind::LogSoftmaxGrad), 1);
  // x is an input: normalize and scale get no gradient ops.
  EXPECT_EQ(t->g.findValue("x.grad"), nullptr);
  EXPECT_EQ(t->g.findValue("normalize.grad"), nullptr);
}

TEST(Autodiff, SharedValuesSumTheirGradients) {
  TestGraph t;
  Value* p = t.param("p", {2, 3});
  Value* sq = t.op(OpKind::Mul, {p, p}, {}, "sq");
  Value* sum = t.op(OpKind::Add, {sq, p}, {}, "sum");
  t.mseLoss(sum);
  ASSERT_TRUE(appendGradients(t.g, "loss"));
  ASSERT_EQ(verifyMessage(t.g), "");
  Value* grad = t.g.outputValue("grad:p");
  ASSERT_NE(grad, nullptr);
  EXPECT_EQ(grad->name(), "p.grad");
  EXPECT_EQ(grad->def()->kind(), OpKind::Add);
  // Three uses of p: two adds (plus the forward one); the partial sums move aside.
  EXPECT_EQ(countOps(t.g, OpKind::Add), 3);
  EXPECT_EQ(grad->def()->input(0)->name(), "p.grad.partial.1");
  EXPECT_EQ(grad->def()->input(0)->def()->input(0)->name(), "sum.grad");  // add passes dy through
  EXPECT_EQ(grad->def()->input(0)->def()->input(1)->name(), "p.grad.partial");
  EXPECT_EQ(grad->def()->input(1)->name(), "p.grad.1");
}

TEST(Autodiff, UnusedParamGetsNoUpdate) {
  auto t = buildMlp();
  t->param("unused.weight", {3, 3});
  auto ok = appendTrainingStep(t->g, trainConfig("softmax_cross_entropy", "adam"));
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_EQ(countOps(t->g, OpKind::AdamUpdate), 4);
  EXPECT_EQ(t->g.findValue("unused.weight.m"), nullptr);
  EXPECT_EQ(t->g.findValue("unused.weight.grad"), nullptr);
}

// ---- errors ----------------------------------------------------------------------------

TEST(AutodiffErrors, NoLogitsOutput) {
  TestGraph t(DType::F32);
  Value* p = t.param("w", {2, 3});
  t.output(t.op(OpKind::Relu, {p}), "probs");
  auto ok = appendTrainingStep(t.g, trainConfig("softmax_cross_entropy", "adam"));
  ASSERT_FALSE(ok);
  EXPECT_EQ(ok.error().message(), "the model has no output named 'logits' to train");
  EXPECT_EQ(ok.error().location().line, 5);
}

TEST(AutodiffErrors, CrossEntropyNeedsRank2Logits) {
  TestGraph t(DType::F32);
  Value* p = t.param("w", {2, 3, 4});
  t.output(t.op(OpKind::Relu, {p}, {}, "r", Location{"m.mmd", 9, 4, "r"}), "logits");
  std::string before = printGraph(t.g);
  auto ok = appendTrainingStep(t.g, trainConfig("softmax_cross_entropy", "adam"));
  ASSERT_FALSE(ok);
  EXPECT_EQ(ok.error().str(),
            "m.mmd:9:4: error: softmax_cross_entropy needs logits of rank 2 ([batch, classes]), got f32[2,3,4]");
  EXPECT_EQ(printGraph(t.g), before);  // errors leave the graph alone
  // mse takes any shape.
  EXPECT_TRUE(appendTrainingStep(t.g, trainConfig("mse", "sgd")));
}

TEST(AutodiffErrors, UnknownLossAndOptimizer) {
  auto t = buildMlp();
  auto bad = appendTrainingStep(t->g, trainConfig("hinge", "adam"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().str(), "mlp.mmd:5:3: error: unknown loss 'hinge' (expected softmax_cross_entropy, mse or bce_with_logits)");
  bad = appendTrainingStep(t->g, trainConfig("mse", "rmsprop"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().str(), "mlp.mmd:5:3: error: unknown optimizer 'rmsprop' (expected adam, adamw or sgd)");
}

TEST(AutodiffErrors, NoParameters) {
  TestGraph t(DType::F32);
  Value* x = t.input("x", {DType::F32, {2, 3}});
  t.output(t.op(OpKind::Relu, {x}), "logits");
  auto ok = appendTrainingStep(t.g, trainConfig("softmax_cross_entropy", "sgd"));
  ASSERT_FALSE(ok);
  EXPECT_EQ(ok.error().str(), "mlp.mmd:5:3: error: the model has no parameters to train");
}

TEST(AutodiffErrors, ParamsThatDoNotReachTheLoss) {
  TestGraph t(DType::F32);
  Value* x = t.input("x", {DType::F32, {2, 3}});
  t.param("w", {3, 3});
  t.output(t.op(OpKind::Relu, {x}), "logits");
  auto ok = appendTrainingStep(t.g, trainConfig("softmax_cross_entropy", "sgd"));
  ASSERT_FALSE(ok);
  EXPECT_EQ(ok.error().message(), "no parameter of the model influences the loss");
}

TEST(AutodiffErrors, NameClash) {
  auto t = buildMlp();
  t->input("labels", {DType::I64, {4}});
  auto ok = appendTrainingStep(t->g, trainConfig("softmax_cross_entropy", "sgd"));
  ASSERT_FALSE(ok);
  EXPECT_EQ(ok.error().message(), "the model already has an input named 'labels'");
}

TEST(AutodiffErrors, NonDifferentiableOpOnThePath) {
  TestGraph t(DType::F32);
  Value* p = t.param("w", {2, 3});
  Value* q = t.param("q", {2, 3});
  Value* rg = t.op(OpKind::ReluGrad, {p, q}, {}, "rg", Location{"m.mmd", 3, 1, "rg"});
  t.output(rg, "logits");
  auto ok = appendTrainingStep(t.g, trainConfig("softmax_cross_entropy", "sgd"));
  ASSERT_FALSE(ok);
  EXPECT_EQ(ok.error().str(),
            "m.mmd:3:1: error: relu_grad 'rg': cannot differentiate the loss %loss through this op: it has no gradient "
            "rule");
}

TEST(AutodiffErrors, LossMustBeAScalar) {
  TestGraph t;
  Value* p = t.param("w", {2, 3});
  t.output(t.op(OpKind::Relu, {p}, {}, "r"), "loss");
  auto ok = appendGradients(t.g, "loss");
  ASSERT_FALSE(ok);
  EXPECT_EQ(ok.error().message(), "the loss %r must be a float scalar, got f64[2,3]");
  EXPECT_FALSE(appendGradients(t.g, "nothing"));
}

SHOAL_GRAD_CASES(Cast, OpKind::Cast) {
  // f64 -> f32 -> f64 on dyadic values with a quadratic loss: every step is exact, so a
  // large h loses nothing to f32 rounding.
  return {
      {"f64 to f32 and back",
       [](TestGraph& t) {
         Value* c = t.op(OpKind::Cast, {t.param("p", {2, 4}, Fill::Dyadic)}, attrs({{"dtype", std::string("f32")}}));
         t.mseLoss(t.op(OpKind::Cast, {c}, attrs({{"dtype", std::string("f64")}})), Fill::Dyadic);
       },
       1.0 / 64}};
  return {};
}

SHOAL_GRAD_CASES(Scale, OpKind::Scale) {
  return {{"scale and shift", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Scale, {t.param("p", {2, 3})}, attrs({{"scale", 1.5}, {"shift", 0.25}})));
           }}};
  return {};
}

SHOAL_GRAD_CASES(Normalize, OpKind::Normalize) {
  return {{"per channel",
           [](TestGraph& t) {
             t.mseLoss(t.op(
                 OpKind::Normalize, {t.param("p", {2, 3, 2, 2})},
                 attrs({{"mean", std::vector<double>{0.1, 0.2, 0.3}}, {"std", std::vector<double>{0.5, 2.0, 4.0}}})));
           }},
          {"one std", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Normalize, {t.param("p", {2, 3})},
                            attrs({{"mean", std::vector<double>{0.5}}, {"std", std::vector<double>{0.25}}})));
           }}};
  return {};
}

SHOAL_GRAD_CASES(Flatten, OpKind::Flatten) {
  return {{"axis 1", [](TestGraph& t) { t.mseLoss(t.op(OpKind::Flatten, {t.param("p", {2, 3, 2})})); }}};
  return {};
}

SHOAL_GRAD_CASES(Reshape, OpKind::Reshape) {
  return {{"with -1", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Reshape, {t.param("p", {2, 6})}, attrs({{"shape", Shape{3, -1}}})));
           }}};
  return {};
}

SHOAL_GRAD_CASES(Dense, OpKind::Dense) {
  return {{"with bias",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Dense, {t.param("x", {3, 4}), t.param("w", {5, 4}), t.param("b", {5})}));
           }},
          {"no bias", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Dense, {t.param("x", {2, 3}), t.param("w", {4, 3})}));
           }}};
  return {};
}

SHOAL_GRAD_CASES(MatMul, OpKind::MatMul) {
  {
    std::vector<GradCase> cases;
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        cases.push_back({"transpose_a=" + std::to_string(ta) + " transpose_b=" + std::to_string(tb), [=](TestGraph& t) {
                           // op(A) is [2,3], op(B) is [3,4].
                           Value* a = t.param("a", ta ? Shape{3, 2} : Shape{2, 3});
                           Value* b = t.param("b", tb ? Shape{4, 3} : Shape{3, 4});
                           t.mseLoss(t.op(OpKind::MatMul, {a, b},
                                          attrs({{"transpose_a", int64_t(ta)}, {"transpose_b", int64_t(tb)}})));
                         }});
    return cases;
  }
  return {};
}

SHOAL_GRAD_CASES(Relu, OpKind::Relu) {
  return {{"away from 0", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Relu, {t.param("p", {3, 4}, Fill::AwayFromZero)}));
           }}};
  return {};
}

SHOAL_GRAD_CASES(Sigmoid, OpKind::Sigmoid) {
  return {{"", [](TestGraph& t) { t.mseLoss(t.op(OpKind::Sigmoid, {t.param("p", {3, 4})})); }}};
  return {};
}

SHOAL_GRAD_CASES(Tanh, OpKind::Tanh) {
  return {{"", [](TestGraph& t) { t.mseLoss(t.op(OpKind::Tanh, {t.param("p", {3, 4})})); }}};
  return {};
}

SHOAL_GRAD_CASES(Softplus, OpKind::Softplus) {
  return {{"",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Softplus, {t.param("p", {3, 4})}));
           }},
          {"above the threshold", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Softplus,
                            {t.op(OpKind::Scale, {t.param("p", {3, 4})}, attrs({{"scale", 1.0}, {"shift", 25.0}}))}));
           }}};
  return {};
}

SHOAL_GRAD_CASES(Neg, OpKind::Neg) {
  return {{"", [](TestGraph& t) { t.mseLoss(t.op(OpKind::Neg, {t.param("p", {3, 4})})); }}};
  return {};
}

SHOAL_GRAD_CASES(Add, OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div) {
  return binaryCases(kind);
  return {};
}

SHOAL_GRAD_CASES(SumTo, OpKind::SumTo) {
  return {{"[2,3,4] to [3,1]",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::SumTo, {t.param("p", {2, 3, 4})}, attrs({{"shape", Shape{3, 1}}})));
           }},
          {"[2,3] to [3]", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::SumTo, {t.param("p", {2, 3})}, attrs({{"shape", Shape{3}}})));
           }}};
  return {};
}

SHOAL_GRAD_CASES(Softmax, OpKind::Softmax) {
  return {{"rank 2",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Softmax, {t.param("p", {3, 5})}));
           }},
          {"rank 3", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Softmax, {t.param("p", {2, 2, 4})}));
           }},
          {"rank 3, middle axis", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Softmax, {t.param("p", {2, 3, 4})}, attrs({{"axis", int64_t(1)}})));
           }}};
  return {};
}

SHOAL_GRAD_CASES(LogSoftmax, OpKind::LogSoftmax) {
  return {{"rank 2", [](TestGraph& t) { t.mseLoss(t.op(OpKind::LogSoftmax, {t.param("p", {3, 5})})); }},
          {"rank 2, first axis", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::LogSoftmax, {t.param("p", {3, 5})}, attrs({{"axis", int64_t(0)}})));
           }}};
  return {};
}

SHOAL_GRAD_CASES(SoftmaxCrossEntropy, OpKind::SoftmaxCrossEntropy) {
  return {{"labels", [](TestGraph& t) {
             Value* labels = t.constant("labels", {4}, {2, 0, 4, 2}, DType::I64);
             t.output(t.op(OpKind::SoftmaxCrossEntropy, {t.param("logits", {4, 5}), labels}, {}, "loss"), "loss");
           }},
          {"label smoothing 0.2", [](TestGraph& t) {
             Value* labels = t.constant("labels", {4}, {2, 0, 4, 2}, DType::I64);
             t.output(t.op(OpKind::SoftmaxCrossEntropy, {t.param("logits", {4, 5}), labels},
                           attrs({{"label_smoothing", 0.2}}), "loss"),
                      "loss");
           }}};
  return {};
}

SHOAL_GRAD_CASES(Mse, OpKind::Mse) {
  return {{"both operands", [](TestGraph& t) {
             t.output(t.op(OpKind::Mse, {t.param("pred", {3, 4}), t.param("target", {3, 4})}, {}, "loss"), "loss");
           }}};
  return {};
}

// Every registered case of `kind`.
std::vector<GradCase> gradCases(OpKind kind) {
  auto* fn = GradCaseRegistry::find(kind);
  return fn ? fn(kind) : std::vector<GradCase>{};
}

TEST(AutodiffGradCheck, EveryDifferentiableOpHasACase) {
  for (OpKind k : allOps())
    EXPECT_EQ(opInfo(k).differentiable(), !gradCases(k).empty())
        << opName(k)
        << (opInfo(k).differentiable() ? " is differentiable but has no finite-difference case"
                                       : " has no gradient rule but has cases");
}

// ir/ops.def's gradient summary and the rules registered in passes/ agree.
TEST(AutodiffGradCheck, EveryDifferentiableOpHasARegisteredRule) {
  for (OpKind k : allOps())
    EXPECT_EQ(opInfo(k).differentiable(), findGradientRule(k) != nullptr)
        << opName(k)
        << (opInfo(k).differentiable() ? ": ops.def summarises a gradient, none is registered"
                                       : ": a rule is registered, ops.def has no gradient summary");
}

std::vector<OpKind> differentiableOps() {
  std::vector<OpKind> out;
  for (OpKind k : allOps())
    if (opInfo(k).differentiable()) out.push_back(k);
  return out;
}

class OpGradCheck : public ::testing::TestWithParam<OpKind> {};

TEST_P(OpGradCheck, MatchesCentralDifferences) {
  for (const GradCase& c : gradCases(GetParam())) {
    SCOPED_TRACE(std::string(opName(GetParam())) + " " + c.label);
    TestGraph t(DType::F64, 1234);
    c.build(t);
    checkGradients(t, c.h);
  }
}

INSTANTIATE_TEST_SUITE_P(Autodiff, OpGradCheck, ::testing::ValuesIn(differentiableOps()),
                         [](const ::testing::TestParamInfo<OpKind>& info) {
                           std::string name(opName(info.param));
                           std::replace(name.begin(), name.end(), '_', 'X');
                           return name;
                         });

TEST(AutodiffGradCheck, SharedValues) {
  TestGraph t;
  Value* p = t.param("p", {2, 3});
  Value* sq = t.op(OpKind::Mul, {p, p});
  t.mseLoss(t.op(OpKind::Add, {t.op(OpKind::Tanh, {sq}), p}));
  checkGradients(t);
}

TEST(AutodiffGradCheck, WholeCnnWithCrossEntropy) {
  auto t = buildCnn(DType::F64);
  Value* logits = t->g.outputValue("logits");
  Value* labels = t->constant("labels", {2}, {3, 7}, DType::I64);
  t->output(t->op(OpKind::SoftmaxCrossEntropy, {logits, labels}, {}, "loss"), "loss");
  checkGradients(*t);
}

TEST(AutodiffGradCheck, MixedChain) {
  auto t = buildMixed(DType::F64);
  t->mseLoss(t->g.outputValue("logits"));
  checkGradients(*t);
}

// ---- the optimizer step ----------------------------------------------------------------

// Gradients of the MLP's cross-entropy loss (f64) by appendGradients, by param name.
TensorMap mlpGradients(TestGraph& t, const TensorMap& labelsInput) {
  auto g = t.g.clone();
  Value* labels =
      g->addNode(OpKind::Input, {}, attrs({{"name", std::string("labels")}}), {{"labels", {DType::I64, {4}}}})
          ->result();
  Node* loss =
      g->addNode(OpKind::SoftmaxCrossEntropy, {g->outputValue("logits"), labels}, {}, {{"loss", {DType::F64, {}}}});
  g->addNode(OpKind::Output, {loss->result()}, attrs({{"name", std::string("loss")}}), {});
  EXPECT_TRUE(appendGradients(*g, "loss"));
  TensorMap inputs = t.inputs;
  inputs.insert(labelsInput.begin(), labelsInput.end());
  TensorMap persistent;
  for (auto& [name, value] : t.params) persistent[name] = value.clone();
  auto out = evaluateGraph(*g, inputs, persistent, 1);
  EXPECT_TRUE(out) << out.error().str();
  TensorMap grads;
  if (out)
    for (auto& [name, value] : *out)
      if (name.starts_with("grad:")) grads[name.substr(5)] = value;
  return grads;
}

TEST(AutodiffTrainingStep, SgdAndAdamStepsFollowTheGradient) {
  TensorMap labels{{"labels", Tensor::fromDoubles(DType::I64, {4}, std::vector<double>{0, 2, 1, 2})}};
  for (const char* optimizer : {"sgd", "adam"}) {
    SCOPED_TRACE(optimizer);
    auto t = buildMlp(DType::F64);
    TensorMap grads = mlpGradients(*t, labels);
    ASSERT_EQ(grads.size(), 4u);
    TrainConfig cfg = trainConfig("softmax_cross_entropy", optimizer);
    cfg.lr = 0.5;
    ASSERT_TRUE(appendTrainingStep(t->g, cfg));
    TensorMap inputs = t->inputs;
    inputs.insert(labels.begin(), labels.end());
    inputs["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{1});
    inputs["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{cfg.lr});
    TensorMap persistent;
    for (auto& [name, value] : t->params) persistent[name] = value.clone();
    auto out = evaluateGraph(t->g, inputs, persistent, 1);
    ASSERT_TRUE(out) << out.error().str();
    ASSERT_TRUE(out->count("loss") && out->count("accuracy") && out->count("logits"));
    for (auto& [name, g] : grads) {
      const Tensor& before = t->params.at(name);
      const Tensor& after = persistent.at(name);
      for (int64_t j = 0; j < g.numElements(); ++j) {
        double step = before.at(j) - after.at(j);
        // SGD: w -= lr g. Adam's first step: m^ = g, v^ = g^2, so w -= lr g / (|g| + eps).
        double want =
            std::string(optimizer) == "sgd" ? cfg.lr * g.at(j) : cfg.lr * g.at(j) / (std::abs(g.at(j)) + cfg.eps);
        EXPECT_NEAR(step, want, 1e-12 * std::max(1.0, std::abs(want))) << name << "[" << j << "]";
      }
    }
  }
}

// The whole training pipeline (infer-shapes ... autodiff, dce, schedule, memory plan) on the
// interpreter: repeated steps on one batch drive the loss down.
TEST(AutodiffTrainingStep, CompiledCnnStepsLowerTheLoss) {
  for (const char* optimizer : {"adam", "sgd"}) {
    SCOPED_TRACE(optimizer);
    auto t = buildCnn(DType::F32);
    TrainConfig cfg = trainConfig("softmax_cross_entropy", optimizer);
    cfg.lr = std::string(optimizer) == "adam" ? 0.01 : 0.1;
    cfg.momentum = std::string(optimizer) == "sgd" ? 0.9 : 0.0;
    CompileOptions opts;
    opts.train = &cfg;
    opts.verifyEach = true;
    auto program = compileProgram(t->g.clone(), opts);
    ASSERT_TRUE(program) << program.error().str();
    auto exe = CpuExecutable::create(std::move(*program));
    ASSERT_TRUE(exe) << exe.error().str();
    (*exe)->initializeParameters(3);  // state to zero
    ASSERT_TRUE((*exe)->writePersistent(t->params));
    TensorMap inputs = t->inputs;
    inputs["labels"] = Tensor::fromDoubles(DType::I64, {2}, std::vector<double>{3, 7});
    inputs["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{cfg.lr});
    double first = 0, last = 0;
    for (int step = 1; step <= 30; ++step) {
      inputs["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(step)});
      auto out = (*exe)->run(inputs);
      ASSERT_TRUE(out) << out.error().str();
      last = out->at("loss").at(0);
      if (step == 1) first = last;
    }
    EXPECT_GT(first, 1.0);  // about log(10) at the start
    EXPECT_LT(last, 0.1 * first);
  }
}

}  // namespace
}  // namespace shoal
