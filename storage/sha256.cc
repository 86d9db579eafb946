#include "storage/sha256.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>

namespace fieldsync::storage {
namespace {

// OpenSSL fails a SHA-256 step only without memory or with a broken crypto
// provider. The hash chain and blob addresses cannot be computed then, and a
// wrong digest would be written as if it were right, so the process stops
// rather than return one (the API stays infallible for its many callers).
void Require(bool ok, const char* step) {
  if (ok) return;
  std::fprintf(stderr, "fieldsync: OpenSSL %s failed; cannot compute SHA-256\n", step);
  std::abort();
}

}  // namespace

Sha256Digest Sha256(std::initializer_list<std::string_view> parts) {
  Sha256Hasher hasher;
  for (std::string_view part : parts) hasher.Update(part);
  return hasher.Finish();
}

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  Require(ctx_ != nullptr, "EVP_MD_CTX_new");
  Require(EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) == 1,
          "EVP_DigestInit_ex");
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256Hasher::Update(std::string_view data) {
  Require(EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size()) == 1,
          "EVP_DigestUpdate");
}

Sha256Digest Sha256Hasher::Finish() {
  Sha256Digest digest{};
  unsigned int length = 0;
  Require(EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), digest.data(), &length) == 1 &&
              length == digest.size(),
          "EVP_DigestFinal_ex");
  return digest;
}

std::string DigestBytes(const Sha256Digest& digest) {
  return std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
}

std::string ToHex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

}  // namespace fieldsync::storage
