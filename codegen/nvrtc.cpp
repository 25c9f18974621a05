// NVRTC compilation to cubin/PTX, error logs annotated with the generated source, a pool.
#include "codegen/nvrtc.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "codegen/kernel_cache.h"

#if SHOAL_HAVE_CUDA
#include <sys/stat.h>

#include <regex>

#include <nvrtc.h>

#include "support/dynamic_library.h"
#endif

namespace shoal {

std::vector<std::string> nvrtcOptions(const std::string& arch, const std::vector<std::string>& extraOptions) {
  std::vector<std::string> opts = {"-arch=" + arch, "--std=c++17", "-default-device"};
  // NVRTC has no built-in cuda_fp16.h & co.; the toolkit's headers serve when present.
  if (std::string dir = cudaIncludeDir(); !dir.empty()) opts.push_back("--include-path=" + dir);
  opts.insert(opts.end(), extraOptions.begin(), extraOptions.end());
  return opts;
}

std::vector<Expected<CompiledKernel>> compileAll(const std::vector<KernelSource>& kernels, const std::string& arch,
                                                 const std::vector<std::string>& extraOptions, KernelCache* cache,
                                                 int threads) {
  std::vector<Expected<CompiledKernel>> results(kernels.size());
  if (kernels.empty()) return results;
  size_t workers = threads > 0 ? size_t(threads) : std::max(1u, std::thread::hardware_concurrency());
  workers = std::min(workers, kernels.size());
  std::atomic<size_t> next{0};
  // Each worker takes the next kernel; NVRTC programs are independent, so this is safe.
  auto work = [&] {
    for (size_t i = next++; i < kernels.size(); i = next++)
      results[i] = compileKernel(kernels[i], arch, extraOptions, cache);
  };
  if (workers == 1) {
    work();
  } else {
    std::vector<std::jthread> pool;
    pool.reserve(workers);
    for (size_t t = 0; t < workers; ++t) pool.emplace_back(work);
  }
  return results;
}

#if SHOAL_HAVE_CUDA

namespace {

// The NVRTC functions shoal calls, loaded from libnvrtc at run time (so a CPU-only deployment
// needs no CUDA library). Members carry the API's names, so calls read `nv.nvrtcCompileProgram(...)`.
#define SHOAL_NVRTC_FUNCTIONS(X)                                                                                 \
  X(nvrtcGetErrorString) X(nvrtcVersion) X(nvrtcGetNumSupportedArchs) X(nvrtcGetSupportedArchs)                 \
  X(nvrtcCreateProgram) X(nvrtcDestroyProgram) X(nvrtcCompileProgram) X(nvrtcGetPTXSize) X(nvrtcGetPTX)          \
  X(nvrtcGetCUBINSize) X(nvrtcGetCUBIN) X(nvrtcGetProgramLogSize) X(nvrtcGetProgramLog)

struct NvrtcLibrary {
#define SHOAL_NVRTC_MEMBER(name) decltype(&::name) name = nullptr;
  SHOAL_NVRTC_FUNCTIONS(SHOAL_NVRTC_MEMBER)
#undef SHOAL_NVRTC_MEMBER
  std::string path;
};

#define SHOAL_STRINGIFY2(x) #x
#define SHOAL_STRINGIFY(x) SHOAL_STRINGIFY2(x)

// libnvrtc.so.<major of the toolkit shoal was built with>, loaded once.
const Expected<NvrtcLibrary>& nvrtcLibrary() {
  static const Expected<NvrtcLibrary> lib = []() -> Expected<NvrtcLibrary> {
    std::vector<std::string> names;
#ifdef SHOAL_CUDA_VERSION_MAJOR
    names.push_back("libnvrtc.so." SHOAL_STRINGIFY(SHOAL_CUDA_VERSION_MAJOR));
#endif
    names.push_back("libnvrtc.so");
    auto dl = DynamicLibrary::open("NVRTC", names, cudaLibraryDirs());
    if (!dl) return Unexpected(dl.error());
    NvrtcLibrary nv;
    nv.path = dl->path();
#define SHOAL_NVRTC_LOAD(name)                                                                          \
  nv.name = reinterpret_cast<decltype(&::name)>(dl->symbol(SHOAL_STRINGIFY(name)));                     \
  if (!nv.name) return fail("cannot load NVRTC: " + dl->path() + " has no " SHOAL_STRINGIFY(name));
    SHOAL_NVRTC_FUNCTIONS(SHOAL_NVRTC_LOAD)
#undef SHOAL_NVRTC_LOAD
    return nv;
  }();
  return lib;
}

/// "call(what): NVRTC_ERROR_..."
Unexpected<Error> nvrtcFail(const NvrtcLibrary& nv, nvrtcResult result, std::string_view call, std::string_view what) {
  return fail(std::string(call) + "(" + std::string(what) + "): " + nv.nvrtcGetErrorString(result));
}

std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return lines;
}

bool isCaretLine(const std::string& s) {
  return s.find('^') != std::string::npos && s.find_first_not_of(" \t^~") == std::string::npos;
}

// NVRTC's log with the generated source quoted under each "prog.cu(12): error: ..." line as
// "   12 | <line 12>", caret kept under the column. NVRTC usually echoes the line itself
// (indented by two, caret below); that echo is replaced by the numbered quote, and where it
// is missing the numbered quote is inserted.
std::string annotateLog(const std::string& log, const std::string& programName, const std::string& source) {
  static const std::regex kDiag(R"(^(.*)\((\d+)\): (error|warning|catastrophic error|remark)\b.*)");
  std::vector<std::string> lines = splitLines(log);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    out += lines[i];
    out += '\n';
    std::smatch m;
    if (!std::regex_match(lines[i], m, kDiag) || m[1].str() != programName) continue;
    int lineNo = std::stoi(m[2].str());
    std::string src;
    if (!sourceLine(source, lineNo, src)) continue;
    char gutter[24];
    std::snprintf(gutter, sizeof gutter, "%6d | ", lineNo);
    out += gutter + src + '\n';
    // Skip NVRTC's own echo of the line and move its caret under the numbered quote.
    if (i + 1 < lines.size() && lines[i + 1] == "  " + src) {
      ++i;
      if (i + 1 < lines.size() && isCaretLine(lines[i + 1])) {
        ++i;
        std::string caret = lines[i].size() >= 2 ? lines[i].substr(2) : lines[i];
        out += std::string(std::strlen(gutter), ' ') + caret + '\n';
      }
    }
  }
  return out;
}

