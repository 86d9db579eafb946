#include "server/stream_service.h"

#include <grpcpp/support/proto_buffer_reader.h>
#include <pthread.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <map>
#include <set>
#include <tuple>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "base/time.h"
#include "server/open_streams.h"
#include "server/stream_readers.h"
#include "server/stream_wire.h"
#include "sync/event_codec.h"

namespace fieldsync::server {
namespace {

using stream::BatchBuilder;
using stream::RecordKeys;

// How often the hub looks at heartbeats, idle consumers and draining (real
// time). Never how live events are found: commits wake the hub.
constexpr absl::Duration kTick = absl::Milliseconds(100);
// One catch-up step examines at most this many records (read, scanned,
// matched or not) before its stream gives the reader threads to the next
// stream; one read of the log at most kReadRecords of them.
constexpr size_t kExaminePerStep = 16384;
constexpr size_t kReadRecords = 4096;
constexpr size_t kReadBytes = 4 << 20;
// Catch-up batches a stream keeps ready beyond the one on the wire.
constexpr size_t kReadAhead = 2;
// Reader threads (StreamReaders) shared by every stream.
constexpr int kReaderThreads = 2;
// Unfiltered streams share their catch-up batches (BatchCache).
constexpr bool kShareBatches = true;
// The hub keeps the records it dispatched last, so that a stream reaching
// the head takes the few records committed meanwhile from memory.
constexpr size_t kRecentRecords = 8192;
constexpr size_t kRecentBytes = 8 << 20;
// One hub pass dispatches at most this many records (then passes again).
constexpr size_t kDispatchPerPass = 16384;
// Catch-up reads through the scope index when every prefix has an indexed
// length and there are at most this many; else ReadAfter, filtered.
constexpr size_t kMaxIndexedPrefixes = 16;

constexpr uint32_t kDefaultHeartbeatMs = 10000;
constexpr uint32_t kMinHeartbeatMs = 1000;
constexpr uint32_t kMaxHeartbeatMs = 60000;
constexpr uint32_t kDefaultBatchEvents = 4096;
constexpr uint32_t kMaxBatchEvents = 8192;
constexpr uint32_t kDefaultBatchBytes = 1 << 20;
constexpr uint32_t kMinBatchBytes = 1 << 10;
constexpr uint32_t kMaxBatchBytes = 2 << 20;

// The trailing metadata of a cut stream: the offset to resume from.
constexpr char kResumeTrailer[] = "fieldsync-resume-offset";

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

// Records after `after` up to `head`, bounded: `*through` is the offset up
// to which everything matching `filter`'s prefixes was read.
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

}  // namespace

// The catch-up batches of unfiltered streams, shared: streams that read the
// same stretch of the log with the same bounds (HQ consumers replaying from
// the start together) read it once. A batch made from `after` stays right
// forever (the log is append-only), even if a later read would reach
// further. Bounded by kCacheBytes, oldest insertion out first. A leaf lock.
// Thread-safe.
class BatchCache {
 public:
  struct Key {
    uint64_t after = 0;
    size_t batch_events = 0;
    size_t batch_bytes = 0;
    bool operator<(const Key& other) const {
      return std::tie(after, batch_events, batch_bytes) <
             std::tie(other.after, other.batch_events, other.batch_bytes);
    }
  };
  struct Batch {
    grpc::ByteBuffer buffer;  // Shares its slice with every copy.
    uint64_t through = 0;
    size_t bytes = 0;
  };

  std::optional<Batch> Find(const Key& key) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = batches_.find(key);
    if (it == batches_.end()) return std::nullopt;
    return it->second;
  }

  void Insert(const Key& key, Batch batch) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (batch.bytes > kCacheBytes / 4) return;
    auto [it, inserted] = batches_.emplace(key, std::move(batch));
    if (!inserted) return;
    bytes_ += it->second.bytes;
    order_.push_back(key);
    while (bytes_ > kCacheBytes && !order_.empty()) {
      auto oldest = batches_.find(order_.front());
      bytes_ -= oldest->second.bytes;
      batches_.erase(oldest);
      order_.pop_front();
    }
  }

 private:
  static constexpr size_t kCacheBytes = 32 << 20;
  absl::Mutex mu_;
  std::map<Key, Batch> batches_ ABSL_GUARDED_BY(mu_);
  std::deque<Key> order_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

