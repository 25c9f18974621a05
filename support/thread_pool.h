// A small fixed-size thread pool for the CPU kernels: parallelFor over an index range, the
// caller taking part. One pool per process, sized by --threads / SessionOptions::threads
// (default: the cores this process may run on).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace shoal {

class ThreadPool {
 public:
  /// A pool of `threads` threads in all: threads - 1 workers plus the caller of parallelFor.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return int(workers_.size()) + 1; }

  /// Calls fn(begin, end) for consecutive chunks covering [0, n), each at least `grain`
  /// indices long (the last may be shorter), on the pool's threads and the caller, and
  /// returns when every chunk is done. The chunks depend on n and grain only, never on the
  /// number of threads, so a kernel that combines per-chunk results in chunk order gives the
  /// same bits with 1 or 16 threads. Runs inline when there is one chunk or one thread, when
  /// called from inside another parallelFor (no nested parallelism), and when another thread
  /// is using the pool (two sessions on two threads never wait for each other's work). An
  /// exception thrown by a chunk is rethrown here after every chunk has finished.
  void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

  /// The number of chunks parallelFor(n, grain, ...) makes.
  static int64_t chunkCount(int64_t n, int64_t grain);

 private:
  void workerLoop();
  /// Claims and runs chunks of the job in flight until none is left (called with mutex_ held).
  void runChunks(std::unique_lock<std::mutex>& lock);
  /// Busy-waits while condition() holds, at most spinMicroseconds_.
  template <typename Condition>
  void spinWhile(Condition condition);
  /// How long a thread spins before sleeping: 50 µs, or $SHOAL_POOL_SPIN_US.
  int64_t spinMicroseconds_ = 50;

  std::vector<std::thread> workers_;
  std::mutex busy_;  ///< held by the caller whose job is in flight
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  // The job in flight: chunks are claimed by index under the mutex.
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t n_ = 0, grain_ = 1, chunks_ = 0, nextChunk_ = 0, finished_ = 0;
  std::exception_ptr error_;  ///< the first exception a chunk of the job threw
  // Written under mutex_, also read without it by spinning threads.
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> pending_{0};  ///< chunks of the job not finished yet
  std::atomic<bool> stop_{false};
};

/// The number of threads the CPU kernels use by default: the CPUs this process may run on.
int defaultCpuThreads();
/// Sets the CPU kernels' thread count (>= 1). The pool is replaced only when the count
/// changes; a parallelFor in flight keeps the pool it started on.
void setCpuThreads(int threads);
/// The CPU kernels' thread count now (the pool's size).
int cpuThreads();
/// The pool the CPU kernels use (kept alive by the returned pointer).
std::shared_ptr<ThreadPool> cpuPool();

/// cpuPool()->parallelFor(n, grain, fn): what the kernels call.
void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

/// A grain for `n` elementwise items of roughly `costPerItem` simple operations each: chunks
/// of about 32K operations (a few microseconds), so small tensors run inline and a thread's
/// wake-up is paid only where it buys more. Depends on n and the cost only (determinism).
int64_t grainFor(int64_t costPerItem);

}  // namespace shoal
