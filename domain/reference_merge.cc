// The domain's fold of the server's reference events (AreaImported,
// UnitUpserted, UserUpserted): the one record of each area, unit and user
// (domain/reference.h) and the name indexes AdminService lists by. These
// bodies reach Merge only from the server's writer; Validate refuses them
// from a push.
#include "domain/body_merges.h"
#include "domain/domain_keys.h"

namespace fieldsync::domain {

absl::Status MergeAreaImported(MergeContext& mc) {
  for (const v1::Area& area : mc.event().area_imported().areas()) {
    mc.Save(keys::Area(area.code()), area);
  }
  return absl::OkStatus();
}

absl::Status MergeUnitUpserted(MergeContext& mc) {
  const v1::Unit& unit = mc.event().unit_upserted().unit();
  absl::StatusOr<std::optional<v1::Unit>> old = mc.Load<v1::Unit>(keys::Unit(unit.id()));
  if (!old.ok()) return old.status();
  // A renamed unit moves in the name order.
  if (old->has_value()) mc.Delete(keys::UnitName((*old)->name(), unit.id()));
  mc.Put(keys::UnitName(unit.name(), unit.id()), "");
  mc.Save(keys::Unit(unit.id()), unit);
  return absl::OkStatus();
}

absl::Status MergeUserUpserted(MergeContext& mc) {
  const v1::User& user = mc.event().user_upserted().user();
  absl::StatusOr<std::optional<v1::User>> old = mc.Load<v1::User>(keys::User(user.id()));
  if (!old.ok()) return old.status();
  if (old->has_value()) mc.Delete(keys::UserName((*old)->name(), user.id()));
  mc.Put(keys::UserName(user.name(), user.id()), "");
  mc.Save(keys::User(user.id()), user);
  return absl::OkStatus();
}

}  // namespace fieldsync::domain
