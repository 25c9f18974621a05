// The training loop: batches from the data source, one compiled step per batch size, metrics
// per epoch, evaluation, checkpoints.
#include "runtime/trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <nlohmann/json.hpp>

#include "runtime/checkpoint/safetensors.h"
#include "runtime/data/idx.h"
#include "runtime/init.h"
#include "support/file_util.h"

namespace fs = std::filesystem;

namespace shoal {

namespace {

using Clock = std::chrono::steady_clock;
double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A batch of images and labels gathered from a dataset by index.
struct Batch {
  Tensor images;
  Tensor labels;
};

Batch gather(const MnistSet& data, const std::vector<int64_t>& index, size_t begin, size_t count) {
  const Shape& s = data.images.shape();
  int64_t per = numElements(s) / s[0];
  Batch b{Tensor(DType::U8, {int64_t(count), s[1], s[2], s[3]}), Tensor(DType::I64, {int64_t(count)})};
  const uint8_t* src = data.images.data<uint8_t>();
  uint8_t* dst = b.images.data<uint8_t>();
  for (size_t i = 0; i < count; ++i) {
    int64_t row = index[begin + i];
    std::memcpy(dst + int64_t(i) * per, src + row * per, size_t(per));
    b.labels.data<int64_t>()[i] = data.labels.data<int64_t>()[row];
  }
  return b;
}

// A dataset subset as rows of the full set.
std::vector<int64_t> iota(int64_t begin, int64_t end) {
  std::vector<int64_t> v;
  for (int64_t i = begin; i < end; ++i) v.push_back(i);
  return v;
}

// Executables for one graph at a fixed batch, plus one for the remainder batch, sharing params.
struct BatchedPrograms {
  int64_t batch = 0;
  std::unique_ptr<Executable> full, rest;
  int64_t restBatch = 0;
};

Expected<std::unique_ptr<Executable>> compileFor(const Graph& g, int64_t batch, const CompileOptions& copts,
                                                 const DeviceSelection& dev, const ExecutableOptions& eopts) {
  auto rebatched = rebatchGraph(g, batch);
  if (!rebatched) return Unexpected(rebatched.error());
  auto program = compileProgram(std::move(*rebatched), copts);
  if (!program) return Unexpected(program.error());
  return createExecutable(std::move(*program), dev, eopts);
}

Expected<BatchedPrograms> compileBatched(const Graph& g, int64_t batch, int64_t total, const CompileOptions& copts,
                                         const DeviceSelection& dev, const ExecutableOptions& eopts,
                                         Executable* shareWith) {
  BatchedPrograms bp;
  bp.batch = std::min(batch, std::max<int64_t>(total, 1));
  auto full = compileFor(g, bp.batch, copts, dev, eopts);
  if (!full) return Unexpected(full.error());
  bp.full = std::move(*full);
  if (shareWith) {
    auto ok = bp.full->shareParameters(*shareWith);
    if (!ok) return Unexpected(ok.error());
  }
  bp.restBatch = total % bp.batch;
  if (bp.restBatch) {
    auto rest = compileFor(g, bp.restBatch, copts, dev, eopts);
    if (!rest) return Unexpected(rest.error());
    bp.rest = std::move(*rest);
    auto ok = bp.rest->shareParameters(shareWith ? *shareWith : *bp.full);
    if (!ok) return Unexpected(ok.error());
  }
  return bp;
}

// Accuracy of the model over rows `rows` of `data`.
Expected<double> accuracyOver(BatchedPrograms& eval, const Pipeline& p, const MnistSet& data,
                              const std::vector<int64_t>& rows) {
  int64_t correct = 0;
  for (size_t begin = 0; begin < rows.size();) {
    size_t count = std::min<size_t>(size_t(eval.batch), rows.size() - begin);
    Executable& exe = count == size_t(eval.batch) ? *eval.full : *eval.rest;
    Batch b = gather(data, rows, begin, count);
    auto out = exe.run({{p.inputName, b.images}});
    if (!out) return Unexpected(out.error());
    auto found = out->find(p.logitsName);
    if (found == out->end()) return fail(fmt::format("the model has no output named '{}' to score", p.logitsName));
    const Tensor& logits = found->second;
    int64_t classes = logits.shape().back();
    for (size_t i = 0; i < count; ++i) {
      int64_t best = 0;
      for (int64_t c = 1; c < classes; ++c)
        if (logits.at(int64_t(i) * classes + c) > logits.at(int64_t(i) * classes + best)) best = c;
      correct += best == b.labels.data<int64_t>()[i];
    }
    begin += count;
  }
  return rows.empty() ? 0.0 : double(correct) / double(rows.size());
}

// Loads params (and optimizer state, when the file has it) into `exe`; returns the optimizer
// step the checkpoint was saved at (0 when unknown), so a resumed run continues Adam's count.
Expected<int64_t> loadWeights(Executable& exe, const std::string& path, const TrainOptions& opts) {
  auto file = loadSafetensors(path);
  if (!file) return Unexpected(file.error());
  TensorMap current = exe.readPersistent();
  TensorMap values;
  for (auto& [name, t] : file->tensors) {
    auto it = current.find(name);
    if (it == current.end()) continue;
    auto ok = checkTensorMatches(name, t, it->second.type());
    if (!ok) return fail(path + ": " + ok.error().message());
    values[name] = t;
  }
  std::set<std::string> modelTensors;
  for (auto& [name, t] : current) modelTensors.insert(name);
  if (std::string note = unusedTensorsNote(path, *file, modelTensors, opts.exec.verbose); !note.empty() && opts.onNote)
    opts.onNote(note);
  for (Node* n : exe.graph().nodes())
    if (n->kind() == OpKind::Param && !values.count(n->result()->name()))
      return fail(fmt::format("{}: checkpoint has no tensor '{}' ({})", path, n->result()->name(), n->result()->type().str()));
  auto ok = exe.writePersistent(values);
  if (!ok) return Unexpected(ok.error());
  int64_t step = 0;
  bool hasState = false;
  for (Node* n : exe.graph().nodes()) hasState |= n->kind() == OpKind::State && values.count(n->result()->name());
  auto it = file->metadata.find("step");
  if (hasState && it != file->metadata.end()) step = std::max<int64_t>(0, std::atoll(it->second.c_str()));
  return step;
}

Expected<void> saveWeights(Executable& exe, const std::string& path, int64_t steps) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  TensorMap values = exe.readPersistent();
  // Params first (in program order), then optimizer state: a PyTorch state_dict loads the
  // params and ignores nothing it needs.
  for (int pass = 0; pass < 2; ++pass)
    for (Node* n : exe.graph().nodes())
      if ((pass == 0 && n->kind() == OpKind::Param) || (pass == 1 && n->kind() == OpKind::State))
        tensors.push_back({n->result()->name(), values.at(n->result()->name())});
  return saveSafetensors(path, tensors, {{"format", "pt"}, {"producer", "shoal"}, {"step", std::to_string(steps)}});
}

struct Loaded {
  MnistSet train, test;
  DeviceSelection device;
};

Expected<Loaded> prepare(const Pipeline& p, const TrainOptions& opts) {
  if (!p.data) return fail("the pipeline has no data input (input: mnist path=...)");
  Loaded l;
  std::string dir = resolveDataPath(p.data->path, p.file);
  auto train = loadMnist(dir, true);
  if (!train) return Unexpected(Error(train.error().message(), p.data->loc));
  auto test = loadMnist(dir, false);
  if (!test) return Unexpected(Error(test.error().message(), p.data->loc));
  l.train = std::move(*train);
  l.test = std::move(*test);
  auto dev = selectDevice(opts.device == DeviceKind::Auto && p.device != "auto" ? *parseDeviceKind(p.device) : opts.device);
  if (!dev) return Unexpected(dev.error());
  l.device = *dev;
  if (opts.onNote) {
    opts.onNote("device: " + l.device.description + (l.device.note.empty() ? "" : " (" + l.device.note + ")"));
  }
  return l;
}

}  // namespace

