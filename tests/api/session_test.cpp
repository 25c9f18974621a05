// The public Session (include/shoal/shoal.h): compile, run at any batch size, input checks,
// weights, pipelines.
#include <gtest/gtest.h>
#include <shoal/shoal.h>

#include <cmath>

#include "test_util.h"

namespace {

TEST(Session, BuildsCompilesAndRunsAModel) {
  shoal::GraphBuilder b("tiny");
  auto x = b.input("x", shoal::f32({2, 3}));
  auto w = b.constant("w", shoal::Tensor::fromDoubles(shoal::DType::F32, {3, 2}, std::vector<double>{1, 2, 3, 4, 5, 6}));
  b.output("y", b.relu(b.matmul(x, w)));
  auto model = b.build();
  ASSERT_TRUE(model) << model.error().str();
  EXPECT_EQ(model->outputs(), std::vector<std::string>{"y"});
  ASSERT_EQ(model->inputs().size(), 1u);
  EXPECT_EQ(model->inputs()[0].second.str(), "f32[2,3]");

  auto session = shoal::Session::create(*model, {.device = shoal::DeviceKind::Cpu});
  ASSERT_TRUE(session) << session.error().str();
  EXPECT_EQ(session->device(), "cpu");
  EXPECT_EQ(session->outputs(), std::vector<std::string>{"y"});
  // Rows [1,0,-1] and [-1,0,-2] times w are all negative: relu gives zeros.
  auto x0 = shoal::Tensor::fromDoubles(shoal::DType::F32, {2, 3}, std::vector<double>{1, 0, -1, -1, 0, -2});
  auto out = session->run({{"x", x0}});
  ASSERT_TRUE(out) << out.error().str();
  EXPECT_EQ(out->at("y").toDoubles(), (std::vector<double>{0, 0, 0, 0}));
  auto x1 = shoal::Tensor::fromDoubles(shoal::DType::F32, {2, 3}, std::vector<double>{1, 1, 1, 0, 1, 0});
  out = session->run({{"x", x1}});
  ASSERT_TRUE(out);
  // rows: [1,1,1]·w = [9,12]; [0,1,0]·w = [3,4]
  EXPECT_EQ(out->at("y").toDoubles(), (std::vector<double>{9, 12, 3, 4}));
}

TEST(Session, RunsAtAnyBatchSizeCompilingEachOnce) {
  // Built for batch 4; fed 1, 7, 4 and 7 rows: three programs, each row's answer the same
  // arithmetic (checked against a double reference).
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({4, 3}));
  b.output("y", b.dense(x, 2, {.activation = shoal::Activation::Tanh, .name = "fc"}));
  auto model = b.build();
  ASSERT_TRUE(model);
  auto session = shoal::Session::create(*model, {.device = shoal::DeviceKind::Cpu, .seed = 3});
  ASSERT_TRUE(session) << session.error().str();
  EXPECT_EQ(session->compiledBatchSizes(), 1);
  auto params = session->parameters();
  const shoal::Tensor& w = params.at("fc.weight");
  const shoal::Tensor& bias = params.at("fc.bias");
  for (int64_t batch : {1, 7, 4, 7}) {
    shoal::Tensor in(shoal::DType::F32, {batch, 3});
    for (int64_t i = 0; i < in.numElements(); ++i) in.set(i, std::sin(0.7 * double(i)));
    auto out = session->run({{"x", in}});
    ASSERT_TRUE(out) << batch << ": " << out.error().str();
    ASSERT_EQ(out->at("y").shape(), (shoal::Shape{batch, 2}));
    for (int64_t r = 0; r < batch; ++r)
      for (int64_t j = 0; j < 2; ++j) {
        double acc = bias.at(j);
        for (int64_t k = 0; k < 3; ++k) acc += in.at(r * 3 + k) * w.at(j * 3 + k);
        EXPECT_NEAR(out->at("y").at(r * 2 + j), std::tanh(acc), 1e-6) << "batch " << batch << " row " << r;
      }
  }
  EXPECT_EQ(session->compiledBatchSizes(), 3);
}

