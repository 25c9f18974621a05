// The public Session (a model compiled for a device, at any batch size) and pipelines.
#include <shoal/shoal.h>

#include <fmt/format.h>

#include "frontend/pipeline_loader.h"
#include "runtime/backend.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/model_programs.h"
#include "runtime/trainer.h"
#include "api/internal.h"

namespace shoal {

namespace {

Unexpected<Error> emptySession() { return fail("this Session is empty (made by Session(), not Session::create)"); }

}  // namespace

Expected<DeviceSelection> sessionDevice(const SessionOptions& opts) {
  if (auto ok = checkSessionOptions(opts); !ok) return Unexpected(ok.error());
  auto sel = selectDevice(opts.device);
  if (!sel) return fail("SessionOptions::device is Gpu, but there is " + sel.error().message());
  if (auto ok = checkPrecisionOn(opts, *sel); !ok) return Unexpected(ok.error());
  return sel;
}

Expected<void> checkPrecisionOn(const SessionOptions& opts, const DeviceSelection& device) {
  if (device.kind == DeviceKind::Cuda) return {};
  if (opts.precision == Precision::Fp32) {
    if (!opts.autotune) return {};
    return fail(
        fmt::format("SessionOptions::autotune times the GPU's convolution tiles, and this runs on the CPU{} "
                    "(which has none to time: leave it off there)",
                    device.note.empty() ? "" : ": " + device.note));
  }
  return fail(fmt::format("SessionOptions::precision {} runs on a GPU's tensor cores, and this runs on the CPU{} (which "
                          "computes in fp32: use Precision::Fp32 there)",
                          tensorCoreMathName(precisionMath(opts.precision)), device.note.empty() ? "" : ": " + device.note));
}

TensorCoreMath precisionMath(Precision p) {
  switch (p) {
    case Precision::Tf32: return TensorCoreMath::Tf32;
    case Precision::Bf16: return TensorCoreMath::Bf16;
    case Precision::Fp16: return TensorCoreMath::Fp16;
    case Precision::Fp32: break;
  }
  return TensorCoreMath::Off;
}

Expected<void> checkSessionOptions(const SessionOptions& opts) {
  if (opts.tf32 && (opts.precision == Precision::Bf16 || opts.precision == Precision::Fp16))
    return fail(fmt::format("SessionOptions: tf32 and precision {} disagree; choose one",
                            tensorCoreMathName(precisionMath(opts.precision))));
  if (opts.threads && *opts.threads < 1)
    return fail(fmt::format("SessionOptions::threads must be 1 or more (or unset: every core available), got {}",
                            *opts.threads));
  return {};
}

ModelProgramsOptions sessionProgramOptions(const SessionOptions& opts) {
  ModelProgramsOptions o;
  o.exec.tf32 = opts.tf32;
  o.exec.precision = precisionMath(opts.precision);
  o.exec.verbose = opts.verbose;
  o.exec.autotune = opts.autotune;
  o.exec.threads = opts.threads.value_or(0);
  o.profile = opts.profile;
  return o;
}

// ---- Session ----------------------------------------------------------------------------

Expected<Session> Session::create(const Model& model, const SessionOptions& opts) {
  if (!model.graph_) return fail("Session::create: the model is empty");
  auto sel = sessionDevice(opts);
  if (!sel) return Unexpected(sel.error());
  auto programs = ModelPrograms::create(model.graph_, *sel, sessionProgramOptions(opts));
  if (!programs) return Unexpected(programs.error());
  (*programs)->initialize(opts.seed.value_or(0));
  Session s;
  s.programs_ = std::shared_ptr<ModelPrograms>(std::move(*programs));
  return s;
}

Expected<Session> Session::create(const std::string& path, const SessionOptions& opts) {
  auto pipeline = loadPipeline(path);
  if (!pipeline) return Unexpected(pipeline.error());
  return create(pipeline->model(), opts);
}

std::string Session::device() const { return programs_ ? programs_->device().description : ""; }

std::string Session::profile() const { return programs_ ? programs_->profileSummary() : ""; }

std::vector<std::pair<std::string, TensorType>> Session::inputs() const {
  std::vector<std::pair<std::string, TensorType>> out;
  if (programs_)
    for (Node* n : programs_->model().inputNodes()) out.push_back({n->attrs().getString("name"), n->result()->type()});
  return out;
}

std::vector<std::string> Session::outputs() const {
  std::vector<std::string> out;
  if (programs_)
    for (Node* n : programs_->model().outputNodes()) out.push_back(n->attrs().getString("name"));
  return out;
}

Expected<TensorMap> Session::run(const TensorMap& inputs) {
  if (!programs_) return emptySession();
  std::lock_guard lock(programs_->mutex());
  return programs_->run(inputs);
}

std::map<std::string, Tensor> Session::parameters() {
  if (!programs_) return {};
  std::lock_guard lock(programs_->mutex());
  return programs_->parameters();
}

Expected<void> Session::setParameters(const TensorMap& values) {
  if (!programs_) return emptySession();
  std::lock_guard lock(programs_->mutex());
  TensorMap params;
  for (auto& [name, type] : programs_->parameterTypes()) {
    auto it = values.find(name);
    if (it == values.end()) return fail(fmt::format("setParameters: no tensor for parameter '{}' ({})", name, type.str()));
    params[name] = it->second;
  }
  for (auto& [name, t] : values)
    if (!params.count(name)) return fail(fmt::format("setParameters: the model has no parameter '{}'", name));
  return programs_->setPersistent(params, "setParameters");
}

Expected<void> Session::loadWeights(const std::string& path) {
  if (!programs_) return emptySession();
  std::lock_guard lock(programs_->mutex());
  auto file = loadSafetensors(path);
  if (!file) return Unexpected(file.error());
  TensorMap params;
  for (auto& [name, type] : programs_->parameterTypes())
    if (const Tensor* t = file->find(name)) params[name] = *t;
  return programs_->setPersistent(params, path);
}

Expected<void> Session::saveWeights(const std::string& path) {
  if (!programs_) return emptySession();
  std::lock_guard lock(programs_->mutex());
  return saveCheckpoint(*programs_, path, 0, /*withState=*/false);
}

int64_t Session::compiledBatchSizes() const {
  if (!programs_) return 0;
  std::lock_guard lock(programs_->mutex());
  return programs_->inferenceCount();  // a trainer's session counts its inference programs only
}

// ---- pipelines --------------------------------------------------------------------------

Model LoadedPipeline::model() const {
  Model m;
  if (pipeline_) m.graph_ = std::shared_ptr<const Graph>(pipeline_->model->clone());
  return m;
}

bool LoadedPipeline::trains() const { return pipeline_ && pipeline_->train.has_value(); }

TrainingOptions LoadedPipeline::trainingOptions() const {
  TrainingOptions t;
  if (!pipeline_ || !pipeline_->train) return t;
  const TrainConfig& c = *pipeline_->train;
  t.loss = c.loss == "mse"               ? Loss::MeanSquaredError
           : c.loss == "bce_with_logits" ? Loss::BinaryCrossEntropyWithLogits
                                         : Loss::CrossEntropy;
  if (c.optimizer == "sgd")
    t.optimizer = optim::SGD{.lr = c.lr, .momentum = c.momentum, .weightDecay = c.weightDecay, .nesterov = c.nesterov};
  else if (c.optimizer == "adamw")
    t.optimizer = optim::AdamW{.lr = c.lr, .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.eps, .weightDecay = c.weightDecay};
  else
    t.optimizer = optim::Adam{.lr = c.lr, .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.eps, .weightDecay = c.weightDecay};
  t.output = pipeline_->logitsName;
  t.labelSmoothing = c.labelSmoothing;
  t.oneHotLabels = c.oneHotTargets;
  t.clipNorm = c.clipNorm;
  t.lossScale = c.lossScale;
  t.lossScaleInterval = c.lossScaleInterval;
  t.schedule = c.schedule;
  return t;
}

Expected<LoadedPipeline> loadPipeline(const std::string& path) {
  DiagnosticEngine diags;
  auto p = loadPipelineFile(path, diags);
  if (!p || diags.hasErrors()) {
    Error first = diags.firstError();
    return Unexpected(Error(diags.render(), first.location()));
  }
  LoadedPipeline lp;
  lp.pipeline_ = std::make_shared<const Pipeline>(std::move(*p));
  return lp;
}

}  // namespace shoal
