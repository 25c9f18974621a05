// The differential check: device results against the float64 interpreter, node by node.
#include "runtime/differential.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>

#include "passes/precision.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/data/idx.h"
#include "support/checked.h"
#include "runtime/trainer.h"

namespace shoal {

int64_t termsPerElement(const Node& n) {
  auto in = [&](size_t i) -> const Shape& { return n.input(i)->type().shape; };
  auto product = [](const std::vector<int64_t>& v) {
    int64_t p = 1;
    for (int64_t x : v) p = saturatingMul(p, std::max<int64_t>(x, 1));  // a pooling window may exceed any tensor
    return p;
  };
  OpKind k = n.kind();
  if (k == OpKind::Dense || k == OpKind::FusedDense) return in(0)[1];
  if (k == OpKind::FusedMlp) return in(0)[1] + in(1)[0];  // the hidden sums, then the output sums
  if (k == OpKind::MatMul) return n.attrs().getInt("transpose_a") != 0 ? in(0)[0] : in(0)[1];
  if (k == OpKind::Conv2d || k == OpKind::FusedConv2d || k == OpKind::FusedConv2dPool) return in(1)[1] * in(1)[2] * in(1)[3];
  if (k == OpKind::Conv2dBackwardData) return in(1)[0] * in(1)[2] * in(1)[3];
  if (k == OpKind::Conv2dBackwardWeight) return in(1)[0] * in(1)[2] * in(1)[3];
  if (k == OpKind::AvgPool2d || k == OpKind::AvgPool2dGrad) return product(n.attrs().getInts("kernel"));
  if (k == OpKind::SumTo)
    return std::max<int64_t>(1, numElements(in(0)) / std::max<int64_t>(1, n.result()->type().numElements()));
  if (k == OpKind::Softmax || k == OpKind::LogSoftmax || k == OpKind::SoftmaxGrad || k == OpKind::LogSoftmaxGrad ||
      k == OpKind::SoftmaxCrossEntropyGrad)
    return in(0).empty() ? 1 : in(0).back();
  if (k == OpKind::SoftmaxCrossEntropy || k == OpKind::Mse || k == OpKind::Accuracy) return numElements(in(0));
  return 1;
}

namespace {

// Copies `src` into `dst` element by element, converting the element type.
void convertInto(const Tensor& src, Tensor dst) {
  for (int64_t i = 0; i < dst.numElements(); ++i) dst.set(i, src.at(i));
}

// "[3,17]" for flat index i of shape s ("[]" for a scalar).
std::string indexText(const Shape& s, int64_t i) {
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    int64_t extent = std::max<int64_t>(s[d], 1);
    idx[d] = i % extent;
    i /= extent;
  }
  return fmt::format("[{}]", fmt::join(idx, ","));
}

// The result of comparing one value: its worst element, how many failed.
struct Comparison {
  int64_t bad = 0;
  int64_t worst = -1;       // the element with the largest error/tolerance ratio
  double worstRatio = 0;
  double got = 0, want = 0, error = 0, tolerance = 0;
};

Comparison compareValues(const Tensor& got, const Tensor& want, int64_t terms, const DifferentialTolerance& tol) {
  Comparison c;
  int64_t count = want.numElements();
  // float16 and bfloat16 results are roundings of f32 vs f64 values: one unit of the format
  // apart at most (2^-10, 2^-7 relative).
  auto halfUnit = [](DType t) { return t == DType::F16 ? 0x1p-10 : t == DType::BF16 ? 0x1p-7 : 0.0; };
  const double unit = std::max(halfUnit(got.dtype()), halfUnit(want.dtype()));
  bool exact = unit == 0 && (!isFloat(got.dtype()) || !isFloat(want.dtype()));
  double sumSquares = 0;
  for (int64_t i = 0; i < count; ++i)
    if (double w = want.at(i); std::isfinite(w)) sumSquares += w * w;
  double rms = count ? std::sqrt(sumSquares / double(count)) : 0;
  double floor = terms > 1 ? rms : 0;  // what a cancelling sum's rounding error is relative to
  for (int64_t i = 0; i < count; ++i) {
    double g = got.at(i), w = want.at(i);
    double error, tolerance = exact ? 0 : tol.atol + std::max(tol.rtol, unit) * std::max(std::abs(w), floor);
    bool ok;
    if (std::isnan(g) || std::isnan(w)) {
      ok = std::isnan(g) && std::isnan(w);
      error = ok ? 0 : std::numeric_limits<double>::infinity();
    } else if (std::isinf(g) || std::isinf(w)) {
      ok = g == w;
      error = ok ? 0 : std::numeric_limits<double>::infinity();
    } else {
      error = std::abs(g - w);
      ok = error <= tolerance;
    }
    double ratio = error == 0 ? 0 : tolerance > 0 ? error / tolerance : std::numeric_limits<double>::infinity();
    if (!ok) ++c.bad;
    if (c.worst < 0 || ratio > c.worstRatio) {
      c.worst = i;
      c.worstRatio = ratio;
      c.got = g, c.want = w, c.error = error, c.tolerance = tolerance;
    }
  }
  return c;
}

// No two transient buffers share bytes and nothing is aliased: every value keeps its result.
bool sharesNothing(const Graph& g, const MemoryPlan& plan) {
  if (!plan.aliasOf.empty()) return false;
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (Node* n : g.nodes())
    for (size_t r = 0; r < n->numResults(); ++r) {
      const BufferAssignment& a = plan.at(n->result(r));
      if (!a.persistent && a.bytes > 0) spans.emplace_back(a.offset, a.offset + a.bytes);
    }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].first < spans[i - 1].second) return false;
  return true;
}

}  // namespace