struct ProgramGuard {
  const NvrtcLibrary& nv;
  nvrtcProgram prog = nullptr;
  ~ProgramGuard() {
    if (prog) (void)nv.nvrtcDestroyProgram(&prog);
  }
};

enum class OutputKind { Cubin, Ptx };

struct Compiled {
  std::string code;
  std::string log;
};

Expected<Compiled> compileProgram(const std::string& source, const std::string& name, const std::string& arch,
                                  const std::vector<std::string>& options, OutputKind kind) {
  const std::string programName = name + ".cu";
  const std::string what = "kernel '" + name + "'";
  const auto& loaded = nvrtcLibrary();
  if (!loaded) return Unexpected(loaded.error());
  const NvrtcLibrary& nv = *loaded;
  ProgramGuard guard{nv};
  if (nvrtcResult r = nv.nvrtcCreateProgram(&guard.prog, source.c_str(), programName.c_str(), 0, nullptr, nullptr);
      r != NVRTC_SUCCESS)
    return nvrtcFail(nv, r, "nvrtcCreateProgram", what);

  std::vector<const char*> argv;
  argv.reserve(options.size());
  for (const std::string& o : options) argv.push_back(o.c_str());
  nvrtcResult compiled = nv.nvrtcCompileProgram(guard.prog, int(argv.size()), argv.data());

  std::string log;
  size_t logSize = 0;
  if (nv.nvrtcGetProgramLogSize(guard.prog, &logSize) == NVRTC_SUCCESS && logSize > 1) {
    log.resize(logSize);
    if (nv.nvrtcGetProgramLog(guard.prog, log.data()) != NVRTC_SUCCESS) log.clear();
    while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  }

  if (compiled != NVRTC_SUCCESS) {
    std::string msg = "NVRTC could not compile " + what + " for " + arch + " (" + nv.nvrtcGetErrorString(compiled) + ")";
    if (compiled == NVRTC_ERROR_INVALID_OPTION) {
      msg += "\noptions:";
      for (const std::string& o : options) msg += " " + o;
    }
    if (!log.empty()) msg += ":\n" + annotateLog(log, programName, source);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return fail(std::move(msg));
  }

  Compiled out;
  out.log = std::move(log);
  size_t size = 0;
  if (kind == OutputKind::Cubin) {
    if (nvrtcResult r = nv.nvrtcGetCUBINSize(guard.prog, &size); r != NVRTC_SUCCESS)
      return nvrtcFail(nv, r, "nvrtcGetCUBINSize", what);
    if (size == 0) return fail("NVRTC produced no cubin for " + what + " (is '" + arch + "' a real sm_XX architecture?)");
    out.code.resize(size);
    if (nvrtcResult r = nv.nvrtcGetCUBIN(guard.prog, out.code.data()); r != NVRTC_SUCCESS)
      return nvrtcFail(nv, r, "nvrtcGetCUBIN", what);
  } else {
    if (nvrtcResult r = nv.nvrtcGetPTXSize(guard.prog, &size); r != NVRTC_SUCCESS)
      return nvrtcFail(nv, r, "nvrtcGetPTXSize", what);
    out.code.resize(size);
    if (nvrtcResult r = nv.nvrtcGetPTX(guard.prog, out.code.data()); r != NVRTC_SUCCESS)
      return nvrtcFail(nv, r, "nvrtcGetPTX", what);
    while (!out.code.empty() && out.code.back() == '\0') out.code.pop_back();
  }
  return out;
}

