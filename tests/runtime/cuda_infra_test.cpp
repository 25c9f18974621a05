// Tests of the CUDA device layer: probing, NVRTC, the kernel cache, modules, the context.
//
// The cache tests run in every build. With CUDA built in, the NVRTC tests run everywhere
// (NVRTC needs no GPU); the GPU tests skip themselves when probeCudaDevice finds no device.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "runtime/cuda/device.h"
#include "codegen/kernel_cache.h"
#include "runtime/cuda/module.h"
#include "codegen/nvrtc.h"
#include "test_util.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;

// Sets (or unsets, for nullopt) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value->c_str(), 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// ---- the kernel cache (no CUDA needed) ------------------------------------------------------

TEST(CudaInfraCache, EntryRoundTripsAndDetectsDamage) {
  std::string payload = "\x7f" "ELF some cubin bytes";
  std::string entry = encodeCacheEntry(payload);
  ASSERT_EQ(entry.size(), kKernelCacheHeaderBytes + payload.size());
  EXPECT_EQ(entry.substr(0, 8), "SHOALKC1");
  EXPECT_EQ(static_cast<unsigned char>(entry[8]), payload.size());  // u64 little-endian length
  auto back = decodeCacheEntry(entry);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(*back, payload);

  std::string flipped = entry;
  flipped[kKernelCacheHeaderBytes + 3] ^= 0x01;
  auto bad = decodeCacheEntry(flipped);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message(), "payload checksum mismatch");

  auto truncated = decodeCacheEntry(std::string_view(entry).substr(0, entry.size() - 4));
  ASSERT_FALSE(truncated.has_value());
  EXPECT_NE(truncated.error().message().find("payload truncated: header says 21 bytes, file has 17"),
            std::string::npos)
      << truncated.error().message();

  auto header = decodeCacheEntry(std::string_view(entry).substr(0, 20));
  ASSERT_FALSE(header.has_value());
  EXPECT_NE(header.error().message().find("truncated header"), std::string::npos);

  std::string magic = entry;
  magic[7] = '2';
  auto wrongMagic = decodeCacheEntry(magic);
  ASSERT_FALSE(wrongMagic.has_value());
  EXPECT_NE(wrongMagic.error().message().find("bad magic"), std::string::npos);
}

TEST(CudaInfraCache, KeyDependsOnEveryField) {
  std::vector<std::string> opts = {"-arch=sm_90", "--std=c++17"};
  std::string k = KernelCache::makeKey("src", opts, "sm_90", "nvrtc 13.0");
  EXPECT_EQ(k.size(), 64u);
  EXPECT_EQ(k.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(k, KernelCache::makeKey("src", opts, "sm_90", "nvrtc 13.0"));
  EXPECT_NE(k, KernelCache::makeKey("src2", opts, "sm_90", "nvrtc 13.0"));
  EXPECT_NE(k, KernelCache::makeKey("src", {"-arch=sm_90"}, "sm_90", "nvrtc 13.0"));
  EXPECT_NE(k, KernelCache::makeKey("src", opts, "sm_80", "nvrtc 13.0"));
  EXPECT_NE(k, KernelCache::makeKey("src", opts, "sm_90", "nvrtc 13.1"));
  // Length prefixes: moving bytes between fields changes the key.
  EXPECT_NE(KernelCache::makeKey("ab", {"c"}, "x", "v"), KernelCache::makeKey("a", {"bc"}, "x", "v"));
  EXPECT_NE(KernelCache::makeKey("a", {"b", "c"}, "x", "v"), KernelCache::makeKey("a", {"b\nc"}, "x", "v"));
}

TEST(CudaInfraCache, DefaultDirFollowsEnvironment) {
  {
    ScopedEnv dir("SHOAL_CACHE_DIR", "/some/where");
    EXPECT_EQ(KernelCache::defaultDir(), "/some/where");
  }
  {
    ScopedEnv dir("SHOAL_CACHE_DIR", std::nullopt);
    ScopedEnv home("HOME", "/home/tester/");
    EXPECT_EQ(KernelCache::defaultDir(), "/home/tester/.cache/shoal");
  }
  {
    ScopedEnv dir("SHOAL_CACHE_DIR", "");
    ScopedEnv home("HOME", std::nullopt);
    EXPECT_EQ(KernelCache::defaultDir(), "/tmp/shoal-cache-" + std::to_string(::getuid()));
  }
}

TEST(CudaInfraCache, StoreLookupCountsHitsMissesAndCorruptEntries) {
  std::string dir = test::tempDir() + "/nested/cache";  // created on first store
  KernelCache cache(dir);
  std::string key = KernelCache::makeKey("s", {}, "sm_90", "v");

  EXPECT_FALSE(cache.lookup(key).has_value());
  ASSERT_TRUE(cache.store(key, "payload-1").has_value());
  EXPECT_TRUE(fs::exists(cache.entryPath(key)));
  EXPECT_EQ(cache.entryPath(key), dir + "/" + key + ".cubin");
  EXPECT_EQ(cache.lookup(key).value_or(""), "payload-1");

  // Damage the entry: detected, counted, reported as a miss; a store repairs it.
  std::string bytes = test::readFile(cache.entryPath(key));
  bytes.back() ^= 0x40;
  test::writeFile(cache.entryPath(key), bytes);
  EXPECT_FALSE(cache.lookup(key).has_value());
  ASSERT_TRUE(cache.store(key, "payload-1").has_value());
  EXPECT_EQ(cache.lookup(key).value_or(""), "payload-1");

  // Only temporary-file-free entries remain (writes are temp + rename).
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++files;
    EXPECT_EQ(e.path().extension(), ".cubin") << e.path();
  }
  EXPECT_EQ(files, 1);

  cache.recordCompile(12.25);
  KernelCache::Stats s = cache.stats();
  EXPECT_EQ(s.hits, 2u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.corrupt, 1u);
  EXPECT_EQ(s.stores, 2u);
  EXPECT_EQ(s.compiles, 1u);
  EXPECT_DOUBLE_EQ(s.compileMs, 12.25);
  EXPECT_EQ(cache.summary(), "kernel cache " + dir + ": 2 hits, 2 misses (1 corrupt), 1 compiled in 12.2 ms");
}

