// The TCP rendezvous, host collectives through rank 0, and the heartbeat watchdog.
#include "runtime/distributed/tcp_group.h"

#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace shoal {

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kMagic = 0x53484c31;  // "SHL1"
constexpr uint32_t kData = 0, kControl = 1;
std::mutex controlMutex;  // serialises writes on control connections (watchdog and abort)

double secondsLeft(Clock::time_point deadline) {
  return std::chrono::duration<double>(deadline - Clock::now()).count();
}

std::string lastError() { return std::strerror(errno); }

bool sendAll(int fd, const void* data, size_t bytes) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = ::send(fd, p, bytes, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n, bytes -= size_t(n);
  }
  return true;
}

// Reads exactly `bytes`; with a deadline, gives up when it passes. False on EOF or error.
bool recvAll(int fd, void* data, size_t bytes, std::optional<Clock::time_point> deadline = std::nullopt) {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {
    if (deadline) {
      pollfd pfd{fd, POLLIN, 0};
      int ms = int(std::max(0.0, secondsLeft(*deadline)) * 1000);
      int r = ::poll(&pfd, 1, ms);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
    }
    ssize_t n = ::recv(fd, p, bytes, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n, bytes -= size_t(n);
  }
  return true;
}

struct Hello {
  uint32_t magic = kMagic;
  uint32_t kind = kData;
  int32_t rank = 0;
  int32_t size = 0;
};

// status 0 and the payload, or status 1 and why the rank was turned away.
bool sendVerdict(int fd, uint32_t status, const std::string& text) {
  uint32_t head[2] = {status, uint32_t(text.size())};
  return sendAll(fd, head, sizeof head) && sendAll(fd, text.data(), text.size());
}

void setNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Expected<addrinfo*> resolve(const RendezvousOptions& o, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  std::string port = std::to_string(o.port);
  if (int rc = ::getaddrinfo(o.address.c_str(), port.c_str(), &hints, &res); rc != 0)
    return fail(fmt::format("rendezvous: cannot resolve MASTER_ADDR '{}': {}", o.address, gai_strerror(rc)));
  return res;
}

Expected<int> listenOn(const RendezvousOptions& o) {
  auto res = resolve(o, true);
  if (!res) return Unexpected(res.error());
  std::string err = "no address";
  for (addrinfo* a = *res; a; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 256) == 0) {
      ::freeaddrinfo(*res);
      return fd;
    }
    err = lastError();
    ::close(fd);
  }
  ::freeaddrinfo(*res);
  return fail(fmt::format("rendezvous: rank 0 cannot listen on {}:{}: {}", o.address, o.port, err));
}

// Connects to rank 0, retrying (it may not listen yet) until the deadline.
// `interrupted`, asked between attempts, may end the wait with an error of its own.
Expected<int> connectTo(const RendezvousOptions& o, Clock::time_point deadline,
                        const std::function<std::optional<Error>()>& interrupted = {}) {
  std::string err;
  for (;;) {
    if (interrupted)
      if (auto e = interrupted()) return Unexpected(*e);
    auto res = resolve(o, false);
    if (!res) return Unexpected(res.error());
    for (addrinfo* a = *res; a; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
        ::freeaddrinfo(*res);
        setNoDelay(fd);
        return fd;
      }
      err = lastError();
      ::close(fd);
    }
    ::freeaddrinfo(*res);
    if (secondsLeft(deadline) <= 0)
      return fail(fmt::format("rendezvous: rank {} could not reach rank 0 at {}:{} within {:g} s ({}); is rank 0 "
                              "running, and are MASTER_ADDR and MASTER_PORT right?",
                              o.rank, o.address, o.port, o.timeoutSeconds, err));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Expected<int> parseEnvInt(const char* name, const char* value, int lo, int hi) {
  int v = 0;
  std::string_view s(value);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi)
    return fail(fmt::format("{}='{}': expected a whole number from {} to {}", name, value, lo, hi));
  return v;
}

// The collective header every rank sends before its data.
struct Header {
  uint32_t tag = 0;  ///< 1 all-reduce, 2 broadcast
  uint32_t dtype = 0;
  int64_t count = 0;  ///< elements (all-reduce) or bytes (broadcast)
  uint32_t op = 0;
  int32_t root = 0;
  bool operator==(const Header&) const = default;
};

