#include "server/identity.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <mutex>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "base/time.h"
#include "storage/sha256.h"
#include "sync/event_codec.h"
#include "sync/sync_engine.h"

namespace fieldsync::server {
namespace {

constexpr std::string_view kCrockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr size_t kCodeChars = 20;
constexpr size_t kSeedBytes = 32;
constexpr size_t kPublicKeyBytes = 32;

absl::Status Unauthenticated(std::string message) {
  return absl::UnauthenticatedError(std::move(message));
}

// Appends `device_id` to the list of `user_id`'s devices (log order).
absl::Status ListDeviceOfUser(storage::CommitContext& ctx, const std::string& user_id,
                              const std::string& device_id) {
  ASSIGN_OR_RETURN(std::optional<std::string> listed, ctx.Get(auth_keys::UserDevices(user_id)));
  std::string value = listed.value_or("");
  absl::StrAppend(&value, device_id, "\n");
  ctx.Put(auth_keys::UserDevices(user_id), value);
  return absl::OkStatus();
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  // RAND_bytes fails only if the CSPRNG cannot be seeded; a server that
  // cannot make secrets must not run.
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::abort();
  }
  return out;
}

// Ed25519 through OpenSSL 3.
class NodeKey {
 public:
  static absl::StatusOr<std::unique_ptr<NodeKey>> FromSeed(std::string_view seed) {
    if (seed.size() != kSeedBytes) {
      return absl::DataLossError("auth/node/key does not hold a 32-byte Ed25519 seed");
    }
    EVP_PKEY* key = EVP_PKEY_new_raw_private_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()),
        seed.size());
    if (key == nullptr) return absl::InternalError("OpenSSL refused the node's Ed25519 seed");
    return std::unique_ptr<NodeKey>(new NodeKey(key));
  }
  ~NodeKey() { EVP_PKEY_free(key_); }

  std::string PublicKey() const {
    std::string out(kPublicKeyBytes, '\0');
    size_t length = out.size();
    EVP_PKEY_get_raw_public_key(key_, reinterpret_cast<unsigned char*>(out.data()), &length);
    out.resize(length);
    return out;
  }

  absl::StatusOr<std::string> Sign(std::string_view message) const {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    if (ctx == nullptr) return absl::ResourceExhaustedError("OpenSSL: out of memory");
    std::string signature(64, '\0');
    size_t length = signature.size();
    bool ok =
        EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key_) == 1 &&
        EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(signature.data()), &length,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) return absl::InternalError("OpenSSL: Ed25519 signing failed");
    signature.resize(length);
    return signature;
  }

 private:
  explicit NodeKey(EVP_PKEY* key) : key_(key) {}
  EVP_PKEY* key_;
};

// The user a UserUpserted disables; nullopt for any other event. The
// system user is disabled from the start and owns the node device, which is
// never revoked.
std::optional<std::string> DisabledUser(const v1::Event& event) {
  if (!event.has_user_upserted() || !event.user_upserted().user().disabled()) return std::nullopt;
  const std::string& id = event.user_upserted().user().id();
  if (id == kSystemUserId) return std::nullopt;
  return id;
}

// The devices listed in the directory's index of `user_id`'s devices, as
// committed now.
absl::StatusOr<std::vector<std::string>> IndexedDevicesOfUser(const storage::EventStore& store,
                                                              const std::string& user_id) {
  std::vector<std::string> ids;
  const std::string prefix = dir_keys::DeviceUserPrefix(user_id);
  std::string after;
  constexpr size_t kBatch = 1000;
  while (true) {
    ASSIGN_OR_RETURN(auto batch, store.ScanProjections(prefix, after, kBatch));
    for (const auto& [key, value] : batch) {
      ids.push_back(key.substr(key.rfind('\0') + 1));
      after = key;
    }
    if (batch.size() < kBatch) return ids;
  }
}

class EventWriterImpl final : public EventWriter {
 public:
  // `open_streams` (not null) must outlive the writer.
  EventWriterImpl(storage::EventStore* store, std::string node_id, std::unique_ptr<NodeKey> key,
                  Clock clock, const sync::MergePolicy* policy, OpenStreams* open_streams)
      : store_(store),
        node_id_(std::move(node_id)),
        key_(std::move(key)),
        clock_(std::move(clock)),
        policy_(policy),
        open_streams_(open_streams) {}