TEST(CudaInfraCache, EntriesThatAreNotRegularFilesAreNeverRead) {
  // Issue "Hardening" 6: an entry symlinked to /dev/zero was read until memory ran out. A link,
  // a FIFO (whose read would block) or a directory under an entry's name is a corrupt entry,
  // not read, and the next store replaces it with a regular file (not written through).
  std::string dir = test::tempDir();
  KernelCache cache(dir);
  std::string zero = KernelCache::makeKey("zero", {}, "sm_90", "v");
  std::string fifo = KernelCache::makeKey("fifo", {}, "sm_90", "v");
  std::string link = KernelCache::makeKey("link", {}, "sm_90", "v");
  fs::create_symlink("/dev/zero", cache.entryPath(zero));
  ASSERT_EQ(::mkfifo(cache.entryPath(fifo).c_str(), 0600), 0);
  ASSERT_TRUE(cache.store("good", "payload"));
  fs::create_symlink(cache.entryPath("good"), cache.entryPath(link));  // a link to a valid entry
  for (const std::string& key : {zero, fifo, link}) {
    EXPECT_FALSE(cache.lookup(key).has_value()) << key;
    ASSERT_TRUE(cache.store(key, "rebuilt")) << key;
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(cache.entryPath(key)))) << key;
    EXPECT_EQ(cache.lookup(key).value_or(""), "rebuilt") << key;
  }
  EXPECT_EQ(cache.stats().corrupt, 3u);
  EXPECT_EQ(cache.lookup("good").value_or(""), "payload") << "the link's target was not overwritten";
}

TEST(CudaInfraCache, UnwritableDirectoryIsCountedNotFatal) {
  std::string file = test::tempDir() + "/not-a-dir";
  test::writeFile(file, "x");
  KernelCache cache(file + "/cache");  // a directory below a regular file cannot exist
  auto r = cache.store("abc", "payload");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("cannot create directory"), std::string::npos) << r.error().message();
  EXPECT_FALSE(cache.lookup("abc").has_value());
  EXPECT_EQ(cache.stats().storeErrors, 1u);
  EXPECT_NE(cache.summary().find("1 entries not written"), std::string::npos) << cache.summary();
}

TEST(CudaInfraDevice, EnvFlagParsesCommonSpellings) {
  const char* name = "SHOAL_TEST_CUDA_INFRA_FLAG";
  {
    ScopedEnv e(name, std::nullopt);
    EXPECT_FALSE(envFlag(name));
  }
  for (const char* off : {"", "0", "false", "off", "no"}) {
    ScopedEnv e(name, off);
    EXPECT_FALSE(envFlag(name)) << off;
  }
  for (const char* on : {"1", "yes", "true"}) {
    ScopedEnv e(name, on);
    EXPECT_TRUE(envFlag(name)) << on;
  }
  {
    ScopedEnv e("SHOAL_CUDA_SEPARATE_ALLOCS", "1");
    EXPECT_TRUE(CudaContextOptions{}.separateAllocs);
  }
  {
    ScopedEnv e("SHOAL_CUDA_SEPARATE_ALLOCS", std::nullopt);
    EXPECT_FALSE(CudaContextOptions{}.separateAllocs);
  }
}

