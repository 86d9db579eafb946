#include "server/stream_reactor.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/time.h"
#include "server/stream_hub.h"
#include "server/stream_readers.h"

namespace fieldsync::server {

void SubscribeReactor::Drive() {
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
      AddErrorTrailers(call_, action.status);
      Finish(ToGrpc(action.status));
    } else {
      StartWrite(&current_);
    }
    absl::MutexLock lock(&mu_);
    issuing_ = false;
  }
}

void SubscribeReactor::Release() {
  bool remove;
  {
    absl::MutexLock lock(&mu_);
    --holds_;
    remove = done_ && holds_ == 0;
  }
  if (remove) delete this;
}

void SubscribeReactor::GoLive(const LiveRecords& gap, uint64_t through) {
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

bool SubscribeReactor::CutIfStalled(absl::Time now, absl::Duration idle) {
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
      RetryLater(absl::StrCat(
                     "the consumer has not read for ", absl::FormatDuration(now - write_started_),
                     " (limits.stream_idle_timeout_ms=", absl::ToInt64Milliseconds(idle),
                     "): the stream is closed to free its slot; resubscribe with from_offset = ",
                     sent_through_, " or the offset of the last event received if larger (the "
                     "server sent everything through ",
                     sent_through_, ")"),
                 "limits.stream_idle_timeout_ms",
                 static_cast<uint64_t>(absl::ToInt64Milliseconds(idle)), absl::ZeroDuration()),
      sent_through_, /*after_write=*/false);
  return true;
}

void SubscribeReactor::CancelIfFinishStuck(absl::Time now, absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (!finished_ || cancel_sent_ || now - finished_at_ < grace) return;
    cancel_sent_ = true;
  }
  call_->TryCancel();
}

void SubscribeReactor::OnWriteDone(bool ok) {
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

void SubscribeReactor::OnCancel() {
  RequestFinish(absl::CancelledError("the consumer cancelled the stream"));
  Drive();
}

void SubscribeReactor::OnDone() {
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

void SubscribeReactor::QueueLocked(const LiveRecords& records, uint64_t through) {
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
        RetryLater(absl::StrCat("the consumer is too slow: ", pending_bytes_,
                                " bytes of events wait for it, over "
                                "limits.subscriber_buffer_bytes=",
                                buffer_limit_, "; resubscribe with from_offset = ", resume,
                                " (the server sent everything through ", resume, ")"),
                   "limits.subscriber_buffer_bytes", buffer_limit_, absl::ZeroDuration()),
        resume, /*after_write=*/true);
  }
}

SubscribeReactor::Message SubscribeReactor::BatchFromPendingLocked() {
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

SubscribeReactor::Action SubscribeReactor::Next() {
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

}  // namespace fieldsync::server
