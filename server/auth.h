// Authorization of every fieldsyncd call: the one policy table (role x RPC,
// deny by default), the per-device request rate limit, and the CallGuard
// every v1 handler starts with. docs/authorization.md is the same table in
// prose; tests/server/authorization_test.cc checks the server against it.
//
// The guard, in order:
//   1. ServerState::TryStartCall, else UNAVAILABLE "server is shutting down"
//      (the call slot is released when the call is done: OnDone);
//   1b. public RPCs (Enroll) only: the peer address' token bucket and the
//      global one (auth.enroll_per_peer_per_minute, auth.enroll_per_minute),
//      else RESOURCE_EXHAUSTED saying when to retry (also in the trailer
//      `retry-after-ms`);
//   2. the `authorization: Bearer <token>` metadata -> Identity::Authenticate,
//      else UNAUTHENTICATED saying why (no, malformed or unknown token,
//      revoked device, disabled user); not for public RPCs (Enroll);
//   3. SetCallUser(context, user id) for the call log;
//   4. the policy row of the method: the caller's role must be allowed, else
//      PERMISSION_DENIED (an RPC without a row is denied to everyone);
//   5. the device's token bucket, else RESOURCE_EXHAUSTED naming
//      limits.device_requests_per_second / limits.device_request_burst;
//   6. the caller's scope, computed once for the whole call by the domain's
//      rule (domain/scope.h) and carried by the Admission (Admission::scope,
//      GuardedUnary::scope()); a store error reading it is the call's answer.
// Request-specific scope (the row's ScopeRule) is then checked by the
// handler, which knows the request, against that one scope: no handler
// computes a scope of its own.
//
// Thread-safety: everything here is safe for concurrent use.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fieldsync/v1/common.pb.h"
#include "domain/scope.h"
#include "server/directory.h"
#include "server/identity.h"
#include "server/rate_limit.h"
#include "server/server_state.h"

namespace fieldsync::server {

// The columns of the table, in order.
inline constexpr std::array<v1::Role, 5> kTableRoles = {v1::ROLE_CADRE, v1::ROLE_TOWNSHIP_STAFF,
                                                        v1::ROLE_COUNTY_STAFF, v1::ROLE_HQ_ANALYST,
                                                        v1::ROLE_ADMIN};

// How a row's request-specific scope is checked.
enum class ScopeRule {
  // Needs no token: anyone may call (Enroll).
  kPublic,
  // The role decides; the request names no data (admin RPCs, blobs).
  kRoleOnly,
  // The body serves only the caller's scope (Pull: server-computed scope).
  kCallerScope,
  // Each pushed event's subject must be in the caller's scope; checked per
  // event by the sync engine (rejection OUT_OF_SCOPE), never the whole call.
  kPerEvent,
  // The request's area prefix (or each of its prefixes) must lie inside the
  // caller's scope; an empty prefix means everything and needs scope "all".
  kRequestPrefix,
  // The request's subject (household, village, area, unit, user, device)
  // must be in the caller's scope.
  kSubject,
  // The link's target must be in the caller's scope.
  kLinkTarget,
  // ListRejections: a prefix in scope, or only the caller's own devices.
  kPrefixOrOwnDevice,
};

std::string_view ScopeRuleName(ScopeRule rule);

// One row: which roles may call `method`, and the scope rule.
struct PolicyRow {
  std::string method;  // Full gRPC path, e.g. "/fieldsync.v1.QueryService/GetHousehold".
  uint32_t roles = 0;  // Bit (1u << role) for each allowed role.
  ScopeRule scope = ScopeRule::kRoleOnly;