std::string Divergence::describe(bool withLocation) const {
  std::string where = withLocation ? loc.str() : "";
  return fmt::format("step {}: {}{}, value %{}: {} of {} element{} beyond tolerance; worst at {}: device {:.9g}, float64 "
                     "{:.9g} (error {:.3g}, tolerance {:.3g})",
                     step, node, where.empty() ? "" : " (" + where + ")", value, badElements, elements,
                     elements == 1 ? "" : "s", index, got, want, error, tolerance);
}

Expected<std::unique_ptr<DifferentialChecker>> DifferentialChecker::create(Executable& device, DifferentialTolerance tol) {
  const Program& program = device.program();
  if (!sharesNothing(*program.graph, program.plan))
    return fail("internal error: the differential check needs a program planned with nothing shared "
                "(PlannerOptions{.inPlace = false, .reuse = false})");
  auto promoted = promoteFloatsToF64(*program.graph);
  if (!promoted) return fail("cannot build the float64 reference: " + promoted.error().message(), promoted.error().location());
  Program reference;
  reference.plan = planMemory(**promoted, PlannerOptions{.inPlace = false, .reuse = false});
  reference.graph = std::move(*promoted);
  auto exe = CpuExecutable::create(std::move(reference));
  if (!exe) return Unexpected(exe.error());
  std::unique_ptr<DifferentialChecker> checker(new DifferentialChecker(device, tol));
  checker->reference_ = std::move(*exe);
  return checker;
}

Expected<std::optional<Divergence>> DifferentialChecker::runAndCheck(const TensorMap& inputs, int64_t step) {
  TensorMap before = device_.readPersistent();  // params and state as the step starts
  auto out = device_.run(inputs);
  if (!out) return Unexpected(out.error());

  const auto& deviceNodes = device_.graph().nodes();
  const auto& referenceNodes = reference_->graph().nodes();
  if (deviceNodes.size() != referenceNodes.size()) return fail("internal error: the float64 reference lost nodes");

  // The device's value of an operand: params and state as they were before the step.
  std::unordered_map<const Value*, Tensor> read;
  auto deviceValue = [&](const Value* v) -> Expected<Tensor> {
    if (isPersistentSource(v->def()->kind())) {
      auto it = before.find(v->name());
      if (it == before.end()) return fail("internal error: no value of %" + v->name() + " before the step");
      return it->second;
    }
    if (auto it = read.find(v); it != read.end()) return it->second;
    auto t = device_.readValue(v);
    if (!t) return Unexpected(t.error());
    read[v] = *t;
    return *t;
  };

  int64_t checked = 0;
  for (size_t i = 0; i < deviceNodes.size(); ++i) {
    const Node& d = *deviceNodes[i];
    const Node& r = *referenceNodes[i];
    if (d.kind() == OpKind::Input || d.kind() == OpKind::Param || d.kind() == OpKind::State ||
        d.kind() == OpKind::Output)
      continue;
    for (size_t j = 0; j < d.numInputs(); ++j) {
      auto v = deviceValue(d.input(j));
      if (!v) return Unexpected(v.error());
      convertInto(*v, reference_->valueView(r.input(j)));
    }
    if (auto ok = reference_->runNode(r); !ok)
      return fail(fmt::format("the float64 reference failed at {}: {}", r.describe(), ok.error().message()), r.loc());
    ++checked;

    // The results, then what an in-place update left in its params and state.
    std::vector<std::pair<const Value*, const Value*>> compared;
    for (size_t k = 0; k < d.numResults(); ++k) compared.push_back({d.result(k), r.result(k)});
    for (int op : mutatedOperands(d.kind()))
      if (size_t(op) < d.numInputs()) compared.push_back({d.input(size_t(op)), r.input(size_t(op))});
    for (const auto& [dv, rv] : compared) {
      auto got = device_.readValue(dv);
      if (!got) return Unexpected(got.error());
      Tensor want = reference_->valueView(rv);
      Comparison c = compareValues(*got, want, termsPerElement(d), tol_);
      if (c.bad == 0) {
        if (c.worstRatio > worstRatio_) worstRatio_ = c.worstRatio, worstNode_ = d.describe();
        continue;
      }
      Divergence div;
      div.step = step;
      div.node = d.describe();
      div.op = std::string(d.opName());
      div.value = dv->name();
      div.loc = d.loc();
      div.badElements = c.bad;
      div.elements = want.numElements();
      div.index = indexText(want.shape(), c.worst);
      div.got = c.got, div.want = c.want, div.error = c.error, div.tolerance = c.tolerance;
      nodesChecked_ = checked;
      return std::optional<Divergence>(div);
    }
  }
  nodesChecked_ = checked;
  return std::optional<Divergence>();
}

