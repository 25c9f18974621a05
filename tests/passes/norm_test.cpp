// The norm family's passes and train/eval behaviour: training-forms and fold-batchnorm as golden
// IR (with the graphs they must leave alone), fold-batchnorm's numbers against the unfolded
// program, batchnorm's running statistics over training steps (hand-computed, PyTorch's
// update) and evaluation with them, dropout's masks per seed and step, the step input, the
// persistent layout training and evaluation programs share, and a whole training run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>

#include "frontend/pipeline_loader.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "passes/program.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/cpu/interpreter.h"
#include "runtime/init.h"
#include "runtime/trainer.h"
#include "test_util.h"

namespace shoal {
namespace {

// ---- golden IR -----------------------------------------------------------------------------

struct NormGoldenCase {
  const char* file;  ///< tests/passes/golden/<file>.in.ir (and .out.ir when it changes)
  const char* pass;
  bool train;  ///< run the pass for a training step (ctx.train set)
  bool changes;
};

class NormGolden : public ::testing::TestWithParam<NormGoldenCase> {};

TEST_P(NormGolden, MatchesTheExpectedIr) {
  const NormGoldenCase& c = GetParam();
  const std::string base = test::sourcePath(std::string("tests/passes/golden/") + c.file);
  DiagnosticEngine diags;
  auto g = parseGraph(test::readFile(base + ".in.ir"), base + ".in.ir", diags);
  ASSERT_TRUE(g) << diags.render();
  const std::string before = printGraph(*g);
  PassManager pm;
  pm.add(createPass(c.pass));
  pm.setVerifyEach(true);
  pm.setCheckUnchanged(true);
  bool changed = false;
  pm.setObserver([&](std::string_view, bool ch, const Graph&) { changed = ch; });
  TrainConfig train;
  PassContext ctx;
  if (c.train) ctx.train = &train;
  auto ok = pm.run(*g, ctx);
  ASSERT_TRUE(ok) << ok.error().str();
  const std::string after = printGraph(*g);
  EXPECT_EQ(changed, c.changes);
  if (!c.changes) {
    EXPECT_EQ(after, before);
    return;
  }
  const std::string outPath = base + ".out.ir";
  if (std::getenv("SHOAL_UPDATE_GOLDEN")) test::writeFile(outPath, after);
  EXPECT_EQ(after, test::readFile(outPath)) << "golden: " << outPath;
}

INSTANTIATE_TEST_SUITE_P(
    Norm, NormGolden,
    ::testing::Values(NormGoldenCase{"fold_batchnorm/conv_bn", "fold-batchnorm", false, true},
                      NormGoldenCase{"fold_batchnorm/conv_nobias_bn_noaffine", "fold-batchnorm", false, true},
                      NormGoldenCase{"fold_batchnorm/dense_bn", "fold-batchnorm", false, true},
                      NormGoldenCase{"fold_batchnorm/conv_output_read_twice", "fold-batchnorm", false, false},
                      NormGoldenCase{"fold_batchnorm/bn_after_relu", "fold-batchnorm", false, false},
                      NormGoldenCase{"fold_batchnorm/bn_of_input", "fold-batchnorm", false, false},
                      // A training step normalises with batch statistics: nothing to fold.
                      NormGoldenCase{"fold_batchnorm/conv_bn", "fold-batchnorm", true, false},
                      NormGoldenCase{"training_forms/bn_dropout", "training-forms", true, true},
                      NormGoldenCase{"training_forms/bn_dropout", "training-forms", false, false},
                      NormGoldenCase{"training_forms/no_eval_forms", "training-forms", true, false}),
    [](const auto& info) {
      std::string name = info.param.file;
      for (char& ch : name)
        if (ch == '/') ch = '_';
      return name + (info.param.train ? "_train" : "") + "_" + std::to_string(info.index);
    });

// ---- fold-batchnorm's numbers --------------------------------------------------------------

Tensor normRandomTensor(const TensorType& t, Rng& rng, double lo, double hi) {
  Tensor x(t);
  for (int64_t i = 0; i < x.numElements(); ++i) x.set(i, lo + (hi - lo) * rng.uniform());
  return x;
}

int countNormOps(const Graph& g, OpKind kind) {
  int n = 0;
  for (const Node* node : g.nodes()) n += node->kind() == kind;
  return n;
}

std::unique_ptr<CpuExecutable> compiled(const Graph& g, const std::set<std::string>& disabled,
                                        const TrainConfig* train = nullptr) {
  CompileOptions opts;
  opts.verifyEach = true;
  opts.disabledPasses = disabled;
  opts.train = train;
  auto program = compileProgram(g.clone(), opts);
  EXPECT_TRUE(program) << program.error().str();
  if (!program) return nullptr;
  auto exe = CpuExecutable::create(std::move(*program));
  EXPECT_TRUE(exe) << exe.error().str();
  return exe ? std::move(*exe) : nullptr;
}

// Random params and running statistics (variances in [0.5, 2]), the same for both programs.
TensorMap randomPersistent(const Graph& g, Rng& rng) {
  TensorMap values;
  for (const Node* n : g.nodes()) {
    if (!isPersistentSource(n->kind()) || !isFloat(n->result()->type().dtype)) continue;
    const std::string& name = n->result()->name();
    bool variance = name.size() > 4 && name.ends_with("_var");
    values[name] = normRandomTensor(n->result()->type(), rng, variance ? 0.5 : -1.0, variance ? 2.0 : 1.0);
  }
  return values;
}

TEST(FoldBatchNorm, FoldedProgramsComputeTheUnfoldedNumbers) {
  for (const char* file : {"conv_bn", "conv_nobias_bn_noaffine", "dense_bn"}) {
    SCOPED_TRACE(file);
    const std::string path = test::sourcePath(std::string("tests/passes/golden/fold_batchnorm/") + file + ".in.ir");
    DiagnosticEngine diags;
    auto g = parseGraph(test::readFile(path), path, diags);
    ASSERT_TRUE(g) << diags.render();
    auto folded = compiled(*g, {});
    auto plain = compiled(*g, {"fold-batchnorm"});
    ASSERT_TRUE(folded && plain);
    EXPECT_EQ(countNormOps(folded->graph(), OpKind::BatchNorm), 0);
    EXPECT_EQ(countNormOps(plain->graph(), OpKind::BatchNorm), 1);
    Rng rng(5);
    TensorMap persistent = randomPersistent(*g, rng);
    ASSERT_TRUE(folded->writePersistent(persistent));
    ASSERT_TRUE(plain->writePersistent(persistent));
    for (int run = 0; run < 2; ++run) {
      TensorMap feed;
      for (const Node* n : g->inputNodes())
        feed[n->attrs().getString("name")] = normRandomTensor(n->result()->type(), rng, -2, 2);
      auto a = folded->run(feed);
      auto b = plain->run(feed);
      ASSERT_TRUE(a && b);
      for (const auto& [name, t] : *b)
        for (int64_t i = 0; i < t.numElements(); ++i)
          ASSERT_NEAR(a->at(name).at(i), t.at(i), 1e-5 * (1 + std::abs(t.at(i)))) << name << "[" << i << "]";
    }
  }
}

std::optional<Pipeline> normPipelineFrom(const std::string& text) {
  DiagnosticEngine diags;
  auto p = loadPipelineText(text, "norm.mmd", diags);
  EXPECT_TRUE(p) << diags.render();
  return p;
}

// conv -> batchnorm -> relu -> maxpool infers as one fused conv + pool kernel; training keeps
// the batchnorm (in its training form).
TEST(FoldBatchNorm, ConvBatchNormReluPoolInfersAsOneFusedKernel) {
  auto p = normPipelineFrom(
      "flowchart TD\n"
      "  x[input: shape=2x1x8x8] --> c[conv2d: filters=4 kernel=3x3] --> bn[batchnorm] --> r[relu]\n"
      "  r --> m[maxpool: size=2x2] --> out[output: name=logits]\n");
  ASSERT_TRUE(p);
  auto inference = compiled(*p->model, {});
  ASSERT_TRUE(inference);
  EXPECT_EQ(countNormOps(inference->graph(), OpKind::FusedConv2dPool), 1);
  EXPECT_EQ(countNormOps(inference->graph(), OpKind::BatchNorm), 0);
  EXPECT_EQ(countNormOps(inference->graph(), OpKind::Conv2d), 0);
  TrainConfig cfg;
  cfg.loss = "mse";
  auto step = compiled(*p->model, {}, &cfg);
  ASSERT_TRUE(step);
  EXPECT_EQ(countNormOps(step->graph(), OpKind::BatchNormTrain), 1);  // the forward only: bn.weight's gradient is
  EXPECT_EQ(countNormOps(step->graph(), OpKind::BatchNormTrainWeightGrad), 1);  // one op, not xhat, mul, sum_to
  EXPECT_EQ(countNormOps(step->graph(), OpKind::BatchNormUpdate), 1);
  EXPECT_EQ(countNormOps(step->graph(), OpKind::BatchNorm), 0);
}

// ---- batchnorm: training updates the running statistics, evaluation uses them ---------------

TEST(BatchNormTraining, RunningStatisticsFollowPyTorchAndEvaluationUsesThem) {
  auto p = normPipelineFrom(
      "flowchart TD\n"
      "  x[input: shape=4x2] --> bn[batchnorm: momentum=0.1] --> out[output: name=logits]\n");
  ASSERT_TRUE(p);
  TrainConfig cfg;
  cfg.loss = "mse";
  cfg.optimizer = "sgd";
  cfg.lr = 0.1;
  auto step = compiled(*p->model, {}, &cfg);
  auto eval = compiled(*p->model, {});
  ASSERT_TRUE(step && eval);
  step->initializeParameters(0);
  ASSERT_TRUE(eval->shareParameters(*step));

  // Step 1: channel 0 {1, 3, 5, 7} (mean 4, biased variance 5, unbiased 20/3), channel 1
  // {10, 20, 30, 40} (mean 25, biased 125, unbiased 500/3). Step 2 feeds twice those values.
  const std::vector<double> batch = {1, 10, 3, 20, 5, 30, 7, 40};
  std::vector<double> doubled;
  for (double v : batch) doubled.push_back(2 * v);
  const Tensor targets = Tensor::fromDoubles(DType::F32, {4, 2}, std::vector<double>(8, 0.5));
  const Tensor lr = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{cfg.lr});
  auto out1 = step->run({{"x", Tensor::fromDoubles(DType::F32, {4, 2}, batch)}, {"targets", targets}, {"lr", lr}});
  ASSERT_TRUE(out1) << out1.error().str();
  // The training forward normalises with the batch's own statistics (weight 1, bias 0 still).
  const double s0 = 1 / std::sqrt(5 + 1e-5), s1 = 1 / std::sqrt(125 + 1e-5);
  const std::vector<double> xhat = {-3 * s0, -15 * s1, -s0, -5 * s1, s0, 5 * s1, 3 * s0, 15 * s1};
  for (int64_t i = 0; i < 8; ++i) EXPECT_NEAR(out1->at("logits").at(i), xhat[size_t(i)], 1e-6) << i;
  TensorMap state = step->readPersistent();
  // running = 0.9 running + 0.1 batch (the variance unbiased), from mean 0 and variance 1.
  EXPECT_NEAR(state.at("bn.running_mean").at(0), 0.4, 1e-6);
  EXPECT_NEAR(state.at("bn.running_mean").at(1), 2.5, 1e-6);
  EXPECT_NEAR(state.at("bn.running_var").at(0), 0.9 + 2.0 / 3, 1e-6);
  EXPECT_NEAR(state.at("bn.running_var").at(1), 0.9 + 50.0 / 3, 1e-5);
  EXPECT_EQ(state.at("bn.num_batches_tracked").at(0), 1);

