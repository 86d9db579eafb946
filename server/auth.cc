#include "server/auth.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <algorithm>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/types/optional.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/call_log.h"

namespace fieldsync::server {
namespace {

constexpr uint32_t Bit(v1::Role role) { return 1u << role; }
constexpr uint32_t kCadre = Bit(v1::ROLE_CADRE);
constexpr uint32_t kTownship = Bit(v1::ROLE_TOWNSHIP_STAFF);
constexpr uint32_t kCounty = Bit(v1::ROLE_COUNTY_STAFF);
constexpr uint32_t kHq = Bit(v1::ROLE_HQ_ANALYST);
constexpr uint32_t kAdmin = Bit(v1::ROLE_ADMIN);
constexpr uint32_t kFieldRoles = kCadre | kTownship | kCounty;
constexpr uint32_t kEveryRole = kFieldRoles | kHq | kAdmin;

std::vector<PolicyRow> BuildTable() {
  using R = ScopeRule;
  auto row = [](std::string_view service, std::string_view method, uint32_t roles, R rule) {
    return PolicyRow{MethodPath(service, method), roles, rule};
  };
  constexpr std::string_view kSync = "fieldsync.v1.SyncService";
  constexpr std::string_view kStream = "fieldsync.v1.StreamService";
  constexpr std::string_view kQuery = "fieldsync.v1.QueryService";
  constexpr std::string_view kReport = "fieldsync.v1.ReportService";
  constexpr std::string_view kAdminService = "fieldsync.v1.AdminService";
  return {
      row(kSync, "Push", kFieldRoles, R::kPerEvent),
      row(kSync, "Pull", kEveryRole, R::kCallerScope),
      row(kSync, "UploadBlob", kFieldRoles, R::kRoleOnly),
      row(kSync, "GetBlobStatus", kFieldRoles, R::kRoleOnly),
      row(kSync, "Enroll", 0, R::kPublic),
      row(kSync, "GetSchema", kEveryRole, R::kRoleOnly),
      row(kStream, "Subscribe", kHq | kAdmin, R::kRequestPrefix),
      row(kQuery, "GetHousehold", kEveryRole, R::kSubject),
      row(kQuery, "ListHouseholds", kEveryRole, R::kRequestPrefix),
      row(kQuery, "GetHistory", kEveryRole, R::kSubject),
      row(kQuery, "ListConflicts", kEveryRole, R::kRequestPrefix),
      row(kQuery, "ListRejections", kEveryRole, R::kPrefixOrOwnDevice),
      row(kReport, "GetAssessment", kCounty | kHq | kAdmin, R::kRequestPrefix),
      row(kReport, "GetEvidenceReport", kCounty | kHq | kAdmin, R::kRequestPrefix),
      row(kReport, "ListFeedback", kCounty | kHq | kAdmin, R::kRequestPrefix),
      row(kReport, "ListInspections", kCounty | kHq | kAdmin, R::kRequestPrefix),
      row(kAdminService, "ImportAreas", kAdmin, R::kRoleOnly),
      row(kAdminService, "UpsertUnit", kAdmin, R::kRoleOnly),
      row(kAdminService, "ListUnits", kAdmin, R::kRoleOnly),
      row(kAdminService, "UpsertUser", kAdmin, R::kRoleOnly),
      row(kAdminService, "ListUsers", kAdmin, R::kRoleOnly),
      row(kAdminService, "StartLink", kCounty | kAdmin, R::kLinkTarget),
      row(kAdminService, "EndLink", kCounty | kAdmin, R::kLinkTarget),
      row(kAdminService, "ListLinks", kCounty | kAdmin, R::kRequestPrefix),
      row(kAdminService, "IssueEnrollmentCode", kAdmin, R::kRoleOnly),
      row(kAdminService, "ListDevices", kAdmin, R::kRoleOnly),
      row(kAdminService, "RevokeDevice", kAdmin, R::kRoleOnly),
      row(kAdminService, "CreateBackup", kAdmin, R::kRoleOnly),
      row(kAdminService, "ListBackups", kAdmin, R::kRoleOnly),
  };
}

std::string RoleName(v1::Role role) {
  std::string name = v1::Role_Name(role);
  if (absl::StartsWith(name, "ROLE_")) name = name.substr(5);
  return name.empty() ? absl::StrCat(static_cast<int>(role)) : absl::AsciiStrToLower(name);
}

}  // namespace

std::string_view ScopeRuleName(ScopeRule rule) {
  switch (rule) {
    case ScopeRule::kPublic:
      return "public";
    case ScopeRule::kRoleOnly:
      return "role only";
    case ScopeRule::kCallerScope:
      return "caller's scope";
    case ScopeRule::kPerEvent:
      return "per event";
    case ScopeRule::kRequestPrefix:
      return "request prefix";
    case ScopeRule::kSubject:
      return "subject";
    case ScopeRule::kLinkTarget:
      return "link target";
    case ScopeRule::kPrefixOrOwnDevice:
      return "prefix or own device";
  }
  return "?";
}

std::string MethodPath(std::string_view service_full_name, std::string_view method) {
  return absl::StrCat("/", std::string(service_full_name), "/", std::string(method));
}

const std::vector<PolicyRow>& PolicyTable() {
  static const std::vector<PolicyRow>* table = new std::vector<PolicyRow>(BuildTable());
  return *table;
}

const PolicyRow* FindPolicy(std::string_view method) {
  for (const PolicyRow& row : PolicyTable()) {
    if (row.method == method) return &row;
  }
  return nullptr;
}

// --- Status border -----------------------------------------------------------------------

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode share their numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

namespace {

// The payload type URL of an ErrorDetail inside an absl::Status.
constexpr char kErrorDetailPayload[] = "type.googleapis.com/fieldsync.v1.ErrorDetail";

absl::Status WithDetail(absl::Status status, const v1::ErrorDetail& detail) {
  status.SetPayload(kErrorDetailPayload, absl::Cord(detail.SerializeAsString()));
  return status;
}

}  // namespace

absl::Status OverSizeLimit(std::string message, std::string_view limit, uint64_t value,
                           uint64_t requested) {
  v1::ErrorDetail detail;
  detail.set_action(v1::ErrorDetail::ACTION_MAKE_SMALLER);
  detail.set_limit(std::string(limit));
  detail.set_limit_value(value);
  detail.set_requested(requested);
  return WithDetail(absl::ResourceExhaustedError(std::move(message)), detail);
}

absl::Status RetryLater(std::string message, std::string_view limit, uint64_t value,
                        absl::Duration retry_after) {
  v1::ErrorDetail detail;
  detail.set_action(v1::ErrorDetail::ACTION_RETRY_LATER);
  detail.set_limit(std::string(limit));
  detail.set_limit_value(value);
  if (retry_after > absl::ZeroDuration() && retry_after != absl::InfiniteDuration()) {
    // Rounded up, at least 1 ms: a client that waits exactly this long finds a token.
    detail.set_retry_after_ms(static_cast<uint64_t>(std::max<int64_t>(
        1, absl::ToInt64Milliseconds(absl::Ceil(retry_after, absl::Milliseconds(1))))));
  }
  return WithDetail(absl::ResourceExhaustedError(std::move(message)), detail);
}

std::optional<v1::ErrorDetail> ErrorDetailOf(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kErrorDetailPayload);
  if (!payload) return std::nullopt;
  v1::ErrorDetail detail;
  if (!detail.ParseFromString(std::string(*payload))) return std::nullopt;
  return detail;
}

