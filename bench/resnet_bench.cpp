// resnet_bench: torchvision's ResNet-18 at 224 x 224 (its ONNX export; bench/resnet_torch.py
// writes it) through shoal's public API on one device -- what an app embedding shoal would do:
//  - inference: Session::create(model.onnx), median wall time of run() at each batch size
//    (host input in, logits out: the upload, the step, the download and one sync), and on a
//    GPU again with the input in page-locked host memory (the app's buffer registered with
//    cudaHostRegister: PyTorch's pinned "e2e") and already in GPU memory (shoal::toDevice), as
//    PyTorch's "device";
//  - training: a pipeline holding the model as a node (`m[onnx: path=...]` after an input of
//    shape Bx3x224x224), trained by a Trainer with softmax cross-entropy and SGD with momentum;
//    Trainer::step() on random images and labels (on a GPU: resident there), median wall time
//    per step (each step syncs to return its loss).
// --precision tf32|bf16|fp16 runs the convolutions on tensor cores and the GEMMs in that
// format (SessionOptions::precision); fp32, the default, computes in fp32 (no TF32; implicit GEMMs on
// the CUDA cores, the 3 x 3 stride-1 convolutions in Winograd's F(4 x 4, 3 x 3): SHOAL_CUDA_WINOGRAD).
// bench/resnet_bench.sh runs it beside PyTorch.
//
//   resnet_bench --onnx resnet18.onnx [--device cuda|cpu] [--batches 1,32,256]
//                [--train-batch 128] [--runs 30] [--steps 20] [--precision fp32] [--json out.json]
//                [--image 3x224x224] [--classes 1000]   (another model's input and outputs)
//                [--profile]   (time per op; GPU steps then run without CUDA graphs: time apart)
//                [--autotune]  (the tensor-core tiles timed on the device: SessionOptions::autotune)
//                [--verbose]   (SessionOptions::verbose: kernel cache, compile and autotune reports)
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <shoal/shoal.h>
#include <string>
#include <vector>

#if SHOAL_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

shoal::Tensor randomImages(int64_t batch, const std::vector<int64_t>& image, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  shoal::Shape shape = {batch};
  shape.insert(shape.end(), image.begin(), image.end());
  shoal::Tensor t(shoal::DType::F32, shape);
  for (int64_t i = 0; i < t.numElements(); ++i) t.set(i, normal(rng));
  return t;
}

// "1,32,256" (sep ',') or "3x224x224" (sep 'x') as integers.
std::vector<int64_t> splitInts(const std::string& list, char sep) {
  std::vector<int64_t> out;
  for (size_t pos = 0; pos < list.size();) {
    size_t end = list.find(sep, pos);
    out.push_back(std::stoll(list.substr(pos, end - pos)));
    pos = end == std::string::npos ? list.size() : end + 1;
  }
  return out;
}

