// A CPU emulator for generated CUDA modules, so CI (which has no GPU) checks every kernel's
// arithmetic, indexing and reductions against the interpreter. The generated source is
// compiled by the host C++ compiler against a small header that maps CUDA's built-ins to
// host code; each block runs its threads as cooperative fibers (fiber.h), so
// __syncthreads() is a real block barrier and __shfl_xor_sync a real warp exchange.
// Launch steps run in order over host memory laid out by the memory plan; GEMMs use the
// interpreter's gemm. What it cannot check: the CUDA runtime itself (module loading,
// launch limits, graph capture, cuBLAS) and memory-model races (threads run one at a time).
// The asynchronous copies and products (cp.async, wgmma) complete as late as the hardware
// allows, not when issued: a copy lands in shared memory when its thread waits for its group
// (cp.async.wait_group), a product reads its operands and adds into its accumulators when its
// thread waits for it (wgmma.wait_group). So a stage read before its copies were waited for, a
// slot overwritten while a product still reads it, or accumulators read before their product
// was waited for give wrong values here as they may on the card.
#pragma once

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "codegen/cuda_codegen.h"
#include "codegen/fiber.h"
#include "passes/program.h"
#include "runtime/cpu/interpreter.h"
#include "runtime/cpu/kernels.h"
#include "runtime/executable.h"
#include "test_util.h"

namespace shoal::test {

/// The host definitions of what the generated source uses from CUDA.
inline const char* kCudaEmulationHeader = R"(
#include <math.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
struct ShoalDim3 { unsigned x, y, z; };
extern "C" {
ShoalDim3 shoal_emu_blockIdx, shoal_emu_blockDim, shoal_emu_gridDim;
ShoalDim3* shoal_emu_threadIdx;
void (*shoal_emu_sync)();
unsigned long long (*shoal_emu_shfl)(unsigned long long bits, int laneMask);
void (*shoal_emu_bar)(int id, int count, int wait);
// Asynchronous work, completed when the thread waits for it (kind 0: cp.async copies, 1:
// wgmma products): a copy of srcBytes from src (none: src null) zero-filled to dstBytes, read
// now and written at completion; a deferred call run(ctx), ctx a copy of `bytes` bytes (a
// trivially copyable closure) kept by the emulator.
void (*shoal_emu_async_copy)(void* dst, const void* src, int srcBytes, int dstBytes);
void (*shoal_emu_async_defer)(void (*run)(void*), const void* ctx, int bytes, const unsigned long long* spans);
void (*shoal_emu_async_commit)(int kind);
void (*shoal_emu_async_wait)(int kind, int pending);
// mbarriers (op 0 init with `value` arrivals, 1 arrive expecting `value` more bytes, 2 wait for
// the phase of parity `value`) and the copy engine's boxes into shared memory completing on one
// (a tensor map's box at coords; im2col offsets ow, oh).
void (*shoal_emu_mbar)(int op, unsigned long long bar, unsigned value);
void (*shoal_emu_tma)(void* dst, const void* map, const int* coords, int ow, int oh, void* bar);
unsigned char* shoal_emu_dynamic_shared;
}
// Runs f (a trivially copyable callable of at most 256 bytes) when the thread next waits for its
// wgmma products; until then no copy may go into shared bytes [aLo, aHi) or [bLo, bHi) (what
// the product reads).
template <typename F>
void shoal_emu_later(const F& f, unsigned long long aLo, unsigned long long aHi, unsigned long long bLo,
                     unsigned long long bHi) {
  static_assert(sizeof(F) <= 256 && alignof(F) <= 16 && std::is_trivially_copyable<F>::value, "a deferred product");
  const unsigned long long spans[4] = {aLo, aHi, bLo, bHi};
  shoal_emu_async_defer([](void* p) { (*static_cast<F*>(p))(); }, &f, (int)sizeof(F), spans);
}
#define SHOAL_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(shoal_emu_dynamic_shared)
// A tensor map parameter: the emulator passes its own form's address (EmulatedTensorMap).
#define SHOAL_TMAP(name) const shoal_tensor_map& name
#define blockIdx shoal_emu_blockIdx
#define blockDim shoal_emu_blockDim
#define gridDim shoal_emu_gridDim
#define threadIdx (*shoal_emu_threadIdx)
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define isinf(x) std::isinf(x)
#define isfinite(x) std::isfinite(x)
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
inline void __syncthreads() { shoal_emu_sync(); }
inline void __threadfence() {}
template <typename T>
T __shfl_xor_sync(unsigned, T v, int laneMask) {
  unsigned long long bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = shoal_emu_shfl(bits, laneMask);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}
inline unsigned long long atomicMax(unsigned long long* p, unsigned long long v) {
  unsigned long long old = *p;
  if (v > old) *p = v;
  return old;
}
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }
inline long long __double_as_longlong(double d) { long long i; std::memcpy(&i, &d, 8); return i; }
inline unsigned int __float_as_uint(float f) { unsigned int u; std::memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned int u) { float f; std::memcpy(&f, &u, 4); return f; }
)";

/// The emulator's form of a tensor map (CudaTensorMap), what a kernel's SHOAL_TMAP parameter
/// refers to: the description and the address it was encoded over.
struct alignas(64) EmulatedTensorMap {
  const unsigned char* base = nullptr;
  const CudaTensorMap* desc = nullptr;
};