class SubscribeReactor;

// The hub: the registry of streams, the one reader of newly committed records
// for live streams (woken by the store's head listener, which the committer
// calls after every group), and the ticker of heartbeats, idle consumers and
// draining. It never holds mu_ across a store read: a pass takes a snapshot
// of the streams (each held), reads, then hands records to each stream under
// that stream's own lock. Lock order: mu_ before a reactor's; wake_mu_ is a
// leaf.
class StreamHub {
 public:
  explicit StreamHub(const ServiceContext* ctx);
  ~StreamHub();

  // Registers a stream, first cutting the streams whose consumer has not
  // read for limits.stream_idle_timeout_ms (their slots come back at once).
  // RESOURCE_EXHAUSTED, registering nothing, when the server holds
  // limits.max_concurrent_streams streams or the stream's user holds
  // limits.max_streams_per_user. Streams that are ending hold no slot.
  absl::Status TryAdd(SubscribeReactor* reactor) ABSL_LOCKS_EXCLUDED(mu_);
  // Unregisters it (a no-op if it is not registered); the hub never touches
  // it afterwards.
  void Remove(SubscribeReactor* reactor) ABSL_LOCKS_EXCLUDED(mu_);
  // Wakes the hub thread. Never blocks for long: callable from the
  // committer thread and under a reactor's lock.
  void Wake() ABSL_LOCKS_EXCLUDED(wake_mu_);
  size_t connected() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop();
  // One pass: dispatch new records, move streams to live, tick. True if
  // records are left to dispatch.
  bool Pass() ABSL_LOCKS_EXCLUDED(mu_);

  const ServiceContext* ctx_;
  mutable absl::Mutex mu_;
  std::set<SubscribeReactor*> reactors_ ABSL_GUARDED_BY(mu_);
  // Every record up to here was offered to the live streams. Only the hub
  // thread moves it.
  uint64_t dispatched_ ABSL_GUARDED_BY(mu_) = 0;
  // The records in (recent_from_, dispatched_], markers included.
  std::deque<std::shared_ptr<const LiveRecord>> recent_ ABSL_GUARDED_BY(mu_);
  size_t recent_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t recent_from_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex wake_mu_;
  bool woken_ ABSL_GUARDED_BY(wake_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(wake_mu_) = false;

  uint64_t listener_id_ = 0;
  std::thread thread_;
};

// One Subscribe call. Every gRPC operation (StartWrite, Finish) is issued by
// Drive outside the lock, by one thread at a time; at most one write is in
// flight and at most one catch-up read is queued or running on the readers.
// The reactor is deleted when gRPC is done with it (OnDone) and no thread
// holds it (Hold/Release), so the hub and the readers can drive it outside
// their locks.
//
// Catch-up: a read step (on StreamReaders) examines at most kExaminePerStep
// records and leaves one batch in ready_; Drive writes ready_'s front when
// the previous write is done (OnWriteDone) and asks for the next step while
// fewer than kReadAhead batches are ready, so the log is read while the
// previous batch is on the wire. A step that reaches the head asks the hub
// to go live. Live: the hub queues matching records in pending_ (bounded by
// limits.subscriber_buffer_bytes), Drive batches them.
class SubscribeReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  struct Options {
    absl::Duration heartbeat;
    size_t batch_events = kDefaultBatchEvents;
    size_t batch_bytes = kDefaultBatchBytes;
  };

  SubscribeReactor(StreamHub* hub, StreamReaders* readers, BatchCache* cache,
                   const ServiceContext* ctx, grpc::CallbackServerContext* call,
                   Admission admission, Filter filter, uint64_t from_offset, Options options)
      : hub_(hub),
        readers_(readers),
        cache_(cache),
        ctx_(ctx),
        call_(call),
        user_id_(admission.principal->user_id()),
        admission_(std::move(admission)),
        filter_(std::move(filter)),
        options_(options),
        buffer_limit_(ctx->settings.subscriber_buffer_bytes),
        covered_through_(from_offset),
        sent_through_(from_offset),
        last_activity_(ctx->clock()) {}

