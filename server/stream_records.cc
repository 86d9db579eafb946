#include "server/stream_records.h"

#include "base/status_macros.h"

namespace fieldsync::server {

absl::StatusOr<std::shared_ptr<const LiveRecord>> ToLive(const storage::LogRecord& record) {
  ASSIGN_OR_RETURN(RecordKeys keys, stream::ScanRecord(record.payload, record.offset));
  auto live = std::make_shared<LiveRecord>();
  live->offset = record.offset;
  live->marker = keys.body == 0;
  live->body = keys.body;
  if (!live->marker) {
    live->area_code = std::string(keys.area_code);
    live->has_subject = keys.has_subject;
    live->subject_kind = keys.subject_kind;
    live->subject_id = std::string(keys.subject_id);
    live->stored_event = stream::EncodeStoredEvent(record);
  }
  return std::shared_ptr<const LiveRecord>(std::move(live));
}

absl::StatusOr<std::vector<storage::LogRecord>> ReadRecords(const storage::EventStore& store,
                                                            const Filter& filter, uint64_t after,
                                                            uint64_t head,
                                                            storage::ReadLimits limits,
                                                            uint64_t* through) {
  std::vector<storage::LogRecord> out;
  if (!filter.indexed) {
    ASSIGN_OR_RETURN(out, store.ReadAfter(after, limits));
    while (!out.empty() && out.back().offset > head) out.pop_back();
    *through = out.empty() ? head : out.back().offset;
    return out;
  }
  // One read per prefix; everything up to the smallest bound of a read that
  // may have been cut short is complete (the prefixes are disjoint).
  uint64_t bound = head;
  std::vector<std::vector<storage::LogRecord>> reads;
  for (const std::string& prefix : filter.prefixes) {
    ASSIGN_OR_RETURN(std::vector<storage::LogRecord> records,
                     store.ReadScope(prefix, after, limits));
    if (!records.empty()) bound = std::min(bound, records.back().offset);
    reads.push_back(std::move(records));
  }
  for (std::vector<storage::LogRecord>& records : reads) {
    for (storage::LogRecord& record : records) {
      if (record.offset <= bound) out.push_back(std::move(record));
    }
  }
  std::sort(out.begin(), out.end(), [](const storage::LogRecord& a, const storage::LogRecord& b) {
    return a.offset < b.offset;
  });
  *through = bound;
  return out;
}

}  // namespace fieldsync::server
