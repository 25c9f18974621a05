// The public Trainer: training a builder model on the app's tensors (fit, step, a batch
// source), evaluation, checkpoints, schedules, and a pipeline's checkpoint loaded into the
// same architecture built in C++.
#include <gtest/gtest.h>
#include <shoal/shoal.h>

#include <cmath>
#include <cstring>
#include <numbers>

#include "runtime/data/idx.h"
#include "test_util.h"

namespace {

using shoal::Tensor;
using shoal::TensorMap;

// Two interleaved spirals, `perClass` points each: features f32 [2n, 2], labels i64 [2n].
TensorMap twoSpirals(int64_t perClass, uint64_t seed) {
  Tensor x(shoal::DType::F32, {2 * perClass, 2});
  Tensor y(shoal::DType::I64, {2 * perClass});
  uint64_t s = seed * 2654435761u + 1;
  auto noise = [&] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return (double(s >> 11) / 9007199254740992.0 - 0.5) * 0.1;
  };
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t i = 0; i < perClass; ++i) {
      double t = 0.1 + 0.9 * double(i) / double(perClass);
      double a = 2 * std::numbers::pi * t + double(c) * std::numbers::pi;  // one turn each
      int64_t row = c * perClass + i;
      x.set(row * 2, t * std::cos(a) + noise());
      x.set(row * 2 + 1, t * std::sin(a) + noise());
      y.set(row, double(c));
    }
  return {{"x", x}, {"labels", y}};
}

shoal::Model spiralModel() {
  shoal::GraphBuilder b("spirals");
  auto x = b.input("x", shoal::f32({32, 2}));
  auto h = b.dense(x, 32, {.activation = shoal::Activation::Tanh, .name = "fc1"});
  h = b.dense(h, 32, {.activation = shoal::Activation::Tanh, .name = "fc2"});
  b.output("logits", b.dense(h, 2, {.name = "head"}));
  auto m = b.build();
  EXPECT_TRUE(m) << m.error().str();
  return *m;
}

shoal::Trainer spiralTrainer(shoal::Optimizer opt, uint64_t seed = 0) {
  auto t = shoal::Trainer::create(spiralModel(), {.loss = shoal::Loss::CrossEntropy, .optimizer = opt},
                                  {.device = shoal::DeviceKind::Cpu, .seed = seed});
  EXPECT_TRUE(t) << t.error().str();
  return *t;
}

TEST(Trainer, FitsTwoSpiralsFromTheAppsTensors) {
  auto data = shoal::TensorDataset::create(twoSpirals(200, 1));
  ASSERT_TRUE(data) << data.error().str();
  auto trainer = spiralTrainer(shoal::optim::Adam{.lr = 0.01});
  std::vector<shoal::EpochStats> seen;
  auto report = trainer.fit(*data, {.epochs = 60, .batchSize = 32, .onEpoch = [&](const shoal::EpochStats& e) {
                                      seen.push_back(e);
                                    }});
  ASSERT_TRUE(report) << report.error().str();
  ASSERT_EQ(report->epochs.size(), 60u);
  EXPECT_EQ(seen.size(), 60u);
  EXPECT_EQ(report->steps, 60 * 13);  // 400 rows in batches of 32: 12 full and one of 16
  EXPECT_EQ(trainer.steps(), 60 * 13);
  EXPECT_LT(report->epochs.back().loss, 0.5 * report->epochs.front().loss);
  auto eval = trainer.evaluate(*data);
  ASSERT_TRUE(eval) << eval.error().str();
  EXPECT_EQ(eval->examples, 400);
  EXPECT_GT(*eval->accuracy, 0.95);
  // The report returns the trained parameters, the same the trainer and its session hold.
  auto params = trainer.parameters();
  ASSERT_EQ(report->parameters.size(), 6u);
  for (auto& [name, t] : params) EXPECT_EQ(report->parameters.at(name).toDoubles(), t.toDoubles()) << name;
  EXPECT_EQ(trainer.session().parameters().at("head.weight").toDoubles(), params.at("head.weight").toDoubles());
}

