// fieldsync client SDK: what a phone or tablet app links (library
// fieldsync_client). A Client owns the device's local SQLite database
// (docs/client.md "Local database"): the device key (made at enrollment,
// never leaves the device), the outbox of recorded events, the state pulled
// from the server and the pull cursor.
//
//   Client::Open(db, options)      open or create the local database
//   Enroll(code)                   make the key, enroll, keep id and token
//   Record(draft)                  sign an event into the outbox (one transaction)
//   Sync(progress)                 push the outbox, upload photos, pull
//   ExportBundle / ImportBundle    relay: store and forward another device's outbox
//
// The contract of Record: event_id, device_seq, HLC, device_time and the
// signature are assigned in the same SQLite transaction as the outbox row
// and its local effect, so a kill at any instant either loses the whole
// recording (Record did not return OK) or keeps all of it; an event keeps
// its id for ever, so a re-sent event is a duplicate, never a second event.
//
// Not thread-safe: one Client per thread. Several processes may open one
// database; each write is one transaction (SqliteDb).
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "clients/sdk/retry.h"
#include "clients/sdk/sqlite_db.h"
#include "fieldsync/v1/event.pb.h"
#include "fieldsync/v1/query_service.pb.h"
#include "fieldsync/v1/state.pb.h"
#include "fieldsync/v1/sync_service.pb.h"

namespace fieldsync::client {

struct ClientOptions {
  // host:port of fieldsyncd; remembered in the database at enrollment and
  // used when empty later.
  std::string server;
  // Bearer token to use instead of the enrolled one (e.g. an admin token).
  std::string token_override;
  // PEM CA certificates that verify the server's TLS certificate; empty =
  // plaintext (fieldsyncd without TLS serves loopback only).
  std::string tls_ca_pem;
  // Batch bounds of a push: the server's limits (config.proto LimitsConfig
  // max_push_events 500, max_push_bytes 2 MiB). A RESOURCE_EXHAUSTED push
  // halves the batch and retries, so a server with lower limits still works.
  uint32_t max_push_events = 500;
  uint64_t max_push_bytes = 2 * 1024 * 1024;
  // Largest single event the server takes (limits.max_event_bytes, 64 KiB);
  // Record refuses bigger events (INVALID_ARGUMENT) instead of queueing one
  // the server would reject TOO_LARGE.
  uint64_t max_event_bytes = 64 * 1024;
  // Chunk size of photo uploads (the server suggests 64 KiB).
  uint64_t blob_chunk_bytes = 64 * 1024;
  // Deadline of each RPC.
  absl::Duration rpc_timeout = absl::Seconds(30);
  // Back-off of UNAVAILABLE / RESOURCE_EXHAUSTED (retry.h).
  RetryPolicy retry;
  // Clock of HLCs and device_time; the wall clock when unset (tests inject).
  std::function<absl::Time()> clock;
  // Channel to use instead of dialling `server` (tests, in-process servers).
  std::shared_ptr<grpc::Channel> channel;
};

// One outbox row (own events) or relay row (another device's events).
struct OutboxEntry {
  enum class State { kPending, kAccepted, kDuplicate, kRejected, kConflict, kHeld };
  uint64_t device_seq = 0;
  std::string device_id;
  std::string event_id;
  v1::EventKind kind = v1::EVENT_KIND_UNSPECIFIED;
  v1::SubjectRef subject;
  State state = State::kPending;
  uint64_t offset = 0;  // Log offset once accepted (original offset for duplicates).
  std::string code;     // Rejection code name, for kRejected.
  std::string field;    // Offending field, for kRejected.
  std::string message;  // Rejection message, or why kHeld.
  std::vector<std::string> conflict_ids;  // For kConflict.
  bool relayed = false;                   // A relay row (another device's event).
  v1::Event event;
};
// "pending", "accepted", "duplicate", "rejected", "conflict", "held".
std::string StateName(OutboxEntry::State state);

// What one Sync did.
struct SyncReport {
  uint32_t pushed = 0;  // Events sent (own and relayed), duplicates included.
  uint32_t accepted = 0;
  uint32_t duplicates = 0;
  uint32_t rejected = 0;
  uint32_t conflicts = 0;
  uint32_t held = 0;    // Events (own or relayed) held for an earlier one of their device.
  uint32_t visits = 0;  // VisitRecorded events among those settled.
  uint32_t blobs_uploaded = 0;
  uint32_t pulled_events = 0;
  uint32_t removed_subjects = 0;
  bool reset = false;  // The server answered RESET; the state was rebuilt.
  uint64_t head_offset = 0;
  uint32_t retries = 0;  // Calls retried after UNAVAILABLE / RESOURCE_EXHAUSTED.
  // Message bytes: serialized protobuf sizes sent and received, and their
  // gzip size (what gRPC's gzip message compression sends, without HTTP/2
  // framing) — docs/client.md "Compression".
  uint64_t bytes_sent = 0, bytes_received = 0;
  uint64_t gzip_bytes_sent = 0, gzip_bytes_received = 0;
  uint32_t pending_left = 0;  // Own events still unsettled after the sync.
};

// Progress of a sync, for a progress bar.
struct SyncProgress {
  std::string phase;  // "push", "blobs", "pull".
  uint64_t done = 0;
  uint64_t total = 0;  // 0 when unknown.
};

// The device identity kept in the database.
struct Identity {
  std::string server;
  std::string device_id;
  std::string user_id;
  std::string user_name;
  v1::Role role = v1::ROLE_UNSPECIFIED;
  std::string public_key;
};

// A channel to `server` (host:port) with gzip compression, as Client uses;
// for calls made without a local database (admin commands). TLS verified
// against `tls_ca_pem` (PEM CA certificates) unless it is empty (plaintext:
// fieldsyncd serves plaintext on loopback only).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& server,
                                           const std::string& tls_ca_pem = "");

