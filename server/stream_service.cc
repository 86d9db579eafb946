#include "server/stream_service.h"

#include <algorithm>
#include <deque>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "base/time.h"
#include "server/open_streams.h"
#include "sync/event_codec.h"

namespace fieldsync::server {
namespace {

// How often the hub looks at heartbeats and draining (real time).
constexpr absl::Duration kTick = absl::Milliseconds(100);
// One catch-up or dispatch read: at most this many records and bytes.
constexpr size_t kReadRecords = 512;
constexpr size_t kReadBytes = 4 << 20;
// Catch-up reads through the scope index when every prefix has an indexed
// length and there are at most this many; else one ReadAfter, filtered.
constexpr size_t kMaxIndexedPrefixes = 16;

constexpr uint32_t kDefaultHeartbeatMs = 10000;
constexpr uint32_t kMinHeartbeatMs = 1000;
constexpr uint32_t kMaxHeartbeatMs = 60000;

// A decoded log record, shared by every reactor it is queued on.
struct Item {
  std::shared_ptr<const v1::StoredEvent> event;
  uint64_t offset = 0;
  size_t bytes = 0;
};

// What one stream wants.
struct Filter {
  std::set<int> kinds;                // Body kinds; empty = all.
  std::vector<std::string> prefixes;  // Normalized area prefixes; empty = all.
  Scope scope;                        // The caller's (normalized).
  bool indexed = false;               // Catch-up reads the scope index.

  bool Matches(const v1::StoredEvent& stored) const {
    const v1::Event& event = stored.event();
    if (!kinds.empty() && !kinds.count(static_cast<int>(event.body_case()))) return false;
    if (!prefixes.empty() &&
        std::none_of(prefixes.begin(), prefixes.end(), [&](const std::string& prefix) {
          return event.area_code().compare(0, prefix.size(), prefix) == 0;
        })) {
      return false;
    }
    return sync::Contains(scope, event.area_code(),
                          event.has_subject() ? sync::SubjectKey(event.subject()) : "");
  }
};

// Decodes records into items, rejection markers left out.
absl::StatusOr<std::vector<Item>> Decode(const std::vector<storage::LogRecord>& records) {
  std::vector<Item> items;
  items.reserve(records.size());
  for (const storage::LogRecord& record : records) {
    ASSIGN_OR_RETURN(v1::StoredEvent stored, sync::DecodeRecord(record));
    if (sync::IsRejectionMarker(stored)) continue;
    items.push_back(Item{std::make_shared<const v1::StoredEvent>(std::move(stored)), record.offset,
                         record.payload.size()});
  }
  return items;
}

// Records after `after` up to `head`, bounded: `*through` is the offset up
// to which everything matching `filter`'s prefixes was read.
absl::StatusOr<std::vector<storage::LogRecord>> ReadBatch(const storage::EventStore& store,
                                                          const Filter& filter, uint64_t after,
                                                          uint64_t head, storage::ReadLimits limits,
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

class SubscribeReactor;

// The hub: the registry of streams, the one reader of newly committed records
// for live streams, and the ticker of heartbeats and draining. Lock order:
// the hub's mu_ before a reactor's; wake_mu_ is a leaf.
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
  // One pass: dispatch new records, move streams to live, tick.
  void Pass() ABSL_LOCKS_EXCLUDED(mu_);

  const ServiceContext* ctx_;
  mutable absl::Mutex mu_;
  std::set<SubscribeReactor*> reactors_ ABSL_GUARDED_BY(mu_);
  // Every record up to here was offered to the live streams.
  uint64_t dispatched_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex wake_mu_;
  bool woken_ ABSL_GUARDED_BY(wake_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(wake_mu_) = false;

  uint64_t listener_id_ = 0;
  std::thread thread_;
};

// One Subscribe call. Every gRPC operation (StartWrite, Finish) is issued by
// Drive outside the lock, by one thread at a time; at most one write is in
// flight. The reactor is deleted when gRPC is done with it (OnDone) and no
// thread holds it (Hold/Release), so the hub can drive it outside its lock.
class SubscribeReactor final : public grpc::ServerWriteReactor<v1::SubscribeResponse> {
 public:
  SubscribeReactor(StreamHub* hub, const ServiceContext* ctx, grpc::CallbackServerContext* call,
                   Admission admission, Filter filter, uint64_t from_offset,
                   absl::Duration heartbeat)
      : hub_(hub),
        ctx_(ctx),
        call_(call),
        user_id_(admission.principal->user_id()),
        admission_(std::move(admission)),
        filter_(std::move(filter)),
        heartbeat_(heartbeat),
        buffer_limit_(ctx->settings.subscriber_buffer_bytes),
        covered_through_(from_offset),
        sent_through_(from_offset),
        last_activity_(ctx->clock()) {}

  // Issues what is due: the next write, or the end of the call. Callers make
  // sure the reactor is alive: from a reaction, from the handler before it
  // returns, or with a Hold.
  void Drive() ABSL_LOCKS_EXCLUDED(mu_) {
    while (true) {
      bool finish = false;
      grpc::Status status;
      {
        absl::MutexLock lock(&mu_);
        if (issuing_) return;  // The issuing thread looks again when done.
        if (!Next(&finish, &status)) return;
        issuing_ = true;
      }
      if (finish) {
        Finish(status);
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

  // --- Hub side, under the hub's lock ---

  // The offset through which this stream has read the log, if it asks to go
  // live (it reached the head).
  std::optional<uint64_t> WantsLive() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (!wants_live_ || finished_ || finish_requested_) return std::nullopt;
    return covered_through_;
  }

  // Live from here: `gap` (records after WantsLive's offset, up to
  // `through`), the caught_up marker, then what Offer brings.
  void GoLive(const std::vector<Item>& gap, uint64_t through) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    wants_live_ = false;
    live_ = true;
    QueueLocked(gap, through);
    if (finish_requested_) return;
    Pending caught_up;
    caught_up.caught_up = true;
    caught_up.through = covered_through_;
    pending_.push_back(std::move(caught_up));
  }

  bool live() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return live_;
  }

  // Whether the stream holds a slot of the limits: not once it is ending.
  bool HoldsSlot() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return !finished_ && !finish_requested_;
  }

  // Cuts the stream (at the next Drive) if a message has waited for the
  // consumer for `idle` or longer: a write completes only as the consumer
  // reads (HTTP/2 flow control), so a write in flight that long means the
  // consumer stopped reading. True if it was cut now.
  bool CutIfStalled(absl::Time now, absl::Duration idle) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (finished_ || finish_requested_ || !write_in_flight_ || now - write_started_ < idle) {
      return false;
    }
    RequestFinishLocked(absl::ResourceExhaustedError(absl::StrCat(
        "the consumer has not read for ", absl::FormatDuration(now - write_started_),
        " (limits.stream_idle_timeout_ms=", absl::ToInt64Milliseconds(idle),
        "): the stream is closed to free its slot; resubscribe with from_offset = the offset of "
        "the last event received (the server sent everything through ",
        sent_through_, ")")));
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
  void Offer(const std::vector<Item>& items, uint64_t through) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    QueueLocked(items, through);
  }

