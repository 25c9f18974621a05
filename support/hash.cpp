// SHA-256 from OpenSSL's libcrypto (EVP), and FNV-1a.
#include "support/hash.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <cstdio>

namespace shoal {

uint64_t fnv1a64(std::string_view bytes, uint64_t basis) {
  uint64_t h = basis;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

struct Sha256::Context {
  EVP_MD_CTX* md = nullptr;
  ~Context() { EVP_MD_CTX_free(md); }
};

namespace {
// EVP fails only when out of memory or when the library is broken: not a user error.
void check(int ok, const char* what) {
  if (ok == 1) return;
  std::fprintf(stderr, "shoal: OpenSSL %s failed\n", what);
  std::abort();
}
}  // namespace

Sha256::Sha256() : ctx_(std::make_unique<Context>()) {
  ctx_->md = EVP_MD_CTX_new();
  check(ctx_->md != nullptr, "EVP_MD_CTX_new");
  check(EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr), "EVP_DigestInit_ex");
}

Sha256::~Sha256() = default;

void Sha256::update(std::string_view bytes) {
  check(EVP_DigestUpdate(ctx_->md, bytes.data(), bytes.size()), "EVP_DigestUpdate");
}

std::array<uint8_t, 32> Sha256::finish() {
  std::array<uint8_t, 32> digest{};
  unsigned len = 0;
  check(EVP_DigestFinal_ex(ctx_->md, digest.data(), &len), "EVP_DigestFinal_ex");
  check(len == digest.size(), "SHA-256 digest length");
  check(EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr), "EVP_DigestInit_ex");
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

}  // namespace shoal
