// The pipeline settings block of IR text (printPipelineSettings / parsePipelineText): a dumped
// pipeline's data, training and output settings come back exactly, located in the IR file.
#include <gtest/gtest.h>

#include "ir/parser.h"
#include "ir/pipeline.h"
#include "ir/printer.h"

namespace shoal {
namespace {

const char* kGraph =
    "// shoal IR\n"
    "graph g {\n"
    "  %x = input() {name=\"x\"} : f32[2,3] loc(\"g.mmd\":2:3 node=\"x\")\n"
    "  output(%x) {name=\"logits\"}\n"
    "}\n";

// A pipeline with every section set away from its defaults.
Pipeline everySetting() {
  Pipeline p;
  p.data = DataSpec{"mnist", "data/some \"digits\"", 48, "w.safetensors", {}};
  TrainConfig t;
  t.loss = "bce_with_logits";
  t.oneHotTargets = true;
  t.optimizer = "adamw";
  t.lr = 0.003;
  t.epochs = 7;
  t.batch = 48;
  t.validation = 0.25;
  t.weightDecay = 0.05;
  t.beta1 = 0.8;
  t.eps = 1e-8;
  t.clipNorm = 1.5;
  t.lossScale = 1024;
  t.lossScaleInterval = 500;
  t.schedule = LrSchedule{.kind = ScheduleKind::Cosine, .tMax = 900, .etaMin = 1e-5, .warmup = 100};
  t.seed = 42;
  t.shuffle = false;
  p.train = t;
  p.output.metrics = {"accuracy", "loss"};
  p.output.plot = "curve.svg";
  p.output.checkpoint = "model.safetensors";
  p.device = "gpu";
  p.inputName = "x";
  p.logitsName = "logits";
  return p;
}

TEST(PipelineSettings, PrintParsePrintIsExact) {
  const std::string text = kGraph + printPipelineSettings(everySetting());
  EXPECT_EQ(printPipelineSettings(everySetting()),
            "pipeline {\n"
            "  data {batch=48, kind=\"mnist\", path=\"data/some \\\"digits\\\"\", weights=\"w.safetensors\"}\n"
            "  train {batch=48, beta1=0.8, beta2=0.999, clip_norm=1.5, epochs=7, eps=1e-08, eta_min=1e-05, gamma=0.1, "
            "label_smoothing=0.0, loss=\"bce_with_logits\", loss_scale=1024.0, loss_scale_interval=500, lr=0.003, momentum=0.0, nesterov=0, one_hot_targets=1, "
            "optimizer=\"adamw\", schedule=\"cosine\", seed=42, shuffle=0, step_size=0, t_max=900, validation=0.25, "
            "warmup=100, weight_decay=0.05}\n"
            "  output {checkpoint=\"model.safetensors\", metrics=\"accuracy,loss\", plot=\"curve.svg\"}\n"
            "  model {device=\"gpu\", input=\"x\", output=\"logits\"}\n"
            "}\n");
  DiagnosticEngine diags;
  auto p = parsePipelineText(text, "g.ir", diags);
  ASSERT_TRUE(p.has_value()) << diags.render();
  EXPECT_EQ(printGraph(*p->model) + printPipelineSettings(*p), text);
  // The fields themselves, and where they were written.
  ASSERT_TRUE(p->train && p->data);
  EXPECT_EQ(p->train->schedule.kind, ScheduleKind::Cosine);
  EXPECT_EQ(p->train->schedule.tMax, 900);
  EXPECT_EQ(p->train->seed, 42u);
  EXPECT_FALSE(p->train->shuffle);
  EXPECT_TRUE(p->train->oneHotTargets);
  EXPECT_EQ(p->data->path, "data/some \"digits\"");
  EXPECT_EQ(p->output.metrics, (std::vector<std::string>{"accuracy", "loss"}));
  EXPECT_EQ(p->data->loc.str(), "g.ir:7:3");
  EXPECT_EQ(p->train->loc.str(), "g.ir:8:3");
  EXPECT_EQ(p->file, "g.ir");
}

TEST(PipelineSettings, NoBlockForABareModel) {
  Pipeline p;
  EXPECT_EQ(printPipelineSettings(p), "");
  p.logitsName = "C";  // the model's settings alone still need saying
  EXPECT_EQ(printPipelineSettings(p), "pipeline {\n  model {device=\"auto\", input=\"x\", output=\"C\"}\n}\n");
}

TEST(PipelineSettings, GraphParserChecksAndDropsTheBlock) {
  DiagnosticEngine diags;
  auto g = parseGraph(kGraph + printPipelineSettings(everySetting()), "g.ir", diags);
  ASSERT_NE(g, nullptr) << diags.render();
  EXPECT_EQ(printGraph(*g), kGraph);
}

std::string firstSettingsError(const std::string& block) {
  DiagnosticEngine diags;
  auto p = parsePipelineText(kGraph + block, "g.ir", diags);
  EXPECT_FALSE(p.has_value()) << block;
  return diags.firstError().str();
}

TEST(PipelineSettings, ErrorsNameTheLineOfTheIrFile) {
  EXPECT_EQ(firstSettingsError("pipeline {\n  train {lr=0.1, bogus=1}\n}\n"),
            "g.ir:7:3: error: pipeline section 'train' has no setting 'bogus'");
  EXPECT_EQ(firstSettingsError("pipeline {\n  data {batch=\"many\"}\n}\n"),
            "g.ir:7:3: error: pipeline setting data.batch must be an integer, got \"many\"");
  EXPECT_EQ(firstSettingsError("pipeline {\n  train {shuffle=2}\n}\n"),
            "g.ir:7:3: error: pipeline setting train.shuffle must be 0 or 1, got 2");
  EXPECT_EQ(firstSettingsError("pipeline {\n  train {schedule=\"linear\"}\n}\n"),
            "g.ir:7:3: error: unknown schedule 'linear' (constant, step or cosine)");
  EXPECT_EQ(firstSettingsError("pipeline {\n  optimizer {lr=1}\n}\n"),
            "g.ir:7:3: error: unknown pipeline section 'optimizer' (data, train, output, model)");
  EXPECT_EQ(firstSettingsError("pipeline {\n  data batch=1\n}\n"), "g.ir:7:8: error: expected '{' after 'data', got 'batch'");
  EXPECT_EQ(firstSettingsError("pipeline {\n  data {batch=1}\n"),
            "g.ir:7:17: error: expected '}' to close the pipeline settings block, got end of file");
  EXPECT_EQ(firstSettingsError("pipeline {\n}\nextra\n"), "g.ir:8:1: error: unexpected text after the pipeline settings block");
  EXPECT_EQ(
      firstSettingsError("settings {\n}\n"),
      "g.ir:6:1: error: unexpected text after the end of graph 'g' (only a 'pipeline {' settings block may follow)");
}

}  // namespace
}  // namespace shoal
