// What a Subscribe stream wants (Filter: kinds, area prefixes, the caller's
// scope) and the records it is sent: a committed record as the hub
// dispatched it (LiveRecord, encoded once and shared by every stream it is
// queued on), and the bounded catch-up read of the log (ReadRecords).
// Internal to the stream service (server/stream_*.cc).
//
// Thread-safety: the types are values; a LiveRecord is immutable once made.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "server/service_context.h"
#include "server/stream_internal.h"
#include "storage/event_store.h"
#include "sync/event_codec.h"

namespace fieldsync::server {

// A committed record as the hub dispatched it: encoded once, shared by every
// stream it is queued on.
struct LiveRecord {
  uint64_t offset = 0;
  bool marker = false;
  int body = 0;
  std::string area_code;
  bool has_subject = false;
  int subject_kind = 0;
  std::string subject_id;
  std::string stored_event;  // stream::EncodeStoredEvent.
};
using LiveRecords = std::vector<std::shared_ptr<const LiveRecord>>;

// What one stream wants.
struct Filter {
  std::set<int> kinds;                // Body kinds; empty = all.
  std::vector<std::string> prefixes;  // Normalized area prefixes; empty = all.
  Scope scope;                        // The caller's (normalized).
  bool indexed = false;               // Catch-up reads the scope index.

  bool Matches(int body, std::string_view area_code, bool has_subject, int subject_kind,
               std::string_view subject_id) const {
    if (body == 0) return false;  // A rejection marker.
    if (!kinds.empty() && !kinds.count(body)) return false;
    if (!prefixes.empty() &&
        std::none_of(prefixes.begin(), prefixes.end(), [&](const std::string& prefix) {
          return area_code.substr(0, prefix.size()) == prefix;
        })) {
      return false;
    }
    if (scope.all) return true;
    std::string subject_key;
    if (has_subject && !scope.subject_keys.empty()) {
      subject_key = absl::StrCat(sync::SubjectKindName(static_cast<v1::SubjectKind>(subject_kind)),
                                 "/", std::string(subject_id));
    }
    return sync::Contains(scope, area_code, subject_key);
  }
  bool Matches(const RecordKeys& keys) const {
    return Matches(keys.body, keys.area_code, keys.has_subject, keys.subject_kind,
                   keys.subject_id);
  }
  bool Matches(const LiveRecord& record) const {
    return Matches(record.body, record.area_code, record.has_subject, record.subject_kind,
                   record.subject_id);
  }
};

// The LiveRecord of a stored record (markers keep only their offset).
// DATA_LOSS (from stream::ScanRecord) for a record that does not scan.
absl::StatusOr<std::shared_ptr<const LiveRecord>> ToLive(const storage::LogRecord& record);

// Records after `after` up to `head`, bounded: `*through` is the offset up
// to which everything matching `filter`'s prefixes was read.
absl::StatusOr<std::vector<storage::LogRecord>> ReadRecords(const storage::EventStore& store,
                                                            const Filter& filter, uint64_t after,
                                                            uint64_t head,
                                                            storage::ReadLimits limits,
                                                            uint64_t* through);

}  // namespace fieldsync::server
