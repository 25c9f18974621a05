// A model's programs per batch size, sharing one set of parameters.
#include "runtime/model_programs.h"

#include <fmt/format.h>

#include <cassert>

#include "runtime/checkpoint/safetensors.h"
#include "support/phase_times.h"

namespace shoal {

namespace {

// "f32[N,784]": the type with its batch extent spelled N.
std::string batchedTypeString(const TensorType& t) {
  std::string s = std::string(dtypeName(t.dtype)) + "[N";
  for (size_t i = 1; i < t.shape.size(); ++i) s += "," + std::to_string(t.shape[i]);
  return s + "]";
}

// The training graph reads the trained output under the name the autodiff pass expects
// ("logits"); an output already called so is renamed out of the way (a training step's
// other outputs are never read).
Expected<void> nameTrainedOutput(Graph& g, const std::string& output, const Location& loc) {
  const std::string kTrained = "logits";
  if (output == kTrained) return {};
  Node* trained = nullptr;
  for (Node* n : g.outputNodes()) {
    const std::string& name = n->attrs().getString("name");
    if (name == output) trained = n;
    else if (name == kTrained) n->attrs().set("name", std::string("logits (not trained)"));
  }
  if (!trained) return fail(fmt::format("the model has no output named '{}' to train", output), loc);
  trained->attrs().set("name", kTrained);
  return {};
}

}  // namespace

Expected<std::unique_ptr<ModelPrograms>> ModelPrograms::create(std::shared_ptr<const Graph> model,
                                                               const DeviceSelection& device,
                                                               const ModelProgramsOptions& opts) {
  std::unique_ptr<ModelPrograms> m(new ModelPrograms());
  m->model_ = std::move(model);
  m->inputs_ = m->model_->inputNodes();
  m->device_ = device;
  m->opts_ = opts;
  int64_t batch = 1;
  for (Node* n : m->inputs_)
    if (!n->result()->type().shape.empty()) {
      batch = n->result()->type().shape[0];
      break;
    }
  auto first = m->inference(batch);
  if (!first) return Unexpected(first.error());
  return m;
}

Expected<std::unique_ptr<ModelPrograms>> ModelPrograms::createTraining(std::shared_ptr<const Graph> model,
                                                                       const TrainConfig& cfg,
                                                                       const std::string& output, int64_t batch,
                                                                       const DeviceSelection& device,
                                                                       const ModelProgramsOptions& opts) {
  std::unique_ptr<ModelPrograms> m(new ModelPrograms());
  m->model_ = std::move(model);
  m->inputs_ = m->model_->inputNodes();
  m->device_ = device;
  m->opts_ = opts;
  m->train_ = cfg;
  // fp16 operands underflow where bfloat16's do not: dynamic loss scaling unless asked otherwise.
  if (!m->train_->lossScale && opts.exec.precision == TensorCoreMath::Fp16) m->train_->lossScale = 65536.0;
  m->output_ = output;
  if (!m->model_->outputValue(output))
    return fail(fmt::format("the model has no output named '{}' to train", output), cfg.loc);
  auto first = m->trainingStep(batch);
  if (!first) return Unexpected(first.error());
  return m;
}

Expected<Program> ModelPrograms::program(int64_t batch, const TrainConfig* train) const {
  auto rebatched = rebatchGraph(*model_, batch);
  if (!rebatched) {
    int64_t built = -1;
    for (Node* n : inputs_)
      if (!n->result()->type().shape.empty()) {
        built = n->result()->type().shape[0];
        break;
      }
    return fail(fmt::format("the model cannot run at batch size {} (it was built for {}): {}", batch, built,
                            rebatched.error().message()),
                rebatched.error().location());
  }
  if (train) {
    auto ok = nameTrainedOutput(**rebatched, output_, train->loc);
    if (!ok) return Unexpected(ok.error());
  }
  CompileOptions copts = opts_.compile;
  copts.train = train;
  copts.ranks = train && opts_.comm ? opts_.comm->size() : 1;
  auto program = [&] {
    PhaseTimer timer("passes (compile the program)");
    return compileProgram(std::move(*rebatched), copts);
  }();
  return program;
}

Expected<void> ModelPrograms::precompileInference(int64_t batch) const {
  auto program = this->program(batch, nullptr);
  if (!program) return Unexpected(program.error());
  return precompileExecutable(*program, device_, opts_.exec);
}

Expected<std::unique_ptr<Executable>> ModelPrograms::compile(int64_t batch, const TrainConfig* train) {
  auto program = this->program(batch, train);
  if (!program) return Unexpected(program.error());
  auto exe = createExecutable(std::move(*program), device_, opts_.exec);
  if (!exe) return Unexpected(exe.error());
  if (train) (*exe)->setCommunicator(opts_.comm);
  bool profile = opts_.profile && (train != nullptr || !train_);
  (*exe)->setProfiling(profile);
  return exe;
}

std::string ModelPrograms::profileSummary() const {
  std::vector<std::pair<std::string, std::string>> parts;
  for (const auto& [batch, exe] : steps_)
    if (std::string s = exe->profileSummary(); !s.empty()) parts.push_back({fmt::format("training step, batch {}", batch), s});
  for (const auto& [batch, exe] : inference_)
    if (std::string s = exe->profileSummary(); !s.empty()) parts.push_back({fmt::format("inference, batch {}", batch), s});
  if (parts.size() == 1) return parts[0].second;
  std::string out;
  for (const auto& [heading, s] : parts) out += heading + ":\n" + s;
  return out;
}

Expected<void> ModelPrograms::adopt(Executable& exe) {
  if (!owner_) {
    owner_ = &exe;
    return {};
  }
  return exe.shareParameters(*owner_);
}

Expected<Executable*> ModelPrograms::inference(int64_t batch) {
  if (batch <= 0) return fail(fmt::format("the batch is empty (batch size {})", batch));
  if (auto it = inference_.find(batch); it != inference_.end()) return it->second.get();
  auto exe = compile(batch, nullptr);
  if (!exe) return Unexpected(exe.error());
  auto ok = adopt(**exe);
  if (!ok) return Unexpected(ok.error());
  Executable* raw = exe->get();
  inference_[batch] = std::move(*exe);
  return raw;
}

Expected<Executable*> ModelPrograms::trainingStep(int64_t batch) {
  if (!train_) return fail("this model was compiled for inference only; a Trainer trains it");
  if (batch <= 0) return fail(fmt::format("the batch is empty (batch size {})", batch));
  if (auto it = steps_.find(batch); it != steps_.end()) return it->second.get();
  auto exe = compile(batch, &*train_);
  if (!exe) return Unexpected(exe.error());
  auto ok = adopt(**exe);
  if (!ok) return Unexpected(ok.error());
  Executable* raw = exe->get();
  // The step count is an input of the step when something reads it (Adam; dropout's masks).
  readsStep_ = false;
  for (Node* n : raw->graph().inputNodes()) readsStep_ |= n->attrs().getString("name") == "step";
  steps_[batch] = std::move(*exe);
  return raw;
}

std::vector<Executable*> ModelPrograms::trainingSteps() {
  std::vector<Executable*> out;
  for (auto& [key, exe] : steps_) out.push_back(exe.get());
  return out;
}

void ModelPrograms::setLearningRate(double lr) {
  if (train_) train_->lr = lr;
}

void ModelPrograms::initialize(uint64_t seed) {
  owner_->initializeParameters(seed);
  // Parameters whose values came with the model (an ONNX model's initializers).
  if (!model_->parameterValues().empty()) {
    auto ok = owner_->writePersistent(model_->parameterValues());
    assert(ok && "a graph's parameter values have its parameters' names and types");
    (void)ok;
  }
}

Expected<int64_t> ModelPrograms::batchOf(const TensorMap& feed) const {
  // Inputs fed at exactly the shapes the model was built for run its program as built, even
  // where their leading extents differ (a time-major sequence beside its initial state).
  bool asBuilt = true;
  std::optional<int64_t> built;
  for (Node* n : inputs_) {
    auto it = feed.find(n->attrs().getString("name"));
    const Shape& want = n->result()->type().shape;
    asBuilt &= it != feed.end() && it->second.shape() == want;
    if (!built && !want.empty()) built = want[0];
  }
  if (asBuilt) return built.value_or(1);
  std::optional<int64_t> batch;
  std::string first;
  for (Node* n : inputs_) {
    const std::string& name = n->attrs().getString("name");
    const TensorType& want = n->result()->type();
    auto it = feed.find(name);
    if (it == feed.end()) return fail(fmt::format("missing input '{}' ({})", name, want.str()), n->loc());
    const Shape& got = it->second.shape();
    if (want.shape.empty()) {
      if (!got.empty()) return fail(fmt::format("input '{}' expects {}, got {}", name, want.str(), it->second.type().str()), n->loc());
      continue;
    }
    bool sameRest = got.size() == want.shape.size() && std::equal(got.begin() + 1, got.end(), want.shape.begin() + 1);
    if (!sameRest)
      return fail(fmt::format("input '{}' expects {} (N: any batch size), got {}", name, batchedTypeString(want),
                              it->second.type().str()),
                  n->loc());
    if (got[0] <= 0) return fail(fmt::format("input '{}' is empty ({})", name, it->second.type().str()), n->loc());
    if (batch && *batch != got[0])
      return fail(fmt::format("inputs disagree on the batch size: '{}' has {} rows, '{}' has {}", first, *batch, name, got[0]),
                  n->loc());
    if (!batch) {
      batch = got[0];
      first = name;
    }
  }
  return batch.value_or(1);
}

Expected<TensorMap> ModelPrograms::run(const TensorMap& inputs) {
  auto batch = batchOf(inputs);
  if (!batch) return Unexpected(batch.error());
  auto exe = inference(*batch);
  if (!exe) return Unexpected(exe.error());
  return (*exe)->run(inputs);
}

std::vector<std::pair<std::string, TensorType>> ModelPrograms::parameterTypes() const {
  std::vector<std::pair<std::string, TensorType>> out;
  for (Node* n : owner_->graph().nodes())
    if (n->kind() == OpKind::Param) out.push_back({n->result()->name(), n->result()->type()});
  return out;
}

std::vector<std::pair<std::string, TensorType>> ModelPrograms::stateTypes() const {
  std::vector<std::pair<std::string, TensorType>> out;
  for (Node* n : owner_->graph().nodes())
    if (n->kind() == OpKind::State) out.push_back({n->result()->name(), n->result()->type()});
  return out;
}

TensorMap ModelPrograms::parameters() {
  TensorMap all = owner_->readPersistent();
  TensorMap out;
  for (auto& [name, type] : parameterTypes()) out[name] = all.at(name);
  return out;
}

Expected<void> ModelPrograms::setPersistent(const TensorMap& values, const std::string& what) {
  std::string prefix = what.empty() ? "" : what + ": ";
  TensorMap accepted;
  for (auto& [name, type] : parameterTypes()) {
    auto it = values.find(name);
    if (it == values.end()) return fail(fmt::format("{}checkpoint has no tensor '{}' ({})", prefix, name, type.str()));
    auto ok = checkTensorMatches(name, it->second, type);
    if (!ok) return fail(prefix + ok.error().message());
    accepted[name] = it->second;
  }
  for (auto& [name, type] : stateTypes()) {
    auto it = values.find(name);
    if (it == values.end()) continue;
    auto ok = checkTensorMatches(name, it->second, type);
    if (!ok) return fail(prefix + ok.error().message());
    accepted[name] = it->second;
  }
  return owner_->writePersistent(accepted);
}

}  // namespace shoal
