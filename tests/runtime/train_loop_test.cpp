// The training loop with the train family's settings: the learning rate is fed every step, so
// one compiled step serves every rate a schedule gives; a pipeline trains with mse, bce and
// label smoothing on its class labels; a pipeline loaded from its IR dump trains the same.
#include <gtest/gtest.h>

#include <cmath>

#include "frontend/pipeline_loader.h"
#include "ir/printer.h"
#include "runtime/data/datasets.h"
#include "runtime/model_programs.h"
#include "runtime/trainer.h"
#include "test_util.h"

namespace shoal {
namespace {

std::shared_ptr<const Graph> tinyModel() {
  auto g = std::make_shared<Graph>("tiny");
  Attrs in;
  in.set("name", std::string("x"));
  Value* x = g->addNode(OpKind::Input, {}, in, {{"x", {DType::F32, {4, 3}}}})->result();
  Attrs p;
  p.set("init", std::string("glorot_uniform"));
  Value* w = g->addNode(OpKind::Param, {}, p, {{"w", {DType::F32, {2, 3}}}})->result();
  Value* d = g->addNode(OpKind::Dense, {x, w}, {}, {{"d", {DType::F32, {4, 2}}}})->result();
  Attrs out;
  out.set("name", std::string("logits"));
  g->addNode(OpKind::Output, {d}, out, {});
  return g;
}

TEST(TrainLoop, OneCompiledStepServesEveryRate) {
  auto device = selectDevice(DeviceKind::Cpu);
  ASSERT_TRUE(device);
  TrainConfig cfg;
  cfg.optimizer = "sgd";
  cfg.lr = 0.1;
  cfg.schedule = LrSchedule{.kind = ScheduleKind::Cosine, .tMax = 10};
  auto m = ModelPrograms::createTraining(tinyModel(), cfg, "logits", 4, *device);
  ASSERT_TRUE(m) << m.error().str();
  (*m)->initialize(1);
  TensorMap batch{{"x", Tensor::fromDoubles(DType::F32, {4, 3}, std::vector<double>(12, 0.5))},
                  {"labels", Tensor::fromDoubles(DType::I64, {4}, std::vector<double>{0, 1, 1, 0})}};
  int64_t step = 0;
  std::vector<double> rates;
  for (int i = 0; i < 5; ++i) {
    auto s = trainStep(**m, batch, step);
    ASSERT_TRUE(s) << s.error().str();
    rates.push_back(s->learningRate);
    (*m)->setLearningRate(0.1 + 0.01 * i);  // a new base rate every step, too
  }
  EXPECT_EQ((*m)->programCount(), 1);  // before the rate was an input, each rate compiled a step
  EXPECT_EQ(rates.size(), 5u);
  for (size_t i = 1; i < rates.size(); ++i) EXPECT_NE(rates[i], rates[i - 1]);
}

// A small pipeline over the bundled MNIST data, trained for a few steps.
Expected<TrainReport> trainFewSteps(const std::string& trainStage, const std::string& name) {
  const std::string dir = test::tempDir();
  const std::string path = dir + "/" + name + ".mmd";
  test::writeFile(path,
                  "flowchart LR\n"
                  "  x[input: mnist path=data/mnist-10k batch=16] --> pre[preprocess: scale=1/255]\n"
                  "  pre --> f[flatten] --> d[dense: units=10]\n"
                  "  d --> t[train: " +
                      trainStage + "]\n");
  DiagnosticEngine diags;
  auto p = loadPipelineFile(path, diags);
  if (!p) return fail(diags.render());
  p->data->path = test::sourcePath("data/mnist-10k");
  TrainOptions opts;
  opts.device = DeviceKind::Cpu;
  opts.epochs = 1;
  opts.stepsPerEpoch = 60;
  return trainPipeline(*p, opts);
}

TEST(TrainLoop, PipelinesTrainEveryLossOnTheirClassLabels) {
  for (const char* stage : {"loss=mse optimizer=sgd lr=0.1 momentum=0.9 nesterov=true",
                            "loss=bce_with_logits optimizer=adamw lr=0.02 clip_norm=1",
                            "loss=cross_entropy label_smoothing=0.1 lr=0.005 schedule=cosine warmup=5"}) {
    SCOPED_TRACE(stage);
    auto report = trainFewSteps(stage, "p");
    ASSERT_TRUE(report) << report.error().str();
    ASSERT_EQ(report->epochs.size(), 1u);
    EXPECT_TRUE(std::isfinite(report->epochs[0].loss));
    EXPECT_GT(report->epochs[0].accuracy, 0.2);  // class labels read: accuracy is reported
    ASSERT_TRUE(report->testAccuracy.has_value());
    EXPECT_GT(*report->testAccuracy, 0.5);  // 60 steps of 16 images learn something
  }
}

TEST(TrainLoop, APipelineTrainsFromItsIrDumpAsFromItsFile) {
  DiagnosticEngine diags;
  auto p = loadPipelineFile(test::sourcePath("examples/mlp.mmd"), diags);
  ASSERT_TRUE(p) << diags.render();
  // The model after every pass (fused) with its settings, as `shoal dump` writes it.
  auto program = compileProgram(p->model->clone(), {});
  ASSERT_TRUE(program);
  const std::string dumped = printGraph(*program->graph) + printPipelineSettings(*p);
  auto fromIr = loadPipelineText(dumped, test::tempDir() + "/mlp.ir", diags);
  ASSERT_TRUE(fromIr) << diags.render();
  ASSERT_TRUE(fromIr->train && fromIr->data);
  TrainOptions opts;
  opts.device = DeviceKind::Cpu;
  opts.epochs = 1;
  opts.stepsPerEpoch = 10;
  p->data->path = fromIr->data->path = test::sourcePath("data/mnist-10k");
  auto a = trainPipeline(*p, opts);
  auto b = trainPipeline(*fromIr, opts);
  ASSERT_TRUE(a && b) << (a ? b.error().str() : a.error().str());
  EXPECT_EQ(a->epochs[0].loss, b->epochs[0].loss);
  EXPECT_EQ(a->epochs[0].accuracy, b->epochs[0].accuracy);
  EXPECT_EQ(a->testAccuracy, b->testAccuracy);
  for (auto& [name, t] : a->parameters) EXPECT_EQ(t.toDoubles(), b->parameters.at(name).toDoubles()) << name;
}

}  // namespace
}  // namespace shoal
