// The pipeline settings block of IR text (see printPipelineSettings in ir/pipeline.h).
#include "ir/pipeline.h"

#include <fmt/format.h>

#include <functional>
#include <optional>
#include <set>

namespace shoal {

namespace {

std::string_view scheduleName(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::Constant:
      return "constant";
    case ScheduleKind::Step:
      return "step";
    case ScheduleKind::Cosine:
      return "cosine";
  }
  return "constant";
}

std::string joinMetrics(const std::vector<std::string>& metrics) {
  std::string out;
  for (const std::string& m : metrics) out += (out.empty() ? "" : ",") + m;
  return out;
}

std::string line(const std::string& section, const Attrs& a) {
  std::string out = "  " + section + " {";
  bool first = true;
  for (const auto& [key, value] : a.entries()) {
    out += (first ? "" : ", ") + key + "=" + attrValueString(value);
    first = false;
  }
  return out + "}\n";
}

Attrs trainAttrs(const TrainConfig& t) {
  Attrs a;
  a.set("loss", t.loss);
  a.set("label_smoothing", t.labelSmoothing);
  a.set("one_hot_targets", int64_t(t.oneHotTargets));
  a.set("optimizer", t.optimizer);
  a.set("lr", t.lr);
  a.set("epochs", t.epochs);
  a.set("batch", t.batch);
  a.set("validation", t.validation);
  a.set("momentum", t.momentum);
  a.set("nesterov", int64_t(t.nesterov));
  a.set("weight_decay", t.weightDecay);
  a.set("beta1", t.beta1);
  a.set("beta2", t.beta2);
  a.set("eps", t.eps);
  a.set("clip_norm", t.clipNorm);
  if (t.lossScale) a.set("loss_scale", *t.lossScale);
  a.set("loss_scale_interval", t.lossScaleInterval);
  a.set("schedule", std::string(scheduleName(t.schedule.kind)));
  a.set("step_size", t.schedule.stepSize);
  a.set("gamma", t.schedule.gamma);
  a.set("t_max", t.schedule.tMax);
  a.set("eta_min", t.schedule.etaMin);
  a.set("warmup", t.schedule.warmup);
  a.set("seed", int64_t(t.seed));
  a.set("shuffle", int64_t(t.shuffle));
  return a;
}

// Reads the attributes of one section into their fields, by key; an unknown key or a value
// of the wrong kind is an error naming the section and key.
class SectionReader {
 public:
  SectionReader(std::string_view section, const Attrs& attrs, const Location& loc)
      : section_(section), attrs_(attrs), loc_(loc) {}

  void text(const char* key, std::string& field) {
    handle(key, "a string", [&](const AttrValue& v) {
      const auto* s = std::get_if<std::string>(&v);
      if (s) field = *s;
      return s != nullptr;
    });
  }
  void number(const char* key, double& field) {
    handle(key, "a number", [&](const AttrValue& v) {
      if (const auto* i = std::get_if<int64_t>(&v)) {
        field = double(*i);
        return true;
      }
      const auto* d = std::get_if<double>(&v);
      if (d) field = *d;
      return d != nullptr;
    });
  }
  void integer(const char* key, int64_t& field) {
    handle(key, "an integer", [&](const AttrValue& v) {
      const auto* i = std::get_if<int64_t>(&v);
      if (i) field = *i;
      return i != nullptr;
    });
  }
  void flag(const char* key, bool& field) {
    handle(key, "0 or 1", [&](const AttrValue& v) {
      const auto* i = std::get_if<int64_t>(&v);
      if (!i || (*i != 0 && *i != 1)) return false;
      field = *i == 1;
      return true;
    });
  }

  /// The first error, else a complaint about any key no field read.
  Expected<void> finish() const {
    if (error_) return Unexpected(*error_);
    for (const auto& [key, value] : attrs_.entries())
      if (!read_.count(key)) return fail(fmt::format("pipeline section '{}' has no setting '{}'", section_, key), loc_);
    return {};
  }

 private:
  // Marks `key` read and, when present, stores it with `set` (false: the value has the wrong kind).
  void handle(const char* key, const char* want, const std::function<bool(const AttrValue&)>& set) {
    read_.insert(key);
    const AttrValue* v = attrs_.find(key);
    if (!v || error_) return;
    if (!set(*v))
      error_ = Error(fmt::format("pipeline setting {}.{} must be {}, got {}", section_, key, want, attrValueString(*v)),
                     loc_);
  }

