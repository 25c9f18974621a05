// The training loop over a batch source, evaluation, checkpoints, the pipeline trainer on
// its IDX data set, reports and curves.
#include "runtime/trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <set>

#include "runtime/checkpoint/safetensors.h"
#include "runtime/cuda/cuda_executable.h"
#include "runtime/cuda/device.h"
#include "runtime/data/datasets.h"
#include "runtime/data/idx.h"
#include "runtime/distributed/sharding.h"
#include "support/file_util.h"
#include "support/install_paths.h"
#include "support/phase_times.h"

namespace fs = std::filesystem;

namespace shoal {

namespace {

using Clock = std::chrono::steady_clock;
double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The feed of one training step: the batch, the step count where the step reads it (Adam;
// dropout's masks) and the learning rate.
TensorMap stepFeed(const ModelPrograms& m, const TensorMap& batch, int64_t step, double lr) {
  TensorMap feed = batch;
  if (m.readsStep()) feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(step)});
  feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{lr});
  return feed;
}

std::vector<std::string> metricNames(const ModelPrograms& m) {
  if (m.readsLabels()) return {"loss", "accuracy"};
  return {"loss"};
}

// The rate of the step that follows `done` earlier steps: the schedule over the base rate.
Expected<double> scheduledRate(const LrSchedule& schedule, double base, int64_t done, const Location& loc) {
  double lr = schedule.rate(base, done);
  if (!(lr >= 0) || !std::isfinite(lr))
    return fail(fmt::format("the learning-rate schedule gave {} for step {}; it must be 0 or more", lr, done + 1), loc);
  return lr;
}

// The loss terms of one element x against target t, in double.
double squaredError(double x, double t) { return (x - t) * (x - t); }
double binaryCrossEntropy(double x, double t) { return std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::abs(x))); }

// The rows' loss (summed) and correct predictions of `out` against the batch's labels or
// targets, in double.
struct BatchScore {
  double lossSum = 0;   ///< cross-entropy: sum over rows; mse, bce: sum over elements
  int64_t correct = 0;
  int64_t lossTerms = 0;
};

Expected<BatchScore> scoreBatch(const Tensor& out, const TensorMap& batch, int64_t rows, const EvalSpec& spec) {
  BatchScore s;
  const bool bce = spec.loss == "bce_with_logits";
  if (spec.readsLabels()) {
    auto it = batch.find("labels");
    if (it == batch.end()) return fail("the data has no 'labels' to score the model against");
    const Tensor& labels = it->second;
    if (out.shape().size() != 2) return fail(fmt::format("cannot score {} as class scores ([batch, classes])", out.type().str()));
    if (labels.numElements() != rows)
      return fail(fmt::format("'labels' has {} values for {} rows", labels.numElements(), rows));
    int64_t classes = out.shape()[1];
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t row = i * classes;
      int64_t best = 0;
      for (int64_t c = 1; c < classes; ++c)
        if (out.at(row + c) > out.at(row + best)) best = c;
      double label = labels.at(i);
      if (label < 0 || label >= double(classes) || label != std::floor(label))
        return fail(fmt::format("label {} of row {} is not a class of the {} outputs", label, i, classes));
      s.correct += best == int64_t(label);
      if (!spec.wantLoss) continue;
      if (spec.oneHotTargets) {  // mse or bce against the one-hot row
        for (int64_t c = 0; c < classes; ++c) {
          double t = c == int64_t(label) ? 1.0 : 0.0;
          s.lossSum += bce ? binaryCrossEntropy(out.at(row + c), t) : squaredError(out.at(row + c), t);
        }
        continue;
      }
      double mx = out.at(row);
      for (int64_t c = 1; c < classes; ++c) mx = std::max(mx, out.at(row + c));
      double sum = 0, sumX = 0;
      for (int64_t c = 0; c < classes; ++c) {
        sum += std::exp(out.at(row + c) - mx);
        sumX += out.at(row + c);
      }
      const double lse = std::log(sum) + mx;
      const double e = spec.labelSmoothing;
      // (1-e)(-log p_label) + e·mean_c(-log p_c), PyTorch's label smoothing.
      s.lossSum += (1 - e) * (lse - out.at(row + int64_t(label))) + (e != 0 ? e * (lse - sumX / double(classes)) : 0.0);
    }
    s.lossTerms = spec.oneHotTargets ? rows * classes : rows;
    return s;
  }
  auto it = batch.find("targets");
  if (it == batch.end()) return fail("the data has no 'targets' to score the model against");
  const Tensor& targets = it->second;
  if (targets.numElements() != out.numElements())
    return fail(fmt::format("'targets' is {}, the output is {}", targets.type().str(), out.type().str()));
  for (int64_t i = 0; i < out.numElements(); ++i)
    s.lossSum += bce ? binaryCrossEntropy(out.at(i), targets.at(i)) : squaredError(out.at(i), targets.at(i));
  s.lossTerms = out.numElements();
  return s;
}

TensorMap modelInputsOf(const ModelPrograms& m, const TensorMap& batch) {
  TensorMap feed;
  for (Node* n : m.inputs()) {
    const std::string& name = n->attrs().getString("name");
    if (auto it = batch.find(name); it != batch.end()) feed[name] = it->second;
  }
  return feed;
}

}  // namespace

EvalSpec EvalSpec::of(const TrainConfig& cfg, const std::string& output, bool wantLoss) {
  EvalSpec s;
  s.output = output;
  s.loss = cfg.loss;
  s.labelSmoothing = cfg.labelSmoothing;
  s.oneHotTargets = cfg.oneHotTargets;
  s.wantLoss = wantLoss;
  return s;
}