  void AppendAsync(std::string actor, std::vector<ServerChange> changes, Done done) override {
    auto stored = std::make_shared<std::vector<v1::StoredEvent>>(changes.size());
    std::vector<storage::AppendEntry> entries;
    entries.reserve(changes.size());
    for (size_t i = 0; i < changes.size(); ++i) {
      v1::StoredEvent& s = (*stored)[i];
      *s.mutable_event() = std::move(changes[i].event);
      s.mutable_event()->set_event_id(NewUuid());
      s.mutable_event()->set_device_id(node_id_);
      s.set_actor(actor);
      // Devices a disable revokes: those enrolled in log order (the commit
      // reads auth/user_devices/) and, for devices enrolled before that list
      // existed, the directory's index as committed now.
      std::vector<std::string> indexed;
      if (std::optional<std::string> user = DisabledUser(s.event())) {
        absl::StatusOr<std::vector<std::string>> ids = IndexedDevicesOfUser(*store_, *user);
        if (!ids.ok()) return done(ids.status());
        indexed = *std::move(ids);
      }
      storage::AppendEntry entry = sync::ToAppendEntry(s);
      entry.prepare = [this, stored, i, apply = std::move(changes[i].apply),
                       role = changes[i].actor_role,
                       indexed = std::move(indexed)](storage::CommitContext& ctx) -> absl::Status {
        return Prepare(ctx, (*stored)[i], apply, role, indexed);
      };
      entries.push_back(std::move(entry));
    }
    store_->AppendAsync(std::move(entries),
                        [this, stored, done = std::move(done)](
                            absl::StatusOr<std::vector<storage::AppendResult>> results) {
                          if (!results.ok()) {
                            done(results.status());
                            return;
                          }
                          for (size_t i = 0; i < stored->size(); ++i) {
                            (*stored)[i].set_offset((*results)[i].offset);
                          }
                          EndOpenStreams(*stored);
                          done(std::move(*stored));
                        });
  }

  absl::StatusOr<std::vector<v1::StoredEvent>> Append(std::string actor,
                                                      std::vector<ServerChange> changes) override {
    absl::Notification finished;
    absl::StatusOr<std::vector<v1::StoredEvent>> out;
    AppendAsync(std::move(actor), std::move(changes),
                [&](absl::StatusOr<std::vector<v1::StoredEvent>> result) {
                  out = std::move(result);
                  finished.Notify();
                });
    finished.WaitForNotification();
    return out;
  }

 private:
  // Committer thread: the node's next sequence number, the HLC, the
  // signature, then the change's own projection writes.
  absl::Status Prepare(
      storage::CommitContext& ctx, v1::StoredEvent& stored,
      const std::function<absl::Status(storage::CommitContext&, const v1::StoredEvent&)>& apply,
      v1::Role actor_role, const std::vector<std::string>& indexed_devices) {
    absl::Time now = clock_();
    ASSIGN_OR_RETURN(std::optional<v1::Device> node, ReadDevice(ctx, node_id_));
    uint64_t seq = (node.has_value() ? node->last_device_seq() : 0) + 1;
    v1::Event& event = *stored.mutable_event();
    event.set_device_seq(seq);
    event.set_hlc(NextHlc(now));
    *event.mutable_device_time() = base::ToTimestamp(now);
    ASSIGN_OR_RETURN(std::string signature, key_->Sign(sync::CanonicalEventBytes(event)));
    event.set_signature(signature);
    *stored.mutable_received_at() = base::ToTimestamp(now);
    stored.set_adopted_hlc(event.hlc());
    stored.set_offset(ctx.offset());
    if (apply) RETURN_IF_ERROR(apply(ctx, stored));
    RETURN_IF_ERROR(RevokeDevicesOfDisabledUser(ctx, stored, indexed_devices));
    RETURN_IF_ERROR(MergeIntoDomain(ctx, stored, now, actor_role));
    // The node device is enrolled by the first bootstrap change, so it exists
    // from then on.
    ASSIGN_OR_RETURN(node, ReadDevice(ctx, node_id_));
    if (!node.has_value()) {
      return absl::InternalError(absl::StrCat("node device ", node_id_, " is not enrolled"));
    }
    node->set_last_device_seq(seq);
    ctx.Put(dir_keys::Device(node_id_), node->SerializeAsString());
    ctx.payload() = sync::EncodePayload(stored);
    return absl::OkStatus();
  }

