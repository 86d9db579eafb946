// The effective settings of fieldsyncd: a fieldsync.v1.ServerConfig read from
// a text-format file, overridden by command-line flags, with the default of
// every unset field applied and the whole validated. docs/operations.md lists
// every setting and its default; ConfigDefaults() is the one source of those
// defaults. The options of the parts (storage::StoreOptions, sync::SyncOptions,
// the services' ServiceSettings) are derived from a ServerConfig here and
// nowhere else: StoreOptionsFrom, SettingsFrom, SyncOptionsFrom.
//
// Every error is InvalidArgument with a message that starts with "config: "
// and names the setting, e.g. "config: limits.max_push_events must be > 0".
//
// Thread-safety: the functions are pure (apart from reading the config and TLS
// files) and may be called from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "domain/shuanglian_policy.h"
#include "fieldsync/v1/config.pb.h"
#include "storage/event_store.h"
#include "sync/sync_engine.h"

namespace fieldsync::server {

// Command-line values that override the file. An empty optional leaves the
// file's value (or the default) alone. Boolean flags can only turn a setting
// on: a flag cannot turn off `insecure: true` written in the file.
struct ConfigOverrides {
  std::optional<std::string> data_dir;
  std::optional<std::string> listen;
  std::optional<std::string> metrics_listen;
  std::optional<std::string> tls_cert_file;
  std::optional<std::string> tls_key_file;
  std::optional<std::string> tls_client_ca_file;
  bool tls_require_client_cert = false;
  bool insecure = false;
  std::optional<v1::LogFormat> log_format;
  std::optional<v1::LogLevel> log_level;
};

// Reads `path` (text format; empty path: no file, every setting from flags and
// defaults), applies `overrides`, then ApplyConfigDefaults and
// ValidateServerConfig. Errors (InvalidArgument, "config: ..."): unreadable
// file, parse error (unknown field, bad value: the message quotes the line),
// and every ValidateServerConfig error.
absl::StatusOr<v1::ServerConfig> LoadServerConfig(const std::string& path,
                                                  const ConfigOverrides& overrides);

// Parses text-format `text` (named `source` in errors) into a ServerConfig,
// without defaults or validation.
absl::StatusOr<v1::ServerConfig> ParseServerConfig(const std::string& text,
                                                   const std::string& source);

// Sets every zero / empty field of `config` to its default (ConfigDefaults();
// storage.backup_dir becomes "<data_dir>/backups"). Idempotent.
void ApplyConfigDefaults(v1::ServerConfig* config);

// Checks a config whose defaults are applied: numbers in range and consistent
// with each other, listen addresses well formed and distinct, plaintext only
// on loopback unless `insecure`, TLS files present, readable, PEM, and the key
// matching the certificate. Returns OK or InvalidArgument naming the setting.
absl::Status ValidateServerConfig(const v1::ServerConfig& config);

// One setting's default, as written in docs/operations.md.
struct ConfigDefault {
  std::string path;   // Dotted path from ServerConfig, e.g. "limits.max_push_events".
  std::string value;  // Text-format value: 500, "127.0.0.1:50051", LOG_FORMAT_TEXT.
};
// The defaults ApplyConfigDefaults applies, one per defaulted scalar field.
// Fields without an entry default to empty / false / zero (e.g. tls.*).
const std::vector<ConfigDefault>& ConfigDefaults();

// A parsed host:port. `host` has no IPv6 brackets.
struct HostPort {
  std::string host;
  int port = 0;
};
// Parses "host:port", "[v6]:port" or ":port" (port 0-65535). Error:
// InvalidArgument naming `setting`.
absl::StatusOr<HostPort> ParseHostPort(const std::string& address, const std::string& setting);

// True for "localhost", 127.0.0.0/8, ::1 and ::ffff:127.x.y.z; false for
// everything else, wildcard addresses and names included (names are not
// resolved).
bool IsLoopbackHost(const std::string& host);

// The domain policy's options from a config whose defaults are applied
// (ServerConfig.validation: money and date bounds). A field still 0 keeps the
// DomainOptions default.
domain::DomainOptions DomainOptionsFrom(const v1::ServerConfig& config);

// The settings the services use, derived from the config by SettingsFrom (the
// config's defaults applied first). Zero-initialized on purpose: the only
// defaults are ConfigDefaults(); a ServiceSettings not made by SettingsFrom is
// a bug.
struct ServiceSettings {
  uint32_t max_page_size = 0;                    // limits.max_page_size
  uint32_t max_message_bytes = 0;                // limits.max_message_bytes
  uint32_t max_push_events = 0;                  // limits.max_push_events
  uint32_t max_push_bytes = 0;                   // limits.max_push_bytes
  uint32_t max_event_bytes = 0;                  // limits.max_event_bytes
  absl::Duration max_hlc_skew;                   // limits.max_hlc_skew_ms
  uint32_t max_pull_events = 0;                  // limits.max_pull_events
  uint32_t max_pull_bytes = 0;                   // limits.max_pull_bytes
  uint64_t max_blob_bytes = 0;                   // limits.max_blob_bytes
  uint32_t max_concurrent_streams = 0;           // limits.max_concurrent_streams
  uint32_t subscriber_buffer_bytes = 0;          // limits.subscriber_buffer_bytes
  uint64_t max_partial_blob_bytes_per_device = 0;  // limits.max_partial_blob_bytes_per_device
  absl::Duration partial_blob_ttl;                 // limits.partial_blob_ttl_seconds
  uint64_t blob_upload_bytes_per_device_per_hour = 0;  // limits.blob_upload_bytes_per_device_per_hour
  absl::Duration blob_reaper_interval;                 // limits.blob_reaper_interval_ms
  absl::Duration enrollment_code_ttl;                  // auth.enrollment_code_ttl_seconds
  absl::Duration max_enrollment_code_ttl;              // auth.max_enrollment_code_ttl_seconds
  double device_requests_per_second = 0;               // limits.device_requests_per_second
  double device_request_burst = 0;                     // limits.device_request_burst
  std::string data_dir;                                // data_dir
  std::string backup_dir;                              // storage.backup_dir
  uint32_t backups_to_keep = 0;                        // storage.backups_to_keep
  // limits.max_streams_per_user; 0 in the config = a quarter of the cap, at least 1.
  uint32_t max_streams_per_user = 0;
  absl::Duration stream_idle_timeout;   // limits.stream_idle_timeout_ms
  uint32_t enroll_per_peer_per_minute = 0;  // auth.enroll_per_peer_per_minute
  uint32_t enroll_per_minute = 0;           // auth.enroll_per_minute
  uint32_t read_threads = 0;                // limits.read_threads
  uint32_t read_queue_depth = 0;            // limits.read_queue_depth
  uint32_t max_examined_records = 0;        // limits.max_examined_records
};

// The services' settings from `config` (ApplyConfigDefaults is applied to a
// copy first, so an empty config gives the documented defaults).
ServiceSettings SettingsFrom(const v1::ServerConfig& config);

// The sync engine's options from the services' settings (limits.*) and the
// server's clock. The caller adds what is not a setting (scope digest salt,
// subject_area).
sync::SyncOptions SyncOptionsFrom(const ServiceSettings& settings,
                                  std::function<absl::Time()> clock);

// The event store's options from `config` (defaults applied to a copy first):
// storage.* and the record and blob bounds of limits.*. The callbacks
// (on_group_committed, on_write_state_changed) and the file system are the
// caller's.
storage::StoreOptions StoreOptionsFrom(const v1::ServerConfig& config);

// True when the config serves gRPC over TLS (tls.cert_file set).
inline bool TlsEnabled(const v1::ServerConfig& config) { return !config.tls().cert_file().empty(); }

}  // namespace fieldsync::server
