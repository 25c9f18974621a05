// On-disk cache of compiled kernels (cubins), keyed by a SHA-256 of what produced them.
#pragma once

// Needs no CUDA: it stores bytes under keys, so it builds (and is tested) in every build.

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/diagnostics.h"

namespace shoal {

/// Bytes of an entry's header: magic "SHOALKC1", payload length (u64 little-endian),
/// payload SHA-256 (32 raw bytes). The payload follows.
constexpr size_t kKernelCacheHeaderBytes = 8 + 8 + 32;

/// An entry file's bytes for `payload` (header + payload).
std::string encodeCacheEntry(std::string_view payload);
/// The payload of an entry file, or an error saying what is wrong with it ("truncated
/// header", "bad magic", "payload truncated: header says N bytes, file has M",
/// "payload checksum mismatch").
Expected<std::string> decodeCacheEntry(std::string_view bytes);

/// A directory of `<key>.cubin` entries. A missing entry is a miss; a corrupt or truncated
/// one, or anything but a regular file under an entry's name (a symbolic link, a FIFO, a
/// directory: never read), is counted, treated as a miss, and replaced by the next store.
/// Entries are read up to kKernelCacheEntryLimit bytes. Entries are written
/// atomically (temporary file + rename), so concurrent processes and threads never see half
/// an entry. Thread-safe.
class KernelCache {
 public:
  /// A cache in `dir`; the directory is created on the first store.
  explicit KernelCache(std::string dir = defaultDir());

  /// $SHOAL_CACHE_DIR if set and non-empty, else ~/.cache/shoal, else (HOME unset)
  /// /tmp/shoal-cache-<uid>.
  static std::string defaultDir();

  /// The key: SHA-256 hex of the source, each option, the arch and the NVRTC version, every
  /// piece length-prefixed so no two different tuples hash the same bytes.
  static std::string makeKey(std::string_view source, const std::vector<std::string>& options,
                             std::string_view arch, std::string_view nvrtcVersion);

  const std::string& dir() const { return dir_; }
  /// "<dir>/<key>.cubin".
  std::string entryPath(const std::string& key) const;

  /// The cached payload for `key`, or nullopt. Counts a hit, a miss, or a corrupt entry
  /// (which also counts as a miss).
  std::optional<std::string> lookup(const std::string& key);
  /// Writes the entry for `key` atomically. A failure (read-only dir, disk full) is counted
  /// and returned; callers may carry on without the cache.
  Expected<void> store(const std::string& key, std::string_view payload);
  /// Adds one NVRTC compile of `ms` milliseconds to the counters.
  void recordCompile(double ms);

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;   ///< includes corrupt entries
    uint64_t corrupt = 0;
    uint64_t stores = 0;
    uint64_t storeErrors = 0;
    uint64_t compiles = 0;
    double compileMs = 0;  ///< total NVRTC time of the compiles
  };
  Stats stats() const;
  /// One line for `--verbose`: "kernel cache /x: 3 hits, 2 misses (1 corrupt), 2 compiled in
  /// 130.4 ms", plus the first store error if any.
  std::string summary() const;

 private:
  std::string dir_;
  mutable std::mutex mutex_;
  Stats stats_;
  std::string firstStoreError_;
};

}  // namespace shoal
