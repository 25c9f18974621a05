// onnx_train_parity: trains an ONNX model through shoal's public API on batches PyTorch wrote,
// step by step, and writes the loss of every step -- the shoal half of bench/onnx_train_parity.sh,
// which sets these losses beside PyTorch's own (float64, fp32 on the CPU, fp32 on the GPU) for
// the same initial weights and the same batches.
//
// The case folder (bench/onnx_train_torch.py writes it):
//   model.onnx    the model, its initializers the initial weights (exported in training mode)
//   spec.json     {"input": {"name", "dtype", "shape"}, "steps": N,
//                  "optimizer": {"kind": "sgd"|"adamw", "lr", "momentum", "weight_decay"}}
//   step<k>_x.bin       the input of step k, raw little-endian (f32 or i64), row-major
//   step<k>_labels.bin  its class indices (i64)
// The model becomes a pipeline node (`m[onnx: path=model.onnx]` after an input of the batch's
// shape), trained by a Trainer with softmax cross-entropy over its first output -- what an app
// fine-tuning an exported model does.
//
//   onnx_train_parity --case DIR [--device cpu|cuda] [--precision fp32|tf32|bf16] [--json out.json]
//                     [--steps N (the first N of the case's)] [--verbose (compile and cache reports)]
//                     [--profile (the time per op kind of the steps, on stderr at the end)]
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <shoal/shoal.h>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

int fail(const std::string& what) {
  std::fprintf(stderr, "onnx_train_parity: %s\n", what.c_str());
  return 1;
}

