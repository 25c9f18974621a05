// `shoal run model.onnx --input ...` and `shoal conformance DIR...`.
#include "tools/onnx_commands.h"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "codegen/cuda_codegen.h"
#include "frontend/onnx/onnx_import.h"
#include "passes/program.h"
#include "runtime/data/npy.h"
#include "support/file_util.h"
#include "tools/tensor_text.h"

namespace shoal {

namespace fs = std::filesystem;

namespace {

bool endsWith(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

Expected<Tensor> readTensorFile(const std::string& path) {
  if (endsWith(path, ".npy")) return readNpy(path);
  auto t = readOnnxTensorFile(path);
  if (!t) return Unexpected(t.error().error);
  return t->tensor;
}

// A graph compiled for one device, its parameters initialised (the model's values included).
Expected<std::unique_ptr<Executable>> compileGraph(const Graph& g, const DeviceSelection& dev,
                                                   const ExecutableOptions& eo) {
  auto program = compileProgram(g.clone());
  if (!program) return Unexpected(program.error());
  auto exe = createExecutable(std::move(*program), dev, eo);
  if (!exe) return Unexpected(exe.error());
  (*exe)->initializeParameters(0);
  if (!g.parameterValues().empty()) {
    auto ok = (*exe)->writePersistent(g.parameterValues());
    if (!ok) return Unexpected(ok.error());
  }
  return exe;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

Expected<TensorMap> readInputFiles(const std::vector<std::string>& specs, const std::vector<std::string>& inputNames) {
  TensorMap out;
  size_t next = 0;
  for (const std::string& spec : specs) {
    std::string name, path = spec;
    size_t eq = spec.find('=');
    if (eq != std::string::npos) {
      name = spec.substr(0, eq);
      path = spec.substr(eq + 1);
      if (std::find(inputNames.begin(), inputNames.end(), name) == inputNames.end()) {
        std::string names;
        for (const std::string& n : inputNames) names += (names.empty() ? "" : ", ") + n;
        return fail(fmt::format("--input {}: the model has no input '{}' (its inputs: {})", spec, name, names));
      }
    } else {
      while (next < inputNames.size() && out.count(inputNames[next])) ++next;
      if (next >= inputNames.size())
        return fail(fmt::format("--input {}: every model input already has a tensor", spec));
      name = inputNames[next++];
    }
    if (out.count(name)) return fail(fmt::format("--input {}: input '{}' is given twice", spec, name));
    auto t = readTensorFile(path);
    if (!t) return Unexpected(t.error());
    out[name] = *t;
  }
  for (const std::string& n : inputNames)
    if (!out.count(n))
      return fail(fmt::format("no tensor for model input '{}': give --input {}=FILE (.pb or .npy)", n, n));
  return out;
}

// ---- shoal run model.onnx ------------------------------------------------------------------------

int runOnnxModel(const OnnxRunOptions& opts, nlohmann::ordered_json& report) {
  auto error = [](const Error& e) {
    std::cerr << e.str() << "\n";
    return 1;
  };
  auto info = readOnnxModelInfo(opts.file);
  if (!info) return error(info.error().error);
  auto feeds = readInputFiles(opts.inputs, info->inputs);
  if (!feeds) return error(feeds.error());
  OnnxImportOptions io;
  for (auto& [name, t] : *feeds) io.inputShapes[name] = t.shape();
  io.inputValues = *feeds;
  auto pipeline = importOnnxFile(opts.file, io);
  if (!pipeline) return error(pipeline.error().error);
  auto kind = parseDeviceKind(opts.device);
  if (!kind) return error(Error(fmt::format("--device must be auto, cpu or gpu (or cuda), got '{}'", opts.device)));
  auto dev = selectDevice(*kind);
  if (!dev) return error(Error(fmt::format("--device {}: {}", opts.device, dev.error().message())));
  fmt::print(stderr, "device: {}{}\n", dev->description, dev->note.empty() ? "" : " (" + dev->note + ")");
  ExecutableOptions eo;
  eo.tf32 = opts.tf32;
  eo.precision = opts.precision;
  eo.autotune = opts.autotune;
  eo.verbose = opts.verbose;
  eo.threads = opts.threads;
  auto exe = compileGraph(*pipeline->model, *dev, eo);
  if (!exe) return error(exe.error());
  auto out = (*exe)->run(*feeds);
  if (!out) return error(out.error());
  report["device"] = dev->description;
  if (opts.repeat > 0) {
    std::vector<double> ms;
    for (int64_t i = 0; i < opts.repeat; ++i) {
      auto start = std::chrono::steady_clock::now();
      auto again = (*exe)->run(*feeds);
      if (!again) return error(again.error());
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    report["runs"] = opts.repeat;
    report["run_ms_median"] = median(ms);
    report["run_ms_min"] = *std::min_element(ms.begin(), ms.end());
    fmt::print(stderr, "{} runs: median {:.3f} ms, min {:.3f} ms\n", opts.repeat, median(ms),
               *std::min_element(ms.begin(), ms.end()));
  }
  nlohmann::ordered_json outputs;
  for (const std::string& name : info->outputs) {
    const Tensor& v = out->at(name);
    if (v.numElements() <= 64)
      fmt::print("{} = {}\n", name, tensorText(v));
    else
      fmt::print("{}: {} (values in --report)\n", name, v.type().str());
    outputs[name] = tensorJson(v);
  }
  report["outputs"] = outputs;
  return 0;
}

// ---- shoal conformance -----------------------------------------------------------------------------

namespace {

enum class Status { Pass, Fail, Skip };

struct CaseResult {
  Status status = Status::Fail;
  std::string message;             ///< FAIL: the largest error or what failed; SKIP: the reason
  std::vector<std::string> ops{};  ///< the model's op types
  bool opsMapped = false;          ///< shoal's op table maps every one of them
};

// The index of input_7.pb / output_12.pb (files sort by number, not by name).
int64_t fileIndex(const fs::path& p) {
  std::string stem = p.stem().string();
  size_t u = stem.rfind('_');
  try {
    return std::stoll(stem.substr(u + 1));
  } catch (const std::exception&) {
    return -1;
  }
}

std::vector<fs::path> numberedFiles(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind(prefix, 0) == 0 && e.path().extension() == ".pb") out.push_back(e.path());
  std::sort(out.begin(), out.end(), [](const fs::path& a, const fs::path& b) { return fileIndex(a) < fileIndex(b); });
  return out;
}

// What an import is specialised to: the inputs' shapes, and the values of small integer inputs
// (which an import may read as shapes or axes).
std::string shapeKey(const TensorMap& m) {
  std::string key;
  for (auto& [name, t] : m) {
    key += name + ":" + shapeString(t.shape());
    if (!isFloat(t.dtype()) && t.numElements() <= 64)
      for (int64_t i = 0; i < t.numElements(); ++i) key += fmt::format(",{}", t.at(i));
    key += ";";
  }
  return key;
}

// First line of a message (multi-line diagnostics stay in --verbose).
std::string firstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

// Compares one output as ONNX's backend runner does (numpy.testing.assert_allclose: |got -
// want| <= atol + rtol * |want|, NaN equal to NaN, same element type and shape).
std::optional<std::string> compareOutput(const std::string& name, const Tensor& got, const Tensor& want, double rtol,
                                         double atol) {
  if (got.dtype() != want.dtype())
    return fmt::format("output '{}' is {}, the reference {}", name, got.type().str(), want.type().str());
  if (got.shape() != want.shape())
    return fmt::format("output '{}' has shape {}, the reference {}", name, shapeString(got.shape()),
                       shapeString(want.shape()));
  double maxAbs = 0, worst = -1;
  int64_t worstAt = -1, mismatches = 0;
  for (int64_t i = 0; i < got.numElements(); ++i) {
    double g = got.at(i), w = want.at(i);
    if (std::isnan(g) && std::isnan(w)) continue;
    if (g == w) continue;  // infinities of one sign
    double err = std::fabs(g - w);
    if (std::isnan(err)) err = INFINITY;
    maxAbs = std::max(maxAbs, err);
    double ratio = err / (atol + rtol * std::fabs(w));
    if (err > atol + rtol * std::fabs(w)) ++mismatches;
    if (ratio > worst) worst = ratio, worstAt = i;
  }
  if (mismatches == 0) return std::nullopt;
  return fmt::format(
      "output '{}': {} of {} elements differ, largest error {:.3g} (at flat index {}: got {:.7g}, "
      "expected {:.7g}; tolerance {:g} + {:g}*|expected|)",
      name, mismatches, got.numElements(), maxAbs, worstAt, got.at(worstAt), want.at(worstAt), atol, rtol);
}

CaseResult runModelCase(const fs::path& dir, const ConformanceOptions& o, const OnnxModelInfo* info);

CaseResult runCase(const fs::path& dir, const ConformanceOptions& o) {
  auto info = readOnnxModelInfo((dir / "model.onnx").string());
  if (!info) return {info.error().unsupported ? Status::Skip : Status::Fail, info.error().error.message()};
  CaseResult r = runModelCase(dir, o, &*info);
  r.ops = info->opTypes;
  r.opsMapped = info->allOpsMapped;
  return r;
}

CaseResult runModelCase(const fs::path& dir, const ConformanceOptions& o, const OnnxModelInfo* info) {
  std::string model = (dir / "model.onnx").string();
  std::vector<fs::path> sets;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) return {Status::Skip, "no test_data_set_* folder"};
  if (!info->inputProblems.empty()) return {Status::Skip, info->inputProblems.front()};
  auto kind = parseDeviceKind(o.device);
  auto dev = selectDevice(kind.value_or(DeviceKind::Cpu));
  if (!dev) return {Status::Fail, "--device " + o.device + ": " + dev.error().message()};
  std::map<std::string, std::unique_ptr<Executable>> compiled;  // by input shapes
  for (const fs::path& set : sets) {
    // Inputs: by the tensor's name when it names a model input, else by position.
    TensorMap feeds;
    auto inputFiles = numberedFiles(set, "input_");
    for (size_t i = 0; i < inputFiles.size(); ++i) {
      auto t = readOnnxTensorFile(inputFiles[i].string());
      if (!t) {
        // The model usually says better what shoal lacks (a sequence input, a string tensor).
        auto imported = importOnnxFile(model);
        if (!imported && imported.error().unsupported) return {Status::Skip, imported.error().error.message()};
        return {t.error().unsupported ? Status::Skip : Status::Fail, t.error().error.message()};
      }
      std::string name = t->name;
      auto at = std::find(info->inputs.begin(), info->inputs.end(), name);
      if (at == info->inputs.end()) {
        if (i >= info->inputs.size())
          return {Status::Fail,
                  fmt::format("{} has more inputs than the model ({})", set.filename().string(), info->inputs.size())};
        name = info->inputs[i];
        at = info->inputs.begin() + ptrdiff_t(i);
      }
      // A case whose data contradict its own model cannot be judged (ONNX 1.12 stores the
      // bfloat16 cases' data as uint16): SKIP, saying so.
      if (auto declared = info->inputTypes[size_t(at - info->inputs.begin())];
          declared && *declared != t->tensor.dtype())
        return {Status::Skip, fmt::format("test data contradict the model: {} is {} where the model declares input {} as {}",
                                          inputFiles[i].filename().string(), t->tensor.type().str(), name,
                                          dtypeName(*declared))};
      feeds[name] = t->tensor;
    }
    for (auto& [name, t] : feeds)
      if (t.numElements() == 0)
        return {Status::Skip, fmt::format("input '{}' is empty (shoal needs non-empty tensors)", name)};
    std::string key = shapeKey(feeds);
    if (!compiled.count(key)) {
      OnnxImportOptions io;
      for (auto& [name, t] : feeds) io.inputShapes[name] = t.shape();
      io.inputValues = feeds;
      auto p = importOnnxFile(model, io);
      if (!p) return {p.error().unsupported ? Status::Skip : Status::Fail, p.error().error.message()};
      ExecutableOptions eo;
      eo.threads = o.threads;
      auto exe = compileGraph(*p->model, *dev, eo);
      if (!exe) {
        // An op the chosen backend has no kernel for is a gap in coverage, as an unmapped op is.
        const bool noKernel = exe.error().message().find(kNoCudaKernel) != std::string::npos;
        return {noKernel ? Status::Skip : Status::Fail, "compile: " + exe.error().message()};
      }
      compiled[key] = std::move(*exe);
    }
    auto out = compiled[key]->run(feeds);
    if (!out) return {Status::Fail, "run: " + out.error().message()};
    auto outputFiles = numberedFiles(set, "output_");
    if (outputFiles.size() != info->outputs.size())
      return {Status::Fail, fmt::format("{} holds {} outputs, the model has {}", set.filename().string(),
                                        outputFiles.size(), info->outputs.size())};
    for (size_t i = 0; i < outputFiles.size(); ++i) {
      auto want = readOnnxTensorFile(outputFiles[i].string());
      if (!want) return {want.error().unsupported ? Status::Skip : Status::Fail, want.error().error.message()};
      const std::string& name = info->outputs[i];
      if (auto declared = info->outputTypes[i]; declared && *declared != want->tensor.dtype())
        return {Status::Skip, fmt::format("test data contradict the model: {} is {} where the model declares output {} as {}",
                                          outputFiles[i].filename().string(), want->tensor.type().str(), name,
                                          dtypeName(*declared))};
      auto it = out->find(name);
      if (it == out->end()) return {Status::Fail, fmt::format("no output '{}'", name)};
      if (auto bad = compareOutput(name, it->second, want->tensor, o.rtol, o.atol))
        return {Status::Fail, (sets.size() > 1 ? set.filename().string() + ": " : "") + *bad};
    }
  }
  return {Status::Pass, ""};
}

const char* statusName(Status s) { return s == Status::Pass ? "PASS" : s == Status::Fail ? "FAIL" : "SKIP"; }

// A case running in a child process, so that a crash or a hang fails that case only.
struct ChildCase {
  pid_t pid = -1;
  int fd = -1;  ///< the read end of the child's result pipe
  std::chrono::steady_clock::time_point deadline;
  std::string msg;  ///< what the child wrote so far
};

// Starts `dir` in a child; nullopt when no process could be made (the caller runs it here).
std::optional<ChildCase> startIsolated(const fs::path& dir, const ConformanceOptions& o) {
  int fds[2];
  if (pipe(fds) != 0) return std::nullopt;
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return std::nullopt;
  }
  if (pid == 0) {
    close(fds[0]);
    CaseResult r;
    try {
      r = runCase(dir, o);
    } catch (const std::exception& e) {
      r = {Status::Fail, std::string("exception: ") + e.what()};
    }
    // status digit, mapped flag, op types (space-separated), newline, message
    std::string ops;
    for (const std::string& op : r.ops) ops += (ops.empty() ? "" : " ") + op;
    std::string msg = std::string(1, char('0' + int(r.status))) + (r.opsMapped ? "1" : "0") + ops + "\n" + r.message;
    size_t done = 0;
    while (done < msg.size()) {
      ssize_t n = write(fds[1], msg.data() + done, msg.size() - done);
      if (n <= 0) break;
      done += size_t(n);
    }
    close(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  return ChildCase{pid, fds[0], std::chrono::steady_clock::now() + std::chrono::seconds(o.timeoutSeconds), {}};
}

// The result of a child whose pipe closed (or, `timedOut`, that ran past its deadline: killed).
CaseResult finishIsolated(ChildCase& child, bool timedOut, const ConformanceOptions& o) {
  close(child.fd);
  if (timedOut) kill(child.pid, SIGKILL);
  int status = 0;
  waitpid(child.pid, &status, 0);
  if (timedOut) return {Status::Fail, fmt::format("timed out after {} s", o.timeoutSeconds)};
  if (WIFSIGNALED(status))
    return {Status::Fail, fmt::format("crashed (signal {}: {})", WTERMSIG(status), strsignal(WTERMSIG(status)))};
  const std::string& msg = child.msg;
  size_t eol = msg.find('\n');
  if (msg.size() < 2 || msg[0] < '0' || msg[0] > '2' || eol == std::string::npos)
    return {Status::Fail, "the case's process exited without a result"};
  CaseResult r{Status(msg[0] - '0'), msg.substr(eol + 1)};
  r.opsMapped = msg[1] == '1';
  std::string ops = msg.substr(2, eol - 2);
  for (size_t start = 0; start < ops.size();) {
    size_t end = ops.find(' ', start);
    if (end == std::string::npos) end = ops.size();
    r.ops.push_back(ops.substr(start, end - start));
    start = end + 1;
  }
  return r;
}

// Runs `dirs` with up to o.jobs cases at once (each isolated, or in this process when
// o.isolate is off, one at a time), calling `done(i, result)` in case order as the results
// become known.
void runCases(const std::vector<fs::path>& dirs, const ConformanceOptions& o,
              const std::function<void(size_t, const CaseResult&)>& done) {
  if (!o.isolate) {
    for (size_t i = 0; i < dirs.size(); ++i) done(i, runCase(dirs[i], o));
    return;
  }
  const size_t jobs = size_t(std::max<int64_t>(o.jobs, 1));
  std::map<size_t, ChildCase> running;
  std::map<size_t, CaseResult> finished;
  size_t next = 0, reported = 0;
  char buf[4096];
  while (reported < dirs.size()) {
    while (next < dirs.size() && running.size() < jobs) {
      if (auto child = startIsolated(dirs[next], o))
        running.emplace(next, std::move(*child));
      else
        finished.emplace(next, runCase(dirs[next], o));
      ++next;
    }
    std::vector<pollfd> fds;
    std::vector<size_t> which;
    for (auto& [i, child] : running) fds.push_back({child.fd, POLLIN, 0}), which.push_back(i);
    if (!fds.empty()) {
      int ready = poll(fds.data(), nfds_t(fds.size()), 200);
      const auto now = std::chrono::steady_clock::now();
      for (size_t k = 0; k < fds.size(); ++k) {
        ChildCase& child = running.at(which[k]);
        bool closed = false;
        if (ready > 0 && (fds[k].revents & (POLLIN | POLLHUP | POLLERR))) {
          ssize_t n = read(child.fd, buf, sizeof buf);
          if (n > 0)
            child.msg.append(buf, size_t(n));
          else
            closed = true;
        }
        const bool late = !closed && now >= child.deadline;
        if (closed || late) {
          finished.emplace(which[k], finishIsolated(child, late, o));
          running.erase(which[k]);
        }
      }
    }
    for (auto it = finished.find(reported); it != finished.end(); it = finished.find(reported)) {
      done(reported++, it->second);
      finished.erase(it);
    }
  }
}

// The case folders under `dir` (itself when it holds a model.onnx), sorted.
std::vector<fs::path> caseDirs(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / "model.onnx", ec)) return {dir};
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && fs::exists(e.path() / "model.onnx", ec)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// An expectation file: case -> "PASS" or "FAIL" (with the reason), in file order.
struct Expectations {
  std::map<std::string, std::string> status, reason;
};

std::optional<Expectations> readExpectations(const std::string& path) {
  auto bytes = readFileBytes(path, kPipelineFileLimit);
  if (!bytes) {
    std::cerr << "error: --expect: " << bytes.error().message() << "\n";
    return std::nullopt;
  }
  Expectations e;
  std::istringstream in(*bytes);
  std::string line;
  int lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string status, name;
    ls >> status >> name;
    std::string reason;
    std::getline(ls, reason);
    reason.erase(0, reason.find_first_not_of(' '));
    if ((status != "PASS" && status != "FAIL") || name.empty() || (status == "FAIL" && reason.empty())) {
      std::cerr << fmt::format("{}:{}: error: expected 'PASS <case>' or 'FAIL <case> <reason>', got '{}'\n", path,
                               lineNo, line);
      return std::nullopt;
    }
    if (e.status.count(name)) {
      std::cerr << fmt::format("{}:{}: error: case '{}' is listed twice\n", path, lineNo, name);
      return std::nullopt;
    }
    e.status[name] = status;
    e.reason[name] = reason;
  }
  return e;
}

}  // namespace

int runConformance(const ConformanceOptions& o) {
  std::optional<Expectations> expected;
  if (!o.expect.empty()) {
    expected = readExpectations(o.expect);
    if (!expected) return 1;
  }
  std::map<std::string, std::pair<Status, std::string>> results;  // case -> status, first line
  std::set<std::string> categoriesRun;
  struct Counts {
    int64_t pass = 0, fail = 0, skip = 0;
  };
  std::map<std::string, Counts> byCategory;
  Counts total;
  nlohmann::ordered_json cases = nlohmann::ordered_json::array();
  auto kind = parseDeviceKind(o.device);
  if (!kind || *kind == DeviceKind::Auto) {
    std::cerr << fmt::format("error: --device must be cpu or cuda, got '{}'\n", o.device);
    return 1;
  }
  if (!onnxAvailable()) {
    std::cerr << "error: " << onnxUnavailableMessage() << "\n";
    return 1;
  }
  for (const std::string& d : o.dirs) {
    std::error_code ec;
    if (!fs::is_directory(d, ec)) {
      std::cerr << fmt::format("error: '{}' is not a folder of ONNX test cases\n", d);
      return 1;
    }
    auto dirs = caseDirs(d);
    if (dirs.empty()) {
      std::cerr << fmt::format("error: '{}' holds no test case (a folder with model.onnx)\n", d);
      return 1;
    }
    runCases(dirs, o, [&](size_t i, const CaseResult& r) {
      const fs::path& c = dirs[i];
      std::string category = c.parent_path().filename().string();
      std::string name = category + "/" + c.filename().string();
      Counts& cat = byCategory[category];
      (r.status == Status::Pass ? cat.pass : r.status == Status::Fail ? cat.fail : cat.skip)++;
      (r.status == Status::Pass ? total.pass : r.status == Status::Fail ? total.fail : total.skip)++;
      results[name] = {r.status, firstLine(r.message)};
      categoriesRun.insert(category);
      std::string shown = o.verbose ? r.message : firstLine(r.message);
      fmt::print("{} {}{}\n", statusName(r.status), name, shown.empty() ? "" : "  " + shown);
      std::fflush(stdout);
      cases.push_back({{"case", name},
                       {"category", category},
                       {"status", statusName(r.status)},
                       {"message", r.message},
                       {"ops", r.ops},
                       {"ops_mapped", r.opsMapped}});
    });
  }
  if (byCategory.size() > 1)
    for (auto& [cat, n] : byCategory) fmt::print("{}: {} passed, {} failed, {} skipped\n", cat, n.pass, n.fail, n.skip);
  fmt::print("{} passed, {} failed, {} skipped\n", total.pass, total.fail, total.skip);
  if (!o.report.empty()) {
    nlohmann::ordered_json j;
    j["device"] = o.device;
    j["rtol"] = o.rtol;
    j["atol"] = o.atol;
    nlohmann::ordered_json cats;
    for (auto& [cat, n] : byCategory) cats[cat] = {{"passed", n.pass}, {"failed", n.fail}, {"skipped", n.skip}};
    j["categories"] = cats;
    j["passed"] = total.pass;
    j["failed"] = total.fail;
    j["skipped"] = total.skip;
    j["cases"] = cases;
    auto ok = writeFileAtomic(o.report, j.dump(2) + "\n");
    if (!ok) {
      std::cerr << ok.error().str() << "\n";
      return 1;
    }
  }
  if (!o.writeExpect.empty()) {
    std::string text =
        "# ONNX backend test cases and what shoal does with them (shoal conformance --expect).\n"
        "# PASS <case>: must pass. FAIL <case> <reason>: a known wrong answer. Any case not listed must\n"
        "# SKIP (shoal lacks an op or a feature, and says so). CI fails when a case does anything else,\n"
        "# better or worse; regenerate with: shoal conformance DIR... --write-expect FILE, and review the diff.\n";
    for (const auto& [name, r] : results)
      if (r.first == Status::Pass)
        text += "PASS " + name + "\n";
      else if (r.first == Status::Fail)
        text += "FAIL " + name + " " + r.second + "\n";
    auto ok = writeFileAtomic(o.writeExpect, text);
    if (!ok) {
      std::cerr << ok.error().str() << "\n";
      return 1;
    }
  }
  if (!expected) return total.fail == 0 ? 0 : 1;
  // Every case against the file: the same outcome, or a line saying what changed.
  int64_t differ = 0, knownFailures = 0;
  for (const auto& [name, r] : results) {
    auto it = expected->status.find(name);
    std::string want = it == expected->status.end() ? "SKIP" : it->second;
    std::string got = statusName(r.first);
    if (want == got) {
      knownFailures += got == "FAIL";
      continue;
    }
    ++differ;
    std::string why = want == "FAIL" ? " (known failure: " + expected->reason[name] + ")" : "";
    fmt::print("UNEXPECTED {} {}: expected {}{}{}\n", got, name, want, why, r.second.empty() ? "" : "; " + r.second);
  }
  for (const auto& [name, status] : expected->status) {
    std::string category = name.substr(0, name.find('/'));
    if (categoriesRun.count(category) && !results.count(name)) {
      ++differ;
      fmt::print("UNEXPECTED MISSING {}: expected {}, but no such case ran\n", name, status);
    }
  }
  fmt::print("expectations ({}): {} case{} as expected ({} known failure{}), {} not\n", o.expect,
             int64_t(results.size()) - differ, results.size() - differ == 1 ? "" : "s", knownFailures,
             knownFailures == 1 ? "" : "s", differ);
  if (differ)
    fmt::print(
        "a case that passes now and is not listed: add it (or regenerate the file with --write-expect and review "
        "the diff); a listed case that no longer passes: a regression\n");
  return differ == 0 ? 0 : 1;
}

}  // namespace shoal
