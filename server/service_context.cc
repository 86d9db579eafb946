#include "server/service_context.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/text.h"

namespace fieldsync::server {

Worker::Worker() : thread_([this] { Loop(); }) {}

Worker::~Worker() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void Worker::Run(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
}

void Worker::Loop() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !tasks_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (tasks_.empty()) return;  // Stopping, and nothing left to run.
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

ServiceSettings SettingsFrom(const v1::ServerConfig& config) {
  ServiceSettings s;
  const auto& limits = config.limits();
  if (limits.max_page_size() > 0) s.max_page_size = limits.max_page_size();
  if (limits.max_message_bytes() > 0) s.max_message_bytes = limits.max_message_bytes();
  if (limits.max_push_events() > 0) s.max_push_events = limits.max_push_events();
  if (limits.max_push_bytes() > 0) s.max_push_bytes = limits.max_push_bytes();
  if (limits.max_event_bytes() > 0) s.max_event_bytes = limits.max_event_bytes();
  if (limits.max_hlc_skew_ms() > 0) s.max_hlc_skew = absl::Milliseconds(limits.max_hlc_skew_ms());
  if (limits.max_pull_events() > 0) s.max_pull_events = limits.max_pull_events();
  if (limits.max_pull_bytes() > 0) s.max_pull_bytes = limits.max_pull_bytes();
  if (limits.max_blob_bytes() > 0) s.max_blob_bytes = limits.max_blob_bytes();
  if (limits.max_concurrent_streams() > 0) {
    s.max_concurrent_streams = limits.max_concurrent_streams();
  }
  if (limits.subscriber_buffer_bytes() > 0) {
    s.subscriber_buffer_bytes = limits.subscriber_buffer_bytes();
  }
  s.max_streams_per_user = limits.max_streams_per_user() > 0
                               ? limits.max_streams_per_user()
                               : std::max<uint32_t>(1, s.max_concurrent_streams / 4);
  if (limits.stream_idle_timeout_ms() > 0) {
    s.stream_idle_timeout = absl::Milliseconds(limits.stream_idle_timeout_ms());
  }
  if (config.auth().enroll_per_peer_per_minute() > 0) {
    s.enroll_per_peer_per_minute = config.auth().enroll_per_peer_per_minute();
  }
  if (config.auth().enroll_per_minute() > 0) {
    s.enroll_per_minute = config.auth().enroll_per_minute();
  }
  if (limits.max_partial_blob_bytes_per_device() > 0) {
    s.max_partial_blob_bytes_per_device = limits.max_partial_blob_bytes_per_device();
  }
  if (limits.partial_blob_ttl_seconds() > 0) {
    s.partial_blob_ttl = absl::Seconds(limits.partial_blob_ttl_seconds());
  }
  if (limits.blob_upload_bytes_per_device_per_hour() > 0) {
    s.blob_upload_bytes_per_device_per_hour = limits.blob_upload_bytes_per_device_per_hour();
  }
  if (limits.blob_reaper_interval_ms() > 0) {
    s.blob_reaper_interval = absl::Milliseconds(limits.blob_reaper_interval_ms());
  }
  if (limits.device_requests_per_second() > 0) {
    s.device_requests_per_second = limits.device_requests_per_second();
  }
  if (limits.device_request_burst() > 0) s.device_request_burst = limits.device_request_burst();
  if (config.auth().enrollment_code_ttl_seconds() > 0) {
    s.enrollment_code_ttl = absl::Seconds(config.auth().enrollment_code_ttl_seconds());
  }
  if (config.auth().max_enrollment_code_ttl_seconds() > 0) {
    s.max_enrollment_code_ttl = absl::Seconds(config.auth().max_enrollment_code_ttl_seconds());
  }
  if (!config.data_dir().empty()) s.data_dir = config.data_dir();
  s.backup_dir = config.storage().backup_dir().empty() ? s.data_dir + "/backups"
                                                       : config.storage().backup_dir();
  return s;
}

sync::SyncOptions SyncOptionsFrom(const ServiceSettings& settings, Clock clock) {
  sync::SyncOptions options;
  options.max_push_events = settings.max_push_events;
  options.max_push_bytes = settings.max_push_bytes;
  options.max_event_bytes = settings.max_event_bytes;
  options.max_hlc_skew = settings.max_hlc_skew;
  options.max_pull_events = settings.max_pull_events;
  options.max_pull_bytes = settings.max_pull_bytes;
  options.max_page_size = settings.max_page_size;
  options.clock = std::move(clock);
  return options;
}

absl::Status ValidatePrefix(std::string_view field, std::string_view prefix, bool optional) {
  if (prefix.empty()) {
    if (optional) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(std::string(field), " is required"));
  }
  if (prefix.size() > 15 || !base::IsDigits(prefix)) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(field),
                                                   " must be 1 to 15 digits of an area code, got '",
                                                   std::string(prefix.substr(0, 32)), "'"));
  }
  return absl::OkStatus();
}

absl::Status NotServedYet(std::string_view method_path) {
  std::string name(method_path.substr(
      method_path.rfind('.') == std::string_view::npos ? 0 : method_path.rfind('.') + 1));
  for (char& c : name) {
    if (c == '/') c = '.';
  }
  return absl::UnimplementedError(absl::StrCat(name, " is not served yet"));
}

}  // namespace fieldsync::server