  ASSERT_TRUE(step->run({{"x", Tensor::fromDoubles(DType::F32, {4, 2}, doubled)}, {"targets", targets}, {"lr", lr}}));
  state = step->readPersistent();
  EXPECT_NEAR(state.at("bn.running_mean").at(0), 0.9 * 0.4 + 0.8, 1e-6);
  EXPECT_NEAR(state.at("bn.running_mean").at(1), 0.9 * 2.5 + 5, 1e-5);
  EXPECT_NEAR(state.at("bn.running_var").at(0), 0.9 * (0.9 + 2.0 / 3) + 8.0 / 3, 1e-5);
  EXPECT_NEAR(state.at("bn.running_var").at(1), 0.9 * (0.9 + 50.0 / 3) + 200.0 / 3, 1e-4);
  EXPECT_EQ(state.at("bn.num_batches_tracked").at(0), 2);

  // Evaluation normalises with the running statistics and the trained weight and bias, and
  // leaves the statistics alone.
  const std::vector<double> probe = {0, 1, 2, 3, -4, 5, 6, 7};
  auto y = eval->run({{"x", Tensor::fromDoubles(DType::F32, {4, 2}, probe)}});
  ASSERT_TRUE(y) << y.error().str();
  for (int64_t i = 0; i < 8; ++i) {
    const int64_t c = i % 2;
    const double want = (probe[size_t(i)] - state.at("bn.running_mean").at(c)) /
                            std::sqrt(state.at("bn.running_var").at(c) + 1e-5) * state.at("bn.weight").at(c) +
                        state.at("bn.bias").at(c);
    EXPECT_NEAR(y->at("logits").at(i), want, 1e-5) << i;
  }
  EXPECT_NE(state.at("bn.weight").at(0), 1.0);  // the step trained it
  TensorMap after = eval->readPersistent();
  EXPECT_EQ(after.at("bn.running_mean").at(0), state.at("bn.running_mean").at(0));
  EXPECT_EQ(after.at("bn.num_batches_tracked").at(0), 2);
}

// A batchnorm after the model's last param: the optimizer's state goes after the running
// statistics, so the evaluation program (which has no optimizer state) shares the same layout.
TEST(BatchNormTraining, EvaluationSharesTheLayoutWhenBatchNormComesLast) {
  auto p = normPipelineFrom(
      "flowchart TD\n"
      "  x[input: shape=6x4] --> d[dense: units=3] --> bn[batchnorm] --> out[output: name=logits]\n");
  ASSERT_TRUE(p);
  TrainConfig cfg;
  cfg.loss = "mse";
  auto step = compiled(*p->model, {}, &cfg);
  auto eval = compiled(*p->model, {});
  ASSERT_TRUE(step && eval);
  step->initializeParameters(1);
  auto shared = eval->shareParameters(*step);
  ASSERT_TRUE(shared) << shared.error().str();
  Rng rng(3);
  TensorMap feed = {{"x", normRandomTensor({DType::F32, {6, 4}}, rng, -1, 1)},
                    {"targets", normRandomTensor({DType::F32, {6, 3}}, rng, -1, 1)},
                    {"step", Tensor::fromDoubles(DType::F32, {}, std::vector<double>{1})},
                    {"lr", Tensor::fromDoubles(DType::F64, {}, std::vector<double>{cfg.lr})}};
  auto ran = step->run(feed);
  ASSERT_TRUE(ran) << ran.error().str();
  EXPECT_EQ(eval->readPersistent().at("bn.num_batches_tracked").at(0), 1);
  EXPECT_EQ(eval->readPersistent().at("bn.running_mean").at(0), step->readPersistent().at("bn.running_mean").at(0));
}

TEST(BatchNormTraining, OneValuePerChannelIsAnErrorAtTheLayer) {
  auto p = normPipelineFrom(
      "flowchart TD\n"
      "  x[input: shape=1x3] --> d[dense: units=3] --> bn[batchnorm] --> out[output: name=logits]\n");
  ASSERT_TRUE(p);
  TrainConfig cfg;
  cfg.loss = "mse";
  CompileOptions opts;
  opts.train = &cfg;
  auto program = compileProgram(p->model->clone(), opts);
  ASSERT_FALSE(program);
  EXPECT_EQ(program.error().str(),
            "norm.mmd:2:52: error: batchnorm 'bn': training needs more than one value per channel, got input f32[1,3] "
            "(as in PyTorch)");
  EXPECT_TRUE(compileProgram(p->model->clone(), CompileOptions{}));  // inference is fine
}

// ---- dropout: masks per seed and step; the step input --------------------------------------

// One training step of x -> dense -> dropout(0.5) with the given seed; the logits output is
// the dropout's result.
Tensor dropoutStep(const Graph& model, uint64_t seed, double step, const std::string& optimizer = "sgd") {
  TrainConfig cfg;
  cfg.loss = "mse";
  cfg.optimizer = optimizer;
  cfg.seed = seed;
  auto exe = compiled(model, {}, &cfg);
  EXPECT_TRUE(exe);
  if (!exe) return Tensor();
  exe->initializeParameters(0);
  Rng rng(9);
  TensorMap feed = {{"x", normRandomTensor({DType::F32, {8, 16}}, rng, -1, 1)},
                    {"targets", normRandomTensor({DType::F32, {8, 64}}, rng, -1, 1)},
                    {"step", Tensor::fromDoubles(DType::F32, {}, std::vector<double>{step})},
                    {"lr", Tensor::fromDoubles(DType::F64, {}, std::vector<double>{cfg.lr})}};
  auto out = exe->run(feed);
  EXPECT_TRUE(out) << out.error().str();
  return out ? out->at("logits") : Tensor();
}

std::vector<bool> zeros(const Tensor& t) {
  std::vector<bool> z;
  for (int64_t i = 0; i < t.numElements(); ++i) z.push_back(t.at(i) == 0);
  return z;
}

TEST(DropoutTraining, MasksAreDeterministicPerSeedAndStep) {
  auto p = normPipelineFrom(
      "flowchart TD\n"
      "  x[input: shape=8x16] --> d[dense: units=64] --> dr[dropout: rate=0.5] --> out[output: name=logits]\n");
  ASSERT_TRUE(p);
  Tensor a = dropoutStep(*p->model, 1, 1), b = dropoutStep(*p->model, 1, 1);
  Tensor c = dropoutStep(*p->model, 2, 1), d = dropoutStep(*p->model, 1, 2);
  ASSERT_EQ(a.numElements(), 512);
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.byteSize()), 0) << "one seed, one step: the same mask";
  EXPECT_NE(zeros(a), zeros(c)) << "another seed: another mask";
  EXPECT_NE(zeros(a), zeros(d)) << "another step: another mask";
  int dropped = 0;
  for (bool z : zeros(a)) dropped += z;
  EXPECT_GT(dropped, 512 * 0.4);
  EXPECT_LT(dropped, 512 * 0.6);
  // Adam reads the same step input the dropout made (one input named step).
  Tensor e = dropoutStep(*p->model, 1, 1, "adam");
  EXPECT_EQ(zeros(a), zeros(e));
  // Inference: the identity (dense's output unchanged, no zeros from dropout).
  auto inference = compiled(*p->model, {});
  ASSERT_TRUE(inference);
  EXPECT_EQ(countNormOps(inference->graph(), OpKind::DropoutTrain), 0);
}