/// A generated module compiled for the host, with a fiber scheduler to run its kernels.
class EmulatedModule {
 public:
  /// Compiles `source` with the host compiler ($CXX, else c++); an error names the command
  /// and its output.
  static Expected<std::unique_ptr<EmulatedModule>> compile(const std::string& source, const std::string& name) {
    const std::string dir = tempDir();
    const std::string cpp = dir + "/" + name + ".cpp", so = dir + "/" + name + ".so";
    writeFile(cpp, std::string(kCudaEmulationHeader) + "\n#line 1 \"" + name + ".cu\"\n" + source);
    const char* cxx = std::getenv("CXX");
    std::string cmd = std::string(cxx && *cxx ? cxx : "c++") + " -std=c++17 -O1 -fno-strict-aliasing -fPIC -shared -w -o '" + so + "' '" +
                      cpp + "' 2>&1";
    CommandResult r = runShell(cmd);
    if (r.exitCode != 0) return fail("host compile failed: " + cmd + "\n" + r.out + r.err);
    std::unique_ptr<EmulatedModule> m(new EmulatedModule());
    m->handle_ = ::dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!m->handle_) return fail(std::string("dlopen: ") + ::dlerror());
    auto sym = [&](const char* s) { return ::dlsym(m->handle_, s); };
    m->blockIdx_ = static_cast<Dim3*>(sym("shoal_emu_blockIdx"));
    m->blockDim_ = static_cast<Dim3*>(sym("shoal_emu_blockDim"));
    m->gridDim_ = static_cast<Dim3*>(sym("shoal_emu_gridDim"));
    m->threadIdx_ = static_cast<Dim3**>(sym("shoal_emu_threadIdx"));
    m->dynamicSharedPtr_ = static_cast<unsigned char**>(sym("shoal_emu_dynamic_shared"));
    auto** syncFn = static_cast<void (**)()>(sym("shoal_emu_sync"));
    auto** shflFn = static_cast<unsigned long long (**)(unsigned long long, int)>(sym("shoal_emu_shfl"));
    auto** barFn = static_cast<void (**)(int, int, int)>(sym("shoal_emu_bar"));
    auto** copyFn = static_cast<void (**)(void*, const void*, int, int)>(sym("shoal_emu_async_copy"));
    auto** deferFn = static_cast<void (**)(void (*)(void*), const void*, int, const unsigned long long*)>(
        sym("shoal_emu_async_defer"));
    auto** commitFn = static_cast<void (**)(int)>(sym("shoal_emu_async_commit"));
    auto** waitFn = static_cast<void (**)(int, int)>(sym("shoal_emu_async_wait"));
    auto** mbarFn = static_cast<void (**)(int, unsigned long long, unsigned)>(sym("shoal_emu_mbar"));
    auto** tmaFn = static_cast<void (**)(void*, const void*, const int*, int, int, void*)>(sym("shoal_emu_tma"));
    if (!m->blockIdx_ || !m->threadIdx_ || !m->dynamicSharedPtr_ || !syncFn || !shflFn || !barFn || !copyFn ||
        !deferFn || !commitFn || !waitFn || !mbarFn || !tmaFn)
      return fail("emulation symbols missing");
    *syncFn = &EmulatedModule::syncThunk;
    *shflFn = &EmulatedModule::shflThunk;
    *barFn = &EmulatedModule::barThunk;
    *copyFn = &EmulatedModule::asyncCopyThunk;
    *deferFn = &EmulatedModule::asyncDeferThunk;
    *commitFn = &EmulatedModule::asyncCommitThunk;
    *waitFn = &EmulatedModule::asyncWaitThunk;
    *mbarFn = &EmulatedModule::mbarThunk;
    *tmaFn = &EmulatedModule::tmaThunk;
    return m;
  }
  ~EmulatedModule() {
    if (handle_) ::dlclose(handle_);
  }

  /// Runs kernel `name` over `grid` blocks of `block` threads with pointer arguments `args`
  /// and `sharedBytes` of dynamic shared memory (NaN bytes at the start of every block, so a
  /// read of an element no thread wrote shows). `barriers`: the kernel synchronizes or
  /// shuffles, so threads run as fibers (else one after another, much faster).
  Expected<void> launch(const std::string& name, unsigned gridX, unsigned gridY, unsigned block,
                        const std::vector<void*>& args, bool barriers, unsigned sharedBytes = 0) {
    void* fn = ::dlsym(handle_, name.c_str());
    if (!fn) return fail("no kernel '" + name + "' in the emulated module");
    if (args.size() > kMaxArgs) return fail("emulator: too many kernel arguments");
    fn_ = fn;
    args_ = args;
    *gridDim_ = {gridX, gridY, 1};
    *blockDim_ = {block, 1, 1};
    for (unsigned by = 0; by < gridY; ++by)
      for (unsigned bx = 0; bx < gridX; ++bx) {
        *blockIdx_ = {bx, by, 0};
        if (sharedBytes) {
          // 1024-byte aligned, as the device's (SHOAL_DYNAMIC_SHARED): wgmma's emulation
          // swizzles the addresses it reads, like the hardware.
          dynamicShared_.assign(sharedBytes + 1024, 0xff);
          const auto at = reinterpret_cast<uintptr_t>(dynamicShared_.data());
          *dynamicSharedPtr_ = dynamicShared_.data() + ((1024 - at % 1024) % 1024);
        }
        if (!barriers) {
          Dim3 tid{0, 0, 0};
          *threadIdx_ = &tid;
          current_ = nullptr;
          active() = this;
          barError_.clear();
          pendingReads_.n = 0;
          for (unsigned t = 0; t < block; ++t) {
            tid.x = t;
            call();
            if (auto ok = finishAsync(sequential_, t); !ok) return ok;
            if (!barError_.empty()) return fail(barError_);
          }
          continue;
        }
        if (auto ok = runBlockAsFibers(block); !ok) return ok;
      }
    return {};
  }

 private:
  struct Dim3 {
    unsigned x, y, z;
  };
  enum class FiberState { Run, Sync, Shfl, Bar, Mbar, Done };
  // A thread's asynchronous work (the emulation header's shoal_emu_async_*): copies read when
  // issued and written when waited for; deferred products run when waited for. Each kind's
  // issued work oldest first, and where each committed group ends in it (flat, so that a
  // thread's copies and products allocate nothing once its vectors have grown).
  struct Copy {
    unsigned char* dst;
    std::array<unsigned char, 16> bytes;
    int n;
  };
  struct Later {
    void (*run)(void*);
    std::array<unsigned long long, 4> spans;  // the shared bytes it reads: [lo, hi) twice
    alignas(16) std::array<unsigned char, 256> ctx;
  };
  // A growable array of trivially copyable T whose operations run on fibers without ASan frames
  // (SHOAL_FIBER_CODE: std::vector's out-of-line members would give every fiber a fake stack,
  // fiber.h) -- malloc, memcpy and memmove only.
  template <typename T>
  struct Flat {
    T* p = nullptr;
    size_t n = 0, cap = 0;
    Flat() = default;
    Flat(const Flat&) = delete;
    Flat& operator=(const Flat&) = delete;
    Flat(Flat&& o) noexcept : p(o.p), n(o.n), cap(o.cap) { o.p = nullptr, o.n = o.cap = 0; }
    ~Flat() { std::free(p); }
    SHOAL_FIBER_CODE T& push() {
      if (n == cap) {
        const size_t c = cap ? 2 * cap : 64;
        T* q = static_cast<T*>(std::malloc(c * sizeof(T)));
        if (!q) std::abort();
        if (n) std::memcpy(static_cast<void*>(q), p, n * sizeof(T));
        std::free(p);
        p = q, cap = c;
      }
      return p[n++];
    }
    SHOAL_FIBER_CODE void dropFront(size_t k) {
      if (k < n) std::memmove(static_cast<void*>(p), p + k, (n - k) * sizeof(T));
      n -= k;
    }
  };
  struct Async {
    Flat<Copy> copies;
    Flat<size_t> copyEnds;
    Flat<Later> products;
    Flat<size_t> productEnds;
  };
  // The shared bytes [lo, hi) that pending products read, and how many read them.
  struct Span {
    unsigned long long lo, hi;
    int count;
  };
  struct Fiber {
    fiber::Context ctx;
    std::vector<char> stack;
    Dim3 tid{0, 0, 0};
    FiberState state = FiberState::Run;
    unsigned long long shflValue = 0, shflResult = 0;
    int shflMask = 0;
    int barId = 0;  // the named barrier a Bar fiber waits at
    unsigned long long mbar = 0;  // the mbarrier a Mbar fiber waits at
    Async async;
  };
  // A named barrier (bar.arrive / bar.sync with an id and a thread count): its threads so far,
  // which ones (PTX: a warp must not arrive twice before the barrier resets), and the count they
  // named, 0 between generations.
  struct NamedBarrier {
    int arrived = 0, count = 0;
    std::vector<bool> in;
  };
  // An mbarrier (by its shared address): arrivals a phase, those still to come, the parity of
  // the phase under way, and the bytes it still waits for (expected less landed).
  struct Mbar {
    unsigned long long addr;
    unsigned expected, pending, phase;
    long long tx;
  };
  // A box of the copy engine issued, not yet landed: its chunks tmaChunks_[begin, end).
  struct Transfer {
    unsigned long long bar;
    size_t begin, end;
  };

  EmulatedModule() = default;

  // Kernels take only pointers: call `fn_` as a function of args_.size() void* parameters.
  static constexpr size_t kMaxArgs = 260;  // a horizontally fused update of 64 Adam params: 258
  template <size_t... I>
  SHOAL_FIBER_CODE static void callWith(void* fn, const std::vector<void*>& a, std::index_sequence<I...>) {
    using F = void (*)(decltype((void)I, static_cast<void*>(nullptr))...);
    reinterpret_cast<F>(fn)(a[I]...);
  }
  template <size_t N>
  SHOAL_FIBER_CODE static void callWithCount(void* fn, const std::vector<void*>& a) {
    callWith(fn, a, std::make_index_sequence<N>());
  }
  template <size_t... N>
  static constexpr auto callTable(std::index_sequence<N...>) {
    using Caller = void (*)(void*, const std::vector<void*>&);
    return std::array<Caller, sizeof...(N)>{&callWithCount<N>...};
  }
  SHOAL_FIBER_CODE void call() {
    static constexpr auto table = callTable(std::make_index_sequence<kMaxArgs + 1>());
    table[args_.size()](fn_, args_);
  }

  static EmulatedModule*& active() {
    static EmulatedModule* m = nullptr;
    return m;
  }
  SHOAL_FIBER_CODE static void fiberEntry() {
    EmulatedModule* m = active();
    fiber::started(m->scheduler_);
    m->call();
    landAll(m->current_->async);
    m->current_->state = FiberState::Done;
    fiber::swap(m->current_->ctx, m->scheduler_, /*exiting=*/true);
  }
  SHOAL_FIBER_CODE static void syncThunk() {
    EmulatedModule* m = active();
    if (!m || !m->current_) std::abort();  // a barrier in a kernel run without fibers
    Fiber* f = m->current_;
    f->state = FiberState::Sync;
    fiber::swap(f->ctx, m->scheduler_);
  }
  // bar.arrive (wait 0) or bar.sync (wait 1) on named barrier `id` of `count` threads: the
  // count-th thread completes the generation, releasing those that wait; a thread that waits
  // before then blocks. Every thread of a generation must name the same count.
  SHOAL_FIBER_CODE static void barThunk(int id, int count, int wait) {
    EmulatedModule* m = active();
    if (!m || !m->current_ || id <= 0 || id >= 16 || count <= 0 || count % 32 != 0) std::abort();
    NamedBarrier& b = m->bars_[id];
    if (b.count == 0) b.count = count;
    if (b.count != count) std::abort();  // threads of one generation named different counts
    const unsigned t = m->current_->tid.x;
    if (b.in.size() <= t) b.in.resize(m->fibers_.size(), false);
    if (b.in[t] && m->barError_.empty())
      m->barError_ = "emulator: thread " + std::to_string(t) + " arrived twice at named barrier " + std::to_string(id) +
                     " before it completed";
    b.in[t] = true;
    if (++b.arrived == count) {
      b = NamedBarrier{};
      for (Fiber& f : m->fibers_)
        if (f.state == FiberState::Bar && f.barId == id) f.state = FiberState::Run;
      return;
    }
    if (!wait) return;
    Fiber* f = m->current_;
    f->state = FiberState::Bar;
    f->barId = id;
    fiber::swap(f->ctx, m->scheduler_);
  }
  // The running thread's asynchronous work: its fiber's, or (threads run one after another)
  // the one being run.
  static Async& asyncState() {
    EmulatedModule* m = active();
    if (!m) std::abort();
    return m->current_ ? m->current_->async : m->sequential_;
  }
  SHOAL_FIBER_CODE static void asyncCopyThunk(void* dst, const void* src, int srcBytes, int dstBytes) {
    if (dstBytes <= 0 || dstBytes > 16 || srcBytes < 0 || srcBytes > dstBytes) std::abort();
    EmulatedModule* m = active();
    const auto at = reinterpret_cast<unsigned long long>(dst);
    for (size_t i = 0; i < m->pendingReads_.n; ++i) {
      const Span& r = m->pendingReads_.p[i];
      if (at < r.hi && at + unsigned(dstBytes) > r.lo) m->copyIntoPendingRead();
    }
    Copy& c = asyncState().copies.push();
    c.dst = static_cast<unsigned char*>(dst);
    c.n = dstBytes;
    std::memset(c.bytes.data(), 0, 16);
    if (src && srcBytes > 0) std::memcpy(c.bytes.data(), src, size_t(srcBytes));
  }
  // The error of a copy into what a pending product reads (the first one), off the fibers' path.
  void copyIntoPendingRead() {
    if (barError_.empty())
      barError_ = "emulator: thread " + std::to_string(current_ ? current_->tid.x : 0u) +
                  " copies into shared memory that a wgmma product not yet waited for reads";
  }
  SHOAL_FIBER_CODE static void asyncDeferThunk(void (*run)(void*), const void* ctx, int bytes,
                                               const unsigned long long* spans) {
    if (bytes <= 0 || bytes > 256) std::abort();
    Later& l = asyncState().products.push();
    l.run = run;
    for (int s = 0; s < 4; ++s) l.spans[s] = spans[s];
    std::memcpy(l.ctx.data(), ctx, size_t(bytes));
    active()->reading(l, +1);
  }
  // Counts (delta +1) or uncounts (-1) the shared bytes a pending product reads.
  SHOAL_FIBER_CODE void reading(const Later& l, int delta) {
    for (int s = 0; s < 4; s += 2) {
      if (l.spans[s] >= l.spans[s + 1]) continue;
      Flat<Span>& r = pendingReads_;
      size_t i = 0;
      while (i < r.n && (r.p[i].lo != l.spans[s] || r.p[i].hi != l.spans[s + 1])) ++i;
      if (i == r.n) {
        Span& added = r.push();
        added.lo = l.spans[s], added.hi = l.spans[s + 1], added.count = 0;
      }
      if ((r.p[i].count += delta) == 0) r.p[i] = r.p[--r.n];
    }
  }
  SHOAL_FIBER_CODE static void asyncCommitThunk(int kind) {
    Async& a = asyncState();
    if (kind == 0)
      a.copyEnds.push() = a.copies.n;
    else
      a.productEnds.push() = a.products.n;
  }
  // The groups of `ends` past the `keep` newest: their work's end in the issued work, and the
  // ends dropped and rebased.
  SHOAL_FIBER_CODE static size_t takeOldest(Flat<size_t>& ends, size_t keep) {
    if (ends.n <= keep) return 0;
    const size_t done = ends.n - keep, end = ends.p[done - 1];
    ends.dropFront(done);
    for (size_t i = 0; i < ends.n; ++i) ends.p[i] -= end;
    return end;
  }
  // Completes all but the `pending` newest committed groups of `kind` (PTX: the uncommitted
  // ones are not waited for).
  SHOAL_FIBER_CODE static void asyncWaitThunk(int kind, int pending) {
    Async& a = asyncState();
    const size_t keep = size_t(pending > 0 ? pending : 0);
    if (kind == 0) {
      const size_t end = takeOldest(a.copyEnds, keep);
      for (size_t i = 0; i < end; ++i)
        std::memcpy(a.copies.p[i].dst, a.copies.p[i].bytes.data(), size_t(a.copies.p[i].n));
      a.copies.dropFront(end);
    } else {
      const size_t end = takeOldest(a.productEnds, keep);
      EmulatedModule* m = active();
      for (size_t i = 0; i < end; ++i) {
        m->reading(a.products.p[i], -1);
        a.products.p[i].run(a.products.p[i].ctx.data());  // (no asynchronous work of its own)
      }
      a.products.dropFront(end);
    }
  }
  // At a thread's exit: its copies still in flight land (they complete on the card too); its
  // products never waited for are an error (their accumulators are gone, and the card's results
  // would be lost with them).
  SHOAL_FIBER_CODE static void landAll(Async& a) {
    for (size_t i = 0; i < a.copies.n; ++i)
      std::memcpy(a.copies.p[i].dst, a.copies.p[i].bytes.data(), size_t(a.copies.p[i].n));
    a.copies.n = 0;
    a.copyEnds.n = 0;
  }
  Expected<void> finishAsync(Async& a, unsigned thread) {
    landAll(a);
    const bool unwaited = a.products.n > 0;
    for (size_t i = 0; i < a.products.n; ++i) reading(a.products.p[i], -1);
    a.products.n = 0;
    a.productEnds.n = 0;
    if (unwaited)
      return fail("emulator: thread " + std::to_string(thread) + " exited with wgmma products it never waited for");
    return {};
  }
  // mbarriers: op 0 init for `value` arrivals; 1 arrive, the phase also waiting for `value` more
  // bytes; 2 wait until the phase of parity `value` has completed -- first landing the boxes
  // that complete on this barrier (the copy engine may finish them any time after they were
  // issued: here, as late as a thread waits).
  SHOAL_FIBER_CODE static void mbarThunk(int op, unsigned long long bar, unsigned value) {
    EmulatedModule* m = active();
    if (!m || bar % 8 != 0) std::abort();
    Mbar* b = m->findMbar(bar);
    if (op == 0) {
      if (!b) b = &m->mbars_.push();
      b->addr = bar, b->expected = b->pending = value, b->phase = 0, b->tx = 0;
      return;
    }
    if (!b) return m->mbarError("uses an mbarrier it never initialised");
    if (op == 1) {
      if (b->pending == 0) return m->mbarError("arrives at an mbarrier whose phase has all its arrivals");
      b->tx += value;
      --b->pending;
      m->completePhase(*b);
      return;
    }
    if (!m->current_) std::abort();  // (a kernel that waits runs as fibers: usesBarriers)
    m->landTransfers(bar);
    while (m->findMbar(bar)->phase == (value & 1u)) {
      Fiber* f = m->current_;
      f->state = FiberState::Mbar;
      f->mbar = bar;
      fiber::swap(f->ctx, m->scheduler_);
    }
  }
  // The copy engine's box of `map` at `coords` (im2col: at offsets ow, oh from each corner) into
  // shared memory at dst, 128-byte rows swizzled by their address as the card's 128-byte
  // swizzle (16-byte chunk bits 4-6 XOR address bits 7-9); read now, landed when a thread
  // waits at `bar` (which the box's bytes then complete).
  SHOAL_FIBER_CODE static void tmaThunk(void* dst, const void* mapp, const int* coords, int ow, int oh, void* bar) {
    EmulatedModule* m = active();
    const auto* map = static_cast<const EmulatedTensorMap*>(mapp);
    if (!m || !map || !map->desc) std::abort();
    const CudaTensorMap& d = *map->desc;
    const auto at = reinterpret_cast<unsigned long long>(dst);
    if (at % 128 != 0 || d.elementBytes * (d.im2col ? d.channels : d.box[0]) != 128) std::abort();
    Transfer& t = m->transfers_.push();
    t.bar = reinterpret_cast<unsigned long long>(bar);
    t.begin = m->tmaChunks_.n;
    const int eb = d.elementBytes, perRow = 128 / eb;
    unsigned char row[128];
    auto put = [&](int r) {
      for (int j = 0; j < 8; ++j) {
        unsigned long long a = at + (unsigned long long)r * 128 + j * 16;
        a ^= ((a >> 7) & 7ull) << 4;
        for (size_t i = 0; i < m->pendingReads_.n; ++i)
          if (a < m->pendingReads_.p[i].hi && a + 16 > m->pendingReads_.p[i].lo) m->copyIntoPendingRead();
        Copy& c = m->tmaChunks_.push();
        c.dst = reinterpret_cast<unsigned char*>(a);
        c.n = 16;
        std::memcpy(c.bytes.data(), row + j * 16, 16);
      }
    };
    if (!d.im2col) {
      for (int r = 0; r < d.box[1]; ++r) {
        const long long y = (long long)coords[1] + r;
        for (int e = 0; e < perRow; ++e) {
          const long long x = (long long)coords[0] + e;
          if (x >= 0 && x < d.dims[0] && y >= 0 && y < d.dims[1])
            std::memcpy(row + e * eb, map->base + y * d.strides[0] + x * eb, size_t(eb));
          else
            std::memset(row + e * eb, 0, size_t(eb));
        }
        put(r);
      }
    } else {
      long long w = coords[1], h = coords[2], n = coords[3];
      for (int r = 0; r < d.pixels; ++r) {
        const long long iw = w + ow, ih = h + oh;
        const bool inside = iw >= 0 && iw < d.dims[1] && ih >= 0 && ih < d.dims[2] && n >= 0 && n < d.dims[3];
        for (int e = 0; e < perRow; ++e) {
          const long long c = (long long)coords[0] + e;
          if (inside && c >= 0 && c < d.dims[0])
            std::memcpy(row + e * eb, map->base + n * d.strides[2] + ih * d.strides[1] + iw * d.strides[0] + c * eb,
                        size_t(eb));
          else
            std::memset(row + e * eb, 0, size_t(eb));
        }
        put(r);
        w += d.stride[0];
        if (w > d.dims[1] - 1 + d.upper[0]) {
          w = d.lower[0];
          h += d.stride[1];
          if (h > d.dims[2] - 1 + d.upper[1]) h = d.lower[1], ++n;
        }
      }
    }
    t.end = m->tmaChunks_.n;
  }
  Mbar* findMbar(unsigned long long addr) {
    for (size_t i = 0; i < mbars_.n; ++i)
      if (mbars_.p[i].addr == addr) return &mbars_.p[i];
    return nullptr;
  }
  void mbarError(const char* what) {
    if (barError_.empty())
      barError_ = "emulator: thread " + std::to_string(current_ ? current_->tid.x : 0u) + " " + what;
  }
  // A phase with all its arrivals and bytes completes: the next one begins and its waiters go on.
  SHOAL_FIBER_CODE void completePhase(Mbar& b) {
    if (b.pending != 0 || b.tx != 0) return;
    b.phase ^= 1u;
    b.pending = b.expected;
    for (Fiber& f : fibers_)
      if (f.state == FiberState::Mbar && f.mbar == b.addr) f.state = FiberState::Run;
  }
  // Lands the boxes that complete on `bar` (all of them for 0), each's bytes counted off its barrier.
  SHOAL_FIBER_CODE void landTransfers(unsigned long long bar) {
    size_t kept = 0;
    for (size_t i = 0; i < transfers_.n; ++i) {
      const Transfer t = transfers_.p[i];
      if (bar != 0 && t.bar != bar) {
        transfers_.p[kept++] = t;
        continue;
      }
      for (size_t c = t.begin; c < t.end; ++c) {
        const Copy& k = tmaChunks_.p[c];
        const auto a = reinterpret_cast<unsigned long long>(k.dst);
        for (size_t r = 0; r < pendingReads_.n; ++r)
          if (a < pendingReads_.p[r].hi && a + 16 > pendingReads_.p[r].lo) copyIntoPendingRead();
        std::memcpy(k.dst, k.bytes.data(), 16);
      }
      Mbar* b = findMbar(t.bar);
      if (!b) {
        mbarError("copies with an mbarrier never initialised");
        continue;
      }
      b->tx -= (long long)(t.end - t.begin) * 16;
      if (b->tx < 0) mbarError("lands copies of more bytes on an mbarrier than its phase expects");
      completePhase(*b);
    }
    transfers_.n = kept;
    if (kept == 0) tmaChunks_.n = 0;
  }
  SHOAL_FIBER_CODE static unsigned long long shflThunk(unsigned long long bits, int laneMask) {
    EmulatedModule* m = active();
    if (!m || !m->current_) std::abort();
    Fiber* f = m->current_;
    f->state = FiberState::Shfl;
    f->shflValue = bits;
    f->shflMask = laneMask;
    fiber::swap(f->ctx, m->scheduler_);
    return f->shflResult;
  }

  Expected<void> runBlockAsFibers(unsigned block) {
    active() = this;
    bars_ = {};
    mbars_.n = transfers_.n = tmaChunks_.n = 0;
    barError_.clear();
    fibers_.resize(block);
    for (unsigned t = 0; t < block; ++t) {
      Fiber& f = fibers_[t];
      f.stack.resize(1 << 17);
      f.tid = {t, 0, 0};
      f.state = FiberState::Run;
      f.async.copies.n = f.async.copyEnds.n = 0;  // (what a launch that failed left)
      f.async.products.n = f.async.productEnds.n = 0;
      pendingReads_.n = 0;
      fiber::make(f.ctx, f.stack.data(), f.stack.size(), &EmulatedModule::fiberEntry);
    }
    for (;;) {
      for (Fiber& f : fibers_) {
        if (f.state != FiberState::Run) continue;
        current_ = &f;
        *threadIdx_ = &f.tid;
        fiber::swap(scheduler_, f.ctx);
      }
      current_ = nullptr;
      bool anyLive = false, allSync = true, anyRun = false;
      for (Fiber& f : fibers_) {
        if (f.state == FiberState::Done) continue;
        anyLive = true;
        allSync &= f.state == FiberState::Sync;
        anyRun |= f.state == FiberState::Run;  // released at a named barrier after its turn
      }
      if (!anyLive) {
        landTransfers(0);  // (the card finishes them too)
        for (unsigned t = 0; t < block; ++t)
          if (auto ok = finishAsync(fibers_[t].async, t); !ok && barError_.empty()) barError_ = ok.error().message();
        if (!barError_.empty()) return fail(barError_);
        for (const NamedBarrier& b : bars_)
          if (b.arrived != 0) return fail("emulator: a named barrier's generation was left incomplete");
        return {};
      }
      if (anyRun) continue;
      // Every thread waits: the copy engine's boxes in flight land (their mbarriers' phases may
      // complete and release their waiters).
      if (transfers_.n > 0) {
        landTransfers(0);
        continue;
      }
      if (allSync) {
        for (Fiber& f : fibers_)
          if (f.state == FiberState::Sync) f.state = FiberState::Run;
        continue;
      }
      bool released = false;
      for (unsigned w = 0; w * 32 < block; ++w) {
        bool all = true, some = false;
        for (unsigned l = 0; l < 32 && w * 32 + l < block; ++l) {
          const Fiber& f = fibers_[w * 32 + l];
          if (f.state == FiberState::Done) continue;
          some = true;
          all &= f.state == FiberState::Shfl;
        }
        if (!some || !all) continue;
        for (unsigned l = 0; l < 32 && w * 32 + l < block; ++l) {
          Fiber& f = fibers_[w * 32 + l];
          if (f.state != FiberState::Shfl) continue;
          const Fiber& partner = fibers_[w * 32 + (l ^ unsigned(f.shflMask))];
          if (partner.state != FiberState::Shfl) return fail("emulator: a shuffle partner has exited");
          f.shflResult = partner.shflValue;
        }
        for (unsigned l = 0; l < 32 && w * 32 + l < block; ++l)
          if (fibers_[w * 32 + l].state == FiberState::Shfl) fibers_[w * 32 + l].state = FiberState::Run;
        released = true;
      }
      bool atMbar = false;
      for (const Fiber& f : fibers_) atMbar |= f.state == FiberState::Mbar;
      if (!released)
        return fail(!barError_.empty() ? barError_
                    : atMbar ? "emulator: threads wait at an mbarrier whose phase never completes (arrivals or "
                               "bytes missing)"
                             : "emulator: threads wait at different barriers (divergent __syncthreads or shuffle)");
    }
  }

  void* handle_ = nullptr;
  Dim3* blockIdx_ = nullptr;
  Dim3* blockDim_ = nullptr;
  Dim3* gridDim_ = nullptr;
  Dim3** threadIdx_ = nullptr;
  unsigned char** dynamicSharedPtr_ = nullptr;  // the module's shoal_emu_dynamic_shared
  std::vector<unsigned char> dynamicShared_;
  void* fn_ = nullptr;
  std::vector<void*> args_;
  fiber::Context scheduler_;
  std::vector<Fiber> fibers_;
  std::array<NamedBarrier, 16> bars_{};
  std::string barError_;
  Fiber* current_ = nullptr;
  Async sequential_;  // the asynchronous work of a thread run without fibers
  Flat<Span> pendingReads_;  // the block's pending wgmma products' reads
  Flat<Mbar> mbars_;         // the block's mbarriers
  Flat<Transfer> transfers_;  // its copy engine's boxes in flight
  Flat<Copy> tmaChunks_;      // and their 16-byte chunks
};

