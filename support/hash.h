// Hashing: SHA-256 through OpenSSL's EVP interface (cache keys, checksums) and 64-bit FNV-1a
// (hash tables, per-name seeds).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace shoal {

/// The standard 64-bit FNV-1a offset basis.
inline constexpr uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ull;

/// 64-bit FNV-1a of `bytes`, starting from `basis` (fast, not collision-resistant: for hash
/// tables and seeds, never for cache keys).
uint64_t fnv1a64(std::string_view bytes, uint64_t basis = kFnvOffsetBasis);

/// Incremental SHA-256 (OpenSSL EVP), for hashing several pieces without concatenating them.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  /// Appends bytes to the message.
  void update(std::string_view bytes);
  /// Finishes the message and returns the 32-byte digest; the object is then reset.
  std::array<uint8_t, 32> finish();

 private:
  struct Context;
  std::unique_ptr<Context> ctx_;
};

/// SHA-256 digest of `bytes`.
std::array<uint8_t, 32> sha256(std::string_view bytes);
/// SHA-256 digest of `bytes` as 64 lowercase hex digits (the `sha256sum` spelling).
std::string sha256Hex(std::string_view bytes);

}  // namespace shoal