TEST(Trainer, ProfileCountsTheSteps) {
  auto spirals = twoSpirals(24, 2);
  auto data = shoal::TensorDataset::create(spirals);
  ASSERT_TRUE(data);
  auto t = shoal::Trainer::create(spiralModel(), {.loss = shoal::Loss::CrossEntropy, .optimizer = shoal::optim::Adam{}},
                                  {.device = shoal::DeviceKind::Cpu, .profile = true});
  ASSERT_TRUE(t) << t.error().str();
  std::vector<int64_t> rows(32);
  for (int64_t r = 0; r < 32; ++r) rows[size_t(r)] = r;
  auto batch = data->getBatch(rows);
  ASSERT_TRUE(batch);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(t->step(*batch));
  const std::string p = t->profile();
  // Three steps: each of the three dense layers' forward ran three times.
  EXPECT_NE(p.find("dense"), std::string::npos) << p;
  EXPECT_NE(p.find(" 9 calls"), std::string::npos) << p;
  EXPECT_EQ(spiralTrainer(shoal::optim::Adam{}).profile(), "");
}

TEST(Trainer, StepAndFitRunOneLoop) {
  // fit() over unshuffled batches of 16 is the same arithmetic as step() on those batches.
  auto spirals = twoSpirals(24, 2);
  auto data = shoal::TensorDataset::create(spirals);
  ASSERT_TRUE(data);
  auto a = spiralTrainer(shoal::optim::Adam{.lr = 0.01}, 5);
  auto b = spiralTrainer(shoal::optim::Adam{.lr = 0.01}, 5);
  auto report = a.fit(*data, {.epochs = 2, .batchSize = 16, .shuffle = false});
  ASSERT_TRUE(report) << report.error().str();
  double lastLoss = 0;
  for (int epoch = 0; epoch < 2; ++epoch)
    for (int64_t begin = 0; begin < 48; begin += 16) {
      std::vector<int64_t> rows;
      for (int64_t r = begin; r < begin + 16; ++r) rows.push_back(r);
      auto batch = data->getBatch(rows);
      ASSERT_TRUE(batch);
      auto s = b.step(*batch);
      ASSERT_TRUE(s) << s.error().str();
      EXPECT_TRUE(s->accuracy.has_value());
      lastLoss = s->loss;
    }
  EXPECT_GT(lastLoss, 0);
  EXPECT_EQ(a.steps(), 6);
  EXPECT_EQ(b.steps(), 6);
  auto pa = a.parameters(), pb = b.parameters();
  for (auto& [name, t] : pa) EXPECT_EQ(t.toDoubles(), pb.at(name).toDoubles()) << name;
}

TEST(Trainer, RegressesANoisySineWithMeanSquaredError) {
  // y = sin(3x) + noise on [-1, 1]; the model's output is "y" and the data's "targets".
  int64_t n = 256;
  Tensor x(shoal::DType::F32, {n, 1}), y(shoal::DType::F32, {n, 1});
  for (int64_t i = 0; i < n; ++i) {
    double v = -1 + 2 * double(i) / double(n - 1);
    x.set(i, v);
    y.set(i, std::sin(3 * v) + 0.05 * std::sin(97.0 * double(i)));
  }
  auto data = shoal::TensorDataset::create({{"x", x}, {"targets", y}});
  ASSERT_TRUE(data);
  shoal::GraphBuilder b("sine");
  auto in = b.input("x", shoal::f32({16, 1}));
  auto h = b.dense(in, 32, {.activation = shoal::Activation::Tanh, .name = "hidden"});
  b.output("y", b.dense(h, 1, {.name = "out"}));
  auto trainer = shoal::Trainer::create(*b.build(),
                                        {.loss = shoal::Loss::MeanSquaredError, .optimizer = shoal::optim::Adam{.lr = 0.01}, .output = "y"},
                                        {.device = shoal::DeviceKind::Cpu, .seed = 1});
  ASSERT_TRUE(trainer) << trainer.error().str();
  auto before = trainer->evaluate(*data);
  ASSERT_TRUE(before) << before.error().str();
  auto report = trainer->fit(*data, {.epochs = 150, .batchSize = 16});
  ASSERT_TRUE(report) << report.error().str();
  auto after = trainer->evaluate(*data, 100);
  ASSERT_TRUE(after) << after.error().str();
  EXPECT_FALSE(after->accuracy.has_value());
  EXPECT_LT(after->loss, 0.02);
  EXPECT_LT(after->loss, 0.1 * before->loss);
  // The in-graph training loss of the last epoch and the host's evaluation agree roughly.
  EXPECT_NEAR(report->epochs.back().loss, after->loss, 0.02);
  // The trained model answers at another batch size through its session.
  auto session = trainer->session();
  auto out = session.run({{"x", Tensor::fromDoubles(shoal::DType::F32, {3, 1}, std::vector<double>{-0.5, 0, 0.5})}});
  ASSERT_TRUE(out) << out.error().str();
  EXPECT_NEAR(out->at("y").at(0), std::sin(-1.5), 0.15);
  EXPECT_NEAR(out->at("y").at(1), 0.0, 0.15);
  EXPECT_NEAR(out->at("y").at(2), std::sin(1.5), 0.15);
}