/// A region of emulated device memory followed by a guard: kGuardBytes of a known pattern,
/// checked after every step, so a kernel that writes past the region's end fails the run
/// naming itself instead of corrupting the host's heap (writes further out still crash).
/// The pattern's bytes are all ones: NaN as every float, bfloat16 and half, so a kernel that
/// reads past the region -- even a value it multiplies by zero, as a gather's zero-filled
/// element meets the operand read beside it -- makes its outputs NaN and fails the comparison
/// with the interpreter, where a finite pattern passed unseen (a 32-step stage read 16 steps
/// past the packed weights: caught so on the emulator after compute-sanitizer caught it on
/// the H200, docs/PERF.md 2026-12-04).
class GuardedRegion {
 public:
  static constexpr size_t kGuardBytes = 4096;
  static constexpr unsigned char kPattern = 0xFF;
  /// `bytes` of zeros, then the guard.
  void assign(size_t bytes) {
    bytes_ = bytes;
    words_.assign((bytes + kGuardBytes + 7) / 8, 0);  // 8-byte words: the region 16-byte aligned
    std::memset(data() + bytes, kPattern, words_.size() * 8 - bytes);
  }
  char* data() { return reinterpret_cast<char*>(words_.data()); }
  size_t bytes() const { return bytes_; }
  /// The offset past the end of the first guard byte a kernel changed, or -1.
  int64_t firstDamaged() const {
    const auto* p = reinterpret_cast<const unsigned char*>(words_.data());
    for (size_t i = bytes_; i < words_.size() * 8; ++i)
      if (p[i] != kPattern) return int64_t(i - bytes_);
    return -1;
  }

