// Output of fieldctl: aligned tables for people, JSON for scripts
// (--json: one JSON document on stdout per command), and the exit codes a
// script can trust (docs/client.md "fieldctl").
#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <vector>

namespace fieldsync::fieldctl {

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
// A sync (or relay) that finished but left events rejected, in conflict, or
// held: the data is on the server, a person has to look at something.
inline constexpr int kExitNeedsReview = 3;

// A JSON string literal of `text` (UTF-8 passed through, controls escaped).
std::string JsonString(const std::string& text);
// A proto message as JSON (protobuf's mapping, field names as in .proto).
std::string ProtoJson(const google::protobuf::Message& message);

// A JSON object built key by key; values are raw JSON.
class JsonObject {
 public:
  JsonObject& Raw(const std::string& key, const std::string& json);
  JsonObject& Str(const std::string& key, const std::string& value);
  JsonObject& Num(const std::string& key, double value);
  JsonObject& Int(const std::string& key, long long value);
  JsonObject& Bool(const std::string& key, bool value);
  std::string Build() const;

 private:
  std::vector<std::pair<std::string, std::string>> entries_;
};

// A JSON array of raw JSON values.
std::string JsonArray(const std::vector<std::string>& values);

// A table printed with columns aligned by display width (CJK counts 2).
class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const;
  bool empty() const { return rows_.empty(); }

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// One CSV row as RFC 4180 has it (the export's CSV, docs/export.md): fields
// joined by commas, a field holding a comma, a double quote or a line break
// quoted with its double quotes doubled, the row ended by CRLF.
std::string CsvRow(const std::vector<std::string>& fields);

// Display width of UTF-8 text in a terminal.
size_t DisplayWidth(const std::string& text);

}  // namespace fieldsync::fieldctl