  bool Allows(v1::Role role) const { return (roles >> role) & 1u; }
};

// The whole policy table. Every v1 RPC has exactly one row.
const std::vector<PolicyRow>& PolicyTable();
// The row of `method`; nullptr if none (then the call is denied).
const PolicyRow* FindPolicy(std::string_view method);

// The full gRPC path of a method: "/<service full name>/<method>".
std::string MethodPath(std::string_view service_full_name, std::string_view method);

// The absl -> gRPC status border.
grpc::Status ToGrpc(const absl::Status& status);

// The binary trailer that carries a serialized v1.ErrorDetail with
// RESOURCE_EXHAUSTED (docs/sync.md "Error details"), and the text trailer of
// the wait in milliseconds that a retry-later detail also sets.
inline constexpr char kErrorDetailTrailer[] = "fieldsync-error-bin";
inline constexpr char kRetryAfterTrailer[] = "retry-after-ms";

// RESOURCE_EXHAUSTED for a request over a size limit: `limit` is the
// setting's name ("limits.max_push_events"), `value` its value, `requested`
// what the request asked for. The detail rides in the status's payload until
// FinishWithDetail/AddErrorTrailers puts it in the trailer.
absl::Status OverSizeLimit(std::string message, std::string_view limit, uint64_t value,
                           uint64_t requested);
// RESOURCE_EXHAUSTED for a rate or queue limit: retry after `retry_after`
// (zero: with back-off). Also sets `retry-after-ms` when retry_after > 0.
absl::Status RetryLater(std::string message, std::string_view limit, uint64_t value,
                        absl::Duration retry_after);
// The detail a status carries, if it has one.
std::optional<v1::ErrorDetail> ErrorDetailOf(const absl::Status& status);
// Adds the trailers of `status`'s detail (none if it has none) to `context`;
// call before the call is finished.
void AddErrorTrailers(grpc::ServerContextBase* context, const absl::Status& status);

// The outcome of the guard for one call.
struct Admission {
  bool started = false;                // A call slot is held: ServerState::FinishCall is owed.
  absl::Status status;                 // OK: the handler goes on; else the call's answer.
  std::optional<Principal> principal;  // Set when authenticated.
  const PolicyRow* policy = nullptr;
  // The caller's scope as of the start of the call (step 6): set whenever
  // `status` is OK and the call has a principal (every non-public RPC).
  std::optional<sync::Scope> scope;
};

class CallGuard {
 public:
  // Borrowed pointers must outlive the guard. `limiter` may be null (no limit).
  // `device_requests_per_second` is the limiter's rate as configured, for
  // the error detail of a refused call.
  CallGuard(ServerState* state, const Identity* identity, RateLimiter* limiter,
            std::string rate_limit_description, uint64_t device_requests_per_second = 0);

  // Limits the public RPCs: `per_peer_per_minute` attempts a minute from
  // one peer address, `per_minute` from all peers, each also as a burst.
  // Call before the server serves (not thread-safe); without it public RPCs
  // are not limited.
  void LimitPublicCalls(double per_peer_per_minute, double per_minute, Clock clock);

  // The domain's scope rule for step 6 (borrowed; must outlive the guard).
  // Call before the server serves (not thread-safe); without it admitted
  // calls carry the empty scope.
  void ComputeScopesWith(const domain::UserScopes* scopes) { scopes_ = scopes; }

  // Runs steps 1-5 for `method` (a full gRPC path).
  Admission Admit(grpc::CallbackServerContext* context, std::string_view method) const;
  // Releases the call slot of an admission that holds one.
  void Release(const Admission& admission) const;

 private:
  ServerState* state_;
  const Identity* identity_;
  const domain::UserScopes* scopes_ = nullptr;
  // Step 1b for a public call: OK, or RESOURCE_EXHAUSTED (and the trailer).
  absl::Status LimitPublic(grpc::CallbackServerContext* context) const;

  RateLimiter* limiter_;
  std::string rate_limit_description_;
  uint64_t device_requests_per_second_ = 0;
  std::unique_ptr<RateLimiter> public_per_peer_;
  std::unique_ptr<RateLimiter> public_global_;
  double public_per_peer_per_minute_ = 0;
  double public_per_minute_ = 0;
};

// The host of a gRPC peer string ("ipv4:10.0.0.7:5123" -> "10.0.0.7",
// "ipv6:[::1]:5123" -> "::1"); the whole string if it has no such form.
std::string PeerHost(std::string_view peer);

// A unary call that went through the guard. If the guard refused it the call
// is already finished; else the handler finishes it exactly once (possibly
// from another thread) and must not touch it afterwards except to return it.
class GuardedUnary final : public grpc::ServerUnaryReactor {
 public:
  GuardedUnary(const CallGuard* guard, grpc::CallbackServerContext* context,
               std::string_view method);