 private:
  std::vector<uint64_t> words_;
  size_t bytes_ = 0;
};

/// A Program run step by step on the emulator over host memory laid out by its plan: the
/// GPU executor's work, minus the CUDA runtime.
class EmulatedExecutable {
 public:
  static Expected<std::unique_ptr<EmulatedExecutable>> create(const Program& program,
                                                               const CudaCodegenOptions& options = {}) {
    auto src = generateCudaSource(program, options);
    if (!src) return Unexpected(src.error());
    auto module = EmulatedModule::compile(src->source, src->name);
    if (!module) return Unexpected(module.error());
    std::unique_ptr<EmulatedExecutable> e(new EmulatedExecutable(program));
    e->src_ = std::move(*src);
    e->module_ = std::move(*module);
    e->arena_.assign(size_t(program.plan.arenaBytes));
    e->persistent_.assign(size_t(program.plan.persistentBytes));
    e->scratch_.assign(size_t(e->src_.scratchBytes));
    e->prepared_.assign(size_t(e->src_.preparedBytes));
    e->converted_.assign(size_t(e->src_.convertedBytes));
    e->status_.assign(size_t(e->src_.statusWords()), 0);
    return e;
  }

  const CudaModuleSource& module() const { return src_; }
  /// Runs that began with the `prepare` steps (the first, and the first after each writePersistent).
  int prepareRuns() const { return prepareRuns_; }
  /// The ranks all_reduce steps combine over (as CudaExecutable's communicator).
  void setCommunicator(std::shared_ptr<Communicator> comm) { comm_ = std::move(comm); }

