// Basic file utilities every layer may use: whole-file reads, atomic writes, hashing, ~.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "ir/diagnostics.h"

namespace shoal {

/// Reads a whole file into memory. Errors name the path and the reason:
/// "cannot open 'X': No such file or directory", "cannot open 'X': Is a directory",
/// "cannot read 'X': <errno text>".
Expected<std::string> readFileBytes(const std::string& path);

/// Writes `bytes` to `path` atomically: the data goes to a temporary file in the same
/// directory ("<path>.tmp.<pid>.<random>"), is fsync'ed, then renamed over `path`. On any
/// failure the temporary file is removed and `path` is left as it was (old content or
/// absent), never half-written. Errors name the path and the errno text.
Expected<void> writeFileAtomic(const std::string& path, std::string_view bytes);

/// 64-bit FNV-1a hash (fast, not collision-resistant; for hash tables, not cache keys).
uint64_t fnv1a64(std::string_view bytes);

/// Incremental SHA-256 (FIPS 180-4), for hashing several pieces without concatenating them.
class Sha256 {
 public:
  Sha256();
  /// Appends bytes to the message.
  void update(std::string_view bytes);
  /// Finishes the message and returns the 32-byte digest; the object is then reset.
  std::array<uint8_t, 32> finish();

 private:
  void compressBlock(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t bufferLen_ = 0;
  uint64_t totalLen_ = 0;  ///< message length in bytes
};

/// SHA-256 digest of `bytes`.
std::array<uint8_t, 32> sha256(std::string_view bytes);
/// SHA-256 digest of `bytes` as 64 lowercase hex digits (the `sha256sum` spelling).
std::string sha256Hex(std::string_view bytes);

/// Expands a leading "~" or "~/" to $HOME (or the password database's home directory when
/// HOME is unset). Other paths, including "~user/...", are returned unchanged.
std::string expandUser(const std::string& path);

}  // namespace shoal