  // --- gRPC reactions ---

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      if (ok) {
        sent_through_ = std::max(sent_through_, sending_through_);
      } else {
        RequestFinishLocked(absl::CancelledError("the stream broke"));
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
  // A message waiting to be written.
  struct Pending {
    std::shared_ptr<const v1::StoredEvent> event;  // Unless caught_up.
    bool caught_up = false;
    uint64_t through = 0;  // Everything matching up to here is sent once this is.
    size_t bytes = 0;
  };

  void RequestFinishLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || finish_requested_) return;
    finish_requested_ = true;
    finish_status_ = ToGrpc(status);
    pending_.clear();
    pending_bytes_ = 0;
  }

  // Queues the matching items after covered_through_; cuts the stream if
  // its queue outgrows limits.subscriber_buffer_bytes.
  void QueueLocked(const std::vector<Item>& items, uint64_t through)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || finish_requested_) return;
    for (const Item& item : items) {
      if (item.offset <= covered_through_ || !filter_.Matches(*item.event)) continue;
      pending_.push_back(Pending{item.event, false, item.offset, item.bytes});
      pending_bytes_ += item.bytes;
    }
    covered_through_ = std::max(covered_through_, through);
    if (pending_bytes_ > buffer_limit_) {
      const uint64_t resume = write_in_flight_ ? sending_through_ : sent_through_;
      RequestFinishLocked(absl::ResourceExhaustedError(absl::StrCat(
          "the consumer is too slow: ", pending_bytes_,
          " bytes of events wait for it, over limits.subscriber_buffer_bytes=", buffer_limit_,
          "; resubscribe with from_offset = the offset of the last event received (the server "
          "sent everything through ",
          resume, ")")));
    }
  }

  // Reads the next catch-up batch into pending_; at the head, asks the hub
  // to go live.
  absl::Status CatchUpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const storage::ReadLimits limits{
        .max_records = kReadRecords,
        .max_bytes = std::max<size_t>(1, std::min<size_t>(kReadBytes, buffer_limit_))};
    while (pending_.empty()) {
      const uint64_t head = ctx_->store->Head();
      if (covered_through_ >= head) {
        wants_live_ = true;
        hub_->Wake();
        return absl::OkStatus();
      }
      uint64_t through = covered_through_;
      ASSIGN_OR_RETURN(std::vector<storage::LogRecord> records,
                       ReadBatch(*ctx_->store, filter_, covered_through_, head, limits, &through));
      ASSIGN_OR_RETURN(std::vector<Item> items, Decode(records));
      for (const Item& item : items) {
        if (!filter_.Matches(*item.event)) continue;
        pending_.push_back(Pending{item.event, false, item.offset, item.bytes});
        pending_bytes_ += item.bytes;
      }
      covered_through_ = std::max(covered_through_, through);
    }
    return absl::OkStatus();
  }

  // What Drive issues next, if anything: true and *finish = true to finish
  // with *status, true to write current_.
  bool Next(bool* finish, grpc::Status* status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return false;
    if (finish_requested_) {
      // Even with a write in flight: a stalled consumer may never take it.
      finished_ = true;
      finished_at_ = ctx_->clock();
      *finish = true;
      *status = finish_status_;
      return true;
    }
    if (write_in_flight_) return false;
    if (pending_.empty() && !live_ && !wants_live_) {
      absl::Status read = CatchUpLocked();
      if (!read.ok()) {
        RequestFinishLocked(read);
        return Next(finish, status);
      }
    }
    const absl::Time now = ctx_->clock();
    current_.Clear();
    if (!pending_.empty()) {
      Pending next = std::move(pending_.front());
      pending_.pop_front();
      pending_bytes_ -= next.bytes;
      if (next.caught_up) {
        current_.mutable_caught_up()->set_head_offset(next.through);
      } else {
        *current_.mutable_event() = *next.event;
      }
      sending_through_ = next.through;
    } else if (live_ && now - last_activity_ >= heartbeat_) {
      // Nothing queued, nothing in flight: everything matching up to
      // covered_through_ is sent.
      v1::Heartbeat* heartbeat = current_.mutable_heartbeat();
      heartbeat->set_head_offset(covered_through_);
      *heartbeat->mutable_server_time() = base::ToTimestamp(now);
      sending_through_ = covered_through_;
    } else {
      return false;
    }
    write_in_flight_ = true;
    write_started_ = now;
    last_activity_ = now;
    return true;
  }

  StreamHub* const hub_;
  const ServiceContext* const ctx_;
  grpc::CallbackServerContext* const call_;
  const std::string user_id_;
  Admission admission_;
  OpenStreams::Registration registration_;
  const Filter filter_;
  const absl::Duration heartbeat_;
  const size_t buffer_limit_;

  absl::Mutex mu_;
  bool issuing_ ABSL_GUARDED_BY(mu_) = false;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool wants_live_ ABSL_GUARDED_BY(mu_) = false;
  bool live_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  int holds_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  size_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Every matching record up to here is queued or sent.
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
  v1::SubscribeResponse current_;
};