  /// Copies params and state in, by value name.
  void writePersistent(const TensorMap& values) {
    preparedStale_ = true;  // as the executor's generation moves on
    for (const Node* n : program_.graph->nodes()) {
      if (!isPersistentSource(n->kind())) continue;
      auto it = values.find(n->result()->name());
      if (it != values.end()) std::memcpy(address(n->result()), it->second.raw(), it->second.byteSize());
    }
  }
  TensorMap readPersistent() {
    TensorMap out;
    for (const Node* n : program_.graph->nodes()) {
      if (!isPersistentSource(n->kind())) continue;
      Tensor t(n->result()->type());
      std::memcpy(t.raw(), address(n->result()), t.byteSize());
      out[n->result()->name()] = t;
    }
    return out;
  }

  Expected<TensorMap> run(const TensorMap& inputs) {
    for (const Node* n : program_.graph->inputNodes()) {
      const Tensor& t = inputs.at(n->attrs().getString("name"));
      Tensor dst = Tensor::view(n->result()->type(), address(n->result()));
      for (int64_t i = 0; i < t.numElements(); ++i) dst.set(i, t.at(i));
    }
    std::fill(status_.begin(), status_.end(), 0);
    // The executor's order: the `prepare` steps first, and only when the params changed since
    // they last ran; then the step without them.
    std::vector<const CudaStep*> order;
    if (preparedStale_)
      for (const CudaStep& s : src_.steps)
        if (s.prepare) order.push_back(&s);
    if (!order.empty()) ++prepareRuns_;
    preparedStale_ = false;
    for (const CudaStep& s : src_.steps)
      if (!s.prepare) order.push_back(&s);
    for (const CudaStep* step : order) {
      const CudaStep& s = *step;
      auto resolve = [&](const CudaArg& a) -> void* {
        switch (a.kind) {
          case CudaArgKind::Value: return address(a.value);
          case CudaArgKind::Scratch: return scratch_.data();
          case CudaArgKind::Status: return status_.data();
          case CudaArgKind::Prepared: return prepared_.data() + a.offset;
          case CudaArgKind::Converted:
            return converted_.data() + a.offset;
        }
        return nullptr;
      };
      switch (s.kind) {
        case CudaStepKind::Kernel: {
          std::vector<void*> args;
          for (const CudaArg& a : s.args) args.push_back(resolve(a));
          // Its tensor maps, after the pointers: the emulator's form over the bound addresses.
          std::vector<EmulatedTensorMap> maps(s.tensorMaps.size());
          for (size_t i = 0; i < maps.size(); ++i) {
            const CudaTensorMap& d = s.tensorMaps[i];
            maps[i].base = static_cast<const unsigned char*>(args.at(size_t(d.baseArg))) + d.offset;
            maps[i].desc = &d;
            if (reinterpret_cast<uintptr_t>(maps[i].base) % 16 != 0)
              return fail("emulator: tensor map " + d.name + " of " + s.kernel + " is not 16-byte aligned");
          }
          for (EmulatedTensorMap& m : maps) args.push_back(&m);
          if (auto ok = module_->launch(s.kernel, s.grid[0], s.grid[1], s.block, args, usesBarriers(s.kernel),
                                            s.sharedBytes);
              !ok)
            return Unexpected(ok.error());
          break;
        }
        case CudaStepKind::Gemm: {
          // cuBLAS's strided-batched semantics: product i at offset + i * stride of each buffer.
          const CudaGemmCall& g = s.gemm;
          for (int i = 0; i < g.batch; ++i) {
            if (g.dtype == DType::F64)
              cpu::gemm<double>(g.transA, g.transB, g.m, g.n, g.k, g.alpha,
                                static_cast<const double*>(resolve(g.a)) + g.offsetA + i * g.strideA,
                                static_cast<const double*>(resolve(g.b)) + g.offsetB + i * g.strideB, g.beta,
                                static_cast<double*>(resolve(g.c)) + g.offsetC + i * g.strideC);
            else
              cpu::gemm<float>(g.transA, g.transB, g.m, g.n, g.k, float(g.alpha),
                               static_cast<const float*>(resolve(g.a)) + g.offsetA + i * g.strideA,
                               static_cast<const float*>(resolve(g.b)) + g.offsetB + i * g.strideB, float(g.beta),
                               static_cast<float*>(resolve(g.c)) + g.offsetC + i * g.strideC);
          }
          if (g.hasEpilogue()) {  // cuBLASLt's epilogue (beta 0, one product): + bias[j], then relu
            float* c = static_cast<float*>(resolve(g.c)) + g.offsetC;
            const float* bias = g.bias.value ? static_cast<const float*>(resolve(g.bias)) : nullptr;
            for (int i = 0; i < g.m; ++i)
              for (int j = 0; j < g.n; ++j) {
                float& v = c[int64_t(i) * g.ldc + j];
                if (bias) v += bias[j];
                if (g.activation == "relu") v = v > 0.0f ? v : 0.0f;
              }
          }
          break;
        }
        case CudaStepKind::Copy: {
          void* from = resolve(s.args[0]);
          void* to = resolve(s.args[1]);
          if (from != to) std::memmove(to, from, size_t(s.bytes));
          break;
        }
        case CudaStepKind::AllReduce: {
          void* from = resolve(s.args[0]);
          void* to = resolve(s.args[1]);
          if (from != to) std::memmove(to, from, size_t(s.bytes));
          const TensorType& t = s.node->result()->type();
          if (!comm_) {
            if (s.node->attrs().getInt("ranks") != 1) return fail("emulator: all_reduce over several ranks needs a communicator");
            break;
          }
          auto op = parseReduceKind(s.node->attrs().getString("op"));
          if (auto ok = comm_->allReduceHost(to, t.dtype, t.numElements(), *op); !ok) return Unexpected(ok.error());
          break;
        }
        case CudaStepKind::Constant: {
          const TensorLiteral& lit = s.node->attrs().getTensor("value");
          // (Into its prepared block where prepare steps read it: CudaModuleSource::hoisted.)
          Tensor dst = Tensor::view(s.node->result()->type(), resolve(s.args[0]));
          for (int64_t i = 0; i < dst.numElements(); ++i) dst.set(i, lit.values[size_t(i)]);
          break;
        }
      }
      for (const auto& [region, name] : {std::pair<const GuardedRegion*, const char*>{&arena_, "arena"},
                                         {&persistent_, "persistent region"},
                                         {&scratch_, "scratch"},
                                         {&prepared_, "prepared region"},
                                         {&converted_, "converted region"}})
        if (const int64_t at = region->firstDamaged(); at >= 0)
          return fail("emulator: " + (s.kind == CudaStepKind::Kernel ? "kernel '" + s.kernel + "'" : s.node->describe()) +
                      " of " + s.node->describe() + " wrote past the end of the " + name + " (" +
                      std::to_string(region->bytes()) + " bytes): byte " + std::to_string(at) + " after it");
    }
    if (auto ok = checkCudaStatus(src_, status_.data()); !ok) return Unexpected(ok.error());
    TensorMap out;
    for (const Node* n : program_.graph->outputNodes()) {
      Tensor t(n->input(0)->type());
      std::memcpy(t.raw(), address(n->input(0)), t.byteSize());
      out[n->attrs().getString("name")] = t;
    }
    return out;
  }