TEST(Trainer, CheckpointsResumeExactlyAndWeightsLoadIntoASession) {
  auto data = shoal::TensorDataset::create(twoSpirals(40, 3));
  ASSERT_TRUE(data);
  std::string dir = shoal::test::tempDir();
  auto a = spiralTrainer(shoal::optim::Adam{.lr = 0.01}, 1);
  ASSERT_TRUE(a.fit(*data, {.epochs = 2}));
  ASSERT_TRUE(a.saveCheckpoint(dir + "/ckpt.safetensors"));
  ASSERT_TRUE(a.saveWeights(dir + "/w.safetensors"));
  auto b = spiralTrainer(shoal::optim::Adam{.lr = 0.01}, 99);
  ASSERT_TRUE(b.loadCheckpoint(dir + "/ckpt.safetensors"));
  EXPECT_EQ(b.steps(), a.steps());
  auto batch = data->getBatch(std::vector<int64_t>{0, 5, 41, 77});
  ASSERT_TRUE(batch);
  auto sa = a.step(*batch), sb = b.step(*batch);
  ASSERT_TRUE(sa && sb);
  EXPECT_EQ(sa->loss, sb->loss);
  for (auto& [name, t] : a.parameters()) EXPECT_EQ(t.toDoubles(), b.parameters().at(name).toDoubles()) << name;

  // Weights only: a Session of the same architecture answers like the trainer did.
  auto before = a.session().parameters();
  auto session = shoal::Session::create(spiralModel(), {.device = shoal::DeviceKind::Cpu});
  ASSERT_TRUE(session);
  ASSERT_TRUE(session->loadWeights(dir + "/w.safetensors"));
  auto c = spiralTrainer(shoal::optim::Adam{.lr = 0.01}, 7);
  ASSERT_TRUE(c.loadWeights(dir + "/w.safetensors"));
  EXPECT_EQ(c.steps(), 0);
  Tensor probe = Tensor::fromDoubles(shoal::DType::F32, {2, 2}, std::vector<double>{0.1, 0.2, -0.3, 0.4});
  auto fromSession = session->run({{"x", probe}});
  auto fromTrainer = c.session().run({{"x", probe}});
  ASSERT_TRUE(fromSession && fromTrainer);
  EXPECT_EQ(fromSession->at("logits").toDoubles(), fromTrainer->at("logits").toDoubles());
  // A trainer's session shares its parameters: a step shows in it.
  ASSERT_TRUE(a.step(*batch));
  EXPECT_NE(a.session().parameters().at("head.weight").toDoubles(), before.at("head.weight").toDoubles());
}

TEST(Trainer, LearningRateScheduleIsPerEpoch) {
  auto data = shoal::TensorDataset::create(twoSpirals(32, 4));
  ASSERT_TRUE(data);
  auto a = spiralTrainer(shoal::optim::SGD{.lr = 0.5, .momentum = 0.9}, 2);
  auto b = spiralTrainer(shoal::optim::SGD{.lr = 0.5, .momentum = 0.9}, 2);
  auto report = a.fit(*data, {.epochs = 2, .batchSize = 16, .shuffle = false,
                              .learningRate = [](int64_t epoch) { return epoch == 1 ? 0.5 : 0.05; }});
  ASSERT_TRUE(report) << report.error().str();
  EXPECT_EQ(report->epochs[0].learningRate, 0.5);
  EXPECT_EQ(report->epochs[1].learningRate, 0.05);
  EXPECT_EQ(a.learningRate(), 0.05);
  ASSERT_TRUE(b.fit(*data, {.epochs = 1, .batchSize = 16, .shuffle = false}));
  ASSERT_TRUE(b.setLearningRate(0.05));
  ASSERT_TRUE(b.fit(*data, {.epochs = 1, .batchSize = 16, .shuffle = false}));
  for (auto& [name, t] : a.parameters()) EXPECT_EQ(t.toDoubles(), b.parameters().at(name).toDoubles()) << name;
  auto bad = b.setLearningRate(-1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "the learning rate must be positive, got -1");
}