// Rate 0 keeps every element in training too: no mask drawn, no dropout_train kernel; the
// training step's output is the dense layer's, exactly.
TEST(DropoutTraining, RateZeroTrainsAsTheIdentity) {
  auto p = normPipelineFrom(
      "flowchart TD\n"
      "  x[input: shape=8x16] --> d[dense: units=64] --> dr[dropout: rate=0] --> out[output: name=logits]\n");
  auto plain = normPipelineFrom(
      "flowchart TD\n"
      "  x[input: shape=8x16] --> d[dense: units=64] --> out[output: name=logits]\n");
  ASSERT_TRUE(p && plain);
  TrainConfig cfg;
  cfg.loss = "mse";
  CompileOptions opts;
  opts.train = &cfg;
  auto program = compileProgram(p->model->clone(), opts);
  ASSERT_TRUE(program) << program.error().str();
  EXPECT_EQ(countNormOps(*program->graph, OpKind::DropoutTrain), 0);
  EXPECT_EQ(countNormOps(*program->graph, OpKind::Dropout), 0);
  Tensor a = dropoutStep(*p->model, 1, 1), b = dropoutStep(*plain->model, 1, 1);
  ASSERT_EQ(a.numElements(), 512);
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.byteSize()), 0);
}

TEST(DropoutTraining, TheStepInputIsDeclaredOnceAndReusedByAdam) {
  auto p = normPipelineFrom(
      "flowchart TD\n"
      "  x[input: shape=8x16] --> d1[dropout: rate=0.1] --> d[dense: units=4] --> d2[dropout: rate=0.2]\n"
      "  d2 --> out[output: name=logits]\n");
  ASSERT_TRUE(p);
  for (const char* optimizer : {"sgd", "adam"}) {
    SCOPED_TRACE(optimizer);
    TrainConfig cfg;
    cfg.loss = "mse";
    cfg.optimizer = optimizer;
    CompileOptions opts;
    opts.train = &cfg;
    opts.verifyEach = true;
    auto program = compileProgram(p->model->clone(), opts);
    ASSERT_TRUE(program) << program.error().str();
    int steps = 0;
    for (const Node* n : program->graph->inputNodes()) steps += n->attrs().getString("name") == "step";
    EXPECT_EQ(steps, 1);
    EXPECT_EQ(countNormOps(*program->graph, OpKind::DropoutTrain), 3);  // two forward, one backward (d1 needs none)
  }
  // A model input named `step` of another type cannot carry the step count.
  auto bad = normPipelineFrom(
      "flowchart TD\n"
      "  x[input: shape=8x16] --> d1[dropout: rate=0.1] --> d[dense: units=4] --> out[output: name=logits]\n"
      "  s[input: shape=2 name=step] --> o2[output: name=s]\n");
  ASSERT_TRUE(bad);
  TrainConfig cfg;
  cfg.loss = "mse";
  CompileOptions opts;
  opts.train = &cfg;
  auto program = compileProgram(bad->model->clone(), opts);
  ASSERT_FALSE(program);
  EXPECT_NE(program.error().message().find("the model has an input named 'step' of type f32[2]"), std::string::npos)
      << program.error().str();
}

