// MergePolicy: what the sync engine asks the domain.
//
// The engine knows devices, sequences, signatures, clocks, scopes, the log and
// its projections; it knows nothing of households. For every event it asks a
// MergePolicy (implemented in domain/) three things:
//   1. Validate: is the event well-formed for its body, and may this author
//      write it? Stateless; runs before the commit on the pushing thread.
//   2. ReferencesOf / CheckReference: which other events and blobs does it
//      refer to, and does a required referenced event fit?
//   3. Merge: fold the event into entity state, in log order, reading and
//      writing projections through a ProjectionView; report how each mutable
//      field fared (WriteOutcome) and which conflicts it opened or joined.
//      Merge may still reject the event for a state-dependent reason (unknown
//      household, member added twice, conflict already resolved): the engine
//      then discards every write of that Merge and records a rejection.
// and, for pulls, to write the current state of a subject into a snapshot.
// The envelope's vocabulary is the domain's too: which subject kinds an event
// may name and what an area code looks like (IsEventSubjectKind,
// CheckAreaCode); the engine hard-codes neither. The area-code prefixes the
// engine indexes are the store's (storage::StoreOptions::scope_prefix_lengths).
//
// Determinism: Merge must be a pure function of the event, its EventMeta and
// the projections it reads, so that the projections always equal a fold of
// the log.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fieldsync/v1/event.pb.h"
#include "fieldsync/v1/sync_service.pb.h"
#include "sync/event_codec.h"

namespace fieldsync::sync {

// Why an event is refused (event.proto RejectionCode). `field` is the path of
// the offending field ("household_fields_set.patches[2].field"), or empty.
struct Rejection {
  v1::RejectionCode code = v1::REJECTION_CODE_UNSPECIFIED;
  std::string field;
  std::string message;
};

// Who wrote an event, as the server established it: never from the payload.
struct Author {
  // The user the event is attributed to (StoredEvent.actor).
  std::string actor;
  // That user's role.
  v1::Role role = v1::ROLE_UNSPECIFIED;
  // The device that signed the event (Event.device_id).
  std::string device_id;
  // The device that pushed it, when it relayed another device's event.
  std::string relayed_by;
  // The actor's unit (User.unit_id); empty for a user without one. Payload
  // identities that name a unit (FeedbackFiled.from_unit_id) must equal it.
  std::string unit_id;
};

// What the engine adds to an event it appends.
struct EventMeta {
  Author author;
  // The event's log offset.
  uint64_t offset = 0;
  // The HLC merges order by (StoredEvent.adopted_hlc).
  uint64_t adopted_hlc = 0;
  // True if the client's HLC was too far ahead and not adopted.
  bool hlc_flagged = false;
  // Server receipt time.
  absl::Time received_at;
  // The signing device's clock minus the server's, measured at push from
  // PushRequest.device_time against receipt; unset when the push did not say
  // or the event was relayed (the push's clock is the relay's).
  std::optional<absl::Duration> push_clock_offset;
};

// Read/write access to the projections key space as of one point of the log
// (earlier events' writes included). Used only during one Merge, on the
// store's committer thread; not thread-safe.
class ProjectionView {
 public:
  virtual ~ProjectionView() = default;
  virtual absl::StatusOr<std::optional<std::string>> Get(std::string_view key) = 0;
  // The entry nearest `key` under `prefix`, as Get sees entries: the first
  // sorting after it (forward) or the last before it; never `key` itself.
  // storage::CommitContext::Nearest states the rule; one ordered seek.
  virtual absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Nearest(
      std::string_view prefix, std::string_view key, bool forward) = 0;
  virtual void Put(std::string_view key, std::string_view value) = 0;
  virtual void Delete(std::string_view key) = 0;
};

// Read access to committed projections (pull snapshots, queries).
// Implementations are safe for concurrent use.
class ProjectionReader {
 public:
  virtual ~ProjectionReader() = default;
  virtual absl::StatusOr<std::optional<std::string>> Get(std::string_view key) const = 0;
  // Up to `limit` (key, value) pairs whose key starts with `prefix` and sorts
  // after `start_after` (empty: from the first), in key order.
  virtual absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(
      std::string_view prefix, std::string_view start_after, size_t limit) const = 0;
};

// The events and blobs an event refers to.
struct References {
  struct EventRef {
    // Path of the referring field, for a rejection ("visit_corrected.original_event_id").
    std::string field;
    std::string event_id;
    // Required: the event must already be in the log, or earlier in the same
    // push, else the engine rejects with UNKNOWN_REFERENCE; the policy then
    // checks it with CheckReference. Optional references (evidence, inspected
    // events) may point at events not pushed yet: they are marked pending.
    bool required = false;
  };
  struct BlobRef {
    std::string field;
    // 32-byte SHA-256. A blob not uploaded yet is marked pending, never a
    // rejection: photos travel later, on Wi-Fi.
    std::string sha256;
  };
  std::vector<EventRef> events;
  std::vector<BlobRef> blobs;
};

// The effect of one Merge.
struct MergeResult {
  // Set if the event must be refused after all; every write is discarded.
  std::optional<Rejection> rejection;
  // Effect on each mutable field (StoredEvent.writes); empty for insert-only bodies.
  std::vector<v1::WriteOutcome> writes;
  // Conflicts this event opened or joined (PushResult.conflict_recorded).
  std::vector<std::string> conflict_ids;
};

// Implementations must be safe for concurrent use: Validate, ReferencesOf and
// CheckReference run on pushing threads; Merge on the committer thread;
// AppendSnapshot on pulling threads.
class MergePolicy {
 public:
  virtual ~MergePolicy() = default;