std::string describe(const Header& h) {
  if (h.tag == 2) return fmt::format("a broadcast of {} bytes from rank {}", h.count, h.root);
  return fmt::format("an all-reduce ({}) of {} {}", reduceKindName(ReduceKind(h.op)), h.count,
                     dtypeName(DType(h.dtype)));
}

}  // namespace

Expected<std::optional<RendezvousOptions>> rendezvousFromEnvironment() {
  const char* rank = std::getenv("RANK");
  const char* world = std::getenv("WORLD_SIZE");
  if (!rank && !world) return std::optional<RendezvousOptions>();
  if (!world) return fail("RANK is set but WORLD_SIZE is not: a data-parallel rank needs both");
  if (!rank) return fail("WORLD_SIZE is set but RANK is not: a data-parallel rank needs both");
  RendezvousOptions o;
  auto size = parseEnvInt("WORLD_SIZE", world, 1, 1 << 16);
  if (!size) return Unexpected(size.error());
  o.size = *size;
  auto r = parseEnvInt("RANK", rank, 0, o.size - 1);
  if (!r) return fail(r.error().message() + " (it must be below WORLD_SIZE)");
  o.rank = *r;
  o.localRank = o.rank;
  if (const char* lr = std::getenv("LOCAL_RANK")) {
    auto v = parseEnvInt("LOCAL_RANK", lr, 0, 1 << 16);
    if (!v) return Unexpected(v.error());
    o.localRank = *v;
  }
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) o.address = a;
  if (const char* p = std::getenv("MASTER_PORT")) {
    auto v = parseEnvInt("MASTER_PORT", p, 1, 65535);
    if (!v) return Unexpected(v.error());
    o.port = *v;
  }
  if (const char* t = std::getenv("SHOAL_RENDEZVOUS_TIMEOUT")) {
    auto v = parseEnvInt("SHOAL_RENDEZVOUS_TIMEOUT", t, 1, 86400);
    if (!v) return Unexpected(v.error());
    o.timeoutSeconds = *v;
  }
  return std::optional<RendezvousOptions>(o);
}

