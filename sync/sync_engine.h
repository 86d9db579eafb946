// SyncEngine: offline batches in, conflicts surfaced, scoped pulls out.
//
// The engine sits between the gRPC handlers and the event store:
//   - Push takes a batch of signed events from a device (or a tablet relaying
//     other devices' events) and answers one PushResult per event: accepted,
//     duplicate, rejected or conflict recorded. It checks sequencing (gapless
//     device_seq per device), idempotency (device_id, event_id), the Ed25519
//     signature against the device's enrolled key, the client's clock, the
//     signer's role and scope and the domain's validation (a relayed event is
//     judged as its signer's: the relay is transport); merges every accepted event into entity
//     state through the MergePolicy inside the store's commit (same WriteBatch
//     as the log record: state, conflicts, rejections, device high-water
//     marks); and answers once the batch is durable.
//   - Pull answers what changed in a scope after a checkpoint, a snapshot to
//     start from (first sync, unusable cursor), and the additions and removals
//     of a scope change.
//   - GetHistory and ListRejections serve the QueryService; the domain's
//     queries live in domain/queries.h.
// The protocol is described in docs/sync.md.
//
// Thread safety: a SyncEngine is safe for concurrent use from any number of
// threads without external synchronization.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fieldsync/v1/event.pb.h"
#include "fieldsync/v1/query_service.pb.h"
#include "fieldsync/v1/sync_service.pb.h"
#include "storage/event_store.h"
#include "sync/device_keys.h"
#include "sync/event_codec.h"
#include "sync/hlc.h"
#include "sync/merge_policy.h"
#include "sync/scope.h"
#include "sync/store_reader.h"

