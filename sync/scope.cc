#include "sync/scope.h"

#include <algorithm>

#include "base/big_endian.h"
#include "storage/key_format.h"
#include "storage/sha256.h"

namespace fieldsync::sync {

Scope Normalize(const Scope& scope) {
  Scope out;
  if (scope.all) {
    out.all = true;
    return out;
  }
  std::vector<std::string> prefixes = scope.area_prefixes;
  std::sort(prefixes.begin(), prefixes.end());
  prefixes.erase(std::unique(prefixes.begin(), prefixes.end()), prefixes.end());
  for (std::string& prefix : prefixes) {
    // Sorted order puts a covering (shorter) prefix right before what it
    // covers, so comparing with the last kept one is enough.
    if (!out.area_prefixes.empty() && prefix.starts_with(out.area_prefixes.back())) continue;
    out.area_prefixes.push_back(std::move(prefix));
  }
  out.subject_keys = scope.subject_keys;
  return out;
}

std::string CanonicalScopeBytes(const Scope& scope) {
  const Scope canonical = Normalize(scope);
  std::string out;
  out.push_back(canonical.all ? 'A' : 'S');
  auto add = [&out](char tag, std::string_view value) {
    out.push_back(tag);
    base::AppendBe64(&out, value.size());
    out.append(value);
  };
  for (const std::string& prefix : canonical.area_prefixes) add('p', prefix);
  for (const std::string& key : canonical.subject_keys) add('s', key);
  return out;
}

namespace {

constexpr size_t kScopeDigestBody = 24;
constexpr size_t kScopeDigestCheck = 8;

std::string SaltFrame(std::string_view salt) {
  std::string frame;
  base::AppendBe64(&frame, salt.size());
  return frame;
}

// The check bytes of a digest body under `salt`.
std::string DigestCheck(std::string_view body, std::string_view salt) {
  const std::string frame = SaltFrame(salt);
  return storage::DigestBytes(storage::Sha256({"fieldsync.scope-check.v1", frame, salt, body}))
      .substr(0, kScopeDigestCheck);
}

}  // namespace

std::string ScopeDigest(const Scope& scope, std::string_view salt) {
  const std::string frame = SaltFrame(salt);
  std::string digest =
      storage::DigestBytes(
          storage::Sha256({"fieldsync.scope.v1", frame, salt, CanonicalScopeBytes(scope)}))
          .substr(0, kScopeDigestBody);
  digest.append(DigestCheck(digest, salt));
  return digest;
}

bool IsIssuedScopeDigest(std::string_view digest, std::string_view salt) {
  if (digest.size() != kScopeDigestBody + kScopeDigestCheck) return false;
  return DigestCheck(digest.substr(0, kScopeDigestBody), salt) ==
         digest.substr(kScopeDigestBody);
}

bool CoversArea(const Scope& scope, std::string_view area_code) {
  if (scope.all) return true;
  if (area_code.empty()) return false;
  for (const std::string& prefix : scope.area_prefixes) {
    if (area_code.starts_with(prefix)) return true;
  }
  return false;
}

bool CoversPrefix(const Scope& scope, std::string_view prefix) {
  if (scope.all) return true;
  if (prefix.empty()) return false;
  return CoversArea(scope, prefix);
}

bool Contains(const Scope& scope, std::string_view area_code, std::string_view subject_key) {
  if (CoversArea(scope, area_code)) return true;
  return !subject_key.empty() &&
         scope.subject_keys.find(std::string(subject_key)) != scope.subject_keys.end();
}

}  // namespace fieldsync::sync
