#include "server/identity.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "base/time.h"

namespace fieldsync::server {
namespace {

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
               sync::SyncEngine* engine, std::unique_ptr<NodeKey> key)
      : store_(store),
        directory_(directory),
        clock_(clock),
        engine_(engine),
        key_(std::move(key)),
        node_id_(key_->device_id()) {}

  void AppendAsync(std::string actor, std::vector<ServerChange> changes, Done done) override {
    for (ServerChange& change : changes) {
      change.actor = actor;
      std::optional<std::string> disabled = DisabledUser(change.event);
      if (!disabled.has_value()) continue;
      // The user's devices as committed now; the commit adds those the
      // user's device list (log order) names.
      absl::StatusOr<std::vector<std::string>> indexed = IndexedDevicesOfUser(*store_, *disabled);
      if (!indexed.ok()) return done(indexed.status());
      change.apply = [this, apply = std::move(change.apply), indexed = *std::move(indexed)](
                         storage::CommitContext& ctx, const sync::LoggedEvent& stored) {
        if (apply) RETURN_IF_ERROR(apply(ctx, stored));
        return RevokeDevicesOfDisabledUser(ctx, stored, indexed);
      };
    }
    engine_->AppendServerEventsAsync(
        *key_, std::move(changes),
        [this, done = std::move(done)](absl::StatusOr<std::vector<sync::LoggedEvent>> stored) {
          if (stored.ok()) EndOpenStreams(*stored);
          done(std::move(stored));
        });
  }

  absl::StatusOr<std::vector<sync::LoggedEvent>> Append(
      std::string actor, std::vector<ServerChange> changes) override {
    absl::Notification finished;
    absl::StatusOr<std::vector<sync::LoggedEvent>> out;
    AppendAsync(std::move(actor), std::move(changes),
                [&](absl::StatusOr<std::vector<sync::LoggedEvent>> result) {
                  out = std::move(result);
                  finished.Notify();
                });
    finished.WaitForNotification();
    return out;
  }