namespace fieldsync::sync {

// Settings of the engine. Every field documents its meaning and its default;
// the server fills them from LimitsConfig.
struct SyncOptions {
  // Most events in one push; more answers RESOURCE_EXHAUSTED. Default 500.
  size_t max_push_events = 500;
  // Most bytes of events (serialized) in one push; more answers
  // RESOURCE_EXHAUSTED. Default 2 MiB.
  size_t max_push_bytes = 2 << 20;
  // Largest serialized event; a bigger one is rejected TOO_LARGE. Default 64 KiB.
  size_t max_event_bytes = 64 << 10;
  // How far an event's HLC may run ahead of server time and still be
  // adopted. Default 5 minutes.
  absl::Duration max_hlc_skew = absl::Minutes(5);
  // Default and cap of PullRequest.max_events. Default 1000.
  size_t max_pull_events = 1000;
  // Default and cap of PullRequest.max_bytes. Default 1 MiB.
  size_t max_pull_bytes = 1 << 20;
  // Most subjects in one snapshot page. Default 500.
  size_t snapshot_page_subjects = 500;
  // A scope change that would remove more subjects than this answers RESET
  // (SCOPE_CHANGED) with a full snapshot instead. Default 10000.
  size_t max_scope_change_subjects = 10000;
  // Cap (and default 100) of page sizes of GetHistory and ListRejections.
  size_t max_page_size = 1000;
  // Most log records and index entries one Pull, GetHistory or ListRejections
  // call reads from the store, whether it returns them or filters them out
  // (a Pull of a short prefix reads the whole log; a scope with little in it
  // skips most of what it reads). A call that reaches it answers what it has
  // with more = true and a cursor past the last record it examined (Pull:
  // checkpoint or snapshot_token; GetHistory: next_after_offset; rejections:
  // next_page_token), so the client resumes; each call examines at least one
  // record (progress). Default 10000 (limits.max_examined_records).
  size_t max_examined_records = 10000;
  // Cursors below this offset answer RESET (COMPACTED): the oldest offset the
  // server still serves incrementally. Default 0 (everything).
  uint64_t oldest_incremental_offset = 0;
  // Mixed into scope digests (a deployment identity), so a checkpoint from
  // another deployment never matches. Default "".
  std::string scope_digest_salt;
  // How many scopes (by digest) the engine remembers to compute scope-change
  // additions and removals; an unknown old scope answers RESET
  // (SCOPE_CHANGED). Default 100000.
  size_t scope_memory = 100000;
  // The server's wall clock. Default absl::Now.
  std::function<absl::Time()> clock;
  // Where a subject really lives, as the server's records say: the area code
  // of a household's village, of a village or area itself, of a unit, of a
  // user's (cadre's) unit, of a device's user's unit; "" for a user without a
  // unit; nullopt for a subject the server does not know. An error fails the
  // push (use it for storage errors only). Push checks the scope against this
  // area, never against the area_code an event claims, and rejects an event
  // whose area_code differs (SUBJECT_MISMATCH, field "area_code"); see
  // docs/sync.md "Scope". Called on pushing threads: must be thread-safe.
  // Default unset: an event's own area_code is taken as its subject's area
  // (for tests of the engine alone; the server always sets it).
  std::function<absl::StatusOr<std::optional<std::string>>(const v1::SubjectRef& subject)>
      subject_area;
};

// Who pushes, as the server authenticated them.
struct PushContext {
  // The token's user: the actor of the events its own device signed.
  std::string actor;
  // That user's role.
  v1::Role role = v1::ROLE_UNSPECIFIED;
  // That user's unit (User.unit_id); empty if none.
  std::string unit_id;
  // The token's device. Events signed by another device are relays: they keep
  // their signer's device_id, and relayed_by is this device.
  std::string device_id;
  // The actor's scope (Normalize is applied by the engine): the scope of the
  // events the token's own device signed.
  Scope scope;
  // The area of the actor's unit ("" without one; server: Directory::
  // AreaOfUser). Records of events of unproven origin pushed by this device
  // are filed under it (and under `device_id`), never under what the event
  // claims.
  std::string area_code;
  // Receipt time; InfinitePast = the engine's clock.
  absl::Time now = absl::InfinitePast();
  // The pushing device's clock when it sent the push (PushRequest.device_time);
  // InfinitePast = not given. EventMeta::push_clock_offset of its own events.
  absl::Time device_time = absl::InfinitePast();
  // The scope of the user a relayed event's signing device is enrolled to: a
  // relayed event is judged in its signer's scope only, never in the relay's
  // (`scope`), so that a relay can neither widen nor spend the signer's
  // writes. The server always sets it; unset (engine tests) means the signer's
  // scope is taken to be `scope`.
  std::function<absl::StatusOr<Scope>(std::string_view user_id)> scope_of_user;
  // Whether a role may push events at all: the server fills it from the Push
  // row of its policy table (one source of truth), and the engine applies it
  // to every event's signer's role, so that a relay cannot write for a
  // read-only role (PERMISSION_DENIED). Unset: every role may.
  std::function<bool(v1::Role role)> may_push;
};

// The answer to a push.
struct PushOutcome {
  // Results in request order (one per SignedEvent), next_expected_seq and server_time.
  v1::PushResponse response;
  size_t accepted = 0;
  size_t duplicates = 0;
  size_t rejected = 0;
  size_t conflicts = 0;
  size_t held = 0;
};

// An appended event that refers to a blob which was not uploaded yet when the
// event was appended (a pending-blob marker, sync/pend/b/): who signed it and
// where it lives, so the server can decide who may upload the blob.
struct BlobReference {
  uint64_t offset = 0;    // The referring event's offset.
  std::string device_id;  // Its signing device.
  std::string area_code;  // Its area code and subject key (as Pull filters by).
  std::string subject_key;
};

// The server's own signing device (the node): it signs the events the server
// makes (admin changes), so they verify like any device's. Implementations
// must be thread-safe (Sign runs on the store's committer thread).
class EventSigner {
 public:
  virtual ~EventSigner() = default;
  // The node's device id (Event.device_id of its events).
  virtual const std::string& device_id() const = 0;
  // The Ed25519 signature of `bytes` (the encoded event, as the log keeps it).
  // An error fails the append it belongs to.
  virtual absl::StatusOr<std::string> Sign(std::string_view bytes) const = 0;
  // The last device_seq the node used before the engine tracked its
  // sequence (a store written by an older version kept it in the node's
  // device record); its next event then takes a greater number. Default 0.
  virtual uint64_t sequence_floor() const { return 0; }
};

// One server-made event: an admin change (area import, unit, user, link,
// enrollment code, device), appended by SyncEngine::AppendServerEvents.
struct ServerEvent {
  // Subject, area_code and body set. The engine fills the envelope: event_id
  // (a new UUID), device_id (the signer's), device_seq, hlc and device_time;
  // then encodes it once and signs the bytes (StoredEvent.event, .signature).
  v1::Event event;
  // The user it is attributed to (StoredEvent.actor), and that user's role
  // (EventMeta.author.role of the policy's merge).
  std::string actor;
  v1::Role actor_role = v1::ROLE_UNSPECIFIED;
  // Optional. Runs in the commit, on the committer thread, in log order,
  // before the policy's merge, with `stored` complete but for the writes and
  // hashes (offset set): re-checks what may have changed since the request
  // was validated and writes the server's own projections. A non-OK status
  // fails the whole append (nothing of it is written) and is its answer.
  std::function<absl::Status(storage::CommitContext&, const LoggedEvent&)> apply;
};

class SyncEngine {
 public:
  // Borrowed pointers; each must outlive the engine.
  SyncEngine(storage::EventStore* store, const MergePolicy* policy, const DeviceKeys* keys,
             SyncOptions options = {});
  ~SyncEngine();
  SyncEngine(const SyncEngine&) = delete;
  SyncEngine& operator=(const SyncEngine&) = delete;

