// Capped whole-file reads, atomic writes (temp file + fsync + rename, or write-through for
// devices), output-path checks, ~ expansion.
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
#include <new>
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

Expected<std::string> readFileBytes(const std::string& path, const FileReadLimit& limit) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail("cannot open '" + path + "': " + errnoText(errno));
  FdGuard guard(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail("cannot read '" + path + "': " + errnoText(errno));
  if (S_ISDIR(st.st_mode)) return fail("cannot open '" + path + "': " + errnoText(EISDIR));
  auto tooLarge = [&] {
    return fail("cannot read '" + path + "': larger than " + std::to_string(limit.maxBytes) + " bytes, the limit for a " +
                limit.kind);
  };
  if (S_ISREG(st.st_mode) && st.st_size > limit.maxBytes) return tooLarge();

  std::string out;
  try {
    // st_size is only a hint (pipes, devices and /proc files report 0): read until EOF, or
    // until one byte past the limit.
    if (S_ISREG(st.st_mode) && st.st_size > 0) out.reserve(size_t(st.st_size));
    char chunk[1 << 16];
    for (;;) {
      size_t room = size_t(std::min<int64_t>(int64_t(sizeof chunk), limit.maxBytes + 1 - int64_t(out.size())));
      ssize_t n = ::read(fd, chunk, room);
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail("cannot read '" + path + "': " + errnoText(errno));
      }
      if (n == 0) break;
      out.append(chunk, size_t(n));
      if (int64_t(out.size()) > limit.maxBytes) return tooLarge();
    }
  } catch (const std::bad_alloc&) {
    return fail("cannot read '" + path + "': out of memory after " + std::to_string(out.size()) + " bytes");
  }
  return out;
}

namespace {

// What writeFileAtomic does with a path, found by following its symbolic links.
enum class WriteKind {
  Create,        // nothing there: a new file, created atomically
  Replace,       // a regular file: replaced atomically
  WriteThrough,  // a character device or FIFO: written in place
};

struct WriteTarget {
  WriteKind kind = WriteKind::Create;
  std::string path;  // the file to create or replace (links resolved), or to open (as given)
  mode_t mode = 0;   // of the file replaced
};

std::string cannotWrite(const std::string& path, const std::string& why) { return "cannot write '" + path + "': " + why; }

// Follows `path` through symbolic links. A path that names nothing, or a dangling link, is
// created where the chain of links ends.
Expected<WriteTarget> classifyWriteTarget(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISREG(st.st_mode)) {
      WriteTarget t{WriteKind::Replace, path, st.st_mode};
      struct stat link {};
      if (::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
        // Replace the file the link points to, in its own directory; the link stays.
        char* real = ::realpath(path.c_str(), nullptr);
        if (!real) return fail(cannotWrite(path, errnoText(errno)));
        t.path = real;
        std::free(real);
      }
      return t;
    }
    if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) return WriteTarget{WriteKind::WriteThrough, path, st.st_mode};
    if (S_ISDIR(st.st_mode)) return fail(cannotWrite(path, errnoText(EISDIR)));
    return fail(cannotWrite(path, std::string("it is a ") + (S_ISBLK(st.st_mode) ? "block device" : "socket") +
                                      "; refusing to write over it"));
  }
  if (errno != ENOENT) return fail(cannotWrite(path, errnoText(errno)));
  std::string target = path;
  for (int hops = 0;; ++hops) {
    struct stat link {};
    if (::lstat(target.c_str(), &link) != 0 || !S_ISLNK(link.st_mode)) break;
    if (hops == 40) return fail(cannotWrite(path, errnoText(ELOOP)));
    std::string dest(size_t(link.st_size > 0 ? link.st_size : 4096) + 1, '\0');
    ssize_t n = ::readlink(target.c_str(), dest.data(), dest.size());
    if (n < 0) return fail(cannotWrite(path, errnoText(errno)));
    dest.resize(size_t(n));
    target = !dest.empty() && dest[0] == '/' ? dest : parentDir(target) + "/" + dest;
  }
  return WriteTarget{WriteKind::Create, target, 0};
}

// Writes all of `bytes` to `fd`; 0 or the errno of the failed write.
int writeAll(int fd, std::string_view bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    done += size_t(n);
  }
  return 0;
}

// A device or FIFO: open it as it is (O_NOCTTY: never become its controlling terminal) and
// write in place. A FIFO's open waits for a reader, as the shell's `>` does.
Expected<void> writeThrough(const std::string& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return fail(cannotWrite(path, errnoText(errno)));
  FdGuard guard(fd);
  if (int err = writeAll(fd, bytes); err != 0) return fail(cannotWrite(path, errnoText(err)));
  if (int err = guard.closeNow(); err != 0) return fail(cannotWrite(path, "close: " + errnoText(err)));
  return {};
}

}  // namespace

Expected<void> writeFileAtomic(const std::string& path, std::string_view bytes) {
  auto target = classifyWriteTarget(path);
  if (!target) return Unexpected(target.error());
  if (target->kind == WriteKind::WriteThrough) return writeThrough(path, bytes);

  const std::string& file = target->path;
  std::string tmp = file + ".tmp." + std::to_string(::getpid()) + "." + randomToken();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) return fail(cannotWrite(path, "cannot create temporary file: " + errnoText(errno)));
  FdGuard guard(fd);

  // Any failure from here on removes the temporary file; the target is untouched until rename.
  auto abandon = [&](const std::string& what, int err) -> Expected<void> {
    if (guard.get() >= 0) guard.closeNow();
    ::unlink(tmp.c_str());
    return fail(cannotWrite(path, what + errnoText(err)));
  };

  // Keep the permissions of a file we replace (the new file otherwise gets 0666 & ~umask).
  if (target->kind == WriteKind::Replace) ::fchmod(fd, target->mode & 07777);

  if (int err = writeAll(fd, bytes); err != 0) return abandon("", err);
  if (::fsync(fd) != 0) return abandon("fsync: ", errno);
  if (int err = guard.closeNow(); err != 0) return abandon("close: ", err);
  if (::rename(tmp.c_str(), file.c_str()) != 0) return abandon("rename: ", errno);

  // Make the rename itself durable; failure here does not undo a completed write.
  int dirFd = ::open(parentDir(file).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
  return {};
}

Expected<void> checkWritablePath(const std::string& path) {
  auto target = classifyWriteTarget(path);
  if (!target) return Unexpected(target.error());
  if (target->kind == WriteKind::WriteThrough) {
    if (::faccessat(AT_FDCWD, path.c_str(), W_OK, AT_EACCESS) != 0) return fail(cannotWrite(path, errnoText(errno)));
    return {};
  }
  // The temporary file and the rename need a writable directory.
  std::string dir = parentDir(target->path);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return fail(cannotWrite(path, "directory '" + dir + "' does not exist"));
    return fail(cannotWrite(path, "directory '" + dir + "': " + errnoText(errno)));
  }
  if (!S_ISDIR(st.st_mode)) return fail(cannotWrite(path, "'" + dir + "' is not a directory"));
  if (::faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0)
    return fail(cannotWrite(path, "directory '" + dir + "' is not writable: " + errnoText(errno)));
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
