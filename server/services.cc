#include "server/services.h"

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "domain/domain_keys.h"
#include "domain/queries.h"
#include "domain/shuanglian_policy.h"
#include "server/admin_service.h"
#include "server/auth.h"
#include "server/blob_uploads.h"
#include "server/bounded_executor.h"
#include "server/config.h"
#include "server/directory.h"
#include "server/identity.h"
#include "server/query_service.h"
#include "server/report_service.h"
#include "server/service_context.h"
#include "server/stream_service.h"
#include "server/sync_service.h"
#include "sync/sync_engine.h"

namespace fieldsync::server {
namespace {

// What the gauges read. The registry may outlive the services (it belongs to
// the server), so the gauges hold this by shared_ptr and the services detach
// it when they go. Thread-safe.
class GaugeSources {
 public:
  GaugeSources(const StreamServiceImpl* stream, const storage::EventStore* store)
      : stream_(stream), store_(store) {}

  void Detach() {
    absl::MutexLock lock(&mu_);
    stream_ = nullptr;
    store_ = nullptr;
  }

  double Subscribers() {
    absl::MutexLock lock(&mu_);
    return stream_ == nullptr ? 0.0 : static_cast<double>(stream_->subscribers());
  }

  // Open conflicts: one scan of the conflict index ("o" = open), redone only
  // when the log has moved since the last one (a scrape between commits
  // costs nothing).
  double OpenConflicts() {
    absl::MutexLock lock(&mu_);
    if (store_ == nullptr) return 0.0;
    const uint64_t head = store_->Head();
    if (counted_ && head == counted_head_) return static_cast<double>(open_conflicts_);
    uint64_t open = 0;
    std::string position;
    constexpr size_t kBatch = 4096;
    while (true) {
      auto batch = store_->ScanProjections(domain::keys::kConflictAllIndex, position, kBatch);
      // A failed read leaves the last value: a gauge has no error to report.
      if (!batch.ok()) return static_cast<double>(open_conflicts_);
      for (const auto& [key, value] : *batch) {
        position = key;
        if (value == "o") ++open;
      }
      if (batch->size() < kBatch) break;
    }
    counted_ = true;
    counted_head_ = head;
    open_conflicts_ = open;
    return static_cast<double>(open);
  }