std::string resolveDataPath(const std::string& path, const std::string& pipelineFile) {
  if (fs::path(path).is_absolute() || fs::exists(path)) return path;
  fs::path base = fs::path(pipelineFile).parent_path();
  for (int up = 0; up < 4 && !base.empty(); ++up) {
    if (fs::exists(base / path)) return (base / path).string();
    if (!base.has_parent_path() || base.parent_path() == base) break;
    base = base.parent_path();
  }
#ifdef SHOAL_DATA_DIR
  fs::path installed = fs::path(SHOAL_DATA_DIR) / fs::path(path).filename();
  if (fs::exists(installed)) return installed.string();
#endif
#ifdef SHOAL_SOURCE_DIR
  if (fs::exists(fs::path(SHOAL_SOURCE_DIR) / path)) return (fs::path(SHOAL_SOURCE_DIR) / path).string();
#endif
  return path;
}

Expected<TrainReport> trainPipeline(const Pipeline& p, const TrainOptions& opts) {
  if (!p.train) return fail("the pipeline has no train stage");
  // Say now, not after the whole training, that the checkpoint cannot be written.
  if (!p.output.checkpoint.empty())
    if (auto ok = checkWritablePath(p.output.checkpoint); !ok) return fail(ok.error().message(), p.output.loc);
  auto loaded = prepare(p, opts);
  if (!loaded) return Unexpected(loaded.error());
  TrainConfig cfg = *p.train;
  if (opts.epochs) cfg.epochs = *opts.epochs;
  if (opts.seed) cfg.seed = *opts.seed;
  const MnistSet& train = loaded->train;
  const MnistSet& test = loaded->test;

  // Split off a validation set (the last fraction of the training files, before shuffling).
  int64_t n = train.images.shape()[0];
  int64_t nVal = int64_t(std::floor(double(n) * cfg.validation));
  std::vector<int64_t> trainRows = iota(0, n - nVal), valRows = iota(n - nVal, n);
  if (trainRows.empty()) return fail("no training examples left after the validation split", cfg.loc);

  CompileOptions copts = opts.compile;
  copts.train = &cfg;
  auto step = compileBatched(*p.model, cfg.batch, int64_t(trainRows.size()), copts, loaded->device, opts.exec, nullptr);
  if (!step) return Unexpected(step.error());
  step->full->initializeParameters(cfg.seed);
  step->full->setProfiling(opts.profile);
  std::string weights = !opts.weights.empty() ? opts.weights : p.data->weights;
  int64_t resumedStep = 0;
  if (!weights.empty()) {
    auto loadedStep = loadWeights(*step->full, weights, opts);
    if (!loadedStep) return Unexpected(loadedStep.error());
    resumedStep = *loadedStep;
  }
  CompileOptions evalOpts = opts.compile;
  evalOpts.train = nullptr;
  int64_t evalBatch = std::max<int64_t>(cfg.batch, 500);
  auto evalTest = compileBatched(*p.model, evalBatch, test.images.shape()[0], evalOpts, loaded->device, opts.exec,
                                 step->full.get());
  if (!evalTest) return Unexpected(evalTest.error());
  std::optional<BatchedPrograms> evalVal;
  if (nVal > 0) {
    auto ev = compileBatched(*p.model, evalBatch, nVal, evalOpts, loaded->device, opts.exec, step->full.get());
    if (!ev) return Unexpected(ev.error());
    evalVal = std::move(*ev);
  }

  TrainReport report;
  report.device = loaded->device.description;
  bool adam = cfg.optimizer == "adam";
  bool classification = cfg.loss == "softmax_cross_entropy";
  if (!classification) return fail("training from a dataset needs loss=softmax_cross_entropy (the data are class labels)", cfg.loc);
  std::vector<double> stepMs;
  int64_t globalStep = resumedStep;
  auto start = Clock::now();
  Rng shuffler(seedFor(cfg.seed, "shuffle"));
  std::vector<int64_t> order = trainRows;
  int64_t steps = (int64_t(order.size()) + step->batch - 1) / step->batch;
  for (int64_t epoch = 1; epoch <= cfg.epochs; ++epoch) {
    auto epochStart = Clock::now();
    if (cfg.shuffle)
      for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[shuffler.below(i)]);
    for (int64_t s = 0; s < steps; ++s) {
      size_t begin = size_t(s * step->batch);
      size_t count = std::min<size_t>(size_t(step->batch), order.size() - begin);
      Executable& exe = count == size_t(step->batch) ? *step->full : *step->rest;
      Batch b = gather(train, order, begin, count);
      ++globalStep;
      TensorMap feed = {{p.inputName, b.images}, {"labels", b.labels}};
      if (adam) feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(globalStep)});
      // Loss and accuracy are summed where the step runs and read back once per epoch.
      auto ok = exe.runAccumulate(feed, {"loss", "accuracy"}, double(count), globalStep);
      if (!ok) return Unexpected(ok.error());
      if (opts.onStep) opts.onStep({epoch, cfg.epochs, s + 1, steps, std::nan("")});
    }
    double lossSum = 0, accSum = 0, seen = 0;
    // Steps queue on the device, so a step's time is the epoch's (up to its one read-back)
    // over its steps; step_ms_median is the median of that over the epochs.
    std::optional<std::pair<int64_t, double>> nonFinite;
    for (Executable* exe : {step->full.get(), step->rest.get()}) {
      if (!exe) continue;
      auto acc = exe->takeAccumulated();
      if (!acc) return Unexpected(acc.error());
      lossSum += acc->sums["loss"];
      accSum += acc->sums["accuracy"];
      seen += acc->weight;
      if (acc->firstNonFinite && (!nonFinite || *acc->firstNonFinite < nonFinite->first))
        nonFinite = std::pair<int64_t, double>{*acc->firstNonFinite, acc->nonFiniteValue};
    }
    stepMs.push_back(secondsSince(epochStart) * 1e3 / double(steps));
    if (nonFinite) {
      int64_t bad = nonFinite->first;
      int64_t inEpoch = bad - (globalStep - steps);
      return fail(fmt::format("training diverged: the loss is {} at step {} (epoch {}, batch {}); try a smaller lr",
                              nonFinite->second, bad, epoch, inEpoch),
                  cfg.loc);
    }
    EpochStats e;
    e.epoch = epoch;
    e.loss = lossSum / seen;
    e.accuracy = accSum / seen;
    if (evalVal) {
      auto acc = accuracyOver(*evalVal, p, train, valRows);
      if (!acc) return Unexpected(acc.error());
      e.validationAccuracy = *acc;
    }
    e.seconds = secondsSince(epochStart);
    report.epochs.push_back(e);
    if (opts.onEpoch) opts.onEpoch(e);
  }
  report.trainSeconds = secondsSince(start);
  report.steps = globalStep - resumedStep;
  if (opts.profile) report.profile = step->full->profileSummary();
  if (!stepMs.empty()) {
    std::nth_element(stepMs.begin(), stepMs.begin() + ptrdiff_t(stepMs.size() / 2), stepMs.end());
    report.stepMsMedian = stepMs[stepMs.size() / 2];
  }
  auto acc = accuracyOver(*evalTest, p, test, iota(0, test.images.shape()[0]));
  if (!acc) return Unexpected(acc.error());
  report.testAccuracy = *acc;
  if (!p.output.checkpoint.empty()) {
    auto ok = saveWeights(*step->full, p.output.checkpoint, globalStep);
    if (!ok) return Unexpected(ok.error());
    report.checkpoint = p.output.checkpoint;
  }
  return report;
}