EvalSpec EvalSpec::accuracyOnly(const std::string& output) {
  EvalSpec s;
  s.output = output;
  s.wantLoss = false;
  return s;
}

// ---- the loop ---------------------------------------------------------------------------

Expected<StepStats> trainStep(ModelPrograms& m, const TensorMap& batch, int64_t& step) {
  auto rows = m.batchOf(batch);
  if (!rows) return Unexpected(rows.error());
  auto exe = m.trainingStep(*rows);
  if (!exe) return Unexpected(exe.error());
  // Whatever earlier fits left accumulated is collected first, so this step's figures are its own.
  for (Executable* e : m.trainingSteps()) {
    auto old = e->takeAccumulated();
    if (!old) return Unexpected(old.error());
  }
  const LrSchedule& schedule = m.trainConfig().schedule;
  if (schedule.kind == ScheduleKind::Cosine && schedule.tMax <= 0)
    return fail("a cosine schedule needs its tMax (the steps of its half period) outside fit()");
  auto lr = scheduledRate(schedule, m.learningRate(), step, m.trainConfig().loc);
  if (!lr) return Unexpected(lr.error());
  ++step;
  auto ok = (*exe)->runAccumulate(stepFeed(m, batch, step, *lr), metricNames(m), 1.0, step);
  if (!ok) {
    --step;
    return Unexpected(ok.error());
  }
  auto acc = (*exe)->takeAccumulated();
  if (!acc) return Unexpected(acc.error());
  StepStats s;
  s.step = step;
  s.loss = acc->sums["loss"];
  s.learningRate = *lr;
  if (m.readsLabels()) s.accuracy = acc->sums["accuracy"];
  return s;
}