  // A UserUpserted that disables a user revokes, in its own commit, every
  // device of that user not revoked yet: disabling is permanent for the
  // user's tokens and keys, re-enabling brings none of them back.
  absl::Status RevokeDevicesOfDisabledUser(storage::CommitContext& ctx,
                                           const v1::StoredEvent& stored,
                                           const std::vector<std::string>& indexed_devices) {
    std::optional<std::string> user_id = DisabledUser(stored.event());
    if (!user_id.has_value()) return absl::OkStatus();
    ASSIGN_OR_RETURN(std::optional<std::string> listed, ctx.Get(auth_keys::UserDevices(*user_id)));
    std::set<std::string> ids(indexed_devices.begin(), indexed_devices.end());
    if (listed.has_value()) {
      for (absl::string_view id : absl::StrSplit(*listed, '\n', absl::SkipEmpty())) {
        ids.insert(std::string(id));
      }
    }
    for (const std::string& id : ids) {
      if (id == node_id_) continue;
      ASSIGN_OR_RETURN(std::optional<v1::Device> device, ReadDevice(ctx, id));
      if (!device.has_value() || device->revoked() || device->user_id() != *user_id) continue;
      device->set_revoked(true);
      *device->mutable_revoked_at() = stored.received_at();
      device->set_revoke_reason(absl::StrCat("user ", *user_id, " was disabled"));
      RETURN_IF_ERROR(WriteDevice(ctx, *device));
    }
    return absl::OkStatus();
  }

  // After a commit: the calls still open on a revoked device or a disabled
  // user's devices end now (the store's writer thread, which answers the
  // commit; the registry never blocks).
  void EndOpenStreams(const std::vector<v1::StoredEvent>& stored) {
    for (const v1::StoredEvent& s : stored) {
      const v1::Event& event = s.event();
      if (event.has_device_revoked()) {
        open_streams_->EndDevice(
            event.subject().id(),
            Unauthenticated(absl::StrCat("device ", event.subject().id(), " was revoked at ",
                                         absl::FormatTime(base::FromTimestamp(s.received_at())),
                                         ": ", event.device_revoked().reason(),
                                         "; the call opened with its token is ended")));
      } else if (std::optional<std::string> user = DisabledUser(event)) {
        open_streams_->EndUser(
            *user, Unauthenticated(absl::StrCat(
                       "user ", *user, " was disabled at ",
                       absl::FormatTime(base::FromTimestamp(s.received_at())),
                       "; the call opened with the token of one of its devices is ended")));
      }
    }
  }

  // Links are domain state only: fold link events through the domain's
  // merge, exactly as a pushed LinkStarted / LinkEnded would be. Areas,
  // users and units too: the domain holds their only record
  // (domain/reference.h) and checks a link's holder against it in log order.
  absl::Status MergeIntoDomain(storage::CommitContext& ctx, const v1::StoredEvent& stored,
                               absl::Time now, v1::Role actor_role) {
    const v1::Event& event = stored.event();
    const bool link = event.has_link_started() || event.has_link_ended();
    // Area imports too: the assessment's designated poor villages.
    if (policy_ == nullptr || (!link && !event.has_user_upserted() && !event.has_unit_upserted() &&
                               !event.has_area_imported())) {
      return absl::OkStatus();
    }
    class CommitView final : public sync::ProjectionView {
     public:
      explicit CommitView(storage::CommitContext& ctx) : ctx_(ctx) {}
      absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override {
        return ctx_.Get(key);
      }
      void Put(std::string_view key, std::string_view value) override { ctx_.Put(key, value); }
      void Delete(std::string_view key) override { ctx_.Delete(key); }

     private:
      storage::CommitContext& ctx_;
    } view(ctx);
    sync::EventMeta meta;
    meta.author.actor = stored.actor();
    meta.author.role = actor_role;
    meta.author.device_id = node_id_;
    meta.offset = stored.offset();
    meta.adopted_hlc = stored.adopted_hlc();
    meta.received_at = now;
    ASSIGN_OR_RETURN(sync::MergeResult result, policy_->Merge(event, meta, view));
    if (result.rejection.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the domain refuses ", result.rejection->field, ": ", result.rejection->message, " (",
          v1::RejectionCode_Name(result.rejection->code), ")"));
    }
    // As Push does for every accepted event: pull snapshots and scope
    // changes find subjects through this index, and a link may name one no
    // pushed event ever did (a village, a county).
    if (!link) return absl::OkStatus();
    return sync::IndexSubject(ctx, event);
  }

  // A hybrid logical clock over the server clock: never goes back, even if
  // the clock does.
  uint64_t NextHlc(absl::Time now) {
    uint64_t physical = static_cast<uint64_t>(std::max<int64_t>(absl::ToUnixMillis(now), 0)) << 16;
    uint64_t last = last_hlc_.load();
    uint64_t next;
    do {
      next = std::max(physical, last + 1);
    } while (!last_hlc_.compare_exchange_weak(last, next));
    return next;
  }

  storage::EventStore* store_;
  std::string node_id_;
  std::unique_ptr<NodeKey> key_;
  Clock clock_;
  const sync::MergePolicy* policy_;
  OpenStreams* const open_streams_;
  std::atomic<uint64_t> last_hlc_{0};
};