Expected<TrainReport> evaluatePipeline(const Pipeline& p, const TrainOptions& opts) {
  auto loaded = prepare(p, opts);
  if (!loaded) return Unexpected(loaded.error());
  std::string weights = !opts.weights.empty() ? opts.weights : p.data->weights;
  if (weights.empty())
    return fail("nothing to evaluate: the pipeline has no train stage and no weights (give --weights PATH or weights= on the input)",
                p.data->loc);
  CompileOptions copts = opts.compile;
  copts.train = nullptr;
  const MnistSet& test = loaded->test;
  int64_t batch = std::max<int64_t>(p.data->batch, 500);
  auto first = compileFor(*p.model, std::min<int64_t>(batch, test.images.shape()[0]), copts, loaded->device, opts.exec);
  if (!first) return Unexpected(first.error());
  (*first)->initializeParameters(0);
  auto ok = loadWeights(**first, weights, opts);
  if (!ok) return Unexpected(ok.error());
  auto eval = compileBatched(*p.model, batch, test.images.shape()[0], copts, loaded->device, opts.exec, first->get());
  if (!eval) return Unexpected(eval.error());
  TrainReport report;
  report.device = loaded->device.description;
  auto start = Clock::now();
  auto acc = accuracyOver(*eval, p, test, iota(0, test.images.shape()[0]));
  if (!acc) return Unexpected(acc.error());
  report.testAccuracy = *acc;
  report.trainSeconds = 0;
  report.stepMsMedian = secondsSince(start) * 1e3;
  return report;
}

