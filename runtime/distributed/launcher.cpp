// The multi-process launcher of `shoal run --gpus N`.
#include "runtime/distributed/launcher.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <optional>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>

namespace shoal {

int pickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

namespace {

struct Child {
  pid_t pid = -1;
  int out = -1, err = -1;   ///< read ends of its stdout and stderr pipes
  std::string outLine, errLine;
  bool running = true;
  int status = 0;
};

std::string describeExit(int rank, int status) {
  if (WIFSIGNALED(status))
    return fmt::format("rank {} was killed by signal {} ({})", rank, WTERMSIG(status), strsignal(WTERMSIG(status)));
  return fmt::format("rank {} exited with status {}", rank, WEXITSTATUS(status));
}

// Forwards the complete lines in `buf` (plus `data`) to `to`, prefixed; keeps the rest.
void forward(std::string& buf, const char* data, size_t n, int rank, FILE* to) {
  buf.append(data, n);
  size_t start = 0;
  for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1)
    std::fprintf(to, "[rank %d] %.*s\n", rank, int(nl - start), buf.data() + start);
  buf.erase(0, start);
  std::fflush(to);
}

}  // namespace

int launchRanks(const LaunchOptions& opts) {
  std::vector<Child> children(size_t(opts.ranks));
  std::fflush(stdout);
  std::fflush(stderr);
  for (int r = 0; r < opts.ranks; ++r) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      std::cerr << "shoal: error: cannot create a pipe for rank " << r << ": " << std::strerror(errno) << "\n";
      return 1;
    }
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) {
      std::cerr << "shoal: error: cannot start rank " << r << ": " << std::strerror(errno) << "\n";
      return 1;
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);  // the launcher died already
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(opts.ranks).c_str(), 1);
      for (const auto& [k, v] : opts.env) ::setenv(k.c_str(), v.c_str(), 1);
      if (size_t(r) < opts.visibleDevices.size()) ::setenv("CUDA_VISIBLE_DEVICES", opts.visibleDevices[size_t(r)].c_str(), 1);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(opts.program.c_str()));
      for (const std::string& a : opts.args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(opts.program.c_str(), argv.data());
      std::fprintf(stderr, "shoal: error: cannot run %s: %s\n", opts.program.c_str(), std::strerror(errno));
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    Child& child = children[size_t(r)];
    child.pid = pid;
    child.out = out[0];
    child.err = err[0];
  }

  using Clock = std::chrono::steady_clock;
  std::optional<Clock::time_point> killAt;
  bool killedAll = false;
  int result = 0;
  char buf[65536];
  for (;;) {
    // Drain output.
    std::vector<pollfd> fds;
    std::vector<std::pair<int, bool>> who;  // rank, stderr?
    for (int r = 0; r < opts.ranks; ++r) {
      Child& c = children[size_t(r)];
      if (c.out >= 0) fds.push_back({c.out, POLLIN, 0}), who.push_back({r, false});
      if (c.err >= 0) fds.push_back({c.err, POLLIN, 0}), who.push_back({r, true});
    }
    if (!fds.empty()) {
      int n = ::poll(fds.data(), fds.size(), 100);
      for (size_t i = 0; n > 0 && i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        Child& c = children[size_t(who[i].first)];
        ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
        std::string& line = who[i].second ? c.errLine : c.outLine;
        FILE* to = who[i].second ? stderr : stdout;
        if (got > 0) {
          forward(line, buf, size_t(got), who[i].first, to);
        } else if (got == 0 || errno != EINTR) {
          if (!line.empty()) forward(line, "\n", 1, who[i].first, to);
          ::close(fds[i].fd);
          (who[i].second ? c.err : c.out) = -1;
        }
      }
    } else {
      ::usleep(20000);
    }
    // Reap.
    bool anyRunning = false;
    for (int r = 0; r < opts.ranks; ++r) {
      Child& c = children[size_t(r)];
      if (!c.running) continue;
      int status = 0;
      pid_t p = ::waitpid(c.pid, &status, WNOHANG);
      if (p == c.pid) {
        c.running = false;
        c.status = status;
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        // After the first failure the others are stopped with SIGTERM (SIGKILL after the
        // grace): any other way a rank ends is news too (the rank that died, when a rank that
        // noticed it was reaped first).
        const bool stoppedByUs = result != 0 && WIFSIGNALED(status) &&
                                 (WTERMSIG(status) == SIGTERM || (WTERMSIG(status) == SIGKILL && killedAll));
        if (!ok && result != 0 && !stoppedByUs)
          std::fprintf(stderr, "shoal: error: %s\n", describeExit(r, status).c_str());
        if (!ok && result == 0) {
          result = 1;
          std::fprintf(stderr, "shoal: error: %s; stopping the other ranks\n", describeExit(r, status).c_str());
          for (Child& o : children)
            if (o.running) ::kill(o.pid, SIGTERM);
          killAt = Clock::now() + std::chrono::seconds(opts.graceSeconds);
        }
      } else {
        anyRunning = true;
      }
    }
    if (killAt && Clock::now() >= *killAt) {
      for (Child& o : children)
        if (o.running) ::kill(o.pid, SIGKILL);
      killAt.reset();
      killedAll = true;
    }
    bool anyOpen = false;
    for (const Child& c : children) anyOpen |= c.out >= 0 || c.err >= 0;
    if (!anyRunning && !anyOpen) break;
    if (!anyRunning && anyOpen && result != 0) {
      // A grandchild may hold a pipe open; the ranks are gone, so stop reading.
      for (Child& c : children) {
        if (c.out >= 0) ::close(c.out), c.out = -1;
        if (c.err >= 0) ::close(c.err), c.err = -1;
      }
      break;
    }
  }
  return result;
}

}  // namespace shoal