Expected<std::unique_ptr<TcpGroup>> TcpGroup::join(const RendezvousOptions& opts,
                                                    const std::function<Expected<std::string>()>& makePayload) {
  if (opts.size < 1 || opts.rank < 0 || opts.rank >= opts.size)
    return fail(fmt::format("rendezvous: rank {} is not one of the {} ranks", opts.rank, opts.size));
  std::unique_ptr<TcpGroup> g(new TcpGroup());
  g->opts_ = opts;
  const auto deadline = Clock::now() + std::chrono::milliseconds(int64_t(opts.timeoutSeconds * 1000));
  if (opts.rank == 0) {
    g->data_.assign(size_t(opts.size), -1);
    g->control_.assign(size_t(opts.size), -1);
    if (opts.size > 1) {
      auto listener = listenOn(opts);
      if (!listener) return Unexpected(listener.error());
      int joined = 0;
      std::optional<Error> problem;
      while (joined < 2 * (opts.size - 1) && !problem) {
        pollfd pfd{*listener, POLLIN, 0};
        int ms = int(std::max(0.0, secondsLeft(deadline)) * 1000);
        int r = ::poll(&pfd, 1, ms);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
          std::string missing;
          for (int k = 1; k < opts.size; ++k)
            if (g->data_[size_t(k)] < 0 || g->control_[size_t(k)] < 0) missing += (missing.empty() ? "" : ", ") + std::to_string(k);
          problem = Error(fmt::format("rendezvous: rank 0 waited {:g} s at {}:{} for the {} ranks of WORLD_SIZE={}; "
                                      "rank(s) {} never joined (is WORLD_SIZE right, and did every rank start?)",
                                      opts.timeoutSeconds, opts.address, opts.port, opts.size, opts.size, missing));
          break;
        }
        int fd = ::accept4(*listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        setNoDelay(fd);
        Hello h;
        if (!recvAll(fd, &h, sizeof h, Clock::now() + std::chrono::seconds(5)) || h.magic != kMagic) {
          ::close(fd);  // not a shoal rank (a port scanner, another program): ignore it
          continue;
        }
        std::string why;
        if (h.size != opts.size)
          why = fmt::format("rank {} was started with WORLD_SIZE={}, rank 0 with WORLD_SIZE={}", h.rank, h.size, opts.size);
        else if (h.rank <= 0 || h.rank >= opts.size)
          why = fmt::format("a rank said it is rank {}, which is not one of 1..{}", h.rank, opts.size - 1);
        else if ((h.kind == kData ? g->data_ : g->control_)[size_t(h.rank)] >= 0)
          why = fmt::format("two processes say they are rank {} (RANK must differ between processes)", h.rank);
        if (!why.empty()) {
          (void)sendVerdict(fd, 1, why);
          ::close(fd);
          problem = Error("rendezvous: " + why);
          break;
        }
        (h.kind == kData ? g->data_ : g->control_)[size_t(h.rank)] = fd;
        ++joined;
      }
      ::close(*listener);
      if (problem) {
        for (int k = 1; k < opts.size; ++k)
          if (g->data_[size_t(k)] >= 0) (void)sendVerdict(g->data_[size_t(k)], 1, problem->message());
        return Unexpected(*problem);
      }
    }
    if (makePayload) {
      auto p = makePayload();
      if (!p) {
        for (int k = 1; k < opts.size; ++k) (void)sendVerdict(g->data_[size_t(k)], 1, "rank 0: " + p.error().message());
        return Unexpected(p.error());
      }
      g->payload_ = *p;
    }
    for (int k = 1; k < opts.size; ++k)
      if (!sendVerdict(g->data_[size_t(k)], 0, g->payload_))
        return fail(fmt::format("rendezvous: rank {} left before the run started", k));
    return g;
  }
  // Rank 0 may turn this rank away after its first connection (a wrong world size): then
  // the answer waits on that connection, and the second one would never be accepted.
  // `waitMs` > 0 waits that long for an answer that may be on its way.
  auto turnedAway = [&](int waitMs = 0) -> std::optional<Error> {
    if (g->data_.empty()) return std::nullopt;
    pollfd pfd{g->data_[0], POLLIN, 0};
    if (::poll(&pfd, 1, waitMs) <= 0) return std::nullopt;
    uint32_t head[2];
    if (!recvAll(g->data_[0], head, sizeof head, Clock::now() + std::chrono::seconds(2)) || head[0] == 0 ||
        head[1] > (1u << 20))
      return Error(fmt::format("rendezvous: rank 0 at {}:{} closed the connection", opts.address, opts.port));
    std::string text(head[1], '\0');
    (void)recvAll(g->data_[0], text.data(), text.size(), Clock::now() + std::chrono::seconds(2));
    return Error("rendezvous: rank 0 turned rank " + std::to_string(opts.rank) + " away: " + text);
  };
  for (uint32_t kind : {kData, kControl}) {
    auto fd = connectTo(opts, deadline, [&] { return turnedAway(); });
    if (!fd) return Unexpected(fd.error());
    Hello h;
    h.kind = kind;
    h.rank = opts.rank;
    h.size = opts.size;
    if (!sendAll(*fd, &h, sizeof h)) {
      // Rank 0 may have turned this rank away on its first connection and closed its listener
      // while this one waited in the backlog (the reset breaks the send): its answer says why.
      std::string why = lastError();
      ::close(*fd);
      if (auto e = turnedAway(2000)) return Unexpected(*e);
      return fail("rendezvous: the connection to rank 0 broke: " + why);
    }
    (kind == kData ? g->data_ : g->control_).push_back(*fd);
  }
  uint32_t head[2];
  // Rank 0 answers once every rank has joined: wait as long as it may wait for them.
  const auto answerBy = deadline + std::chrono::milliseconds(int64_t(opts.timeoutSeconds * 1000) + 5000);
  if (!recvAll(g->data_[0], head, sizeof head, answerBy))
    return fail(fmt::format("rendezvous: rank 0 at {}:{} accepted rank {} but never started the run (it gave up or "
                            "exited: see its error)",
                            opts.address, opts.port, opts.rank));
  std::string text(head[1], '\0');
  if (head[1] > (1u << 20) || !recvAll(g->data_[0], text.data(), text.size(), answerBy))
    return fail("rendezvous: a broken answer from rank 0");
  if (head[0] != 0) return fail("rendezvous: rank 0 turned rank " + std::to_string(opts.rank) + " away: " + text);
  g->payload_ = std::move(text);
  return g;
}

