// The training family through the public API: learning-rate schedules (PyTorch's closed
// forms, evaluated per optimizer step), AdamW, Nesterov, clipping and label smoothing in
// TrainingOptions, mean squared error and binary cross-entropy from a dataset of targets or
// from class labels, and evaluate() computing the loss the step minimises.
#include <gtest/gtest.h>
#include <shoal/shoal.h>

#include <cmath>
#include <cstring>
#include <numbers>

#include "runtime/checkpoint/safetensors.h"
#include "test_util.h"

namespace {

using shoal::LrSchedule;
using shoal::ScheduleKind;
using shoal::Tensor;
using shoal::TensorMap;

void expectRates(const LrSchedule& s, double base, const std::vector<double>& want) {
  for (size_t t = 0; t < want.size(); ++t) EXPECT_NEAR(s.rate(base, int64_t(t)), want[t], 1e-15) << "step " << t;
}

TEST(LrSchedule, StepLR) {
  // torch.optim.lr_scheduler.StepLR(step_size=2, gamma=0.5) from 0.1.
  expectRates({.kind = ScheduleKind::Step, .stepSize = 2, .gamma = 0.5}, 0.1, {0.1, 0.1, 0.05, 0.05, 0.025, 0.025});
}

TEST(LrSchedule, CosineAnnealingLR) {
  // CosineAnnealingLR(T_max=4, eta_min=0.01) from 0.1: 0.01 + 0.09 (1 + cos(pi t / 4)) / 2; past
  // T_max it rises again, as PyTorch's.
  const double c = std::cos(std::numbers::pi / 4);
  expectRates({.kind = ScheduleKind::Cosine, .tMax = 4, .etaMin = 0.01}, 0.1,
              {0.1, 0.01 + 0.045 * (1 + c), 0.055, 0.01 + 0.045 * (1 - c), 0.01, 0.01 + 0.045 * (1 - c)});
}

TEST(LrSchedule, LinearWarmupThenTheSchedule) {
  // LinearLR(start_factor=1/4, total_iters=3): 0.025, 0.05, 0.075, 0.1; then the base rate.
  expectRates({.warmup = 4}, 0.1, {0.025, 0.05, 0.075, 0.1, 0.1, 0.1});
  // Two warm-up steps, then StepLR(step_size=1, gamma=0.5) from its own step 0
  // (SequentialLR with milestone 2).
  expectRates({.kind = ScheduleKind::Step, .stepSize = 1, .gamma = 0.5, .warmup = 2}, 0.1,
              {0.05, 0.1, 0.1, 0.05, 0.025});
}

// x [N, 2] -> dense(3) -> logits: a linear classifier of three classes.
shoal::Model linearModel(int64_t batch) {
  shoal::GraphBuilder b("linear");
  auto x = b.input("x", shoal::f32({batch, 2}));
  b.output("logits", b.dense(x, 3, {.name = "fc"}));
  auto m = b.build();
  EXPECT_TRUE(m) << m.error().str();
  return *m;
}

// 48 points in three clusters: x f32[48,2], labels i64[48], targets f32[48,3] (one-hot).
TensorMap clusters() {
  Tensor x(shoal::DType::F32, {48, 2}), labels(shoal::DType::I64, {48}), targets(shoal::DType::F32, {48, 3});
  for (int64_t i = 0; i < 48; ++i) {
    const int64_t c = i % 3;
    const double a = 2 * std::numbers::pi * double(c) / 3 + 0.01 * double(i);
    x.set(i * 2, 2 * std::cos(a) + 0.05 * double(i % 5));
    x.set(i * 2 + 1, 2 * std::sin(a) - 0.04 * double(i % 7));
    labels.set(i, double(c));
    for (int64_t k = 0; k < 3; ++k) targets.set(i * 3 + k, k == c ? 1.0 : 0.0);
  }
  return {{"x", x}, {"labels", labels}, {"targets", targets}};
}

shoal::Trainer trainer(const shoal::TrainingOptions& t, int64_t batch = 16) {
  auto tr = shoal::Trainer::create(linearModel(batch), t, {.device = shoal::DeviceKind::Cpu, .seed = 3});
  EXPECT_TRUE(tr) << tr.error().str();
  return *tr;
}

TensorMap rows(const TensorMap& all, int64_t begin, int64_t count, std::initializer_list<const char*> names) {
  TensorMap out;
  for (const char* name : names) {
    const Tensor& t = all.at(name);
    shoal::Shape s = t.shape();
    const int64_t width = t.numElements() / s[0];
    s[0] = count;
    Tensor part(t.dtype(), s);
    for (int64_t i = 0; i < count * width; ++i) part.set(i, t.at(begin * width + i));
    out[name] = part;
  }
  return out;
}

TEST(TrainerSchedules, StepsFollowTheScheduleWithoutRecompiling) {
  auto t = trainer({.optimizer = shoal::optim::SGD{.lr = 0.1},
                    .schedule = {.kind = ScheduleKind::Step, .stepSize = 2, .gamma = 0.5, .warmup = 1}});
  TensorMap batch = rows(clusters(), 0, 16, {"x", "labels"});
  std::vector<double> rates;
  for (int i = 0; i < 6; ++i) {
    auto s = t.step(batch);
    ASSERT_TRUE(s) << s.error().str();
    rates.push_back(s->learningRate);
  }
  EXPECT_EQ(rates, (std::vector<double>{0.1, 0.1, 0.1, 0.05, 0.05, 0.025}));
  // The base rate moves the whole schedule, from the next step on.
  ASSERT_TRUE(t.setLearningRate(0.2));
  auto s = t.step(batch);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->learningRate, 0.05);  // step 7: warm-up 1, then StepLR's t = 5: 0.2 · 0.5²
}