// "sm_90" -> "compute_90"; "sm_90a" -> "compute_90a".
std::string virtualArch(const std::string& arch) {
  if (arch.rfind("sm_", 0) == 0) return "compute_" + arch.substr(3);
  return arch;
}

}  // namespace

std::string cudaIncludeDir() {
  static const std::string dir = [] {
    std::error_code ec;
    const auto& nv = nvrtcLibrary();
    if (nv && std::filesystem::path(nv->path).is_absolute()) {
      // <toolkit>/lib64/libnvrtc.so.13 -> <toolkit>/include
      auto include = std::filesystem::path(nv->path).parent_path().parent_path() / "include";
      if (std::filesystem::exists(include / "cuda_fp16.h", ec)) return include.string();
    }
#ifdef SHOAL_CUDA_INCLUDE_DIR
    if (std::filesystem::is_directory(SHOAL_CUDA_INCLUDE_DIR, ec)) return std::string(SHOAL_CUDA_INCLUDE_DIR);
#endif
    return std::string();
  }();
  return dir;
}

Expected<void> nvrtcAvailable() {
  const auto& nv = nvrtcLibrary();
  if (!nv) return Unexpected(nv.error());
  return {};
}

std::string nvrtcVersion() {
  const auto& nv = nvrtcLibrary();
  if (!nv) return "";
  int major = 0, minor = 0;
  if (nv->nvrtcVersion(&major, &minor) != NVRTC_SUCCESS) return "unknown";
  return std::to_string(major) + "." + std::to_string(minor);
}

