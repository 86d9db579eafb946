// SubscribeReactor's catch-up read step (on StreamReaders): at most
// kExaminePerStep records examined, at most one batch made, shared through
// the BatchCache by unfiltered streams.
#include <algorithm>
#include <optional>
#include <vector>

#include "server/stream_batch_cache.h"
#include "server/stream_hub.h"
#include "server/stream_reactor.h"

namespace fieldsync::server {

void SubscribeReactor::ReadStep() {
  uint64_t after;
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || finish_requested_) {
      read_in_flight_ = false;
      return;
    }
    after = covered_through_;
  }
  const uint64_t head = ctx_->store->Head();
  if (after >= head) {
    {
      absl::MutexLock lock(&mu_);
      read_in_flight_ = false;
      wants_live_ = true;
    }
    hub_->Wake();
    return;
  }
  const bool everything = filter_.kinds.empty() && filter_.prefixes.empty() && filter_.scope.all;
  const BatchCache::Key key{after, options_.batch_events, options_.batch_bytes};
  if (everything && kShareBatches) {
    if (std::optional<BatchCache::Batch> cached = cache_->Find(key)) {
      {
        absl::MutexLock lock(&mu_);
        read_in_flight_ = false;
        if (!finish_requested_ && !finished_ && covered_through_ == after) {
          ready_.push_back(Message{std::move(cached->buffer), cached->through});
          covered_through_ = cached->through;
        }
      }
      Drive();
      return;
    }
  }
  BatchBuilder batch(options_.batch_events, options_.batch_bytes);
  uint64_t through = after;
  size_t examined = 0;
  absl::Status status;
  while (through < head && examined < kExaminePerStep && !batch.Full()) {
    // Unfiltered, a read returns exactly what fits the batch (markers
    // aside); filtered, a bounded stretch of the log.
    storage::ReadLimits limits{.max_records = kReadRecords, .max_bytes = kReadBytes};
    if (everything) {
      limits.max_records = std::min(kReadRecords, options_.batch_events - batch.events());
      limits.max_bytes = std::max<size_t>(1, options_.batch_bytes - batch.event_bytes());
    }
    uint64_t read_through = through;
    absl::StatusOr<std::vector<storage::LogRecord>> records =
        ReadRecords(*ctx_->store, filter_, through, head, limits, &read_through);
    if (!records.ok()) {
      status = records.status();
      break;
    }
    bool cut = false;
    for (const storage::LogRecord& record : *records) {
      absl::StatusOr<RecordKeys> keys = stream::ScanRecord(record.payload, record.offset);
      if (!keys.ok()) {
        status = keys.status();
        break;
      }
      if (filter_.Matches(*keys)) {
        if (!batch.Fits(stream::EncodedSize(record))) {
          cut = true;  // The next step starts with this record.
          break;
        }
        batch.Add(record);
      }
      through = record.offset;
    }
    if (!status.ok()) break;
    examined += records->size();
    if (!cut) through = std::max(through, read_through);
    if (cut || records->empty()) break;
  }
  {
    absl::MutexLock lock(&mu_);
    read_in_flight_ = false;
    if (!status.ok()) {
      RequestFinishLocked(status);
    } else if (!finish_requested_ && !finished_) {
      if (batch.events() > 0) {
        const size_t bytes = batch.event_bytes();
        grpc::ByteBuffer buffer = batch.Finish(through);
        if (everything && kShareBatches) {
          cache_->Insert(key, BatchCache::Batch{buffer, through, bytes});
        }
        ready_.push_back(Message{std::move(buffer), through});
      }
      covered_through_ = std::max(covered_through_, through);
    }
  }
  Drive();
}

}  // namespace fieldsync::server