v1::Event MakeEvent(v1::SubjectKind kind, std::string id, std::string area_code) {
  v1::Event event;
  event.mutable_subject()->set_kind(kind);
  event.mutable_subject()->set_id(std::move(id));
  event.set_area_code(std::move(area_code));
  return event;
}

class DirectoryDeviceKeys final : public sync::DeviceKeys {
 public:
  explicit DirectoryDeviceKeys(const Directory* directory) : directory_(directory) {}

  absl::StatusOr<std::optional<sync::DeviceInfo>> Lookup(
      std::string_view device_id) const override {
    ASSIGN_OR_RETURN(std::optional<v1::Device> device, directory_->GetDevice(device_id));
    if (!device.has_value()) return std::nullopt;
    sync::DeviceInfo info;
    info.public_key = device->public_key();
    info.user_id = device->user_id();
    info.revoked = device->revoked();
    ASSIGN_OR_RETURN(std::optional<v1::User> user, directory_->GetUser(device->user_id()));
    // A disabled user's devices sign nothing any more.
    if (user.has_value()) {
      info.role = user->role();
      info.unit_id = user->unit_id();
      info.revoked = info.revoked || user->disabled();
    }
    return info;
  }

 private:
  const Directory* directory_;
};

class IdentityImpl final : public Identity {
 public:
  IdentityImpl(storage::EventStore* store, const Directory* directory, Clock clock,
               std::string node_id, std::unique_ptr<NodeKey> key, const sync::MergePolicy* policy)
      : store_(store),
        directory_(directory),
        clock_(clock),
        node_id_(node_id),
        writer_(store, node_id, std::move(key), clock, policy, &open_streams_),
        device_keys_(directory) {}

  absl::Status Bootstrap(std::string seed, std::string public_key) {
    std::string admin_device = absl::StrCat("dev-", RandomHex(8));
    std::string token = NewToken();
    std::vector<ServerChange> changes;

    // 1. The node device (first: the writer counts the node's sequence on it).
    {
      ServerChange change;
      change.event = MakeEvent(v1::SUBJECT_KIND_DEVICE, node_id_, "");
      auto* body = change.event.mutable_device_enrolled();
      body->set_user_id(std::string(kSystemUserId));
      body->set_public_key(public_key);
      body->set_model("fieldsyncd");
      body->set_name("node");
      change.apply = [node_id = node_id_, seed, public_key](storage::CommitContext& ctx,
                                                            const v1::StoredEvent& stored) {
        ctx.Put(auth_keys::kNodeId, node_id);
        ctx.Put(auth_keys::kNodeKey, seed);
        v1::Device device;
        device.set_id(node_id);
        device.set_user_id(std::string(kSystemUserId));
        device.set_public_key(public_key);
        device.set_model("fieldsyncd");
        device.set_name("node");
        *device.mutable_enrolled_at() = stored.received_at();
        return WriteDevice(ctx, device);
      };
      changes.push_back(std::move(change));
    }
    // 2. The system user: owns the node device, has no rights, cannot log in.
    // 3. The first admin.
    for (bool admin : {false, true}) {
      v1::User user;
      user.set_id(std::string(admin ? kFirstAdminUserId : kSystemUserId));
      user.set_name(admin ? "Administrator" : "fieldsyncd");
      user.set_role(admin ? v1::ROLE_ADMIN : v1::ROLE_UNSPECIFIED);
      user.set_disabled(!admin);
      ServerChange change;
      change.event = MakeEvent(v1::SUBJECT_KIND_USER, user.id(), "");
      *change.event.mutable_user_upserted()->mutable_user() = user;
      // The domain's merge stores the user (domain/reference.h).
      changes.push_back(std::move(change));
    }
    // 4. A token-only device holding the first admin's token.
    {
      ServerChange change;
      change.event = MakeEvent(v1::SUBJECT_KIND_DEVICE, admin_device, "");
      auto* body = change.event.mutable_device_enrolled();
      body->set_user_id(std::string(kFirstAdminUserId));
      body->set_model("first-admin-token");
      body->set_name("first admin token");
      change.apply = [admin_device, hash = SecretHash(token)](storage::CommitContext& ctx,
                                                              const v1::StoredEvent& stored) {
        v1::Device device;
        device.set_id(admin_device);
        device.set_user_id(std::string(kFirstAdminUserId));
        device.set_model("first-admin-token");
        device.set_name("first admin token");
        *device.mutable_enrolled_at() = stored.received_at();
        ctx.Put(auth_keys::Token(hash), admin_device);
        RETURN_IF_ERROR(ListDeviceOfUser(ctx, std::string(kFirstAdminUserId), admin_device));
        return WriteDevice(ctx, device);
      };
      changes.push_back(std::move(change));
    }
    RETURN_IF_ERROR(writer_.Append(std::string(kSystemUserId), std::move(changes)).status());
    first_admin_token_ = token;
    return absl::OkStatus();
  }

