#include "server/auth.h"

#include <algorithm>

#include "absl/strings/ascii.h"
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

absl::Status OutOfScope(const Principal& principal, std::string_view what) {
  return absl::PermissionDeniedError(
      absl::StrCat(std::string(what), " is outside the scope of user ", principal.user_id(), " (",
                   RoleName(principal.role()), ")"));
}

// --- CallGuard ---------------------------------------------------------------------------

CallGuard::CallGuard(ServerState* state, const Identity* identity, RateLimiter* limiter,
                     std::string rate_limit_description)
    : state_(state),
      identity_(identity),
      limiter_(limiter),
      rate_limit_description_(std::move(rate_limit_description)) {}

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
  if (limiter_ != nullptr && !limiter_->Allow(admission.principal->device_id())) {
    admission.status = absl::ResourceExhaustedError(
        absl::StrCat("request rate of device ", admission.principal->device_id(),
                     " is over the limit ", rate_limit_description_));
    return admission;
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
  if (wait > absl::ZeroDuration()) {
    what = absl::StrCat("from ", peer,
                        " (auth.enroll_per_peer_per_minute=", public_per_peer_per_minute_, ")");
  } else {
    wait = public_global_->Take("");
    if (wait == absl::ZeroDuration()) return absl::OkStatus();
    what = absl::StrCat("from all peers (auth.enroll_per_minute=", public_per_minute_, ")");
  }
  const int64_t wait_ms =
      std::max<int64_t>(1, absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1))));
  context->AddTrailingMetadata("retry-after-ms", absl::StrCat(wait_ms));
  return absl::ResourceExhaustedError(
      absl::StrCat("too many enrollment attempts ", what, "; retry in ",
                   absl::FormatDuration(absl::Milliseconds(wait_ms))));
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
    : guard_(guard), admission_(guard->Admit(context, method)) {
  if (!admission_.status.ok()) Finish(admission_.status);
}

void GuardedUnary::OnDone() {
  guard_->Release(admission_);
  delete this;
}

}  // namespace fieldsync::server
