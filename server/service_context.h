// What every v1 service implementation shares: the store, the directory, the
// identity, the call guard and the effective settings (config defaults
// applied), plus a worker thread for the few blocking admin operations.
//
// Thread-safety: a ServiceContext is immutable once built; the Worker is
// thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fieldsync/v1/config.pb.h"
#include "server/auth.h"
#include "server/directory.h"
#include "server/identity.h"
#include "storage/event_store.h"

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
  absl::Duration enrollment_code_ttl = absl::Seconds(259200);  // auth.enrollment_code_ttl_seconds
  absl::Duration max_enrollment_code_ttl =
      absl::Seconds(2592000);              // auth.max_enrollment_code_ttl_seconds
  double device_requests_per_second = 20;  // limits.device_requests_per_second
  double device_request_burst = 40;        // limits.device_request_burst
  std::string data_dir = "./var/data";     // data_dir
  std::string backup_dir;                  // storage.backup_dir, default <data_dir>/backups
};

ServiceSettings SettingsFrom(const v1::ServerConfig& config);

struct ServiceContext {
  storage::EventStore* store = nullptr;
  const Directory* directory = nullptr;
  Identity* identity = nullptr;
  const CallGuard* guard = nullptr;
  Worker* worker = nullptr;
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
