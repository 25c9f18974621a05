// Whole-file reads, atomic writes (temp file + fsync + rename), SHA-256, FNV-1a, ~ expansion.
#include "ir/file_util.h"

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

uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// --- SHA-256 (FIPS 180-4, section 6.2) ---------------------------------------------------

namespace {

constexpr std::array<uint32_t, 64> kSha256K = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr std::array<uint32_t, 8> kSha256Init = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

}  // namespace

Sha256::Sha256() : state_(kSha256Init), buffer_{} {}

void Sha256::compressBlock(const uint8_t* block) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = uint32_t(block[4 * i]) << 24 | uint32_t(block[4 * i + 1]) << 16 | uint32_t(block[4 * i + 2]) << 8 |
           uint32_t(block[4 * i + 3]);
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
  uint32_t e = state_[4], f = state_[5], g = state_[6], h = state_[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    uint32_t ch = (e & f) ^ (~e & g);
    uint32_t t1 = h + s1 + ch + kSha256K[i] + w[i];
    uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = s0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state_[0] += a;
  state_[1] += b;
  state_[2] += c;
  state_[3] += d;
  state_[4] += e;
  state_[5] += f;
  state_[6] += g;
  state_[7] += h;
}

void Sha256::update(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t n = bytes.size();
  totalLen_ += n;
  if (bufferLen_ > 0) {
    size_t take = std::min(n, 64 - bufferLen_);
    std::memcpy(buffer_.data() + bufferLen_, p, take);
    bufferLen_ += take;
    p += take;
    n -= take;
    if (bufferLen_ < 64) return;
    compressBlock(buffer_.data());
    bufferLen_ = 0;
  }
  for (; n >= 64; p += 64, n -= 64) compressBlock(p);
  std::memcpy(buffer_.data(), p, n);
  bufferLen_ = n;
}

std::array<uint8_t, 32> Sha256::finish() {
  uint64_t bitLen = totalLen_ * 8;
  // Padding: one 1 bit, zeros up to 56 mod 64 bytes, then the 64-bit big-endian bit length.
  uint8_t pad[72] = {0x80};
  size_t padLen = (bufferLen_ < 56 ? 56 - bufferLen_ : 120 - bufferLen_);
  for (int i = 0; i < 8; ++i) pad[padLen + size_t(i)] = uint8_t(bitLen >> (56 - 8 * i));
  update(std::string_view(reinterpret_cast<const char*>(pad), padLen + 8));

  std::array<uint8_t, 32> digest;
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 4; ++j) digest[size_t(4 * i + j)] = uint8_t(state_[size_t(i)] >> (24 - 8 * j));
  *this = Sha256();
  return digest;
}

std::array<uint8_t, 32> sha256(std::string_view bytes) {
  Sha256 h;
  h.update(bytes);
  return h.finish();
}

std::string sha256Hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t b : sha256(bytes)) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
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
