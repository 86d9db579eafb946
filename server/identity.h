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
//     public keys, for the sync engine (NewDirectoryDeviceKeys).
//   - One-time, expiring enrollment codes, stored only as SHA-256 hashes
//     (auth/code/<hex> -> the EnrollmentCodeIssued event; auth/code_used/
//     <code id> -> device id once used).
//   - The node: the server's own device (id "node-<hex>", an Ed25519 key kept
//     in the key file beside the store, server/node_key.h) that signs the
//     admin events.
//   - The first admin: on an empty store Open creates the node, the "system"
//     user, the admin user "admin" and one token for it, in one append.
//
// The server's own events (the admin bodies of event.proto) are appended
// through the sync engine (SyncEngine::AppendServerEvents, signed by the
// node key) like every write to the log; Identity adds what only the server
// knows: a UserUpserted that disables a user revokes its devices in the same
// commit, and committed revocations end the calls open on them.
//
// Thread-safety: Identity is safe for concurrent use.
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
#include "server/node_key.h"
#include "server/open_streams.h"
#include "server/secrets.h"
#include "storage/event_store.h"
#include "sync/device_keys.h"
#include "sync/sync_engine.h"

namespace fieldsync::server {

// The authenticated caller of one RPC, as of the moment of the call.
struct Principal {
  v1::User user;
  v1::Device device;
  const std::string& user_id() const { return user.id(); }
  const std::string& device_id() const { return device.id(); }
  v1::Role role() const { return user.role(); }
};

// One server-made change: an event (subject, area_code and body set; the
// engine fills the rest of the envelope), its projection writes (apply) and
// the actor's role for the domain's merge. Identity::AppendAsync sets the
// actor. See sync::ServerEvent.
using ServerChange = sync::ServerEvent;

// Devices as the sync engine sees them (sync/device_keys.h), read from the
// directory's records at every lookup: key, owner, the owner's role and unit,
// revocation (a disabled user's devices count as revoked). Token-only devices
// (the first admin's) have no key: they never sign. `directory` must outlive
// the result.
std::unique_ptr<sync::DeviceKeys> NewDirectoryDeviceKeys(const Directory* directory);

// --- Identity ----------------------------------------------------------------------

// What IssueEnrollmentCode made.
struct IssuedCode {
  std::string code;  // Clear text: returned once, never stored.
  std::string code_id;
  absl::Time expires_at;
  sync::LoggedEvent event;
};

// What Enroll made.
struct Enrollment {
  v1::Device device;
  std::string token;  // Clear text: returned once, never stored.
  v1::User user;
  sync::LoggedEvent event;
};

class Identity {
 public:
  // The identity of the node `node` (LoadNodeKey) over `store`. On a store
  // without a node (first start) appends the node device, the system user and
  // the first admin with a token (see first_admin_token); on a store that
  // still holds the node's seed (an older version) erases it. Every append
  // goes through `engine`, signed by the node key. `store`, `directory` and
  // `engine` must outlive the Identity.
  static absl::StatusOr<std::unique_ptr<Identity>> Open(storage::EventStore* store,
                                                        const Directory* directory, Clock clock,
                                                        sync::SyncEngine* engine,
                                                        LoadedNodeKey node);

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

  // Appends `changes` as one unit attributed to `actor` (a user id), signed
  // by the node, through SyncEngine::AppendServerEventsAsync (see there for
  // the errors). `done` runs once, on the committer thread (must not block),
  // with the stored events (offsets set, hashes not) or the error.
  using Done = std::function<void(absl::StatusOr<std::vector<sync::LoggedEvent>>)>;
  virtual void AppendAsync(std::string actor, std::vector<ServerChange> changes, Done done) = 0;
  // As AppendAsync, blocking until the changes are durable.
  virtual absl::StatusOr<std::vector<sync::LoggedEvent>> Append(
      std::string actor, std::vector<ServerChange> changes) = 0;
};

}  // namespace fieldsync::server
