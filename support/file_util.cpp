// Whole-file reads, atomic writes (temp file + fsync + rename), ~ expansion.
#include "support/file_util.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

namespace shoal {

namespace {

std::string errnoText(int err) { return std::strerror(err); }

// Closes a file descriptor on scope exit unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  /// Closes now and returns close()'s errno (0 on success).
  int closeNow() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

// A random 16-hex-digit token for temporary file names; unique across threads and processes.
std::string randomToken() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng([] {
    std::random_device rd;
    uint64_t seed = (uint64_t(rd()) << 32) ^ rd();
    seed ^= uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
    return seed;
  }());
  uint64_t v = rng() ^ (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// The directory holding `path` ("." for a bare file name).
std::string parentDir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Expected<std::string> readFileBytes(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail("cannot open '" + path + "': " + errnoText(errno));
  FdGuard guard(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail("cannot read '" + path + "': " + errnoText(errno));
  if (S_ISDIR(st.st_mode)) return fail("cannot open '" + path + "': " + errnoText(EISDIR));

  std::string out;
  // st_size is only a hint (pipes and /proc files report 0): read until EOF.
  if (S_ISREG(st.st_mode) && st.st_size > 0) out.reserve(size_t(st.st_size));
  char chunk[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot read '" + path + "': " + errnoText(errno));
    }
    if (n == 0) break;
    out.append(chunk, size_t(n));
  }
  return out;
}

Expected<void> writeFileAtomic(const std::string& path, std::string_view bytes) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + randomToken();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) return fail("cannot write '" + path + "': cannot create temporary file: " + errnoText(errno));
  FdGuard guard(fd);

  // Any failure from here on removes the temporary file; `path` is untouched until rename.
  auto abandon = [&](const std::string& what, int err) -> Expected<void> {
    if (guard.get() >= 0) guard.closeNow();
    ::unlink(tmp.c_str());
    return fail("cannot write '" + path + "': " + what + errnoText(err));
  };

  // Keep the permissions of a file we replace (the new file otherwise gets 0666 & ~umask).
  struct stat old {};
  if (::stat(path.c_str(), &old) == 0 && S_ISREG(old.st_mode)) ::fchmod(fd, old.st_mode & 07777);

  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return abandon("", errno);
    }
    done += size_t(n);
  }
  if (::fsync(fd) != 0) return abandon("fsync: ", errno);
  if (int err = guard.closeNow(); err != 0) return abandon("close: ", err);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return abandon("rename: ", errno);

  // Make the rename itself durable; failure here does not undo a completed write.
  int dirFd = ::open(parentDir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
  return {};
}

std::string expandUser(const std::string& path) {
  if (path.empty() || path[0] != '~' || (path.size() > 1 && path[1] != '/')) return path;
  std::string home;
  if (const char* env = std::getenv("HOME"); env && *env) {
    home = env;
  } else if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir) {
    home = pw->pw_dir;
  } else {
    return path;
  }
  if (home.size() > 1 && home.back() == '/') home.pop_back();
  return home + path.substr(1);
}

}  // namespace shoal
