// AdminService: areas, units, users, links, enrollment codes, devices and
// backups. Every change is a server-made event appended with its projection
// writes in one batch (Identity::AppendAsync, through the sync engine), attributed to the
// calling user. Handlers validate in the gRPC thread and answer from the
// store's writer thread once the change is durable; backups (then pruning to
// storage.backups_to_keep) run on the Worker.
//
// Thread-safety: safe for concurrent calls.
#pragma once

#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "server/service_context.h"

namespace fieldsync::server {

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  // `context` must outlive the service.
  explicit AdminServiceImpl(const ServiceContext* context) : ctx_(context) {}

  grpc::ServerUnaryReactor* ImportAreas(grpc::CallbackServerContext* context,
                                        const v1::ImportAreasRequest* request,
                                        v1::ImportAreasResponse* response) override;
  grpc::ServerUnaryReactor* UpsertUnit(grpc::CallbackServerContext* context,
                                       const v1::UpsertUnitRequest* request,
                                       v1::UpsertUnitResponse* response) override;
  grpc::ServerUnaryReactor* ListUnits(grpc::CallbackServerContext* context,
                                      const v1::ListUnitsRequest* request,
                                      v1::ListUnitsResponse* response) override;
  grpc::ServerUnaryReactor* UpsertUser(grpc::CallbackServerContext* context,
                                       const v1::UpsertUserRequest* request,
                                       v1::UpsertUserResponse* response) override;
  grpc::ServerUnaryReactor* ListUsers(grpc::CallbackServerContext* context,
                                      const v1::ListUsersRequest* request,
                                      v1::ListUsersResponse* response) override;
  grpc::ServerUnaryReactor* StartLink(grpc::CallbackServerContext* context,
                                      const v1::StartLinkRequest* request,
                                      v1::StartLinkResponse* response) override;
  grpc::ServerUnaryReactor* EndLink(grpc::CallbackServerContext* context,
                                    const v1::EndLinkRequest* request,
                                    v1::EndLinkResponse* response) override;
  grpc::ServerUnaryReactor* ListLinks(grpc::CallbackServerContext* context,
                                      const v1::ListLinksRequest* request,
                                      v1::ListLinksResponse* response) override;
  grpc::ServerUnaryReactor* IssueEnrollmentCode(grpc::CallbackServerContext* context,
                                                const v1::IssueEnrollmentCodeRequest* request,
                                                v1::IssueEnrollmentCodeResponse* response) override;
  grpc::ServerUnaryReactor* ListDevices(grpc::CallbackServerContext* context,
                                        const v1::ListDevicesRequest* request,
                                        v1::ListDevicesResponse* response) override;
  grpc::ServerUnaryReactor* RevokeDevice(grpc::CallbackServerContext* context,
                                         const v1::RevokeDeviceRequest* request,
                                         v1::RevokeDeviceResponse* response) override;
  grpc::ServerUnaryReactor* CreateBackup(grpc::CallbackServerContext* context,
                                         const v1::CreateBackupRequest* request,
                                         v1::CreateBackupResponse* response) override;
  grpc::ServerUnaryReactor* ListBackups(grpc::CallbackServerContext* context,
                                        const v1::ListBackupsRequest* request,
                                        v1::ListBackupsResponse* response) override;

 private:
  const ServiceContext* ctx_;
};

// --- Pieces exposed for unit tests ---------------------------------------------------

// One parsed line of an area CSV.
struct AreaRow {
  uint32_t line = 0;
  v1::Area area;
};

// Parses and checks an area CSV (columns code,parent,level,name[,poor]; an
// optional header line; UTF-8, optional BOM, LF or CRLF, RFC 4180 quotes).
// Per-line problems go to `errors` (at most `max_errors`, then one summary
// line numbered 0). `known_area` says whether a parent outside the file
// exists in the store (nullopt if not; its level otherwise).
std::vector<AreaRow> ParseAreaCsv(
    std::string_view csv, size_t max_errors,
    const std::function<absl::StatusOr<std::optional<v1::AreaLevel>>(const std::string& code)>&
        known_area,
    std::vector<v1::ImportError>* errors, absl::Status* store_error);

}  // namespace fieldsync::server
