#include "domain/merge_context.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/area_code.h"
#include "base/status_macros.h"
#include "base/time.h"
#include "domain/domain_keys.h"
#include "sync/event_codec.h"

namespace fieldsync::domain {

void MergeContext::Save(std::string_view key, const google::protobuf::MessageLite& message) {
  view_.Put(key, sync::DeterministicBytes(message));
}

v1::ConflictSide MergeContext::SideOfEvent() const {
  v1::ConflictSide side;
  side.set_event_id(event_.event_id());
  side.set_offset(meta_.offset);
  side.set_device_id(event_.device_id());
  side.set_actor(meta_.author.actor);
  side.set_hlc(meta_.adopted_hlc);
  return side;
}

v1::VersionedValue MergeContext::VersionedByEvent(const v1::FieldValue& value,
                                                  uint64_t version) const {
  v1::VersionedValue out;
  *out.mutable_value() = value;
  out.set_version(version);
  out.set_offset(meta_.offset);
  out.set_hlc(meta_.adopted_hlc);
  out.set_device_id(event_.device_id());
  out.set_actor(meta_.author.actor);
  return out;
}

google::protobuf::Timestamp MergeContext::ReceivedAt() const {
  return base::ToTimestamp(meta_.received_at);
}

std::string MergeContext::NewConflictId() {
  return absl::StrCat("c", meta_.offset, ".", conflicts_made_++);
}

void MergeContext::NoteConflict(const std::string& id) {
  auto& ids = result_.conflict_ids;
  if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
}

bool Wins(const v1::ConflictSide& a, const v1::ConflictSide& b) {
  if (a.hlc() != b.hlc()) return a.hlc() > b.hlc();
  return a.device_id() > b.device_id();
}

absl::Status SaveConflict(MergeContext& mc, const v1::Conflict& conflict,
                          const std::string& owner_key) {
  mc.Save(keys::Conflict(conflict.id()), conflict);
  const std::string flag = conflict.open() ? "o" : "c";
  const std::string& area = conflict.area_code();
  if (area.size() == base::kAreaCodeDigits) {
    for (size_t length : base::kDefaultScopePrefixLengths) {
      mc.Put(keys::ConflictIndex(area.substr(0, length), conflict.created_offset(), conflict.id()),
             flag);
    }
  }
  mc.Put(keys::ConflictAll(conflict.created_offset(), conflict.id()), flag);
  if (conflict.open()) {
    mc.Put(keys::OpenConflict(owner_key, conflict.id()), "");
  } else {
    mc.Delete(keys::OpenConflict(owner_key, conflict.id()));
  }
  return absl::OkStatus();
}

namespace {

// Puts `side` into the conflict: replaces the side of the same device, else
// adds it; sides stay in offset order.
void UpsertSide(v1::Conflict& conflict, const v1::ConflictSide& side) {
  bool replaced = false;
  for (v1::ConflictSide& existing : *conflict.mutable_sides()) {
    if (existing.device_id() == side.device_id()) {
      if (existing.offset() <= side.offset()) existing = side;
      replaced = true;
      break;
    }
  }
  if (!replaced) *conflict.add_sides() = side;
  std::sort(
      conflict.mutable_sides()->begin(), conflict.mutable_sides()->end(),
      [](const v1::ConflictSide& a, const v1::ConflictSide& b) { return a.offset() < b.offset(); });
}

// Marks `winner` as the conflict's winning side. A side is named by its
// signing device and event id together: event ids are unique per device
// only, so two devices' writes may carry the same one.
void SetWinner(v1::Conflict& conflict, const v1::ConflictSide& winner) {
  for (int i = 0; i < conflict.sides_size(); ++i) {
    if (conflict.sides(i).device_id() == winner.device_id() &&
        conflict.sides(i).event_id() == winner.event_id()) {
      conflict.set_winner_side(static_cast<uint32_t>(i));
      return;
    }
  }
}

}  // namespace

absl::StatusOr<ContestResult> Contend(MergeContext& mc, const Contest& c) {
  const std::string entity_key = sync::SubjectKey(c.entity);
  ASSIGN_OR_RETURN(std::optional<v1::ConflictSide> holder,
                   mc.Load<v1::ConflictSide>(keys::FieldHolder(entity_key, c.field)));
  if (!holder && c.current_version > 0) holder = c.implicit_holder;

  ContestResult out;
  // A base other than the current version is a concurrent write, whether it
  // is behind the current version or ahead of it (a device whose state came
  // from another server, a lost reset, 2^64-1): the same rule decides both.
  const bool sequential = c.base_version == c.current_version ||
                          (holder && holder->device_id() == c.incoming.device_id());
  // No holder: the field (or plan) was never set, so nothing stands against
  // the write. It applies; when it is not sequential it still opens a
  // conflict "against unset" (below) that keeps the patch for review.
  out.apply = sequential || !holder || Wins(c.incoming, *holder);
  out.result = sequential ? v1::WRITE_RESULT_APPLIED
                          : (out.apply ? v1::WRITE_RESULT_WON : v1::WRITE_RESULT_LOST);

  ASSIGN_OR_RETURN(std::optional<std::string> open_id,
                   mc.Get(keys::FieldConflict(entity_key, c.field)));
  if (open_id) {
    ASSIGN_OR_RETURN(std::optional<v1::Conflict> conflict,
                     mc.Load<v1::Conflict>(keys::Conflict(*open_id)));
    if (!conflict) {
      return absl::DataLossError(absl::StrCat("open conflict ", *open_id, " is missing"));
    }
    // A concurrent write also records the value it raced against.
    if (!sequential && holder) UpsertSide(*conflict, *holder);
    UpsertSide(*conflict, c.incoming);
    // out.apply is true whenever holder is empty.
    SetWinner(*conflict, out.apply ? c.incoming : *holder);
    RETURN_IF_ERROR(SaveConflict(mc, *conflict, c.owner_key));
    out.conflict_id = *open_id;
  } else if (!sequential) {
    v1::Conflict conflict;
    conflict.set_id(mc.NewConflictId());
    conflict.set_kind(c.kind);
    *conflict.mutable_subject() = c.entity;
    conflict.set_area_code(c.area_code);
    conflict.set_field(c.field);
    conflict.set_base_version(c.base_version);
    // Against "unset" (no holder) the record lists the write alone: the
    // unset state has no event to stand for it. Leaving it out keeps the set
    // of sides the same whatever order the writes arrive in (a sequential
    // first write later joins as the holder side).
    if (holder) UpsertSide(conflict, *holder);
    UpsertSide(conflict, c.incoming);
    SetWinner(conflict, out.apply ? c.incoming : *holder);
    conflict.set_open(true);
    conflict.set_created_offset(mc.meta().offset);
    *conflict.mutable_created_at() = mc.ReceivedAt();
    RETURN_IF_ERROR(SaveConflict(mc, conflict, c.owner_key));
    mc.Put(keys::FieldConflict(entity_key, c.field), conflict.id());
    out.conflict_id = conflict.id();
    out.opened = true;
  }
  if (!out.conflict_id.empty()) mc.NoteConflict(out.conflict_id);
  if (out.apply) mc.Save(keys::FieldHolder(entity_key, c.field), c.incoming);
  return out;
}

void AddOpenConflict(v1::Household& household, const std::string& id) {
  for (const std::string& existing : household.open_conflict_ids()) {
    if (existing == id) return;
  }
  household.add_open_conflict_ids(id);
}

void RemoveOpenConflict(v1::Household& household, const std::string& id) {
  auto* ids = household.mutable_open_conflict_ids();
  ids->erase(std::remove(ids->begin(), ids->end(), id), ids->end());
}

}  // namespace fieldsync::domain
