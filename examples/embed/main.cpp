// Embedding shoal: build an MLP with the C++ builder, compile it for the best device, run it,
// and check the logits against the same arithmetic done here by hand in double precision.
#include <shoal/shoal.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

int main() {
  const int64_t batch = 4, in = 784, hidden = 128, classes = 10;
  shoal::GraphBuilder b("mlp");
  auto x = b.input("x", shoal::f32({batch, in}));
  auto h = b.dense(x, hidden, shoal::Activation::Relu);
  b.output("logits", b.dense(h, classes));
  auto model = b.build();
  if (!model) {
    std::fprintf(stderr, "%s\n", model.error().str().c_str());
    return 1;
  }

  shoal::Session session({.device = shoal::DeviceKind::Auto, .seed = 7});
  auto exe = session.compile(*model);
  if (!exe) {
    std::fprintf(stderr, "%s\n", exe.error().str().c_str());
    return 1;
  }
  std::printf("device: %s\n", exe->device().c_str());

  shoal::Tensor input(shoal::DType::F32, {batch, in});
  for (int64_t i = 0; i < input.numElements(); ++i) input.set(i, std::sin(0.01 * double(i)));
  auto out = exe->run({{"x", input}});
  if (!out) {
    std::fprintf(stderr, "%s\n", out.error().str().c_str());
    return 1;
  }
  const shoal::Tensor& logits = out->at("logits");

  // The same MLP by hand: relu(x W1^T + b1) W2^T + b2.
  auto params = exe->parameters();
  const shoal::Tensor& w1 = params.at("dense1.weight");
  const shoal::Tensor& b1 = params.at("dense1.bias");
  const shoal::Tensor& w2 = params.at("dense2.weight");
  const shoal::Tensor& b2 = params.at("dense2.bias");
  double worst = 0;
  for (int64_t n = 0; n < batch; ++n) {
    std::vector<double> hv(hidden);
    for (int64_t j = 0; j < hidden; ++j) {
      double acc = b1.at(j);
      for (int64_t k = 0; k < in; ++k) acc += input.at(n * in + k) * w1.at(j * in + k);
      hv[size_t(j)] = acc > 0 ? acc : 0;
    }
    for (int64_t c = 0; c < classes; ++c) {
      double acc = b2.at(c);
      for (int64_t j = 0; j < hidden; ++j) acc += hv[size_t(j)] * w2.at(c * hidden + j);
      worst = std::max(worst, std::abs(acc - logits.at(n * classes + c)) / (1.0 + std::abs(acc)));
    }
  }
  std::printf("logits[0] = [");
  for (int64_t c = 0; c < classes; ++c) std::printf("%s%.4f", c ? ", " : "", logits.at(c));
  std::printf("]\nmax error vs double reference (|d| / (1 + |ref|)): %.2e\n", worst);
  if (worst > 1e-4) {
    std::fprintf(stderr, "mismatch\n");
    return 1;
  }
  return 0;
}
