// Identity: who may call fieldsyncd, and the server's own voice in the log.
//
//   - Bearer tokens: 256-bit random, text "fst_" + 43 base64url characters,
//     stored only as SHA-256 hashes (auth/token/<hex> -> device id). Every
//     token is bound to one device and through it to one user; revoking the
//     device, or disabling the user, stops the token at once (nothing is
//     cached), and ends the calls still open on it (open_streams()).
//   - Disabling a user is permanent for its devices: the commit of a
//     UserUpserted with `disabled` set also revokes every device of that user
//     not yet revoked (revoke_reason "user <id> was disabled"), so re-enabling
//     the user brings none of its old tokens back; the user enrolls anew.
//     The user's devices are listed under auth/user_devices/<user id>
//     (device ids, one per line, appended by each enrollment in log order).
//   - Devices (dir/device/<id>, see server/directory.h) with their Ed25519
//     public keys, for the sync engine (device_keys(): sync::DeviceKeys).
//   - One-time, expiring enrollment codes, stored only as SHA-256 hashes
//     (auth/code/<hex> -> the EnrollmentCodeIssued event; auth/code_used/
//     <code id> -> device id once used).
//   - The node: the server's own device (id "node-<hex>", an Ed25519 key whose
//     seed is kept in auth/node/key) that makes and signs the admin events.
//   - The first admin: on an empty store Open creates the node, the "system"
//     user, the admin user "admin" and one token for it, in one append.
//
// EventWriter appends the server's own events (the admin bodies of
// event.proto): it fills the envelope (event_id, node device and sequence,
// HLC, signature, receipt time, actor) in log order on the committer thread
// and runs each change's projection writes in the same batch.
//
// Thread-safety: Identity and EventWriter are safe for concurrent use.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fieldsync/v1/event.pb.h"
#include "fieldsync/v1/state.pb.h"
#include "fieldsync/v1/sync_service.pb.h"
#include "server/directory.h"
#include "server/open_streams.h"
#include "storage/event_store.h"
#include "sync/device_keys.h"
#include "sync/merge_policy.h"

namespace fieldsync::server {

// The authenticated caller of one RPC, as of the moment of the call.
struct Principal {
  v1::User user;
  v1::Device device;
  const std::string& user_id() const { return user.id(); }
  const std::string& device_id() const { return device.id(); }
  v1::Role role() const { return user.role(); }
};

// --- Secrets and ids -------------------------------------------------------------

inline constexpr char kTokenPrefix[] = "fst_";
// The reserved id of the user that owns the node device and acts at bootstrap.
inline constexpr char kSystemUserId[] = "system";
// The id of the first admin user.
inline constexpr char kFirstAdminUserId[] = "admin";

// A new bearer token: "fst_" + base64url (no padding) of 32 random bytes.
std::string NewToken();
// True if `token` has the shape NewToken makes.
bool IsWellFormedToken(std::string_view token);
// Lowercase hex SHA-256 of a token or a normalized enrollment code.
std::string SecretHash(std::string_view secret);
// A new enrollment code: 20 Crockford base32 characters (100 bits) in groups
// of five, e.g. "7KQ2M-9XR4T-HC3VN-P0WZE".
std::string NewEnrollmentCode();
// The canonical form of a typed code (upper case, hyphens and spaces
// dropped, O->0, I/L->1); nullopt if it cannot be a code.
std::optional<std::string> NormalizeEnrollmentCode(std::string_view code);
// `bytes` random bytes as lowercase hex.
std::string RandomHex(size_t bytes);
// A random RFC 4122 version 4 UUID, lowercase.
std::string NewUuid();

namespace auth_keys {
std::string Token(std::string_view hash_hex);
std::string Code(std::string_view hash_hex);
std::string CodeUsed(std::string_view code_id);
std::string UserDevices(std::string_view user_id);
inline constexpr char kNodeId[] = "auth/node/id";
inline constexpr char kNodeKey[] = "auth/node/key";
}  // namespace auth_keys

// --- The server's events ----------------------------------------------------------

// One server-made change: an event (subject, area_code and body set; the
// writer fills the rest of the envelope) and its projection writes.
struct ServerChange {
  v1::Event event;
  // Runs on the committer thread, in log order, with `stored` complete but
  // for the hashes (its offset is set). Re-checks what may have changed since
  // the request was validated and writes the projections. A non-OK status
  // fails the whole append (nothing of it is written) and is the call's answer.
  std::function<absl::Status(storage::CommitContext&, const v1::StoredEvent&)> apply;
  // The role of the actor, for the domain's merge of link events.
  v1::Role actor_role = v1::ROLE_UNSPECIFIED;
};

class EventWriter {
 public:
  using Done = std::function<void(absl::StatusOr<std::vector<v1::StoredEvent>>)>;