namespace {

// Rows [begin, begin + count) of `data` (wrapping around), as the model's input and labels.
std::pair<Tensor, Tensor> batchOf(const MnistSet& data, int64_t begin, int64_t count) {
  const Shape& s = data.images.shape();
  int64_t per = numElements(s) / s[0];
  Tensor images(DType::U8, {count, s[1], s[2], s[3]});
  Tensor labels(DType::I64, {count});
  for (int64_t i = 0; i < count; ++i) {
    int64_t row = (begin + i) % s[0];
    std::memcpy(images.data<uint8_t>() + i * per, data.images.data<uint8_t>() + row * per, size_t(per));
    labels.data<int64_t>()[i] = data.labels.data<int64_t>()[row];
  }
  return {images, labels};
}

Expected<void> loadWeightsInto(Executable& exe, const std::string& path) {
  auto file = loadSafetensors(path);
  if (!file) return Unexpected(file.error());
  TensorMap current = exe.readPersistent();
  TensorMap values;
  for (auto& [name, t] : file->tensors) {
    auto it = current.find(name);
    if (it == current.end()) continue;
    if (auto ok = checkTensorMatches(name, t, it->second.type()); !ok) return fail(path + ": " + ok.error().message());
    values[name] = t;
  }
  return exe.writePersistent(values);
}

}  // namespace

Expected<DifferentialReport> checkPipelineAgainstReference(const Pipeline& p, const DifferentialOptions& opts) {
  if (p.train && !p.data) return fail("the pipeline has no data input (input: mnist path=...)");
  if (!p.data && !p.model->inputNodes().empty()) {
    Node* in = p.model->inputNodes().front();
    return fail(fmt::format("input '{}' ({}) has no data: give the pipeline a data input", in->attrs().getString("name"),
                            in->result()->type().str()),
                in->loc());
  }
  DeviceKind kind = opts.device == DeviceKind::Auto && p.device != "auto" ? *parseDeviceKind(p.device) : opts.device;
  auto dev = selectDevice(kind);
  if (!dev) return Unexpected(dev.error());
  if (opts.onNote) opts.onNote("device: " + dev->description + (dev->note.empty() ? "" : " (" + dev->note + ")"));

  DifferentialReport report;
  report.device = dev->description;
  report.training = p.train.has_value();
  CompileOptions copts = opts.compile;
  copts.planner = PlannerOptions{.inPlace = false, .reuse = false};
  TrainConfig cfg = p.train.value_or(TrainConfig{});
  if (opts.seed) cfg.seed = *opts.seed;
  if (p.train) copts.train = &cfg;

  std::optional<MnistSet> data;
  std::unique_ptr<Graph> g;
  int64_t batch = 0;
  if (p.data) {
    auto loaded = loadMnist(resolveDataPath(p.data->path, p.file), /*train=*/p.train.has_value());
    if (!loaded) return Unexpected(Error(loaded.error().message(), p.data->loc));
    data = std::move(*loaded);
    batch = std::min(p.train ? cfg.batch : p.data->batch, data->images.shape()[0]);
    auto rebatched = rebatchGraph(*p.model, batch);
    if (!rebatched) return Unexpected(rebatched.error());
    g = std::move(*rebatched);
  } else {
    g = p.model->clone();
  }
  auto program = compileProgram(std::move(g), copts);
  if (!program) return Unexpected(program.error());
  auto exe = createExecutable(std::move(*program), *dev, opts.exec);
  if (!exe) return Unexpected(exe.error());
  (*exe)->initializeParameters(cfg.seed);
  std::string weights = !opts.weights.empty() ? opts.weights : (p.data ? p.data->weights : "");
  if (!weights.empty())
    if (auto ok = loadWeightsInto(**exe, weights); !ok) return Unexpected(ok.error());
  auto checker = DifferentialChecker::create(**exe, opts.tolerance);
  if (!checker) return Unexpected(checker.error());

  int64_t runs = data ? std::max<int64_t>(opts.steps, 1) : 1;
  for (int64_t step = 1; step <= runs; ++step) {
    TensorMap feed;
    if (data) {
      auto [images, labels] = batchOf(*data, (step - 1) * batch, batch);
      feed[p.inputName] = images;
      feed["labels"] = labels;
      feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(step)});
      if (p.train) feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{cfg.lr});
    }
    // Only the inputs this program has (the inference program takes no labels, SGD no step).
    TensorMap wanted;
    for (Node* n : (*exe)->graph().inputNodes())
      if (auto it = feed.find(n->attrs().getString("name")); it != feed.end()) wanted.insert(*it);
    auto divergence = (*checker)->runAndCheck(wanted, step);
    if (!divergence) return Unexpected(divergence.error());
    report.steps = step;
    if (*divergence) {
      report.divergence = **divergence;
      break;
    }
  }
  report.nodesPerStep = (*checker)->nodesChecked();
  report.worstRatio = (*checker)->worstRatio();
  report.worstNode = (*checker)->worstNode();
  return report;
}

}  // namespace shoal