// --- StreamHub ---------------------------------------------------------------------------

StreamHub::StreamHub(const ServiceContext* ctx) : ctx_(ctx) {
  {
    absl::MutexLock lock(&mu_);
    dispatched_ = ctx_->store->Head();
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
  while (true) {
    {
      absl::MutexLock lock(&wake_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(wake_mu_) { return woken_ || stopping_; };
      wake_mu_.AwaitWithTimeout(absl::Condition(&ready), kTick);
      if (stopping_) return;
      woken_ = false;
    }
    Pass();
  }
}

void StreamHub::Pass() {
  const storage::ReadLimits limits{.max_records = kReadRecords, .max_bytes = kReadBytes};
  // 1. Offer what was committed since the last pass to the live streams,
  // reading each record once. Only this thread moves dispatched_.
  while (true) {
    uint64_t after;
    bool any_live = false;
    {
      absl::MutexLock lock(&mu_);
      after = dispatched_;
      for (SubscribeReactor* reactor : reactors_) any_live = any_live || reactor->live();
    }
    const uint64_t head = ctx_->store->Head();
    if (head <= after) break;
    if (!any_live) {
      absl::MutexLock lock(&mu_);
      dispatched_ = head;
      break;
    }
    absl::StatusOr<std::vector<storage::LogRecord>> records = ctx_->store->ReadAfter(after, limits);
    absl::StatusOr<std::vector<Item>> items =
        records.ok() ? Decode(*records) : absl::StatusOr<std::vector<Item>>(records.status());
    absl::MutexLock lock(&mu_);
    if (!items.ok()) {
      // The log cannot be read: end the live streams (they may resume).
      for (SubscribeReactor* reactor : reactors_) {
        if (reactor->live()) reactor->RequestFinish(items.status());
      }
      break;
    }
    const uint64_t through = records->empty() ? head : records->back().offset;
    for (SubscribeReactor* reactor : reactors_) {
      if (reactor->live()) reactor->Offer(*items, through);
    }
    dispatched_ = through;
  }

  // 2. Streams that caught up go live: the records between where their
  // catch-up ended and dispatched_ first, then the marker.
  std::vector<SubscribeReactor*> drive;
  const bool draining = ctx_->state != nullptr && ctx_->state->draining();
  const absl::Time now = ctx_->clock();
  const absl::Duration idle = ctx_->settings.stream_idle_timeout;
  {
    absl::MutexLock lock(&mu_);
    for (SubscribeReactor* reactor : reactors_) {
      if (std::optional<uint64_t> read_through = reactor->WantsLive()) {
        std::vector<Item> gap;
        uint64_t after = *read_through;
        absl::Status status;
        while (after < dispatched_) {
          absl::StatusOr<std::vector<storage::LogRecord>> records =
              ctx_->store->ReadAfter(after, limits);
          if (!records.ok()) {
            status = records.status();
            break;
          }
          if (records->empty()) break;
          for (storage::LogRecord& record : *records) {
            if (record.offset > dispatched_) break;
            after = record.offset;
            absl::StatusOr<v1::StoredEvent> stored = sync::DecodeRecord(record);
            if (!stored.ok()) {
              status = stored.status();
              break;
            }
            if (sync::IsRejectionMarker(*stored)) continue;
            gap.push_back(Item{std::make_shared<const v1::StoredEvent>(*std::move(stored)),
                               record.offset, record.payload.size()});
          }
          if (!status.ok()) break;
        }
        if (!status.ok()) {
          reactor->RequestFinish(status);
        } else {
          reactor->GoLive(gap, std::max(dispatched_, *read_through));
        }
      }
      // 3. A consumer that stopped reading is cut; draining ends every
      // stream; live streams may owe a heartbeat.
      reactor->CutIfStalled(now, idle);
      if (draining) {
        reactor->RequestFinish(absl::UnavailableError(
            "the server is shutting down: resubscribe from the offset of the last event received"));
      }
      reactor->Hold();
      drive.push_back(reactor);
    }
  }
  for (SubscribeReactor* reactor : drive) {
    reactor->Drive();
    reactor->CancelIfFinishStuck(now, idle);
    reactor->Release();
  }
}

// --- StreamServiceImpl -----------------------------------------------------------------

StreamServiceImpl::StreamServiceImpl(const ServiceContext* context)
    : ctx_(context), hub_(std::make_unique<StreamHub>(context)) {}

StreamServiceImpl::~StreamServiceImpl() = default;

size_t StreamServiceImpl::subscribers() const { return hub_->connected(); }

grpc::ServerWriteReactor<v1::SubscribeResponse>* StreamServiceImpl::Subscribe(
    grpc::CallbackServerContext* context, const v1::SubscribeRequest* request) {
  const std::string& path = FIELDSYNC_METHOD_PATH(StreamService, Subscribe);
  Admission admission = ctx_->guard->Admit(context, path);
  Filter filter;
  absl::Status status = admission.status;
  if (status.ok()) {
    status = [&]() -> absl::Status {
      for (int kind : request->kinds()) {
        if (!v1::EventKind_IsValid(kind) || kind == v1::EVENT_KIND_UNSPECIFIED) {
          return absl::InvalidArgumentError(absl::StrCat("kinds: ", kind, " is not an EventKind"));
        }
        filter.kinds.insert(kind);
      }
      ASSIGN_OR_RETURN(Scope scope, ctx_->directory->ComputeScope(admission.principal->user));
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
    return new FinishedWriter<v1::SubscribeResponse>(ctx_->guard, std::move(admission), status);
  }
  uint32_t heartbeat_ms = request->heartbeat_interval_ms() == 0 ? kDefaultHeartbeatMs
                                                                : request->heartbeat_interval_ms();
  heartbeat_ms = std::clamp(heartbeat_ms, kMinHeartbeatMs, kMaxHeartbeatMs);
  const Principal principal = *admission.principal;
  auto* reactor =
      new SubscribeReactor(hub_.get(), ctx_, context, std::move(admission), std::move(filter),
                           request->from_offset(), absl::Milliseconds(heartbeat_ms));
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
