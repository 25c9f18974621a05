// The public Trainer: a model + loss + optimizer on a device, over the runtime's training loop
// (the same loop `shoal run` trains pipelines with).
#include <shoal/shoal.h>

#include <fmt/format.h>

#include "api/internal.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/trainer.h"

namespace shoal {

struct TrainerState {
  std::shared_ptr<ModelPrograms> programs;
  std::shared_ptr<const Pipeline> pipeline;  ///< set for a pipeline's trainer
  int64_t step = 0;                          ///< optimizer steps so far (Adam's t)
  // fit()'s defaults: a pipeline's train stage, else these.
  int64_t epochs = 1, batchSize = 64;
  bool shuffle = true;
  uint64_t seed = 0;
};

namespace {

Unexpected<Error> emptyTrainer() { return fail("this Trainer is empty (made by copying a moved-from Trainer?)"); }

Expected<void> checkAdam(const char* name, double beta1, double beta2, double eps) {
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1))
    return fail(fmt::format("optim::{}: beta1 and beta2 must be in [0, 1), got {} and {}", name, beta1, beta2));
  if (!(eps > 0)) return fail(fmt::format("optim::{}: eps must be positive, got {}", name, eps));
  return {};
}

Expected<void> checkSchedule(const LrSchedule& s) {
  if (s.warmup < 0) return fail(fmt::format("LrSchedule: warmup must be 0 or more steps, got {}", s.warmup));
  switch (s.kind) {
    case ScheduleKind::Constant: return {};
    case ScheduleKind::Step:
      if (s.stepSize <= 0) return fail(fmt::format("LrSchedule: a step schedule needs a positive stepSize, got {}", s.stepSize));
      if (!(s.gamma > 0) || !std::isfinite(s.gamma))
        return fail(fmt::format("LrSchedule: gamma must be positive, got {}", s.gamma));
      return {};
    case ScheduleKind::Cosine:
      if (s.tMax < 0) return fail(fmt::format("LrSchedule: tMax must be 0 (the fit) or positive, got {}", s.tMax));
      if (!(s.etaMin >= 0) || !std::isfinite(s.etaMin))
        return fail(fmt::format("LrSchedule: etaMin must be 0 or more, got {}", s.etaMin));
      return {};
  }
  return {};
}

Expected<TrainConfig> trainConfigOf(const TrainingOptions& t) {
  TrainConfig c;
  switch (t.loss) {
    case Loss::CrossEntropy: c.loss = "softmax_cross_entropy"; break;
    case Loss::MeanSquaredError: c.loss = "mse"; break;
    case Loss::BinaryCrossEntropyWithLogits: c.loss = "bce_with_logits"; break;
  }
  if (!(t.labelSmoothing >= 0 && t.labelSmoothing <= 1))
    return fail(fmt::format("TrainingOptions::labelSmoothing must be in [0, 1], got {}", t.labelSmoothing));
  if (t.labelSmoothing != 0 && t.loss != Loss::CrossEntropy)
    return fail("TrainingOptions::labelSmoothing applies to Loss::CrossEntropy");
  if (t.oneHotLabels && t.loss == Loss::CrossEntropy)
    return fail("TrainingOptions::oneHotLabels is for Loss::MeanSquaredError and Loss::BinaryCrossEntropyWithLogits "
                "(cross-entropy reads the labels itself)");
  c.labelSmoothing = t.labelSmoothing;
  c.oneHotTargets = t.oneHotLabels;
  if (const auto* adam = std::get_if<optim::Adam>(&t.optimizer)) {
    c.optimizer = "adam";
    c.lr = adam->lr, c.beta1 = adam->beta1, c.beta2 = adam->beta2, c.eps = adam->eps, c.weightDecay = adam->weightDecay;
    if (auto ok = checkAdam("Adam", adam->beta1, adam->beta2, adam->eps); !ok) return Unexpected(ok.error());
  } else if (const auto* adamw = std::get_if<optim::AdamW>(&t.optimizer)) {
    c.optimizer = "adamw";
    c.lr = adamw->lr, c.beta1 = adamw->beta1, c.beta2 = adamw->beta2, c.eps = adamw->eps;
    c.weightDecay = adamw->weightDecay;
    if (auto ok = checkAdam("AdamW", adamw->beta1, adamw->beta2, adamw->eps); !ok) return Unexpected(ok.error());
  } else {
    const auto& sgd = std::get<optim::SGD>(t.optimizer);
    c.optimizer = "sgd";
    c.lr = sgd.lr, c.momentum = sgd.momentum, c.weightDecay = sgd.weightDecay, c.nesterov = sgd.nesterov;
    if (!(sgd.momentum >= 0)) return fail(fmt::format("optim::SGD: momentum must be 0 or more, got {}", sgd.momentum));
    if (sgd.nesterov && !(sgd.momentum > 0)) return fail("optim::SGD: nesterov needs a positive momentum");
  }
  if (!(c.lr > 0) || !std::isfinite(c.lr)) return fail(fmt::format("the learning rate must be positive, got {}", c.lr));
  if (!(c.weightDecay >= 0)) return fail(fmt::format("weight decay must be 0 or more, got {}", c.weightDecay));
  if (!(t.clipNorm >= 0) || !std::isfinite(t.clipNorm))
    return fail(fmt::format("TrainingOptions::clipNorm must be 0 (off) or positive, got {}", t.clipNorm));
  c.clipNorm = t.clipNorm;
  if (t.lossScale && (!(*t.lossScale >= 0) || !std::isfinite(*t.lossScale)))
    return fail(fmt::format("TrainingOptions::lossScale must be 0 (off) or a positive initial scale, got {}", *t.lossScale));
  if (t.lossScaleInterval < 1)
    return fail(fmt::format("TrainingOptions::lossScaleInterval must be 1 or more, got {}", t.lossScaleInterval));
  c.lossScale = t.lossScale;
  c.lossScaleInterval = t.lossScaleInterval;
  if (auto ok = checkSchedule(t.schedule); !ok) return Unexpected(ok.error());
  c.schedule = t.schedule;
  return c;
}

