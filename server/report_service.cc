#include "server/report_service.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "domain/assessment/report.h"
#include "google/protobuf/util/time_util.h"
#include "server/offload.h"

namespace fieldsync::server {
namespace {

namespace as = domain::assessment;

absl::Status CheckReportRequest(const Principal& principal, const Scope& scope,
                                const std::string& scope_prefix, int32_t year,
                                const as::AssessmentOptions& options) {
  RETURN_IF_ERROR(ValidatePrefix("scope_prefix", scope_prefix, false));
  if (year < 1900 || year > 9999) {
    return absl::InvalidArgumentError(absl::StrCat("year is required (1900-9999), got ", year));
  }
  RETURN_IF_ERROR(as::CheckLevelPrefix(scope_prefix));
  if (!sync::CoversPrefix(scope, scope_prefix)) {
    return OutOfScope(principal, absl::StrCat("scope_prefix ", scope_prefix));
  }
  if (!options.enabled) {
    return absl::FailedPreconditionError(
        "assessment.enabled is false: this server keeps no assessment aggregates");
  }
  return absl::OkStatus();
}

as::Day Today(const ServiceContext& ctx, const as::AssessmentOptions& options) {
  return as::DayOf(ctx.clock(), options.time_zone);
}

// Runs a report's `body` on the read executor (server/offload.h), never on
// the gRPC callback thread: a report reads up to a page of aggregates and
// their keys from RocksDB. A full read queue answers RESOURCE_EXHAUSTED
// naming limits.read_queue_depth. The response is cleared on an error.
template <typename Response>
void FinishReport(const ServiceContext& ctx, GuardedUnary* call,
                  grpc::CallbackServerContext* context, Response* response,
                  std::function<absl::Status()> body) {
  FinishOffloaded(ctx, call, context, [response, body = std::move(body)]() -> absl::Status {
    absl::Status status = body();
    if (!status.ok()) response->Clear();
    return status;
  });
}

}  // namespace

grpc::ServerUnaryReactor* ReportServiceImpl::GetAssessment(grpc::CallbackServerContext* context,
                                                           const v1::GetAssessmentRequest* request,
                                                           v1::GetAssessmentResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(ReportService, GetAssessment);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  const ServiceContext* ctx = ctx_;
  FinishReport(*ctx_, call, context, response,
               [ctx, call, request, response, options = options_]() -> absl::Status {
    RETURN_IF_ERROR(CheckReportRequest(call->principal(), call->scope(), request->scope_prefix(),
                                       request->year(), options));
    // Read the head first: every aggregate read after it reflects at least it.
    const uint64_t head = ctx->store->Head();
    const absl::Time now = ctx->clock();
    ASSIGN_OR_RETURN(*response,
                     as::Assessment(ctx->engine->reader(), *request, Today(*ctx, options),
                                    ctx->PageSize(request->page_size()), options));
    response->set_as_of_offset(head);
    *response->mutable_computed_at() =
        google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(now));
    return absl::OkStatus();
  });
  return call;
}

grpc::ServerUnaryReactor* ReportServiceImpl::GetEvidenceReport(
    grpc::CallbackServerContext* context, const v1::GetEvidenceReportRequest* request,
    v1::GetEvidenceReportResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(ReportService, GetEvidenceReport);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  const ServiceContext* ctx = ctx_;
  FinishReport(*ctx_, call, context, response,
               [ctx, call, request, response, options = options_]() -> absl::Status {
    for (int kind : request->kinds()) {
      if (!v1::EvidenceFlagKind_IsValid(kind) || kind == v1::EVIDENCE_FLAG_KIND_UNSPECIFIED) {
        return absl::InvalidArgumentError(
            absl::StrCat("kinds: ", kind, " is not an EvidenceFlagKind"));
      }
    }
    if (!request->cadre_id().empty() && !base::IsPlainId(request->cadre_id())) {
      return absl::InvalidArgumentError("cadre_id must match [A-Za-z0-9._:-]{1,64}");
    }
    RETURN_IF_ERROR(CheckReportRequest(call->principal(), call->scope(), request->scope_prefix(),
                                       request->year(), options));
    const uint64_t head = ctx->store->Head();
    ASSIGN_OR_RETURN(*response,
                     as::Evidence(ctx->engine->reader(), *request, Today(*ctx, options),
                                  ctx->PageSize(request->page_size()), options));
    response->set_as_of_offset(head);
    return absl::OkStatus();
  });
  return call;
}

namespace {

absl::Status CheckListRequest(const Principal& principal, const Scope& scope,
                              const std::string& scope_prefix) {
  RETURN_IF_ERROR(ValidatePrefix("scope_prefix", scope_prefix, false));
  RETURN_IF_ERROR(as::CheckLevelPrefix(scope_prefix));
  if (!sync::CoversPrefix(scope, scope_prefix)) {
    return OutOfScope(principal, absl::StrCat("scope_prefix ", scope_prefix));
  }
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* ReportServiceImpl::ListFeedback(grpc::CallbackServerContext* context,
                                                          const v1::ListFeedbackRequest* request,
                                                          v1::ListFeedbackResponse* response) {
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(ReportService, ListFeedback));
  if (!call->admitted()) return call;
  const ServiceContext* ctx = ctx_;
  FinishReport(*ctx_, call, context, response, [ctx, call, request, response]() -> absl::Status {
    RETURN_IF_ERROR(CheckListRequest(call->principal(), call->scope(), request->scope_prefix()));
    ASSIGN_OR_RETURN(*response, as::Feedback(ctx->engine->reader(), *request,
                                             ctx->PageSize(request->page_size())));
    return absl::OkStatus();
  });
  return call;
}

grpc::ServerUnaryReactor* ReportServiceImpl::ListInspections(
    grpc::CallbackServerContext* context, const v1::ListInspectionsRequest* request,
    v1::ListInspectionsResponse* response) {
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(ReportService, ListInspections));
  if (!call->admitted()) return call;
  const ServiceContext* ctx = ctx_;
  FinishReport(*ctx_, call, context, response, [ctx, call, request, response]() -> absl::Status {
    RETURN_IF_ERROR(CheckListRequest(call->principal(), call->scope(), request->scope_prefix()));
    ASSIGN_OR_RETURN(*response, as::Inspections(ctx->engine->reader(), *request,
                                                ctx->PageSize(request->page_size())));
    return absl::OkStatus();
  });
  return call;
}

}  // namespace fieldsync::server