TEST(CudaInfraDevice, ArchAndDescribe) {
  CudaDeviceInfo info;
  info.index = 1;
  info.name = "NVIDIA H100 80GB HBM3";
  info.major = 9;
  info.minor = 0;
  EXPECT_EQ(info.arch(), "sm_90");
  EXPECT_EQ(info.describe(), "cuda:1 NVIDIA H100 80GB HBM3");
  info.major = 8;
  info.minor = 6;
  EXPECT_EQ(info.arch(), "sm_86");
}

#if !SHOAL_HAVE_CUDA

TEST(CudaInfraNoCuda, EverythingSaysCudaIsNotBuiltIn) {
  EXPECT_FALSE(cudaBuiltIn());
  auto dev = probeCudaDevice();
  ASSERT_FALSE(dev.has_value());
  EXPECT_NE(dev.error().message().find("built without CUDA"), std::string::npos);
  EXPECT_FALSE(CudaContext::create().has_value());
  auto cubin = compileCuda("extern \"C\" __global__ void k() {}", "k", "sm_90");
  ASSERT_FALSE(cubin.has_value());
  EXPECT_NE(cubin.error().message().find("built without CUDA"), std::string::npos);
  EXPECT_FALSE(CudaModule::load("x", "m").has_value());
}

#else  // SHOAL_HAVE_CUDA

const char* kSaxpy = R"(extern "C" __global__ void saxpy(int n, float a, const float* x, float* y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
)";

// Line 3 lacks its semicolon; NVRTC reports it at line 4, the next token.
const char* kBroken = R"(extern "C" __global__ void broken(float* x) {
  int i = threadIdx.x;
  float v = x[i] * 2.0f
  x[i] = v;
  x[i] += not_declared_anywhere;
}
)";

// A kernel that adds `delta` to every element, with the constant baked into its source.
std::string addKernel(const std::string& name, int delta) {
  return "extern \"C\" __global__ void " + name + "(int n, float* x) {\n" +
         "  int i = blockIdx.x * blockDim.x + threadIdx.x;\n" + "  if (i < n) x[i] += " + std::to_string(delta) +
         ".0f;\n}\n";
}

// The ELF checks every cubin must pass: magic, 64-bit, machine EM_CUDA (190).
void expectCudaElf(const std::string& cubin, const std::string& symbol) {
  ASSERT_GE(cubin.size(), 64u);
  EXPECT_EQ(cubin.substr(0, 4), std::string("\x7f" "ELF"));
  EXPECT_EQ(cubin[4], 2) << "ELFCLASS64";
  unsigned machine = static_cast<unsigned char>(cubin[18]) | (static_cast<unsigned char>(cubin[19]) << 8);
  EXPECT_EQ(machine, 190u) << "EM_CUDA";
  EXPECT_NE(cubin.find(symbol), std::string::npos) << "symbol '" << symbol << "' missing";
}

TEST(CudaInfraProbe, NoGpuIsAnErrorNotACrash) {
  EXPECT_TRUE(cudaBuiltIn());
  auto dev = probeCudaDevice();
  if (dev) {
    // A GPU machine: the info must be real.
    EXPECT_FALSE(dev->name.empty());
    EXPECT_GE(dev->major, 7);
    EXPECT_GT(dev->smCount, 0);
    EXPECT_GT(dev->totalMem, size_t(1) << 30);
    EXPECT_EQ(dev->arch(), "sm_" + std::to_string(dev->major) + std::to_string(dev->minor));
    EXPECT_GE(dev->driverVersion, dev->runtimeVersion / 1000 * 1000);
    return;
  }
  const std::string& msg = dev.error().message();
  bool known = msg.starts_with("no CUDA driver: ") || msg.starts_with("no CUDA device found") ||
               msg.starts_with("CUDA driver too old") || msg.starts_with("CUDA unavailable: ");
  EXPECT_TRUE(known) << msg;
  // On a machine with no driver at all (this project's CPU machine), cudart says exactly this.
  if (msg.starts_with("no CUDA driver: ")) {
    EXPECT_EQ(msg, "no CUDA driver: CUDA driver version is insufficient for CUDA runtime version");
  }
  // Probing again is just as calm, and a context reports the same reason.
  auto again = probeCudaDevice();
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().message(), msg);
  auto ctx = CudaContext::create();
  ASSERT_FALSE(ctx.has_value());
  EXPECT_EQ(ctx.error().message(), msg);
  // An out-of-range index on such a machine fails the same calm way.
  EXPECT_FALSE(probeCudaDevice(3).has_value());
}