  // The first start of a store: the node device, the system user, the first
  // admin and its token, in one append.
  absl::Status Bootstrap() {
    std::string admin_device = absl::StrCat("dev-", RandomHex(8));
    std::string token = NewToken();
    std::vector<ServerChange> changes;

    // 1. The node device, whose key verifies the node's events. Its seed is
    // in the key file only (server/node_key.h), never in the store.
    {
      ServerChange change;
      change.event = MakeEvent(v1::SUBJECT_KIND_DEVICE, node_id_, "");
      auto* body = change.event.mutable_device_enrolled();
      body->set_user_id(std::string(kSystemUserId));
      body->set_public_key(key_->public_key());
      body->set_model("fieldsyncd");
      body->set_name("node");
      change.apply = [node_id = node_id_, public_key = key_->public_key()](
                         storage::CommitContext& ctx, const sync::LoggedEvent& stored) {
        ctx.Put(auth_keys::kNodeId, node_id);
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
                                                              const sync::LoggedEvent& stored) {
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
    RETURN_IF_ERROR(Append(std::string(kSystemUserId), std::move(changes)).status());
    first_admin_token_ = token;
    return absl::OkStatus();
  }

  // A store of an older version kept the node's seed in its projections
  // (auth/node/key), where every backup copied it. LoadNodeKey has written it
  // to the key file; this erases it from the store. The store writes
  // projections only with a log record, so the erasure rides on an event of
  // the node's own: the system user, stated again unchanged.
  absl::Status EraseSeedFromStore() {
    ASSIGN_OR_RETURN(std::optional<v1::User> system, directory_->GetUser(kSystemUserId));
    v1::User user;
    if (system.has_value()) {
      user = *std::move(system);
    } else {
      user.set_id(std::string(kSystemUserId));
      user.set_name("fieldsyncd");
      user.set_disabled(true);
    }
    ServerChange change;
    change.event = MakeEvent(v1::SUBJECT_KIND_USER, user.id(), "");
    *change.event.mutable_user_upserted()->mutable_user() = user;
    // The domain's merge stores the user again (domain/reference.h).
    change.apply = [](storage::CommitContext& ctx, const sync::LoggedEvent&) {
      ctx.Delete(auth_keys::kLegacyNodeKey);
      return absl::OkStatus();
    };
    std::vector<ServerChange> changes;
    changes.push_back(std::move(change));
    return Append(std::string(kSystemUserId), std::move(changes)).status();
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
                       storage::CommitContext& ctx,
                       const sync::LoggedEvent& stored) -> absl::Status {
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
    AppendAsync(
        std::move(actor), std::move(changes),
        [issued, done = std::move(done)](absl::StatusOr<std::vector<sync::LoggedEvent>> events) {
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
    change.apply =
        [enrollment, code_id, expires_at, user_id, token_hash = SecretHash(enrollment->token)](
            storage::CommitContext& ctx, const sync::LoggedEvent& stored) -> absl::Status {
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
    AppendAsync(user_id, std::move(changes),
                [enrollment,
                 done = std::move(done)](absl::StatusOr<std::vector<sync::LoggedEvent>> events) {
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
                                                const sync::LoggedEvent& stored) -> absl::Status {
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
    AppendAsync(
        std::move(actor), std::move(changes),
        [revoked, done = std::move(done)](absl::StatusOr<std::vector<sync::LoggedEvent>> events) {
          if (!events.ok()) return done(events.status());
          done(std::make_pair(*revoked, events->front().offset()));
        });
  }

  const std::string& node_device_id() const override { return node_id_; }

 private:
  // A UserUpserted that disables a user revokes, in its own commit, every
  // device of that user not revoked yet: disabling is permanent for the
  // user's tokens and keys, re-enabling brings none of them back.
  absl::Status RevokeDevicesOfDisabledUser(storage::CommitContext& ctx,
                                           const sync::LoggedEvent& stored,
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
  // user's devices end now (committer thread; the registry never blocks).
  void EndOpenStreams(const std::vector<sync::LoggedEvent>& stored) {
    for (const sync::LoggedEvent& s : stored) {
      const v1::Event& event = s.event();
      if (event.has_device_revoked()) {
        open_streams_.EndDevice(
            event.subject().id(),
            Unauthenticated(absl::StrCat("device ", event.subject().id(), " was revoked at ",
                                         absl::FormatTime(base::FromTimestamp(s.received_at())), ": ",
                                         event.device_revoked().reason(),
                                         "; the call opened with its token is ended")));
      } else if (std::optional<std::string> user = DisabledUser(event)) {
        open_streams_.EndUser(
            *user, Unauthenticated(absl::StrCat(
                       "user ", *user, " was disabled at ",
                       absl::FormatTime(base::FromTimestamp(s.received_at())),
                       "; the call opened with the token of one of its devices is ended")));
      }
    }
  }

  storage::EventStore* store_;
  const Directory* directory_;
  Clock clock_;
  sync::SyncEngine* const engine_;
  const std::unique_ptr<NodeKey> key_;
  const std::string node_id_;
  OpenStreams open_streams_;
  std::optional<std::string> first_admin_token_;
};

}  // namespace

std::unique_ptr<sync::DeviceKeys> NewDirectoryDeviceKeys(const Directory* directory) {
  return std::make_unique<DirectoryDeviceKeys>(directory);
}

absl::StatusOr<std::unique_ptr<Identity>> Identity::Open(storage::EventStore* store,
                                                         const Directory* directory, Clock clock,
                                                         sync::SyncEngine* engine,
                                                         LoadedNodeKey node) {
  if (node.key == nullptr) return absl::InvalidArgumentError("Identity::Open needs the node key");
  if (!node.new_node) {
    // Older versions counted the node's events in its device record; the
    // engine's count continues from there.
    ASSIGN_OR_RETURN(std::optional<v1::Device> device, directory->GetDevice(node.key->device_id()));
    if (device.has_value()) node.key->set_sequence_floor(device->last_device_seq());
  }
  auto identity =
      std::make_unique<IdentityImpl>(store, directory, clock, engine, std::move(node.key));
  if (node.new_node) RETURN_IF_ERROR(identity->Bootstrap());
  if (node.seed_in_store) RETURN_IF_ERROR(identity->EraseSeedFromStore());
  return identity;
}

}  // namespace fieldsync::server