// ---- a whole training run on the bundled data ---------------------------------------------

// SGD (which needs no step count itself) with dropout, batchnorm in an MLP: the trainer feeds the
// step, the evaluation programs use the running statistics the steps updated, and the
// checkpoint holds them under PyTorch's names.
TEST(NormTraining, TrainsAnMlpWithBatchNormAndDropoutAndSavesTheRunningStatistics) {
  const std::string dir = test::tempDir();
  const std::string ckpt = dir + "/bn.safetensors";
  auto p = normPipelineFrom(
      "flowchart TD\n"
      "  x[input: mnist path=" +
      test::sourcePath("data/mnist-10k") +
      " batch=100] --> pre[preprocess: scale=1/255]\n"
      "  pre --> f[flatten] --> d1[dense: units=32] --> bn[batchnorm] --> r[relu] --> dr[dropout: rate=0.2]\n"
      "  dr --> d2[dense: units=10]\n"
      "  d2 --> t[train: loss=softmax_cross_entropy optimizer=sgd lr=0.1 momentum=0.9 epochs=1 validation=0.1]\n"
      "  t --> out[output: metrics=accuracy checkpoint=" +
      ckpt + "]\n");
  ASSERT_TRUE(p);
  TrainOptions opts;
  opts.device = DeviceKind::Cpu;
  auto report = trainPipeline(*p, opts);
  ASSERT_TRUE(report) << report.error().str();
  EXPECT_EQ(report->steps, 72);  // 8,000 training images, 10% held out, in batches of 100
  ASSERT_TRUE(report->testAccuracy);
  EXPECT_GT(*report->testAccuracy, 0.85);
  ASSERT_TRUE(report->epochs.at(0).validationAccuracy);
  EXPECT_GT(*report->epochs.at(0).validationAccuracy, 0.85);
  auto file = loadSafetensors(ckpt);
  ASSERT_TRUE(file) << file.error().str();
  const Tensor* count = file->find("bn.num_batches_tracked");
  ASSERT_NE(count, nullptr);
  EXPECT_EQ(count->dtype(), DType::I64);
  EXPECT_EQ(count->at(0), 72);
  for (const char* name : {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"}) {
    const Tensor* t = file->find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->shape(), Shape{32}) << name;
  }
  double meanMagnitude = 0;
  for (int64_t i = 0; i < 32; ++i) meanMagnitude += std::abs(file->find("bn.running_mean")->at(i));
  EXPECT_GT(meanMagnitude, 0.1) << "the running mean moved from zero";
}

}  // namespace
}  // namespace shoal