TEST(CudaInfraProbe, LoadingAModuleWithoutADriverFailsCalmly) {
  if (probeCudaDevice()) GTEST_SKIP() << "a GPU is present; this checks the no-driver path";
  auto cubin = compileCuda(kSaxpy, "saxpy", "sm_90");
  ASSERT_TRUE(cubin.has_value()) << cubin.error().message();
  auto module = CudaModule::load(*cubin, "saxpy_module");
  ASSERT_FALSE(module.has_value());
  EXPECT_TRUE(module.error().message().starts_with("cudaLibraryLoadData(module 'saxpy_module'): "))
      << module.error().message();
}

TEST(CudaInfraNvrtc, VersionAndArchs) {
  std::string v = nvrtcVersion();
  ASSERT_FALSE(v.empty());
  EXPECT_TRUE(v.starts_with("13.")) << v;  // the toolkit this project builds with
  EXPECT_TRUE(nvrtcCacheTag().starts_with("nvrtc " + v)) << nvrtcCacheTag();
  auto archs = nvrtcSupportedArchs();
  EXPECT_NE(std::find(archs.begin(), archs.end(), "sm_90"), archs.end());
  EXPECT_NE(std::find(archs.begin(), archs.end(), "sm_80"), archs.end());
}

TEST(CudaInfraNvrtc, DefaultOptionsAreExactFp32) {
  auto opts = nvrtcOptions("sm_90", {"-lineinfo"});
  ASSERT_GE(opts.size(), 4u);
  EXPECT_EQ(opts[0], "-arch=sm_90");
  EXPECT_EQ(opts[1], "--std=c++17");
  EXPECT_EQ(opts[2], "-default-device");
  EXPECT_EQ(opts.back(), "-lineinfo");
  for (const std::string& o : opts) EXPECT_EQ(o.find("fast_math"), std::string::npos) << o;
}

TEST(CudaInfraNvrtc, SaxpyCompilesToCubinForSm90AndSm80) {
  auto sm90 = compileCuda(kSaxpy, "saxpy", "sm_90");
  ASSERT_TRUE(sm90.has_value()) << sm90.error().message();
  expectCudaElf(*sm90, "saxpy");
  auto sm80 = compileCuda(kSaxpy, "saxpy", "sm_80");
  ASSERT_TRUE(sm80.has_value()) << sm80.error().message();
  expectCudaElf(*sm80, "saxpy");
  EXPECT_NE(*sm90, *sm80);
}

TEST(CudaInfraNvrtc, PtxForDumps) {
  auto ptx = compileCudaToPtx(kSaxpy, "saxpy", "sm_90");
  ASSERT_TRUE(ptx.has_value()) << ptx.error().message();
  EXPECT_NE(ptx->find(".target sm_90"), std::string::npos);
  EXPECT_NE(ptx->find(".entry saxpy("), std::string::npos);
  EXPECT_NE(ptx->find("fma.rn.f32"), std::string::npos) << "a*x+y contracts to one IEEE fma";
  EXPECT_EQ(ptx->find(".ftz"), std::string::npos) << "no flush-to-zero without fast math";
}