  std::optional<std::string> first_admin_token() const override { return first_admin_token_; }

  absl::StatusOr<Principal> Authenticate(std::string_view token) const override {
    ASSIGN_OR_RETURN(std::optional<std::string> device_id,
                     store_->GetProjection(auth_keys::Token(SecretHash(token))));
    if (!device_id.has_value()) return Unauthenticated("unknown bearer token");
    return PrincipalOf(*device_id);
  }

  absl::Status Recheck(const Principal& principal) const override {
    return PrincipalOf(principal.device_id()).status();
  }

  OpenStreams& open_streams() override { return open_streams_; }

  // The principal behind device `device_id`, read now.
  absl::StatusOr<Principal> PrincipalOf(const std::string& device_id) const {
    ASSIGN_OR_RETURN(std::optional<v1::Device> device, directory_->GetDevice(device_id));
    if (!device.has_value()) {
      return Unauthenticated(absl::StrCat("the token's device ", device_id, " is not enrolled"));
    }
    if (device->revoked()) {
      return Unauthenticated(
          absl::StrCat("device ", device->id(), " was revoked at ",
                       absl::FormatTime(base::FromTimestamp(device->revoked_at())), ": ",
                       device->revoke_reason()));
    }
    ASSIGN_OR_RETURN(std::optional<v1::User> user, directory_->GetUser(device->user_id()));
    if (!user.has_value()) {
      return Unauthenticated(absl::StrCat("the token's user ", device->user_id(), " is unknown"));
    }
    if (user->disabled()) {
      return Unauthenticated(absl::StrCat("user ", user->id(), " is disabled"));
    }
    return Principal{.user = *std::move(user), .device = *std::move(device)};
  }

  const sync::DeviceKeys& device_keys() const override { return device_keys_; }