  std::string section_;
  const Attrs& attrs_;
  Location loc_;
  std::set<std::string> read_;
  std::optional<Error> error_;
};

}  // namespace

std::string printPipelineSettings(const Pipeline& p) {
  std::string out;
  if (p.data) {
    Attrs a;
    a.set("kind", p.data->kind);
    a.set("path", p.data->path);
    a.set("batch", p.data->batch);
    a.set("weights", p.data->weights);
    out += line("data", a);
  }
  if (p.train) out += line("train", trainAttrs(*p.train));
  const OutputSpec& o = p.output;
  if (!o.metrics.empty() || !o.plot.empty() || !o.checkpoint.empty()) {
    Attrs a;
    a.set("metrics", joinMetrics(o.metrics));
    a.set("plot", o.plot);
    a.set("checkpoint", o.checkpoint);
    out += line("output", a);
  }
  const Pipeline defaults;
  if (!out.empty() || p.device != defaults.device || p.inputName != defaults.inputName ||
      p.logitsName != defaults.logitsName) {
    Attrs a;
    a.set("device", p.device);
    a.set("input", p.inputName);
    a.set("output", p.logitsName);
    out += line("model", a);
  }
  return out.empty() ? "" : "pipeline {\n" + out + "}\n";
}

Expected<void> setPipelineSection(Pipeline& p, std::string_view section, const Attrs& attrs, const Location& loc) {
  SectionReader r(section, attrs, loc);
  if (section == "data") {
    DataSpec d;
    r.text("kind", d.kind);
    r.text("path", d.path);
    r.integer("batch", d.batch);
    r.text("weights", d.weights);
    d.loc = loc;
    p.data = d;
  } else if (section == "train") {
    TrainConfig t;
    std::string schedule(scheduleName(t.schedule.kind));
    int64_t seed = int64_t(t.seed);
    r.text("loss", t.loss);
    r.number("label_smoothing", t.labelSmoothing);
    r.flag("one_hot_targets", t.oneHotTargets);
    r.text("optimizer", t.optimizer);
    r.number("lr", t.lr);
    r.integer("epochs", t.epochs);
    r.integer("batch", t.batch);
    r.number("validation", t.validation);
    r.number("momentum", t.momentum);
    r.flag("nesterov", t.nesterov);
    r.number("weight_decay", t.weightDecay);
    r.number("beta1", t.beta1);
    r.number("beta2", t.beta2);
    r.number("eps", t.eps);
    r.number("clip_norm", t.clipNorm);
    double lossScale = -1;
    r.number("loss_scale", lossScale);
    if (lossScale >= 0) t.lossScale = lossScale;
    r.integer("loss_scale_interval", t.lossScaleInterval);
    if (t.lossScaleInterval < 1)
      return fail(fmt::format("loss_scale_interval must be 1 or more, got {}", t.lossScaleInterval), loc);
    r.text("schedule", schedule);
    r.integer("step_size", t.schedule.stepSize);
    r.number("gamma", t.schedule.gamma);
    r.integer("t_max", t.schedule.tMax);
    r.number("eta_min", t.schedule.etaMin);
    r.integer("warmup", t.schedule.warmup);
    r.integer("seed", seed);
    r.flag("shuffle", t.shuffle);
    if (schedule == "constant")
      t.schedule.kind = ScheduleKind::Constant;
    else if (schedule == "step")
      t.schedule.kind = ScheduleKind::Step;
    else if (schedule == "cosine")
      t.schedule.kind = ScheduleKind::Cosine;
    else
      return fail(fmt::format("unknown schedule '{}' (constant, step or cosine)", schedule), loc);
    t.seed = uint64_t(seed);
    t.loc = loc;
    p.train = t;
  } else if (section == "output") {
    std::string metrics;
    r.text("metrics", metrics);
    r.text("plot", p.output.plot);
    r.text("checkpoint", p.output.checkpoint);
    p.output.metrics.clear();
    for (size_t start = 0; start < metrics.size();) {
      size_t comma = metrics.find(',', start);
      p.output.metrics.push_back(metrics.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    p.output.loc = loc;
  } else if (section == "model") {
    r.text("device", p.device);
    r.text("input", p.inputName);
    r.text("output", p.logitsName);
  } else {
    return fail(fmt::format("unknown pipeline section '{}' (data, train, output, model)", section), loc);
  }
  return r.finish();
}

}  // namespace shoal
