#include "server/query_service.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/text.h"
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
                                  const v1::SubjectRef& subject) {
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
  ASSIGN_OR_RETURN(std::string area, directory.AreaOfSubject(subject));
  ASSIGN_OR_RETURN(Scope scope, directory.ComputeScope(principal.user));
  if (!sync::Contains(scope, area, sync::SubjectKey(subject))) {
    return OutOfScope(principal, sync::SubjectKey(subject));
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* QueryServiceImpl::GetHousehold(grpc::CallbackServerContext* context,
                                                         const v1::GetHouseholdRequest* request,
                                                         v1::GetHouseholdResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(QueryService, GetHousehold);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  auto check = [&]() -> absl::Status {
    std::optional<HouseholdPlace> place;
    const HouseholdLocator& households = ctx_->directory->households();
    switch (request->key_case()) {
      case v1::GetHouseholdRequest::kId: {
        RETURN_IF_ERROR(KeyField("id", request->id()));
        ASSIGN_OR_RETURN(place, households.FindById(request->id()));
        break;
      }
      case v1::GetHouseholdRequest::kHouseholdNumber: {
        RETURN_IF_ERROR(KeyField("household_number", request->household_number()));
        ASSIGN_OR_RETURN(place, households.FindByNumber(request->household_number()));
        break;
      }
      default:
        return Invalid("id or household_number is required");
    }
    if (!place.has_value()) return absl::NotFoundError("no such household");
    ASSIGN_OR_RETURN(Scope scope, ctx_->directory->ComputeScope(call->principal().user));
    std::string key = absl::StrCat("household/", place->id);
    if (!sync::Contains(scope, place->village_code, key)) return OutOfScope(call->principal(), key);
    ASSIGN_OR_RETURN(*response, ctx_->queries->GetHousehold(scope, *request));
    return absl::OkStatus();
  };
  call->Finish(check());
  return call;
}

grpc::ServerUnaryReactor* QueryServiceImpl::ListHouseholds(grpc::CallbackServerContext* context,
                                                           const v1::ListHouseholdsRequest* request,
                                                           v1::ListHouseholdsResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(QueryService, ListHouseholds);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  auto check = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidatePrefix("scope_prefix", request->scope_prefix(), false));
    for (int status : request->statuses()) {
      if (!v1::HouseholdStatus_IsValid(status) || status == v1::HOUSEHOLD_STATUS_UNSPECIFIED) {
        return Invalid(absl::StrCat("statuses: ", status, " is not a HouseholdStatus"));
      }
    }
    ASSIGN_OR_RETURN(Scope scope, ctx_->directory->ComputeScope(call->principal().user));
    RETURN_IF_ERROR(CheckPrefixInScope(call->principal(), scope, request->scope_prefix()));
    ASSIGN_OR_RETURN(*response, ctx_->queries->ListHouseholds(scope, *request));
    return absl::OkStatus();
  };
  call->Finish(check());
  return call;
}

grpc::ServerUnaryReactor* QueryServiceImpl::GetHistory(grpc::CallbackServerContext* context,
                                                       const v1::GetHistoryRequest* request,
                                                       v1::GetHistoryResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(QueryService, GetHistory);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  auto check = [&]() -> absl::Status {
    if (!request->has_subject()) return Invalid("subject is required");
    RETURN_IF_ERROR(CheckSubjectReadable(*ctx_->directory, call->principal(), request->subject()));
    // Readable: the caller's own records (user, cadre, devices) have no area
    // in the engine's subject index, so the engine is given the subject by
    // name; everything else was checked against the same scope above.
    ASSIGN_OR_RETURN(Scope scope, ctx_->directory->ComputeScope(call->principal().user));
    scope.subject_keys.insert(sync::SubjectKey(request->subject()));
    ASSIGN_OR_RETURN(*response, ctx_->engine->GetHistory(scope, *request));
    return absl::OkStatus();
  };
  call->Finish(check());
  return call;
}

grpc::ServerUnaryReactor* QueryServiceImpl::ListConflicts(grpc::CallbackServerContext* context,
                                                          const v1::ListConflictsRequest* request,
                                                          v1::ListConflictsResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(QueryService, ListConflicts);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  auto check = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidatePrefix("scope_prefix", request->scope_prefix(), false));
    ASSIGN_OR_RETURN(Scope scope, ctx_->directory->ComputeScope(call->principal().user));
    RETURN_IF_ERROR(CheckPrefixInScope(call->principal(), scope, request->scope_prefix()));
    ASSIGN_OR_RETURN(*response, ctx_->queries->ListConflicts(scope, *request));
    return absl::OkStatus();
  };
  call->Finish(check());
  return call;
}

grpc::ServerUnaryReactor* QueryServiceImpl::ListRejections(grpc::CallbackServerContext* context,
                                                           const v1::ListRejectionsRequest* request,
                                                           v1::ListRejectionsResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(QueryService, ListRejections);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  auto check = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidatePrefix("scope_prefix", request->scope_prefix(), true));
    if (!request->device_id().empty() && !base::IsPlainId(request->device_id())) {
      return Invalid("device_id must match [A-Za-z0-9._:-]{1,64}");
    }
    if (request->scope_prefix().empty() && request->device_id().empty()) {
      return Invalid("scope_prefix or device_id is required");
    }
    const Principal& principal = call->principal();
    ASSIGN_OR_RETURN(Scope scope, ctx_->directory->ComputeScope(principal.user));
    if (!request->scope_prefix().empty()) {
      RETURN_IF_ERROR(CheckPrefixInScope(principal, scope, request->scope_prefix()));
      ASSIGN_OR_RETURN(*response, ctx_->engine->ListRejections(scope, *request));
      return absl::OkStatus();
    }
    // A device's rejections without a prefix: the caller's own devices, or
    // everything for callers who see everything.
    ASSIGN_OR_RETURN(std::optional<v1::Device> device,
                     ctx_->directory->GetDevice(request->device_id()));
    if (!device.has_value()) {
      return absl::NotFoundError(absl::StrCat("no device '", request->device_id(), "'"));
    }
    if (device->user_id() != principal.user_id()) {
      if (!scope.all) {
        return OutOfScope(principal,
                          absl::StrCat("device ", device->id(),
                                       " (not yours: give a scope_prefix of your area)"));
      }
    }
    // A device's own rejections are its user's to see whatever they name,
    // including those with no subject (a bad signature, a malformed event).
    Scope own = scope;
    own.all = true;
    ASSIGN_OR_RETURN(*response, ctx_->engine->ListRejections(own, *request));
    return absl::OkStatus();
  };
  call->Finish(check());
  return call;
}

}  // namespace fieldsync::server