  bool admitted() const { return admission_.status.ok(); }
  const Principal& principal() const { return *admission_.principal; }
  const PolicyRow& policy() const { return *admission_.policy; }
  // The caller's scope, computed once by the guard (admitted calls only).
  const sync::Scope& scope() const { return *admission_.scope; }

  // Finishes the call with `status`, its error detail (if any) in the trailers.
  void Finish(const absl::Status& status) {
    AddErrorTrailers(context_, status);
    grpc::ServerUnaryReactor::Finish(ToGrpc(status));
  }
  void OnDone() override;

 private:
  const CallGuard* guard_;
  grpc::CallbackServerContext* context_;
  Admission admission_;
};

// A streaming call finished right after the guard (or by it). `Reactor` is
// grpc::ServerWriteReactor<Response> (server streaming) or
// grpc::ServerReadReactor<Request> (client streaming).
template <typename Reactor>
class FinishedStream final : public Reactor {
 public:
  FinishedStream(const CallGuard* guard, Admission admission, const absl::Status& status)
      : guard_(guard), admission_(std::move(admission)) {
    this->Finish(ToGrpc(status));
  }
  void OnDone() override {
    guard_->Release(admission_);
    delete this;
  }

 private:
  const CallGuard* guard_;
  Admission admission_;
};

template <typename Response>
using FinishedWriter = FinishedStream<grpc::ServerWriteReactor<Response>>;
template <typename Request>
using FinishedReader = FinishedStream<grpc::ServerReadReactor<Request>>;

// Requests that do not parse. gRPC C++ (1.51, callback API) answers a
// request whose bytes do not deserialize UNIMPLEMENTED with an empty message
// (CallbackUnaryHandler::RunHandler: a failed Deserialize gets an
// UnimplementedUnaryReactor), before any handler of ours runs. This factory's
// interceptor sees that (POST_RECV_MESSAGE without a message) and rewrites the
// status it sends into INVALID_ARGUMENT with a message naming the request type
// and, for a string that is not valid UTF-8, the field (its path from the
// request, e.g. "unit.name"), which protobuf reports only in its log (a log
// handler installed once by the first factory records it for the thread that
// parsed). One place for every service and unary or server-streaming RPC;
// install it first in ServerBuilder::experimental().SetInterceptorCreators.
// Protobuf's own log line for a string that is not UTF-8 is dropped, not
// passed on: the caller's answer names the field, and a phone must not be able
// to write a server log line per string it sends (every other protobuf log
// line goes on as before).
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewMalformedRequestFactory();

// INVALID_ARGUMENT's message for a request of `type` (nullptr: unknown) that
// does not parse. `invalid_utf8_field`: the full name of the string field
// protobuf last reported as not UTF-8 on this thread ("fieldsync.v1.Unit.name"),
// named by its path from `type` ("unit.name"); ignored when `type` cannot
// hold it (an earlier parse on the thread left it: an event's bytes).
std::string DescribeMalformed(const google::protobuf::Descriptor* type,
                              const std::string& invalid_utf8_field);

// Parses a request a handler takes as raw bytes (StreamService.Subscribe) into
// `message`: INVALID_ARGUMENT in the interceptor's words when it does not parse
// (naming the field of a string that is not valid UTF-8).
absl::Status ParseRawRequest(const grpc::ByteBuffer& bytes, google::protobuf::Message& message);

// PERMISSION_DENIED for a request outside the caller's scope.
absl::Status OutOfScope(const Principal& principal, std::string_view what);

// The answer for a subject a request names by id (`what`, as the request
// named it, e.g. "household 7f3c...", "household number 6201..."; never
// something read from the store) that does not exist, or exists outside the
// caller's scope: the same PERMISSION_DENIED and message either way, so no
// caller learns whether an id outside its scope exists (docs/authorization.md
// "No existence oracle"). A caller who may see the subject wherever it is
// (scope all, or the subject named in its scope: `subject_key`, empty if the
// request named no key) is told NOT_FOUND when it does not exist.
absl::Status NotReadable(const Principal& principal, const sync::Scope& scope,
                         std::string_view what, std::string_view subject_key, bool exists);

}  // namespace fieldsync::server
