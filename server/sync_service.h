// SyncService: device enrollment now; Push, Pull, UploadBlob and
// GetBlobStatus pass the guard (role, rate limit) and answer UNIMPLEMENTED
// until the sync engine is wired here.
//
// Thread-safety: safe for concurrent calls.
#pragma once

#include "fieldsync/v1/sync_service.grpc.pb.h"
#include "server/service_context.h"

namespace fieldsync::server {

class SyncServiceImpl final : public v1::SyncService::CallbackService {
 public:
  // `context` must outlive the service.
  explicit SyncServiceImpl(const ServiceContext* context) : ctx_(context) {}

  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* context,
                                 const v1::PushRequest* request,
                                 v1::PushResponse* response) override;
  grpc::ServerUnaryReactor* Pull(grpc::CallbackServerContext* context,
                                 const v1::PullRequest* request,
                                 v1::PullResponse* response) override;
  grpc::ServerReadReactor<v1::UploadBlobRequest>* UploadBlob(
      grpc::CallbackServerContext* context, v1::UploadBlobResponse* response) override;
  grpc::ServerUnaryReactor* GetBlobStatus(grpc::CallbackServerContext* context,
                                          const v1::GetBlobStatusRequest* request,
                                          v1::GetBlobStatusResponse* response) override;
  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* context,
                                   const v1::EnrollRequest* request,
                                   v1::EnrollResponse* response) override;

 private:
  const ServiceContext* ctx_;
};

}  // namespace fieldsync::server
