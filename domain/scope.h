// The scope a user derives from their role and links (docs/authorization.md
// "Scope"): the domain's rule, the only one. The server asks it once per call
// (server/auth.h Admission::scope); the sync engine asks it, through the
// sync::ScopeResolver interface, for the signer of a relayed event.
//
//   - HQ analysts and admins: everything;
//   - county and township staff: their scope_area_codes (area prefixes);
//   - cadres: the subjects of their active links (households, villages,
//     counties), and a linked village's whole area (its households);
//   - everyone: their own user record (and a cadre their cadre record);
//   - a disabled user: nothing.
// Links are active by domain/links.h LinkActive on today's date (China
// Standard Time) by the injected clock.
//
// Reads committed projections; thread-safe.
#pragma once

#include <functional>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fieldsync/v1/state.pb.h"
#include "sync/merge_policy.h"
#include "sync/scope.h"

namespace fieldsync::domain {

class UserScopes final : public sync::ScopeResolver {
 public:
  // `reader` must outlive this object; `clock` tells which links are active.
  UserScopes(const sync::ProjectionReader* reader, std::function<absl::Time()> clock);

  // The scope of `user` (a record as the caller read it, e.g. the
  // authenticated principal's), Normalize applied. Errors: the store's.
  absl::StatusOr<sync::Scope> ScopeOf(const v1::User& user) const;

  // sync::ScopeResolver: reads the user record first (domain/reference.h).
  absl::StatusOr<sync::Scope> ScopeOfUser(std::string_view user_id) const override;

 private:
  const sync::ProjectionReader* reader_;
  std::function<absl::Time()> clock_;
};

}  // namespace fieldsync::domain