// A client context with the bearer `token` (unless empty), gzip and a deadline.
std::unique_ptr<grpc::ClientContext> MakeContext(const std::string& token,
                                                 absl::Duration timeout = absl::Seconds(30));

class Client {
 public:
  // Opens the database at `db_path` (created if missing) and its schema.
  static absl::StatusOr<std::unique_ptr<Client>> Open(const std::string& db_path,
                                                      ClientOptions options);
  ~Client();

  // Makes the device key, enrolls it with the one-time `code` and stores the
  // device id, token and user. FAILED_PRECONDITION if already enrolled;
  // UNAUTHENTICATED for a bad or used code; UNAVAILABLE if unreachable.
  absl::StatusOr<Identity> Enroll(const std::string& code, const std::string& device_name = "",
                                  const std::string& device_model = "");
  // The stored identity; FAILED_PRECONDITION "not enrolled" before Enroll.
  absl::StatusOr<Identity> identity();

  // Records `draft` (subject and body set; area_code may be empty for a
  // household known locally): fills event_id (unless set), device_id,
  // device_seq, hlc, device_time, signs it and stores it in the outbox with
  // its local effect, in one transaction. `photos` are files whose bytes go
  // into the local blob store in the same transaction; their SHA-256 must
  // already be named in the body. Returns the stored event.
  // FAILED_PRECONDITION if not enrolled or the subject is unknown locally
  // without an area_code; INVALID_ARGUMENT for an event over max_event_bytes.
  absl::StatusOr<v1::Event> Record(v1::Event draft,
                                   const std::vector<std::string>& photo_paths = {});

  // Stores a photo file's bytes; returns its SHA-256 (32 bytes) to name in a
  // body. NOT_FOUND if the file cannot be read.
  absl::StatusOr<std::string> AddPhoto(const std::string& path,
                                       const std::string& content_type = "image/jpeg");

  // Pushes the outbox (own events, then relayed ones) in order in bounded
  // batches and records every result; uploads the photos the pushed events
  // name (resumable); pulls into the local state. Retries UNAVAILABLE and
  // RESOURCE_EXHAUSTED with back-off; any failure leaves every settled result
  // stored, so the next Sync resumes where this one stopped.
  absl::StatusOr<SyncReport> Sync(const std::function<void(const SyncProgress&)>& progress = {});
  // Only the push part (outbox and relays) of Sync.
  absl::Status PushOutbox(SyncReport& report,
                          const std::function<void(const SyncProgress&)>& progress = {});
  // Only the pull part of Sync.
  absl::Status Pull(SyncReport& report,
                    const std::function<void(const SyncProgress&)>& progress = {});

