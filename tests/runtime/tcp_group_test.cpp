// The TCP rendezvous of multi-process data parallelism, with real sockets on 127.0.0.1 (the
// ranks are threads here): joining, host collectives, clear errors for a wrong world size, an
// unreachable or incomplete rendezvous, and the watchdog noticing a rank that vanished.
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "runtime/distributed/launcher.h"
#include "runtime/distributed/tcp_group.h"

namespace shoal {
namespace {

RendezvousOptions optionsFor(int port, int rank, int size, double timeout = 20) {
  RendezvousOptions o;
  o.port = port;
  o.rank = rank;
  o.size = size;
  o.timeoutSeconds = timeout;
  o.heartbeatSeconds = 0.05;
  o.deadAfterSeconds = 30;
  return o;
}

// Joins `size` ranks on threads; rank 0's payload is "id-42".
std::vector<std::unique_ptr<TcpGroup>> joinAll(int size, int port) {
  std::vector<std::unique_ptr<TcpGroup>> groups(static_cast<size_t>(size));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r)
    threads.emplace_back([&, r] {
      auto g = TcpGroup::join(optionsFor(port, r, size), []() -> Expected<std::string> { return std::string("id-42"); });
      ASSERT_TRUE(g) << g.error().message();
      groups[size_t(r)] = std::move(*g);
    });
  for (auto& t : threads) t.join();
  return groups;
}

TEST(TcpGroup, RanksJoinGetThePayloadAndReduceInRankOrder) {
  const int port = pickFreePort();
  ASSERT_GT(port, 0);
  auto groups = joinAll(3, port);
  ASSERT_EQ(groups.size(), 3u);
  std::vector<std::thread> threads;
  std::vector<std::vector<double>> sums(3), maxs(3);
  std::vector<std::string> bcast(3);
  for (int r = 0; r < 3; ++r)
    threads.emplace_back([&, r] {
      TcpGroup& g = *groups[size_t(r)];
      EXPECT_EQ(g.payload(), "id-42");
      std::vector<double> v = {double(r), 0.5 * r};
      ASSERT_TRUE(g.allReduceHost(v.data(), DType::F64, 2, ReduceKind::Sum));
      sums[size_t(r)] = v;
      std::vector<double> m = {double(-r)};
      ASSERT_TRUE(g.allReduceHost(m.data(), DType::F64, 1, ReduceKind::Max));
      maxs[size_t(r)] = m;
      std::string text = r == 1 ? "from1" : "?????";
      ASSERT_TRUE(g.broadcastHost(text.data(), text.size(), 1));
      bcast[size_t(r)] = text;
      ASSERT_TRUE(g.barrier());
      g.finish();
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(sums[size_t(r)], (std::vector<double>{3, 1.5}));
    EXPECT_EQ(maxs[size_t(r)], (std::vector<double>{0}));
    EXPECT_EQ(bcast[size_t(r)], "from1");
  }
}

TEST(TcpGroup, AWrongWorldSizeIsAClearErrorOnBothSides) {
  const int port = pickFreePort();
  std::string err0, err1;
  std::thread t0([&] {
    auto g = TcpGroup::join(optionsFor(port, 0, 2));
    ASSERT_FALSE(g);
    err0 = g.error().message();
  });
  std::thread t1([&] {
    auto g = TcpGroup::join(optionsFor(port, 1, 3));
    ASSERT_FALSE(g);
    err1 = g.error().message();
  });
  t0.join();
  t1.join();
  EXPECT_EQ(err0, "rendezvous: rank 1 was started with WORLD_SIZE=3, rank 0 with WORLD_SIZE=2");
  EXPECT_EQ(err1, "rendezvous: rank 0 turned rank 1 away: rank 1 was started with WORLD_SIZE=3, rank 0 with WORLD_SIZE=2");
}

TEST(TcpGroup, AnUnreachableRendezvousIsAClearError) {
  const int port = pickFreePort();  // nobody listens there
  auto g = TcpGroup::join(optionsFor(port, 1, 2, /*timeout=*/1));
  ASSERT_FALSE(g);
  EXPECT_NE(g.error().message().find("rendezvous: rank 1 could not reach rank 0 at 127.0.0.1:" + std::to_string(port) +
                                     " within 1 s (Connection refused)"),
            std::string::npos)
      << g.error().message();
}

TEST(TcpGroup, RankZeroNamesTheRanksThatNeverJoined) {
  const int port = pickFreePort();
  std::string err0;
  std::thread t0([&] {
    auto g = TcpGroup::join(optionsFor(port, 0, 3, /*timeout=*/1));
    ASSERT_FALSE(g);
    err0 = g.error().message();
  });
  std::thread t1([&] { (void)TcpGroup::join(optionsFor(port, 1, 3, /*timeout=*/1)); });
  t0.join();
  t1.join();
  EXPECT_NE(err0.find("rank(s) 2 never joined (is WORLD_SIZE right, and did every rank start?)"), std::string::npos) << err0;
}

TEST(TcpGroup, TheWatchdogStopsEveryRankWhenOneVanishes) {
  const int port = pickFreePort();
  auto groups = joinAll(3, port);
  std::mutex m;
  std::condition_variable cv;
  std::map<int, std::string> heard;
  for (int r : {0, 2})
    groups[size_t(r)]->watch([&, r](const std::string& why) {
      std::lock_guard lock(m);
      heard[r] = why;
      cv.notify_all();
    });
  groups[1].reset();  // rank 1 dies: its sockets close without a word
  std::unique_lock lock(m);
  cv.wait_for(lock, std::chrono::seconds(20), [&] { return heard.size() == 2; });
  EXPECT_EQ(heard[0], "rank 1 exited or lost its connection before the run finished");
  EXPECT_EQ(heard[2], "rank 1 exited or lost its connection before the run finished");  // relayed by rank 0
}

TEST(TcpGroup, ARankThatAbortsTellsTheOthersWhy) {
  const int port = pickFreePort();
  auto groups = joinAll(2, port);
  std::mutex m;
  std::condition_variable cv;
  std::string heard;
  groups[0]->watch([&](const std::string& why) {
    std::lock_guard lock(m);
    heard = why;
    cv.notify_all();
  });
  groups[1]->abort("the checkpoint folder is read-only");
  std::unique_lock lock(m);
  cv.wait_for(lock, std::chrono::seconds(20), [&] { return !heard.empty(); });
  EXPECT_EQ(heard, "rank 1 failed: the checkpoint folder is read-only");
}

TEST(TcpGroup, EnvironmentVariablesAreCheckedByName) {
  auto withEnv = [](std::map<std::string, const char*> vars) {
    for (const char* k : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}) ::unsetenv(k);
    for (auto& [k, v] : vars) ::setenv(k.c_str(), v, 1);
    auto r = rendezvousFromEnvironment();
    for (const char* k : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}) ::unsetenv(k);
    return r;
  };
  auto none = withEnv({});
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  auto ok = withEnv({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "1234"}});
  ASSERT_TRUE(ok && ok->has_value());
  EXPECT_EQ((*ok)->rank, 1);
  EXPECT_EQ((*ok)->localRank, 1);
  EXPECT_EQ((*ok)->address, "node7");
  EXPECT_EQ((*ok)->port, 1234);
  auto bad = withEnv({{"RANK", "2"}, {"WORLD_SIZE", "2"}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "RANK='2': expected a whole number from 0 to 1 (it must be below WORLD_SIZE)");
  auto half = withEnv({{"RANK", "0"}});
  ASSERT_FALSE(half);
  EXPECT_EQ(half.error().message(), "RANK is set but WORLD_SIZE is not: a data-parallel rank needs both");
  auto port = withEnv({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "http"}});
  ASSERT_FALSE(port);
  EXPECT_EQ(port.error().message(), "MASTER_PORT='http': expected a whole number from 1 to 65535");
}

}  // namespace
}  // namespace shoal
