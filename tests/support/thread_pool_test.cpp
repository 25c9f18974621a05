// The CPU thread pool: every index visited once, chunking independent of the thread count,
// nested calls run inline, many jobs in a row.
#include "support/thread_pool.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace shoal {
namespace {

TEST(ThreadPool, EveryIndexOnceInChunksOfTheGrain) {
  for (int threads : {1, 2, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.threads(), threads);
    for (int64_t n : {0, 1, 7, 100, 1001}) {
      std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
      std::mutex m;
      std::set<std::pair<int64_t, int64_t>> chunks;
      pool.parallelFor(n, 10, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) ++seen[size_t(i)];
        std::lock_guard<std::mutex> lock(m);
        chunks.insert({b, e});
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(seen[size_t(i)].load(), 1) << "n " << n << " index " << i;
      EXPECT_EQ(int64_t(chunks.size()), ThreadPool::chunkCount(n, 10));
      for (auto [b, e] : chunks) {
        EXPECT_EQ(b % 10, 0);
        EXPECT_EQ(e, std::min<int64_t>(n, b + 10));
      }
    }
  }
}

// Per-chunk partial sums combined in chunk order: the same bits whatever the thread count.
double chunkedSum(ThreadPool& pool, const std::vector<double>& x) {
  std::vector<double> partial(size_t(ThreadPool::chunkCount(int64_t(x.size()), 37)), 0.0);
  pool.parallelFor(int64_t(x.size()), 37, [&](int64_t b, int64_t e) {
    double s = 0;
    for (int64_t i = b; i < e; ++i) s += x[size_t(i)];
    partial[size_t(b / 37)] = s;
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

TEST(ThreadPool, ChunkedReductionsAreBitwiseIndependentOfThreads) {
  std::vector<double> x(10007);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 1.0 / double(i + 1) * (i % 3 ? 1 : -1.7);
  ThreadPool one(1), four(4);
  EXPECT_EQ(chunkedSum(one, x), chunkedSum(four, x));
}

TEST(ThreadPool, NestedCallsRunInlineAndJobsFollowEachOther) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  for (int job = 0; job < 200; ++job)
    pool.parallelFor(8, 1, [&](int64_t b, int64_t e) {
      pool.parallelFor(4, 1, [&](int64_t b2, int64_t e2) { total += (e - b) * (e2 - b2); });
    });
  EXPECT_EQ(total.load(), 200 * 8 * 4);
}

TEST(ThreadPool, TheCpuPoolFollowsSetCpuThreads) {
  int before = cpuThreads();
  setCpuThreads(3);
  EXPECT_EQ(cpuPool()->threads(), 3);
  EXPECT_EQ(cpuThreads(), 3);
  setCpuThreads(1);
  EXPECT_EQ(cpuPool()->threads(), 1);
  EXPECT_GE(defaultCpuThreads(), 1);
  setCpuThreads(before);
}

// Two threads using one pool at once: the second runs its job inline, both complete.
TEST(ThreadPool, ConcurrentCallersBothFinish) {
  ThreadPool pool(3);
  std::atomic<int64_t> a{0}, b{0};
  std::thread other([&] {
    for (int job = 0; job < 100; ++job) pool.parallelFor(64, 4, [&](int64_t s, int64_t e) { a += e - s; });
  });
  for (int job = 0; job < 100; ++job) pool.parallelFor(64, 4, [&](int64_t s, int64_t e) { b += e - s; });
  other.join();
  EXPECT_EQ(a.load(), 100 * 64);
  EXPECT_EQ(b.load(), 100 * 64);
}

// A forked child (shoal conformance isolates cases so) has none of the parent's workers: it
// makes a pool of its own, whose workers share the work (the parent's pool would leave it all
// to the caller, or wait for workers that do not exist).
TEST(ThreadPool, AForkedChildMakesItsOwnPool) {
  int before = cpuThreads();
  setCpuThreads(3);
  std::atomic<int64_t> sum{0};
  parallelFor(1000, 10, [&](int64_t b, int64_t e) { sum += e - b; });
  ASSERT_EQ(sum.load(), 1000);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(20);  // a hang ends the child with SIGALRM: the test fails instead of hanging
    std::atomic<int64_t> childSum{0};
    std::mutex m;
    std::set<std::thread::id> ids;
    setCpuThreads(3);
    parallelFor(40, 1, [&](int64_t b, int64_t e) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      childSum += e - b;
      std::lock_guard<std::mutex> lock(m);
      ids.insert(std::this_thread::get_id());
    });
    _exit(childSum.load() == 40 && ids.size() > 1 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  setCpuThreads(before);
}

}  // namespace
}  // namespace shoal