  // Appends a batch of signed events and answers exactly one result per
  // event, in order, once everything it wrote is durable: the signature is
  // verified over the bytes received, which are then parsed and stored
  // verbatim. An event above its signer's next expected device_seq (a gap, or
  // behind an event of the same signer that did not take its number) is Held
  // with the number expected: not judged, nothing written.
  // Errors (nothing of the batch is written):
  //   RESOURCE_EXHAUSTED over max_push_events or max_push_bytes (the sum of
  //     the event bytes);
  //   UNAVAILABLE if the store is closing; the store's or DeviceKeys' error
  //   otherwise.
  // Per-event refusals are results (Rejected, Held), never errors.
  absl::StatusOr<PushOutcome> Push(const PushContext& context,
                                   const std::vector<v1::SignedEvent>& events);

  // As Push, but never waits for the commit: validation (signatures, point
  // reads) runs on the calling thread (the server's read executor, never a
  // gRPC callback thread), the merge on the store's committer thread, then
  // `done` is called exactly once, from the store's writer thread once the
  // batch is durable (or from the calling thread on an early error). `done`
  // must not block.
  using PushCallback = std::function<void(absl::StatusOr<PushOutcome>)>;
  void PushAsync(PushContext context, std::vector<v1::SignedEvent> events, PushCallback done);

  // What changed in `scope` after request.cursor, bounded by count and bytes
  // returned and by options.max_examined_records read; or a snapshot (first
  // sync, RESET); or a scope change's additions and removals. Errors: the
  // store's.
  absl::StatusOr<v1::PullResponse> Pull(const Scope& scope, const v1::PullRequest& request);

