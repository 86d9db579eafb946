#include "server/report_service.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/text.h"

namespace fieldsync::server {
namespace {

absl::Status CheckReportRequest(const ServiceContext& ctx, const Principal& principal,
                                const std::string& scope_prefix, int32_t year) {
  RETURN_IF_ERROR(ValidatePrefix("scope_prefix", scope_prefix, false));
  if (year < 1900 || year > 9999) {
    return absl::InvalidArgumentError(absl::StrCat("year is required (1900-9999), got ", year));
  }
  ASSIGN_OR_RETURN(Scope scope, ctx.directory->ComputeScope(principal.user));
  if (!sync::CoversPrefix(scope, scope_prefix)) {
    return OutOfScope(principal, absl::StrCat("scope_prefix ", scope_prefix));
  }
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* ReportServiceImpl::GetAssessment(grpc::CallbackServerContext* context,
                                                           const v1::GetAssessmentRequest* request,
                                                           v1::GetAssessmentResponse*) {
  const std::string& path = FIELDSYNC_METHOD_PATH(ReportService, GetAssessment);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  absl::Status status =
      CheckReportRequest(*ctx_, call->principal(), request->scope_prefix(), request->year());
  call->Finish(status.ok() ? NotServedYet(path) : status);
  return call;
}

grpc::ServerUnaryReactor* ReportServiceImpl::GetEvidenceReport(
    grpc::CallbackServerContext* context, const v1::GetEvidenceReportRequest* request,
    v1::GetEvidenceReportResponse*) {
  const std::string& path = FIELDSYNC_METHOD_PATH(ReportService, GetEvidenceReport);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  auto check = [&]() -> absl::Status {
    for (int kind : request->kinds()) {
      if (!v1::EvidenceFlagKind_IsValid(kind) || kind == v1::EVIDENCE_FLAG_KIND_UNSPECIFIED) {
        return absl::InvalidArgumentError(
            absl::StrCat("kinds: ", kind, " is not an EvidenceFlagKind"));
      }
    }
    if (!request->cadre_id().empty() && !base::IsPlainId(request->cadre_id())) {
      return absl::InvalidArgumentError("cadre_id must match [A-Za-z0-9._:-]{1,64}");
    }
    RETURN_IF_ERROR(
        CheckReportRequest(*ctx_, call->principal(), request->scope_prefix(), request->year()));
    return NotServedYet(path);
  };
  call->Finish(check());
  return call;
}

}  // namespace fieldsync::server