  // Issues what is due: the next write, the end of the call, the next
  // catch-up read. Callers make sure the reactor is alive: from a reaction,
  // from the handler before it returns, or with a Hold.
  void Drive() ABSL_LOCKS_EXCLUDED(mu_) {
    while (true) {
      Action action;
      {
        absl::MutexLock lock(&mu_);
        if (issuing_) return;  // The issuing thread looks again when done.
        action = Next();
        if (action.read) ++holds_;
        if (!action.finish && !action.write) {
          if (!action.read) return;
        } else {
          issuing_ = true;
        }
      }
      if (action.read) {
        readers_->Submit([this] {
          ReadStep();
          Release();
        });
      }
      if (!action.finish && !action.write) return;
      if (action.finish) {
        if (action.resume_offset) {
          call_->AddTrailingMetadata(kResumeTrailer, absl::StrCat(*action.resume_offset));
        }
        Finish(action.status);
      } else {
        StartWrite(&current_);
      }
      absl::MutexLock lock(&mu_);
      issuing_ = false;
    }
  }

  // Ends the call with `status` (at the next Drive).
  void RequestFinish(const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    RequestFinishLocked(status);
  }

  // Ends the stream when the caller's device is revoked or its user
  // disabled (server/open_streams.h). Set once, before the first Drive.
  void Register(OpenStreams::Registration registration) { registration_ = std::move(registration); }

  const std::string& user_id() const { return user_id_; }