Expected<TrainReport> fitPrograms(ModelPrograms& m, BatchSource& batches, const FitPlan& plan, int64_t& step) {
  if (!m.trains()) return fail("this model was compiled for inference only");
  if (plan.epochs < 0) return fail(fmt::format("epochs must be 0 or more, got {}", plan.epochs), plan.loc);
  TrainReport report;
  report.device = m.device().description;
  std::vector<double> stepMs;
  int64_t firstStep = step;
  auto start = Clock::now();
  EvalSpec spec = EvalSpec::of(m.trainConfig(), m.trainedOutput(), true);
  // Whatever an earlier step() left accumulated is not this run's.
  for (Executable* e : m.trainingSteps()) {
    auto old = e->takeAccumulated();
    if (!old) return Unexpected(old.error());
  }
  // The schedule of this fit: a cosine without tMax spans the fit's steps after the warm-up.
  LrSchedule schedule = m.trainConfig().schedule;
  if (schedule.kind == ScheduleKind::Cosine && schedule.tMax <= 0) {
    std::optional<int64_t> perEpoch = batches.batchesPerEpoch();
    if (plan.stepsPerEpoch > 0) perEpoch = perEpoch ? std::min(*perEpoch, plan.stepsPerEpoch) : plan.stepsPerEpoch;
    if (!perEpoch)
      return fail("a cosine schedule without t_max spans the fit, but this batch source does not say how many "
                  "batches an epoch has: give the schedule's tMax",
                  plan.loc);
    schedule.tMax = std::max<int64_t>(1, step + plan.epochs * *perEpoch - schedule.warmup);
  }
  double lastRate = 0;
  double runningLoss = std::nan("");
  // The data set in device memory (see the epoch loop), made at the first epoch that can.
  struct {
    // SHOAL_RESIDENT_DATA=0: the host uploads every batch instead (to compare the two).
    bool use = envFlagDefaultOn("SHOAL_RESIDENT_DATA");
    bool tried = false;
    std::shared_ptr<ResidentData> data;
    const TensorMap* tensors = nullptr;
  } resident;
  for (int64_t epoch = 1; epoch <= plan.epochs; ++epoch) {
    if (plan.learningRate) {
      double lr = plan.learningRate(epoch);
      if (!(lr > 0) || !std::isfinite(lr))
        return fail(fmt::format("the learning-rate schedule gave {} for epoch {}; it must be positive", lr, epoch), plan.loc);
      m.setLearningRate(lr);
    }
    auto epochStart = Clock::now();
    auto started = batches.startEpoch(epoch);
    if (!started) return Unexpected(started.error());
    std::optional<int64_t> known = batches.batchesPerEpoch();
    int64_t steps = known.value_or(0);
    if (plan.stepsPerEpoch > 0 && (steps == 0 || plan.stepsPerEpoch < steps)) steps = plan.stepsPerEpoch;
    if (!known && plan.stepsPerEpoch <= 0) steps = 0;
    int64_t s = 0, examples = 0;
    // The epoch's sums, gathered from the steps' accumulators at the end of the epoch and, for
    // a running loss, whenever lossReadSeconds have passed.
    double lossSum = 0, accSum = 0, seen = 0;
    std::optional<std::pair<int64_t, double>> nonFinite;
    auto collect = [&]() -> Expected<void> {
      for (Executable* exe : m.trainingSteps()) {
        auto acc = exe->takeAccumulated();
        if (!acc) return Unexpected(acc.error());
        lossSum += acc->sums["loss"];
        accSum += acc->sums["accuracy"];
        seen += acc->weight;
        if (acc->firstNonFinite && (!nonFinite || *acc->firstNonFinite < nonFinite->first))
          nonFinite = std::pair<int64_t, double>{*acc->firstNonFinite, acc->nonFiniteValue};
      }
      return {};
    };
    auto lastRead = Clock::now();
    double readLoss = 0, readSeen = 0;  // the sums at the last read
    // One step on `rows` rows: `run` queues it on the executable for that batch size.
    auto oneStep = [&](int64_t rows, auto&& run) -> Expected<void> {
      auto exe = m.trainingStep(rows);
      if (!exe) return Unexpected(exe.error());
      auto lr = scheduledRate(schedule, m.learningRate(), step, plan.loc);
      if (!lr) return Unexpected(lr.error());
      lastRate = *lr;
      ++step;
      // Loss and accuracy are summed where the step runs and read back once per epoch.
      if (auto ok = run(**exe, *lr); !ok) return ok;
      ++s;
      examples += rows;
      if (plan.onStep) {
        if (plan.lossReadSeconds > 0 && secondsSince(lastRead) >= plan.lossReadSeconds) {
          // The mean loss of the steps since the last read (this waits for them on a GPU).
          if (auto ok = collect(); !ok) return ok;
          if (seen > readSeen) runningLoss = (lossSum - readLoss) / (seen - readSeen);
          readLoss = lossSum, readSeen = seen;
          lastRead = Clock::now();
        }
        plan.onStep({epoch, plan.epochs, s, steps, runningLoss, examples});
      }
      return {};
    };
    // A source whose batches are rows of tensors in host memory, on a device with memory of
    // its own: the tensors are copied there once, each epoch's order once, and every step
    // gathers its batch on the device (no per-step upload). The same rows in the same batches.
    std::optional<EpochRows> epochRows;
    if (resident.use) epochRows = batches.takeEpoch();
    if (epochRows && !resident.data && !resident.tried) {
      resident.tried = true;
      if (!epochRows->sizes.empty()) {
        auto exe = m.trainingStep(epochRows->sizes.front());
        if (!exe) return Unexpected(exe.error());
        auto made = (*exe)->makeResident(*epochRows->tensors);
        if (!made) return Unexpected(made.error());
        resident.data = std::move(*made);
        resident.tensors = epochRows->tensors;
      }
      if (!resident.data) resident.use = false;  // the host feeds the steps, from the next epoch on
    }
    if (epochRows && resident.data && resident.tensors != epochRows->tensors)
      return fail("internal error: the batch source's tensors changed between epochs", plan.loc);
    if (epochRows && resident.data) {
      if (auto ok = resident.data->setOrder(epochRows->order); !ok) return fail(ok.error().message(), plan.loc);
      int64_t first = 0;
      for (int64_t rows : epochRows->sizes) {
        if (plan.stepsPerEpoch > 0 && s >= plan.stepsPerEpoch) break;
        auto ok = oneStep(rows, [&](Executable& exe, double lr) {
          return exe.runAccumulateRows(*resident.data, first, rows, stepFeed(m, {}, step, lr), metricNames(m),
                                       double(rows), step);
        });
        if (!ok) return Unexpected(ok.error());
        first += rows;
      }
    } else if (epochRows) {
      // Taken, but not resident (this epoch decided it): the host gathers the same batches.
      int64_t first = 0;
      for (int64_t rows : epochRows->sizes) {
        if (plan.stepsPerEpoch > 0 && s >= plan.stepsPerEpoch) break;
        auto batch = gatherBatch(*epochRows->tensors, std::span(epochRows->order).subspan(size_t(first), size_t(rows)));
        if (!batch) return Unexpected(batch.error());
        auto ok = oneStep(rows, [&](Executable& exe, double lr) {
          return exe.runAccumulate(stepFeed(m, *batch, step, lr), metricNames(m), double(rows), step);
        });
        if (!ok) return Unexpected(ok.error());
        first += rows;
      }
    } else {
      while (plan.stepsPerEpoch <= 0 || s < plan.stepsPerEpoch) {
        auto batch = batches.next();
        if (!batch) return Unexpected(batch.error());
        if (!*batch) break;
        auto rows = m.batchOf(**batch);
        if (!rows) return Unexpected(rows.error());
        auto ok = oneStep(*rows, [&](Executable& exe, double lr) {
          return exe.runAccumulate(stepFeed(m, **batch, step, lr), metricNames(m), double(*rows), step);
        });
        if (!ok) return Unexpected(ok.error());
      }
    }
    if (s == 0) return fail(fmt::format("the data yielded no batch in epoch {}", epoch), plan.loc);
    // Steps queue on the device, so a step's time is the epoch's (up to its one read-back)
    // over its steps; step_ms_median is the median of that over the epochs.
    if (auto ok = collect(); !ok) return Unexpected(ok.error());
    if (seen > readSeen) runningLoss = (lossSum - readLoss) / (seen - readSeen);
    // Data parallelism: the epoch's figures over every rank's rows, the first bad step over
    // every rank's steps.
    if (Communicator* comm = m.communicator(); comm && comm->size() > 1) {
      double sums[4] = {lossSum, accSum, seen, nonFinite ? double(nonFinite->first) : HUGE_VAL};
      auto ok = comm->allReduceHost(sums, DType::F64, 3, ReduceKind::Sum);
      if (ok) ok = comm->allReduceHost(sums + 3, DType::F64, 1, ReduceKind::Min);
      if (!ok) return fail("reducing the epoch's metrics over the ranks: " + ok.error().message(), plan.loc);
      lossSum = sums[0], accSum = sums[1], seen = sums[2];
      if (std::isfinite(sums[3]) && (!nonFinite || double(nonFinite->first) != sums[3]))
        nonFinite = std::pair<int64_t, double>{int64_t(sums[3]), std::nan("")};
    }
    stepMs.push_back(secondsSince(epochStart) * 1e3 / double(s));
    if (nonFinite) {
      int64_t bad = nonFinite->first;
      int64_t inEpoch = bad - (step - s);
      return fail(fmt::format("training diverged: the loss is {} at step {} (epoch {}, batch {}); try a smaller lr",
                              nonFinite->second, bad, epoch, inEpoch),
                  plan.loc);
    }
    EpochStats e;
    e.epoch = epoch;
    e.loss = lossSum / seen;
    e.accuracy = accSum / seen;
    e.learningRate = lastRate;
    if (plan.validation) {
      auto v = evaluateDataset(m, *plan.validation, plan.evalBatch, spec);
      if (!v) return Unexpected(v.error());
      e.validationAccuracy = v->accuracy;
      e.validationLoss = v->loss;
    }
    e.seconds = secondsSince(epochStart);
    report.epochs.push_back(e);
    if (plan.onEpoch) plan.onEpoch(e);
  }
  report.trainSeconds = secondsSince(start);
  report.steps = step - firstStep;
  if (m.profiling()) report.profile = m.profileSummary();
  report.cudaGraph = m.owner().replaysCudaGraph();
  report.cudaGraphError = m.owner().cudaGraphError();
  if (!stepMs.empty()) {
    std::nth_element(stepMs.begin(), stepMs.begin() + ptrdiff_t(stepMs.size() / 2), stepMs.end());
    report.stepMsMedian = stepMs[stepMs.size() / 2];
  }
  report.parameters = m.parameters();
  return report;
}