TcpGroup::~TcpGroup() {
  stop_ = true;
  if (watchdog_.joinable()) watchdog_.join();
  for (int fd : data_)
    if (fd >= 0) ::close(fd);
  for (int fd : control_)
    if (fd >= 0) ::close(fd);
}

Expected<void> TcpGroup::exchange(uint32_t tag, const void* in, size_t bytes, void* out, DType dtype, int64_t count,
                                  ReduceKind op, int root) {
  if (opts_.size == 1) {
    if (out != in && bytes) std::memcpy(out, in, bytes);
    return {};
  }
  Header h{tag, uint32_t(dtype), count, uint32_t(op), root};
  auto broken = [&](int peer) {
    return fail(fmt::format("the connection to rank {} broke during {} (it exited or failed: see its error)", peer,
                            describe(h)));
  };
  if (opts_.rank != 0) {
    const int fd = data_[0];
    const bool sends = tag == 1 || root == opts_.rank;
    if (!sendAll(fd, &h, sizeof h)) return broken(0);
    if (sends && bytes && !sendAll(fd, in, bytes)) return broken(0);
    uint32_t status = 0;
    if (!recvAll(fd, &status, sizeof status)) return broken(0);
    if (status != 0) {
      uint32_t len = 0;
      std::string why;
      if (recvAll(fd, &len, sizeof len) && len < (1u << 20)) {
        why.resize(len);
        (void)recvAll(fd, why.data(), len);
      }
      return fail(why);
    }
    if (bytes && !recvAll(fd, out, bytes)) return broken(0);
    return {};
  }
  // Rank 0: everyone's header (they must all call the same collective), their data, the
  // result to all.
  std::vector<std::vector<char>> parts(size_t(opts_.size));
  std::optional<std::string> mismatch;
  for (int k = 1; k < opts_.size; ++k) {
    Header theirs;
    if (!recvAll(data_[size_t(k)], &theirs, sizeof theirs)) return broken(k);
    if (!(theirs == h)) {
      mismatch = fmt::format("the ranks disagree on the collective: rank {} called {}, rank 0 {}", k, describe(theirs),
                             describe(h));
      break;
    }
    if ((tag == 1 || root == k) && bytes) {
      parts[size_t(k)].resize(bytes);
      if (!recvAll(data_[size_t(k)], parts[size_t(k)].data(), bytes)) return broken(k);
    }
  }
  if (mismatch) {
    for (int k = 1; k < opts_.size; ++k) {
      uint32_t head[2] = {1, uint32_t(mismatch->size())};
      (void)sendAll(data_[size_t(k)], head, sizeof head);
      (void)sendAll(data_[size_t(k)], mismatch->data(), mismatch->size());
    }
    return fail(*mismatch);
  }
  std::vector<char> result(bytes);
  if (tag == 1) {
    std::vector<const void*> ptrs = {in};
    for (int k = 1; k < opts_.size; ++k) ptrs.push_back(parts[size_t(k)].data());
    reduceInto(result.data(), ptrs, dtype, count, op);
  } else if (bytes) {
    std::memcpy(result.data(), root == 0 ? in : parts[size_t(root)].data(), bytes);
  }
  for (int k = 1; k < opts_.size; ++k) {
    uint32_t status = 0;
    if (!sendAll(data_[size_t(k)], &status, sizeof status)) return broken(k);
    if (bytes && !sendAll(data_[size_t(k)], result.data(), bytes)) return broken(k);
  }
  if (bytes) std::memcpy(out, result.data(), bytes);
  return {};
}

Expected<void> TcpGroup::allReduceHost(void* data, DType dtype, int64_t count, ReduceKind op) {
  return exchange(1, data, size_t(count) * dtypeSize(dtype), data, dtype, count, op, 0);
}

Expected<void> TcpGroup::broadcastHost(void* data, size_t bytes, int root) {
  if (root < 0 || root >= opts_.size) return fail(fmt::format("broadcast from rank {} of {}", root, opts_.size));
  return exchange(2, data, bytes, data, DType::U8, int64_t(bytes), ReduceKind::Sum, root);
}

Expected<void> TcpGroup::barrier() { return exchange(1, nullptr, 0, nullptr, DType::F64, 0, ReduceKind::Sum, 0); }