TEST(Session, ProfileCountsEveryRunOfEachBatchSize) {
  // Two runs at batch 4 and one at batch 2: each program's dense op is counted per run, each
  // under its batch's heading; without the option there is no profile.
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({4, 3}));
  b.output("y", b.dense(x, 2, {.activation = shoal::Activation::Tanh, .name = "fc"}));
  auto model = b.build();
  ASSERT_TRUE(model);
  auto plain = shoal::Session::create(*model, {.device = shoal::DeviceKind::Cpu});
  auto session = shoal::Session::create(*model, {.device = shoal::DeviceKind::Cpu, .profile = true});
  ASSERT_TRUE(plain && session);
  for (int64_t batch : {4, 4, 2}) {
    shoal::Tensor in(shoal::DType::F32, {batch, 3});
    ASSERT_TRUE(session->run({{"x", in}}));
    ASSERT_TRUE(plain->run({{"x", in}}));
  }
  const std::string p = session->profile();
  EXPECT_NE(p.find("inference, batch 4:"), std::string::npos) << p;
  EXPECT_NE(p.find("inference, batch 2:"), std::string::npos) << p;
  EXPECT_EQ(p.find("batch 4:"), p.rfind("batch 4:")) << p;
  // Programs are listed by batch size: batch 4's part is the last, with its two runs.
  ASSERT_LT(p.find("inference, batch 2:"), p.find("inference, batch 4:"));
  const std::string four = p.substr(p.find("inference, batch 4:"));
  EXPECT_NE(four.find("2 calls"), std::string::npos) << p;
  EXPECT_EQ(plain->profile(), "");
}

TEST(Session, ToDeviceCopiesAnInputIntoGpuMemory) {
  shoal::Tensor host(shoal::DType::F32, {4, 3});
  for (int64_t i = 0; i < host.numElements(); ++i) host.set(i, std::cos(0.3 * double(i)));
  auto onGpu = shoal::toDevice(host);
  if (!onGpu) {
    // Without a GPU: an error that says which call and why, nothing thrown.
    EXPECT_EQ(onGpu.error().message().rfind("toDevice: ", 0), 0u) << onGpu.error().message();
    GTEST_SKIP() << "no usable GPU: " << onGpu.error().message();
  }
  EXPECT_TRUE(onGpu->isOnDevice());
  EXPECT_FALSE(shoal::toDevice(*onGpu));  // already there
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({4, 3}));
  b.output("y", b.dense(x, 2, {.activation = shoal::Activation::Tanh, .name = "fc"}));
  auto model = b.build();
  ASSERT_TRUE(model);
  auto session = shoal::Session::create(*model, {.device = shoal::DeviceKind::Cuda, .seed = 3});
  ASSERT_TRUE(session) << session.error().str();
  auto fromHost = session->run({{"x", host}});
  auto fromGpu = session->run({{"x", *onGpu}});
  ASSERT_TRUE(fromHost && fromGpu);
  EXPECT_EQ(fromHost->at("y").toDoubles(), fromGpu->at("y").toDoubles());
}