FitPlan planOf(const TrainerState& s, const FitOptions& o, int64_t batchSize) {
  FitPlan plan;
  plan.epochs = o.epochs.value_or(s.epochs);
  plan.stepsPerEpoch = o.stepsPerEpoch;
  plan.validation = o.validation;
  plan.evalBatch = std::max<int64_t>(batchSize, 500);
  plan.learningRate = o.learningRate;
  plan.onStep = o.onStep;
  plan.onEpoch = o.onEpoch;
  plan.lossReadSeconds = o.lossReadSeconds;
  return plan;
}

// FitOptions::weights: a checkpoint to resume from, when given.
Expected<void> resumeFrom(TrainerState& s, const std::string& path) {
  if (path.empty()) return {};
  auto step = loadCheckpoint(*s.programs, path);
  if (!step) return Unexpected(step.error());
  s.step = *step;
  return {};
}

}  // namespace

Expected<Trainer> Trainer::create(const Model& model, const TrainingOptions& training, const SessionOptions& opts) {
  if (!model.graph_) return fail("Trainer::create: the model is empty");
  auto cfg = trainConfigOf(training);
  if (!cfg) return Unexpected(cfg.error());
  auto sel = sessionDevice(opts);
  if (!sel) return Unexpected(sel.error());
  int64_t batch = 1;
  for (Node* n : model.graph_->inputNodes())
    if (!n->result()->type().shape.empty()) {
      batch = n->result()->type().shape[0];
      break;
    }
  auto programs = ModelPrograms::createTraining(model.graph_, *cfg, training.output, batch, *sel, sessionProgramOptions(opts));
  if (!programs) return Unexpected(programs.error());
  (*programs)->initialize(opts.seed.value_or(0));
  Trainer t;
  t.state_ = std::make_shared<TrainerState>();
  t.state_->programs = std::shared_ptr<ModelPrograms>(std::move(*programs));
  return t;
}

Expected<Trainer> Trainer::create(const LoadedPipeline& pipeline, const SessionOptions& opts) {
  if (!pipeline.pipeline_) return fail("Trainer::create: the pipeline is empty");
  const Pipeline& p = *pipeline.pipeline_;
  if (!p.train) return fail(fmt::format("'{}' has no train stage to train with", p.file));
  if (auto ok = checkSessionOptions(opts); !ok) return Unexpected(ok.error());
  auto sel = pipelineDevice(p, opts.device);
  if (!sel) return Unexpected(sel.error());
  if (auto ok = checkPrecisionOn(opts, *sel); !ok) return Unexpected(ok.error());
  TrainOptions t;
  t.seed = opts.seed;
  t.exec.tf32 = opts.tf32;
  t.exec.precision = precisionMath(opts.precision);
  t.exec.verbose = opts.verbose;
  t.exec.autotune = opts.autotune;
  t.exec.threads = opts.threads.value_or(0);
  t.profile = opts.profile;
  auto state = std::make_shared<TrainerState>();
  auto programs = createPipelineTrainer(p, *sel, t, state->step);
  if (!programs) return Unexpected(programs.error());
  state->programs = std::shared_ptr<ModelPrograms>(std::move(*programs));
  state->pipeline = pipeline.pipeline_;
  state->epochs = p.train->epochs;
  state->batchSize = p.train->batch;
  state->shuffle = p.train->shuffle;
  state->seed = opts.seed.value_or(p.train->seed);
  Trainer tr;
  tr.state_ = std::move(state);
  return tr;
}

std::string Trainer::device() const { return state_ ? state_->programs->device().description : ""; }

std::string Trainer::profile() const { return state_ ? state_->programs->profileSummary() : ""; }

