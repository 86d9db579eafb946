// Internals of ShuanglianPolicy::Merge shared by the per-body merges: typed
// access to projections through the engine's ProjectionView, conflict
// records, and the versioned-write rule (Contend). Not part of the domain's
// public API. Used on the committer thread only; not thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/proto_parse.h"
#include "domain/shuanglian_policy.h"
#include "fieldsync/v1/event.pb.h"
#include "fieldsync/v1/state.pb.h"
#include "sync/merge_policy.h"

namespace fieldsync::domain {

class MergeContext {
 public:
  MergeContext(const v1::Event& event, const sync::EventMeta& meta, sync::ProjectionView& view)
      : event_(event), meta_(meta), view_(view) {}

  const v1::Event& event() const { return event_; }
  const sync::EventMeta& meta() const { return meta_; }
  sync::ProjectionView& view() { return view_; }
  sync::MergeResult& result() { return result_; }
  sync::MergeResult TakeResult() { return std::move(result_); }

  // Refuses the event (the engine discards every write).
  void Reject(v1::RejectionCode code, std::string field, std::string message) {
    result_.rejection = sync::Rejection{code, std::move(field), std::move(message)};
  }
  bool rejected() const { return result_.rejection.has_value(); }

  // A message stored under `key`, or nullopt; DataLoss if it does not parse.
  template <typename M>
  absl::StatusOr<std::optional<M>> Load(std::string_view key) {
    absl::StatusOr<std::optional<std::string>> bytes = view_.Get(key);
    if (!bytes.ok()) return bytes.status();
    return base::ParseStoredOptional<M>(key, *bytes);
  }
  void Save(std::string_view key, const google::protobuf::MessageLite& message);
  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) { return view_.Get(key); }
  void Put(std::string_view key, std::string_view value) { view_.Put(key, value); }
  void Delete(std::string_view key) { view_.Delete(key); }

  // This event as a conflict side (no value set).
  v1::ConflictSide SideOfEvent() const;
  // A VersionedValue written by this event.
  v1::VersionedValue VersionedByEvent(const v1::FieldValue& value, uint64_t version) const;
  google::protobuf::Timestamp ReceivedAt() const;
  // A fresh conflict id: "c<offset>.<n>".
  std::string NewConflictId();
  // Records that this event opened or joined `id` (PushResult.conflict_recorded).
  void NoteConflict(const std::string& id);

 private:
  const v1::Event& event_;
  const sync::EventMeta& meta_;
  sync::ProjectionView& view_;
  sync::MergeResult result_;
  int conflicts_made_ = 0;
};

// True if `a` wins over `b` for concurrent writes: higher adopted HLC, then
// higher device id.
bool Wins(const v1::ConflictSide& a, const v1::ConflictSide& b);

// Stores a conflict record with its indexes; `owner_key` is the subject key
// whose state lists it while open (a household or a village).
absl::Status SaveConflict(MergeContext& mc, const v1::Conflict& conflict,
                          const std::string& owner_key);

// One write to a versioned value (a household or member field, a plan's item
// list) under the rule of docs/sync.md "Merge":
//   sequential (base == current version, or the holder is the writer's own
//   device) → applied; else concurrent (base behind or ahead of the current
//   version) → the higher (HLC, device) holds the value; a concurrent write
//   opens a conflict unless one is open on the field, and every write to a
//   field with an open conflict joins it with its device's latest write.
//   A concurrent write to a value that was never set (no holder) applies and
//   opens a conflict "against unset" whose only side is the write.
struct Contest {
  v1::ConflictKind kind = v1::CONFLICT_KIND_FIELD_CONCURRENT;
  v1::SubjectRef entity;
  std::string field;
  std::string area_code;
  std::string owner_key;  // Subject key whose state lists open conflicts.
  uint64_t current_version = 0;
  uint64_t base_version = 0;
  // The side holding the value now if no aux record names it (a value set
  // when the entity was created); nullopt if never set.
  std::optional<v1::ConflictSide> implicit_holder;
  // This write (SideOfEvent with its value).
  v1::ConflictSide incoming;
};
struct ContestResult {
  bool apply = false;
  v1::WriteResult result = v1::WRITE_RESULT_UNSPECIFIED;
  std::string conflict_id;  // Opened or joined; empty if none.
  bool opened = false;      // A new conflict (the owner's open list must gain it).
};
absl::StatusOr<ContestResult> Contend(MergeContext& mc, const Contest& contest);

// Adds / removes a conflict id from a household's open list.
void AddOpenConflict(v1::Household& household, const std::string& id);
void RemoveOpenConflict(v1::Household& household, const std::string& id);

}  // namespace fieldsync::domain
