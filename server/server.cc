#include "server/server.h"

#include <fcntl.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "server/auth.h"
#include "server/call_log.h"
#include "server/config.h"
#include "server/kafka_exporter.h"
#include "server/metrics.h"
#include "server/metrics_http.h"
#include "server/server_state.h"
#include "server/services.h"
#include "server/tls.h"
#include "storage/event_store.h"

namespace fieldsync::server {
namespace {

// Powers of 4 from 1 to 16384 records.
std::vector<double> GroupRecordBuckets() { return {1, 4, 16, 64, 256, 1024, 4096, 16384}; }

// Powers of 4 from 1 KiB to 64 MiB.
std::vector<double> GroupByteBuckets() {
  std::vector<double> buckets;
  for (double b = 1024; b <= 64.0 * 1024 * 1024; b *= 4) buckets.push_back(b);
  return buckets;
}

// Writes `token` to <data_dir>/admin-token, readable by the owner only. A
// stale file (from a store since deleted) is replaced: the token it held
// belongs to no store any more.
absl::Status WriteAdminToken(const std::string& data_dir, const std::string& token) {
  std::string path = (std::filesystem::path(data_dir) / kAdminTokenFileName).string();
  if (unlink(path.c_str()) == 0) {
    spdlog::warn("replaced a stale {} left by an earlier store", path);
  }
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  }
  std::string contents = token + "\n";
  bool ok = write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size()) &&
            fsync(fd) == 0;
  int saved_errno = errno;
  close(fd);
  if (!ok) {
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", strerror(saved_errno)));
  }
  return absl::OkStatus();
}

// "host" of "host:port" ("[::1]" keeps its brackets).
std::string HostOf(const std::string& address) { return address.substr(0, address.rfind(':')); }

class FieldsyncServerImpl final : public FieldsyncServer {
 public:
  explicit FieldsyncServerImpl(v1::ServerConfig config) : config_(std::move(config)) {}

  absl::Status Run() {
    std::error_code error;
    std::filesystem::create_directories(config_.data_dir(), error);
    if (error) {
      return absl::FailedPreconditionError(
          absl::StrCat("data_dir: cannot create ", config_.data_dir(), ": ", error.message()));
    }
    RegisterStoreMetrics();
    storage::StoreOptions store_options = StoreOptionsFrom(config_);
    store_options.on_group_committed = [this](const storage::GroupCommitInfo& info) {
      commit_groups_->Increment({});
      commit_records_->Observe({}, static_cast<double>(info.records));
      commit_bytes_->Observe({}, static_cast<double>(info.bytes));
      commit_write_->Observe({}, absl::ToDoubleSeconds(info.write_time));
    };
    // Called once per change of the store's write state, never per call.
    store_options.on_write_state_changed = [this](const absl::Status& cause) {
      if (cause.ok()) {
        spdlog::info("store writable again: recovered after a failed write");
      } else {
        spdlog::error("{}; writes answer UNAVAILABLE, reads go on, recovery is retried every {} ms",
                      std::string(cause.message()), config_.storage().recovery_interval_ms());
      }
      UpdateHealth(cause.ok());
    };
    ASSIGN_OR_RETURN(store_, storage::OpenEventStore(config_.data_dir(), store_options));
    live_store_.store(store_.get());

    // Fields set one by one: the services may add dependencies with defaults.
    ServiceDeps deps;
    deps.store = store_.get();
    deps.config = &config_;
    deps.state = &state_;
    deps.metrics = &metrics_;
    ASSIGN_OR_RETURN(services_, CreateServices(deps));
    if (std::optional<std::string> token = services_->first_admin_token()) {
      RETURN_IF_ERROR(WriteAdminToken(config_.data_dir(), *token));
      first_admin_token_ = std::move(token);
    }

    // After CreateServices: the events it writes on a first start are exported too.
    if (!config_.kafka().brokers().empty()) {
      ASSIGN_OR_RETURN(kafka_, KafkaExporter::Start(config_.kafka(), store_.get(), &metrics_));
    }

    if (config_.metrics_listen() != "off") {
      ASSIGN_OR_RETURN(HostPort metrics_address,
                       ParseHostPort(config_.metrics_listen(), "metrics_listen"));
      ASSIGN_OR_RETURN(metrics_http_, MetricsHttpServer::Start(metrics_address.host,
                                                               metrics_address.port, &metrics_));
    }
    return StartGrpc();
  }