Expected<EvalStats> evaluateDataset(ModelPrograms& m, Dataset& data, int64_t batch, const EvalSpec& spec) {
  if (batch <= 0) return fail(fmt::format("the evaluation batch size must be positive, got {}", batch));
  int64_t n = data.size();
  BatchScore total;
  std::vector<int64_t> rows;
  for (int64_t begin = 0; begin < n;) {
    int64_t count = std::min(batch, n - begin);
    rows.resize(size_t(count));
    for (int64_t i = 0; i < count; ++i) rows[size_t(i)] = begin + i;
    auto b = data.getBatch(rows);
    if (!b) return Unexpected(b.error());
    TensorMap feed = modelInputsOf(m, *b);
    auto size = m.batchOf(feed);
    if (!size) return Unexpected(size.error());
    auto exe = m.inference(*size);
    if (!exe) return Unexpected(exe.error());
    auto out = (*exe)->run(feed);
    if (!out) return Unexpected(out.error());
    auto found = out->find(spec.output);
    if (found == out->end()) return fail(fmt::format("the model has no output named '{}' to score", spec.output));
    auto score = scoreBatch(found->second, *b, *size, spec);
    if (!score) return Unexpected(score.error());
    total.lossSum += score->lossSum;
    total.lossTerms += score->lossTerms;
    total.correct += score->correct;
    begin += count;
  }
  EvalStats s;
  s.examples = n;
  s.loss = total.lossTerms ? total.lossSum / double(total.lossTerms) : 0.0;
  if (spec.readsLabels()) s.accuracy = n ? double(total.correct) / double(n) : 0.0;
  return s;
}

// ---- checkpoints ------------------------------------------------------------------------

Expected<void> saveCheckpoint(ModelPrograms& m, const std::string& path, int64_t step, bool withState) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  TensorMap values = m.persistent();
  // Params first (in program order), then optimizer state: a PyTorch state_dict loads the
  // params and ignores nothing it needs.
  for (auto& [name, type] : m.parameterTypes()) tensors.push_back({name, values.at(name)});
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"producer", "shoal"}};
  if (withState) {
    for (auto& [name, type] : m.stateTypes()) tensors.push_back({name, values.at(name)});
    meta["step"] = std::to_string(step);
  }
  return saveSafetensors(path, tensors, meta);
}

Expected<int64_t> loadCheckpoint(ModelPrograms& m, const std::string& path,
                                 const std::function<void(const std::string&)>& onNote, bool verbose) {
  auto file = loadSafetensors(path);
  if (!file) return Unexpected(file.error());
  if (onNote) {
    std::set<std::string> modelTensors;
    for (auto& [name, type] : m.parameterTypes()) modelTensors.insert(name);
    for (auto& [name, type] : m.stateTypes()) modelTensors.insert(name);
    if (std::string note = unusedTensorsNote(path, *file, modelTensors, verbose); !note.empty()) onNote(note);
  }
  TensorMap values;
  for (auto& [name, t] : file->tensors) values[name] = t;
  bool hasState = false;
  for (auto& [name, type] : m.stateTypes()) {
    if (values.count(name)) hasState = true;
    else values[name] = Tensor(type);  // no state in the file: the optimizer restarts
  }
  auto ok = m.setPersistent(values, path);
  if (!ok) return Unexpected(ok.error());
  int64_t step = 0;
  auto it = file->metadata.find("step");
  if (hasState && it != file->metadata.end()) step = std::max<int64_t>(0, std::atoll(it->second.c_str()));
  return step;
}

// ---- pipelines --------------------------------------------------------------------------