TEST(CudaInfraNvrtc, CompileErrorQuotesLogAndSourceLines) {
  auto r = compileCuda(kBroken, "broken", "sm_90");
  ASSERT_FALSE(r.has_value());
  const std::string& msg = r.error().message();
  EXPECT_TRUE(msg.starts_with("NVRTC could not compile kernel 'broken' for sm_90 (NVRTC_ERROR_COMPILATION):"))
      << msg;
  // NVRTC's own diagnostics...
  EXPECT_NE(msg.find("broken.cu(4): error: expected a \";\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("broken.cu(5): error: identifier \"not_declared_anywhere\" is undefined"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("errors detected in the compilation of \"broken.cu\""), std::string::npos) << msg;
  // ...each followed by the generated line it names, numbered.
  EXPECT_NE(msg.find("broken.cu(4): error: expected a \";\"\n     4 |   x[i] = v;\n"), std::string::npos) << msg;
  EXPECT_NE(msg.find("is undefined\n     5 |   x[i] += not_declared_anywhere;\n"), std::string::npos) << msg;
}

TEST(CudaInfraNvrtc, BadArchNamesTheOptions) {
  auto r = compileCuda(kSaxpy, "saxpy", "sm_42");
  ASSERT_FALSE(r.has_value());
  const std::string& msg = r.error().message();
  EXPECT_NE(msg.find("NVRTC_ERROR_INVALID_OPTION"), std::string::npos) << msg;
  EXPECT_NE(msg.find("-arch=sm_42"), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid value for --gpu-architecture"), std::string::npos) << msg;
}

TEST(CudaInfraNvrtc, CacheMissThenHitThenRebuildsCorruptEntries) {
  KernelCache cache(test::tempDir());
  KernelSource k{"saxpy", kSaxpy};

  auto first = compileKernel(k, "sm_90", {}, &cache);
  ASSERT_TRUE(first.has_value()) << first.error().message();
  EXPECT_FALSE(first->cacheHit);
  EXPECT_GT(first->compileMs, 0.0);
  expectCudaElf(first->cubin, "saxpy");

  auto second = compileKernel(k, "sm_90", {}, &cache);
  ASSERT_TRUE(second.has_value()) << second.error().message();
  EXPECT_TRUE(second->cacheHit);
  EXPECT_EQ(second->compileMs, 0.0);
  EXPECT_EQ(second->cubin, first->cubin);

  std::string key = KernelCache::makeKey(k.source, nvrtcOptions("sm_90", {}), "sm_90", nvrtcCacheTag());
  std::string path = cache.entryPath(key);
  ASSERT_TRUE(fs::exists(path));

  // A flipped byte in the payload: detected, rebuilt, overwritten.
  std::string bytes = test::readFile(path);
  bytes[bytes.size() / 2] ^= 0xFF;
  test::writeFile(path, bytes);
  auto third = compileKernel(k, "sm_90", {}, &cache);
  ASSERT_TRUE(third.has_value()) << third.error().message();
  EXPECT_FALSE(third->cacheHit);
  EXPECT_EQ(third->cubin, first->cubin);
  EXPECT_EQ(test::readFile(path), encodeCacheEntry(first->cubin));

  // A truncated entry (a crash mid-write on a filesystem without atomic rename): the same.
  fs::resize_file(path, fs::file_size(path) / 3);
  auto fourth = compileKernel(k, "sm_90", {}, &cache);
  ASSERT_TRUE(fourth.has_value()) << fourth.error().message();
  EXPECT_FALSE(fourth->cacheHit);
  EXPECT_EQ(fourth->cubin, first->cubin);
  auto fifth = compileKernel(k, "sm_90", {}, &cache);
  ASSERT_TRUE(fifth.has_value());
  EXPECT_TRUE(fifth->cacheHit);

  KernelCache::Stats s = cache.stats();
  EXPECT_EQ(s.hits, 2u);
  EXPECT_EQ(s.misses, 3u);
  EXPECT_EQ(s.corrupt, 2u);
  EXPECT_EQ(s.compiles, 3u);
  EXPECT_GT(s.compileMs, 0.0);

  // Another arch is another key, another entry, another cubin.
  std::string key80 = KernelCache::makeKey(k.source, nvrtcOptions("sm_80", {}), "sm_80", nvrtcCacheTag());
  EXPECT_NE(key80, key);
  auto sm80 = compileKernel(k, "sm_80", {}, &cache);
  ASSERT_TRUE(sm80.has_value());
  EXPECT_FALSE(sm80->cacheHit);
  EXPECT_TRUE(fs::exists(cache.entryPath(key80)));
  EXPECT_NE(sm80->cubin, first->cubin);
  // Extra options are part of the key too.
  auto lineinfo = compileKernel(k, "sm_90", {"-lineinfo"}, &cache);
  ASSERT_TRUE(lineinfo.has_value());
  EXPECT_FALSE(lineinfo->cacheHit);
}

TEST(CudaInfraNvrtc, CompileAllInParallelKeepsOrderAndIsolatesFailures) {
  KernelCache cache(test::tempDir());
  std::vector<KernelSource> ks;
  for (int i = 0; i < 6; ++i) ks.push_back({"add" + std::to_string(i), addKernel("add" + std::to_string(i), i)});
  ks[4].source = kBroken;  // one bad kernel among good ones
  ks[4].name = "broken";

  auto results = compileAll(ks, "sm_90", {}, &cache, 3);
  ASSERT_EQ(results.size(), ks.size());
  for (size_t i = 0; i < ks.size(); ++i) {
    if (i == 4) {
      ASSERT_FALSE(results[i].has_value());
      EXPECT_NE(results[i].error().message().find("kernel 'broken'"), std::string::npos);
      continue;
    }
    ASSERT_TRUE(results[i].has_value()) << results[i].error().message();
    EXPECT_EQ(results[i]->name, ks[i].name);
    EXPECT_FALSE(results[i]->cacheHit);
    expectCudaElf(results[i]->cubin, ks[i].name);
  }
  auto again = compileAll(ks, "sm_90", {}, &cache, 0);
  for (size_t i = 0; i < ks.size(); ++i) {
    if (i == 4) continue;
    ASSERT_TRUE(again[i].has_value());
    EXPECT_TRUE(again[i]->cacheHit) << ks[i].name;
    EXPECT_EQ(again[i]->cubin, results[i]->cubin);
  }
  EXPECT_EQ(cache.stats().hits, 5u);
  EXPECT_EQ(cache.stats().compiles, 5u);
  EXPECT_TRUE(compileAll({}, "sm_90", {}, &cache, 4).empty());
}

// ---- GPU-only: skipped where probeCudaDevice finds no device ---------------------------------

std::unique_ptr<CudaContext> gpuContext(CudaContextOptions options = {}) {
  auto ctx = CudaContext::create(options);
  if (!ctx) return nullptr;
  return std::move(*ctx);
}

#define SKIP_WITHOUT_GPU(ctx)                                                           \
  if (!(ctx)) {                                                                         \
    auto why = probeCudaDevice();                                                       \
    GTEST_SKIP() << "no GPU: " << (why ? std::string("context failed") : why.error().message()); \
  }

// Loads kernel `name` of `source` compiled for the context's device.
struct LoadedKernel {
  CudaModule module;
  CudaKernel kernel;
};
Expected<LoadedKernel> loadKernel(const CudaContext& ctx, const std::string& source, const std::string& name) {
  auto cubin = compileCuda(source, name, ctx.device().arch());
  if (!cubin) return Unexpected(cubin.error());
  auto module = CudaModule::load(*cubin, name);
  if (!module) return Unexpected(module.error());
  auto kernel = module->kernel(name);
  if (!kernel) return Unexpected(kernel.error());
  return LoadedKernel{std::move(*module), *kernel};
}

TEST(CudaInfraGpu, LoadAndLaunchSaxpy) {
  auto ctx = gpuContext();
  SKIP_WITHOUT_GPU(ctx);
  auto k = loadKernel(*ctx, kSaxpy, "saxpy");
  ASSERT_TRUE(k.has_value()) << k.error().message();

  const int n = 1000;  // not a multiple of the block: the bounds check matters
  std::vector<float> x(n), y(n), out(n);
  for (int i = 0; i < n; ++i) {
    x[i] = 0.5f * i;  // a*x exact in fp32, so the result is exact with or without fma
    y[i] = 1000.0f - i;
  }
  auto arena = ctx->allocateArena(2 * n * sizeof(float), "saxpy arena");
  ASSERT_TRUE(arena.has_value()) << arena.error().message();
  float* dx = static_cast<float*>(arena->at(0));
  float* dy = static_cast<float*>(arena->at(n * sizeof(float)));
  ASSERT_TRUE(ctx->copyToDevice(dx, x.data(), n * sizeof(float), "x").has_value());
  ASSERT_TRUE(ctx->copyToDevice(dy, y.data(), n * sizeof(float), "y").has_value());
  int nArg = n;
  float a = 2.5f;
  void* args[] = {&nArg, &a, &dx, &dy};
  auto launched = k->kernel.launch({(n + 255) / 256}, {256}, args, 0, ctx->stream());
  ASSERT_TRUE(launched.has_value()) << launched.error().message();
  ASSERT_TRUE(ctx->copyToHost(out.data(), dy, n * sizeof(float), "y").has_value());
  auto synced = ctx->synchronize("saxpy");
  ASSERT_TRUE(synced.has_value()) << synced.error().message();
  for (int i = 0; i < n; ++i) ASSERT_EQ(out[i], 2.5f * (0.5f * i) + (1000.0f - i)) << i;
}

TEST(CudaInfraGpu, LaunchErrorsNameTheKernel) {
  auto ctx = gpuContext();
  SKIP_WITHOUT_GPU(ctx);
  auto k = loadKernel(*ctx, kSaxpy, "saxpy");
  ASSERT_TRUE(k.has_value()) << k.error().message();
  int n = 0;
  float a = 1, *p = nullptr;
  void* args[] = {&n, &a, &p, &p};
  auto r = k->kernel.launch({1}, {4096}, args, 0, ctx->stream());  // > 1024 threads per block
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(r.error().message().starts_with("cudaLaunchKernel(kernel 'saxpy', grid 1x1x1, block 4096x1x1, 0 B "
                                              "shared): "))
      << r.error().message();
  auto missing = k->module.kernel("no_such_kernel");
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message().find("no_such_kernel"), std::string::npos);
  // The context is still usable afterwards (the launch error was not sticky).
  EXPECT_TRUE(ctx->synchronize().has_value());
}

TEST(CudaInfraGpu, ArenaAndBuffers) {
  auto ctx = gpuContext();
  SKIP_WITHOUT_GPU(ctx);
  auto arena = ctx->allocateArena(1000);
  ASSERT_TRUE(arena.has_value()) << arena.error().message();
  EXPECT_EQ(arena->size(), 1024u);  // rounded to 256
  EXPECT_EQ(static_cast<char*>(arena->at(512)) - static_cast<char*>(arena->data()), 512);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(arena->data()) % 256, 0u);

  // Zero, then write a pattern through a pinned buffer and read it back.
  auto pinned = ctx->allocatePinned(1024);
  ASSERT_TRUE(pinned.has_value()) << pinned.error().message();
  auto* bytes = static_cast<unsigned char*>(pinned->data());
  std::memset(bytes, 0xAB, 1024);
  ASSERT_TRUE(ctx->memsetZero(arena->data(), 1024, "arena").has_value());
  ASSERT_TRUE(ctx->copyToDevice(arena->at(256), bytes, 256, "pattern").has_value());
  // The copy from page-locked memory is asynchronous: it must have read the pattern before the
  // host overwrites the buffer (without this wait the test failed under load on an H200).
  ASSERT_TRUE(ctx->synchronize().has_value());
  std::memset(bytes, 0x11, 1024);
  ASSERT_TRUE(ctx->copyToHost(bytes, arena->data(), 1024, "arena").has_value());
  ASSERT_TRUE(ctx->synchronize().has_value());
  for (int i = 0; i < 1024; ++i) ASSERT_EQ(bytes[i], (i >= 256 && i < 512) ? 0xAB : 0x00) << i;

  // Asking for far more than any GPU has is an error with the numbers, not an abort.
  auto huge = ctx->allocateArena(size_t(1) << 50, "huge arena");
  ASSERT_FALSE(huge.has_value());
  EXPECT_TRUE(huge.error().message().starts_with("cudaMalloc(huge arena, 1125899906842624 bytes): "))
      << huge.error().message();
  EXPECT_NE(huge.error().message().find("MiB free of"), std::string::npos) << huge.error().message();

  // The separate-allocs debug mode's per-buffer allocations.
  CudaContextOptions opts;
  opts.separateAllocs = true;
  auto debugCtx = gpuContext(opts);
  ASSERT_TRUE(debugCtx);
  EXPECT_TRUE(debugCtx->separateAllocs());
  auto b1 = debugCtx->allocateBuffer(100, "w");
  auto b2 = debugCtx->allocateBuffer(28, "b");
  ASSERT_TRUE(b1.has_value() && b2.has_value());
  EXPECT_NE(*b1, *b2);
  EXPECT_EQ(debugCtx->allocatedBufferBytes(), 128u);
  ASSERT_TRUE(debugCtx->freeBuffer(*b1).has_value());
  EXPECT_EQ(debugCtx->allocatedBufferBytes(), 28u);
  EXPECT_FALSE(debugCtx->freeBuffer(*b1).has_value());  // twice: refused, not a double free
}