std::string trainReportJson(const TrainReport& r) {
  nlohmann::ordered_json j;
  j["device"] = r.device;
  nlohmann::ordered_json epochs = nlohmann::ordered_json::array();
  for (const EpochStats& e : r.epochs) {
    nlohmann::ordered_json o;
    o["epoch"] = e.epoch;
    o["loss"] = e.loss;
    o["accuracy"] = e.accuracy;
    if (e.validationAccuracy) o["validation_accuracy"] = *e.validationAccuracy;
    o["seconds"] = e.seconds;
    epochs.push_back(o);
  }
  j["epochs"] = epochs;
  if (r.testAccuracy) j["test_accuracy"] = *r.testAccuracy;
  else j["test_accuracy"] = nullptr;
  j["train_seconds"] = r.trainSeconds;
  j["step_ms_median"] = r.stepMsMedian;
  j["steps"] = r.steps;
  if (!r.checkpoint.empty()) j["checkpoint"] = r.checkpoint;
  return j.dump(2) + "\n";
}

std::string trainCurveSvg(const TrainReport& r) {
  // 640x400 chart: loss (left axis, blue) and accuracy (right axis 0..1, orange) per epoch.
  const double w = 640, h = 400, left = 60, right = 60, top = 40, bottom = 50;
  const double pw = w - left - right, ph = h - top - bottom;
  size_t n = r.epochs.size();
  double maxLoss = 0;
  for (auto& e : r.epochs) maxLoss = std::max(maxLoss, e.loss);
  if (maxLoss <= 0) maxLoss = 1;
  auto x = [&](size_t i) { return left + (n <= 1 ? pw / 2 : pw * double(i) / double(n - 1)); };
  auto yLoss = [&](double v) { return top + ph * (1 - v / maxLoss); };
  auto yAcc = [&](double v) { return top + ph * (1 - v); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"24\" font-size=\"15\">Training on {3}</text>\n",
      w, h, left, r.device);
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n", left, top, pw, ph);
  for (int t = 0; t <= 4; ++t) {
    double frac = t / 4.0;
    double y = top + ph * (1 - frac);
    s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#eee\"/>\n", left, y, left + pw, y);
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\" fill=\"#1f77b4\">{:.3f}</text>\n", left - 6, y + 4, maxLoss * frac);
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" fill=\"#ff7f0e\">{:.0f}%</text>\n", left + pw + 6, y + 4, frac * 100);
  }
  for (size_t i = 0; i < n; ++i)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", x(i), top + ph + 18, r.epochs[i].epoch);
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>\n", left + pw / 2, h - 10);
  auto poly = [&](auto value, const char* color) {
    std::string pts;
    for (size_t i = 0; i < n; ++i) pts += fmt::format("{:.1f},{:.1f} ", x(i), value(r.epochs[i]));
    std::string out = fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n", color, pts);
    for (size_t i = 0; i < n; ++i)
      out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", x(i), value(r.epochs[i]), color);
    return out;
  };
  s += poly([&](const EpochStats& e) { return yLoss(e.loss); }, "#1f77b4");
  s += poly([&](const EpochStats& e) { return yAcc(e.accuracy); }, "#ff7f0e");
  s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#1f77b4\">loss</text>\n", left + 10, top + 16);
  s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#ff7f0e\">train accuracy</text>\n", left + 60, top + 16);
  if (r.testAccuracy)
    s += fmt::format("<text x=\"{}\" y=\"{}\">test accuracy {:.2f}%</text>\n", left + 180, top + 16, *r.testAccuracy * 100);
  s += "</svg>\n";
  return s;
}

}  // namespace shoal