std::string nvrtcCacheTag() {
  static const std::string tag = [] {
    std::string t = "nvrtc " + nvrtcVersion();
    // The loaded library's file size tells patch releases apart (13.0.48 vs 13.0.88).
    const auto& nv = nvrtcLibrary();
    struct stat st {};
    if (nv && ::stat(nv->path.c_str(), &st) == 0)
      t += " " + std::filesystem::path(nv->path).filename().string() + ":" + std::to_string(st.st_size);
    return t;
  }();
  return tag;
}

std::vector<std::string> nvrtcSupportedArchs() {
  const auto& nv = nvrtcLibrary();
  if (!nv) return {};
  int n = 0;
  if (nv->nvrtcGetNumSupportedArchs(&n) != NVRTC_SUCCESS || n <= 0) return {};
  std::vector<int> archs(size_t(n), 0);
  if (nv->nvrtcGetSupportedArchs(archs.data()) != NVRTC_SUCCESS) return {};
  std::vector<std::string> out;
  for (int a : archs) out.push_back("sm_" + std::to_string(a));
  return out;
}

Expected<std::string> compileCuda(const std::string& source, const std::string& name, const std::string& arch,
                                  const std::vector<std::string>& extraOptions) {
  auto r = compileProgram(source, name, arch, nvrtcOptions(arch, extraOptions), OutputKind::Cubin);
  if (!r) return Unexpected(r.error());
  return std::move(r->code);
}

Expected<std::string> compileCudaToPtx(const std::string& source, const std::string& name, const std::string& arch,
                                       const std::vector<std::string>& extraOptions) {
  auto r = compileProgram(source, name, arch, nvrtcOptions(virtualArch(arch), extraOptions), OutputKind::Ptx);
  if (!r) return Unexpected(r.error());
  return std::move(r->code);
}

Expected<CompiledKernel> compileKernel(const KernelSource& kernel, const std::string& arch,
                                       const std::vector<std::string>& extraOptions, KernelCache* cache) {
  std::vector<std::string> options = nvrtcOptions(arch, extraOptions);
  std::string key;
  if (cache) {
    key = KernelCache::makeKey(kernel.source, options, arch, nvrtcCacheTag());
    if (auto hit = cache->lookup(key)) {
      CompiledKernel out;
      out.name = kernel.name;
      out.cubin = std::move(*hit);
      out.cacheHit = true;
      return out;
    }
  }
  auto start = std::chrono::steady_clock::now();
  auto compiled = compileProgram(kernel.source, kernel.name, arch, options, OutputKind::Cubin);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!compiled) return Unexpected(compiled.error());
  if (cache) {
    cache->recordCompile(ms);
    (void)cache->store(key, compiled->code);  // counted in the cache's summary; not fatal
  }
  CompiledKernel out;
  out.name = kernel.name;
  out.cubin = std::move(compiled->code);
  out.compileMs = ms;
  out.log = std::move(compiled->log);
  return out;
}

#else  // !SHOAL_HAVE_CUDA

namespace {
Unexpected<Error> notBuilt() {
  return fail("shoal was built without CUDA support (SHOAL_HAVE_CUDA=0): NVRTC is not available");
}
}  // namespace

Expected<void> nvrtcAvailable() { return notBuilt(); }
std::string cudaIncludeDir() { return ""; }
std::string nvrtcVersion() { return ""; }
std::string nvrtcCacheTag() { return ""; }
std::vector<std::string> nvrtcSupportedArchs() { return {}; }
Expected<std::string> compileCuda(const std::string&, const std::string&, const std::string&,
                                  const std::vector<std::string>&) {
  return notBuilt();
}
Expected<std::string> compileCudaToPtx(const std::string&, const std::string&, const std::string&,
                                       const std::vector<std::string>&) {
  return notBuilt();
}
Expected<CompiledKernel> compileKernel(const KernelSource&, const std::string&, const std::vector<std::string>&,
                                       KernelCache*) {
  return notBuilt();
}

#endif  // SHOAL_HAVE_CUDA

}  // namespace shoal
