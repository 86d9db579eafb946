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
#include "server/bounded_executor.h"
#include "server/config.h"
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
  // Pull, the QueryService reads and the push pre-checks: a fixed pool with a
  // bounded queue (limits.read_threads, limits.read_queue_depth), so that no
  // scan or signature check runs on a gRPC callback thread. Offload
  // (server/offload.h) answers RESOURCE_EXHAUSTED when it is full.
  BoundedExecutor* reads = nullptr;
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
