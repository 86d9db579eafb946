#include "server/call_log.h"

#include <google/protobuf/descriptor.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "base/text.h"
#include "server/logging.h"
#include "server/metrics.h"

namespace fieldsync::server {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::InterceptorBatchMethods;
using grpc::experimental::ServerRpcInfo;

constexpr char kRequestIdKey[] = "x-request-id";
constexpr size_t kMaxLoggedMethod = 128;

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

// Server faults are errors; everything else (client errors included) is info.
spdlog::level::level_enum LevelFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::DATA_LOSS:
      return spdlog::level::err;
    default:
      return spdlog::level::info;
  }
}

bool IsUsableRequestId(const grpc::string_ref& id) {
  return base::IsPlainId(std::string_view(id.data(), id.size()));
}

std::string NewRequestId() {
  thread_local absl::BitGen gen;
  return absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(gen), absl::Uniform<uint64_t>(gen));
}

// The metrics label of `method`: itself for a method of a service compiled
// into this binary (or the health service), else "unknown".
std::string MethodLabel(const std::string& method) {
  if (method == "/grpc.health.v1.Health/Check" || method == "/grpc.health.v1.Health/Watch") {
    return method;
  }
  if (method.size() < 4 || method[0] != '/') return "unknown";
  size_t slash = method.find('/', 1);
  if (slash == std::string::npos) return "unknown";
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          method.substr(1, slash - 1));
  if (service == nullptr || service->FindMethodByName(method.substr(slash + 1)) == nullptr) {
    return "unknown";
  }
  return method;
}

class CallLogInterceptor;

// The calls in progress by context, for SetCallUser.
struct CallTable {
  absl::Mutex mu;
  absl::flat_hash_map<const grpc::ServerContextBase*, CallLogInterceptor*> calls
      ABSL_GUARDED_BY(mu);
};

CallTable& Calls() {
  static auto* table = new CallTable;
  return *table;
}

struct CallMetrics {
  CounterFamily* calls = nullptr;
  HistogramFamily* duration = nullptr;
};

class CallLogInterceptor final : public grpc::experimental::Interceptor {
 public:
  CallLogInterceptor(ServerRpcInfo* info, const CallMetrics* metrics)
      : context_(info->server_context()),
        method_(info->method() == nullptr ? "" : info->method()),
        metrics_(metrics),
        start_(std::chrono::steady_clock::now()) {
    CallTable& table = Calls();
    absl::MutexLock lock(&table.mu);
    table.calls[context_] = this;
  }

  ~CallLogInterceptor() override {
    Unregister();
    bool logged;
    {
      absl::MutexLock lock(&mu_);
      logged = logged_;
    }
    // A call that ended without the server sending a status (e.g. the client
    // went away) still gets its line.
    if (!logged) Finish(grpc::Status(grpc::StatusCode::CANCELLED, "call ended without a status"));
  }

  void Intercept(InterceptorBatchMethods* methods) override {
    {
      // The peer is read while the call is surely alive: the destructor may run
      // inside the context's own destructor.
      absl::MutexLock lock(&mu_);
      if (peer_.empty() && context_ != nullptr) peer_ = context_->peer();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      auto* metadata = methods->GetRecvInitialMetadata();
      if (metadata != nullptr) {
        auto found = metadata->find(kRequestIdKey);
        if (found != metadata->end() && IsUsableRequestId(found->second)) {
          absl::MutexLock lock(&mu_);
          request_id_.assign(found->second.data(), found->second.size());
        }
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      auto* metadata = methods->GetSendInitialMetadata();
      if (metadata != nullptr) metadata->emplace(kRequestIdKey, request_id());
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      auto* trailers = methods->GetSendTrailingMetadata();
      if (trailers != nullptr) trailers->emplace(kRequestIdKey, request_id());
      // A call cancelled (by the client, a deadline or the shutdown) ends
      // with whatever status its handler chose, which the client never sees:
      // log what happened instead.
      grpc::Status status = methods->GetSendStatus();
      if (context_ != nullptr && context_->IsCancelled()) {
        status = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled before its status was sent");
      }
      Finish(status);
    }
    methods->Proceed();
  }

  void SetUser(const std::string& user) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    user_ = user;
  }

  std::string request_id() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (request_id_.empty()) request_id_ = NewRequestId();
    return request_id_;
  }

 private:
  void Unregister() {
    CallTable& table = Calls();
    absl::MutexLock lock(&table.mu);
    auto found = table.calls.find(context_);
    if (found != table.calls.end() && found->second == this) table.calls.erase(found);
  }

  // Writes the call's line and metrics once.
  void Finish(const grpc::Status& status) {
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::string id = request_id();
    std::string user, peer;
    {
      absl::MutexLock lock(&mu_);
      if (logged_) return;
      logged_ = true;
      user = user_;
      peer = peer_;
    }
    Unregister();
    const char* code = CodeName(status.error_code());
    std::string label = MethodLabel(method_);
    metrics_->calls->Increment({label, code});
    metrics_->duration->Observe({label, code}, seconds);
    std::vector<LogField> fields = {
        {"method",
         method_.size() > kMaxLoggedMethod ? method_.substr(0, kMaxLoggedMethod) : method_},
        {"peer", peer},
        {"user", user.empty() ? std::string("-") : user},
        {"code", std::string(code)},
        {"latency_ms", seconds * 1000},
        {"request_id", id},
    };
    if (!status.ok() && !status.error_message().empty()) {
      std::string message = status.error_message();
      if (message.size() > 512) message = message.substr(0, 512) + "...";
      fields.push_back({"error", std::move(message)});
    }
    LogRecord(LevelFor(status.error_code()), "call", fields);
  }

  const grpc::ServerContextBase* const context_;
  const std::string method_;
  const CallMetrics* const metrics_;
  const std::chrono::steady_clock::time_point start_;
  absl::Mutex mu_;
  std::string request_id_ ABSL_GUARDED_BY(mu_);
  std::string user_ ABSL_GUARDED_BY(mu_);
  std::string peer_ ABSL_GUARDED_BY(mu_);
  bool logged_ ABSL_GUARDED_BY(mu_) = false;
};

class CallLogFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallLogFactory(MetricsRegistry* registry) {
    metrics_.calls =
        registry->Counter("fieldsync_rpc_calls_total",
                          "gRPC calls handled, by method and status code.", {"method", "code"});
    metrics_.duration = registry->Histogram(
        "fieldsync_rpc_duration_seconds",
        "Time from the start of a gRPC call to its status, by method and status code.",
        {"method", "code"}, LatencyBuckets());
  }

  grpc::experimental::Interceptor* CreateServerInterceptor(ServerRpcInfo* info) override {
    return new CallLogInterceptor(info, &metrics_);
  }

 private:
  CallMetrics metrics_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewCallLogFactory(
    MetricsRegistry* metrics) {
  return std::make_unique<CallLogFactory>(metrics);
}

void SetCallUser(const grpc::ServerContextBase* context, const std::string& user_id) {
  CallTable& table = Calls();
  absl::MutexLock lock(&table.mu);
  auto found = table.calls.find(context);
  if (found != table.calls.end()) found->second->SetUser(user_id);
}

std::string CallRequestId(const grpc::ServerContextBase* context) {
  CallTable& table = Calls();
  absl::MutexLock lock(&table.mu);
  auto found = table.calls.find(context);
  return found == table.calls.end() ? std::string() : found->second->request_id();
}

}  // namespace fieldsync::server