// A raw little-endian array of `type`'s element count; nullopt when the file is not that size.
std::optional<shoal::Tensor> readRaw(const fs::path& path, const shoal::TensorType& type) {
  shoal::Tensor t(type.dtype, type.shape);
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  f.read(static_cast<char*>(t.raw()), std::streamsize(t.byteSize()));
  if (f.gcount() != std::streamsize(t.byteSize()) || f.peek() != std::char_traits<char>::eof()) return std::nullopt;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, device = "cpu", precision = "fp32", json;
  bool verbose = false, profile = false;
  int64_t maxSteps = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--verbose" || a == "--profile") {
      (a == "--verbose" ? verbose : profile) = true;
      continue;
    }
    if (i + 1 >= argc) return fail(a + " needs a value");
    std::string v = argv[++i];
    if (a == "--case") dir = v;
    else if (a == "--device") device = v;
    else if (a == "--precision") precision = v;
    else if (a == "--json") json = v;
    else if (a == "--steps") {
      char* end = nullptr;
      maxSteps = std::strtoll(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || maxSteps < 1) return fail("--steps must be a whole number >= 1, got '" + v + "'");
    } else return fail("unknown argument '" + a + "' (see the comment at the top of bench/onnx_train_parity.cpp)");
  }
  if (dir.empty()) return fail("--case DIR is required");
  if (device != "cuda" && device != "cpu") return fail("--device must be cuda or cpu, got '" + device + "'");
  nlohmann::json spec;
  {
    std::ifstream f(fs::path(dir) / "spec.json");
    if (!f) return fail((fs::path(dir) / "spec.json").string() + ": cannot open");
    try {
      f >> spec;
    } catch (const std::exception& e) {
      return fail((fs::path(dir) / "spec.json").string() + ": " + e.what());
    }
  }
  shoal::SessionOptions opts;
  opts.verbose = verbose;
  opts.profile = profile;
  opts.device = device == "cuda" ? shoal::DeviceKind::Cuda : shoal::DeviceKind::Cpu;
  if (precision == "fp32") opts.precision = shoal::Precision::Fp32;
  else if (precision == "tf32") opts.precision = shoal::Precision::Tf32;
  else if (precision == "bf16") opts.precision = shoal::Precision::Bf16;
  else return fail("--precision must be fp32, tf32 or bf16, got '" + precision + "'");

  shoal::TensorType inType;
  int64_t steps = 0;
  shoal::TrainingOptions training;
  training.loss = shoal::Loss::CrossEntropy;
  try {
    const auto& in = spec.at("input");
    auto dt = shoal::parseDType(in.at("dtype").get<std::string>());
    if (!dt) return fail("spec.json: unknown dtype " + in.at("dtype").dump());
    inType = {*dt, in.at("shape").get<std::vector<int64_t>>()};
    steps = spec.at("steps").get<int64_t>();
    if (steps < 1) return fail("spec.json: steps must be at least 1");
    if (maxSteps > 0) steps = std::min(steps, maxSteps);
    const auto& o = spec.at("optimizer");
    const std::string kind = o.at("kind").get<std::string>();
    if (kind == "sgd")
      training.optimizer = shoal::optim::SGD{.lr = o.at("lr").get<double>(), .momentum = o.value("momentum", 0.0),
                                             .weightDecay = o.value("weight_decay", 0.0)};
    else if (kind == "adamw")
      training.optimizer = shoal::optim::AdamW{.lr = o.at("lr").get<double>(), .weightDecay = o.value("weight_decay", 0.0)};
    else
      return fail("spec.json: optimizer kind must be sgd or adamw, got '" + kind + "'");
  } catch (const std::exception& e) {
    return fail("spec.json: " + std::string(e.what()));
  }

  // The model as a pipeline node, the pipeline written into the case folder.
  const fs::path pipe = fs::path(dir) / "shoal_train.mmd";
  {
    std::ofstream f(pipe);
    f << "flowchart TD\n"
      << fmt::format("  x[input: shape={} dtype={}] --> m[onnx: path={}]\n", fmt::join(inType.shape, "x"),
                     shoal::dtypeName(inType.dtype), fs::absolute(fs::path(dir) / "model.onnx").string())
      << "  m --> o[output: name=logits]\n";
  }
  using Clock = std::chrono::steady_clock;
  auto msSince = [](Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
  };
  const auto t0 = Clock::now();
  auto pipeline = shoal::loadPipeline(pipe.string());
  if (!pipeline) return fail(pipeline.error().str());
  auto trainer = shoal::Trainer::create(pipeline->model(), training, opts);
  if (!trainer) return fail(trainer.error().str());
  const double setupMs = msSince(t0);

  const shoal::TensorType labelType{shoal::DType::I64, {inType.shape.at(0)}};
  std::vector<double> losses, stepMs;
  for (int64_t k = 0; k < steps; ++k) {
    const fs::path xp = fs::path(dir) / fmt::format("step{}_x.bin", k);
    const fs::path lp = fs::path(dir) / fmt::format("step{}_labels.bin", k);
    auto x = readRaw(xp, inType);
    auto labels = readRaw(lp, labelType);
    if (!x || !labels) return fail((x ? lp : xp).string() + ": missing, or not the size spec.json gives");
    const auto ts = Clock::now();
    auto st = trainer->step({{"x", *x}, {"labels", *labels}});
    if (!st) return fail(fmt::format("step {}: {}", k, st.error().str()));
    stepMs.push_back(msSince(ts));  // the first compiles the step
    losses.push_back(st->loss);
  }
  std::vector<double> later(stepMs.begin() + 1, stepMs.end());
  std::sort(later.begin(), later.end());
  const double medianMs = later.empty() ? stepMs[0] : later[later.size() / 2];
  std::printf("%s on %s (%s): loss %.6f -> %.6f over %lld steps; set-up %.0f ms, first step %.0f ms, "
              "later steps %.2f ms (median)\n",
              dir.c_str(), device.c_str(), precision.c_str(), losses.front(), losses.back(), (long long)steps, setupMs,
              stepMs[0], medianMs);
  if (profile) std::fprintf(stderr, "time per op kind over the %lld steps:\n%s", (long long)steps, trainer->profile().c_str());
  if (!json.empty()) {
    std::ofstream f(json);
    f << nlohmann::json{{"case", dir}, {"device", device}, {"precision", precision}, {"losses", losses},
                          {"setup_ms", setupMs}, {"step_ms", stepMs}}.dump() << "\n";
  }
  return 0;
}