  // Appends `changes` as one unit attributed to `actor` (a user id). `done`
  // runs once, on the store's writer thread (must not block), with the stored
  // events (offsets set, hashes not) or the error: an apply's status, or the
  // store's (Unavailable while closing, Internal/DataLoss).
  virtual void AppendAsync(std::string actor, std::vector<ServerChange> changes, Done done) = 0;
  // As AppendAsync, blocking until the changes are durable.
  virtual absl::StatusOr<std::vector<v1::StoredEvent>> Append(
      std::string actor, std::vector<ServerChange> changes) = 0;
  virtual ~EventWriter() = default;
};

// --- Identity ----------------------------------------------------------------------

// What IssueEnrollmentCode made.
struct IssuedCode {
  std::string code;  // Clear text: returned once, never stored.
  std::string code_id;
  absl::Time expires_at;
  v1::StoredEvent event;
};

// What Enroll made.
struct Enrollment {
  v1::Device device;
  std::string token;  // Clear text: returned once, never stored.
  v1::User user;
  v1::StoredEvent event;
};

class Identity {
 public:
  // Loads the node identity; on a store without one (first start) creates the
  // node, the system user and the first admin with a token (see
  // first_admin_token). `store`, `directory` must outlive the Identity.
  //
  // `policy` (may be null) is the domain's MergePolicy: the writer folds the
  // server's link events (LinkStarted, LinkEnded) through it in the same
  // commit, so the domain's state (pull snapshots, household links, coverage)
  // holds the links AdminService makes, as it holds those devices push. A
  // refusal of the domain fails the change (FAILED_PRECONDITION).
  static absl::StatusOr<std::unique_ptr<Identity>> Open(storage::EventStore* store,
                                                        const Directory* directory, Clock clock,
                                                        const sync::MergePolicy* policy);

  virtual ~Identity() = default;

  // The first admin's token when this Open created it; nullopt otherwise.
  virtual std::optional<std::string> first_admin_token() const = 0;

  // The principal behind a well-formed token. Unauthenticated, with a message
  // saying why, for an unknown token, a revoked device or a disabled user.
  virtual absl::StatusOr<Principal> Authenticate(std::string_view token) const = 0;

  // Whether `principal`'s device and user still may call, read again now:
  // OK, or Unauthenticated as Authenticate would answer (revoked device,
  // disabled or unknown user). A long-lived call checks it once right after
  // it registers in open_streams().
  virtual absl::Status Recheck(const Principal& principal) const = 0;

  // The registry of open long-lived calls. Once a DeviceRevoked, or a
  // UserUpserted that disables a user, has committed, every call registered
  // for that device or user is ended with UNAUTHENTICATED saying why.
  virtual OpenStreams& open_streams() = 0;

  // Devices as the sync engine sees them (sync/device_keys.h): key, owner,
  // the owner's role, revocation; read from the records at every lookup.
  // Token-only devices (the first admin's) have no key: they never sign.
  virtual const sync::DeviceKeys& device_keys() const = 0;

  // Issues a one-time code enrolling devices for `user_id`, valid for `ttl`.
  // NotFound for an unknown user, FailedPrecondition for a disabled one.
  virtual void IssueEnrollmentCode(std::string actor, std::string user_id, absl::Duration ttl,
                                   std::function<void(absl::StatusOr<IssuedCode>)> done) = 0;

  // Enrolls a device with a code. Unauthenticated for an unknown, expired or
  // used code or a disabled user; InvalidArgument for a key that is not 32
  // bytes. The code's use is checked again in log order, so of two
  // concurrent enrollments with one code exactly one succeeds.
  virtual void Enroll(const v1::EnrollRequest& request,
                      std::function<void(absl::StatusOr<Enrollment>)> done) = 0;

  // Revokes a device (DeviceRevoked). NotFound, or FailedPrecondition if
  // already revoked or if it is the node device.
  virtual void RevokeDevice(
      std::string actor, std::string device_id, std::string reason,
      std::function<void(absl::StatusOr<std::pair<v1::Device, uint64_t>>)> done) = 0;

  virtual const std::string& node_device_id() const = 0;
  virtual EventWriter& writer() = 0;
};

}  // namespace fieldsync::server