  void IssueEnrollmentCode(std::string actor, std::string user_id, absl::Duration ttl,
                           std::function<void(absl::StatusOr<IssuedCode>)> done) override {
    absl::StatusOr<std::optional<v1::User>> user = directory_->GetUser(user_id);
    if (!user.ok()) return done(user.status());
    if (!user->has_value())
      return done(absl::NotFoundError(absl::StrCat("no user '", user_id, "'")));
    if ((*user)->disabled()) {
      return done(absl::FailedPreconditionError(absl::StrCat("user ", user_id, " is disabled")));
    }
    absl::StatusOr<std::string> area = directory_->AreaOfUser(**user);
    if (!area.ok()) return done(area.status());

    auto issued = std::make_shared<IssuedCode>();
    issued->code = NewEnrollmentCode();
    issued->code_id = absl::StrCat("code-", RandomHex(8));
    issued->expires_at = clock_() + ttl;
    ServerChange change;
    change.event = MakeEvent(v1::SUBJECT_KIND_USER, user_id, *area);
    auto* body = change.event.mutable_enrollment_code_issued();
    body->set_code_id(issued->code_id);
    *body->mutable_expires_at() = base::ToTimestamp(issued->expires_at);
    change.apply = [hash = SecretHash(*NormalizeEnrollmentCode(issued->code)), user_id](
                       storage::CommitContext& ctx, const v1::StoredEvent& stored) -> absl::Status {
      ASSIGN_OR_RETURN(std::optional<v1::User> current, ReadUser(ctx, user_id));
      if (!current.has_value() || current->disabled()) {
        return absl::FailedPreconditionError(
            absl::StrCat("user ", user_id, " was disabled or removed meanwhile"));
      }
      // The record keeps the issuing event (user, code id, expiry), never the code.
      ctx.Put(auth_keys::Code(hash), stored.event().SerializeAsString());
      return absl::OkStatus();
    };
    std::vector<ServerChange> changes;
    changes.push_back(std::move(change));
    writer_.AppendAsync(
        std::move(actor), std::move(changes),
        [issued, done = std::move(done)](absl::StatusOr<std::vector<v1::StoredEvent>> events) {
          if (!events.ok()) return done(events.status());
          issued->event = std::move(events->front());
          done(std::move(*issued));
        });
  }

  void Enroll(const v1::EnrollRequest& request,
              std::function<void(absl::StatusOr<Enrollment>)> done) override {
    if (request.code().empty()) return done(absl::InvalidArgumentError("code is required"));
    if (request.ed25519_public_key().size() != kPublicKeyBytes) {
      return done(absl::InvalidArgumentError(absl::StrCat(
          "ed25519_public_key must be 32 bytes, got ", request.ed25519_public_key().size())));
    }
    for (const auto& [name, value] :
         {std::pair<const char*, const std::string*>{"device_model", &request.device_model()},
          {"device_name", &request.device_name()},
          {"app_version", &request.app_version()}}) {
      if (!value->empty() && !base::IsCleanText(*value, 200)) {
        return done(absl::InvalidArgumentError(
            absl::StrCat(name,
                         " must be UTF-8 text without control characters, at most 200 "
                         "bytes")));
      }
    }
    std::optional<std::string> code = NormalizeEnrollmentCode(request.code());
    if (!code.has_value()) return done(Unauthenticated("enrollment code is malformed"));
    std::string hash = SecretHash(*code);
    absl::StatusOr<std::optional<std::string>> record =
        store_->GetProjection(auth_keys::Code(hash));
    if (!record.ok()) return done(record.status());
    if (!record->has_value()) return done(Unauthenticated("unknown enrollment code"));
    v1::Event issued;
    if (!issued.ParseFromString(**record)) {
      return done(absl::DataLossError("enrollment code record does not parse"));
    }
    const std::string code_id = issued.enrollment_code_issued().code_id();
    const absl::Time expires_at = base::FromTimestamp(issued.enrollment_code_issued().expires_at());
    absl::Time now = clock_();
    if (now >= expires_at) {
      return done(Unauthenticated(
          absl::StrCat("enrollment code expired at ", absl::FormatTime(expires_at))));
    }
    absl::StatusOr<std::optional<std::string>> used =
        store_->GetProjection(auth_keys::CodeUsed(code_id));
    if (!used.ok()) return done(used.status());
    if (used->has_value()) return done(Unauthenticated("enrollment code was already used"));
    const std::string user_id = issued.subject().id();
    absl::StatusOr<std::optional<v1::User>> user = directory_->GetUser(user_id);
    if (!user.ok()) return done(user.status());
    if (!user->has_value() || (*user)->disabled()) {
      return done(Unauthenticated(absl::StrCat("the code's user ", user_id, " is disabled")));
    }
    absl::StatusOr<std::string> area = directory_->AreaOfUser(**user);
    if (!area.ok()) return done(area.status());

    auto enrollment = std::make_shared<Enrollment>();
    enrollment->token = NewToken();
    enrollment->user = **user;
    v1::Device& device = enrollment->device;
    device.set_id(absl::StrCat("dev-", RandomHex(8)));
    device.set_user_id(user_id);
    device.set_public_key(request.ed25519_public_key());
    device.set_model(request.device_model());
    device.set_name(request.device_name());

    ServerChange change;
    change.event = MakeEvent(v1::SUBJECT_KIND_DEVICE, device.id(), *area);
    auto* body = change.event.mutable_device_enrolled();
    body->set_user_id(user_id);
    body->set_public_key(device.public_key());
    body->set_model(device.model());
    body->set_name(device.name());
    body->set_code_id(code_id);
    change.apply = [enrollment, code_id, expires_at, user_id,
                    token_hash = SecretHash(enrollment->token)](
                       storage::CommitContext& ctx, const v1::StoredEvent& stored) -> absl::Status {
      // Checked again in log order: of two enrollments racing for one code,
      // the first appended wins and the second sees the code used.
      ASSIGN_OR_RETURN(std::optional<std::string> used, ctx.Get(auth_keys::CodeUsed(code_id)));
      if (used.has_value()) return Unauthenticated("enrollment code was already used");
      if (base::FromTimestamp(stored.received_at()) >= expires_at) {
        return Unauthenticated(
            absl::StrCat("enrollment code expired at ", absl::FormatTime(expires_at)));
      }
      ASSIGN_OR_RETURN(std::optional<v1::User> current, ReadUser(ctx, user_id));
      if (!current.has_value() || current->disabled()) {
        return Unauthenticated(absl::StrCat("the code's user ", user_id, " is disabled"));
      }
      v1::Device device = enrollment->device;
      *device.mutable_enrolled_at() = stored.received_at();
      ctx.Put(auth_keys::CodeUsed(code_id), device.id());
      ctx.Put(auth_keys::Token(token_hash), device.id());
      RETURN_IF_ERROR(ListDeviceOfUser(ctx, user_id, device.id()));
      return WriteDevice(ctx, device);
    };
    std::vector<ServerChange> changes;
    changes.push_back(std::move(change));
    writer_.AppendAsync(
        user_id, std::move(changes),
        [enrollment, done = std::move(done)](absl::StatusOr<std::vector<v1::StoredEvent>> events) {
          if (!events.ok()) return done(events.status());
          enrollment->event = std::move(events->front());
          *enrollment->device.mutable_enrolled_at() = enrollment->event.received_at();
          done(std::move(*enrollment));
        });
  }