TEST(Session, PrecisionNeedsTheGpuAndAgreesWithTf32) {
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({4, 3}));
  b.output("y", b.dense(x, 2, {.name = "fc"}));
  auto model = b.build();
  ASSERT_TRUE(model);
  auto cpu = shoal::Session::create(*model, {.device = shoal::DeviceKind::Cpu, .precision = shoal::Precision::Bf16});
  ASSERT_FALSE(cpu);
  EXPECT_NE(cpu.error().message().find("SessionOptions::precision bf16 runs on a GPU's tensor cores, and this runs on "
                                       "the CPU"),
            std::string::npos)
      << cpu.error().message();
  auto both = shoal::Session::create(*model, {.device = shoal::DeviceKind::Cpu, .tf32 = true,
                                              .precision = shoal::Precision::Fp16});
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().message(), "SessionOptions: tf32 and precision fp16 disagree; choose one");
  // The autotuner times the GPU's convolution tiles: on the CPU an error, not ignored (a 16-bit
  // precision there is refused first).
  auto tuneFp32 = shoal::Session::create(*model, {.device = shoal::DeviceKind::Cpu, .autotune = true});
  ASSERT_FALSE(tuneFp32);
  EXPECT_EQ(tuneFp32.error().message(),
            "SessionOptions::autotune times the GPU's convolution tiles, and this runs on the CPU (which has none to "
            "time: leave it off there)");
  auto tuneCpu = shoal::Session::create(
      *model, {.device = shoal::DeviceKind::Cpu, .precision = shoal::Precision::Bf16, .autotune = true});
  ASSERT_FALSE(tuneCpu);
  EXPECT_NE(tuneCpu.error().message().find("runs on a GPU's tensor cores"), std::string::npos)
      << tuneCpu.error().message();
  auto trainer = shoal::Trainer::create(*model, {.loss = shoal::Loss::MeanSquaredError},
                                        {.device = shoal::DeviceKind::Cpu, .precision = shoal::Precision::Tf32});
  ASSERT_FALSE(trainer);
  EXPECT_NE(trainer.error().message().find("precision tf32"), std::string::npos) << trainer.error().message();
  auto tuneTrainer = shoal::Trainer::create(*model, {.loss = shoal::Loss::MeanSquaredError},
                                            {.device = shoal::DeviceKind::Cpu, .autotune = true});
  ASSERT_FALSE(tuneTrainer);
  EXPECT_NE(tuneTrainer.error().message().find("SessionOptions::autotune times the GPU's convolution tiles"),
            std::string::npos)
      << tuneTrainer.error().message();
  EXPECT_TRUE(shoal::Session::create(*model, {.device = shoal::DeviceKind::Cpu, .precision = shoal::Precision::Fp32}));
}

// Inference on tensor cores rearranges the convolutions' weights once (prepared parameters),
// not every run: each change of the parameters -- a training step of the trainer the session
// shares them with, or setParameters -- must reach the next run, bit for bit what a fresh
// session with those parameters answers.
TEST(SessionGpu, PreparedConvolutionWeightsFollowEveryParameterChange) {
  if (auto probe = shoal::toDevice(shoal::Tensor(shoal::DType::F32, {1})); !probe)
    GTEST_SKIP() << "no usable GPU: " << probe.error().message();
  shoal::GraphBuilder b("prepared");
  auto x = b.input("x", shoal::f32({4, 3, 12, 12}));
  auto c = b.conv2d(x, 16, 3, 3, {.padding = "same", .activation = shoal::Activation::Relu, .name = "c"});
  b.output("logits", b.dense(b.flatten(b.maxPool2d(c, 2, 2)), 10, {.name = "fc"}));
  auto model = b.build();
  ASSERT_TRUE(model) << model.error().str();
  const shoal::SessionOptions gpu{.device = shoal::DeviceKind::Cuda, .precision = shoal::Precision::Tf32, .seed = 5};
  auto trainer = shoal::Trainer::create(*model, {.optimizer = shoal::optim::SGD{.lr = 0.5}}, gpu);
  ASSERT_TRUE(trainer) << trainer.error().str();
  shoal::Tensor xs(shoal::DType::F32, {4, 3, 12, 12}), labels(shoal::DType::I64, {4});
  for (int64_t i = 0; i < xs.numElements(); ++i) xs.set(i, std::sin(0.37 * double(i)));
  for (int64_t i = 0; i < 4; ++i) labels.set(i, double(3 * i % 10));
  auto logits = [&](shoal::Session& s) {
    auto out = s.run({{"x", xs}});
    EXPECT_TRUE(out) << out.error().str();
    return out ? out->at("logits").toDoubles() : std::vector<double>{};
  };
  auto fresh = [&](const std::map<std::string, shoal::Tensor>& params) {
    auto s = shoal::Session::create(*model, gpu);
    EXPECT_TRUE(s) << s.error().str();
    EXPECT_TRUE(s->setParameters(params));
    return logits(*s);
  };
  shoal::Session session = trainer->session();
  const auto initial = trainer->parameters();
  const std::vector<double> before = logits(session);
  ASSERT_EQ(before.size(), 40u);
  EXPECT_EQ(logits(session), before);  // prepared once, then the captured step replayed
  EXPECT_EQ(fresh(initial), before);
  // A training step through the shared parameters.
  ASSERT_TRUE(trainer->step({{"x", xs}, {"labels", labels}}));
  const std::vector<double> after = logits(session);
  EXPECT_NE(after, before);
  EXPECT_EQ(after, fresh(trainer->parameters()));
  // Parameters written through the session.
  ASSERT_TRUE(session.setParameters(initial));
  EXPECT_EQ(logits(session), before);
}