namespace {

void sendControl(int fd, char type, const std::string& text = "") {
  if (fd < 0) return;
  std::lock_guard lock(controlMutex);
  std::string msg(1, type);
  if (type == 'A') {
    uint32_t len = uint32_t(text.size());
    msg.append(reinterpret_cast<const char*>(&len), sizeof len);
    msg += text;
  }
  (void)sendAll(fd, msg.data(), msg.size());
}

}  // namespace

void TcpGroup::abort(const std::string& why) {
  if (failed_.exchange(true)) return;
  const std::string text = fmt::format("rank {} failed: {}", opts_.rank, why);
  for (int fd : control_) sendControl(fd, 'A', text);
  for (int fd : data_)
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);  // a collective waiting on a peer returns now
}

void TcpGroup::watch(std::function<void(const std::string&)> onFailure,
                     std::function<std::optional<std::string>()> poll) {
  if (watchdog_.joinable()) return;
  onFailure_ = std::move(onFailure);
  poll_ = std::move(poll);
  watchdog_ = std::thread([this] { watchLoop(); });
}

void TcpGroup::finish() {
  for (int fd : control_) sendControl(fd, 'D');
  stop_ = true;
  if (watchdog_.joinable()) watchdog_.join();
}

void TcpGroup::watchLoop() {
  // The peers this rank watches: every other rank (rank 0) or rank 0 (the others).
  struct Peer {
    int rank;
    int fd;
    Clock::time_point heard;
    bool done = false;
  };
  std::vector<Peer> peers;
  if (opts_.rank == 0) {
    for (int k = 1; k < opts_.size; ++k) peers.push_back({k, control_[size_t(k)], Clock::now()});
  } else if (!control_.empty()) {
    peers.push_back({0, control_[0], Clock::now()});
  }
  auto failWith = [&](const std::string& reason) {
    if (failed_.exchange(true)) return;
    // Rank 0 passes the news on to every other rank.
    if (opts_.rank == 0)
      for (const Peer& p : peers) sendControl(p.fd, 'A', reason);
    if (onFailure_) onFailure_(reason);
  };
  auto lastBeat = Clock::now() - std::chrono::hours(1);
  const auto beat = std::chrono::milliseconds(int64_t(opts_.heartbeatSeconds * 1000));
  while (!stop_ && !failed_) {
    if (Clock::now() - lastBeat >= beat) {
      for (const Peer& p : peers)
        if (!p.done) sendControl(p.fd, 'H');
      lastBeat = Clock::now();
      if (poll_)
        if (auto why = poll_()) {
          const std::string reason = fmt::format("rank {}: {}", opts_.rank, *why);
          if (opts_.rank != 0)
            for (const Peer& p : peers) sendControl(p.fd, 'A', reason);
          failWith(reason);
          return;
        }
    }
    std::vector<pollfd> fds;
    for (const Peer& p : peers) fds.push_back({p.fd, POLLIN, 0});
    int r = ::poll(fds.data(), fds.size(), 100);
    if (r < 0 && errno != EINTR) return;
    for (size_t i = 0; i < peers.size(); ++i) {
      Peer& p = peers[i];
      if (p.fd < 0) continue;
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        char type = 0;
        ssize_t n = ::recv(p.fd, &type, 1, 0);
        if (n <= 0) {
          if (p.done) {
            p.fd = -1;
            continue;
          }
          return failWith(fmt::format("rank {} exited or lost its connection before the run finished", p.rank));
        }
        p.heard = Clock::now();
        if (type == 'D') p.done = true;
        if (type == 'A') {
          uint32_t len = 0;
          std::string text = fmt::format("rank {} failed", p.rank);
          if (recvAll(p.fd, &len, sizeof len, Clock::now() + std::chrono::seconds(2)) && len < (1u << 20)) {
            text.assign(len, '\0');
            (void)recvAll(p.fd, text.data(), len, Clock::now() + std::chrono::seconds(2));
          }
          return failWith(text);
        }
      }
      if (!p.done && secondsLeft(p.heard + std::chrono::milliseconds(int64_t(opts_.deadAfterSeconds * 1000))) < 0)
        return failWith(fmt::format("rank {} has sent nothing for {:g} s (hung, or its host is unreachable)", p.rank,
                                    opts_.deadAfterSeconds));
    }
  }
}

}  // namespace shoal
