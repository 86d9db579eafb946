// Scope: what one user may read and write, as the sync engine sees it.
//
// A user's Scope derives from their role, their area codes and their active
// links: a rule of the domain, which implements ScopeResolver below. The
// server asks it once per call (carried by the call's admission) and hands
// the scope to the engine with every Push and Pull; the engine asks the
// resolver only for the signer of a relayed event (PushContext::scope_of_user)
// and never computes scopes itself. A scope is a set of admin-area code
// prefixes (a county's 6 digits, a township's 9, a village's 12, or any other
// leading part of a 12-digit code) plus single subjects named by their subject
// key (sync/event_codec.h SubjectKey, e.g. "household/<id>"), or everything.
//
// The digest identifies a scope in pull checkpoints: equal scopes (after
// Normalize) have equal digests, whatever order their parts were listed in.
//
// Everything here is a pure function of its arguments and thread-safe.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace fieldsync::sync {

struct Scope {
  // Everything (HQ analysts, admins).
  bool all = false;
  // Area-code prefixes: everything whose area code starts with one of them.
  std::vector<std::string> area_prefixes;
  // Single subjects by subject key, wherever they live.
  std::set<std::string> subject_keys;
};

// Where scopes come from: implemented by the domain (domain/scope.h), which
// owns users, links and the rule; the server and the engine only ask.
// Implementations are thread-safe.
class ScopeResolver {
 public:
  virtual ~ScopeResolver() = default;
  // The scope of the user with id `user_id` as of now (Normalize applied);
  // the empty scope for an unknown or disabled user. Errors: the store's.
  virtual absl::StatusOr<Scope> ScopeOfUser(std::string_view user_id) const = 0;
};

// The same scope in canonical form: prefixes sorted, without duplicates and
// without a prefix that a shorter one already covers; an `all` scope drops its
// prefixes and subjects; subjects stay as they are (a subject key carries no
// area, so it cannot be folded into a prefix here).
Scope Normalize(const Scope& scope);

// The canonical byte form of Normalize(scope): the input of the digest.
std::string CanonicalScopeBytes(const Scope& scope);

// 32 bytes naming a scope: the first 24 bytes of SHA-256 of `salt` and the
// canonical form, then an 8-byte check of those 24 bytes and the salt. The
// salt is a deployment identity (SyncOptions::scope_digest_salt) so that a
// checkpoint from another deployment never matches. The check lets Pull tell
// a digest this deployment issued (whose scope it may have forgotten:
// SCOPE_CHANGED) from one it never issued (UNKNOWN_CURSOR) without keeping
// every scope it ever served; it is not a secret (the salt is the node's
// device id), only a guard against invented and mangled cursors.
std::string ScopeDigest(const Scope& scope, std::string_view salt = {});

// True if `digest` has the form and check ScopeDigest(any scope, salt) gives.
bool IsIssuedScopeDigest(std::string_view digest, std::string_view salt = {});

// True if an area code lies inside the scope's area prefixes (or the scope is
// `all`). The empty area code lies inside only `all`.
bool CoversArea(const Scope& scope, std::string_view area_code);

// True if every area code under `prefix` lies inside the scope: `all`, or
// `prefix` starts with one of the scope's prefixes. The empty prefix needs
// `all`.
bool CoversPrefix(const Scope& scope, std::string_view prefix);

// True if a subject with key `subject_key` living in `area_code` is in scope:
// its area is covered or the subject is named.
bool Contains(const Scope& scope, std::string_view area_code, std::string_view subject_key);

}  // namespace fieldsync::sync