 private:
  explicit EmulatedExecutable(const Program& p) : program_(p) {}

  void* address(const Value* v) {
    const BufferAssignment& a = program_.plan.at(v);
    return (a.persistent ? persistent_.data() : arena_.data()) + a.offset;
  }
  // Whether kernel `name`'s text synchronizes threads (block or warp); a grouped launch's
  // kernel does when one of the bodies it calls does.
  bool usesBarriers(const std::string& name) const {
    size_t at = src_.source.find(" " + name + "(");
    size_t end = src_.source.find("\n}\n", at);
    std::string body = src_.source.substr(at, end == std::string::npos ? std::string::npos : end - at);
    for (const char* s : {"__syncthreads", "__shfl", "shoal_warp_", "shoal_block_sum", "shoal_bar_", "shoal_mbar_"})
      if (body.find(s) != std::string::npos) return true;
    for (size_t call = 0; (call = body.find("_body(", call)) != std::string::npos; ++call) {
      size_t begin = body.find_last_of(" \n", call) + 1;
      const std::string part = body.substr(begin, call - begin);
      if (part + "_body" != name && usesBarriers(part + "_body")) return true;
    }
    return false;
  }

  const Program& program_;
  CudaModuleSource src_;
  std::unique_ptr<EmulatedModule> module_;
  GuardedRegion arena_, persistent_, scratch_, prepared_, converted_;
  std::vector<uint64_t> status_;
  bool preparedStale_ = true;
  int prepareRuns_ = 0;
  std::shared_ptr<Communicator> comm_;
};

/// One graph compiled twice (default options): for the interpreter and for the emulated GPU
/// module, to run the same feeds through both.
struct CpuAndEmulated {
  std::unique_ptr<Program> program;  ///< the emulator's (it keeps a reference)
  std::unique_ptr<CpuExecutable> cpu;
  std::unique_ptr<EmulatedExecutable> emu;
};

inline Expected<CpuAndEmulated> cpuAndEmulated(const Graph& g, const CudaCodegenOptions& options = {}) {
  auto forCpu = compileProgram(g.clone());
  if (!forCpu) return Unexpected(forCpu.error());
  auto forEmu = compileProgram(g.clone());
  if (!forEmu) return Unexpected(forEmu.error());
  CpuAndEmulated out;
  out.program = std::make_unique<Program>(std::move(*forEmu));
  auto cpu = CpuExecutable::create(std::move(*forCpu));
  if (!cpu) return Unexpected(cpu.error());
  auto emu = EmulatedExecutable::create(*out.program, options);
  if (!emu) return Unexpected(emu.error());
  out.cpu = std::move(*cpu);
  out.emu = std::move(*emu);
  return out;
}

}  // namespace shoal::test
