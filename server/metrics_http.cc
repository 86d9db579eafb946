#include "server/metrics_http.h"

#include <httplib.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/metrics.h"

namespace fieldsync::server {
namespace {

// Scrapes are rare and quick: two threads are plenty.
constexpr size_t kHttpThreads = 2;

class MetricsHttpServerImpl final : public MetricsHttpServer {
 public:
  explicit MetricsHttpServerImpl(const MetricsRegistry* registry) {
    http_.new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
    // One request per connection: an idle keep-alive connection would hold
    // Stop (and so the shutdown) for the keep-alive timeout.
    http_.set_keep_alive_max_count(1);
    http_.Get("/metrics", [registry](const httplib::Request&, httplib::Response& response) {
      response.set_content(registry->Render(), "text/plain; version=0.0.4; charset=utf-8");
    });
  }

  ~MetricsHttpServerImpl() override { Stop(); }

  absl::Status Bind(const std::string& host, int port) {
    if (port == 0) {
      port_ = http_.bind_to_any_port(host);
    } else {
      port_ = http_.bind_to_port(host, port) ? port : -1;
    }
    if (port_ <= 0) {
      return absl::UnavailableError(
          absl::StrCat("metrics_listen: cannot listen on ", host, ":", port));
    }
    thread_ = std::thread([this] {
      http_.listen_after_bind();
      loop_exited_.store(true);
    });
    // stop() is a no-op until the listening loop has started: wait for it so
    // that a Stop right after Start cannot be lost. It starts at once.
    while (!http_.is_running() && !loop_exited_.load()) std::this_thread::yield();
    return absl::OkStatus();
  }

  int port() const override { return port_; }

  void Stop() override {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    http_.stop();
    if (thread_.joinable()) thread_.join();
  }

 private:
  httplib::Server http_;
  std::thread thread_;
  std::atomic<bool> loop_exited_{false};
  int port_ = 0;
  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& host, int port, const MetricsRegistry* registry) {
  auto server = std::make_unique<MetricsHttpServerImpl>(registry);
  absl::Status bound = server->Bind(host, port);
  if (!bound.ok()) return bound;
  return server;
}

}  // namespace fieldsync::server