TEST(Session, InputsMustAgreeOnTheBatch) {
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({2, 3}));
  auto y = b.input("y", shoal::f32({2, 3}));
  b.output("z", b.add(x, y));
  auto session = shoal::Session::create(*b.build(), {.device = shoal::DeviceKind::Cpu});
  ASSERT_TRUE(session);
  auto r = session->run({{"x", shoal::Tensor(shoal::DType::F32, {5, 3})}, {"y", shoal::Tensor(shoal::DType::F32, {4, 3})}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "inputs disagree on the batch size: 'x' has 5 rows, 'y' has 4");
  auto ok = session->run({{"x", shoal::Tensor(shoal::DType::F32, {5, 3})}, {"y", shoal::Tensor(shoal::DType::F32, {5, 3})}});
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_EQ(ok->at("z").shape(), (shoal::Shape{5, 3}));
}

// Inputs whose leading extents differ by design (a time-major sequence beside its state) run
// at the shapes the model was built for; other shapes are still read as a batch.
TEST(Session, InputsAtTheirBuiltShapesRunAsBuilt) {
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({3, 2}));
  auto w = b.input("w", shoal::f32({2, 2}));
  b.output("z", b.matmul(x, w));
  auto session = shoal::Session::create(*b.build(), {.device = shoal::DeviceKind::Cpu});
  ASSERT_TRUE(session) << session.error().str();
  auto out = session->run({{"x", shoal::Tensor::fromDoubles(shoal::DType::F32, {3, 2}, std::vector<double>{1, 2, 3, 4, 5, 6})},
                           {"w", shoal::Tensor::fromDoubles(shoal::DType::F32, {2, 2}, std::vector<double>{1, 0, 1, 1})}});
  ASSERT_TRUE(out) << out.error().str();
  EXPECT_EQ(out->at("z").toDoubles(), (std::vector<double>{3, 2, 7, 4, 11, 6}));
  auto other = session->run({{"x", shoal::Tensor(shoal::DType::F32, {4, 2})}, {"w", shoal::Tensor(shoal::DType::F32, {2, 2})}});
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().message(), "inputs disagree on the batch size: 'x' has 4 rows, 'w' has 2");
}

TEST(Session, AModelThatFixesItsBatchSaysSo) {
  // A constant of the built batch's shape cannot follow another batch size.
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({2, 3}));
  auto c = b.constant("c", shoal::Tensor::fromDoubles(shoal::DType::F32, {2, 3}, std::vector<double>{1, 2, 3, 4, 5, 6}));
  b.output("z", b.add(x, c));
  auto session = shoal::Session::create(*b.build(), {.device = shoal::DeviceKind::Cpu});
  ASSERT_TRUE(session);
  auto r = session->run({{"x", shoal::Tensor(shoal::DType::F32, {3, 3})}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message().rfind("the model cannot run at batch size 3 (it was built for 2): ", 0), 0u)
      << r.error().message();
  auto same = session->run({{"x", shoal::Tensor(shoal::DType::F32, {2, 3})}});
  ASSERT_TRUE(same);
  EXPECT_EQ(same->at("z").toDoubles(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
}

TEST(Session, BuilderReportsTheFirstErrorWithTheLayer) {
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({8, 1, 28, 28}));
  auto h = b.dense(x, 64);  // no flatten: an error
  b.output("y", b.dense(h, 10));
  auto model = b.build();
  ASSERT_FALSE(model);
  EXPECT_EQ(model.error().message(),
            "dense 'dense_0': input must be [batch, features] or [batch, tokens, features], got f32[8,1,28,28] (add a "
            "flatten before it)");
}

TEST(Session, RunChecksInputs) {
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({4, 5}));
  b.output("y", b.dense(x, 3));
  auto model = b.build();
  ASSERT_TRUE(model);
  auto session = shoal::Session::create(*model, {.device = shoal::DeviceKind::Cpu});
  ASSERT_TRUE(session);
  auto missing = session->run({});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message(), "missing input 'x' (f32[4,5])");
  auto wrong = session->run({{"x", shoal::Tensor(shoal::DType::F32, {4, 6})}});
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().message(), "input 'x' expects f32[N,5] (N: any batch size), got f32[4,6]");
  shoal::Session empty;
  auto none = empty.run({});
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("this Session is empty"), std::string::npos);
}

