#include "server/config.h"

#include <arpa/inet.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "server/tls.h"

namespace fieldsync::server {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

absl::Status ConfigError(const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat("config: ", message));
}

// Keeps the first parse error with its position.
class FirstErrorCollector final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (has_error_) return;
    has_error_ = true;
    line_ = line;
    column_ = column;
    message_ = message;
  }

  bool has_error() const { return has_error_; }
  int line() const { return line_; }
  int column() const { return column_; }
  const std::string& message() const { return message_; }

 private:
  bool has_error_ = false;
  int line_ = 0;
  int column_ = 0;
  std::string message_;
};

// Resolves the dotted `path` to (message, field), creating sub-messages of
// `root` on the way. Null field if the path does not exist (a bug in the
// defaults table, caught by the tests).
std::pair<Message*, const FieldDescriptor*> ResolveMutable(Message* root, const std::string& path) {
  Message* message = root;
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* field = message->GetDescriptor()->FindFieldByName(parts[i]);
    if (field == nullptr) return {nullptr, nullptr};
    if (i + 1 == parts.size()) return {message, field};
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || field->is_repeated()) {
      return {nullptr, nullptr};
    }
    message = message->GetReflection()->MutableMessage(message, field);
  }
  return {nullptr, nullptr};
}

std::pair<const Message*, const FieldDescriptor*> Resolve(const Message& root,
                                                          const std::string& path) {
  const Message* message = &root;
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* field = message->GetDescriptor()->FindFieldByName(parts[i]);
    if (field == nullptr) return {nullptr, nullptr};
    if (i + 1 == parts.size()) return {message, field};
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || field->is_repeated()) {
      return {nullptr, nullptr};
    }
    message = &message->GetReflection()->GetMessage(*message, field);
  }
  return {nullptr, nullptr};
}

uint64_t UnsignedValue(const Message& message, const FieldDescriptor* field) {
  const Reflection* reflection = message.GetReflection();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_UINT32:
      return reflection->GetUInt32(message, field);
    case FieldDescriptor::CPPTYPE_UINT64:
      return reflection->GetUInt64(message, field);
    default:
      return 0;
  }
}

uint64_t Get(const v1::ServerConfig& config, const std::string& path) {
  auto [message, field] = Resolve(config, path);
  return field == nullptr ? 0 : UnsignedValue(*message, field);
}