void AddErrorTrailers(grpc::ServerContextBase* context, const absl::Status& status) {
  if (context == nullptr || status.ok()) return;
  std::optional<v1::ErrorDetail> detail = ErrorDetailOf(status);
  if (!detail) return;
  context->AddTrailingMetadata(kErrorDetailTrailer, detail->SerializeAsString());
  if (detail->retry_after_ms() > 0) {
    context->AddTrailingMetadata(kRetryAfterTrailer, absl::StrCat(detail->retry_after_ms()));
  }
}

// --- Requests that do not parse --------------------------------------------------------

namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::InterceptorBatchMethods;
using grpc::experimental::ServerRpcInfo;

// The full name ("fieldsync.v1.Unit.name") of the last string field that
// failed protobuf's UTF-8 check on this thread, from protobuf's log.
thread_local std::string t_invalid_utf8_field;
google::protobuf::LogHandler* g_previous_log_handler = nullptr;

// Records the field of a UTF-8 failure instead of logging it (NewMalformedRequestFactory);
// logs anything else as before.
void CaptureInvalidUtf8(google::protobuf::LogLevel level, const char* filename, int line,
                        const std::string& message) {
  constexpr std::string_view kHead = "String field '";
  if (std::string_view(message).starts_with(kHead) &&
      message.find("contains invalid UTF-8 data when parsing") != std::string::npos) {
    const size_t end = message.find('\'', kHead.size());
    if (end != std::string::npos) {
      t_invalid_utf8_field = message.substr(kHead.size(), end - kHead.size());
    }
    return;
  }
  if (g_previous_log_handler != nullptr) g_previous_log_handler(level, filename, line, message);
}

