// Secrets and ids the server makes: bearer tokens, enrollment codes, random
// ids, and the hashes under which tokens and codes are stored (never their
// clear text), with the projection keys of those records (auth/...).
//
// Thread-safe: every function is pure or draws from OpenSSL's CSPRNG.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace fieldsync::server {

inline constexpr char kTokenPrefix[] = "fst_";
// The reserved id of the user that owns the node device and acts at bootstrap.
inline constexpr char kSystemUserId[] = "system";
// The id of the first admin user.
inline constexpr char kFirstAdminUserId[] = "admin";

// `n` bytes from OpenSSL's CSPRNG. A server that cannot make secrets must not
// run: a RAND_bytes failure (no entropy source) aborts the process.
std::string RandomBytes(size_t n);
// A new bearer token: "fst_" + base64url (no padding) of 32 random bytes.
std::string NewToken();
// True if `token` has the shape NewToken makes.
bool IsWellFormedToken(std::string_view token);
// Lowercase hex SHA-256 of a token or a normalized enrollment code.
std::string SecretHash(std::string_view secret);
// A new enrollment code: 20 Crockford base32 characters (100 bits) in groups
// of five, e.g. "7KQ2M-9XR4T-HC3VN-P0WZE".
std::string NewEnrollmentCode();
// The canonical form of a typed code (upper case, hyphens and spaces
// dropped, O->0, I/L->1); nullopt if it cannot be a code.
std::optional<std::string> NormalizeEnrollmentCode(std::string_view code);
// `bytes` random bytes as lowercase hex.
std::string RandomHex(size_t bytes);
// A random RFC 4122 version 4 UUID, lowercase.
std::string NewUuid();

namespace auth_keys {
std::string Token(std::string_view hash_hex);
std::string Code(std::string_view hash_hex);
std::string CodeUsed(std::string_view code_id);
std::string UserDevices(std::string_view user_id);
inline constexpr char kNodeId[] = "auth/node/id";
// Where versions before the key file kept the node's seed; erased at start
// (server/node_key.h).
inline constexpr char kLegacyNodeKey[] = "auth/node/key";
}  // namespace auth_keys

}  // namespace fieldsync::server