int fail(const std::string& what) {
  std::fprintf(stderr, "resnet_bench: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string onnx, device = "cuda", json;
  std::vector<int64_t> batches = {1, 32, 256};
  int64_t trainBatch = 128, runs = 30, steps = 20, classes = 1000;
  std::vector<int64_t> image = {3, 224, 224};
  bool tf32 = false, profile = false, autotune = false, verbose = false;
  std::string precision = "fp32";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "resnet_bench: %s needs a value\n", a.c_str());
        std::exit(1);
      }
      return argv[++i];
    };
    if (a == "--onnx") onnx = next();
    else if (a == "--device") device = next();
    else if (a == "--json") json = next();
    else if (a == "--train-batch") trainBatch = std::stoll(next());
    else if (a == "--runs") runs = std::stoll(next());
    else if (a == "--steps") steps = std::stoll(next());
    else if (a == "--tf32") tf32 = true;
    else if (a == "--profile") profile = true;
    else if (a == "--autotune") autotune = true;
    else if (a == "--verbose") verbose = true;
    else if (a == "--precision") precision = next();
    else if (a == "--classes") classes = std::stoll(next());
    else if (a == "--image") image = splitInts(next(), 'x');
    else if (a == "--batches") batches = splitInts(next(), ',');
    else return fail("unknown argument '" + a + "' (see the comment at the top of bench/resnet_bench.cpp)");
  }
  if (onnx.empty()) return fail("--onnx FILE is required");
  if (device != "cuda" && device != "cpu") return fail("--device must be cuda or cpu");
  shoal::SessionOptions opts;
  opts.device = device == "cuda" ? shoal::DeviceKind::Cuda : shoal::DeviceKind::Cpu;
  opts.tf32 = tf32;
  opts.profile = profile;
  opts.autotune = autotune;
  opts.verbose = verbose;
  if (precision == "fp32") opts.precision = shoal::Precision::Fp32;
  else if (precision == "tf32") opts.precision = shoal::Precision::Tf32;
  else if (precision == "bf16") opts.precision = shoal::Precision::Bf16;
  else if (precision == "fp16") opts.precision = shoal::Precision::Fp16;
  else return fail("--precision must be fp32, tf32, bf16 or fp16, got '" + precision + "'");

  nlohmann::ordered_json out;
  out["model"] = onnx;
  out["tf32_gemm"] = tf32;
  out["precision"] = precision;
  out["autotune"] = autotune;

  // Inference.
  auto session = shoal::Session::create(onnx, opts);
  if (!session) return fail(session.error().str());
  out["device"] = session->device();
  const std::string inputName = session->inputs().at(0).first;
  for (int64_t batch : batches) {
    shoal::Tensor x = randomImages(batch, image, 1);
    auto t0 = Clock::now();
    auto first = session->run({{inputName, x}});
    if (!first) return fail(first.error().str());
    const double firstMs = msSince(t0);  // compiling this batch size's program included
    for (int w = 0; w < 3; ++w)
      if (!session->run({{inputName, x}})) return fail("a warm-up run failed");
    std::vector<double> ms;
    for (int64_t r = 0; r < runs; ++r) {
      t0 = Clock::now();
      auto y = session->run({{inputName, x}});
      ms.push_back(msSince(t0));
      if (!y) return fail(y.error().str());
    }
    const double med = median(ms);
    out["inference"][std::to_string(batch)] = {{"ms_median", med}, {"ms_min", *std::min_element(ms.begin(), ms.end())},
                                               {"images_per_s", double(batch) / med * 1e3}, {"first_run_ms", firstMs}};
    std::printf("inference batch %4lld: %9.3f ms (%.0f images/s; first run %.0f ms)\n", (long long)batch, med,
                double(batch) / med * 1e3, firstMs);
    if (device == "cuda") {
      // The input already in GPU memory (what PyTorch's "device" figure times): no host copy.
      auto xd = shoal::toDevice(x);
      if (!xd) return fail(xd.error().str());
      std::vector<double> dms;
      for (int64_t r = 0; r < runs + 3; ++r) {
        t0 = Clock::now();
        auto y = session->run({{inputName, *xd}});
        if (r >= 3) dms.push_back(msSince(t0));
        if (!y) return fail(y.error().str());
      }
      out["inference"][std::to_string(batch)]["ms_median_input_on_gpu"] = median(dms);
      std::printf("    input on the GPU: %9.3f ms (%.0f images/s)\n", median(dms), double(batch) / median(dms) * 1e3);
#if SHOAL_HAVE_CUDA
      // The same host tensor page-locked (run() then copies it by DMA from where it is).
      if (cudaError_t e = cudaHostRegister(x.raw(), x.byteSize(), cudaHostRegisterDefault); e != cudaSuccess)
        return fail(std::string("cudaHostRegister: ") + cudaGetErrorString(e));
      std::vector<double> pms;
      for (int64_t r = 0; r < runs + 3; ++r) {
        t0 = Clock::now();
        auto y = session->run({{inputName, x}});
        if (r >= 3) pms.push_back(msSince(t0));
        if (!y) return fail(y.error().str());
      }
      cudaHostUnregister(x.raw());
      out["inference"][std::to_string(batch)]["ms_median_pinned"] = median(pms);
      std::printf("    input pinned:     %9.3f ms (%.0f images/s)\n", median(pms), double(batch) / median(pms) * 1e3);
#endif
    }
  }

  // Training: the model as a pipeline node, the pipeline written next to the model.
  if (trainBatch > 0) {
    namespace fs = std::filesystem;
    const fs::path pipe = fs::path(onnx).parent_path() / "resnet_bench_train.mmd";
    {
      std::ofstream f(pipe);
      f << "flowchart TD\n"
        << fmt::format("  x[input: shape={}x{}] --> m[onnx: path={}]\n", trainBatch, fmt::join(image, "x"),
                       fs::absolute(onnx).string())
        << "  m --> o[output: name=logits]\n";
    }
    auto pipeline = shoal::loadPipeline(pipe.string());
    if (!pipeline) return fail(pipeline.error().str());
    shoal::TrainingOptions training;
    training.loss = shoal::Loss::CrossEntropy;
    training.optimizer = shoal::optim::SGD{.lr = 0.01, .momentum = 0.9};
    // The device memory the training step takes: free memory before the trainer is made and
    // after its first step (its arena, parameters and optimizer state, scratch, prepared blocks,
    // the cuBLAS workspace, the batch): PyTorch's max_memory_allocated's counterpart.
    size_t freeBefore = 0, freeAfter = 0, total = 0;
#if SHOAL_HAVE_CUDA
    if (device == "cuda" && cudaMemGetInfo(&freeBefore, &total) != cudaSuccess) freeBefore = 0;
#endif
    auto trainer = shoal::Trainer::create(pipeline->model(), training, opts);
    if (!trainer) return fail(trainer.error().str());
    shoal::Tensor x = randomImages(trainBatch, image, 2);
    shoal::Tensor labels(shoal::DType::I64, {trainBatch});
    for (int64_t i = 0; i < trainBatch; ++i) labels.set(i, double((i * 7919) % classes));
    if (device == "cuda") {
      // The batch resident on the GPU, as PyTorch's training step takes it.
      auto xd = shoal::toDevice(x);
      auto ld = shoal::toDevice(labels);
      if (!xd || !ld) return fail(!xd ? xd.error().str() : ld.error().str());
      x = *xd;
      labels = *ld;
    }
    std::vector<double> ms, losses;
    for (int64_t s = 0; s < steps + 3; ++s) {
      auto t0 = Clock::now();
      auto st = trainer->step({{"x", x}, {"labels", labels}});
      const double t = msSince(t0);
      if (!st) return fail(st.error().str());
      if (s >= 3) ms.push_back(t);
      losses.push_back(st->loss);
#if SHOAL_HAVE_CUDA
      if (s == 0 && freeBefore > 0 && cudaMemGetInfo(&freeAfter, &total) != cudaSuccess) freeAfter = 0;
#endif
    }
    const double med = median(ms);
    out["train"] = {{"batch", trainBatch}, {"step_ms_median", med}, {"images_per_s", double(trainBatch) / med * 1e3},
                    {"loss_first", losses.front()}, {"loss_last", losses.back()}};
    if (freeBefore > 0 && freeAfter > 0) {
      out["train"]["device_bytes"] = double(freeBefore) - double(freeAfter);
      std::printf("training step device memory: %.0f MiB (free memory before the trainer and after its first step)\n",
                  (double(freeBefore) - double(freeAfter)) / (1 << 20));
    }
    std::printf("training step batch %lld: %9.3f ms (%.0f images/s); loss %.4f -> %.4f\n", (long long)trainBatch, med,
                double(trainBatch) / med * 1e3, losses.front(), losses.back());
    if (profile) {
      out["profile_train"] = trainer->profile();
      std::printf("time per op, training step:\n%s", trainer->profile().c_str());
    }
  }
  if (profile) {
    out["profile_inference"] = session->profile();
    std::printf("time per op, inference:\n%s", session->profile().c_str());
  }
  if (!json.empty()) {
    std::ofstream f(json);
    f << out.dump(2) << "\n";
  }
  return 0;
}