  void Hold() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    ++holds_;
  }
  void Release() ABSL_LOCKS_EXCLUDED(mu_) {
    bool remove;
    {
      absl::MutexLock lock(&mu_);
      --holds_;
      remove = done_ && holds_ == 0;
    }
    if (remove) delete this;
  }

  // --- Hub side ---

  // The offset through which this stream has read the log, if it asks to go
  // live (a catch-up step reached the head).
  std::optional<uint64_t> WantsLive() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (!wants_live_ || finished_ || finish_requested_) return std::nullopt;
    return covered_through_;
  }

  // The hub no longer holds the records after WantsLive's offset: catch up
  // further from the log (the next Drive reads).
  void KeepCatchingUp() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    wants_live_ = false;
  }

  // Live from here: `gap` (records after WantsLive's offset, up to
  // `through`) in batches, the caught_up marker, then what Offer brings.
  void GoLive(const LiveRecords& gap, uint64_t through) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    wants_live_ = false;
    live_ = true;
    QueueLocked(gap, through);
    if (finish_requested_) return;
    // The gap goes out before the marker.
    while (!pending_.empty()) ready_.push_back(BatchFromPendingLocked());
    v1::SubscribeResponse caught_up;
    caught_up.mutable_caught_up()->set_head_offset(covered_through_);
    ready_.push_back(Message{stream::SerializeToBuffer(caught_up), covered_through_});
  }

  bool live() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return live_ && !finished_ && !finish_requested_;
  }

  // Whether the stream holds a slot of the limits: not once it is ending.
  bool HoldsSlot() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return !finished_ && !finish_requested_;
  }

  // Cuts the stream (at the next Drive) if a message has waited for the
  // consumer for `idle` or longer: a write completes only as the consumer
  // reads (HTTP/2 flow control), so a write in flight that long means the
  // consumer stopped reading. A stream already ending after its write in
  // flight (a too-slow consumer, QueueLocked) whose write has waited that
  // long finishes now instead of waiting for a write that may never
  // complete (and is cancelled as long again later, CancelIfFinishStuck).
  // True if it was cut now.
  //
  // Nothing else shows a stopped consumer: with no write in flight (the
  // reader still making the next batch, a live stream with nothing to send)
  // every message so far was taken, and a client library that holds
  // megabytes in its HTTP/2 windows (grown by its BDP estimate) takes them
  // without its application reading. Such a stream is cut once a write
  // waits for it (docs/stream.md).
  bool CutIfStalled(absl::Time now, absl::Duration idle) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (finished_ || !write_in_flight_ || now - write_started_ < idle) return false;
    if (finish_requested_) {
      if (!finish_after_write_) return false;  // Finish is issued at the next Drive.
      // The status follows the write in flight, so the offset it names
      // (everything through that write) stays right if it ever arrives.
      finish_after_write_ = false;
      return true;
    }
    // Finished at once, the write still in flight: the consumer may never
    // take it. It may still arrive, so the consumer resumes from the larger
    // of this offset and its last one.
    RequestFinishLocked(
        absl::ResourceExhaustedError(absl::StrCat(
            "the consumer has not read for ", absl::FormatDuration(now - write_started_),
            " (limits.stream_idle_timeout_ms=", absl::ToInt64Milliseconds(idle),
            "): the stream is closed to free its slot; resubscribe with from_offset = ",
            sent_through_, " or the offset of the last event received if larger (the server "
            "sent everything through ",
            sent_through_, ")")),
        sent_through_, /*after_write=*/false);
    return true;
  }

  // A finished call whose status has not reached the consumer after
  // `grace` (it reads nothing, so nothing gets through) is cancelled, so
  // that gRPC lets go of it. Call with a Hold, outside every lock.
  void CancelIfFinishStuck(absl::Time now, absl::Duration grace) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (!finished_ || cancel_sent_ || now - finished_at_ < grace) return;
      cancel_sent_ = true;
    }
    call_->TryCancel();
  }

  // Newly committed records, up to `through` (live streams only).
  void Offer(const LiveRecords& records, uint64_t through) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    QueueLocked(records, through);
  }

  // --- gRPC reactions ---

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      if (ok) {
        sent_through_ = std::max(sent_through_, sending_through_);
      } else {
        RequestFinishLocked(absl::CancelledError("the stream broke"), std::nullopt, false);
      }
    }
    Drive();
  }

  void OnCancel() override {
    RequestFinish(absl::CancelledError("the consumer cancelled the stream"));
    Drive();
  }

  void OnDone() override {
    // Waits for an end of the registry in progress; none comes afterwards.
    registration_.Reset();
    hub_->Remove(this);
    ctx_->guard->Release(admission_);
    bool remove;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      remove = holds_ == 0;
    }
    if (remove) delete this;
  }

 private:
  // A message ready to be written.
  struct Message {
    grpc::ByteBuffer buffer;
    uint64_t through = 0;  // Everything matching up to here is sent once this is.
  };

  // What Drive does next.
  struct Action {
    bool write = false;
    bool finish = false;
    bool read = false;
    grpc::Status status;
    std::optional<uint64_t> resume_offset;
  };

  void RequestFinishLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    RequestFinishLocked(status, std::nullopt, false);
  }
  // `resume`: the offset named in the trailer. `after_write`: the write in
  // flight completes first (so that `resume` is exactly what was sent).
  void RequestFinishLocked(const absl::Status& status, std::optional<uint64_t> resume,
                           bool after_write) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || finish_requested_) return;
    finish_requested_ = true;
    finish_after_write_ = after_write;
    finish_status_ = ToGrpc(status);
    resume_offset_ = resume;
    ready_.clear();
    pending_.clear();
    pending_bytes_ = 0;
  }

  // Queues the matching records after covered_through_; cuts the stream if
  // its queue outgrows limits.subscriber_buffer_bytes.
  void QueueLocked(const LiveRecords& records, uint64_t through)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || finish_requested_) return;
    for (const std::shared_ptr<const LiveRecord>& record : records) {
      if (record->offset <= covered_through_ || record->marker || !filter_.Matches(*record)) {
        continue;
      }
      pending_.push_back(record);
      pending_bytes_ += record->stored_event.size();
    }
    covered_through_ = std::max(covered_through_, through);
    if (pending_bytes_ > buffer_limit_) {
      // Everything up to the write in flight (if any) reaches the consumer
      // before the status, nothing after it: resuming from `resume` loses
      // nothing and repeats nothing.
      const uint64_t resume = write_in_flight_ ? sending_through_ : sent_through_;
      RequestFinishLocked(
          absl::ResourceExhaustedError(absl::StrCat(
              "the consumer is too slow: ", pending_bytes_,
              " bytes of events wait for it, over limits.subscriber_buffer_bytes=", buffer_limit_,
              "; resubscribe with from_offset = ", resume,
              " (the server sent everything through ", resume, ")")),
          resume, /*after_write=*/true);
    }
  }

  // A batch of pending_'s front, within the batch bounds.
  Message BatchFromPendingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    BatchBuilder batch(options_.batch_events, options_.batch_bytes);
    uint64_t through = 0;
    while (!pending_.empty() && batch.Fits(pending_.front()->stored_event.size())) {
      const LiveRecord& record = *pending_.front();
      batch.AddEncoded(record.stored_event);
      through = record.offset;
      pending_bytes_ -= record.stored_event.size();
      pending_.pop_front();
    }
    if (pending_.empty()) through = std::max(through, covered_through_);
    return Message{batch.Finish(through), through};
  }

  // What Drive issues next.
  Action Next() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Action action;
    if (finished_) return action;
    if (finish_requested_) {
      if (finish_after_write_ && write_in_flight_) return action;  // OnWriteDone drives.
      finished_ = true;
      finished_at_ = ctx_->clock();
      action.finish = true;
      action.status = finish_status_;
      action.resume_offset = resume_offset_;
      return action;
    }
    if (!live_ && !wants_live_ && !read_in_flight_ && ready_.size() < kReadAhead) {
      read_in_flight_ = true;
      action.read = true;
    }
    if (write_in_flight_) return action;
    const absl::Time now = ctx_->clock();
    if (!ready_.empty()) {
      current_ = std::move(ready_.front().buffer);
      sending_through_ = ready_.front().through;
      ready_.pop_front();
    } else if (live_ && !pending_.empty()) {
      Message message = BatchFromPendingLocked();
      current_ = std::move(message.buffer);
      sending_through_ = message.through;
    } else if (now - last_activity_ >= heartbeat()) {
      // Nothing ready, nothing queued, nothing in flight: everything
      // matching up to covered_through_ is sent (in catch-up too).
      v1::SubscribeResponse beat;
      beat.mutable_heartbeat()->set_head_offset(covered_through_);
      *beat.mutable_heartbeat()->mutable_server_time() = base::ToTimestamp(now);
      current_ = stream::SerializeToBuffer(beat);
      sending_through_ = covered_through_;
    } else {
      return action;
    }
    action.write = true;
    write_in_flight_ = true;
    write_started_ = now;
    last_activity_ = now;
    return action;
  }

  absl::Duration heartbeat() const { return options_.heartbeat; }

  // One catch-up step, on a reader thread: at most kExaminePerStep records
  // examined, at most one batch made.
  void ReadStep() ABSL_LOCKS_EXCLUDED(mu_) {
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

  StreamHub* const hub_;
  StreamReaders* const readers_;
  BatchCache* const cache_;
  const ServiceContext* const ctx_;
  grpc::CallbackServerContext* const call_;
  const std::string user_id_;
  Admission admission_;
  OpenStreams::Registration registration_;
  const Filter filter_;
  const Options options_;
  const size_t buffer_limit_;

  absl::Mutex mu_;
  bool issuing_ ABSL_GUARDED_BY(mu_) = false;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool read_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool wants_live_ ABSL_GUARDED_BY(mu_) = false;
  bool live_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_after_write_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  int holds_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
  std::optional<uint64_t> resume_offset_ ABSL_GUARDED_BY(mu_);
  // Catch-up batches (and, on going live, the gap and the marker), in order.
  std::deque<Message> ready_ ABSL_GUARDED_BY(mu_);
  // Live records waiting for a batch.
  std::deque<std::shared_ptr<const LiveRecord>> pending_ ABSL_GUARDED_BY(mu_);
  size_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Every matching record up to here is ready, pending or sent.
  uint64_t covered_through_ ABSL_GUARDED_BY(mu_);
  // Every matching record up to here is written.
  uint64_t sent_through_ ABSL_GUARDED_BY(mu_);
  uint64_t sending_through_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_activity_ ABSL_GUARDED_BY(mu_);
  // When the write in flight started (meaningful while write_in_flight_).
  absl::Time write_started_ ABSL_GUARDED_BY(mu_);
  // When Finish was issued (meaningful once finished_).
  absl::Time finished_at_ ABSL_GUARDED_BY(mu_);
  bool cancel_sent_ ABSL_GUARDED_BY(mu_) = false;
  // The message being written; untouched while a write is in flight.
  grpc::ByteBuffer current_;
};