  int port() const override { return port_; }
  int metrics_port() const override { return metrics_http_ == nullptr ? 0 : metrics_http_->port(); }
  const v1::ServerConfig& config() const override { return config_; }
  std::optional<std::string> first_admin_token() const override { return first_admin_token_; }
  ServerState* state() override { return &state_; }
  MetricsRegistry* metrics() override { return &metrics_; }

  void Shutdown(absl::Time deadline) override {
    absl::MutexLock lock(&shutdown_mu_);
    if (shut_down_) return;
    shut_down_ = true;
    // Refuse new calls before anyone can observe NOT_SERVING, so a client that
    // saw the health flip never gets a call admitted afterwards.
    state_.BeginDrain();
    if (server_ != nullptr) {
      spdlog::info("shutting down: draining {} call(s) in flight", state_.in_flight());
      absl::MutexLock health_lock(&health_mu_);
      health_final_ = true;
      server_->GetHealthCheckService()->SetServingStatus(false);
    }
    if (!state_.WaitIdle(deadline)) {
      spdlog::warn("shutdown grace over with {} call(s) in flight: cancelling them",
                   state_.in_flight());
    }
    // Whatever the services did not count (health watches, reflection) is
    // cancelled now rather than holding the exit until the deadline.
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
    if (metrics_http_ != nullptr) metrics_http_->Stop();
    services_.reset();
    // No call commits any more: what the last calls committed still gets its
    // chance to be delivered (at least a second), then the cursor is written.
    if (kafka_ != nullptr) kafka_->Stop(std::max(deadline, absl::Now() + absl::Seconds(1)));
    kafka_.reset();
    live_store_.store(nullptr);
    store_.reset();  // Flushes and closes the store once no call can reach it.
    spdlog::info("shut down: store closed");
  }

  void Wait() override {
    if (server_ != nullptr) server_->Wait();
  }

  ~FieldsyncServerImpl() override { Shutdown(absl::Now()); }

 private:
  void RegisterStoreMetrics() {
    commit_groups_ = metrics_.Counter("fieldsync_commit_groups_total",
                                      "Group commits written to the event store.", {});
    commit_records_ =
        metrics_.Histogram("fieldsync_commit_group_records", "Records written per group commit.",
                           {}, GroupRecordBuckets());
    commit_bytes_ =
        metrics_.Histogram("fieldsync_commit_group_bytes",
                           "Bytes of the write batch per group commit.", {}, GroupByteBuckets());
    commit_write_ = metrics_.Histogram(
        "fieldsync_commit_write_seconds",
        "Time of the synced write of a group commit, WAL fsync included.", {}, LatencyBuckets());
    metrics_.Gauge("fieldsync_log_head_offset", "Offset of the last record of the event log.",
                   [this] {
                     storage::EventStore* store = live_store_.load();
                     return store == nullptr ? 0.0 : static_cast<double>(store->Head());
                   });
    metrics_.Gauge(
        "fieldsync_store_size_bytes",
        "Approximate bytes of the event store on disk (SST, blob and WAL files).", [this] {
          storage::EventStore* store = live_store_.load();
          return store == nullptr ? 0.0 : static_cast<double>(store->ApproximateSizeBytes());
        });
    metrics_.Gauge("fieldsync_rpcs_in_flight", "Service calls in progress.",
                   [this] { return static_cast<double>(state_.in_flight()); });
    metrics_.Gauge("fieldsync_draining", "1 while the server shuts down, else 0.",
                   [this] { return state_.draining() ? 1.0 : 0.0; });
    metrics_.Gauge("fieldsync_store_read_only",
                   "1 while the event store refuses writes after a failed write (e.g. a full "
                   "disk), else 0.",
                   [this] {
                     storage::EventStore* store = live_store_.load();
                     return store != nullptr && !store->WriteState().ok() ? 1.0 : 0.0;
                   });
  }

