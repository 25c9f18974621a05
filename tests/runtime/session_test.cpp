// The public API (include/shoal/shoal.h): builder errors, compile, run, weights, pipelines.
#include <gtest/gtest.h>
#include <shoal/shoal.h>

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

  shoal::Session session({.device = shoal::DeviceKind::Cpu});
  auto exe = session.compile(*model);
  ASSERT_TRUE(exe) << exe.error().str();
  EXPECT_EQ(exe->device(), "cpu");
  auto x0 = shoal::Tensor::fromDoubles(shoal::DType::F32, {2, 3}, std::vector<double>{1, 0, -1, -1, 0, -2});
  auto out = exe->run({{"x", x0}});
  ASSERT_TRUE(out) << out.error().str();
  // [1,0,-1]·w = [1-5, 2-6] = [-4,-4] -> relu 0; [-1,0,-2]·w = [-1-10, -2-12] -> 0... use known values:
  EXPECT_EQ(out->at("y").toDoubles(), (std::vector<double>{0, 0, 0, 0}));
  auto x1 = shoal::Tensor::fromDoubles(shoal::DType::F32, {2, 3}, std::vector<double>{1, 1, 1, 0, 1, 0});
  out = exe->run({{"x", x1}});
  ASSERT_TRUE(out);
  // rows: [1,1,1]·w = [9,12]; [0,1,0]·w = [3,4]
  EXPECT_EQ(out->at("y").toDoubles(), (std::vector<double>{9, 12, 3, 4}));
}

TEST(Session, BuilderReportsTheFirstErrorWithTheLayer) {
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({8, 1, 28, 28}));
  auto h = b.dense(x, 64);  // no flatten: an error
  b.output("y", b.dense(h, 10));
  auto model = b.build();
  ASSERT_FALSE(model);
  EXPECT_EQ(model.error().message(), "dense 'dense1': input must be [batch, features], got f32[8,1,28,28] (add a flatten before it)");
}

TEST(Session, RunChecksInputs) {
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({4, 5}));
  b.output("y", b.dense(x, 3));
  auto model = b.build();
  ASSERT_TRUE(model);
  shoal::Session session({.device = shoal::DeviceKind::Cpu});
  auto exe = session.compile(*model);
  ASSERT_TRUE(exe);
  auto missing = exe->run({});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message(), "missing input 'x' (f32[4,5])");
  auto wrong = exe->run({{"x", shoal::Tensor(shoal::DType::F32, {4, 6})}});
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().message(), "input 'x' expects f32[4,5], got f32[4,6]");
}

TEST(Session, WeightsRoundTripThroughSafetensors) {
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({2, 4}));
  b.output("y", b.dense(x, 3, shoal::Activation::Tanh));
  auto model = b.build();
  ASSERT_TRUE(model);
  std::string path = shoal::test::tempDir() + "/w.safetensors";
  shoal::Session s1({.device = shoal::DeviceKind::Cpu, .seed = 1});
  shoal::Session s2({.device = shoal::DeviceKind::Cpu, .seed = 2});
  auto a = s1.compile(*model);
  auto c = s2.compile(*model);
  ASSERT_TRUE(a && c);
  EXPECT_NE(a->parameters().at("dense1.weight").toDoubles(), c->parameters().at("dense1.weight").toDoubles());
  ASSERT_TRUE(a->saveWeights(path));
  ASSERT_TRUE(c->loadWeights(path));
  EXPECT_EQ(a->parameters().at("dense1.weight").toDoubles(), c->parameters().at("dense1.weight").toDoubles());
  auto in = shoal::Tensor::fromDoubles(shoal::DType::F32, {2, 4}, std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_EQ(a->run({{"x", in}})->at("y").toDoubles(), c->run({{"x", in}})->at("y").toDoubles());
}

TEST(Session, LoadPipelineRendersDiagnostics) {
  auto bad = shoal::loadPipeline(shoal::test::sourcePath("tests/frontend/invalid/sem_unknown_op.mmd"));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("error: unknown op 'conv3d' (did you mean 'conv2d'?)\n"), std::string::npos);
  auto good = shoal::loadPipeline(shoal::test::sourcePath("examples/mnist_cnn.mmd"));
  ASSERT_TRUE(good) << good.error().message();
  EXPECT_TRUE(good->trains());
  EXPECT_EQ(good->model().outputs(), std::vector<std::string>{"logits"});
}

}  // namespace
