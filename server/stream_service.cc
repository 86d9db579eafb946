#include "server/stream_service.h"

#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace fieldsync::server {

grpc::ServerWriteReactor<v1::SubscribeResponse>* StreamServiceImpl::Subscribe(
    grpc::CallbackServerContext* context, const v1::SubscribeRequest* request) {
  const std::string& path = FIELDSYNC_METHOD_PATH(StreamService, Subscribe);
  Admission admission = ctx_->guard->Admit(context, path);
  absl::Status status = admission.status;
  if (status.ok()) {
    status = [&]() -> absl::Status {
      for (int kind : request->kinds()) {
        if (!v1::EventKind_IsValid(kind) || kind == v1::EVENT_KIND_UNSPECIFIED) {
          return absl::InvalidArgumentError(absl::StrCat("kinds: ", kind, " is not an EventKind"));
        }
      }
      ASSIGN_OR_RETURN(Scope scope, ctx_->directory->ComputeScope(admission.principal->user));
      for (const std::string& prefix : request->scope_prefixes()) {
        RETURN_IF_ERROR(ValidatePrefix("scope_prefixes", prefix, false));
        if (!sync::CoversPrefix(scope, prefix)) {
          return OutOfScope(*admission.principal, absl::StrCat("scope prefix ", prefix));
        }
      }
      return NotServedYet(path);
    }();
  }
  return new FinishedWriter<v1::SubscribeResponse>(ctx_->guard, std::move(admission), status);
}

}  // namespace fieldsync::server
