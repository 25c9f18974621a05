// On-disk kernel cache: checksummed entries, atomic writes, hit/miss/corrupt counters.
#include "codegen/kernel_cache.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "support/file_util.h"
#include "support/hash.h"

namespace shoal {

namespace {

constexpr char kMagic[8] = {'S', 'H', 'O', 'A', 'L', 'K', 'C', '1'};

void putU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

uint64_t getU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

void hashField(Sha256& h, std::string_view field) {
  h.update(std::to_string(field.size()));
  h.update(":");
  h.update(field);
  h.update("\n");
}

std::string hexOf(const std::array<uint8_t, 32>& digest) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace

std::string encodeCacheEntry(std::string_view payload) {
  std::string out;
  out.reserve(kKernelCacheHeaderBytes + payload.size());
  out.append(kMagic, sizeof kMagic);
  putU64(out, payload.size());
  auto digest = sha256(payload);
  out.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  out.append(payload);
  return out;
}

Expected<std::string> decodeCacheEntry(std::string_view bytes) {
  if (bytes.size() < kKernelCacheHeaderBytes)
    return fail("truncated header: " + std::to_string(bytes.size()) + " of " +
                std::to_string(kKernelCacheHeaderBytes) + " bytes");
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) return fail("bad magic (not a shoal kernel cache entry)");
  uint64_t length = getU64(bytes.data() + 8);
  std::string_view payload = bytes.substr(kKernelCacheHeaderBytes);
  if (payload.size() != length)
    return fail("payload truncated: header says " + std::to_string(length) + " bytes, file has " +
                std::to_string(payload.size()));
  auto digest = sha256(payload);
  if (std::memcmp(digest.data(), bytes.data() + 16, digest.size()) != 0) return fail("payload checksum mismatch");
  return std::string(payload);
}

KernelCache::KernelCache(std::string dir) : dir_(std::move(dir)) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
}

std::string KernelCache::defaultDir() {
  if (const char* env = std::getenv("SHOAL_CACHE_DIR"); env && *env) return expandUser(env);
  if (const char* home = std::getenv("HOME"); home && *home) {
    std::string h = home;
    if (h.size() > 1 && h.back() == '/') h.pop_back();
    return h + "/.cache/shoal";
  }
  return "/tmp/shoal-cache-" + std::to_string(::getuid());
}

std::string KernelCache::makeKey(std::string_view source, const std::vector<std::string>& options,
                                 std::string_view arch, std::string_view nvrtcVersion) {
  Sha256 h;
  h.update("shoal-kernel-cache-v1\n");
  hashField(h, source);
  hashField(h, std::to_string(options.size()) + " options");
  for (const std::string& option : options) hashField(h, option);
  hashField(h, arch);
  hashField(h, nvrtcVersion);
  return hexOf(h.finish());
}

std::string KernelCache::entryPath(const std::string& key) const { return dir_ + "/" + key + ".cubin"; }

std::optional<std::string> KernelCache::lookup(const std::string& key) {
  std::string path = entryPath(key);
  std::error_code ec;
  auto status = std::filesystem::symlink_status(path, ec);
  bool present = !ec && std::filesystem::exists(status);
  std::optional<std::string> payload;
  bool corrupt = false;
  if (present && !std::filesystem::is_regular_file(status)) {
    // The cache writes only regular files: a link (to /dev/zero, say), a FIFO or a directory
    // here is not an entry, and reading it could block or never end. Rebuild it.
    corrupt = true;
  } else if (present) {
    auto bytes = readFileBytes(path, kKernelCacheEntryLimit);
    if (!bytes) {
      corrupt = true;  // present but unreadable (a directory, no permission): rebuild it
    } else if (auto decoded = decodeCacheEntry(*bytes)) {
      payload = std::move(*decoded);
    } else {
      corrupt = true;
    }
  }
  std::lock_guard lock(mutex_);
  if (payload) {
    ++stats_.hits;
  } else {
    ++stats_.misses;
    if (corrupt) ++stats_.corrupt;
  }
  return payload;
}

Expected<void> KernelCache::store(const std::string& key, std::string_view payload) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  Expected<void> result;
  if (ec) {
    result = fail("kernel cache: cannot create directory '" + dir_ + "': " + ec.message());
  } else {
    // Anything but a regular file squatting on the entry's name (a directory, a symbolic link
    // to /dev/zero or elsewhere, a FIFO) is removed: the cache owns its directory, and
    // writeFileAtomic would otherwise write through it or refuse.
    std::string path = entryPath(key);
    auto status = std::filesystem::symlink_status(path, ec);
    if (!ec && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
      std::filesystem::remove_all(path, ec);
    result = writeFileAtomic(path, encodeCacheEntry(payload));
    if (!result) result = fail("kernel cache: " + result.error().message());
  }
  std::lock_guard lock(mutex_);
  if (result) {
    ++stats_.stores;
  } else {
    ++stats_.storeErrors;
    if (firstStoreError_.empty()) firstStoreError_ = result.error().message();
  }
  return result;
}

void KernelCache::recordCompile(double ms) {
  std::lock_guard lock(mutex_);
  ++stats_.compiles;
  stats_.compileMs += ms;
}

KernelCache::Stats KernelCache::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

std::string KernelCache::summary() const {
  std::lock_guard lock(mutex_);
  char ms[32];
  std::snprintf(ms, sizeof ms, "%.1f", stats_.compileMs);
  std::string out = "kernel cache " + dir_ + ": " + std::to_string(stats_.hits) + " hits, " +
                    std::to_string(stats_.misses) + " misses (" + std::to_string(stats_.corrupt) + " corrupt), " +
                    std::to_string(stats_.compiles) + " compiled in " + ms + " ms";
  if (stats_.storeErrors > 0)
    out += "; " + std::to_string(stats_.storeErrors) + " entries not written (" + firstStoreError_ + ")";
  return out;
}

}  // namespace shoal