std::string resolveDataPath(const std::string& path, const std::string& pipelineFile) {
  std::error_code ec;
  if (fs::path(path).is_absolute() || fs::exists(path, ec)) return path;
  fs::path base = fs::path(pipelineFile).parent_path();
  for (int up = 0; up < 4 && !base.empty(); ++up) {
    if (fs::exists(base / path, ec)) return (base / path).string();
    if (!base.has_parent_path() || base.parent_path() == base) break;
    base = base.parent_path();
  }
  if (auto installed = installedDataDir()) {
    fs::path candidate = fs::path(*installed) / fs::path(path).filename();
    if (fs::exists(candidate, ec)) return candidate.string();
  }
  return path;
}

std::optional<Error> checkPreprocessing(const Pipeline& p) {
  if (!p.data) return std::nullopt;
  Value* v = p.model->findValue(p.inputName);
  if (!v) return std::nullopt;
  // Follow the data input through its single-use chain of cast / scale / normalize and track
  // where the pixel range [0, 255] lands.
  double lo = 0, hi = 255;
  const Node* last = nullptr;
  bool normalized = false;
  while (true) {
    const Node* next = nullptr;
    int uses = 0;
    for (Node* n : p.model->nodes())
      for (Value* in : n->inputs())
        if (in == v) {
          next = n;
          ++uses;
        }
    if (uses != 1) break;
    OpKind k = next->kind();
    if (k == OpKind::Cast) {
    } else if (k == OpKind::Scale) {
      double s = next->attrs().getFloat("scale"), t = next->attrs().getFloat("shift");
      double a = lo * s + t, b = hi * s + t;
      lo = std::min(a, b), hi = std::max(a, b);
      last = next;
    } else if (k == OpKind::Normalize) {
      auto mean = next->attrs().getFloats("mean");
      auto sd = next->attrs().getFloats("std");
      double m0 = mean.empty() ? 0.0 : mean[0], s0 = sd.empty() ? 1.0 : sd[0];
      if (s0 == 0) break;
      double a = (lo - m0) / s0, b = (hi - m0) / s0;
      lo = std::min(a, b), hi = std::max(a, b);
      last = next;
      normalized = true;
    } else {
      break;
    }
    v = next->result();
  }
  if (!last || std::max(std::abs(lo), std::abs(hi)) <= 20) return std::nullopt;
  std::string hint = normalized ? " (preprocessing applies scale, then shift, then (x - mean) / std to the pixels "
                                  "0..255; for a mean and std of 0..1 data, add scale=1/255)"
                                : "";
  return Error(fmt::format("preprocess maps the pixels 0..255 to [{:.4g}, {:.4g}]: a model rarely learns from values "
                           "this large{}",
                           lo, hi, hint),
               last->loc());
}

Expected<DeviceSelection> pipelineDevice(const Pipeline& p, DeviceKind requested) {
  bool fromPipeline = requested == DeviceKind::Auto && p.device != "auto";
  auto dev = selectDevice(fromPipeline ? *parseDeviceKind(p.device) : requested);
  if (!dev && fromPipeline) return fail("the pipeline's decision node asks for gpu: " + dev.error().message());
  if (!dev) return fail("device gpu: " + dev.error().message());
  return dev;
}

namespace {

struct PipelineData {
  std::unique_ptr<MnistDataset> train, test;
  std::string dir;
};

Expected<PipelineData> loadPipelineData(const Pipeline& p) {
  PhaseTimer timer("data loading (IDX files)");
  if (!p.data) return fail("the pipeline has no data input (input: mnist path=...)");
  PipelineData d;
  d.dir = resolveDataPath(p.data->path, p.file);
  // The test files inflate on another thread while this one inflates the training files.
  auto testLoad = std::async(serialStartup() ? std::launch::deferred : std::launch::async,
                             [dir = d.dir] { return loadMnist(dir, false); });
  auto train = loadMnist(d.dir, true);
  auto test = testLoad.get();
  if (!train) return Unexpected(Error(train.error().message(), p.data->loc));
  if (!test) return Unexpected(Error(test.error().message(), p.data->loc));
  d.train = std::make_unique<MnistDataset>(std::move(*train), p.inputName);
  d.test = std::make_unique<MnistDataset>(std::move(*test), p.inputName);
  return d;
}

ModelProgramsOptions programOptions(const TrainOptions& opts) {
  ModelProgramsOptions o;
  o.exec = opts.exec;
  o.compile = opts.compile;
  o.compile.train = nullptr;
  o.profile = opts.profile;
  o.comm = opts.comm && opts.comm->size() > 1 ? opts.comm : nullptr;
  return o;
}

void noteDevice(const DeviceSelection& dev, const TrainOptions& opts) {
  if (opts.onNote) opts.onNote("device: " + dev.description + (dev.note.empty() ? "" : " (" + dev.note + ")"));
}

}  // namespace