  // Appends server-made events as one unit, through the same commit as
  // pushes: the engine's HLC, the signer's sequence in the engine's
  // high-water marks (sync/dev/<node>), the policy's merge (MergePolicy::
  // Merge with the actor's role), the subject index, the event_id index.
  // `done` runs once, on the committer thread (must not block; or on the
  // calling thread for an empty batch), with the stored events (offsets set,
  // hashes not) or the error; nothing of the batch is written on error:
  //   an apply's status; FAILED_PRECONDITION when the policy refuses an event
  //   (the message names the field and the rejection code); DATA_LOSS for a
  //   corrupt high-water mark; the signer's error; UNAVAILABLE if the store is
  //   closing; the store's otherwise.
  // `signer` must outlive the call (until `done` ran).
  using ServerEventsCallback = std::function<void(absl::StatusOr<std::vector<LoggedEvent>>)>;
  void AppendServerEventsAsync(const EventSigner& signer, std::vector<ServerEvent> events,
                               ServerEventsCallback done);
  // As AppendServerEventsAsync, blocking until the events are durable.
  absl::StatusOr<std::vector<LoggedEvent>> AppendServerEvents(const EventSigner& signer,
                                                              std::vector<ServerEvent> events);

  // The device_seq the engine expects next from `device_id` (1 if none yet).
  // DATA_LOSS if its stored high-water mark is corrupt.
  absl::StatusOr<uint64_t> NextExpectedSeq(std::string_view device_id) const;

  // A subject's events in offset order. PERMISSION_DENIED if the subject is
  // outside `scope`; INVALID_ARGUMENT for a missing subject.
  absl::StatusOr<v1::GetHistoryResponse> GetHistory(const Scope& scope,
                                                    const v1::GetHistoryRequest& request) const;

  // Rejection records, newest first, under an area prefix and/or of a device.
  // PERMISSION_DENIED for a prefix outside `scope` (a device filter alone
  // lists only records whose area is in scope); INVALID_ARGUMENT for no filter
  // or a bad page token.
  absl::StatusOr<v1::ListRejectionsResponse> ListRejections(
      const Scope& scope, const v1::ListRejectionsRequest& request) const;

  // Blobs that appended events refer to and that are still not uploaded
  // (SHA-256, 32 bytes each), at most `limit`.
  absl::StatusOr<std::vector<std::string>> ListMissingBlobs(size_t limit) const;

  // The events, in log order, at most `limit`, that referred to blob `sha256`
  // (32 bytes) while it was not uploaded; empty if none did (including a
  // blob that was complete before every event naming it). Errors: the
  // store's; DATA_LOSS for a marker whose event is missing.
  absl::StatusOr<std::vector<BlobReference>> BlobReferences(std::string_view sha256,
                                                            size_t limit) const;

  // The committed projections, for the domain's queries.
  const ProjectionReader& reader() const { return reader_; }
  const SyncOptions& options() const { return options_; }

 private:
  class PushRun;
  class ServerAppend;
  struct SnapshotCursor;

  absl::Time Now() const;
  void RememberScope(const std::string& digest, const Scope& scope);
  std::optional<Scope> RecallScope(const std::string& digest) const;

  absl::Status AppendSnapshotPage(const Scope& scope, const Scope* old_scope,
                                  SnapshotCursor& cursor, size_t max_bytes, size_t* bytes,
                                  v1::Snapshot* out, bool* complete) const;
  absl::Status AppendEvents(const Scope& scope, uint64_t after, uint64_t head, size_t max_events,
                            size_t max_bytes, bool omit_proofs, size_t* bytes,
                            v1::PullResponse* out) const;
  absl::StatusOr<std::vector<v1::SubjectRef>> RemovedSubjects(const Scope& old_scope,
                                                              const Scope& new_scope,
                                                              bool* too_many) const;
  absl::StatusOr<v1::PullResponse> ResetAndSnapshot(const Scope& scope, const std::string& digest,
                                                    v1::ResetReason reason, uint64_t head,
                                                    size_t max_events, size_t max_bytes,
                                                    bool omit_proofs);

  storage::EventStore* store_;
  const MergePolicy* policy_;
  const DeviceKeys* keys_;
  const SyncOptions options_;
  StoreProjectionReader reader_;
  HybridClock hlc_;

  mutable absl::Mutex scopes_mu_;
  absl::flat_hash_map<std::string, Scope> scopes_ ABSL_GUARDED_BY(scopes_mu_);
};

}  // namespace fieldsync::sync