// --- StreamHub ---------------------------------------------------------------------------

StreamHub::StreamHub(const ServiceContext* ctx) : ctx_(ctx) {
  {
    absl::MutexLock lock(&mu_);
    dispatched_ = ctx_->store->Head();
    recent_from_ = dispatched_;
  }
  listener_id_ = ctx_->store->AddHeadListener([this](uint64_t) { Wake(); });
  thread_ = std::thread([this] { Loop(); });
}

StreamHub::~StreamHub() {
  ctx_->store->RemoveHeadListener(listener_id_);
  {
    absl::MutexLock lock(&wake_mu_);
    stopping_ = true;
  }
  thread_.join();
}

absl::Status StreamHub::TryAdd(SubscribeReactor* reactor) {
  const absl::Time now = ctx_->clock();
  std::vector<SubscribeReactor*> cut;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    size_t open = 0;
    size_t of_user = 0;
    for (SubscribeReactor* other : reactors_) {
      if (other->CutIfStalled(now, ctx_->settings.stream_idle_timeout)) {
        other->Hold();
        cut.push_back(other);
        continue;
      }
      if (!other->HoldsSlot()) continue;
      ++open;
      if (other->user_id() == reactor->user_id()) ++of_user;
    }
    if (open >= ctx_->settings.max_concurrent_streams) {
      status = absl::ResourceExhaustedError(
          absl::StrCat("limits.max_concurrent_streams=", ctx_->settings.max_concurrent_streams,
                       " streams are open; retry later"));
    } else if (of_user >= ctx_->settings.max_streams_per_user) {
      status = absl::ResourceExhaustedError(
          absl::StrCat("user ", reactor->user_id(), " has ", of_user,
                       " Subscribe streams open, its share limits.max_streams_per_user=",
                       ctx_->settings.max_streams_per_user, "; close one or retry later"));
    } else {
      reactors_.insert(reactor);
    }
  }
  for (SubscribeReactor* other : cut) {
    other->Drive();
    other->Release();
  }
  return status;
}