TEST(TrainerSchedules, CosineWithoutTMaxSpansTheFit) {
  auto data = shoal::TensorDataset::create(rows(clusters(), 0, 48, {"x", "labels"}));
  ASSERT_TRUE(data);
  auto t = trainer({.optimizer = shoal::optim::Adam{.lr = 0.1},
                    .schedule = {.kind = ScheduleKind::Cosine, .etaMin = 0.001, .warmup = 2}});
  // 3 epochs of 3 batches: 9 steps, 2 of warm-up, so T_max = 7; each epoch reports the rate of
  // its last step (t = 2, 5, 8: the cosine's t = 0, 3, 6).
  auto report = t.fit(*data, {.epochs = 3, .batchSize = 16});
  ASSERT_TRUE(report) << report.error().str();
  auto cosine = [](double tc) { return 0.001 + 0.099 * (1 + std::cos(std::numbers::pi * tc / 7)) / 2; };
  ASSERT_EQ(report->epochs.size(), 3u);
  EXPECT_NEAR(report->epochs[0].learningRate, cosine(0), 1e-15);
  EXPECT_NEAR(report->epochs[1].learningRate, cosine(3), 1e-15);
  EXPECT_NEAR(report->epochs[2].learningRate, cosine(6), 1e-15);
  // Stepping by hand has no fit to span: tMax must be given.
  auto s = t.step(rows(clusters(), 0, 16, {"x", "labels"}));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message(), "a cosine schedule needs its tMax (the steps of its half period) outside fit()");
}

TEST(TrainerSchedules, BadSchedulesAreRefused) {
  auto model = linearModel(16);
  auto refused = [&](LrSchedule s) {
    auto t = shoal::Trainer::create(model, {.schedule = s}, {.device = shoal::DeviceKind::Cpu});
    EXPECT_FALSE(t);
    return t ? std::string() : t.error().message();
  };
  EXPECT_EQ(refused({.kind = ScheduleKind::Step}), "LrSchedule: a step schedule needs a positive stepSize, got 0");
  EXPECT_EQ(refused({.kind = ScheduleKind::Step, .stepSize = 5, .gamma = 0}),
            "LrSchedule: gamma must be positive, got 0");
  EXPECT_EQ(refused({.kind = ScheduleKind::Cosine, .tMax = -1}),
            "LrSchedule: tMax must be 0 (the fit) or positive, got -1");
  EXPECT_EQ(refused({.warmup = -3}), "LrSchedule: warmup must be 0 or more steps, got -3");
}