  void RevokeDevice(
      std::string actor, std::string device_id, std::string reason,
      std::function<void(absl::StatusOr<std::pair<v1::Device, uint64_t>>)> done) override {
    if (device_id == node_id_) {
      return done(absl::FailedPreconditionError(
          absl::StrCat("device ", device_id, " is the server's own node device")));
    }
    absl::StatusOr<std::optional<v1::Device>> device = directory_->GetDevice(device_id);
    if (!device.ok()) return done(device.status());
    if (!device->has_value()) {
      return done(absl::NotFoundError(absl::StrCat("no device '", device_id, "'")));
    }
    if ((*device)->revoked()) {
      return done(
          absl::FailedPreconditionError(absl::StrCat("device ", device_id, " is already revoked")));
    }
    std::string area;
    absl::StatusOr<std::optional<v1::User>> user = directory_->GetUser((*device)->user_id());
    if (!user.ok()) return done(user.status());
    if (user->has_value()) {
      absl::StatusOr<std::string> user_area = directory_->AreaOfUser(**user);
      if (!user_area.ok()) return done(user_area.status());
      area = *user_area;
    }
    auto revoked = std::make_shared<v1::Device>();
    ServerChange change;
    change.event = MakeEvent(v1::SUBJECT_KIND_DEVICE, device_id, area);
    change.event.mutable_device_revoked()->set_reason(reason);
    change.apply = [device_id, reason, revoked](storage::CommitContext& ctx,
                                                const v1::StoredEvent& stored) -> absl::Status {
      ASSIGN_OR_RETURN(std::optional<v1::Device> current, ReadDevice(ctx, device_id));
      if (!current.has_value()) {
        return absl::NotFoundError(absl::StrCat("no device '", device_id, "'"));
      }
      if (current->revoked()) {
        return absl::FailedPreconditionError(
            absl::StrCat("device ", device_id, " is already revoked"));
      }
      current->set_revoked(true);
      *current->mutable_revoked_at() = stored.received_at();
      current->set_revoke_reason(reason);
      *revoked = *current;
      return WriteDevice(ctx, *current);
    };
    std::vector<ServerChange> changes;
    changes.push_back(std::move(change));
    writer_.AppendAsync(
        std::move(actor), std::move(changes),
        [revoked, done = std::move(done)](absl::StatusOr<std::vector<v1::StoredEvent>> events) {
          if (!events.ok()) return done(events.status());
          done(std::make_pair(*revoked, events->front().offset()));
        });
  }