  // Overall gRPC health follows the store: NOT_SERVING while it is read-only.
  // Called from store threads; never after Shutdown has set NOT_SERVING.
  void UpdateHealth(bool writable) {
    absl::MutexLock lock(&health_mu_);
    store_writable_ = writable;
    if (server_ready_ && !health_final_) {
      server_->GetHealthCheckService()->SetServingStatus(writable);
    }
  }

  absl::Status StartGrpc() {
    ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                     MakeServerCredentials(config_));
    ASSIGN_OR_RETURN(HostPort listen, ParseHostPort(config_.listen(), "listen"));
    if (!TlsEnabled(config_) && !IsLoopbackHost(listen.host)) {
      spdlog::warn(
          "listen: serving plaintext gRPC on non-loopback address {} (insecure: true): tokens "
          "and data cross the network unencrypted",
          config_.listen());
    }
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    builder.AddListeningPort(config_.listen(), credentials, &port_);
    const int max_message = static_cast<int>(config_.limits().max_message_bytes());
    builder.SetMaxReceiveMessageSize(max_message);
    builder.SetMaxSendMessageSize(max_message);
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    // First: the call log then logs the status it rewrites.
    interceptors.push_back(NewMalformedRequestFactory());
    interceptors.push_back(NewCallLogFactory(&metrics_));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
    for (grpc::Service* service : services_->services()) builder.RegisterService(service);
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0) {
      server_.reset();
      return absl::UnavailableError(absl::StrCat("listen: cannot listen on ", config_.listen()));
    }
    {
      absl::MutexLock lock(&health_mu_);
      server_ready_ = true;
      server_->GetHealthCheckService()->SetServingStatus(store_writable_);
    }
    std::string metrics_at =
        metrics_http_ == nullptr
            ? std::string("off")
            : absl::StrCat(HostOf(config_.metrics_listen()), ":", metrics_http_->port());
    spdlog::info("serving gRPC on {}:{} ({}), metrics on {}, data in {}", HostOf(config_.listen()),
                 port_,
                 !TlsEnabled(config_)                     ? "plaintext"
                 : config_.tls().client_ca_file().empty() ? "TLS"
                 : config_.tls().require_client_cert() ? "mutual TLS, client certificate required"
                                                       : "TLS, client certificates verified",
                 metrics_at, config_.data_dir());
    return absl::OkStatus();
  }

  const v1::ServerConfig config_;
  // Declared before what uses them: destroyed after the store and services.
  MetricsRegistry metrics_;
  ServerState state_;
  CounterFamily* commit_groups_ = nullptr;
  HistogramFamily* commit_records_ = nullptr;
  HistogramFamily* commit_bytes_ = nullptr;
  HistogramFamily* commit_write_ = nullptr;
  std::unique_ptr<storage::EventStore> store_;
  // The store while it is open, for the gauges (null once closed).
  std::atomic<storage::EventStore*> live_store_{nullptr};
  std::unique_ptr<ServiceSet> services_;
  std::unique_ptr<KafkaExporter> kafka_;  // Null when kafka.brokers is empty.
  std::optional<std::string> first_admin_token_;
  std::unique_ptr<MetricsHttpServer> metrics_http_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
  // Health: not shutdown_mu_, which Shutdown holds while calls drain, and a
  // draining call's failed write reports from the store's writer thread.
  absl::Mutex health_mu_;
  bool store_writable_ ABSL_GUARDED_BY(health_mu_) = true;
  bool server_ready_ ABSL_GUARDED_BY(health_mu_) = false;  // server_ built and started.
  bool health_final_ ABSL_GUARDED_BY(health_mu_) = false;  // Shutdown set NOT_SERVING.
};

}  // namespace

absl::StatusOr<std::unique_ptr<FieldsyncServer>> FieldsyncServer::Start(
    const v1::ServerConfig& config) {
  v1::ServerConfig effective = config;
  ApplyConfigDefaults(&effective);
  RETURN_IF_ERROR(ValidateServerConfig(effective));
  auto server = std::make_unique<FieldsyncServerImpl>(std::move(effective));
  RETURN_IF_ERROR(server->Run());
  return server;
}

}  // namespace fieldsync::server