TEST(TrainerOptions, SettingsThatDoNotFitAreRefused) {
  auto model = linearModel(16);
  auto refused = [&](const shoal::TrainingOptions& o) {
    auto t = shoal::Trainer::create(model, o, {.device = shoal::DeviceKind::Cpu});
    EXPECT_FALSE(t);
    return t ? std::string() : t.error().message();
  };
  EXPECT_EQ(refused({.loss = shoal::Loss::MeanSquaredError, .labelSmoothing = 0.1}),
            "TrainingOptions::labelSmoothing applies to Loss::CrossEntropy");
  EXPECT_EQ(refused({.labelSmoothing = 1.5}), "TrainingOptions::labelSmoothing must be in [0, 1], got 1.5");
  EXPECT_EQ(refused({.oneHotLabels = true}),
            "TrainingOptions::oneHotLabels is for Loss::MeanSquaredError and Loss::BinaryCrossEntropyWithLogits "
            "(cross-entropy reads the labels itself)");
  EXPECT_EQ(refused({.optimizer = shoal::optim::SGD{.nesterov = true}}),
            "optim::SGD: nesterov needs a positive momentum");
  EXPECT_EQ(refused({.optimizer = shoal::optim::AdamW{.eps = 0}}), "optim::AdamW: eps must be positive, got 0");
  EXPECT_EQ(refused({.clipNorm = -1}), "TrainingOptions::clipNorm must be 0 (off) or positive, got -1");
  EXPECT_EQ(refused({.lossScale = -2}),
            "TrainingOptions::lossScale must be 0 (off) or a positive initial scale, got -2");
  EXPECT_EQ(refused({.lossScale = 1024, .lossScaleInterval = 0}),
            "TrainingOptions::lossScaleInterval must be 1 or more, got 0");
}

// Parameters after `steps` steps on one batch, and how many of those steps left them unchanged.
struct Trained {
  std::map<std::string, Tensor> params;
  int unchanged = 0;
  int skippedAfterAGoodStep = 0;
  double exponent = 0;  ///< the loss scale's exponent state (when scaled)
};
Trained trainSteps(const shoal::TrainingOptions& o, int steps) {
  auto t = trainer(o);
  TensorMap batch = rows(clusters(), 0, 16, {"x", "labels"});
  Trained r;
  r.params = t.parameters();
  bool previousSame = false;
  for (int i = 0; i < steps; ++i) {
    auto s = t.step(batch);
    EXPECT_TRUE(s) << s.error().str();
    auto now = t.parameters();
    bool same = true;
    for (const auto& [name, value] : now) same = same && value.byteSize() == r.params.at(name).byteSize() &&
                                                  std::memcmp(value.raw(), r.params.at(name).raw(), value.byteSize()) == 0;
    r.unchanged += same;
    r.skippedAfterAGoodStep += same && i > 0 && !previousSame;
    previousSame = same;
    r.params = std::move(now);
  }
  if (o.lossScale && *o.lossScale > 0) {
    const std::string path = shoal::test::tempDir() + "/scaled.safetensors";
    EXPECT_TRUE(t.saveCheckpoint(path));
    auto file = shoal::loadSafetensors(path);
    EXPECT_TRUE(file) << file.error().str();
    if (file && file->find("loss_scale.exponent")) r.exponent = file->find("loss_scale.exponent")->at(0);
    else ADD_FAILURE() << "no loss_scale.exponent in the checkpoint";
  }
  return r;
}

void expectSameParams(const Trained& a, const Trained& b) {
  ASSERT_EQ(a.params.size(), b.params.size());
  for (const auto& [name, value] : a.params) {
    const Tensor& other = b.params.at(name);
    ASSERT_EQ(value.byteSize(), other.byteSize()) << name;
    EXPECT_EQ(std::memcmp(value.raw(), other.raw(), value.byteSize()), 0) << name << " differs";
  }
}