  const std::string& node_device_id() const override { return node_id_; }
  EventWriter& writer() override { return writer_; }

 private:
  storage::EventStore* store_;
  const Directory* directory_;
  Clock clock_;
  std::string node_id_;
  // Before the writer, which ends the streams registered here.
  OpenStreams open_streams_;
  EventWriterImpl writer_;
  DirectoryDeviceKeys device_keys_;
  std::optional<std::string> first_admin_token_;
};

}  // namespace

std::string NewToken() {
  return absl::StrCat(kTokenPrefix, absl::WebSafeBase64Escape(RandomBytes(32)));
}

bool IsWellFormedToken(std::string_view token) {
  constexpr std::string_view kPrefix = kTokenPrefix;
  if (token.size() != kPrefix.size() + 43 || !token.starts_with(kPrefix)) return false;
  for (char c : token.substr(kPrefix.size())) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string SecretHash(std::string_view secret) {
  return storage::ToHex(storage::DigestBytes(storage::Sha256({secret})));
}

std::string NewEnrollmentCode() {
  std::string random = RandomBytes(kCodeChars);
  std::string code;
  for (size_t i = 0; i < kCodeChars; ++i) {
    if (i > 0 && i % 5 == 0) code.push_back('-');
    // 32 divides 256: every character is equally likely.
    code.push_back(kCrockford[static_cast<unsigned char>(random[i]) % 32]);
  }
  return code;
}

std::optional<std::string> NormalizeEnrollmentCode(std::string_view code) {
  if (code.size() > 64) return std::nullopt;
  std::string out;
  for (char c : code) {
    if (c == '-' || c == ' ') continue;
    c = absl::ascii_toupper(static_cast<unsigned char>(c));
    if (c == 'O') c = '0';
    if (c == 'I' || c == 'L') c = '1';
    if (kCrockford.find(c) == std::string_view::npos) return std::nullopt;
    out.push_back(c);
  }
  if (out.size() != kCodeChars) return std::nullopt;
  return out;
}

std::string RandomHex(size_t bytes) { return storage::ToHex(RandomBytes(bytes)); }

std::string NewUuid() {
  std::string b = RandomBytes(16);
  b[6] = static_cast<char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);
  std::string hex = storage::ToHex(b);
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                      hex.substr(16, 4), "-", hex.substr(20));
}

namespace auth_keys {
std::string Token(std::string_view hash_hex) {
  return absl::StrCat("auth/token/", std::string(hash_hex));
}
std::string Code(std::string_view hash_hex) {
  return absl::StrCat("auth/code/", std::string(hash_hex));
}
std::string CodeUsed(std::string_view code_id) {
  return absl::StrCat("auth/code_used/", std::string(code_id));
}
std::string UserDevices(std::string_view user_id) {
  return absl::StrCat("auth/user_devices/", std::string(user_id));
}
}  // namespace auth_keys

absl::StatusOr<std::unique_ptr<Identity>> Identity::Open(storage::EventStore* store,
                                                         const Directory* directory, Clock clock,
                                                         const sync::MergePolicy* policy) {
  ASSIGN_OR_RETURN(std::optional<std::string> node_id, store->GetProjection(auth_keys::kNodeId));
  if (node_id.has_value()) {
    ASSIGN_OR_RETURN(std::optional<std::string> seed, store->GetProjection(auth_keys::kNodeKey));
    if (!seed.has_value()) return absl::DataLossError("auth/node/key is missing");
    ASSIGN_OR_RETURN(std::unique_ptr<NodeKey> key, NodeKey::FromSeed(*seed));
    return std::make_unique<IdentityImpl>(store, directory, clock, *node_id, std::move(key),
                                          policy);
  }
  // First start: make the node and the first admin.
  std::string seed = RandomBytes(kSeedBytes);
  ASSIGN_OR_RETURN(std::unique_ptr<NodeKey> key, NodeKey::FromSeed(seed));
  std::string public_key = key->PublicKey();
  auto identity = std::make_unique<IdentityImpl>(
      store, directory, clock, absl::StrCat("node-", RandomHex(8)), std::move(key), policy);
  RETURN_IF_ERROR(identity->Bootstrap(seed, public_key));
  return identity;
}

}  // namespace fieldsync::server