// "a" must be <= "b".
absl::Status CheckAtMost(const v1::ServerConfig& config, const std::string& a,
                         const std::string& b) {
  uint64_t va = Get(config, a), vb = Get(config, b);
  if (va > vb) {
    return ConfigError(absl::StrCat(a, " (", va, ") must be <= ", b, " (", vb, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) {
    return ConfigError(absl::StrCat("cannot read config file ", path, ": ", strerror(errno)));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return ConfigError(absl::StrCat("cannot read config file ", path));
  return contents.str();
}

absl::Status ValidateListen(const v1::ServerConfig& config) {
  ASSIGN_OR_RETURN(HostPort listen, ParseHostPort(config.listen(), "listen"));
  if (!TlsEnabled(config) && !config.insecure() && !IsLoopbackHost(listen.host)) {
    return ConfigError(absl::StrCat(
        "listen: \"", config.listen(),
        "\" is not a loopback address; serving plaintext gRPC on it needs insecure: true "
        "(--insecure), else configure TLS (tls.cert_file, tls.key_file)"));
  }
  if (config.metrics_listen() == "off") return absl::OkStatus();
  ASSIGN_OR_RETURN(HostPort metrics, ParseHostPort(config.metrics_listen(), "metrics_listen"));
  if (metrics.port != 0 && metrics.port == listen.port &&
      (metrics.host == listen.host || metrics.host.empty() || listen.host.empty() ||
       metrics.host == "0.0.0.0" || listen.host == "0.0.0.0" || metrics.host == "::" ||
       listen.host == "::")) {
    return ConfigError(absl::StrCat("metrics_listen (", config.metrics_listen(),
                                    ") must differ from listen (", config.listen(), ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateTls(const v1::ServerConfig& config) {
  const v1::TlsConfig& tls = config.tls();
  if (tls.cert_file().empty()) {
    if (!tls.key_file().empty()) {
      return ConfigError("tls.key_file is set but tls.cert_file is not (set both for TLS)");
    }
    if (!tls.client_ca_file().empty()) {
      return ConfigError("tls.client_ca_file needs TLS: set tls.cert_file and tls.key_file");
    }
    if (tls.require_client_cert()) {
      return ConfigError("tls.require_client_cert needs TLS and tls.client_ca_file");
    }
    return absl::OkStatus();
  }
  if (tls.key_file().empty()) return ConfigError("tls.key_file is required with tls.cert_file");
  if (tls.require_client_cert() && tls.client_ca_file().empty()) {
    return ConfigError("tls.require_client_cert needs tls.client_ca_file");
  }
  return LoadTlsMaterial(tls).status();
}

}  // namespace

const std::vector<ConfigDefault>& ConfigDefaults() {
  static const auto* defaults = new std::vector<ConfigDefault>{
      {"data_dir", "\"./var/data\""},
      {"listen", "\"127.0.0.1:50051\""},
      {"metrics_listen", "\"127.0.0.1:9464\""},
      {"shutdown_grace_ms", "10000"},
      {"limits.max_message_bytes", "4194304"},
      {"limits.max_push_events", "500"},
      {"limits.max_push_bytes", "2097152"},
      {"limits.max_concurrent_streams", "64"},
      {"limits.device_requests_per_second", "20"},
      {"limits.device_request_burst", "40"},
      {"limits.max_event_bytes", "65536"},
      {"limits.max_hlc_skew_ms", "300000"},
      {"limits.max_pull_events", "1000"},
      {"limits.max_pull_bytes", "1048576"},
      {"limits.max_blob_bytes", "20971520"},
      {"limits.max_page_size", "1000"},
      {"limits.subscriber_buffer_bytes", "16777216"},
      {"limits.stream_idle_timeout_ms", "60000"},
      {"limits.max_partial_blob_bytes_per_device", "268435456"},
      {"limits.partial_blob_ttl_seconds", "86400"},
      {"limits.blob_upload_bytes_per_device_per_hour", "536870912"},
      {"limits.blob_reaper_interval_ms", "600000"},
      {"log.format", "LOG_FORMAT_TEXT"},
      {"log.level", "LOG_LEVEL_INFO"},
      {"storage.block_cache_mb", "256"},
      {"storage.write_buffer_mb", "64"},
      {"storage.max_background_jobs", "4"},
      {"storage.max_open_files", "4096"},
      {"storage.commit_max_batch_events", "2000"},
      {"storage.commit_max_batch_bytes", "8388608"},
      {"storage.backups_to_keep", "7"},
      {"storage.recovery_interval_ms", "5000"},
      {"storage.min_free_space_mb", "64"},
      {"auth.enrollment_code_ttl_seconds", "259200"},
      {"auth.max_enrollment_code_ttl_seconds", "2592000"},
      {"auth.enroll_per_peer_per_minute", "30"},
      {"auth.enroll_per_minute", "600"},
      {"assessment.min_visits_per_year", "4"},
      {"assessment.min_days_on_site", "30"},
      {"assessment.replacement_grace_days", "30"},
      {"assessment.quota_provincial_leader_households", "5"},
      {"assessment.quota_provincial_leader_counties", "2"},
      {"assessment.quota_department_rank_households", "3"},
      {"assessment.quota_county_rank_households", "2"},
      {"assessment.quota_other_households", "1"},
      {"assessment.gps_far_m", "1000"},
      {"assessment.max_travel_kmh", "120"},
      {"assessment.device_time_skew_ms", "600000"},
      {"validation.max_amount_fen", "100000000"},
      {"validation.min_year", "2000"},
      {"validation.max_year", "2100"},
      {"kafka.topic", "\"fieldsync.events\""},
      {"kafka.client_id", "\"fieldsyncd\""},
  };
  return *defaults;
}

void ApplyConfigDefaults(v1::ServerConfig* config) {
  for (const ConfigDefault& entry : ConfigDefaults()) {
    auto [message, field] = ResolveMutable(config, entry.path);
    if (field == nullptr) continue;  // Caught by config_test (every entry resolves).
    if (message->GetReflection()->HasField(*message, field)) continue;
    // Each value is a constant of this file, checked by config_test.
    google::protobuf::TextFormat::ParseFieldValueFromString(entry.value, field, message);
  }
  if (config->storage().backup_dir().empty()) {
    config->mutable_storage()->set_backup_dir(
        (std::filesystem::path(config->data_dir()) / "backups").string());
  }
}

absl::Status ValidateServerConfig(const v1::ServerConfig& config) {
  // Every defaulted setting must be set: numbers > 0, strings not empty,
  // enums a known value other than UNSPECIFIED.
  for (const ConfigDefault& entry : ConfigDefaults()) {
    auto [message, field] = Resolve(config, entry.path);
    if (field == nullptr) return ConfigError(absl::StrCat("unknown setting ", entry.path));
    const Reflection* reflection = message->GetReflection();
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64:
        if (UnsignedValue(*message, field) == 0) {
          return ConfigError(absl::StrCat(entry.path, " must be > 0"));
        }
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        if (reflection->GetString(*message, field).empty()) {
          return ConfigError(absl::StrCat(entry.path, " must not be empty"));
        }
        break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        int value = reflection->GetEnumValue(*message, field);
        if (value == 0 || field->enum_type()->FindValueByNumber(value) == nullptr) {
          return ConfigError(absl::StrCat(entry.path, ": unknown value ", value));
        }
        break;
      }
      default:
        break;
    }
  }
  // gRPC takes message sizes as int.
  if (config.limits().max_message_bytes() > static_cast<uint32_t>(INT_MAX)) {
    return ConfigError(absl::StrCat("limits.max_message_bytes must be <= ", INT_MAX));
  }
  RETURN_IF_ERROR(CheckAtMost(config, "limits.max_push_bytes", "limits.max_message_bytes"));
  RETURN_IF_ERROR(CheckAtMost(config, "limits.max_event_bytes", "limits.max_push_bytes"));
  RETURN_IF_ERROR(CheckAtMost(config, "limits.max_pull_bytes", "limits.max_message_bytes"));
  RETURN_IF_ERROR(CheckAtMost(config, "limits.max_event_bytes", "limits.max_pull_bytes"));
  // One blob must fit in a device's allowance of unfinished uploads.
  RETURN_IF_ERROR(
      CheckAtMost(config, "limits.max_blob_bytes", "limits.max_partial_blob_bytes_per_device"));
  RETURN_IF_ERROR(CheckAtMost(config, "auth.enrollment_code_ttl_seconds",
                              "auth.max_enrollment_code_ttl_seconds"));
  if (config.storage().block_cache_mb() > (1u << 20)) {
    return ConfigError("storage.block_cache_mb must be <= 1048576 (1 TiB)");
  }
  if (config.storage().write_buffer_mb() > (1u << 16)) {
    return ConfigError("storage.write_buffer_mb must be <= 65536 (64 GiB)");
  }
  if (config.validation().max_amount_fen() > static_cast<uint64_t>(INT64_MAX)) {
    return ConfigError(absl::StrCat("validation.max_amount_fen must be <= ", INT64_MAX));
  }
  if (config.validation().max_year() > 9999) {
    return ConfigError("validation.max_year must be <= 9999");
  }
  RETURN_IF_ERROR(CheckAtMost(config, "validation.min_year", "validation.max_year"));
  if (config.storage().recovery_interval_ms() == 0) {
    return ConfigError("storage.recovery_interval_ms must be positive");
  }
  for (const auto& [key, value] : config.kafka().properties()) {
    if (key.empty()) return ConfigError("kafka.properties: a property has an empty name");
  }
  RETURN_IF_ERROR(ValidateTls(config));
  RETURN_IF_ERROR(ValidateListen(config));
  return absl::OkStatus();
}

absl::StatusOr<v1::ServerConfig> ParseServerConfig(const std::string& text,
                                                   const std::string& source) {
  v1::ServerConfig config;
  google::protobuf::TextFormat::Parser parser;
  FirstErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (parser.ParseFromString(text, &config)) return config;
  if (!errors.has_error()) return ConfigError(absl::StrCat(source, ": cannot parse"));
  // Quote the offending line: it names the setting even when the parser's
  // message does not (e.g. "Expected integer, got: -").
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  std::string quoted;
  if (errors.line() >= 0 && static_cast<size_t>(errors.line()) < lines.size()) {
    std::string line(absl::StripAsciiWhitespace(lines[errors.line()]));
    if (line.size() > 120) line = line.substr(0, 120) + "...";
    if (!line.empty()) quoted = absl::StrCat(" in `", line, "`");
  }
  return ConfigError(absl::StrCat(source, ":", errors.line() + 1, ":", errors.column() + 1, ": ",
                                  errors.message(), quoted));
}

absl::StatusOr<v1::ServerConfig> LoadServerConfig(const std::string& path,
                                                  const ConfigOverrides& overrides) {
  v1::ServerConfig config;
  if (!path.empty()) {
    ASSIGN_OR_RETURN(std::string text, ReadFile(path));
    ASSIGN_OR_RETURN(config, ParseServerConfig(text, path));
  }
  if (overrides.data_dir) config.set_data_dir(*overrides.data_dir);
  if (overrides.listen) config.set_listen(*overrides.listen);
  if (overrides.metrics_listen) config.set_metrics_listen(*overrides.metrics_listen);
  if (overrides.tls_cert_file) config.mutable_tls()->set_cert_file(*overrides.tls_cert_file);
  if (overrides.tls_key_file) config.mutable_tls()->set_key_file(*overrides.tls_key_file);
  if (overrides.tls_client_ca_file) {
    config.mutable_tls()->set_client_ca_file(*overrides.tls_client_ca_file);
  }
  if (overrides.tls_require_client_cert) config.mutable_tls()->set_require_client_cert(true);
  if (overrides.insecure) config.set_insecure(true);
  if (overrides.log_format) config.mutable_log()->set_format(*overrides.log_format);
  if (overrides.log_level) config.mutable_log()->set_level(*overrides.log_level);
  ApplyConfigDefaults(&config);
  RETURN_IF_ERROR(ValidateServerConfig(config));
  return config;
}

domain::DomainOptions DomainOptionsFrom(const v1::ServerConfig& config) {
  domain::DomainOptions options;
  const v1::ValidationConfig& validation = config.validation();
  // ValidateServerConfig keeps each within int64 / int.
  if (validation.max_amount_fen() != 0) {
    options.max_amount_fen = static_cast<int64_t>(
        std::min<uint64_t>(validation.max_amount_fen(), static_cast<uint64_t>(INT64_MAX)));
  }
  if (validation.min_year() != 0) {
    options.min_year = static_cast<int>(std::min<uint32_t>(validation.min_year(), 9999));
  }
  if (validation.max_year() != 0) {
    options.max_year = static_cast<int>(std::min<uint32_t>(validation.max_year(), 9999));
  }
  return options;
}

absl::StatusOr<HostPort> ParseHostPort(const std::string& address, const std::string& setting) {
  auto bad = [&](const std::string& why) {
    return ConfigError(
        absl::StrCat(setting, ": bad address \"", address, "\" (", why, "; want host:port)"));
  };
  HostPort result;
  std::string port_text;
  if (!address.empty() && address[0] == '[') {
    size_t close = address.find(']');
    if (close == std::string::npos) return bad("unclosed [");
    result.host = address.substr(1, close - 1);
    if (close + 1 >= address.size() || address[close + 1] != ':') return bad("no port");
    port_text = address.substr(close + 2);
    in6_addr v6;
    if (inet_pton(AF_INET6, result.host.c_str(), &v6) != 1) return bad("bad IPv6 address");
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos) return bad("no port");
    result.host = address.substr(0, colon);
    if (result.host.find(':') != std::string::npos) return bad("IPv6 addresses go in [brackets]");
    port_text = address.substr(colon + 1);
  }
  for (char c : result.host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_' &&
        c != ':') {
      return bad("bad host");
    }
  }
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(),
                   [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }) ||
      !absl::SimpleAtoi(port_text, &result.port) || result.port > 65535) {
    return bad("port must be 0-65535");
  }
  return result;
}

bool IsLoopbackHost(const std::string& host) {
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

}  // namespace fieldsync::server