TEST(Session, WeightsRoundTripThroughSafetensors) {
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({2, 4}));
  b.output("y", b.dense(x, 3, shoal::Activation::Tanh));
  auto model = b.build();
  ASSERT_TRUE(model);
  std::string path = shoal::test::tempDir() + "/w.safetensors";
  auto a = shoal::Session::create(*model, {.device = shoal::DeviceKind::Cpu, .seed = 1});
  auto c = shoal::Session::create(*model, {.device = shoal::DeviceKind::Cpu, .seed = 2});
  ASSERT_TRUE(a && c);
  EXPECT_NE(a->parameters().at("dense_0.weight").toDoubles(), c->parameters().at("dense_0.weight").toDoubles());
  ASSERT_TRUE(a->saveWeights(path));
  ASSERT_TRUE(c->loadWeights(path));
  EXPECT_EQ(a->parameters().at("dense_0.weight").toDoubles(), c->parameters().at("dense_0.weight").toDoubles());
  auto in = shoal::Tensor::fromDoubles(shoal::DType::F32, {2, 4}, std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_EQ(a->run({{"x", in}})->at("y").toDoubles(), c->run({{"x", in}})->at("y").toDoubles());

  // setParameters takes every parameter, by name, with its shape.
  auto params = a->parameters();
  params.erase("dense_0.bias");
  auto partial = c->setParameters(params);
  ASSERT_FALSE(partial);
  EXPECT_EQ(partial.error().message(), "setParameters: no tensor for parameter 'dense_0.bias' (f32[3])");
  params = a->parameters();
  params["dense_0.bias"] = shoal::Tensor::fromDoubles(shoal::DType::F32, {3}, std::vector<double>{1, 2, 3});
  ASSERT_TRUE(c->setParameters(params));
  EXPECT_EQ(c->parameters().at("dense_0.bias").toDoubles(), (std::vector<double>{1, 2, 3}));
}

TEST(Session, CreatesFromAFile) {
  auto session = shoal::Session::create(shoal::test::sourcePath("examples/matmul.mmd"), {.device = shoal::DeviceKind::Cpu});
  ASSERT_TRUE(session) << session.error().str();
  auto out = session->run({});
  ASSERT_TRUE(out) << out.error().str();
  EXPECT_EQ(out->at("C").toDoubles(), (std::vector<double>{22, 28, 64, 73, 106, 118}));
}

TEST(Session, LoadPipelineRendersDiagnostics) {
  auto bad = shoal::loadPipeline(shoal::test::sourcePath("tests/frontend/invalid/sem_unknown_op.mmd"));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("error: unknown op 'conv3d' (did you mean 'conv2d'?)\n"), std::string::npos);
  // str() is the rendering, its place named once (not prefixed again by the location).
  const std::string where = bad.error().location().str();
  ASSERT_FALSE(where.empty());
  EXPECT_EQ(bad.error().str().rfind(where + ": error: ", 0), 0u) << bad.error().str();
  EXPECT_EQ(bad.error().str().find(where, where.size()), std::string::npos) << bad.error().str();
  auto good = shoal::loadPipeline(shoal::test::sourcePath("examples/mnist_cnn.mmd"));
  ASSERT_TRUE(good) << good.error().message();
  EXPECT_TRUE(good->trains());
  EXPECT_EQ(good->model().outputs(), std::vector<std::string>{"logits"});
  shoal::TrainingOptions t = good->trainingOptions();
  EXPECT_EQ(t.loss, shoal::Loss::CrossEntropy);
  ASSERT_TRUE(std::holds_alternative<shoal::optim::Adam>(t.optimizer));
  EXPECT_EQ(std::get<shoal::optim::Adam>(t.optimizer).lr, 0.001);
}

}  // namespace
