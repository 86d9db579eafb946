#include "server/secrets.h"

#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "storage/sha256.h"

namespace fieldsync::server {
namespace {

constexpr std::string_view kCrockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr size_t kCodeChars = 20;

}  // namespace

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  // RAND_bytes fails only if the CSPRNG cannot be seeded; a server that
  // cannot make secrets must not run.
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::fprintf(stderr, "fieldsyncd: OpenSSL RAND_bytes failed; cannot make secrets\n");
    std::abort();
  }
  return out;
}

std::string NewToken() {
  return absl::StrCat(kTokenPrefix, absl::WebSafeBase64Escape(RandomBytes(32)));
}

bool IsWellFormedToken(std::string_view token) {
  constexpr std::string_view kPrefix = kTokenPrefix;
  if (token.size() != kPrefix.size() + 43 || !token.starts_with(kPrefix)) return false;
  for (char c : token.substr(kPrefix.size())) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string SecretHash(std::string_view secret) {
  return storage::ToHex(storage::DigestBytes(storage::Sha256({secret})));
}

std::string NewEnrollmentCode() {
  std::string random = RandomBytes(kCodeChars);
  std::string code;
  for (size_t i = 0; i < kCodeChars; ++i) {
    if (i > 0 && i % 5 == 0) code.push_back('-');
    // 32 divides 256: every character is equally likely.
    code.push_back(kCrockford[static_cast<unsigned char>(random[i]) % 32]);
  }
  return code;
}

std::optional<std::string> NormalizeEnrollmentCode(std::string_view code) {
  if (code.size() > 64) return std::nullopt;
  std::string out;
  for (char c : code) {
    if (c == '-' || c == ' ') continue;
    c = absl::ascii_toupper(static_cast<unsigned char>(c));
    if (c == 'O') c = '0';
    if (c == 'I' || c == 'L') c = '1';
    if (kCrockford.find(c) == std::string_view::npos) return std::nullopt;
    out.push_back(c);
  }
  if (out.size() != kCodeChars) return std::nullopt;
  return out;
}

std::string RandomHex(size_t bytes) { return storage::ToHex(RandomBytes(bytes)); }

std::string NewUuid() {
  std::string b = RandomBytes(16);
  b[6] = static_cast<char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);
  std::string hex = storage::ToHex(b);
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                      hex.substr(16, 4), "-", hex.substr(20));
}

namespace auth_keys {
std::string Token(std::string_view hash_hex) {
  return absl::StrCat("auth/token/", std::string(hash_hex));
}
std::string Code(std::string_view hash_hex) {
  return absl::StrCat("auth/code/", std::string(hash_hex));
}
std::string CodeUsed(std::string_view code_id) {
  return absl::StrCat("auth/code_used/", std::string(code_id));
}
std::string UserDevices(std::string_view user_id) {
  return absl::StrCat("auth/user_devices/", std::string(user_id));
}
}  // namespace auth_keys

}  // namespace fieldsync::server