// Batches of 5, 8 and 3 rows, every epoch: an app's own source.
class UnevenBatches : public shoal::BatchSource {
 public:
  explicit UnevenBatches(shoal::Dataset& data) : data_(data) {}
  shoal::Expected<void> startEpoch(int64_t) override {
    next_ = 0;
    return {};
  }
  shoal::Expected<std::optional<TensorMap>> next() override {
    static const int64_t kSizes[] = {5, 8, 3};
    if (next_ == 3) return std::optional<TensorMap>();
    std::vector<int64_t> rows;
    int64_t begin = next_ * 8;
    for (int64_t i = 0; i < kSizes[next_]; ++i) rows.push_back(begin + i);
    ++next_;
    auto b = data_.getBatch(rows);
    if (!b) return shoal::Unexpected(b.error());
    return std::optional<TensorMap>(std::move(*b));
  }

 private:
  shoal::Dataset& data_;
  int next_ = 0;
};

TEST(Trainer, FitsAnAppsBatchSourceWithVaryingBatchSizes) {
  auto data = shoal::TensorDataset::create(twoSpirals(20, 5));
  ASSERT_TRUE(data);
  auto validation = shoal::Subset::range(*data, 30, 40);
  auto trainer = spiralTrainer(shoal::optim::Adam{.lr = 0.01});
  UnevenBatches source(*data);
  std::vector<shoal::StepProgress> progress;
  auto report = trainer.fit(source, {.epochs = 2, .validation = &validation,
                                     .onStep = [&](const shoal::StepProgress& p) { progress.push_back(p); }});
  ASSERT_TRUE(report) << report.error().str();
  EXPECT_EQ(report->steps, 6);
  ASSERT_EQ(progress.size(), 6u);
  EXPECT_EQ(progress[2].step, 3);
  EXPECT_EQ(progress[2].steps, 0);  // the source does not say how many batches it has
  ASSERT_TRUE(report->epochs[1].validationAccuracy.has_value());
  ASSERT_TRUE(report->epochs[1].validationLoss.has_value());
  auto v = trainer.evaluate(validation);
  ASSERT_TRUE(v);
  EXPECT_EQ(*report->epochs[1].validationAccuracy, *v->accuracy);
  EXPECT_DOUBLE_EQ(*report->epochs[1].validationLoss, v->loss);
}

TEST(Trainer, ErrorsNameWhatIsWrong) {
  auto data = shoal::TensorDataset::create(twoSpirals(8, 6));
  ASSERT_TRUE(data);
  auto trainer = spiralTrainer(shoal::optim::Adam{});
  auto noLabels = trainer.step({{"x", data->tensors().at("x")}});
  ASSERT_FALSE(noLabels);
  EXPECT_EQ(noLabels.error().message(), "missing input 'labels' (i64[16])");
  EXPECT_EQ(trainer.steps(), 0);
  auto noData = trainer.fit();
  ASSERT_FALSE(noData);
  EXPECT_EQ(noData.error().message(),
            "this Trainer has no data of its own (it was made from a Model): pass fit() a Dataset or a BatchSource");

  auto lr = shoal::Trainer::create(spiralModel(), {.optimizer = shoal::optim::SGD{.lr = 0}}, {.device = shoal::DeviceKind::Cpu});
  ASSERT_FALSE(lr);
  EXPECT_EQ(lr.error().message(), "the learning rate must be positive, got 0");
  auto output = shoal::Trainer::create(spiralModel(), {.output = "scores"}, {.device = shoal::DeviceKind::Cpu});
  ASSERT_FALSE(output);
  EXPECT_EQ(output.error().message(), "the model has no output named 'scores' to train");

  auto mismatched = shoal::TensorDataset::create({{"x", Tensor(shoal::DType::F32, {4, 2})}, {"labels", Tensor(shoal::DType::I64, {3})}});
  ASSERT_FALSE(mismatched);
  EXPECT_EQ(mismatched.error().message(), "tensors disagree on the number of examples: 'labels' has 3, 'x' has 4");
}

