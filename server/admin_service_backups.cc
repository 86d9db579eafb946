// AdminService: backups (run on the Worker, off the gRPC threads).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "server/admin_service_internal.h"

namespace fieldsync::server {

// --- Backups ----------------------------------------------------------------------------

namespace {

constexpr absl::string_view kBackupInfoPrefix = "fieldsync-backup-";
constexpr absl::string_view kBackupInfoSuffix = ".pb";

// Backup metadata lives next to the backups (fieldsync-backup-<id>.pb), so it
// travels with them.
absl::Status WriteBackupInfo(const std::string& dir, const v1::BackupInfo& info) {
  std::filesystem::path path = std::filesystem::path(dir) /
                               absl::StrCat(kBackupInfoPrefix, info.backup_id(), kBackupInfoSuffix);
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out || !info.SerializeToOstream(&out)) {
      return absl::InternalError(absl::StrCat("cannot write ", tmp.string()));
    }
  }
  std::error_code error;
  std::filesystem::rename(tmp, path, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp.string(), ": ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::CreateBackup(grpc::CallbackServerContext* context,
                                                         const v1::CreateBackupRequest* request,
                                                         v1::CreateBackupResponse* response) {
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, CreateBackup));
  if (!call->admitted()) return call;
  absl::Status status = TextField("label", request->label(), false, kMaxNameBytes);
  if (!status.ok()) {
    call->Finish(status);
    return call;
  }
  std::string label = request->label();
  const ServiceContext* ctx = ctx_;
  // A backup copies the database: run it off the gRPC threads.
  ctx_->worker->Run([call, response, label, ctx] {
    auto backup = [&]() -> absl::Status {
      const std::string& dir = ctx->settings.backup_dir;
      ASSIGN_OR_RETURN(storage::BackupInfo info, ctx->store->Backup(dir));
      v1::BackupInfo out;
      out.set_backup_id(absl::StrCat(info.backup_id));
      out.set_path(
          (std::filesystem::path(dir) / "private" / absl::StrCat(info.backup_id)).string());
      out.set_head_offset(info.head);
      if (info.head > 0) {
        ASSIGN_OR_RETURN(storage::LogRecord record, ctx->store->Read(info.head));
        out.set_head_hash(record.hash);
      }
      *out.mutable_created_at() = base::ToTimestamp(ctx->clock());
      out.set_size_bytes(info.size_bytes);
      out.set_label(label);
      RETURN_IF_ERROR(WriteBackupInfo(dir, out));
      *response->mutable_backup() = std::move(out);
      // storage.backups_to_keep: the oldest beyond it go, with their
      // metadata. The new backup is made and answered even if this fails
      // (logged: the operator's disk fills up otherwise).
      absl::StatusOr<std::vector<uint32_t>> pruned =
          storage::PruneBackups(dir, std::max<uint32_t>(ctx->settings.backups_to_keep, 1));
      if (!pruned.ok()) {
        spdlog::error("storage.backups_to_keep: pruning {} failed: {}", dir,
                      pruned.status().ToString());
        return absl::OkStatus();
      }
      for (uint32_t id : *pruned) {
        std::error_code ignored;  // Already gone is what we want.
        std::filesystem::remove(
            std::filesystem::path(dir) / absl::StrCat(kBackupInfoPrefix, id, kBackupInfoSuffix),
            ignored);
      }
      return absl::OkStatus();
    };
    call->Finish(backup());
  });
  return call;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListBackups(grpc::CallbackServerContext* context,
                                                        const v1::ListBackupsRequest*,
                                                        v1::ListBackupsResponse* response) {
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, ListBackups));
  if (!call->admitted()) return call;
  auto list = [&]() -> absl::Status {
    std::vector<v1::BackupInfo> backups;
    std::error_code error;
    std::filesystem::directory_iterator it(ctx_->settings.backup_dir, error);
    if (error) {
      if (error == std::errc::no_such_file_or_directory) return absl::OkStatus();
      return absl::InternalError(
          absl::StrCat("cannot read ", ctx_->settings.backup_dir, ": ", error.message()));
    }
    for (const auto& entry : it) {
      std::string name = entry.path().filename().string();
      if (!absl::StartsWith(name, kBackupInfoPrefix) || !absl::EndsWith(name, kBackupInfoSuffix)) {
        continue;
      }
      std::ifstream in(entry.path(), std::ios::binary);
      v1::BackupInfo info;
      if (!in || !info.ParseFromIstream(&in)) {
        return absl::DataLossError(
            absl::StrCat("backup metadata ", entry.path().string(), " does not parse"));
      }
      backups.push_back(std::move(info));
    }
    std::sort(backups.begin(), backups.end(), [](const v1::BackupInfo& a, const v1::BackupInfo& b) {
      return std::make_pair(a.created_at().seconds(), a.created_at().nanos()) >
             std::make_pair(b.created_at().seconds(), b.created_at().nanos());
    });
    for (v1::BackupInfo& info : backups) *response->add_backups() = std::move(info);
    return absl::OkStatus();
  };
  call->Finish(list());
  return call;
}

}  // namespace fieldsync::server
