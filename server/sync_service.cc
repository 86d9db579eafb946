#include "server/sync_service.h"

#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace fieldsync::server {

grpc::ServerUnaryReactor* SyncServiceImpl::Push(grpc::CallbackServerContext* context,
                                                const v1::PushRequest*, v1::PushResponse*) {
  const std::string& path = FIELDSYNC_METHOD_PATH(SyncService, Push);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  // The sync engine checks each event against the caller's scope.
  call->Finish(NotServedYet(path));
  return call;
}

grpc::ServerUnaryReactor* SyncServiceImpl::Pull(grpc::CallbackServerContext* context,
                                                const v1::PullRequest*, v1::PullResponse*) {
  const std::string& path = FIELDSYNC_METHOD_PATH(SyncService, Pull);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  // Pull serves exactly the caller's scope, computed here on the server.
  absl::StatusOr<Scope> scope = ctx_->directory->ComputeScope(call->principal().user);
  call->Finish(scope.ok() ? NotServedYet(path) : scope.status());
  return call;
}

grpc::ServerReadReactor<v1::UploadBlobRequest>* SyncServiceImpl::UploadBlob(
    grpc::CallbackServerContext* context, v1::UploadBlobResponse*) {
  const std::string& path = FIELDSYNC_METHOD_PATH(SyncService, UploadBlob);
  Admission admission = ctx_->guard->Admit(context, path);
  absl::Status status = admission.status.ok() ? NotServedYet(path) : admission.status;
  return new FinishedReader<v1::UploadBlobRequest>(ctx_->guard, std::move(admission), status);
}

grpc::ServerUnaryReactor* SyncServiceImpl::GetBlobStatus(grpc::CallbackServerContext* context,
                                                         const v1::GetBlobStatusRequest* request,
                                                         v1::GetBlobStatusResponse*) {
  const std::string& path = FIELDSYNC_METHOD_PATH(SyncService, GetBlobStatus);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  if (request->sha256().size() != 32) {
    call->Finish(absl::InvalidArgumentError(
        absl::StrCat("sha256 must be 32 bytes, got ", request->sha256().size())));
    return call;
  }
  call->Finish(NotServedYet(path));
  return call;
}

grpc::ServerUnaryReactor* SyncServiceImpl::Enroll(grpc::CallbackServerContext* context,
                                                  const v1::EnrollRequest* request,
                                                  v1::EnrollResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(SyncService, Enroll);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  Clock clock = ctx_->clock;
  ctx_->identity->Enroll(*request, [call, response, clock](absl::StatusOr<Enrollment> enrolled) {
    if (!enrolled.ok()) return call->Finish(enrolled.status());
    response->set_device_id(enrolled->device.id());
    response->set_token(enrolled->token);
    response->set_user_id(enrolled->user.id());
    response->set_role(enrolled->user.role());
    response->set_user_name(enrolled->user.name());
    *response->mutable_server_time() = ToTimestamp(clock());
    call->Finish(absl::OkStatus());
  });
  return call;
}

}  // namespace fieldsync::server