Expected<std::unique_ptr<ModelPrograms>> createPipelineTrainer(const Pipeline& p, const DeviceSelection& device,
                                                               const TrainOptions& opts, int64_t& step) {
  if (!p.train) return fail("the pipeline has no train stage");
  TrainConfig cfg = *p.train;
  if (opts.seed) cfg.seed = *opts.seed;
  for (Node* n : p.model->nodes())
    if (!mutatedOperands(n->kind()).empty())
      return fail(fmt::format("'{}' holds a training step already (it was dumped with --train); a pipeline trains from "
                              "its model: dump it without --train",
                              p.file),
                  cfg.loc);
  if (cfg.loss != "softmax_cross_entropy" && !cfg.oneHotTargets)
    return fail(fmt::format("the pipeline's data are class labels: loss {} needs its targets as their one-hot rows", cfg.loss),
                cfg.loc);
  // The first step compiled is the one the run takes most: each rank's share of the batch.
  int64_t batch = opts.batch.value_or(cfg.batch);
  if (opts.comm && opts.comm->size() > 1 && batch % opts.comm->size() == 0) batch /= opts.comm->size();
  auto m = ModelPrograms::createTraining(std::shared_ptr<const Graph>(p.model->clone()), cfg, p.logitsName, batch,
                                         device, programOptions(opts));
  if (!m) return Unexpected(m.error());
  {
    PhaseTimer timer("parameter initialisation");
    (*m)->initialize(cfg.seed);
  }
  step = 0;
  std::string weights = !opts.weights.empty() ? opts.weights : p.data ? p.data->weights : "";
  if (!weights.empty()) {
    auto resumed = loadCheckpoint(**m, weights, opts.onNote, opts.exec.verbose);
    if (!resumed) return Unexpected(resumed.error());
    step = *resumed;
  }
  return m;
}

namespace {

// fitPipeline over data already loaded (or failed to load).
Expected<TrainReport> fitPipelineData(ModelPrograms& m, const Pipeline& p, const TrainOptions& opts, int64_t& step,
                                      Expected<PipelineData> data) {
  if (!data) return Unexpected(data.error());
  if (opts.onNote) opts.onNote("data: " + data->dir);
  if (opts.onWarning)
    if (auto w = checkPreprocessing(p)) opts.onWarning(*w);
  TrainConfig cfg = *p.train;
  if (opts.epochs) cfg.epochs = *opts.epochs;
  if (opts.seed) cfg.seed = *opts.seed;
  if (opts.batch) cfg.batch = *opts.batch;
  if (opts.shuffle) cfg.shuffle = *opts.shuffle;
  uint64_t shuffleSeed = opts.shuffleSeed.value_or(cfg.seed);

  // The validation set is the last fraction of the training files, before shuffling.
  int64_t n = data->train->size();
  int64_t nVal = int64_t(std::floor(double(n) * cfg.validation));
  Subset train = Subset::range(*data->train, 0, n - nVal);
  Subset validation = Subset::range(*data->train, n - nVal, n);
  if (train.size() == 0) return fail("no training examples left after the validation split", cfg.loc);

  DataLoader loader(train, {.batchSize = cfg.batch, .shuffle = cfg.shuffle, .seed = shuffleSeed});
  // Data parallelism: every rank walks the same global batches and trains on its share.
  Communicator* comm = m.communicator();
  const bool parallel = comm && comm->size() > 1;
  std::optional<ShardedBatches> shards;
  if (parallel) {
    if (cfg.batch % comm->size() != 0)
      return fail(fmt::format("the batch of {} does not split evenly over {} ranks (the batch is the global one: give "
                              "a multiple of {})",
                              cfg.batch, comm->size(), comm->size()),
                  cfg.loc);
    shards.emplace(loader, comm->rank(), comm->size());
  }
  BatchSource& batches = parallel ? static_cast<BatchSource&>(*shards) : loader;
  FitPlan plan;
  plan.epochs = cfg.epochs;
  plan.stepsPerEpoch = opts.stepsPerEpoch;
  plan.validation = nVal > 0 ? &validation : nullptr;
  plan.evalBatch = std::max<int64_t>(cfg.batch, 500);
  plan.learningRate = opts.learningRate;
  plan.onStep = opts.onStep;
  plan.onEpoch = opts.onEpoch;
  plan.lossReadSeconds = opts.lossReadSeconds;
  plan.loc = cfg.loc;
  // On a GPU the test set's inference program is NVRTC-compiled into the kernel cache on
  // another thread while the training runs, so the evaluation after it only reads the cache.
  // (An error here shows again, and is reported, when the evaluation compiles.)
  std::future<void> precompiled;
  if (m.device().kind == DeviceKind::Cuda && !serialStartup())
    precompiled = std::async(std::launch::async, [&m, batch = plan.evalBatch] { (void)m.precompileInference(batch); });
  auto report = [&] {
    PhaseTimer timer("training");
    return fitPrograms(m, batches, plan, step);
  }();
  if (precompiled.valid()) {
    PhaseTimer timer("waiting for the evaluation's kernels");
    precompiled.get();
  }
  if (!report) return Unexpected(report.error());
  auto test = [&] {
    PhaseTimer timer("evaluation (test set)");
    return evaluateDataset(m, *data->test, plan.evalBatch, EvalSpec::accuracyOnly(m.trainedOutput()));
  }();
  if (!test) return Unexpected(test.error());
  report->testAccuracy = test->accuracy;
  if (!p.output.checkpoint.empty()) {
    PhaseTimer timer("checkpoint save");
    // Every rank holds the same weights: rank 0 writes them (atomically), the others wait
    // until the file is there, so any rank can resume from it once this returns.
    if (!parallel || comm->rank() == 0) {
      auto ok = saveCheckpoint(m, p.output.checkpoint, step, /*withState=*/true);
      if (!ok) return Unexpected(ok.error());
    }
    if (parallel)
      if (auto ok = comm->barrier(); !ok) return fail("waiting for rank 0's checkpoint: " + ok.error().message());
    report->checkpoint = p.output.checkpoint;
  }
  return report;
}

}  // namespace

