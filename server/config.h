// The effective settings of fieldsyncd: a fieldsync.v1.ServerConfig read from
// a text-format file, overridden by command-line flags, with the default of
// every unset field applied and the whole validated. docs/operations.md lists
// every setting and its default; ConfigDefaults() is the one source of those
// defaults.
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
#include "domain/shuanglian_policy.h"
#include "fieldsync/v1/config.pb.h"

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

// True when the config serves gRPC over TLS (tls.cert_file set).
inline bool TlsEnabled(const v1::ServerConfig& config) { return !config.tls().cert_file().empty(); }

}  // namespace fieldsync::server
