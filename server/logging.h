// fieldsyncd's logs: spdlog's default logger, writing to stderr in the format
// of fieldsync.v1.LogConfig, plus LogRecord for records with structured fields
// (the call log).
//
// Text format, one line per record:
//   2024-05-01T08:00:00.123Z info call method=/grpc.health.v1.Health/Check code=OK ...
// JSON format, one object per line:
//   {"ts":"2024-05-01T08:00:00.123Z","level":"info","msg":"call","method":"...",...}
// Plain spdlog::info(...) calls from anywhere in the process go through the
// same formatter (as records without fields), and so do gRPC's own log lines
// (fields source="grpc" and at="file:line"; gRPC errors become warnings).
//
// Thread-safety: InitLogging is called once at start, before other threads
// log; LogRecord may be called from any thread.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "fieldsync/v1/config.pb.h"

namespace fieldsync::server {

// One structured field of a record.
struct LogField {
  std::string key;  // [a-z_]+, chosen by our code.
  std::variant<std::string, int64_t, double> value;
};

// Replaces spdlog's default logger with one writing `config`'s format at
// `config`'s level (defaults applied: LOG_FORMAT_TEXT, LOG_LEVEL_INFO) to
// `sink`, stderr when null (tests pass a memory sink).
void InitLogging(const v1::LogConfig& config, spdlog::sink_ptr sink = nullptr);

// Writes one record with `fields` through the default logger. Field values
// may hold anything (client input included): the text format quotes and
// escapes them, the JSON format escapes them.
void LogRecord(spdlog::level::level_enum level, const std::string& message,
               const std::vector<LogField>& fields);

// `value` as a JSON string literal (quotes included), control characters and
// invalid UTF-8 escaped, so each record stays one valid line.
std::string JsonQuote(const std::string& value);

}  // namespace fieldsync::server