Expected<TrainReport> fitPipeline(ModelPrograms& m, const Pipeline& p, const TrainOptions& opts, int64_t& step) {
  if (!p.train) return fail("the pipeline has no train stage");
  return fitPipelineData(m, p, opts, step, loadPipelineData(p));
}

Expected<TrainReport> trainPipeline(const Pipeline& p, const TrainOptions& opts) {
  if (!p.train) return fail("the pipeline has no train stage");
  if (!p.data) return fail("the pipeline has no data input (input: mnist path=...)");
  // Say now, not after the whole training, that the checkpoint cannot be written.
  if (!p.output.checkpoint.empty())
    if (auto ok = checkWritablePath(p.output.checkpoint); !ok) return fail(ok.error().message(), p.output.loc);
  // The data set loads on another thread while the device initialises and the training step
  // compiles (on a GPU: driver, context, cuBLAS, NVRTC or the kernel cache).
  auto data =
      std::async(serialStartup() ? std::launch::deferred : std::launch::async, [&p] { return loadPipelineData(p); });
  auto device = pipelineDevice(p, opts.device);
  if (!device) return Unexpected(device.error());
  noteDevice(*device, opts);
  // On a GPU, the CUDA context and cuBLAS handle are made on another thread while this one
  // runs the passes and generates and compiles (or reads from the cache) the CUDA source;
  // the future keeps the context alive until the run ends.
  std::future<Expected<std::shared_ptr<void>>> context;
  if (device->kind == DeviceKind::Cuda && !serialStartup())
    context = std::async(std::launch::async, [tf32 = opts.exec.tf32, precision = opts.exec.precision] {
      return prewarmCudaContext(tf32, precision);
    });
  int64_t step = 0;
  auto m = createPipelineTrainer(p, *device, opts, step);
  Expected<TrainReport> report = [&]() -> Expected<TrainReport> {
    if (!m) return Unexpected(m.error());
    auto loaded = [&] {
      PhaseTimer timer("waiting for the data");
      return data.get();
    }();
    return fitPipelineData(**m, p, opts, step, std::move(loaded));
  }();
  // A rank that fails must not leave the others waiting in a collective.
  if (!report && opts.comm) opts.comm->abort(report.error().message());
  return report;
}

Expected<TrainReport> evaluatePipeline(const Pipeline& p, const TrainOptions& opts) {
  if (!p.data) return fail("the pipeline has no data input (input: mnist path=...)");
  std::string weights = !opts.weights.empty() ? opts.weights : p.data->weights;
  std::error_code ec;
  if (weights.empty() && !p.output.checkpoint.empty() && fs::exists(p.output.checkpoint, ec)) weights = p.output.checkpoint;
  if (weights.empty())
    return fail("nothing to evaluate: no weights (give --weights PATH, weights= on the input, or train first so the "
                "output's checkpoint= exists)",
                p.data->loc);
  auto device = pipelineDevice(p, opts.device);
  if (!device) return Unexpected(device.error());
  noteDevice(*device, opts);
  auto data = loadPipelineData(p);
  if (!data) return Unexpected(data.error());
  if (opts.onNote) opts.onNote("data: " + data->dir);
  int64_t batch = std::max<int64_t>(p.train ? p.train->batch : p.data->batch, 500);
  auto m = ModelPrograms::create(std::shared_ptr<const Graph>(p.model->clone()), *device, programOptions(opts));
  if (!m) return Unexpected(m.error());
  (*m)->initialize(0);
  auto file = loadSafetensors(weights);
  if (!file) return Unexpected(file.error());
  TensorMap values;
  for (auto& [name, t] : file->tensors) values[name] = t;
  if (opts.onNote) {
    std::set<std::string> modelTensors;
    for (auto& [name, type] : (*m)->parameterTypes()) modelTensors.insert(name);
    for (auto& [name, type] : (*m)->stateTypes()) modelTensors.insert(name);
    if (std::string note = unusedTensorsNote(weights, *file, modelTensors, opts.exec.verbose); !note.empty())
      opts.onNote(note);
  }
  auto ok = (*m)->setPersistent(values, weights);
  if (!ok) return Unexpected(ok.error());
  TrainReport report;
  report.device = device->description;
  auto start = Clock::now();
  auto test = evaluateDataset(**m, *data->test, batch, EvalSpec::accuracyOnly(p.logitsName));
  if (!test) return Unexpected(test.error());
  report.testAccuracy = test->accuracy;
  report.trainSeconds = 0;
  report.stepMsMedian = secondsSince(start) * 1e3;
  if (opts.profile) report.profile = (*m)->profileSummary();
  report.parameters = (*m)->parameters();
  return report;
}

// ---- reports ----------------------------------------------------------------------------

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
    if (e.validationLoss) o["validation_loss"] = *e.validationLoss;
    if (e.learningRate > 0) o["learning_rate"] = e.learningRate;
    o["seconds"] = e.seconds;
    epochs.push_back(o);
  }
  j["epochs"] = epochs;
  if (r.testAccuracy) j["test_accuracy"] = *r.testAccuracy;
  else j["test_accuracy"] = nullptr;
  j["train_seconds"] = r.trainSeconds;
  j["step_ms_median"] = r.stepMsMedian;
  j["steps"] = r.steps;
  if (r.cudaGraph) j["cuda_graph"] = *r.cudaGraph;
  if (!r.cudaGraphError.empty()) j["cuda_graph_error"] = r.cudaGraphError;
  if (!r.checkpoint.empty()) j["checkpoint"] = r.checkpoint;
  return j.dump(2) + "\n";
}

