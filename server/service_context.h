// What every v1 service implementation shares: the store, the directory, the
// identity, the call guard, the sync engine and the domain's queries, the
// effective settings (config defaults applied), and worker threads for the
// blocking operations that must not hold gRPC's callback threads (backups,
// synced blob writes).
//
// Thread-safety: a ServiceContext is immutable once built; the Worker, the
// engine and the queries are thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "domain/queries.h"
#include "fieldsync/v1/config.pb.h"
#include "server/auth.h"
#include "server/blob_uploads.h"
#include "server/directory.h"
#include "server/identity.h"
#include "server/metrics.h"
#include "server/server_state.h"
#include "storage/event_store.h"
#include "sync/sync_engine.h"

namespace fieldsync::server {

// Runs blocking tasks (a backup copies the database) off the gRPC threads, one
// at a time, in order. The destructor runs what is queued, then joins.
class Worker {
 public:
  Worker();
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  void Run(std::function<void()> task);

 private:
  void Loop();
  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// The settings the services use, with the documented defaults of
// proto/fieldsync/v1/config.proto applied where the config leaves 0 / "".
struct ServiceSettings {
  uint32_t max_page_size = 1000;                               // limits.max_page_size
  uint32_t max_message_bytes = 4 << 20;                        // limits.max_message_bytes
  uint32_t max_push_events = 500;                              // limits.max_push_events
  uint32_t max_push_bytes = 2 << 20;                           // limits.max_push_bytes
  uint32_t max_event_bytes = 64 << 10;                         // limits.max_event_bytes
  absl::Duration max_hlc_skew = absl::Minutes(5);              // limits.max_hlc_skew_ms
  uint32_t max_pull_events = 1000;                             // limits.max_pull_events
  uint32_t max_pull_bytes = 1 << 20;                           // limits.max_pull_bytes
  uint64_t max_blob_bytes = 20 << 20;                          // limits.max_blob_bytes
  uint32_t max_concurrent_streams = 64;                        // limits.max_concurrent_streams
  uint32_t subscriber_buffer_bytes = 16 << 20;                 // limits.subscriber_buffer_bytes
  // limits.max_partial_blob_bytes_per_device
  uint64_t max_partial_blob_bytes_per_device = 256 << 20;
  // limits.partial_blob_ttl_seconds
  absl::Duration partial_blob_ttl = absl::Hours(24);
  // limits.blob_upload_bytes_per_device_per_hour
  uint64_t blob_upload_bytes_per_device_per_hour = 512 << 20;
  // limits.blob_reaper_interval_ms
  absl::Duration blob_reaper_interval = absl::Minutes(10);
  absl::Duration enrollment_code_ttl = absl::Seconds(259200);  // auth.enrollment_code_ttl_seconds
  absl::Duration max_enrollment_code_ttl =
      absl::Seconds(2592000);              // auth.max_enrollment_code_ttl_seconds
  double device_requests_per_second = 20;  // limits.device_requests_per_second
  double device_request_burst = 40;        // limits.device_request_burst
  std::string data_dir = "./var/data";     // data_dir
  std::string backup_dir;                  // storage.backup_dir, default <data_dir>/backups

  // Streams and enrollment (issue 7).
  // limits.max_streams_per_user; 0 in the config = a quarter of the cap, at least 1.
  uint32_t max_streams_per_user = 16;
  absl::Duration stream_idle_timeout = absl::Minutes(1);  // limits.stream_idle_timeout_ms
  uint32_t enroll_per_peer_per_minute = 30;               // auth.enroll_per_peer_per_minute
  uint32_t enroll_per_minute = 600;                       // auth.enroll_per_minute
};

ServiceSettings SettingsFrom(const v1::ServerConfig& config);

// The sync engine's settings from the service settings (limits.*).
sync::SyncOptions SyncOptionsFrom(const ServiceSettings& settings, Clock clock);

struct ServiceContext {
  storage::EventStore* store = nullptr;
  const Directory* directory = nullptr;
  Identity* identity = nullptr;
  const CallGuard* guard = nullptr;
  // Backups and other long admin operations, one at a time.
  Worker* worker = nullptr;
  // Synced blob chunk writes (milliseconds each), off the gRPC threads and
  // never queued behind a backup.
  Worker* blob_worker = nullptr;
  // Push, Pull, history and rejections (sync/sync_engine.h).
  sync::SyncEngine* engine = nullptr;
  // Who may upload which blob, quotas and expiry (server/blob_uploads.h).
  BlobUploads* blob_uploads = nullptr;
  // Households, conflicts (domain/queries.h), over the engine's projections.
  const domain::DomainQueries* queries = nullptr;
  // Draining (long-lived streams end when it begins).
  ServerState* state = nullptr;
  // May be null (no metrics).
  MetricsRegistry* metrics = nullptr;
  ServiceSettings settings;
  Clock clock;

  // page_size 0 = 100, capped by limits.max_page_size.
  size_t PageSize(uint32_t requested) const {
    uint32_t size = requested == 0 ? 100 : requested;
    return std::min<uint32_t>(size, settings.max_page_size);
  }
};

// The full gRPC path of `Method` of v1 service `Service`, computed once.
#define FIELDSYNC_METHOD_PATH(Service, Method)                                       \
  ([]() -> const std::string& {                                                      \
    static const std::string* path = new std::string(                                \
        ::fieldsync::server::MethodPath(v1::Service::service_full_name(), #Method)); \
    return *path;                                                                    \
  }())

// Checks that a scope prefix is 1 to 15 ASCII digits (empty allowed when
// `optional`). InvalidArgument naming `field` otherwise.
absl::Status ValidatePrefix(std::string_view field, std::string_view prefix, bool optional);

// "UNIMPLEMENTED: <Service>.<Method> is not served yet" for bodies to come.
absl::Status NotServedYet(std::string_view method_path);

}  // namespace fieldsync::server