// A power-of-two loss scale multiplies every backward product and sum exactly, and the update
// divides it out exactly: while nothing overflows, a loss-scaled run is the unscaled run to
// the bit -- with Adam, with clipping (its norm is the unscaled one), with SGD momentum, and
// while the scale doubles every step (interval 1).
TEST(TrainerLossScaling, APowerOfTwoScaleTrainsExactlyTheUnscaledSteps) {
  struct Case {
    const char* name;
    shoal::TrainingOptions options;
  };
  const std::vector<Case> cases = {
      {"adam", {}},
      {"adamw with clipping", {.optimizer = shoal::optim::AdamW{.lr = 0.05}, .clipNorm = 0.5}},
      {"sgd with momentum", {.optimizer = shoal::optim::SGD{.lr = 0.1, .momentum = 0.9}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Trained plain = trainSteps(c.options, 6);
    shoal::TrainingOptions scaled = c.options;
    scaled.lossScale = 65536;
    Trained withScale = trainSteps(scaled, 6);
    EXPECT_EQ(withScale.unchanged, 0);
    EXPECT_EQ(withScale.exponent, 0);  // six good steps of 2000 before it grows
    expectSameParams(plain, withScale);
    scaled.lossScale = 4;
    scaled.lossScaleInterval = 1;  // doubles after every good step: 4, 8, ..., 128
    Trained growing = trainSteps(scaled, 6);
    EXPECT_EQ(growing.exponent, 6);
    expectSameParams(plain, growing);
  }
}

// A scale whose products overflow: each such step is skipped (parameters and SGD's velocity
// unchanged) and halves the scale. With a growth interval of 1 the scale then doubles after
// every good step until it overflows again, so skips come between good steps too (with a
// velocity that is not zero). The good steps are exactly an unscaled run's.
TEST(TrainerLossScaling, AnOverflowSkipsTheStepAndHalvesTheScale) {
  const shoal::TrainingOptions sgd{.optimizer = shoal::optim::SGD{.lr = 0.1, .momentum = 0.9}};
  shoal::TrainingOptions scaled = sgd;
  scaled.lossScale = std::ldexp(1.0, 126);  // the squared norm overflows f32 for ~60 halvings
  scaled.lossScaleInterval = 1;
  const int steps = 90;
  Trained run = trainSteps(scaled, steps);
  ASSERT_GT(run.unchanged, 40);
  ASSERT_LT(run.unchanged, steps - 10);
  EXPECT_GT(run.skippedAfterAGoodStep, 5);
  EXPECT_EQ(run.exponent, (steps - run.unchanged) - run.unchanged);  // +1 per good step, -1 per skip
  expectSameParams(run, trainSteps(sgd, steps - run.unchanged));
}

// The loss a training step reports (f32, on the device, before the update) and the loss
// evaluate() recomputes on the host in double agree for the same parameters: both are the
// loss the options define.
void expectStepLossIsEvaluatedLoss(const shoal::TrainingOptions& o, std::initializer_list<const char*> names) {
  auto t = trainer(o, 48);
  TensorMap all = rows(clusters(), 0, 48, names);
  auto data = shoal::TensorDataset::create(all);
  ASSERT_TRUE(data);
  auto eval = t.evaluate(*data);
  ASSERT_TRUE(eval) << eval.error().str();
  auto step = t.step(all);
  ASSERT_TRUE(step) << step.error().str();
  EXPECT_NEAR(step->loss, eval->loss, 1e-6 * std::max(1.0, eval->loss));
  EXPECT_EQ(step->accuracy.has_value(), eval->accuracy.has_value());
}

TEST(TrainerLosses, EvaluateComputesTheLossTheStepMinimises) {
  {
    SCOPED_TRACE("cross-entropy with label smoothing");
    expectStepLossIsEvaluatedLoss({.labelSmoothing = 0.2}, {"x", "labels"});
  }
  {
    SCOPED_TRACE("mse against one-hot labels");
    expectStepLossIsEvaluatedLoss({.loss = shoal::Loss::MeanSquaredError, .oneHotLabels = true}, {"x", "labels"});
  }
  {
    SCOPED_TRACE("bce against one-hot labels");
    expectStepLossIsEvaluatedLoss({.loss = shoal::Loss::BinaryCrossEntropyWithLogits, .oneHotLabels = true},
                                  {"x", "labels"});
  }
  {
    SCOPED_TRACE("mse against a dataset of targets");
    expectStepLossIsEvaluatedLoss({.loss = shoal::Loss::MeanSquaredError}, {"x", "targets"});
  }
  {
    SCOPED_TRACE("bce against a dataset of targets");
    expectStepLossIsEvaluatedLoss({.loss = shoal::Loss::BinaryCrossEntropyWithLogits}, {"x", "targets"});
  }
}

TEST(TrainerLosses, EveryLossAndOptimizerLearnsTheClusters) {
  auto data = shoal::TensorDataset::create(clusters());
  ASSERT_TRUE(data);
  struct Setting {
    const char* name;
    shoal::TrainingOptions options;
  };
  const std::vector<Setting> settings = {
      {"cross-entropy, label smoothing, AdamW, clipping",
       {.optimizer = shoal::optim::AdamW{.lr = 0.05}, .labelSmoothing = 0.1, .clipNorm = 1.0}},
      {"mse on one-hot labels, Nesterov, cosine",
       {.loss = shoal::Loss::MeanSquaredError,
        .optimizer = shoal::optim::SGD{.lr = 0.1, .momentum = 0.9, .nesterov = true},
        .oneHotLabels = true,
        .schedule = {.kind = ScheduleKind::Cosine, .warmup = 3}}},
      {"bce on one-hot labels, Adam",
       {.loss = shoal::Loss::BinaryCrossEntropyWithLogits,
        .optimizer = shoal::optim::Adam{.lr = 0.05},
        .oneHotLabels = true}},
  };
  for (const Setting& s : settings) {
    SCOPED_TRACE(s.name);
    auto t = trainer(s.options);
    auto report = t.fit(*data, {.epochs = 40, .batchSize = 16});
    ASSERT_TRUE(report) << report.error().str();
    EXPECT_LT(report->epochs.back().loss, report->epochs.front().loss);
    EXPECT_GT(report->epochs.back().accuracy, 0.95);
    auto eval = t.evaluate(*data);
    ASSERT_TRUE(eval);
    EXPECT_GT(*eval->accuracy, 0.95);
  }
}

TEST(TrainerLosses, APipelinesTrainStageBecomesTrainingOptions) {
  const std::string dir = shoal::test::tempDir();
  shoal::test::writeFile(dir + "/p.mmd",
                         "flowchart LR\n"
                         "  x[input: mnist path=data/mnist-10k batch=16] --> f[flatten] --> d[dense: units=10]\n"
                         "  d --> t[train: loss=mse optimizer=adamw lr=0.002 clip_norm=0.5 schedule=step step_size=30 "
                         "gamma=0.5 warmup=10 loss_scale=1024 loss_scale_interval=50]\n");
  auto p = shoal::loadPipeline(dir + "/p.mmd");
  ASSERT_TRUE(p) << p.error().str();
  shoal::TrainingOptions o = p->trainingOptions();
  EXPECT_EQ(o.loss, shoal::Loss::MeanSquaredError);
  EXPECT_TRUE(o.oneHotLabels);  // the data set gives class labels
  const auto* adamw = std::get_if<shoal::optim::AdamW>(&o.optimizer);
  ASSERT_NE(adamw, nullptr);
  EXPECT_EQ(adamw->lr, 0.002);
  EXPECT_EQ(adamw->eps, 1e-8);  // PyTorch's AdamW defaults
  EXPECT_EQ(adamw->weightDecay, 1e-2);
  EXPECT_EQ(o.clipNorm, 0.5);
  EXPECT_EQ(o.lossScale, 1024.0);
  EXPECT_EQ(o.lossScaleInterval, 50);
  EXPECT_EQ(o.schedule.kind, ScheduleKind::Step);
  EXPECT_EQ(o.schedule.stepSize, 30);
  EXPECT_EQ(o.schedule.gamma, 0.5);
  EXPECT_EQ(o.schedule.warmup, 10);
}

}  // namespace