namespace {

// A tick step of 1, 2 or 5 times a power of ten giving about `count` intervals over `span`.
double niceStep(double span, int count) {
  double raw = span / count;
  double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * p) return m * p;
  return 10 * p;
}

}  // namespace

std::string trainCurveSvg(const TrainReport& r) {
  // 640x420 chart: a legend row under the title, then the plot: loss (left axis, blue),
  // training accuracy (right axis, orange) and validation accuracy (right axis, green,
  // dashed). The accuracy axis spans the accuracies' range (to 100%), so late epochs'
  // gains stay visible.
  const double w = 640, h = 420, left = 64, right = 64, top = 70, bottom = 50;
  const double pw = w - left - right, ph = h - top - bottom;
  size_t n = r.epochs.size();
  double maxLoss = 0;
  for (auto& e : r.epochs) maxLoss = std::max(maxLoss, e.loss);
  if (!(maxLoss > 0) || !std::isfinite(maxLoss)) maxLoss = 1;
  double lossStep = niceStep(maxLoss, 4);
  double lossTop = std::ceil(maxLoss / lossStep) * lossStep;
  bool anyVal = false;
  double accLo = 1, accHi = 0;
  for (auto& e : r.epochs) {
    accLo = std::min(accLo, e.accuracy), accHi = std::max(accHi, e.accuracy);
    if (e.validationAccuracy) {
      anyVal = true;
      accLo = std::min(accLo, *e.validationAccuracy), accHi = std::max(accHi, *e.validationAccuracy);
    }
  }
  if (r.testAccuracy) accLo = std::min(accLo, *r.testAccuracy), accHi = std::max(accHi, *r.testAccuracy);
  if (accHi < accLo) accLo = 0, accHi = 1;
  double accStep = niceStep(std::max(accHi - accLo, 0.02), 4);
  double accBottom = std::max(0.0, std::floor(accLo / accStep - 1e-9) * accStep);
  double accTop = std::min(1.0, std::ceil(accHi / accStep + 1e-9) * accStep);
  if (accTop - accBottom < accStep) accBottom = std::max(0.0, accTop - accStep);
  auto x = [&](size_t i) { return left + (n <= 1 ? pw / 2 : pw * double(i) / double(n - 1)); };
  auto yLoss = [&](double v) { return top + ph * (1 - v / lossTop); };
  auto yAcc = [&](double v) { return top + ph * (1 - (v - accBottom) / (accTop - accBottom)); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"24\" font-size=\"15\">Training on {3}</text>\n",
      w, h, left, r.device);
  // The legend, above the plot (never on the curves).
  double ly = 48;
  auto legend = [&](double lx, const char* color, const char* dash, const std::string& label) {
    return fmt::format(
        "<g class=\"legend\"><line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"2\"{4}/>"
        "<text x=\"{5}\" y=\"{6}\">{7}</text></g>\n",
        lx, ly - 4, lx + 18, color, dash, lx + 24, ly, label);
  };
  s += legend(left, "#1f77b4", "", "training loss");
  s += legend(left + 120, "#ff7f0e", "", "training accuracy");
  if (anyVal) s += legend(left + 260, "#2ca02c", " stroke-dasharray=\"6 3\"", "validation accuracy");
  if (r.testAccuracy)
    s += fmt::format("<text x=\"{}\" y=\"24\" text-anchor=\"end\">test accuracy {:.2f}%</text>\n", left + pw,
                     *r.testAccuracy * 100);
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n", left, top, pw, ph);
  for (int t = 0; t <= 4; ++t) {
    double frac = t / 4.0;
    double y = top + ph * (1 - frac);
    s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#eee\"/>\n", left, y, left + pw, y);
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\" fill=\"#1f77b4\">{:.3g}</text>\n", left - 6, y + 4,
                     lossTop * frac);
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" fill=\"#ff7f0e\">{:.3g}%</text>\n", left + pw + 6, y + 4,
                     (accBottom + (accTop - accBottom) * frac) * 100);
  }
  for (size_t i = 0; i < n; ++i)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", x(i), top + ph + 18, r.epochs[i].epoch);
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>\n", left + pw / 2, h - 10);
  auto poly = [&](const char* cls, auto value, const char* color, const char* dash, bool (*has)(const EpochStats&)) {
    std::string pts, dots;
    for (size_t i = 0; i < n; ++i) {
      if (!has(r.epochs[i])) continue;
      double y = value(r.epochs[i]);
      pts += fmt::format("{:.1f},{:.1f} ", x(i), y);
      dots += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", x(i), y, color);
    }
    if (pts.empty()) return std::string();
    return fmt::format("<polyline class=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>\n", cls,
                       color, dash, pts) +
           dots;
  };
  auto always = [](const EpochStats&) { return true; };
  auto hasVal = [](const EpochStats& e) { return e.validationAccuracy.has_value(); };
  s += poly("loss", [&](const EpochStats& e) { return yLoss(e.loss); }, "#1f77b4", "", +always);
  s += poly("accuracy", [&](const EpochStats& e) { return yAcc(e.accuracy); }, "#ff7f0e", "", +always);
  s += poly("validation-accuracy", [&](const EpochStats& e) { return yAcc(e.validationAccuracy.value_or(0)); }, "#2ca02c",
            " stroke-dasharray=\"6 3\"", +hasVal);
  s += "</svg>\n";
  return s;
}

}  // namespace shoal
