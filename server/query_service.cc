#include "server/query_service.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "server/offload.h"
#include "sync/event_codec.h"

namespace fieldsync::server {
namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

// Client-made ids (household UUIDs, registry numbers): printable, bounded.
absl::Status KeyField(std::string_view field, const std::string& value) {
  if (value.empty()) return Invalid(absl::StrCat(std::string(field), " is required"));
  if (!base::IsCleanText(value, 128)) {
    return Invalid(absl::StrCat(std::string(field),
                                " must be 1 to 128 bytes of UTF-8 without control characters"));
  }
  return absl::OkStatus();
}

absl::Status CheckPrefixInScope(const Principal& principal, const Scope& scope,
                                const std::string& prefix) {
  if (!sync::CoversPrefix(scope, prefix)) {
    return OutOfScope(principal, absl::StrCat("scope_prefix ", prefix));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckSubjectReadable(const Directory& directory, const Principal& principal,
                                  const Scope& scope, const v1::SubjectRef& subject) {
  if (!v1::SubjectKind_IsValid(subject.kind()) || subject.kind() == v1::SUBJECT_KIND_UNSPECIFIED) {
    return Invalid("subject.kind is required");
  }
  RETURN_IF_ERROR(KeyField("subject.id", subject.id()));
  // Everyone's own records.
  if ((subject.kind() == v1::SUBJECT_KIND_USER || subject.kind() == v1::SUBJECT_KIND_CADRE) &&
      subject.id() == principal.user_id()) {
    return absl::OkStatus();
  }
  if (subject.kind() == v1::SUBJECT_KIND_DEVICE) {
    ASSIGN_OR_RETURN(std::optional<v1::Device> device, directory.GetDevice(subject.id()));
    if (device.has_value() && device->user_id() == principal.user_id()) return absl::OkStatus();
  }
  const std::string key = sync::SubjectKey(subject);
  absl::StatusOr<std::string> area = directory.AreaOfSubject(subject);
  // A subject that does not exist and one outside the scope answer alike.
  if (absl::IsNotFound(area.status())) return NotReadable(principal, scope, key, key, false);
  RETURN_IF_ERROR(area.status());
  if (!sync::Contains(scope, *area, key)) return NotReadable(principal, scope, key, key, true);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* QueryServiceImpl::GetHousehold(grpc::CallbackServerContext* context,
                                                         const v1::GetHouseholdRequest* request,
                                                         v1::GetHouseholdResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(QueryService, GetHousehold);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  const ServiceContext* ctx = ctx_;
  FinishOffloaded(*ctx_, call, context, [ctx, call, request, response]() -> absl::Status {
    std::optional<HouseholdPlace> place;
    const HouseholdLocator& households = ctx->directory->households();
    // What the request named, for the answer: never the id a number
    // resolved to (that would tell an out-of-scope caller the id).
    std::string named;
    std::string named_key;
    switch (request->key_case()) {
      case v1::GetHouseholdRequest::kId: {
        RETURN_IF_ERROR(KeyField("id", request->id()));
        ASSIGN_OR_RETURN(place, households.FindById(request->id()));
        named = absl::StrCat("household ", request->id());
        named_key = absl::StrCat("household/", request->id());
        break;
      }
      case v1::GetHouseholdRequest::kHouseholdNumber: {
        RETURN_IF_ERROR(KeyField("household_number", request->household_number()));
        ASSIGN_OR_RETURN(place, households.FindByNumber(request->household_number()));
        named = absl::StrCat("household number ", request->household_number());
        break;
      }
      default:
        return Invalid("id or household_number is required");
    }
    const Scope& scope = call->scope();
    // Not registered and registered out of scope answer alike.
    if (!place.has_value()) return NotReadable(call->principal(), scope, named, named_key, false);
    std::string key = absl::StrCat("household/", place->id);
    if (!sync::Contains(scope, place->village_code, key)) {
      return NotReadable(call->principal(), scope, named, named_key, true);
    }
    ASSIGN_OR_RETURN(*response, ctx->queries->GetHousehold(scope, *request));
    return absl::OkStatus();
  });
  return call;
}

grpc::ServerUnaryReactor* QueryServiceImpl::ListHouseholds(grpc::CallbackServerContext* context,
                                                           const v1::ListHouseholdsRequest* request,
                                                           v1::ListHouseholdsResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(QueryService, ListHouseholds);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  const ServiceContext* ctx = ctx_;
  FinishOffloaded(*ctx_, call, context, [ctx, call, request, response]() -> absl::Status {
    RETURN_IF_ERROR(ValidatePrefix("scope_prefix", request->scope_prefix(), false));
    for (int status : request->statuses()) {
      if (!v1::HouseholdStatus_IsValid(status) || status == v1::HOUSEHOLD_STATUS_UNSPECIFIED) {
        return Invalid(absl::StrCat("statuses: ", status, " is not a HouseholdStatus"));
      }
    }
    const Scope& scope = call->scope();
    RETURN_IF_ERROR(CheckPrefixInScope(call->principal(), scope, request->scope_prefix()));
    ASSIGN_OR_RETURN(*response, ctx->queries->ListHouseholds(scope, *request));
    return absl::OkStatus();
  });
  return call;
}

grpc::ServerUnaryReactor* QueryServiceImpl::GetHistory(grpc::CallbackServerContext* context,
                                                       const v1::GetHistoryRequest* request,
                                                       v1::GetHistoryResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(QueryService, GetHistory);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  const ServiceContext* ctx = ctx_;
  FinishOffloaded(*ctx_, call, context, [ctx, call, request, response]() -> absl::Status {
    if (!request->has_subject()) return Invalid("subject is required");
    RETURN_IF_ERROR(CheckSubjectReadable(*ctx->directory, call->principal(), call->scope(),
                                         request->subject()));
    // Readable: the caller's own records (user, cadre, devices) have no area
    // in the engine's subject index, so the engine is given the subject by
    // name; everything else was checked against the same scope above.
    Scope scope = call->scope();
    scope.subject_keys.insert(sync::SubjectKey(request->subject()));
    ASSIGN_OR_RETURN(*response, ctx->engine->GetHistory(scope, *request));
    return absl::OkStatus();
  });
  return call;
}

grpc::ServerUnaryReactor* QueryServiceImpl::ListConflicts(grpc::CallbackServerContext* context,
                                                          const v1::ListConflictsRequest* request,
                                                          v1::ListConflictsResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(QueryService, ListConflicts);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  const ServiceContext* ctx = ctx_;
  FinishOffloaded(*ctx_, call, context, [ctx, call, request, response]() -> absl::Status {
    RETURN_IF_ERROR(ValidatePrefix("scope_prefix", request->scope_prefix(), false));
    const Scope& scope = call->scope();
    RETURN_IF_ERROR(CheckPrefixInScope(call->principal(), scope, request->scope_prefix()));
    ASSIGN_OR_RETURN(*response, ctx->queries->ListConflicts(scope, *request));
    return absl::OkStatus();
  });
  return call;
}

grpc::ServerUnaryReactor* QueryServiceImpl::ListRejections(grpc::CallbackServerContext* context,
                                                           const v1::ListRejectionsRequest* request,
                                                           v1::ListRejectionsResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(QueryService, ListRejections);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  const ServiceContext* ctx = ctx_;
  FinishOffloaded(*ctx_, call, context, [ctx, call, request, response]() -> absl::Status {
    RETURN_IF_ERROR(ValidatePrefix("scope_prefix", request->scope_prefix(), true));
    if (!request->device_id().empty() && !base::IsPlainId(request->device_id())) {
      return Invalid("device_id must match [A-Za-z0-9._:-]{1,64}");
    }
    if (request->scope_prefix().empty() && request->device_id().empty()) {
      return Invalid("scope_prefix or device_id is required");
    }
    const Principal& principal = call->principal();
    const Scope& scope = call->scope();
    if (!request->scope_prefix().empty()) {
      RETURN_IF_ERROR(CheckPrefixInScope(principal, scope, request->scope_prefix()));
      ASSIGN_OR_RETURN(*response, ctx->engine->ListRejections(scope, *request));
      return absl::OkStatus();
    }
    // A device's rejections without a prefix: the caller's own devices, or
    // everything for callers who see everything.
    ASSIGN_OR_RETURN(std::optional<v1::Device> device,
                     ctx->directory->GetDevice(request->device_id()));
    // Another user's device and no device answer alike (the id as asked).
    const std::string named = absl::StrCat("device ", request->device_id(),
                                           " (not yours: give a scope_prefix of your area)");
    if (!device.has_value()) {
      if (scope.all) {
        return absl::NotFoundError(absl::StrCat("no device '", request->device_id(), "'"));
      }
      return OutOfScope(principal, named);
    }
    if (device->user_id() != principal.user_id()) {
      if (!scope.all) return OutOfScope(principal, named);
    }
    // A device's own rejections are its user's to see whatever they name,
    // including those with no subject (a bad signature, a malformed event).
    Scope own = scope;
    own.all = true;
    ASSIGN_OR_RETURN(*response, ctx->engine->ListRejections(own, *request));
    return absl::OkStatus();
  });
  return call;
}

}  // namespace fieldsync::server
