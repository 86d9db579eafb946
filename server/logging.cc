#include "server/logging.h"

#include <grpc/support/log.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/text.h"

namespace fieldsync::server {
namespace {

std::atomic<bool> json_format{false};

// The fields of the record being logged on this thread (JSON format only):
// LogRecord sets them around its synchronous call into the logger, whose
// stderr sink formats in the calling thread.
thread_local const std::vector<LogField>* current_fields = nullptr;

std::string FormatValueJson(const LogField& field) {
  if (const auto* text = std::get_if<std::string>(&field.value)) return JsonQuote(*text);
  if (const auto* integer = std::get_if<int64_t>(&field.value)) return absl::StrCat(*integer);
  return absl::StrFormat("%.3f", std::get<double>(field.value));
}

bool IsBareText(const std::string& value) {
  if (value.empty()) return false;
  for (char c : value) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == ':' || c == '/' || c == '+' || c == '@' ||
              c == ',' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return true;
}

std::string FormatValueText(const LogField& field) {
  if (const auto* text = std::get_if<std::string>(&field.value)) {
    return IsBareText(*text) ? *text : JsonQuote(*text);
  }
  return FormatValueJson(field);
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string line = absl::StrCat(
        "{\"ts\":\"",
        absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromChrono(msg.time), absl::UTCTimeZone()),
        "\",\"level\":\"",
        std::string(spdlog::level::to_string_view(msg.level).data(),
                    spdlog::level::to_string_view(msg.level).size()),
        "\",\"msg\":", JsonQuote(std::string(msg.payload.data(), msg.payload.size())));
    if (current_fields != nullptr) {
      for (const LogField& field : *current_fields) {
        absl::StrAppend(&line, ",", JsonQuote(field.key), ":", FormatValueJson(field));
      }
    }
    line.append("}\n");
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

spdlog::level::level_enum ToSpdlogLevel(v1::LogLevel level) {
  switch (level) {
    case v1::LOG_LEVEL_TRACE:
      return spdlog::level::trace;
    case v1::LOG_LEVEL_DEBUG:
      return spdlog::level::debug;
    case v1::LOG_LEVEL_WARN:
      return spdlog::level::warn;
    case v1::LOG_LEVEL_ERROR:
      return spdlog::level::err;
    default:
      return spdlog::level::info;
  }
}

// gRPC's own log lines (e.g. failed TLS handshakes) go through our logger,
// so that the JSON format stays one object per line. They are about clients
// and the network, not our faults: ERROR becomes a warning.
void LogGrpcMessage(gpr_log_func_args* args) {
  spdlog::level::level_enum level = args->severity == GPR_LOG_SEVERITY_ERROR ? spdlog::level::warn
                                    : args->severity == GPR_LOG_SEVERITY_INFO
                                        ? spdlog::level::info
                                        : spdlog::level::debug;
  std::string file = args->file == nullptr ? "" : args->file;
  file = file.substr(file.rfind('/') + 1);
  LogRecord(level, args->message == nullptr ? "" : args->message,
            {{"source", std::string("grpc")}, {"at", absl::StrCat(file, ":", args->line)}});
}

}  // namespace

std::string JsonQuote(const std::string& value) {
  std::string out = "\"";
  uint32_t code_point = 0;  // unused: the sequence is copied as it is
  for (size_t i = 0; i < value.size();) {
    unsigned char c = static_cast<unsigned char>(value[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (c == '\n') {
      out.append("\\n");
      ++i;
    } else if (c == '\r') {
      out.append("\\r");
      ++i;
    } else if (c == '\t') {
      out.append("\\t");
      ++i;
    } else if (c < 0x20 || c == 0x7F) {
      out.append(absl::StrFormat("\\u%04x", c));
      ++i;
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (size_t length = base::Utf8SequenceLength(value, i, &code_point); length > 0) {
      out.append(value, i, length);
      i += length;
    } else {
      out.append("\\ufffd");  // Invalid UTF-8 byte.
      ++i;
    }
  }
  out.push_back('"');
  return out;
}

void InitLogging(const v1::LogConfig& config, spdlog::sink_ptr sink) {
  if (sink == nullptr) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  bool json = config.format() == v1::LOG_FORMAT_JSON;
  if (json) {
    sink->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc));
  }
  auto logger = std::make_shared<spdlog::logger>("fieldsyncd", std::move(sink));
  logger->set_level(ToSpdlogLevel(config.level()));
  // Errors must reach the journal even if the process dies right after.
  logger->flush_on(spdlog::level::trace);
  json_format.store(json);
  spdlog::set_default_logger(std::move(logger));
  gpr_set_log_function(&LogGrpcMessage);
}

void LogRecord(spdlog::level::level_enum level, const std::string& message,
               const std::vector<LogField>& fields) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  if (json_format.load()) {
    current_fields = &fields;
    logger->log(level, spdlog::string_view_t(message.data(), message.size()));
    current_fields = nullptr;
    return;
  }
  std::string line = message;
  for (const LogField& field : fields) {
    absl::StrAppend(&line, " ", field.key, "=", FormatValueText(field));
  }
  logger->log(level, spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace fieldsync::server
