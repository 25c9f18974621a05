// The CPU kernels' thread pool.
#include "support/thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <utility>

namespace shoal {

namespace {
thread_local bool insideParallelFor = false;
}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (const char* spin = std::getenv("SHOAL_POOL_SPIN_US"); spin && *spin)
    spinMicroseconds_ = std::max(0L, std::atol(spin));
  for (int i = 1; i < std::max(threads, 1); ++i) workers_.emplace_back([this] { workerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

int64_t ThreadPool::chunkCount(int64_t n, int64_t grain) {
  if (n <= 0) return 0;
  grain = std::max<int64_t>(grain, 1);
  return (n + grain - 1) / grain;
}

void ThreadPool::parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t chunks = chunkCount(n, grain);
  if (chunks == 0) return;
  grain = std::max<int64_t>(grain, 1);
  std::unique_lock<std::mutex> busy(busy_, std::defer_lock);
  if (chunks == 1 || workers_.empty() || insideParallelFor || !busy.try_lock()) {
    for (int64_t c = 0; c < chunks; ++c) fn(c * grain, std::min(n, (c + 1) * grain));
    return;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  job_ = &fn;
  n_ = n, grain_ = grain, chunks_ = chunks, nextChunk_ = 0, finished_ = 0;
  error_ = nullptr;
  pending_.store(chunks, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  wake_.notify_all();
  // The caller works too.
  insideParallelFor = true;
  runChunks(lock);
  insideParallelFor = false;
  if (finished_ != chunks_) {
    // The last chunks are usually microseconds from done: spin a little before sleeping.
    lock.unlock();
    spinWhile([&] { return pending_.load(std::memory_order_acquire) != 0; });
    lock.lock();
  }
  done_.wait(lock, [&] { return finished_ == chunks_; });
  job_ = nullptr;
  if (error_) {
    std::exception_ptr e = std::exchange(error_, nullptr);
    std::rethrow_exception(e);  // the first chunk's exception (e.g. bad_alloc of a kernel's scratch)
  }
}

void ThreadPool::runChunks(std::unique_lock<std::mutex>& lock) {
  while (job_ && nextChunk_ < chunks_) {
    int64_t c = nextChunk_++;
    const auto* fn = job_;
    int64_t n = n_, grain = grain_;
    lock.unlock();
    std::exception_ptr error;
    try {
      (*fn)(c * grain, std::min(n, (c + 1) * grain));
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (error && !error_) error_ = error;
    pending_.fetch_sub(1, std::memory_order_release);
    if (++finished_ == chunks_) done_.notify_one();
  }
}

void ThreadPool::workerLoop() {
  insideParallelFor = true;  // a kernel running on a worker never fans out again
  uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    // A step's kernels follow each other within microseconds: spin a little for the next job
    // before sleeping, so most jobs find their workers awake.
    lock.unlock();
    spinWhile(
        [&] { return generation_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_relaxed); });
    lock.lock();
    wake_.wait(lock, [&] { return stop_ || (job_ && generation_ != seen); });
    if (stop_) return;
    seen = generation_;
    runChunks(lock);
  }
}

template <typename Condition>
void ThreadPool::spinWhile(Condition condition) {
  if (spinMicroseconds_ <= 0) return;
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spinMicroseconds_);
  while (condition()) {
    for (int i = 0; i < 64; ++i) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (std::chrono::steady_clock::now() >= until) return;
  }
}

int defaultCpuThreads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

namespace {
std::mutex poolMutex;
std::shared_ptr<ThreadPool>& poolSlot() {
  static std::shared_ptr<ThreadPool> pool;
  return pool;
}

// A child of fork() has only the thread that forked: the parent's workers do not exist
// there, so a parallelFor would wait for them forever. The child forgets the pool (kept, never
// destroyed: its destructor would join the missing threads) and makes a new one on first use.
// (`shoal conformance` runs each case in a forked child.)
std::shared_ptr<ThreadPool>* parentPool = nullptr;
void forgetPoolInChild() { parentPool = new std::shared_ptr<ThreadPool>(std::move(poolSlot())); }
[[maybe_unused]] const int forkHandlerRegistered = pthread_atfork(nullptr, nullptr, forgetPoolInChild);
}  // namespace

void setCpuThreads(int threads) {
  std::lock_guard<std::mutex> lock(poolMutex);
  threads = std::max(threads, 1);
  auto& pool = poolSlot();
  if (!pool || pool->threads() != threads) pool = std::make_shared<ThreadPool>(threads);
}

std::shared_ptr<ThreadPool> cpuPool() {
  std::lock_guard<std::mutex> lock(poolMutex);
  auto& pool = poolSlot();
  if (!pool) pool = std::make_shared<ThreadPool>(defaultCpuThreads());
  return pool;
}

int cpuThreads() { return cpuPool()->threads(); }

void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (ThreadPool::chunkCount(n, grain) <= 1) {  // no pool look-up (and no lock) for small work
    if (n > 0) fn(0, n);
    return;
  }
  cpuPool()->parallelFor(n, grain, fn);
}

int64_t grainFor(int64_t costPerItem) {
  constexpr int64_t kChunkWork = 32768;
  return std::max<int64_t>(1, kChunkWork / std::max<int64_t>(costPerItem, 1));
}

}  // namespace shoal
