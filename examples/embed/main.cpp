// Embedding shoal in an app: build a classifier with named layers, train it on two spirals
// generated here, save its weights, load them into a fresh Session, run it at another batch
// size, and check the answers against the same arithmetic done here in double precision.
//
//   embed_spirals [WEIGHTS.safetensors]     (default: spirals.safetensors in the working dir)
#include <shoal/shoal.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <string>

namespace {

// Two interleaved spirals of one turn each, with a little deterministic noise: features
// f32 [2n, 2] under "x" and classes i64 [2n] under "labels".
shoal::TensorMap twoSpirals(int64_t perClass, uint64_t seed) {
  shoal::Tensor x(shoal::DType::F32, {2 * perClass, 2});
  shoal::Tensor labels(shoal::DType::I64, {2 * perClass});
  uint64_t s = seed;
  auto noise = [&] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return (double(s >> 11) / 9007199254740992.0 - 0.5) * 0.08;
  };
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t i = 0; i < perClass; ++i) {
      double t = 0.1 + 0.9 * (double(i) + 0.5) / double(perClass);
      double angle = 2 * std::numbers::pi * t + double(c) * std::numbers::pi;
      int64_t row = c * perClass + i;
      x.set(row * 2, t * std::cos(angle) + noise());
      x.set(row * 2 + 1, t * std::sin(angle) + noise());
      labels.set(row, double(c));
    }
  return {{"x", x}, {"labels", labels}};
}

// The classifier: 2 -> 32 (tanh) -> 32 (tanh) -> 2 logits, built for batches of 32.
shoal::Expected<shoal::Model> buildModel() {
  shoal::GraphBuilder b("spirals");
  auto x = b.input("x", shoal::f32({32, 2}));
  auto h = b.dense(x, 32, {.activation = shoal::Activation::Tanh, .name = "fc1"});
  h = b.dense(h, 32, {.activation = shoal::Activation::Tanh, .name = "fc2"});
  b.output("logits", b.dense(h, 2, {.name = "head"}));
  return b.build();
}

int failWith(const shoal::Error& e) {
  std::fprintf(stderr, "%s\n", e.str().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string weights = argc > 1 ? argv[1] : "spirals.safetensors";
  auto model = buildModel();
  if (!model) return failWith(model.error());

  // Training data and a held-out validation set, both generated here.
  auto train = shoal::TensorDataset::create(twoSpirals(200, 1));
  auto validation = shoal::TensorDataset::create(twoSpirals(50, 2));
  if (!train) return failWith(train.error());
  if (!validation) return failWith(validation.error());

  auto trainer = shoal::Trainer::create(*model, {.loss = shoal::Loss::CrossEntropy, .optimizer = shoal::optim::Adam{.lr = 0.01}},
                                        {.device = shoal::DeviceKind::Auto, .seed = 7});
  if (!trainer) return failWith(trainer.error());
  std::printf("device: %s\n", trainer->device().c_str());
  auto report = trainer->fit(*train, {.epochs = 60,
                                      .batchSize = 32,
                                      .validation = &*validation,
                                      .onEpoch = [](const shoal::EpochStats& e) {
                                        if (e.epoch % 10 == 0)
                                          std::printf("epoch %2lld  loss %.4f  accuracy %.3f  validation accuracy %.3f\n",
                                                      static_cast<long long>(e.epoch), e.loss, e.accuracy,
                                                      e.validationAccuracy.value_or(0));
                                      }});
  if (!report) return failWith(report.error());
  auto eval = trainer->evaluate(*validation);
  if (!eval) return failWith(eval.error());
  std::printf("validation accuracy %.3f (loss %.4f) after %lld steps\n", eval->accuracy.value_or(0), eval->loss,
              static_cast<long long>(trainer->steps()));
  if (eval->accuracy.value_or(0) < 0.9) {
    std::fprintf(stderr, "the model did not learn the spirals\n");
    return 1;
  }
  if (auto ok = trainer->saveWeights(weights); !ok) return failWith(ok.error());
  std::printf("weights saved to %s (%zu tensors)\n", weights.c_str(), report->parameters.size());

  // A fresh inference session on the same architecture, the weights loaded from the file,
  // fed 5 points: a batch size the model was not built for.
  auto session = shoal::Session::create(*model, {.device = shoal::DeviceKind::Auto});
  if (!session) return failWith(session.error());
  if (auto ok = session->loadWeights(weights); !ok) return failWith(ok.error());
  auto points = validation->getBatch(std::vector<int64_t>{0, 20, 49, 50, 99});
  if (!points) return failWith(points.error());
  const shoal::Tensor& x = points->at("x");
  auto out = session->run({{"x", x}});
  if (!out) return failWith(out.error());
  const shoal::Tensor& logits = out->at("logits");
  std::printf("reloaded: batch of %lld -> logits %s\n", static_cast<long long>(x.shape()[0]), logits.type().str().c_str());

  // The same network by hand, in double: tanh(tanh(x W1^T + b1) W2^T + b2) W3^T + b3.
  auto p = session->parameters();
  auto layer = [&](const std::vector<double>& in, const std::string& name, bool tanhAct) {
    const shoal::Tensor& w = p.at(name + ".weight");
    const shoal::Tensor& b = p.at(name + ".bias");
    int64_t outs = w.shape()[0], ins = w.shape()[1];
    std::vector<double> y(static_cast<size_t>(outs));
    for (int64_t j = 0; j < outs; ++j) {
      double acc = b.at(j);
      for (int64_t k = 0; k < ins; ++k) acc += in[size_t(k)] * w.at(j * ins + k);
      y[size_t(j)] = tanhAct ? std::tanh(acc) : acc;
    }
    return y;
  };
  double worst = 0;
  int correct = 0;
  for (int64_t n = 0; n < x.shape()[0]; ++n) {
    std::vector<double> ref = layer(layer(layer({x.at(n * 2), x.at(n * 2 + 1)}, "fc1", true), "fc2", true), "head", false);
    for (int64_t c = 0; c < 2; ++c)
      worst = std::max(worst, std::abs(ref[size_t(c)] - logits.at(n * 2 + c)) / (1.0 + std::abs(ref[size_t(c)])));
    int64_t predicted = logits.at(n * 2 + 1) > logits.at(n * 2) ? 1 : 0;
    correct += predicted == int64_t(points->at("labels").at(n));
    std::printf("  point (%+.3f, %+.3f): class %lld (label %lld)\n", x.at(n * 2), x.at(n * 2 + 1),
                static_cast<long long>(predicted), static_cast<long long>(points->at("labels").at(n)));
  }
  std::printf("max error vs double reference (|d| / (1 + |ref|)): %.2e; %d of 5 right\n", worst, correct);
  if (worst > 1e-4) {
    std::fprintf(stderr, "mismatch\n");
    return 1;
  }
  return 0;
}