void InstallUtf8Capture() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_previous_log_handler = google::protobuf::SetLogHandler(&CaptureInvalidUtf8);
  });
}

// The path of the field `full_name` from `type` ("unit.name"), or empty.
std::string FieldPath(const google::protobuf::Descriptor* type, std::string_view full_name,
                      int depth = 0) {
  for (int i = 0; i < type->field_count(); ++i) {
    if (type->field(i)->full_name() == full_name) return type->field(i)->name();
  }
  if (depth >= 8) return "";
  for (int i = 0; i < type->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = type->field(i);
    if (field->message_type() == nullptr) continue;
    std::string below = FieldPath(field->message_type(), full_name, depth + 1);
    if (!below.empty()) return absl::StrCat(field->name(), ".", below);
  }
  return "";
}

// The request type of a method path ("/fieldsync.v1.QueryService/GetHousehold").
const google::protobuf::Descriptor* RequestTypeOf(std::string_view path) {
  if (!path.starts_with("/")) return nullptr;
  const size_t slash = path.find('/', 1);
  if (slash == std::string_view::npos) return nullptr;
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          std::string(path.substr(1, slash - 1)));
  if (service == nullptr) return nullptr;
  const google::protobuf::MethodDescriptor* method =
      service->FindMethodByName(std::string(path.substr(slash + 1)));
  return method == nullptr ? nullptr : method->input_type();
}

}  // namespace

std::string DescribeMalformed(const google::protobuf::Descriptor* type,
                              const std::string& invalid_utf8_field) {
  const std::string type_name = type == nullptr ? "the method's request" : type->full_name();
  // A field the request cannot hold was left by an earlier parse on this
  // thread (an event's bytes in a push): not this request's failure.
  std::string path = type == nullptr ? invalid_utf8_field : FieldPath(type, invalid_utf8_field);
  if (!invalid_utf8_field.empty() && !path.empty()) {
    return absl::StrCat("request field ", path, " (", invalid_utf8_field,
                        ") is not valid UTF-8: the request does not parse as ", type_name,
                        "; send strings as whole UTF-8 characters (bytes fields take any bytes)");
  }
  return absl::StrCat("the request does not parse as ", type_name,
                      ": the bytes are not a protobuf encoding of it (truncated, or a field "
                      "with the wrong wire type)");
}

namespace {

class MalformedRequestInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit MalformedRequestInterceptor(ServerRpcInfo* info)
      : method_(info->method() == nullptr ? "" : info->method()) {}

  void Intercept(InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      // Deserialize ran just before, on this thread.
      std::string field = std::exchange(t_invalid_utf8_field, std::string());
      if (methods->GetRecvMessage() == nullptr) {
        malformed_ = true;
        invalid_utf8_field_ = std::move(field);
      }
    }
    if (malformed_ && methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status sent = methods->GetSendStatus();
      // Only gRPC's own answer to the failed parse: no handler ran.
      if (sent.error_code() == grpc::StatusCode::UNIMPLEMENTED && sent.error_message().empty()) {
        methods->ModifySendStatus(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, Describe()));
      }
    }
    methods->Proceed();
  }

 private:
  std::string Describe() const {
    return DescribeMalformed(RequestTypeOf(method_), invalid_utf8_field_);
  }

  const std::string method_;
  bool malformed_ = false;
  std::string invalid_utf8_field_;
};

class MalformedRequestFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  MalformedRequestFactory() { InstallUtf8Capture(); }
  grpc::experimental::Interceptor* CreateServerInterceptor(ServerRpcInfo* info) override {
    return new MalformedRequestInterceptor(info);
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewMalformedRequestFactory() {
  return std::make_unique<MalformedRequestFactory>();
}

absl::Status ParseRawRequest(const grpc::ByteBuffer& bytes, google::protobuf::Message& message) {
  InstallUtf8Capture();
  t_invalid_utf8_field.clear();
  grpc::ByteBuffer copy(bytes);
  grpc::ProtoBufferReader reader(&copy);
  if (message.ParseFromZeroCopyStream(&reader)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      DescribeMalformed(message.GetDescriptor(), std::exchange(t_invalid_utf8_field, "")));
}

absl::Status NotReadable(const Principal& principal, const sync::Scope& scope,
                         std::string_view what, std::string_view subject_key, bool exists) {
  const bool named = !subject_key.empty() && scope.subject_keys.contains(std::string(subject_key));
  if (!exists && (scope.all || named)) {
    return absl::NotFoundError(absl::StrCat("no ", std::string(what)));
  }
  return OutOfScope(principal, what);
}

absl::Status OutOfScope(const Principal& principal, std::string_view what) {
  return absl::PermissionDeniedError(
      absl::StrCat(std::string(what), " is outside the scope of user ", principal.user_id(), " (",
                   RoleName(principal.role()), ")"));
}

// --- CallGuard ---------------------------------------------------------------------------

CallGuard::CallGuard(ServerState* state, const Identity* identity, RateLimiter* limiter,
                     std::string rate_limit_description, uint64_t device_requests_per_second)
    : state_(state),
      identity_(identity),
      limiter_(limiter),
      rate_limit_description_(std::move(rate_limit_description)),
      device_requests_per_second_(device_requests_per_second) {}

Admission CallGuard::Admit(grpc::CallbackServerContext* context, std::string_view method) const {
  Admission admission;
  // 1. Draining?
  if (!state_->TryStartCall()) {
    admission.status = absl::UnavailableError("server is shutting down");
    return admission;
  }
  admission.started = true;
  admission.policy = FindPolicy(method);
  if (admission.policy != nullptr && admission.policy->scope == ScopeRule::kPublic) {
    admission.status = LimitPublic(context);
    return admission;
  }

  // 2. Who is calling?
  const auto& metadata = context->client_metadata();
  auto range = metadata.equal_range("authorization");
  if (range.first == range.second) {
    admission.status = absl::UnauthenticatedError(
        "missing bearer token: send metadata 'authorization: Bearer <token>'");
    return admission;
  }
  if (std::next(range.first) != range.second) {
    admission.status = absl::UnauthenticatedError("more than one authorization header");
    return admission;
  }
  std::string_view header(range.first->second.data(), range.first->second.size());
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(std::string(header.substr(0, kScheme.size())),
                              std::string(kScheme))) {
    admission.status =
        absl::UnauthenticatedError("malformed authorization header: expected 'Bearer <token>'");
    return admission;
  }
  std::string_view token = header.substr(kScheme.size());
  if (!IsWellFormedToken(token)) {
    admission.status = absl::UnauthenticatedError(
        "malformed bearer token: expected 'fst_' and 43 base64url characters");
    return admission;
  }
  absl::StatusOr<Principal> principal = identity_->Authenticate(token);
  if (!principal.ok()) {
    admission.status = principal.status();
    return admission;
  }
  admission.principal = *std::move(principal);

  // 3. Tell the call log.
  SetCallUser(context, admission.principal->user_id());

  // 4. May this role call this RPC at all?
  if (admission.policy == nullptr || !admission.policy->Allows(admission.principal->role())) {
    admission.status = absl::PermissionDeniedError(absl::StrCat(
        "role ", RoleName(admission.principal->role()), " may not call ", std::string(method)));
    return admission;
  }

  // 5. Rate.
  if (limiter_ != nullptr) {
    const absl::Duration wait = limiter_->Take(admission.principal->device_id());
    if (wait > absl::ZeroDuration()) {
      absl::Status limited = RetryLater(
          absl::StrCat("request rate of device ", admission.principal->device_id(),
                       " is over the limit ", rate_limit_description_),
          "limits.device_requests_per_second", device_requests_per_second_, wait);
      // Streams finish without a GuardedUnary: the trailers go on here, and
      // the status the handler finishes with carries no detail twice.
      AddErrorTrailers(context, limited);
      admission.status = absl::ResourceExhaustedError(limited.message());
      return admission;
    }
  }

  // 6. The caller's scope, once for the whole call.
  if (scopes_ == nullptr) {
    admission.scope.emplace();
    return admission;
  }
  absl::StatusOr<sync::Scope> scope = scopes_->ScopeOf(admission.principal->user);
  if (!scope.ok()) {
    admission.status = scope.status();
    return admission;
  }
  admission.scope = *std::move(scope);
  return admission;
}