TEST(CudaInfraGpu, GraphCaptureReplaysTwice) {
  auto ctx = gpuContext();
  SKIP_WITHOUT_GPU(ctx);
  auto k = loadKernel(*ctx, addKernel("add_one", 1), "add_one");
  ASSERT_TRUE(k.has_value()) << k.error().message();
  const int n = 300;
  std::vector<float> host(n), out(n);
  for (int i = 0; i < n; ++i) host[i] = float(i);
  auto arena = ctx->allocateArena(n * sizeof(float));
  ASSERT_TRUE(arena.has_value());
  float* dx = static_cast<float*>(arena->data());
  ASSERT_TRUE(ctx->copyToDevice(dx, host.data(), n * sizeof(float), "x").has_value());
  ASSERT_TRUE(ctx->synchronize().has_value());

  int nArg = n;
  void* args[] = {&nArg, &dx};
  ASSERT_TRUE(ctx->beginCapture().has_value());
  EXPECT_TRUE(ctx->capturing());
  ASSERT_TRUE(k->kernel.launch({2}, {256}, args, 0, ctx->stream()).has_value());
  // Allocation inside a step breaks the runtime contract: refused without breaking the capture.
  auto forbidden = ctx->allocateArena(1024);
  ASSERT_FALSE(forbidden.has_value());
  EXPECT_NE(forbidden.error().message().find("during CUDA graph capture"), std::string::npos);
  auto graph = ctx->endCapture();
  ASSERT_TRUE(graph.has_value()) << graph.error().message();
  EXPECT_FALSE(ctx->capturing());
  EXPECT_EQ(graph->nodeCount(), 1u);

  // Capturing ran nothing; each replay adds one.
  ASSERT_TRUE(ctx->copyToHost(out.data(), dx, n * sizeof(float), "x").has_value());
  ASSERT_TRUE(ctx->synchronize().has_value());
  for (int i = 0; i < n; ++i) ASSERT_EQ(out[i], float(i));
  auto start = ctx->createEvent();
  auto end = ctx->createEvent();
  ASSERT_TRUE(start.has_value() && end.has_value());
  ASSERT_TRUE(ctx->record(*start).has_value());
  ASSERT_TRUE(ctx->launch(*graph).has_value());
  ASSERT_TRUE(ctx->launch(*graph).has_value());
  ASSERT_TRUE(ctx->record(*end).has_value());
  auto ms = ctx->elapsedMs(*start, *end);
  ASSERT_TRUE(ms.has_value()) << ms.error().message();
  EXPECT_GE(*ms, 0.0f);
  ASSERT_TRUE(ctx->copyToHost(out.data(), dx, n * sizeof(float), "x").has_value());
  ASSERT_TRUE(ctx->synchronize().has_value());
  for (int i = 0; i < n; ++i) ASSERT_EQ(out[i], float(i) + 2.0f) << i;

  EXPECT_FALSE(ctx->endCapture().has_value());  // not capturing
}