  // True for bodies that bring their subject into being (a household's
  // registration). The engine places every other event's subject where the
  // server's records say it lives (SyncOptions::subject_area); a subject that
  // is not known yet is placed at such an event's own area_code, which must
  // be a known village, and later events of the same push find it there.
  // Default: no body creates its subject.
  virtual bool CreatesSubject(const v1::Event& /*event*/) const { return false; }

  // For an event that CreatesSubject: the existing subject the new one is
  // created in (a household in its village), which must be known and live at
  // the event's area_code (SyncOptions::subject_area), else the event is
  // rejected UNKNOWN_REFERENCE on area_code. Nullopt: the area_code is taken
  // as claimed. Default: nullopt.
  virtual std::optional<v1::SubjectRef> HomeOfCreatedSubject(const v1::Event& /*event*/) const {
    return std::nullopt;
  }

  // True if an event may name a subject of `kind` (the envelope check: an
  // event naming another kind is rejected SUBJECT_MISMATCH on subject.kind).
  // Called only for valid, specified kinds. Default: every such kind.
  virtual bool IsEventSubjectKind(v1::SubjectKind /*kind*/) const { return true; }

  // Nullopt if `area_code` is an area code an event may carry (the envelope
  // check) and a rejection record may be indexed under; else what is
  // expected, the message of an INVALID_VALUE rejection on area_code.
  // Default: 1 to 32 ASCII digits.
  virtual std::optional<std::string> CheckAreaCode(std::string_view area_code) const {
    if (area_code.empty() || area_code.size() > 32) return "area_code must be 1 to 32 digits";
    for (char c : area_code) {
      if (c < '0' || c > '9') return "area_code must be 1 to 32 digits";
    }
    return std::nullopt;
  }

  // Stateless checks of an authenticated event: required fields, ranges,
  // enums, subject kind against body, the author's role. The engine has
  // already checked the envelope (ids, sequence, signature, clock, scope).
  virtual std::optional<Rejection> Validate(const v1::Event& event, const Author& author) const = 0;

  // What the event refers to.
  virtual References ReferencesOf(const v1::Event& event) const = 0;

  // Checks a required reference against a referenced event (e.g. a visit
  // correction must point at a visit of the same subject, by the same user).
  // `author` wrote `event`; `referenced_actor` is the user `referenced` is
  // attributed to (StoredEvent.actor). Event ids are unique per signing device
  // only, so the engine may ask about several candidates with the id
  // `ref.event_id` (in log order); the reference holds if one fits.
  virtual std::optional<Rejection> CheckReference(const v1::Event& event, const Author& author,
                                                  const References::EventRef& ref,
                                                  const v1::Event& referenced,
                                                  std::string_view referenced_actor) const = 0;

  // Folds the event into entity state. Errors (storage, corrupt projections)
  // fail the whole push; a state-dependent refusal is MergeResult::rejection.
  virtual absl::StatusOr<MergeResult> Merge(const v1::Event& event, const EventMeta& meta,
                                            ProjectionView& view) const = 0;

  // Appends the current state of `subject` (its entity, members, plans,
  // links and open conflicts, and the reference records a client shows with
  // them, e.g. Snapshot.areas) to `out`. Nothing for a subject without state.
  // The engine drops an area a page already carries (same code).
  virtual absl::Status AppendSnapshot(const ProjectionReader& reader, const v1::SubjectRef& subject,
                                      v1::Snapshot* out) const = 0;

  // Appends to `out` the conflict records `stored` opened or resolved, as
  // they stand now (PullResponse.conflicts), unless `out` holds them already
  // (same id). Called by Pull for each event it returns; on pulling threads.
  // Default: nothing (a policy without conflict records).
  virtual absl::Status AppendConflictsOf(
      const ProjectionReader& /*reader*/, const LoggedEvent& /*stored*/,
      google::protobuf::RepeatedPtrField<v1::Conflict>* /*out*/) const {
    return absl::OkStatus();
  }
};

}  // namespace fieldsync::sync