void StreamHub::Remove(SubscribeReactor* reactor) {
  absl::MutexLock lock(&mu_);
  reactors_.erase(reactor);
}

void StreamHub::Wake() {
  absl::MutexLock lock(&wake_mu_);
  woken_ = true;
}

size_t StreamHub::connected() const {
  absl::MutexLock lock(&mu_);
  return reactors_.size();
}

void StreamHub::Loop() {
  pthread_setname_np(pthread_self(), "stream-hub");  // For top -H and perf.
  bool more = false;
  while (true) {
    {
      absl::MutexLock lock(&wake_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(wake_mu_) { return woken_ || stopping_; };
      // Waits for a commit (the head listener), a stream asking to go live
      // or ending, or the tick; never to find new records.
      if (!more) wake_mu_.AwaitWithTimeout(absl::Condition(&ready), kTick);
      if (stopping_) return;
      woken_ = false;
    }
    more = Pass();
  }
}

bool StreamHub::Pass() {
  // A snapshot of the streams, each held: from here on no hub lock is held
  // across a store read.
  std::vector<SubscribeReactor*> streams;
  uint64_t after;
  {
    absl::MutexLock lock(&mu_);
    for (SubscribeReactor* reactor : reactors_) {
      reactor->Hold();
      streams.push_back(reactor);
    }
    after = dispatched_;
  }
  const uint64_t head = ctx_->store->Head();
  bool more = false;

  // 1. Dispatch what was committed since the last pass, reading each record
  // once: offered to the live streams, kept in recent_ for streams about to
  // go live. Nobody subscribed: nothing to read.
  if (streams.empty()) {
    absl::MutexLock lock(&mu_);
    dispatched_ = head;
    recent_.clear();
    recent_bytes_ = 0;
    recent_from_ = head;
  }
  size_t dispatched = 0;
  while (!streams.empty() && after < head) {
    if (dispatched >= kDispatchPerPass) {
      more = true;  // Ticks and go-lives are due too; the next pass goes on.
      break;
    }
    const storage::ReadLimits limits{.max_records = kReadRecords, .max_bytes = kReadBytes};
    absl::StatusOr<std::vector<storage::LogRecord>> records = ctx_->store->ReadAfter(after, limits);
    LiveRecords live;
    absl::Status status = records.status();
    if (records.ok()) {
      for (const storage::LogRecord& record : *records) {
        if (record.offset > head) break;
        absl::StatusOr<std::shared_ptr<const LiveRecord>> one = ToLive(record);
        if (!one.ok()) {
          status = one.status();
          break;
        }
        live.push_back(*std::move(one));
      }
    }
    if (!status.ok()) {
      // The log cannot be read: end the live streams (they may resume).
      for (SubscribeReactor* reactor : streams) {
        if (reactor->live()) reactor->RequestFinish(status);
      }
      break;
    }
    const uint64_t through = live.empty() ? head : live.back()->offset;
    for (SubscribeReactor* reactor : streams) {
      if (reactor->live()) reactor->Offer(live, through);
    }
    dispatched += live.size();
    absl::MutexLock lock(&mu_);
    for (std::shared_ptr<const LiveRecord>& record : live) {
      recent_bytes_ += record->stored_event.size();
      recent_.push_back(std::move(record));
    }
    while (recent_.size() > kRecentRecords || recent_bytes_ > kRecentBytes) {
      recent_bytes_ -= recent_.front()->stored_event.size();
      recent_from_ = recent_.front()->offset;
      recent_.pop_front();
    }
    if (recent_.empty()) recent_from_ = through;
    dispatched_ = through;
    after = through;
  }

  // 2. Streams that reached the head go live: the records between where
  // their catch-up ended and dispatched_ (from recent_) first, then the
  // marker. One that fell behind recent_ catches up further from the log.
  for (SubscribeReactor* reactor : streams) {
    std::optional<uint64_t> read_through = reactor->WantsLive();
    if (!read_through) continue;
    LiveRecords gap;
    uint64_t through;
    bool in_memory;
    {
      absl::MutexLock lock(&mu_);
      in_memory = *read_through >= recent_from_;
      through = std::max(dispatched_, *read_through);
      if (in_memory) {
        for (const std::shared_ptr<const LiveRecord>& record : recent_) {
          if (record->offset > *read_through) gap.push_back(record);
        }
      }
    }
    if (in_memory) {
      reactor->GoLive(gap, through);
    } else {
      reactor->KeepCatchingUp();
    }
  }

  // 3. A consumer that stopped reading is cut; draining ends every stream;
  // streams may owe a heartbeat.
  const bool draining = ctx_->state != nullptr && ctx_->state->draining();
  const absl::Time now = ctx_->clock();
  const absl::Duration idle = ctx_->settings.stream_idle_timeout;
  for (SubscribeReactor* reactor : streams) {
    reactor->CutIfStalled(now, idle);
    if (draining) {
      reactor->RequestFinish(absl::UnavailableError(
          "the server is shutting down: resubscribe from the offset of the last event received"));
    }
    reactor->Drive();
    reactor->CancelIfFinishStuck(now, idle);
    reactor->Release();
  }
  return more;
}

// --- StreamServiceImpl -----------------------------------------------------------------

StreamServiceImpl::StreamServiceImpl(const ServiceContext* context)
    : ctx_(context),
      hub_(std::make_unique<StreamHub>(context)),
      readers_(std::make_unique<StreamReaders>(kReaderThreads)),
      cache_(std::make_unique<BatchCache>()) {}

StreamServiceImpl::~StreamServiceImpl() {
  // The readers first: their queued steps hold streams and wake the hub.
  readers_.reset();
  hub_.reset();
}

size_t StreamServiceImpl::subscribers() const { return hub_->connected(); }

grpc::ServerWriteReactor<grpc::ByteBuffer>* StreamServiceImpl::Subscribe(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw_request) {
  const std::string& path = FIELDSYNC_METHOD_PATH(StreamService, Subscribe);
  Admission admission = ctx_->guard->Admit(context, path);
  Filter filter;
  v1::SubscribeRequest request_message;
  const v1::SubscribeRequest* request = &request_message;
  absl::Status status = admission.status;
  if (status.ok()) {
    grpc::ByteBuffer copy(*raw_request);
    grpc::ProtoBufferReader reader(&copy);
    if (!request_message.ParseFromZeroCopyStream(&reader)) {
      status = absl::InvalidArgumentError("the SubscribeRequest does not parse");
    }
  }
  if (status.ok()) {
    status = [&]() -> absl::Status {
      for (int kind : request->kinds()) {
        if (!v1::EventKind_IsValid(kind) || kind == v1::EVENT_KIND_UNSPECIFIED) {
          return absl::InvalidArgumentError(absl::StrCat("kinds: ", kind, " is not an EventKind"));
        }
        filter.kinds.insert(kind);
      }
      const Scope& scope = *admission.scope;
      Scope wanted;
      for (const std::string& prefix : request->scope_prefixes()) {
        RETURN_IF_ERROR(ValidatePrefix("scope_prefixes", prefix, false));
        if (!sync::CoversPrefix(scope, prefix)) {
          return OutOfScope(*admission.principal, absl::StrCat("scope prefix ", prefix));
        }
        wanted.area_prefixes.push_back(prefix);
      }
      filter.prefixes = sync::Normalize(wanted).area_prefixes;
      filter.scope = sync::Normalize(scope);
      filter.indexed =
          !filter.prefixes.empty() && filter.prefixes.size() <= kMaxIndexedPrefixes &&
          std::all_of(filter.prefixes.begin(), filter.prefixes.end(), [](const std::string& p) {
            return p.size() == 6 || p.size() == 9 || p.size() == 12;
          });
      const uint64_t head = ctx_->store->Head();
      if (request->from_offset() > head) {
        return absl::OutOfRangeError(absl::StrCat(
            "from_offset ", request->from_offset(), " is past the log head ", head,
            " (a consumer of another or a restored server): resubscribe from at most ", head));
      }
      return absl::OkStatus();
    }();
  }
  if (!status.ok()) {
    return new FinishedWriter<grpc::ByteBuffer>(ctx_->guard, std::move(admission), status);
  }
  uint32_t heartbeat_ms = request->heartbeat_interval_ms() == 0 ? kDefaultHeartbeatMs
                                                                : request->heartbeat_interval_ms();
  heartbeat_ms = std::clamp(heartbeat_ms, kMinHeartbeatMs, kMaxHeartbeatMs);
  SubscribeReactor::Options options;
  options.heartbeat = absl::Milliseconds(heartbeat_ms);
  options.batch_events =
      request->max_batch_events() == 0
          ? kDefaultBatchEvents
          : std::clamp<uint32_t>(request->max_batch_events(), 1, kMaxBatchEvents);
  options.batch_bytes =
      request->max_batch_bytes() == 0
          ? kDefaultBatchBytes
          : std::clamp<uint32_t>(request->max_batch_bytes(), kMinBatchBytes, kMaxBatchBytes);
  const Principal principal = *admission.principal;
  auto* reactor = new SubscribeReactor(hub_.get(), readers_.get(), cache_.get(), ctx_, context,
                                       std::move(admission), std::move(filter),
                                       request->from_offset(), options);
  // Registered first, checked second: a revocation that committed since the
  // guard admitted the call is seen by the check, a later one by the registry.
  StreamHub* hub = hub_.get();
  reactor->Register(ctx_->identity->open_streams().Register(
      principal.user_id(), principal.device_id(), [reactor, hub](const absl::Status& why) {
        reactor->RequestFinish(why);
        hub->Wake();
      }));
  if (absl::Status still = ctx_->identity->Recheck(principal); !still.ok()) {
    reactor->RequestFinish(still);
  } else if (absl::Status added = hub_->TryAdd(reactor); !added.ok()) {
    reactor->RequestFinish(added);
  }
  reactor->Drive();
  return reactor;
}

}  // namespace fieldsync::server