 private:
  absl::Mutex mu_;
  const StreamServiceImpl* stream_ ABSL_GUARDED_BY(mu_);
  const storage::EventStore* store_ ABSL_GUARDED_BY(mu_);
  bool counted_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t counted_head_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t open_conflicts_ ABSL_GUARDED_BY(mu_) = 0;
};

class ServiceSetImpl final : public ServiceSet {
 public:
  static absl::StatusOr<std::unique_ptr<ServiceSet>> Create(const ServiceDeps& deps) {
    if (deps.store == nullptr || deps.state == nullptr) {
      return absl::InvalidArgumentError("CreateServices needs a store and a server state");
    }
    Clock clock = deps.clock ? deps.clock : Clock([] { return absl::Now(); });
    static const v1::ServerConfig* empty_config = new v1::ServerConfig();
    const v1::ServerConfig& config = deps.config != nullptr ? *deps.config : *empty_config;
    ServiceSettings settings = SettingsFrom(config);
    auto set = std::unique_ptr<ServiceSetImpl>(new ServiceSetImpl(DomainOptionsFrom(config)));

    const HouseholdLocator* households = deps.households;
    if (households == nullptr) {
      set->households_ = NewDomainHouseholds(deps.store);
      households = set->households_.get();
    }
    set->directory_ = std::make_unique<Directory>(deps.store, households, clock);
    if (config.data_dir().empty()) {
      return absl::InvalidArgumentError("CreateServices needs config.data_dir (the node key file)");
    }
    // The node's key, from the key file beside the store (server/node_key.h).
    ASSIGN_OR_RETURN(LoadedNodeKey node, LoadNodeKey(config.data_dir(), *deps.store));
    set->device_keys_ = NewDirectoryDeviceKeys(set->directory_.get());
    // The sync engine verifies signatures with the keys devices enrolled;
    // its scope digests are salted with the node's id, so a checkpoint from
    // another deployment never matches here.
    sync::SyncOptions sync_options = SyncOptionsFrom(settings, clock);
    sync_options.scope_digest_salt = node.key->device_id();
    // Pushes are judged on where their subjects really live.
    const Directory* directory = set->directory_.get();
    sync_options.subject_area = [directory](const v1::SubjectRef& subject) {
      return directory->AreaOfEventSubject(subject);
    };
    set->engine_ = std::make_unique<sync::SyncEngine>(
        deps.store, &set->policy_, set->device_keys_.get(), std::move(sync_options));
    // Every server-made event goes through the engine too (one HLC, one
    // sequence per device, one commit path).
    ASSIGN_OR_RETURN(set->identity_, Identity::Open(deps.store, set->directory_.get(), clock,
                                                    set->engine_.get(), std::move(node)));
    set->limiter_ = std::make_unique<RateLimiter>(settings.device_requests_per_second,
                                                  settings.device_request_burst, clock);
    set->guard_ = std::make_unique<CallGuard>(
        deps.state, set->identity_.get(), set->limiter_.get(),
        absl::StrCat("(limits.device_requests_per_second=", settings.device_requests_per_second,
                     ", limits.device_request_burst=", settings.device_request_burst, ")"),
        static_cast<uint64_t>(settings.device_requests_per_second));
    set->guard_->LimitPublicCalls(settings.enroll_per_peer_per_minute, settings.enroll_per_minute,
                                  clock);
    // Every admitted call carries its caller's scope, computed once.
    set->guard_->ComputeScopesWith(&set->directory_->scopes());
    set->queries_ = std::make_unique<domain::DomainQueries>(&set->engine_->reader(),
                                                            settings.max_page_size, clock,
                                                            settings.max_examined_records);
    set->blob_uploads_ = std::make_unique<BlobUploads>(
        deps.store, set->engine_.get(), set->directory_.get(),
        BlobUploadSettings{
            .max_partial_bytes_per_device = settings.max_partial_blob_bytes_per_device,
            .partial_ttl = settings.partial_blob_ttl,
            .upload_bytes_per_device_per_hour = settings.blob_upload_bytes_per_device_per_hour,
            .reaper_interval = settings.blob_reaper_interval},
        clock);
    // Expired partial uploads give their disk back before the first call.
    RETURN_IF_ERROR(set->blob_uploads_->Start());
    set->worker_ = std::make_unique<Worker>();
    set->blob_worker_ = std::make_unique<Worker>();
    set->reads_ =
        std::make_unique<BoundedExecutor>(settings.read_threads, settings.read_queue_depth);
    set->context_.store = deps.store;
    set->context_.directory = set->directory_.get();
    set->context_.identity = set->identity_.get();
    set->context_.guard = set->guard_.get();
    set->context_.worker = set->worker_.get();
    set->context_.blob_worker = set->blob_worker_.get();
    set->context_.reads = set->reads_.get();
    set->context_.engine = set->engine_.get();
    set->context_.blob_uploads = set->blob_uploads_.get();
    set->context_.queries = set->queries_.get();
    set->context_.state = deps.state;
    set->context_.metrics = deps.metrics;
    set->context_.settings = settings;
    set->context_.clock = clock;
    set->sync_ = std::make_unique<SyncServiceImpl>(&set->context_);
    set->stream_ = std::make_unique<StreamServiceImpl>(&set->context_);
    set->query_ = std::make_unique<QueryServiceImpl>(&set->context_);
    set->report_ = std::make_unique<ReportServiceImpl>(&set->context_,
                                                     set->policy_.options().assessment);
    set->admin_ = std::make_unique<AdminServiceImpl>(&set->context_);
    if (deps.metrics != nullptr) {
      set->gauges_ = std::make_shared<GaugeSources>(set->stream_.get(), deps.store);
      std::shared_ptr<GaugeSources> gauges = set->gauges_;
      deps.metrics->Gauge("fieldsync_subscribers_connected",
                          "Subscribe streams open now (StreamService).",
                          [gauges] { return gauges->Subscribers(); });
      deps.metrics->Gauge("fieldsync_open_conflicts",
                          "Conflicts waiting for review (open conflict records).",
                          [gauges] { return gauges->OpenConflicts(); });
    }
    return set;
  }

  ~ServiceSetImpl() override {
    if (gauges_ != nullptr) gauges_->Detach();
  }

  std::vector<grpc::Service*> services() override {
    return {sync_.get(), stream_.get(), query_.get(), report_.get(), admin_.get()};
  }

  std::optional<std::string> first_admin_token() const override {
    return identity_->first_admin_token();
  }

  Identity& identity() override { return *identity_; }

 private:
  explicit ServiceSetImpl(domain::DomainOptions domain_options) : policy_(domain_options) {}

  // Destroyed in reverse: the services (the stream hub stops its thread),
  // then the workers (which finish their queued tasks), then what they use.
  // The domain's merge policy: the sync engine's pushes and the server's own
  // events (AdminService) go through it.
  domain::ShuanglianPolicy policy_;
  std::unique_ptr<HouseholdLocator> households_;
  std::unique_ptr<Directory> directory_;
  std::unique_ptr<sync::DeviceKeys> device_keys_;
  std::unique_ptr<sync::SyncEngine> engine_;
  // After the engine: its appends go through the engine.
  std::unique_ptr<Identity> identity_;
  std::unique_ptr<RateLimiter> limiter_;
  std::unique_ptr<CallGuard> guard_;
  std::unique_ptr<domain::DomainQueries> queries_;
  // Before the workers: their queued chunks use it while they join.
  std::unique_ptr<BlobUploads> blob_uploads_;
  ServiceContext context_;
  // After the context: their queued tasks use the context while they join.
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<Worker> blob_worker_;
  // Pull, queries and push pre-checks; its destructor runs what is queued
  // (each task finishes its call) before the context goes.
  std::unique_ptr<BoundedExecutor> reads_;
  std::shared_ptr<GaugeSources> gauges_;
  std::unique_ptr<SyncServiceImpl> sync_;
  std::unique_ptr<StreamServiceImpl> stream_;
  std::unique_ptr<QueryServiceImpl> query_;
  std::unique_ptr<ReportServiceImpl> report_;
  std::unique_ptr<AdminServiceImpl> admin_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ServiceSet>> CreateServices(const ServiceDeps& deps) {
  return ServiceSetImpl::Create(deps);
}

}  // namespace fieldsync::server