TEST(CudaInfraGpu, CublasExactFp32GemmCapturesIntoAGraph) {
  auto ctx = gpuContext();
  SKIP_WITHOUT_GPU(ctx);
  EXPECT_FALSE(ctx->tf32());
  ASSERT_EQ(ctx->cublasUsesTf32().value_or(true), false);  // exact fp32 by default
  // Row-major C[m,n] = A[m,k] · B[k,n] with small integers: exact in fp32.
  const int m = 3, k = 2, n = 2;
  std::vector<float> A = {1, 2, 3, 4, 5, 6}, B = {7, 8, 9, 10}, Bt = {7, 9, 8, 10}, C(m * n, -1.0f);
  const std::vector<float> want = {25, 28, 57, 64, 89, 100};
  auto arena = ctx->allocateArena(1280);  // A, B, Bt, C, C2 at 256-byte offsets
  ASSERT_TRUE(arena.has_value());
  float* dA = static_cast<float*>(arena->at(0));
  float* dB = static_cast<float*>(arena->at(256));
  float* dBt = static_cast<float*>(arena->at(512));
  float* dC = static_cast<float*>(arena->at(768));
  float* dC2 = static_cast<float*>(arena->at(1024));
  ASSERT_TRUE(ctx->copyToDevice(dA, A.data(), A.size() * sizeof(float), "A").has_value());
  ASSERT_TRUE(ctx->copyToDevice(dB, B.data(), B.size() * sizeof(float), "B").has_value());
  ASSERT_TRUE(ctx->copyToDevice(dBt, Bt.data(), Bt.size() * sizeof(float), "Bt").has_value());
  ASSERT_TRUE(ctx->memsetZero(dC, C.size() * sizeof(float), "C").has_value());
  ASSERT_TRUE(ctx->synchronize().has_value());

  // beta = 1 accumulates, so each replay adds A·B once more.
  ASSERT_TRUE(ctx->beginCapture().has_value());
  auto captured = ctx->gemmF32(false, false, m, n, k, 1.0f, dA, k, dB, n, 1.0f, dC, n, "A·B");
  auto graph = ctx->endCapture();
  ASSERT_TRUE(captured.has_value()) << captured.error().message();
  ASSERT_TRUE(graph.has_value()) << graph.error().message();
  EXPECT_GE(graph->nodeCount(), 1u);
  ASSERT_TRUE(ctx->launch(*graph).has_value());
  ASSERT_TRUE(ctx->launch(*graph).has_value());
  ASSERT_TRUE(ctx->copyToHost(C.data(), dC, C.size() * sizeof(float), "C").has_value());
  ASSERT_TRUE(ctx->synchronize().has_value());
  for (size_t i = 0; i < C.size(); ++i) EXPECT_EQ(C[i], 2 * want[i]) << i;

  // The transposed-B form (a dense layer's x · Wᵀ with W stored [out, in]) gives the same.
  auto direct = ctx->gemmF32(false, true, m, n, k, 1.0f, dA, k, dBt, k, 0.0f, dC2, n, "A·Btᵀ");
  ASSERT_TRUE(direct.has_value()) << direct.error().message();
  ASSERT_TRUE(ctx->copyToHost(C.data(), dC2, C.size() * sizeof(float), "C2").has_value());
  ASSERT_TRUE(ctx->synchronize().has_value());
  for (size_t i = 0; i < C.size(); ++i) EXPECT_EQ(C[i], want[i]) << i;

  // Bad shapes come back as an error naming the product, not an abort.
  auto bad = ctx->gemmF32(false, false, m, n, k, 1.0f, dA, 0, dB, n, 0.0f, dC2, n, "bad lda");
  ASSERT_FALSE(bad.has_value());
  EXPECT_TRUE(bad.error().message().starts_with("cublasSgemm(bad lda, m=3 n=2 k=2): ")) << bad.error().message();

  ASSERT_TRUE(ctx->setTf32(true).has_value());
  EXPECT_TRUE(ctx->tf32());
  EXPECT_EQ(ctx->cublasUsesTf32().value_or(false), true);
  ASSERT_TRUE(ctx->setTf32(false).has_value());
  EXPECT_EQ(ctx->cublasUsesTf32().value_or(true), false);
}

#endif  // SHOAL_HAVE_CUDA

}  // namespace
}  // namespace shoal