void CallGuard::LimitPublicCalls(double per_peer_per_minute, double per_minute, Clock clock) {
  public_per_peer_per_minute_ = per_peer_per_minute;
  public_per_minute_ = per_minute;
  public_per_peer_ =
      std::make_unique<RateLimiter>(per_peer_per_minute / 60.0, per_peer_per_minute, clock);
  public_global_ = std::make_unique<RateLimiter>(per_minute / 60.0, per_minute, clock);
}

absl::Status CallGuard::LimitPublic(grpc::CallbackServerContext* context) const {
  if (public_per_peer_ == nullptr) return absl::OkStatus();
  const std::string peer = PeerHost(context->peer());
  std::string what;
  absl::Duration wait = public_per_peer_->Take(peer);
  const bool per_peer = wait > absl::ZeroDuration();
  if (per_peer) {
    what = absl::StrCat("from ", peer,
                        " (auth.enroll_per_peer_per_minute=", public_per_peer_per_minute_, ")");
  } else {
    wait = public_global_->Take("");
    if (wait == absl::ZeroDuration()) return absl::OkStatus();
    what = absl::StrCat("from all peers (auth.enroll_per_minute=", public_per_minute_, ")");
  }
  const int64_t wait_ms =
      std::max<int64_t>(1, absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1))));
  absl::Status limited = RetryLater(
      absl::StrCat("too many enrollment attempts ", what, "; retry in ",
                   absl::FormatDuration(absl::Milliseconds(wait_ms))),
      per_peer ? "auth.enroll_per_peer_per_minute" : "auth.enroll_per_minute",
      static_cast<uint64_t>(per_peer ? public_per_peer_per_minute_ : public_per_minute_),
      absl::Milliseconds(wait_ms));
  // Admit's caller finishes with the status alone: the trailers go on here.
  AddErrorTrailers(context, limited);
  return absl::ResourceExhaustedError(limited.message());
}

std::string PeerHost(std::string_view peer) {
  size_t scheme = peer.find(':');
  if (scheme == std::string_view::npos) return std::string(peer);
  std::string_view rest = peer.substr(scheme + 1);
  if (rest.starts_with("[")) {
    size_t close = rest.find(']');
    if (close != std::string_view::npos) return std::string(rest.substr(1, close - 1));
  }
  if (peer.starts_with("ipv4:")) {
    size_t port = rest.rfind(':');
    if (port != std::string_view::npos) return std::string(rest.substr(0, port));
  }
  return std::string(rest);
}

void CallGuard::Release(const Admission& admission) const {
  if (admission.started) state_->FinishCall();
}

GuardedUnary::GuardedUnary(const CallGuard* guard, grpc::CallbackServerContext* context,
                           std::string_view method)
    : guard_(guard), context_(context), admission_(guard->Admit(context, method)) {
  if (!admission_.status.ok()) Finish(admission_.status);
}

void GuardedUnary::OnDone() {
  guard_->Release(admission_);
  delete this;
}

}  // namespace fieldsync::server
