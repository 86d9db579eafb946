// SubscribeReactor: one Subscribe call's state machine (catch-up, going
// live, live, the end of the call). Its gRPC side and live tail are in
// server/stream_reactor.cc, its catch-up read step in
// server/stream_catch_up.cc. Internal to the stream service.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/auth.h"
#include "server/open_streams.h"
#include "server/service_context.h"
#include "server/stream_internal.h"
#include "server/stream_records.h"
#include "fieldsync/v1/stream_service.pb.h"

namespace fieldsync::server {

class BatchCache;
class StreamHub;
class StreamReaders;

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
  void Drive() ABSL_LOCKS_EXCLUDED(mu_);

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
  void Release() ABSL_LOCKS_EXCLUDED(mu_);

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
  void GoLive(const LiveRecords& gap, uint64_t through) ABSL_LOCKS_EXCLUDED(mu_);

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
  bool CutIfStalled(absl::Time now, absl::Duration idle) ABSL_LOCKS_EXCLUDED(mu_);

  // A finished call whose status has not reached the consumer after
  // `grace` (it reads nothing, so nothing gets through) is cancelled, so
  // that gRPC lets go of it. Call with a Hold, outside every lock.
  void CancelIfFinishStuck(absl::Time now, absl::Duration grace) ABSL_LOCKS_EXCLUDED(mu_);

  // Newly committed records, up to `through` (live streams only).
  void Offer(const LiveRecords& records, uint64_t through) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    QueueLocked(records, through);
  }

  // --- gRPC reactions ---

  void OnWriteDone(bool ok) override;

  void OnCancel() override;

  void OnDone() override;

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
    absl::Status status;
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
    finish_status_ = status;
    resume_offset_ = resume;
    ready_.clear();
    pending_.clear();
    pending_bytes_ = 0;
  }

  // Queues the matching records after covered_through_; cuts the stream if
  // its queue outgrows limits.subscriber_buffer_bytes.
  void QueueLocked(const LiveRecords& records, uint64_t through)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // A batch of pending_'s front, within the batch bounds.
  Message BatchFromPendingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // What Drive issues next.
  Action Next() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Duration heartbeat() const { return options_.heartbeat; }

  // One catch-up step, on a reader thread: at most kExaminePerStep records
  // examined, at most one batch made.
  void ReadStep() ABSL_LOCKS_EXCLUDED(mu_);

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
  // Kept as an absl::Status: its ErrorDetail (RESOURCE_EXHAUSTED) becomes the
  // fieldsync-error-bin trailer at Finish.
  absl::Status finish_status_ ABSL_GUARDED_BY(mu_);
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

}  // namespace fieldsync::server
