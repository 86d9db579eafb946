// SHA-256 digests (OpenSSL's libcrypto), used for the log's hash chain and the
// content-addressed blob store. Thread-safe: every function is pure. An
// OpenSSL failure (no memory, broken provider) aborts the process: a digest
// is never returned unless OpenSSL computed it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace fieldsync::storage {

inline constexpr size_t kSha256Size = 32;
using Sha256Digest = std::array<uint8_t, kSha256Size>;

// Returns the digest of the concatenation of `parts`.
Sha256Digest Sha256(std::initializer_list<std::string_view> parts);

// Incremental hashing for data that arrives in pieces (blob chunks).
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(std::string_view data);
  // Returns the digest; the hasher must not be used afterwards.
  Sha256Digest Finish();

 private:
  void* ctx_;  // EVP_MD_CTX*, owned.
};

// The digest as a 32-byte string, and lowercase hex for messages and paths.
std::string DigestBytes(const Sha256Digest& digest);
std::string ToHex(std::string_view bytes);

}  // namespace fieldsync::storage