Expected<StepStats> Trainer::step(const TensorMap& batch) {
  if (!state_) return emptyTrainer();
  std::lock_guard lock(state_->programs->mutex());
  return trainStep(*state_->programs, batch, state_->step);
}

Expected<TrainReport> Trainer::fit(Dataset& data, const FitOptions& opts) {
  if (!state_) return emptyTrainer();
  std::lock_guard lock(state_->programs->mutex());
  if (auto ok = resumeFrom(*state_, opts.weights); !ok) return Unexpected(ok.error());
  int64_t batch = opts.batchSize.value_or(state_->batchSize);
  if (batch <= 0) return fail(fmt::format("FitOptions::batchSize must be positive, got {}", batch));
  if (data.size() == 0) return fail("fit: the dataset is empty");
  DataLoader loader(data, {.batchSize = batch, .shuffle = opts.shuffle.value_or(state_->shuffle),
                           .seed = opts.seed.value_or(state_->seed)});
  return fitPrograms(*state_->programs, loader, planOf(*state_, opts, batch), state_->step);
}

Expected<TrainReport> Trainer::fit(BatchSource& batches, const FitOptions& opts) {
  if (!state_) return emptyTrainer();
  std::lock_guard lock(state_->programs->mutex());
  if (auto ok = resumeFrom(*state_, opts.weights); !ok) return Unexpected(ok.error());
  return fitPrograms(*state_->programs, batches, planOf(*state_, opts, state_->batchSize), state_->step);
}

Expected<TrainReport> Trainer::fit(const FitOptions& opts) {
  if (!state_) return emptyTrainer();
  if (!state_->pipeline)
    return fail("this Trainer has no data of its own (it was made from a Model): pass fit() a Dataset or a BatchSource");
  if (opts.validation)
    return fail("FitOptions::validation: a pipeline validates on its own split (train: validation=FRACTION)");
  std::lock_guard lock(state_->programs->mutex());
  TrainOptions t;
  t.epochs = opts.epochs;
  t.batch = opts.batchSize;
  t.shuffle = opts.shuffle;
  t.shuffleSeed = opts.seed.value_or(state_->seed);
  t.stepsPerEpoch = opts.stepsPerEpoch;
  t.learningRate = opts.learningRate;
  t.onStep = opts.onStep;
  t.onEpoch = opts.onEpoch;
  t.lossReadSeconds = opts.lossReadSeconds;
  if (auto ok = resumeFrom(*state_, opts.weights); !ok) return Unexpected(ok.error());
  return fitPipeline(*state_->programs, *state_->pipeline, t, state_->step);
}

Expected<EvalStats> Trainer::evaluate(Dataset& data, int64_t batchSize) {
  if (!state_) return emptyTrainer();
  std::lock_guard lock(state_->programs->mutex());
  ModelPrograms& m = *state_->programs;
  return evaluateDataset(m, data, batchSize, EvalSpec::of(m.trainConfig(), m.trainedOutput(), true));
}

std::map<std::string, Tensor> Trainer::parameters() {
  if (!state_) return {};
  std::lock_guard lock(state_->programs->mutex());
  return state_->programs->parameters();
}

Expected<void> Trainer::saveWeights(const std::string& path) {
  if (!state_) return emptyTrainer();
  std::lock_guard lock(state_->programs->mutex());
  return shoal::saveCheckpoint(*state_->programs, path, state_->step, /*withState=*/false);
}

Expected<void> Trainer::loadWeights(const std::string& path) {
  if (!state_) return emptyTrainer();
  std::lock_guard lock(state_->programs->mutex());
  return session().loadWeights(path);
}

Expected<void> Trainer::saveCheckpoint(const std::string& path) {
  if (!state_) return emptyTrainer();
  std::lock_guard lock(state_->programs->mutex());
  return shoal::saveCheckpoint(*state_->programs, path, state_->step, /*withState=*/true);
}

Expected<void> Trainer::loadCheckpoint(const std::string& path) {
  if (!state_) return emptyTrainer();
  std::lock_guard lock(state_->programs->mutex());
  auto step = shoal::loadCheckpoint(*state_->programs, path);
  if (!step) return Unexpected(step.error());
  state_->step = *step;
  return {};
}

Session Trainer::session() const {
  Session s;
  if (state_) s.programs_ = state_->programs;
  return s;
}

double Trainer::learningRate() const { return state_ ? state_->programs->learningRate() : 0.0; }

Expected<void> Trainer::setLearningRate(double lr) {
  if (!state_) return emptyTrainer();
  if (!(lr > 0) || !std::isfinite(lr)) return fail(fmt::format("the learning rate must be positive, got {}", lr));
  std::lock_guard lock(state_->programs->mutex());
  state_->programs->setLearningRate(lr);
  return {};
}

int64_t Trainer::steps() const { return state_ ? state_->step : 0; }

}  // namespace shoal