  // The outbox, oldest first; relay rows after own rows when `with_relayed`.
  absl::StatusOr<std::vector<OutboxEntry>> Outbox(bool with_relayed = true);

  // Writes this device's unsettled events (pending) to a bundle file
  // (bundle.h) for a tablet to relay; returns how many. The events stay in
  // the outbox: the phone's later sync settles them (as duplicates).
  absl::StatusOr<uint32_t> ExportBundle(const std::string& path);
  // Imports a bundle into the relay table (idempotent: an event already
  // there is skipped); returns how many new events. DATA_LOSS for a
  // truncated or corrupt file; INVALID_ARGUMENT for a bundle of this device.
  absl::StatusOr<uint32_t> ImportBundle(const std::string& path);

  // Local state (as last pulled, plus local registrations not yet pulled).
  absl::StatusOr<std::vector<v1::Household>> Households();
  // NOT_FOUND if the household is not in local state.
  absl::StatusOr<v1::Household> Household(const std::string& id);
  absl::StatusOr<std::vector<v1::Member>> MembersOf(const std::string& household_id);
  absl::StatusOr<std::vector<v1::Link>> Links();
  absl::StatusOr<std::vector<v1::Conflict>> Conflicts(bool open_only = true);
  absl::StatusOr<std::optional<v1::Conflict>> Conflict(const std::string& id);
  absl::StatusOr<std::vector<v1::Plan>> PlansOf(const std::string& subject_id);
  // Pending own events (not yet settled by the server) on `subject_id`.
  absl::StatusOr<std::vector<v1::Event>> PendingOn(const std::string& subject_id);
  // The stored pull checkpoint (empty before the first pull).
  absl::StatusOr<v1::Checkpoint> Cursor();

  // The channel to the server (for direct calls such as admin ones) and a
  // context carrying the token and the deadline.
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Channel();
  absl::StatusOr<std::unique_ptr<grpc::ClientContext>> Context();

  SqliteDb& db() { return *db_; }

 private:
  Client(std::unique_ptr<SqliteDb> db, ClientOptions options);
  absl::Status Migrate();
  absl::StatusOr<std::string> Meta(const std::string& key);
  absl::Status SetMeta(const std::string& key, const std::string& value);
  absl::Time Now() const;
  absl::Status ObserveHlc(uint64_t hlc);

  absl::Status PushOwn(SyncReport& report,
                       const std::function<void(const SyncProgress&)>& progress);
  absl::Status PushRelayed(SyncReport& report);
  absl::Status PushRows(const std::string& device, SyncReport& report,
                        const std::function<void(size_t sent)>& sent);
  absl::Status UploadBlobs(SyncReport& report,
                           const std::function<void(const SyncProgress&)>& progress);
  absl::Status UploadOne(const std::string& sha256, const std::string& content_type,
                         const std::string& data, SyncReport& report);
  absl::Status ApplyPullPage(const v1::PullResponse& page, SyncReport& report,
                             std::vector<std::string>& refresh);
  struct PulledEvent;
  absl::Status ApplyEvent(const PulledEvent& stored, std::vector<std::string>& refresh);
  absl::Status RefreshHousehold(const std::string& id, SyncReport& report);
  absl::Status DropLocalState();
  absl::Status PutHousehold(const v1::Household& household, bool local_only);
  absl::Status PutMember(const v1::Member& member);
  absl::Status PutPlan(const v1::Plan& plan);
  absl::Status PutLink(const v1::Link& link);
  absl::Status PutConflict(const v1::Conflict& conflict);
  absl::Status PutArea(const v1::Area& area);
  absl::Status RemoveSubject(const v1::SubjectRef& subject);
  void Count(uint64_t sent, uint64_t received, const std::string& sent_bytes,
             const std::string& received_bytes, SyncReport& report);

  std::unique_ptr<SqliteDb> db_;
  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace fieldsync::client
