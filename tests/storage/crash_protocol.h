// What crash_child and crash_test share: the payload of a record and the line
// the child prints for each acknowledged record.
//
//   payload  "<event_id>|<filler>"        (event ids contain no '|')
//   line     "<offset> <event_id>\n"      one per record, after Append returned OK
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace fieldsync::storage::crash {

inline std::string Payload(std::string_view event_id, std::string_view filler) {
  std::string payload(event_id);
  payload.push_back('|');
  payload.append(filler);
  return payload;
}

// The event id a payload was made with; empty if it is not such a payload.
inline std::string_view PayloadEventId(std::string_view payload) {
  size_t bar = payload.find('|');
  return bar == std::string_view::npos ? std::string_view() : payload.substr(0, bar);
}

inline std::string AckLine(uint64_t offset, std::string_view event_id) {
  std::string line = std::to_string(offset);
  line.push_back(' ');
  line.append(event_id);
  line.push_back('\n');
  return line;
}

// Parses one line without its '\n'; nullopt if malformed.
inline std::optional<std::pair<uint64_t, std::string>> ParseAckLine(std::string_view line) {
  size_t space = line.find(' ');
  if (space == std::string_view::npos || space + 1 >= line.size()) return std::nullopt;
  uint64_t offset = 0;
  const char* end = line.data() + space;
  auto [parsed_end, error] = std::from_chars(line.data(), end, offset);
  if (error != std::errc() || parsed_end != end || offset == 0) return std::nullopt;
  return std::make_pair(offset, std::string(line.substr(space + 1)));
}

}  // namespace fieldsync::storage::crash