// The MNIST CNN of examples/mnist_cnn.mmd, built in C++ with the pipeline's node ids as names.
shoal::Model mnistCnnByHand(int64_t batch) {
  shoal::GraphBuilder b("mnist_cnn");
  auto x = b.input("x", {shoal::DType::U8, {batch, 1, 28, 28}});
  auto pre = b.scale(b.cast(x, shoal::DType::F32), 1.0 / 255, 0, "pre");
  auto c1 = b.conv2d(pre, 32, 3, 3, {.activation = shoal::Activation::Relu, .name = "c1"});
  auto p1 = b.maxPool2d(c1, 2, 2, {.name = "p1"});
  auto d1 = b.dense(b.flatten(p1, "f"), 64, {.activation = shoal::Activation::Relu, .name = "d1"});
  b.output("logits", b.dense(d1, 10, {.name = "d2"}));
  auto m = b.build();
  EXPECT_TRUE(m) << m.error().str();
  return *m;
}

TEST(Trainer, APipelinesCheckpointLoadsIntoTheSameArchitectureBuiltInCpp) {
  auto pipeline = shoal::loadPipeline(shoal::test::sourcePath("examples/mnist_cnn.mmd"));
  ASSERT_TRUE(pipeline) << pipeline.error().message();
  auto trainer = shoal::Trainer::create(*pipeline, {.device = shoal::DeviceKind::Cpu});
  ASSERT_TRUE(trainer) << trainer.error().str();
  auto other = shoal::TensorDataset::create({{"x", Tensor(shoal::DType::U8, {1, 1, 28, 28})}});
  ASSERT_TRUE(other);
  auto ownSplit = trainer->fit({.validation = &*other});
  ASSERT_FALSE(ownSplit);
  EXPECT_EQ(ownSplit.error().message(), "FitOptions::validation: a pipeline validates on its own split (train: validation=FRACTION)");
  auto report = trainer->fit({.epochs = 1, .stepsPerEpoch = 5});
  ASSERT_TRUE(report) << report.error().str();
  EXPECT_EQ(report->steps, 5);
  ASSERT_TRUE(report->testAccuracy.has_value());
  std::string path = shoal::test::tempDir() + "/cnn.safetensors";
  ASSERT_TRUE(trainer->saveWeights(path));

  // Ten test digits, run at batch 10 by both.
  auto test = shoal::loadMnist(shoal::test::sourcePath("data/mnist-10k"), false);
  ASSERT_TRUE(test) << test.error().str();
  Tensor images(shoal::DType::U8, {10, 1, 28, 28});
  std::memcpy(images.raw(), test->images.raw(), images.byteSize());
  auto fromPipeline = trainer->session().run({{"x", images}});
  ASSERT_TRUE(fromPipeline) << fromPipeline.error().str();

  auto session = shoal::Session::create(mnistCnnByHand(64), {.device = shoal::DeviceKind::Cpu});
  ASSERT_TRUE(session) << session.error().str();
  auto loaded = session->loadWeights(path);
  ASSERT_TRUE(loaded) << loaded.error().str();
  auto fromBuilder = session->run({{"x", images}});
  ASSERT_TRUE(fromBuilder) << fromBuilder.error().str();
  EXPECT_EQ(fromBuilder->at("logits").toDoubles(), fromPipeline->at("logits").toDoubles());

  // Default names do not match a pipeline's: the error names the missing tensor.
  shoal::GraphBuilder b;
  auto x = b.input("x", {shoal::DType::U8, {1, 1, 28, 28}});
  auto h = b.flatten(b.maxPool2d(b.conv2d(b.scale(b.cast(x, shoal::DType::F32), 1.0 / 255), 32, 3, 3), 2, 2));
  b.output("logits", b.dense(b.dense(h, 64), 10));
  auto unnamed = shoal::Session::create(*b.build(), {.device = shoal::DeviceKind::Cpu});
  ASSERT_TRUE(unnamed);
  auto refused = unnamed->loadWeights(path);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message(), path + ": checkpoint has no tensor 'conv2d_0.weight' (f32[32,1,3,3])");
}

}  // namespace
