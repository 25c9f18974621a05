// Setting shoal's and BLAS's thread counts together.
#include "runtime/cpu/cpu_threads.h"

#include <dlfcn.h>

#include <atomic>
#include <mutex>

#include "support/thread_pool.h"

namespace shoal::cpu {

namespace {

using SetThreadsFn = void (*)(int);

// OpenBLAS's setter, looked up in the running process rather than declared, so a build
// against another BLAS (FindBLAS's fallback) links and runs; null without OpenBLAS.
SetThreadsFn blasSetter() {
  static SetThreadsFn fn = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  return fn;
}

std::mutex applyMutex;
std::atomic<int> applied{0};  // the count last applied (0: never)

}  // namespace

bool blasThreadsSettable() { return blasSetter() != nullptr; }

void useCpuThreads(int threads) {
  if (threads <= 0) threads = defaultCpuThreads();
  // (cpuThreads() too: a test may have resized the pool directly.)
  if (applied.load(std::memory_order_acquire) == threads && cpuThreads() == threads) return;
  std::lock_guard<std::mutex> lock(applyMutex);
  setCpuThreads(threads);
  // BLAS itself stays single-threaded: shoal cuts large products into tasks for its own pool
  // (cpu::gemm), so the pool's `threads` do all the work and the bits do not depend on them.
  if (SetThreadsFn set = blasSetter()) set(1);
  applied.store(threads, std::memory_order_release);
}

}  // namespace shoal::cpu
