#include "domain/scope.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "domain/links.h"
#include "domain/reference.h"
#include "sync/event_codec.h"
#include "base/status_macros.h"

namespace fieldsync::domain {

UserScopes::UserScopes(const sync::ProjectionReader* reader, std::function<absl::Time()> clock)
    : reader_(reader), clock_(std::move(clock)) {}

absl::StatusOr<sync::Scope> UserScopes::ScopeOf(const v1::User& user) const {
  sync::Scope scope;
  if (user.disabled()) return scope;
  scope.subject_keys.insert(absl::StrCat("user/", user.id()));
  switch (user.role()) {
    case v1::ROLE_HQ_ANALYST:
    case v1::ROLE_ADMIN:
      scope.all = true;
      break;
    case v1::ROLE_COUNTY_STAFF:
    case v1::ROLE_TOWNSHIP_STAFF:
      for (const std::string& code : user.scope_area_codes()) scope.area_prefixes.push_back(code);
      break;
    case v1::ROLE_CADRE: {
      scope.subject_keys.insert(absl::StrCat("cadre/", user.id()));
      ASSIGN_OR_RETURN(std::vector<v1::Link> links,
                       LinksOfHolder(*reader_, /*cadre=*/true, user.id(), /*active_only=*/true,
                                     DateOf(clock_())));
      for (const v1::Link& link : links) {
        scope.subject_keys.insert(sync::SubjectKey(link.target()));
        // A cadre linked to a village works in the whole village: its
        // households included.
        if (link.target().kind() == v1::SUBJECT_KIND_VILLAGE) {
          scope.area_prefixes.push_back(link.target().id());
        }
      }
      break;
    }
    default:
      break;
  }
  return sync::Normalize(scope);
}

absl::StatusOr<sync::Scope> UserScopes::ScopeOfUser(std::string_view user_id) const {
  ASSIGN_OR_RETURN(std::optional<v1::User> user, FindUser(*reader_, user_id));
  if (!user) return sync::Scope();
  return ScopeOf(*user);
}

}  // namespace fieldsync::domain
